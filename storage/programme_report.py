"""Counts behind the programme report (issue 18): the answers to every closed question per
wave, and the free-text answers of one programme without names. GROUP BY queries over the
completed responses (`storage.stats.counted_complete`), carried answers included as the
indicators count them; the maths (shares, medians, suppression) is in
`conversations/programme_report.py`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, cast, func
from sqlalchemy import select as core_select
from sqlalchemy.orm import aliased
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Answer, Graduate, SurveyResponse
from storage.stats import Scope, _all, _dialect, _in_scope, cohort_of, counted_complete, json_text
from storage.types import utcnow


@dataclass(frozen=True)
class ValueRow:
    """Completed responses of one wave whose answer to `question` is `value` (a choice code,
    a list of codes for a select_multiple question, or a number)."""

    wave: str | None
    question: str
    value: Any
    count: int


@dataclass(frozen=True)
class CommentRow:
    """One free-text answer: nothing that names the graduate."""

    wave: str | None
    question: str
    text: str
    answered_at: datetime
    cohort: int
    activity: str | None
    """The graduate's answer to the routing question (the main activity) in that response."""


async def answer_values(
    session: AsyncSession,
    scope: Scope,
    form_id: str,
    questions: Sequence[str],
    now: datetime | None = None,
) -> list[ValueRow]:
    """Per wave, question of `questions` and stored value: the completed responses of
    `form_id` in scope with that answer. Values are grouped as stored (JSON text), so a
    select_multiple answer is one row per combination of codes."""
    if not questions:
        return []
    value = cast(col(Answer.value), String).label("v")
    keys = (col(SurveyResponse.wave), col(Answer.question), value)
    query = (
        core_select(*keys, func.count())
        .select_from(Answer)
        .join(SurveyResponse, col(SurveyResponse.id) == col(Answer.response_id))
        .join(Graduate, col(Graduate.id) == col(SurveyResponse.graduate_id))
        .where(
            col(SurveyResponse.form_id) == form_id,
            col(Answer.question).in_(list(questions)),
            counted_complete(now or utcnow()),
            *_in_scope(scope),
        )
        .group_by(*keys)
    )
    rows: list[ValueRow] = []
    for wave, question, text, n in await _all(session, query):
        try:
            parsed = json.loads(text) if text is not None else None
        except ValueError:
            parsed = text
        if parsed is None:
            continue
        rows.append(ValueRow(wave, str(question), parsed, int(n)))
    return rows


async def comments(
    session: AsyncSession,
    scope: Scope,
    form_id: str,
    questions: Sequence[str],
    activity: str | None,
    now: datetime | None = None,
    limit: int = 500,
) -> list[CommentRow]:
    """The free-text answers to `questions` of the completed responses of `form_id` in scope,
    newest first (at most `limit`), each with its wave, the graduate's cohort and their
    answer to `activity` (the routing question) in the same response. No name, student
    number or id is selected."""
    if not questions:
        return []
    dialect = _dialect(session)
    routing = aliased(Answer, name="routing")
    activity_text = (
        json_text(col(routing.value), dialect).label("act")
        if activity is not None
        else cast(None, String).label("act")
    )
    query = (
        core_select(
            col(SurveyResponse.wave),
            col(Answer.question),
            json_text(col(Answer.value), dialect),
            col(Answer.answered_at),
            cohort_of(),
            activity_text,
        )
        .select_from(Answer)
        .join(SurveyResponse, col(SurveyResponse.id) == col(Answer.response_id))
        .join(Graduate, col(Graduate.id) == col(SurveyResponse.graduate_id))
        .where(
            col(SurveyResponse.form_id) == form_id,
            col(Answer.question).in_(list(questions)),
            # A carried text (the same job title as last wave) is not a new comment.
            col(Answer.carried_from).is_(None),
            counted_complete(now or utcnow()),
            *_in_scope(scope),
        )
        .order_by(col(Answer.answered_at).desc(), col(Answer.id).desc())
        .limit(limit)
    )
    if activity is not None:
        query = query.outerjoin(
            routing,
            and_(
                col(routing.response_id) == col(SurveyResponse.id),
                col(routing.question) == activity,
            ),
        )
    found: list[CommentRow] = []
    for wave, question, text, at, cohort, act in await _all(session, query):
        if text is None or not str(text).strip():
            continue
        found.append(CommentRow(wave, str(question), str(text), at, int(cohort), act))
    return found
