"""Each event takes effect once: its id is stored with its effect, in one transaction.

The channel adapter says which event is being handled (`handling`: a Telegram update's id,
or a web chat post's id); the flow that writes the event's effect calls `claim(session)` in
the same session, so that either both are stored or neither is, and a copy of the event
(Telegram delivering an update again, a form submitted twice) is recognised and dropped
before any flow runs (bot/dedupe.py, bot/web/chat.py).
"""

from __future__ import annotations

from contextvars import ContextVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ProcessedUpdate
from storage.types import utcnow

_pending: ContextVar[int | None] = ContextVar("gradtrack_pending_update", default=None)
_checked: ContextVar[bool] = ContextVar("gradtrack_pending_checked", default=True)


class AlreadyProcessed(Exception):
    """The event being claimed took effect before (a copy): its transaction must not go on."""

    def __init__(self, event_id: int) -> None:
        super().__init__(f"event {event_id} took effect before")
        self.event_id = event_id


def handling(event_id: int | None, *, checked: bool = True) -> None:
    """The event handled now in this task (None: none to record). `checked` False: nobody
    looked whether it took effect before; `claim` does, in the flow's own transaction (one
    round trip and one transaction fewer for the flows that claim first thing: a survey
    answer), and raises AlreadyProcessed for a copy."""
    _pending.set(event_id)
    _checked.set(checked)


def pending() -> int | None:
    """The event being handled whose effect has not been stored yet."""
    return _pending.get()


async def claim(session: AsyncSession) -> None:
    """Record the event being handled as processed, in `session`'s transaction."""
    event_id = _pending.get()
    if event_id is None:
        return
    _pending.set(None)
    if _checked.get():
        session.add(ProcessedUpdate(update_id=event_id))
        return
    # The copy check and the record in one statement: a copy inserts nothing. Should the
    # statement fail (the database is down), nothing is recorded and the event is not
    # handled; its redelivery is.
    bind = session.bind
    dialect = postgresql if bind is not None and bind.dialect.name == "postgresql" else sqlite
    values = {"update_id": event_id, "processed_at": utcnow()}
    result = await session.exec(
        dialect.insert(ProcessedUpdate).values(**values).on_conflict_do_nothing()
    )
    if not result.rowcount:
        raise AlreadyProcessed(event_id)


async def seen(session: AsyncSession, event_id: int) -> bool:
    """Whether event `event_id` took effect before."""
    return await session.get(ProcessedUpdate, event_id) is not None
