"""Reads and writes the bot's handlers share. Each takes an open session; the caller owns
the transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select as core_select
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import col, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    ChatState,
    ConsentEvent,
    ConsentKind,
    Graduate,
    Institution,
    Programme,
    QuestionnaireDefinition,
    RetiredLink,
    SchoolChoiceLabel,
)
from storage.types import utcnow


async def get_chat_state(session: AsyncSession, chat_id: int) -> ChatState:
    """This chat's conversation state, created empty the first time."""
    state = await session.get(ChatState, chat_id)
    if state is None:
        state = ChatState(chat_id=chat_id)
        session.add(state)
    return state


def touch_state(state: ChatState) -> None:
    """Mark the state changed, JSON data included (SQLAlchemy does not see in-place edits)."""
    flag_modified(state, "data")
    state.updated_at = utcnow()


async def stale_prompts(session: AsyncSession, before: datetime) -> list[tuple[int, datetime]]:
    """Chats whose next question was decided but not marked sent, untouched since `before`
    (the handler that decided it crashed, or Telegram failed): (chat id, updated_at)."""
    query = select(ChatState.chat_id, ChatState.updated_at).where(
        col(ChatState.prompt_pending), col(ChatState.updated_at) < before
    )
    return [(chat_id, seen) for chat_id, seen in (await session.exec(query)).all()]


#: How long a claimed question counts as being sent: a claim dates the chat's state this far
#: ahead, so that neither a redelivered update (`claim_prompt`'s callers in
#: conversations/prompting.py) nor the prompts job takes it meanwhile; if its claimer died,
#: the prompts job takes it PROMPT_RESEND_SECONDS after that.
PROMPT_CLAIM_HOLD = timedelta(seconds=30)


async def claim_prompt(
    session: AsyncSession, chat_id: int, seen: datetime, hold: timedelta = PROMPT_CLAIM_HOLD
) -> datetime | None:
    """Take over sending the chat's pending question, if it is still as `seen`: only one of
    several processes trying at once wins (compare-and-set on updated_at). The winner's
    claim dates the state `hold` ahead (see PROMPT_CLAIM_HOLD); returns that stamp, for
    `release_prompt`, or None when the claim was lost."""
    stamp = utcnow() + hold
    result = await session.exec(
        update(ChatState)
        .where(
            col(ChatState.chat_id) == chat_id,
            col(ChatState.prompt_pending),
            col(ChatState.updated_at) == seen,
        )
        .values(updated_at=stamp)
    )
    return stamp if result.rowcount else None


async def release_prompt(session: AsyncSession, chat_id: int, stamp: datetime) -> None:
    """Give back a claim whose sending failed: the question is pending as if decided now
    (the prompts job tries again after PROMPT_RESEND_SECONDS), unless the chat moved on."""
    await session.exec(
        update(ChatState)
        .where(
            col(ChatState.chat_id) == chat_id,
            col(ChatState.prompt_pending),
            col(ChatState.updated_at) == stamp,
        )
        .values(updated_at=utcnow())
    )


#: A graduate's web chat (bot/web/chat.py) is chat `-(WEB_CHAT_BASE + graduate id)`: below
#: -2**53, where no Telegram chat is (Telegram's ids have at most 52 significant bits), so the
#: two kinds of chat share the chat state, the pending questions and the flows.
WEB_CHAT_BASE = 2**53


def web_chat_id(graduate_id: int) -> int:
    """The chat number of graduate `graduate_id`'s web chat."""
    return -(WEB_CHAT_BASE + graduate_id)


def web_graduate_id(chat_id: int) -> int | None:
    """The graduate whose web chat `chat_id` is; None for a Telegram chat."""
    return -chat_id - WEB_CHAT_BASE if chat_id < -WEB_CHAT_BASE else None


def is_web_chat(chat_id: int) -> bool:
    return chat_id < -WEB_CHAT_BASE


async def graduate_by_chat(session: AsyncSession, chat_id: int) -> Graduate | None:
    """The graduate of a chat: the one linked to a Telegram chat, or the web chat's own."""
    graduate_id = web_graduate_id(chat_id)
    if graduate_id is not None:
        graduate = await session.get(Graduate, graduate_id)
        return graduate if graduate is not None and graduate.erased_at is None else None
    result = await session.exec(select(Graduate).where(Graduate.chat_id == chat_id))
    return result.first()


@dataclass(frozen=True)
class SchoolSeen:
    """A graduate's school as `chat_context` read it: its country, and a stamp of its own
    choice labels (how many, the newest row id, the latest change) that changes whenever
    `gradtrack school label` / `unlabel` changes them, in whichever process. The labels
    themselves are cached per process under that stamp (storage.schools.for_graduate)."""

    institution_id: int
    country: str
    stamp: tuple[Any, ...]


#: session.info key: graduate id -> SchoolSeen, as `chat_context` read it in that session.
SCHOOL_SEEN = "gradtrack_school_seen"


