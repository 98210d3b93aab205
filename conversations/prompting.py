"""Sending the open question of a chat, whatever the conversation (onboarding, survey).

Each flow registers a renderer: given the chat's state, in the chat's language, it returns
the question to send. `send_prompt` sends it and then marks it sent. A question that was
decided (state committed with `prompt_pending`) but never marked sent, because of a crash or
a failure of Telegram, is sent by `resend_pending_prompts`: at start, and every few seconds
by the scheduler leader. It takes only questions left untouched for
`PROMPT_RESEND_SECONDS` (so not one a live handler is about to send) and claims each before
sending it, so that processes starting at once do not both send it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, Forbidden
from telegram.ext import ContextTypes

from bot.i18n import set_language, use_language
from bot.logs import chat_ref
from bot.runtime import Runtime, mark_unreachable, runtime
from conversations.rules import choose_language
from storage.models import ChatState, Graduate
from storage.queries import (
    claim_prompt,
    get_chat_state,
    graduate_by_chat,
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
    keyboard: InlineKeyboardMarkup | None = None
    preface: tuple[str, ...] = ()


Renderer = Callable[[Runtime, ChatState], Awaitable[Prompt | None]]
_renderers: dict[str, Renderer] = {}


def register(flow: str, renderer: Renderer) -> None:
    _renderers[flow] = renderer


async def use_chat_language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Graduate | None:
    """Set this update's language from the chat's state, the graduate or Telegram."""
    rt = runtime(context)
    assert update.effective_chat is not None
    async with rt.db.session() as session:
        state = await get_chat_state(session, update.effective_chat.id)
        graduate = await graduate_by_chat(session, update.effective_chat.id)
        session.add(state)
    tg_language = update.effective_user.language_code if update.effective_user else None
    set_language(
        choose_language(
            state.language or (graduate.language if graduate else None), tg_language, None
        )
    )
    return graduate


async def close_question(query: CallbackQuery, label: str | None) -> None:
    """Show the chosen answer under the question (or just remove its buttons when there is
    no label or text), so that an answered question cannot be answered again."""
    text = getattr(query.message, "text", None)
    try:
        if label and text:
            await query.edit_message_text(f"{text}\n\n→ {label}")
        else:
            await query.edit_message_reply_markup(None)
    except BadRequest as exc:  # already edited (a duplicate press) or too old
        log.debug("question not closed: %s", exc)


async def send_prompt(rt: Runtime, chat_id: int) -> None:
    """Send the chat's current question, then mark it sent."""
    async with rt.db.session() as session:
        state = await get_chat_state(session, chat_id)
        graduate = await session.get(Graduate, state.graduate_id) if state.graduate_id else None
        language = state.language or (graduate.language if graduate else None)
    flow = state.flow
    renderer = _renderers.get(flow)
    sent: Message | None = None
    with use_language(language):
        prompt = await renderer(rt, state) if renderer else None
        if prompt is not None:
            try:
                for text in prompt.preface:
                    await rt.bot.send_message(chat_id, text)
                sent = await rt.bot.send_message(chat_id, prompt.text, reply_markup=prompt.keyboard)
            except Forbidden as exc:
                await mark_unreachable(rt, chat_id, exc)
    async with rt.db.session() as session:
        state = await get_chat_state(session, chat_id)
        state.prompt_pending = False
        if sent is not None and prompt is not None and prompt.keyboard and state.flow == flow:
            # Remembered so that a language change can take the old buttons away.
            state.data = {**state.data, PROMPT_MESSAGE: sent.message_id}
            touch_state(state)
        session.add(state)


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
            await rt.bot.edit_message_reply_markup(chat_id, old_message, reply_markup=None)
        except BadRequest as exc:  # already without buttons, or too old to edit
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
        try:
            async with rt.db.session() as session:
                if not await claim_prompt(session, chat_id, seen):
                    continue  # another process took it, or the person moved on
            await send_prompt(rt, chat_id)
            sent += 1
        except Exception:  # one chat's failure must not stop the others
            log.exception("could not resend the pending question to chat %s", chat_ref(chat_id))
    return sent
