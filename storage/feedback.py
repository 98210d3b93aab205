"""Reading graduates' comments and plans, and the themes staff tag comments with (issue 18).
The maths and the rules are in conversations/feedback.py; nothing here reads a name.

Only completed responses count (`storage.stats.counted_complete`), as in the indicators: a
comment of a partial response is never shown, and a plan is taken from the graduate's latest
completed pre-graduation response."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func
from sqlalchemy import select as core_select
from sqlalchemy.orm import aliased
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from conversations.feedback import FeedbackSpec, PlanRow, theme_key
from storage.models import Answer, CommentTag, Graduate, SurveyResponse
from storage.stats import (
    Scope,
    _all,
    _dialect,
    _in_scope,
    cohort_of,
    counted_complete,
    json_text,
)
from storage.types import utcnow


async def plan_rows(
    session: AsyncSession,
    scope: Scope,
    spec: FeedbackSpec,
    activity: str,
    now: datetime | None = None,
) -> list[PlanRow]:
    """Completed responses of `spec.form_id` in scope, per programme, wave, activity answer and the
    graduate's plan (the plan question's answer in their latest completed response to the
    plan's questionnaire; None without one)."""
    if spec.plan_form is None or spec.plan_question is None:
        return []
    dialect = _dialect(session)
    done = counted_complete(now or utcnow())
    in_scope = _in_scope(scope)
    latest: Any = core_select(
        col(SurveyResponse.graduate_id).label("gid"), func.max(col(SurveyResponse.id)).label("rid")
    ).where(col(SurveyResponse.form_id) == spec.plan_form, done)
    if in_scope:
        latest = latest.where(
            col(SurveyResponse.graduate_id).in_(core_select(col(Graduate.id)).where(*in_scope))
        )
    latest = latest.group_by(col(SurveyResponse.graduate_id)).subquery()
    asked = aliased(Answer, name="a_plan")
    plans = (
        core_select(latest.c.gid, json_text(col(asked.value), dialect).label("plan"))
        .select_from(latest)
        .join(
            asked,
            and_(col(asked.response_id) == latest.c.rid, col(asked.question) == spec.plan_question),
        )
        .subquery()
    )
    act = aliased(Answer, name="a_act")
    activity_value = json_text(col(act.value), dialect).label("act")
    query = (
        core_select(
            col(Graduate.programme_id),
            col(SurveyResponse.wave),
            activity_value,
            plans.c.plan,
            func.count(),
        )
        .select_from(SurveyResponse)
        .join(Graduate, col(Graduate.id) == col(SurveyResponse.graduate_id))
        .outerjoin(
            act,
            and_(col(act.response_id) == col(SurveyResponse.id), col(act.question) == activity),
        )
        .outerjoin(plans, plans.c.gid == col(SurveyResponse.graduate_id))
        .where(col(SurveyResponse.form_id) == spec.form_id, done, *in_scope)
        .group_by(
            col(Graduate.programme_id), col(SurveyResponse.wave), activity_value, plans.c.plan
        )
    )
    return [
        PlanRow(wave, activity_code, plan, int(n), int(programme))
        for programme, wave, activity_code, plan, n in await _all(session, query)
    ]


async def respondents(
    session: AsyncSession,
    scope: Scope,
    form_id: str,
    wave: str | None = None,
    now: datetime | None = None,
) -> int:
    """Graduates in scope with a completed response to `form_id` (in `wave`, if given)."""
    query = (
        core_select(func.count(func.distinct(col(SurveyResponse.graduate_id))))
        .select_from(SurveyResponse)
        .join(Graduate, col(Graduate.id) == col(SurveyResponse.graduate_id))
        .where(
            col(SurveyResponse.form_id) == form_id,
            counted_complete(now or utcnow()),
            *_in_scope(scope),
        )
    )
    if wave is not None:
        query = query.where(col(SurveyResponse.wave) == wave)
    ((n,),) = await _all(session, query)
    return int(n or 0)


@dataclass
class Comment:
    """A graduate's comment, without anything that names them, with their routing answers."""

    response_id: int
    question: str
    text: str
    wave: str | None
    cohort: int
    activity: str | None
    answered_at: datetime
    tags: list[CommentTag] = field(default_factory=list)


