"""Sending the open question of a chat, whatever the conversation (onboarding, survey).

Each flow registers a renderer: given the chat's state, in the chat's language, it returns
the question to send. `send_prompt` sends it and then marks it sent. A question that was
decided (state committed with `prompt_pending`) but never marked sent, because of a crash or
a failure of Telegram, is sent by `resend_pending_prompts`: at start, and every few seconds
by the scheduler leader. It takes only questions left untouched for
`PROMPT_RESEND_SECONDS` (so not one a live handler is about to send) and claims each before
sending it, so that processes starting at once do not both send it.

A process that dies between storing an answer and sending the next question does not make the
person wait that long: Telegram delivers the update again (to another process, or to this
one restarted), and the copy, dropped as processed (bot.dedupe), sends the chat's pending
question at once (`send_pending_question`), claimed in the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import _, set_language, use_language
from bot.logs import chat_ref
from bot.runtime import Runtime, mark_unreachable
from conversations.channel import Keyboard, Refused, Turn, Unreachable
from conversations.rules import choose_language
from storage.models import ChatState, Graduate
from storage.queries import (
    claim_prompt,
    get_chat_state,
    graduate_by_chat,
    release_prompt,
    stale_prompts,
    touch_state,
)
from storage.types import utcnow

log = logging.getLogger(__name__)

PROMPT_MESSAGE = "prompt_message_id"  # in chat_state.data: the message asking the open question


@dataclass
class Prompt:
    """What to send for a step: zero or more plain messages, then the question."""

    text: str
    keyboard: Keyboard = ()
    preface: tuple[str, ...] = ()
    html: bool = False
    """The texts (preface too) are Telegram HTML: a questionnaire's formatted labels."""


@dataclass(frozen=True)
class Decided:
    """A question a flow decided in its own transaction, to be sent by `send_prompt` without
    loading the chat again: the chat's flow, language (as `send_prompt` chooses it), state
    data and updated_at as committed, and `render`, the flow's renderer over what it loaded
    (and changed) in that transaction, called in the chat's language."""

    flow: str
    language: str | None
    render: Callable[[], Prompt | None]
    data: dict[str, Any]
    stamp: datetime


def decided(
    state: ChatState, graduate: Graduate | None, render: Callable[[], Prompt | None]
) -> Decided:
    """What the flow committed in `state` (read after its transaction) and how it renders
    the question: `send_prompt`'s `decided`."""
    return Decided(
        state.flow,
        state.language or (graduate.language if graduate else None),
        render,
        dict(state.data),
        state.updated_at,
    )


Renderer = Callable[[Runtime, ChatState], Awaitable[Prompt | None]]
_renderers: dict[str, Renderer] = {}


def register(flow: str, renderer: Renderer) -> None:
    _renderers[flow] = renderer


async def use_chat_language(rt: Runtime, turn: Turn) -> Graduate | None:
    """Set this turn's language from the chat's state, the graduate or the person's device."""
    async with rt.db.session() as session:
        state = await get_chat_state(session, turn.chat_id)
        graduate = await graduate_by_chat(session, turn.chat_id)
        session.add(state)
    set_language(
        choose_language(
            state.language or (graduate.language if graduate else None), turn.event.language, None
        )
    )
    return graduate


async def close_question(turn: Turn, label: str | None) -> None:
    """Show the chosen answer under the question (or just remove its buttons when there is
    no label or text), so that an answered question cannot be answered again."""
    text = turn.event.message_text
    # False when already edited (a duplicate press) or too old: nothing to do then.
    if label and text:
        await turn.edit(f"{text}\n\n→ {label}")
    else:
        await turn.edit(None)


async def send_prompt(
    rt: Runtime, chat_id: int, *, preface: bool = True, decided: Decided | None = None
) -> None:
    """Send the chat's current question (without what goes before it unless `preface`),
    then mark it sent. `decided`: the question as the flow that decided it rendered it
    (nothing is loaded then, and marking it sent is one statement while the chat's state is
    as that flow committed it)."""
    if decided is None:
        async with rt.db.session() as session:
            state = await get_chat_state(session, chat_id)
            graduate = await session.get(Graduate, state.graduate_id) if state.graduate_id else None
            language = state.language or (graduate.language if graduate else None)
        flow = state.flow
        renderer = _renderers.get(flow)
    else:
        flow, language = decided.flow, decided.language
    sent: int | None = None
    channel = rt.channel_for(chat_id)
    with use_language(language):
        if decided is not None:
            prompt = decided.render()
        else:
            prompt = await renderer(rt, state) if renderer else None
        if prompt is not None:
            try:
                for text in prompt.preface if preface else ():
                    await channel.send(chat_id, text, html=prompt.html)
                sent = await channel.send(chat_id, prompt.text, prompt.keyboard, html=prompt.html)
            except Unreachable as exc:
                await mark_unreachable(rt, chat_id, exc.detail)
            except Refused as exc:
                await _refused(rt, chat_id, flow, exc)
    remember = sent is not None and prompt is not None and bool(prompt.keyboard)
    if decided is not None:
        async with rt.db.session() as session:
            if await _mark_sent(session, chat_id, decided, sent if remember else None):
                return
    async with rt.db.session() as session:
        state = await get_chat_state(session, chat_id)
        state.prompt_pending = False
        if sent is not None and prompt is not None and prompt.keyboard and state.flow == flow:
            # Remembered so that a language change can take the old buttons away.
            state.data = {**state.data, PROMPT_MESSAGE: sent}
            touch_state(state)
        session.add(state)


