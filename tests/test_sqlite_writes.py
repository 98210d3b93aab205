"""Several chats answered side by side behind the webhook, on SQLite: their writes take turns
in the process instead of waiting for each other in SQLite's busy handler (issue 14)."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection
from telegram.ext import Application

from storage.db import write_lock
from tests.harness import Harness, Webhook

CHATS = 6
_WRITES = ("INSERT", "UPDATE", "DELETE")


class Counter:
    """SQL statements per processed update, and writes that found another transaction
    holding SQLite's write lock (the writer waits for it in SQLite's busy handler)."""

    def __init__(self) -> None:
        self.update: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
            "test_update_statements", default=None
        )
        self.per_update: list[int] = []
        self.writing: set[object] = set()
        self.contended = 0

    def statement(self, conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        counter = self.update.get()
        if counter is not None:
            counter[0] += 1
        dbapi = conn.connection.dbapi_connection
        if statement.lstrip().upper().startswith(_WRITES) and dbapi not in self.writing:
            # This transaction's first write: SQLite lets it through only once no other
            # connection has an uncommitted write.
            if self.writing:
                self.contended += 1
            self.writing.add(dbapi)

    def ended(self, conn: Connection) -> None:
        self.writing.discard(conn.connection.dbapi_connection)

    def reset(self) -> None:
        self.per_update.clear()
        self.contended = 0

    @property
    def mean(self) -> float:
        return sum(self.per_update) / len(self.per_update)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_chats_answered_side_by_side_cost_what_one_at_a_time_costs(
    harness: Harness, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    counter = Counter()
    engine = h.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", counter.statement)
    event.listen(engine, "commit", counter.ended)
    event.listen(engine, "rollback", counter.ended)
    original = Application.process_update

    async def counted(self: Any, update: object) -> None:
        statements = [0]
        token = counter.update.set(statements)
        try:
            await original(self, update)
        finally:
            counter.update.reset(token)
            counter.per_update.append(statements[0])

    monkeypatch.setattr(Application, "process_update", counted)
    school = await h.school()

    # One chat at a time: each graduate opens their invitation, picks English, consents.
    for _ in range(CHATS):
        await h.consenting_graduate(school=school)
    one_at_a_time, updates = counter.mean, len(counter.per_update)
    assert updates == CHATS * 5 and counter.contended == 0

    # The same for CHATS other graduates at once: the webhook handles their chats side by side.
    counter.reset()
    await asyncio.gather(*(h.consenting_graduate(school=school) for _ in range(CHATS)))
    assert len(counter.per_update) == updates
    # No retries, nothing done twice: an answer costs the same statements either way.
    assert counter.mean <= one_at_a_time + 1
    # Before, ~60 of these writes found another chat's transaction holding SQLite's write
    # lock and waited in SQLite's busy handler (sleeps of up to 100 ms at a time); now they
    # wait their turn in the process and start the moment the other transaction is done.
    assert counter.contended == 0
    lock = write_lock(h.db.engine)
    assert lock is not None and lock.waits > 0  # they did overlap, and took turns
