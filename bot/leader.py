"""One scheduler leader among the processes that share a PostgreSQL database.

Several `gradtrack serve` processes may share one PostgreSQL database; only one of them (the
leader) runs the dispatcher jobs. Leadership is a session-level advisory lock,
`pg_try_advisory_lock(LOCK_KEY)`, held on a connection of its own (not one of the engine's
pooled connections, which go back to the pool and would take the lock with them):

- A follower tries to take the lock every `retry_seconds`. The lock is the session's: when
  the leader's process dies (even by SIGKILL) its connection closes, PostgreSQL ends the
  session and frees the lock, and a follower takes it at its next try. When the leader's
  host or network fails silently, the server's TCP keepalives (asked for on the lock
  connection) end the session within about 20 seconds.
- The leader runs `SELECT 1` on its lock connection every `check_seconds`, with a `timeout`.
  When that fails (the connection was lost, so the lock may be someone else's by now), it
  steps down at once: the scheduler pauses the jobs and stops the work in progress. Until it
  notices, at most `check_seconds + timeout`, the claims on the rows (see
  storage/invitations.py) keep the old and the new leader from sending the same message.
- SQLite is one process by design: that process is always the leader.

The lock needs a real session: behind PgBouncer, DATABASE_URL must use session pooling (in
transaction pooling a session-level advisory lock is not held by anyone in particular).

Leadership changes are logged ("scheduler leader: this process (pid …)" / "stepped down"),
and `current_leader` says which process leads (its lock connection's application_name).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import text

from storage.db import Database

log = logging.getLogger(__name__)

LOCK_NAME = "gradtrack-scheduler"
#: The advisory lock's key: a constant 64-bit number derived from LOCK_NAME. Advisory locks
#: belong to one database, so several gradtrack databases on one server do not interfere.
LOCK_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)

RETRY_SECONDS = 5.0
CHECK_SECONDS = 5.0
TIMEOUT_SECONDS = 5.0

#: Asked of the server for the lock connection: find a silently dead leader within
#: idle + interval * count = 20 seconds (the server's defaults are the OS's, often 2 hours).
KEEPALIVES = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}

OnChange = Callable[[bool], Awaitable[None] | None]


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    """Whether this process is the scheduler leader; `check` once, or `run` to keep checking."""

    def __init__(
        self,
        db: Database,
        *,
        retry_seconds: float = RETRY_SECONDS,
        check_seconds: float = CHECK_SECONDS,
        timeout: float = TIMEOUT_SECONDS,
        key: int = LOCK_KEY,
        name: str | None = None,
    ) -> None:
        self.db = db
        self.retry_seconds = retry_seconds
        self.check_seconds = check_seconds
        self.timeout = timeout
        self.key = key
        self.name = name or process_name()
        self.is_leader = False
        self._conn: asyncpg.Connection | None = None
        self._failing = False
        self._announced_follower = False

    @property
    def shared(self) -> bool:
        """Several processes may share the database (PostgreSQL): leadership is a lock."""
        return self.db.dialect == "postgresql"

    @property
    def application_name(self) -> str:
        return f"{LOCK_NAME} {self.name}"[:63]

    async def check(self) -> bool:
        """One round: a follower tries to take the lock, the leader makes sure its lock
        connection is alive (else it steps down). Returns whether this process leads."""
        if not self.shared:
            if not self.is_leader:
                self.is_leader = True
                log.info(
                    "scheduler leader: this process (pid %d, %s; %s: always the leader)",
                    os.getpid(),
                    self.name,
                    self.db.dialect,
                )
            return True
        try:
            if self.is_leader:
                assert self._conn is not None
                await self._conn.fetchval("SELECT 1", timeout=self.timeout)
            else:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await self._connect()
                taken = await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", self.key, timeout=self.timeout
                )
                if taken:
                    self.is_leader = True
                    self._announced_follower = False
                    log.info("scheduler leader: this process (pid %d, %s)", os.getpid(), self.name)
                elif not self._announced_follower:
                    self._announced_follower = True
                    log.info(
                        "scheduler follower: this process (pid %d) waits; the leader is %s; "
                        "trying again every %gs",
                        os.getpid(),
                        await self._holder() or "unknown",
                        self.retry_seconds,
                    )
            if self._failing:
                self._failing = False
                log.info("scheduler lock connection is back")
        except Exception as exc:  # the lock connection is gone or hangs: never lead blind
            self._lost(exc)
        return self.is_leader

    async def run(self, on_change: OnChange | None = None) -> None:
        """Check forever: every `check_seconds` while leading, every `retry_seconds` while
        following; `on_change(is_leader)` after each change. Cancel the task to stop."""
        leading = False
        while True:
            now = await self.check()
            if now != leading:
                leading = now
                if on_change is not None:
                    try:
                        result = on_change(now)
                        if result is not None:
                            await result
                    except Exception:
                        log.exception("scheduler leadership change could not be applied")
            await asyncio.sleep(self.check_seconds if now else self.retry_seconds)

    async def release(self) -> None:
        """Give the lock back and close the lock connection (a graceful stop)."""
        conn, self._conn = self._conn, None
        was_leader, self.is_leader = self.is_leader, False
        if conn is None:
            return
        try:
            if was_leader:
                await conn.execute("SELECT pg_advisory_unlock($1)", self.key, timeout=self.timeout)
            await asyncio.wait_for(conn.close(), self.timeout)
        except Exception:
            conn.terminate()
        if was_leader:
            log.info("scheduler leader: stepped down (pid %d): this process stops", os.getpid())

    def terminate(self) -> None:
        """Close the lock connection now, without waiting (from synchronous code): the
        server ends the session, which frees the lock."""
        conn, self._conn = self._conn, None
        was_leader, self.is_leader = self.is_leader, False
        if conn is not None and not conn.is_closed():
            conn.terminate()
        if was_leader and self.shared:
            log.info("scheduler leader: stepped down (pid %d): this process stops", os.getpid())

    # -- internals -------------------------------------------------------------------------

    async def _connect(self) -> asyncpg.Connection:
        engine = self.db.engine
        _args, params = engine.dialect.create_connect_args(engine.url)
        params = {k: v for k, v in params.items() if not k.startswith("prepared_statement_")}
        named = {"application_name": self.application_name}
        connection: asyncpg.Connection
        try:
            connection = await asyncpg.connect(
                **params, timeout=self.timeout, server_settings={**KEEPALIVES, **named}
            )
        except asyncpg.PostgresError as exc:
            # A connection pooler in front of PostgreSQL (PgBouncer) may refuse startup
            # parameters it does not know: without the keepalives, then.
            log.info("scheduler lock: connecting without TCP keepalive settings (%s)", exc)
            connection = await asyncpg.connect(
                **params, timeout=self.timeout, server_settings=named
            )
        return connection

    async def _holder(self) -> str | None:
        assert self._conn is not None
        name: str | None = await self._conn.fetchval(
            HOLDER_SQL.format(key="$1"), self.key, timeout=self.timeout
        )
        return name

    def _lost(self, exc: BaseException) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()  # whatever state it is in, the server frees our lock with it
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        if self.is_leader:
            self.is_leader = False
            log.warning(
                "scheduler leader: stepped down (pid %d): the lock connection failed (%s)",
                os.getpid(),
                reason,
            )
        elif not self._failing:
            log.warning("scheduler lock: cannot reach the database (%s); retrying", reason)
        self._failing = True


HOLDER_SQL = """
SELECT a.application_name
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = (CAST({key} AS bigint) >> 32) & 4294967295
  AND l.objid::bigint = CAST({key} AS bigint) & 4294967295
  AND l.objsubid = 1
LIMIT 1
"""


async def current_leader(db: Database, key: int = LOCK_KEY) -> str | None:
    """The application_name of the scheduler leader's lock connection ("gradtrack-scheduler
    HOST:PID"), or None when nobody leads; on SQLite, None (the one process leads)."""
    if db.dialect != "postgresql":
        return None
    async with db.engine.connect() as conn:
        result = await conn.execute(text(HOLDER_SQL.format(key=":key")), {"key": key})
        name: Any = result.scalar()
    return str(name) if name is not None else None