async def _mark_sent(
    session: AsyncSession, chat_id: int, decided: Decided, sent: int | None
) -> bool:
    """Mark the decided question sent (and remember its message `sent`), in one statement,
    if the chat's state is still as the flow committed it; False if it changed meanwhile."""
    values: dict[str, Any] = {"prompt_pending": False}
    if sent is not None:
        values["data"] = {**decided.data, PROMPT_MESSAGE: sent}
        values["updated_at"] = utcnow()
    result = await session.exec(
        update(ChatState)
        .where(col(ChatState.chat_id) == chat_id, col(ChatState.updated_at) == decided.stamp)
        .values(**values)
    )
    return bool(result.rowcount)


def refused_text() -> str:
    return _(
        "Sorry, Telegram would not show this question. Please tell your school, so that "
        "they can fix it; your earlier answers are kept."
    )


async def _refused(rt: Runtime, chat_id: int, flow: str, error: Refused) -> None:
    """Telegram refused the question (a 400: too many buttons, button data, a text too long,
    entities it cannot parse): sending it again would be refused again, so it is not left
    pending for the resender. The person is told, in plain text, and the operator by an
    ERROR line (Telegram's reason, no personal data)."""
    log.error(
        "Telegram refused the %s question for chat %s: %s", flow, chat_ref(chat_id), error.detail
    )
    try:
        await rt.channel_for(chat_id).send(chat_id, refused_text())
    except Exception:
        log.warning("could not tell chat %s that its question was refused", chat_ref(chat_id))


async def has_open_question(rt: Runtime, chat_id: int) -> bool:
    """Whether the chat has a question open (one `send_prompt` would send)."""
    async with rt.db.session() as session:
        state = await session.get(ChatState, chat_id)
        if state is None:
            return False
        session.expunge(state)
    renderer = _renderers.get(state.flow)
    return renderer is not None and await renderer(rt, state) is not None


async def send_pending_question(rt: Runtime, chat_id: int) -> bool:
    """Send the chat's question decided but not marked sent, now, however recently it was
    decided, unless someone is sending it (a claim dates the state ahead: see
    storage.queries.PROMPT_CLAIM_HOLD). Claimed first (compare-and-set), so that of several
    callers at once only one sends it. Returns whether this call sent it."""
    async with rt.db.session() as session:
        state = await session.get(ChatState, chat_id)
        if state is None or not state.prompt_pending or state.updated_at > utcnow():
            return False
        seen = state.updated_at
    return await _claim_and_send(rt, chat_id, seen)


async def _claim_and_send(rt: Runtime, chat_id: int, seen: datetime) -> bool:
    async with rt.db.session() as session:
        stamp = await claim_prompt(session, chat_id, seen)
    if stamp is None:
        return False  # another process took it, or the person moved on
    try:
        await send_prompt(rt, chat_id)
    except BaseException:
        async with rt.db.session() as session:
            await release_prompt(session, chat_id, stamp)
        raise
    return True


async def restate(rt: Runtime, chat_id: int) -> bool:
    """Ask the chat's open question again (after a language change), and take the buttons
    off the message that asked it before, so that no message shows text in one language and
    buttons in another. False if no question is open."""
    async with rt.db.session() as session:
        state = await get_chat_state(session, chat_id)
        open_question = state.flow in _renderers and bool(state.flow)
        old_message = state.data.get(PROMPT_MESSAGE) if open_question else None
        session.add(state)
    if not open_question:
        return False
    if isinstance(old_message, int):
        try:
            await rt.channel_for(chat_id).edit(chat_id, old_message, None)
        except Refused as exc:  # already without buttons, or too old to edit
            log.debug("old question's buttons not removed: %s", exc)
    await send_prompt(rt, chat_id)
    return True


async def resend_pending_prompts(rt: Runtime, older_than: timedelta | None = None) -> int:
    """Send every question decided but not marked sent for `older_than` (by default
    PROMPT_RESEND_SECONDS), each claimed first; returns how many this process sent."""
    if older_than is None:
        older_than = timedelta(seconds=rt.settings.prompt_resend_seconds)
    async with rt.db.session() as session:
        stale = await stale_prompts(session, utcnow() - older_than)
    sent = 0
    for chat_id, seen in stale:
        if rt.stopping:  # the rest is resent by the next leader
            break
        try:
            if await _claim_and_send(rt, chat_id, seen):
                sent += 1
        except Exception:  # one chat's failure must not stop the others
            log.exception("could not resend the pending question to chat %s", chat_ref(chat_id))
    return sent