async def comments(
    session: AsyncSession,
    scope: Scope,
    spec: FeedbackSpec,
    activity: str,
    wave: str | None = None,
    now: datetime | None = None,
) -> list[Comment]:
    """The comments (answers to `spec.comments`, given in the response, not carried) of the
    completed responses in scope, newest first, with their tags."""
    if not spec.comments:
        return []
    dialect = _dialect(session)
    said = aliased(Answer, name="a_comment")
    act = aliased(Answer, name="a_act")
    query = (
        core_select(
            col(SurveyResponse.id),
            col(said.question),
            col(said.value),
            col(SurveyResponse.wave),
            cohort_of(),
            json_text(col(act.value), dialect),
            col(said.answered_at),
        )
        .select_from(SurveyResponse)
        .join(Graduate, col(Graduate.id) == col(SurveyResponse.graduate_id))
        .join(
            said,
            and_(
                col(said.response_id) == col(SurveyResponse.id),
                col(said.question).in_(spec.comments),
                col(said.carried_from).is_(None),
            ),
        )
        .outerjoin(
            act,
            and_(col(act.response_id) == col(SurveyResponse.id), col(act.question) == activity),
        )
        .where(
            col(SurveyResponse.form_id) == spec.form_id,
            counted_complete(now or utcnow()),
            *_in_scope(scope),
        )
        .order_by(col(said.answered_at).desc(), col(SurveyResponse.id).desc())
    )
    if wave is not None:
        query = query.where(col(SurveyResponse.wave) == wave)
    found = [
        Comment(int(rid), question, value.strip(), w, int(cohort), code, at)
        for rid, question, value, w, cohort, code, at in await _all(session, query)
        if isinstance(value, str) and value.strip()
    ]
    by_key = {(c.response_id, c.question): c for c in found}
    ids = sorted({c.response_id for c in found})
    for start in range(0, len(ids), 500):
        tags = await session.exec(
            select(CommentTag)
            .where(col(CommentTag.response_id).in_(ids[start : start + 500]))
            .order_by(col(CommentTag.theme_key))
        )
        for tag in tags.all():
            comment = by_key.get((tag.response_id, tag.question))
            if comment is not None:
                comment.tags.append(tag)
    return found


@dataclass(frozen=True)
class CommentPlace:
    """Whose comment a (response, question) is: its school and programme, and whether it is
    one that can be shown (a non-empty comment answer of a completed response)."""

    institution_id: int
    programme_id: int
    shown: bool


async def comment_place(
    session: AsyncSession,
    response_id: int,
    question: str,
    spec: FeedbackSpec,
    now: datetime | None = None,
) -> CommentPlace | None:
    """Where the comment is (None: no such response)."""
    row = (
        await session.exec(
            select(Graduate.institution_id, Graduate.programme_id, SurveyResponse.form_id)
            .join(SurveyResponse, col(SurveyResponse.graduate_id) == col(Graduate.id))
            .where(SurveyResponse.id == response_id)
        )
    ).first()
    if row is None:
        return None
    institution_id, programme_id, form_id = row
    shown = False
    if form_id == spec.form_id and question in spec.comments:
        answer = (
            await session.exec(
                select(Answer.value)
                .join(SurveyResponse, col(SurveyResponse.id) == col(Answer.response_id))
                .where(
                    Answer.response_id == response_id,
                    Answer.question == question,
                    col(Answer.carried_from).is_(None),
                    counted_complete(now or utcnow()),
                )
            )
        ).first()
        shown = isinstance(answer, str) and bool(answer.strip())
    return CommentPlace(int(institution_id), int(programme_id), shown)


async def add_tag(
    session: AsyncSession,
    institution_id: int,
    response_id: int,
    question: str,
    theme: str,
    now: datetime | None = None,
) -> CommentTag:
    """Tag the comment with `theme` (a tidy name: conversations.feedback.theme_name). A theme
    the school already uses under another case keeps its first spelling; a tag the comment
    already has is left as it is."""
    key = theme_key(theme)
    existing = (
        await session.exec(
            select(CommentTag).where(
                CommentTag.response_id == response_id,
                CommentTag.question == question,
                CommentTag.theme_key == key,
            )
        )
    ).first()
    if existing is not None:
        return existing
    spelled = (
        await session.exec(
            select(CommentTag.theme)
            .where(CommentTag.institution_id == institution_id, CommentTag.theme_key == key)
            .order_by(col(CommentTag.id))
            .limit(1)
        )
    ).first()
    tag = CommentTag(
        institution_id=institution_id,
        response_id=response_id,
        question=question,
        theme=spelled or theme,
        theme_key=key,
        tagged_at=now or utcnow(),
    )
    session.add(tag)
    await session.flush()
    return tag


async def remove_tag(session: AsyncSession, response_id: int, question: str, key: str) -> bool:
    """Remove the comment's tag of theme `key` (theme_key); whether there was one."""
    result = await session.exec(
        delete(CommentTag).where(
            col(CommentTag.response_id) == response_id,
            col(CommentTag.question) == question,
            col(CommentTag.theme_key) == key,
        )
    )
    return bool(result.rowcount)


async def school_themes(session: AsyncSession, institution_id: int) -> list[str]:
    """The themes the school's staff have used, by name (to offer when tagging)."""
    rows = await session.exec(
        select(CommentTag.theme_key, func.min(CommentTag.theme))
        .where(CommentTag.institution_id == institution_id)
        .group_by(col(CommentTag.theme_key))
        .order_by(col(CommentTag.theme_key))
    )
    return [str(theme) for _key, theme in rows.all()]


async def cohorts(session: AsyncSession, programme_id: int) -> list[int]:
    """The graduation years of the programme's graduates, oldest first (for the filters)."""
    year = cohort_of()
    rows = await _all(
        session,
        core_select(year)
        .where(col(Graduate.programme_id) == programme_id)
        .group_by(year)
        .order_by(year),
    )
    return [int(y) for (y,) in rows]
