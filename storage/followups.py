"""Follow-up lists: graduates who asked the school for help finding work (tracking U4 = yes)
and those who offered to help the school (A7: a guest lesson, mentoring, an internship
place …), for their school's staff to get back to them (issue 18).

Who is on a list is read from the answers each time, never copied:

- "work": the graduate's latest U4 answer is "yes";
- "offer": the graduate's latest A7 answer that was asked (not carried: `Answer.carried_from`
  is NULL; a carried A7 is a copy of the earlier one, so a graduate is counted once, with the
  date they answered) holds a choice other than "none"; "offer:<code>" narrows it to one
  choice (e.g. "offer:guest_lecture").

Only graduates who may be contacted are listed: they said yes to follow-up contact
(`ConsentKind.FOLLOWUP`, "May we ask you again in a few months?": the consent to the school
coming back to them personally), did not /stop and were not erased. Withdrawing that consent
takes them off the lists at once. News to a list (the `followup` key of a news audience,
storage/news.py) also needs the news consent, as all news does.

`followup_entry` holds what staff did (handled, a note, when they wrote to the graduate):
personal data, deleted when the graduate is erased (storage/erasure.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, exists, not_, or_
from sqlalchemy.orm import aliased
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Answer, FollowupEntry, Graduate, Programme, SurveyResponse

WORK = "work"
OFFER = "offer"
LISTS = (WORK, OFFER)
WORK_QUESTION = "U4"
OFFER_QUESTION = "A7"
NO_OFFER = "none"
DEFAULT_OFFERS = ("guest_lecture", "mentor", "host_intern", "career_talk")
"""The tracking questionnaire's help_school choices (conversations/questionnaires/
tracking.yaml), used when the deployed questionnaire cannot be read."""
NOTE_LIMIT = 2000


class FollowupError(ValueError):
    """A list name that does not exist."""


@dataclass(frozen=True)
class ListKey:
    """A list: "work", "offer", or "offer" narrowed to one choice."""

    name: str
    choice: str | None = None

    @classmethod
    def parse(cls, value: str, offers: Sequence[str] = DEFAULT_OFFERS) -> ListKey:
        name, _sep, choice = value.partition(":")
        if name == WORK and not choice:
            return cls(WORK)
        if name == OFFER and (not choice or choice in offers):
            return cls(OFFER, choice or None)
        raise FollowupError(f"no follow-up list {value!r}")

    def __str__(self) -> str:
        return f"{self.name}:{self.choice}" if self.choice else self.name


def may_be_contacted() -> ColumnElement[bool]:
    """The graduates staff may contact from a list (see the module docstring)."""
    return and_(
        col(Graduate.consent_followup).is_(True),
        col(Graduate.opted_out_at).is_(None),
        col(Graduate.erased_at).is_(None),
    )


def _json_text(column: Any) -> Any:
    """A JSON answer as its text ('"yes"', '["mentor", "host_intern"]') on both stores."""
    return cast(column, String)


def _matches(key: ListKey, value: Any, offers: Sequence[str]) -> ColumnElement[bool]:
    text = _json_text(value)
    if key.name == WORK:
        return or_(text == '"yes"', text == "yes")
    codes = [key.choice] if key.choice else [c for c in offers if c != NO_OFFER]
    return or_(*(text.like(f'%"{code}"%') for code in codes))


def _latest(question: str) -> tuple[Any, Any, ColumnElement[bool]]:
    """(answer, response, condition): the graduate's latest asked answer to `question`."""
    answer = aliased(Answer)
    response = aliased(SurveyResponse)
    later_answer = aliased(Answer)
    later_response = aliased(SurveyResponse)
    later = (
        exists()
        .where(
            col(later_answer.response_id) == col(later_response.id),
            col(later_response.graduate_id) == col(Graduate.id),
            col(later_answer.question) == question,
            col(later_answer.carried_from).is_(None),
            col(later_answer.answered_at) > col(answer.answered_at),
        )
        .correlate_except(later_answer, later_response)
    )
    condition = and_(
        col(answer.response_id) == col(response.id),
        col(response.graduate_id) == col(Graduate.id),
        col(answer.question) == question,
        col(answer.carried_from).is_(None),
        not_(later),
    )
    return answer, response, condition


def on_list(key: ListKey, offers: Sequence[str] = DEFAULT_OFFERS) -> ColumnElement[bool]:
    """A condition on `Graduate`: on the list `key` (consent not included)."""
    question = WORK_QUESTION if key.name == WORK else OFFER_QUESTION
    answer, response, latest = _latest(question)
    return (
        exists()
        .where(latest, _matches(key, answer.value, offers))
        .correlate_except(answer, response)
    )


