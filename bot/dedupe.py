"""Each Telegram update takes effect once, even when Telegram delivers it again.

Telegram redelivers an update when a webhook call failed or polling did not confirm it (a
crash, a restart). The update's id is written to `processed_update` in the same transaction as
the update's effect (`claim` in the handler's session), so that either both are stored or
neither is. A redelivered update whose id is stored is dropped before any handler runs.

Telegram redelivers an update when the process handling it died (SIGKILL, a crash) before
answering; the update may have taken effect, its next question decided but not sent. So a
dropped copy sends the chat's pending question, if any, at once (claimed: once, however many
copies or processes), instead of leaving the person waiting for the prompts job
(PROMPT_RESEND_SECONDS).

A survey button press (the most frequent update) is not checked here: the survey's handler
claims it first thing in its own transaction, and that claim is the check (storage.processed:
one INSERT that a copy finds done), so an answer costs one transaction and one round trip
less. A copy found there is dropped in the same way (`drop_copy`).
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar

from telegram import Update
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.logs import chat_ref
from bot.runtime import Runtime, runtime
from conversations.prompting import send_pending_question
from conversations.survey import CALLBACK_PATTERN
from storage.processed import claim, handling, pending, seen
from storage.types import MAX_BIGINT

__all__ = ["check_failed", "claim", "claim_leftover", "drop_copy", "skip_processed"]

log = logging.getLogger(__name__)

_unchecked: ContextVar[int | None] = ContextVar("gradtrack_unchecked_update", default=None)

#: Updates whose handler claims them before anything else (conversations/survey.on_button):
#: their copy check is that claim.
_CLAIMED_FIRST = re.compile(CALLBACK_PATTERN)


def _claimed_first(update: Update) -> bool:
    query = update.callback_query
    return query is not None and bool(_CLAIMED_FIRST.match(query.data or ""))


async def skip_processed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """First handler of every update: drop it if it took effect before."""
    if not 0 < update.update_id <= MAX_BIGINT:  # forged: Telegram's ids are positive int64
        handling(None)
        log.warning("update %s: an id no Telegram update has; dropped", update.update_id)
        raise ApplicationHandlerStop
    if _claimed_first(update):
        handling(update.update_id, checked=False)
        return
    rt = runtime(context)
    try:
        async with rt.db.session() as session:
            done = await seen(session, update.update_id)
    except Exception:
        handling(None)
        _unchecked.set(update.update_id)  # the error handler stops the update (bot.app)
        raise
    if done:
        handling(None)
        log.info("update %s was delivered again; it took effect already", update.update_id)
        await _send_left_pending(rt, update)
        raise ApplicationHandlerStop
    handling(update.update_id)


async def drop_copy(rt: Runtime, update: Update) -> None:
    """`update`'s handler found, claiming it, that it took effect before: dropped, as a copy
    found by `skip_processed` is."""
    handling(None)
    log.info("update %s was delivered again; it took effect already", update.update_id)
    await _send_left_pending(rt, update)


async def _send_left_pending(rt: Runtime, update: Update) -> None:
    """The question the first handling of `update` may have left unsent, sent now."""
    if update.effective_chat is None:
        return
    chat_id = update.effective_chat.id
    try:
        if await send_pending_question(rt, chat_id):
            log.info(
                "update %s: sent the question left pending in chat %s",
                update.update_id,
                chat_ref(chat_id),
            )
    except Exception:  # the prompts job sends it later; the copy is dropped all the same
        log.warning(
            "could not send the pending question of chat %s", chat_ref(chat_id), exc_info=True
        )


def check_failed(update_id: int) -> bool:
    """Whether the duplicate check of update `update_id` failed (the database is down)."""
    return _unchecked.get() == update_id


async def claim_leftover(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Last handler: an update whose handler wrote nothing is recorded on its own."""
    if pending() is None:
        return
    async with runtime(context).db.session() as session:
        await claim(session)