async def chat_context(session: AsyncSession, chat_id: int) -> tuple[ChatState, Graduate | None]:
    """The chat's state (created empty the first time) and its graduate (`graduate_by_chat`)
    with its school's country and labels' stamp (`SchoolSeen`, kept in the session for
    storage.schools.for_graduate), in one round trip when the state exists: what every
    answer needs first."""
    found = await chat_context_with(session, chat_id)
    if found is None:
        return await get_chat_state(session, chat_id), await graduate_by_chat(session, chat_id)
    return found[0], found[1]


ContextRows = tuple[ChatState, Graduate | None, list[tuple[Any, ...]]]


async def chat_context_with(
    session: AsyncSession, chat_id: int, extend: Callable[[Any], Any] | None = None
) -> ContextRows | None:
    """`chat_context` read together with what `extend` adds to its query (columns and outer
    joins: a flow's own rows, in the same round trip); the state, the graduate and the added
    columns of each row. None when the chat has no state yet (nothing is created then)."""
    graduate_id = web_graduate_id(chat_id)
    linked = (
        (col(Graduate.id) == graduate_id) & col(Graduate.erased_at).is_(None)
        if graduate_id is not None
        else col(Graduate.chat_id) == chat_id
    )
    own = col(SchoolChoiceLabel.institution_id) == col(Institution.id)
    query: Any = (
        core_select(
            ChatState,
            Graduate,
            col(Institution.id),
            col(Institution.country),
            core_select(func.count()).where(own).scalar_subquery(),
            core_select(func.max(col(SchoolChoiceLabel.id))).where(own).scalar_subquery(),
            core_select(func.max(SchoolChoiceLabel.updated_at)).where(own).scalar_subquery(),
        )
        .select_from(ChatState)
        .outerjoin(Graduate, linked)
        .outerjoin(Programme, col(Programme.id) == col(Graduate.programme_id))
        .outerjoin(Institution, col(Institution.id) == col(Programme.institution_id))
        .where(col(ChatState.chat_id) == chat_id)
    )
    query = extend(query) if extend is not None else query.limit(1)
    rows = (await session.exec(query)).all()
    if not rows:
        return None
    state, graduate, institution_id, country, *stamp = rows[0][:7]
    if graduate is not None and graduate.id is not None and institution_id is not None:
        seen = SchoolSeen(institution_id, country, tuple(stamp))
        session.info.setdefault(SCHOOL_SEEN, {})[graduate.id] = seen
    return state, graduate, [tuple(row[7:]) for row in rows]


async def graduate_by_token(session: AsyncSession, token: str) -> Graduate | None:
    result = await session.exec(select(Graduate).where(Graduate.invite_token == token))
    return result.first()


def link_hash(token: str) -> str:
    """How a retired personal link is kept: its SHA-256 (the token is 190 random bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


async def retire_link(session: AsyncSession, token: str, reason: str, at: datetime) -> None:
    """Remember that personal link `token` stopped working, and why ("replaced", "erased")."""
    if await session.get(RetiredLink, link_hash(token)) is None:
        session.add(RetiredLink(token_hash=link_hash(token), reason=reason, retired_at=at))


async def retired_link(session: AsyncSession, token: str) -> RetiredLink | None:
    return await session.get(RetiredLink, link_hash(token))


async def institution_by_code(session: AsyncSession, code: str) -> Institution | None:
    result = await session.exec(select(Institution).where(Institution.code == code.lower()))
    return result.first()


async def active_programmes(session: AsyncSession, institution_id: int) -> Sequence[Programme]:
    result = await session.exec(
        select(Programme)
        .where(Programme.institution_id == institution_id, col(Programme.active))
        .order_by(col(Programme.name))
    )
    return result.all()


def set_consent(
    session: AsyncSession,
    graduate: Graduate,
    kind: ConsentKind,
    granted: bool,
    notice_version: str,
    at: datetime | None = None,
    source: str = "chat",
) -> None:
    """Store a consent answer on the graduate and in the audit trail."""
    when = at or utcnow()
    setattr(graduate, f"consent_{kind.value}", granted)
    setattr(graduate, f"consent_{kind.value}_at", when)
    setattr(graduate, f"consent_{kind.value}_notice", notice_version)
    graduate.updated_at = when
    assert graduate.id is not None
    session.add(graduate)
    session.add(
        ConsentEvent(
            graduate_id=graduate.id,
            kind=kind.value,
            granted=granted,
            notice_version=notice_version,
            source=source,
            at=when,
        )
    )


async def stored_questionnaire(session: AsyncSession, form_id: str, version: str) -> str | None:
    """The YAML of a questionnaire version as stored when it was first loaded, or None."""
    result = await session.exec(
        select(QuestionnaireDefinition.source)
        .where(
            QuestionnaireDefinition.form_id == form_id,
            QuestionnaireDefinition.version == version,
        )
        .order_by(col(QuestionnaireDefinition.id).desc())
    )
    return result.first()
