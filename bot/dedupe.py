"""Each Telegram update takes effect once, even when Telegram delivers it again.

Telegram redelivers an update when a webhook call failed or polling did not confirm it (a
crash, a restart). The update's id is written to `processed_update` in the same transaction as
the update's effect (`claim` in the handler's session), so that either both are stored or
neither is. A redelivered update whose id is stored is dropped before any handler runs.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Update
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.runtime import runtime
from storage.models import ProcessedUpdate
from storage.types import MAX_BIGINT

log = logging.getLogger(__name__)

_pending: ContextVar[int | None] = ContextVar("gradtrack_pending_update", default=None)
_unchecked: ContextVar[int | None] = ContextVar("gradtrack_unchecked_update", default=None)


async def skip_processed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """First handler of every update: drop it if it took effect before."""
    if not 0 < update.update_id <= MAX_BIGINT:  # forged: Telegram's ids are positive int64
        _pending.set(None)
        log.warning("update %s: an id no Telegram update has; dropped", update.update_id)
        raise ApplicationHandlerStop
    rt = runtime(context)
    try:
        async with rt.db.session() as session:
            seen = await session.get(ProcessedUpdate, update.update_id)
    except Exception:
        _pending.set(None)
        _unchecked.set(update.update_id)  # the error handler stops the update (bot.app)
        raise
    if seen is not None:
        _pending.set(None)
        log.info("update %s was delivered again; it took effect already", update.update_id)
        raise ApplicationHandlerStop
    _pending.set(update.update_id)


def check_failed(update_id: int) -> bool:
    """Whether the duplicate check of update `update_id` failed (the database is down)."""
    return _unchecked.get() == update_id


async def claim(session: AsyncSession) -> None:
    """Record the update being handled as processed, in `session`'s transaction."""
    update_id = _pending.get()
    if update_id is None:
        return
    session.add(ProcessedUpdate(update_id=update_id))
    _pending.set(None)


async def claim_leftover(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Last handler: an update whose handler wrote nothing is recorded on its own."""
    if _pending.get() is None:
        return
    async with runtime(context).db.session() as session:
        await claim(session)