@dataclass(frozen=True)
class ListRow:
    """One graduate on a list, as staff see it."""

    graduate_id: int
    name: str
    student_ref: str
    programme: str
    cohort: int
    answer: Any  # "yes", or the A7 codes
    answered_at: datetime
    handled_at: datetime | None
    note: str
    contacted_at: datetime | None


async def list_rows(
    session: AsyncSession,
    key: ListKey,
    institution_id: int | None,
    *,
    offers: Sequence[str] = DEFAULT_OFFERS,
    programme_id: int | None = None,
    limit: int = 500,
) -> list[ListRow]:
    """The graduates on `key` who may be contacted, of one school (None: every school),
    newest answer first, with their entry."""
    question = WORK_QUESTION if key.name == WORK else OFFER_QUESTION
    answer, response, latest = _latest(question)
    entry = aliased(FollowupEntry)
    query = (
        select(Graduate, Programme, answer, entry)
        .join(Programme, col(Programme.id) == col(Graduate.programme_id))
        .join(response, col(response.graduate_id) == col(Graduate.id))
        .join(answer, latest)
        .join(
            entry,
            and_(col(entry.graduate_id) == col(Graduate.id), col(entry.list_name) == key.name),
            isouter=True,
        )
        .where(may_be_contacted(), _matches(key, answer.value, offers))
    )
    if institution_id is not None:
        query = query.where(col(Graduate.institution_id) == institution_id)
    if programme_id is not None:
        query = query.where(col(Graduate.programme_id) == programme_id)
    rows = (
        await session.exec(
            query.order_by(col(answer.answered_at).desc(), col(Graduate.id)).limit(limit)
        )
    ).all()
    seen: set[int] = set()
    result = []
    for graduate, programme, found, handling in rows:
        assert graduate.id is not None
        if graduate.id in seen:  # two answers at the same moment: listed once
            continue
        seen.add(graduate.id)
        result.append(
            ListRow(
                graduate_id=graduate.id,
                name=graduate.name or "",
                student_ref=graduate.student_ref,
                programme=f"{programme.code} · {programme.name}",
                cohort=graduate.graduation_date.year,
                answer=found.value,
                answered_at=found.answered_at,
                handled_at=handling.handled_at if handling else None,
                note=handling.note if handling else "",
                contacted_at=handling.contacted_at if handling else None,
            )
        )
    return result


async def listed_graduate(
    session: AsyncSession,
    graduate_id: int,
    list_name: str,
    institution_id: int | None,
    offers: Sequence[str] = DEFAULT_OFFERS,
) -> Graduate | None:
    """The graduate, if they are on the list now, may be contacted and belong to the school
    (`institution_id` None: any school); else None."""
    query = select(Graduate).where(
        col(Graduate.id) == graduate_id,
        may_be_contacted(),
        on_list(ListKey.parse(list_name, offers), offers),
    )
    if institution_id is not None:
        query = query.where(col(Graduate.institution_id) == institution_id)
    return (await session.exec(query)).first()


async def entry_of(session: AsyncSession, graduate_id: int, list_name: str) -> FollowupEntry:
    """The graduate's entry on the list (a new one, not yet added, if there is none)."""
    found = (
        await session.exec(
            select(FollowupEntry).where(
                FollowupEntry.graduate_id == graduate_id, FollowupEntry.list_name == list_name
            )
        )
    ).first()
    return found or FollowupEntry(graduate_id=graduate_id, list_name=list_name)


async def set_handled(
    session: AsyncSession,
    graduate_id: int,
    list_name: str,
    *,
    handled: bool,
    note: str,
    staff_id: int | None,
    now: datetime,
) -> FollowupEntry:
    """Mark the graduate handled (or not) on the list, with a note."""
    entry = await entry_of(session, graduate_id, list_name)
    if handled and entry.handled_at is None:
        entry.handled_at, entry.handled_by = now, staff_id
    elif not handled:
        entry.handled_at, entry.handled_by = None, None
    entry.note = note[:NOTE_LIMIT]
    entry.updated_at = now
    session.add(entry)
    return entry


async def mark_contacted(
    session: AsyncSession, graduate_id: int, list_name: str, now: datetime
) -> None:
    entry = await entry_of(session, graduate_id, list_name)
    entry.contacted_at = now
    entry.updated_at = now
    session.add(entry)


async def erase_entries(session: AsyncSession, graduate_ids: Sequence[int]) -> None:
    """Delete the graduates' list entries and notes (erasure)."""
    await session.exec(
        delete(FollowupEntry).where(col(FollowupEntry.graduate_id).in_(graduate_ids))
    )
