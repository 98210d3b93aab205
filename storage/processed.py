"""Each event takes effect once: its id is stored with its effect, in one transaction.

The channel adapter says which event is being handled (`handling`: a Telegram update's id,
or a web chat post's id); the flow that writes the event's effect calls `claim(session)` in
the same session, so that either both are stored or neither is, and a copy of the event
(Telegram delivering an update again, a form submitted twice) is recognised and dropped
before any flow runs (bot/dedupe.py, bot/web/chat.py).
"""

from __future__ import annotations

from contextvars import ContextVar

from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ProcessedUpdate

_pending: ContextVar[int | None] = ContextVar("gradtrack_pending_update", default=None)


def handling(event_id: int | None) -> None:
    """The event handled now in this task (None: none to record)."""
    _pending.set(event_id)


def pending() -> int | None:
    """The event being handled whose effect has not been stored yet."""
    return _pending.get()


async def claim(session: AsyncSession) -> None:
    """Record the event being handled as processed, in `session`'s transaction."""
    event_id = _pending.get()
    if event_id is None:
        return
    session.add(ProcessedUpdate(update_id=event_id))
    _pending.set(None)


async def seen(session: AsyncSession, event_id: int) -> bool:
    """Whether event `event_id` took effect before."""
    return await session.get(ProcessedUpdate, event_id) is not None
