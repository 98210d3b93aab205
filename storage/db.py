"""Database engine and sessions, for SQLite (default) and PostgreSQL (production).

SQLite lets one connection write at a time: a second writer waits in SQLite's busy handler,
which polls with growing sleeps (1 ms up to 100 ms each) until the first commits. With several
updates handled side by side (the webhook), such waits added up to a second and more per
answer. So on SQLite the engine lets one transaction of this process write at a time
(`WriteLock`): a transaction's first write waits, in asyncio, until the transaction that
writes now has committed or rolled back, and starts as soon as it has. Reads do not wait (WAL).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_
from sqlmodel.ext.asyncio.session import AsyncSession


def normalise_url(url: str) -> str:
    """Accept the URLs platforms hand out (postgres://, postgresql://, sqlite:///) and pick
    the async drivers we ship."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


#: How long a write waits for this process's other writer: SQLite's own busy timeout.
WRITE_WAIT_SECONDS = 10.0
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def _writes(statement: str) -> bool:
    word = statement.lstrip()[:7].upper()
    return word.startswith(_WRITES) or (word.startswith("WITH") and "RETURNING" in statement)


class WriteLock:
    """One writing transaction at a time on an SQLite engine of this process (see the module
    docstring). Held from a transaction's first write until its commit or rollback; other
    transactions' reads go on meanwhile. SQLite's file lock (and its busy timeout) still
    orders writers of other processes."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._holder: object | None = None
        #: Writes that waited for another transaction of this process (for the benchmarks).
        self.waits = 0

    def install(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before_execute)
        # Released once the commit or rollback is done (the dialect's, which the pool's reset
        # of a returned connection uses too), so that the next writer finds the file free.
        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi: Any) -> None:
            try:
                commit(dbapi)
            finally:
                self._release(dbapi)

        def do_rollback(dbapi: Any) -> None:
            try:
                rollback(dbapi)
            finally:
                self._release(dbapi)

        dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]
        dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]
        for name in ("close", "invalidate"):
            event.listen(engine.pool, name, self._connection_ended)

    def _before_execute(self, conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        dbapi = conn.connection.dbapi_connection
        if dbapi is None or dbapi is self._holder or not _writes(statement):
            return
        if self._lock.locked():
            self.waits += 1
        try:
            # Inside SQLAlchemy's greenlet: wait on the event loop, other tasks run meanwhile.
            await_(asyncio.wait_for(self._lock.acquire(), WRITE_WAIT_SECONDS))
        except TimeoutError as exc:
            raise sqlite3.OperationalError("database is locked") from exc
        self._holder = dbapi

    def _release(self, dbapi: object) -> None:
        dbapi = getattr(dbapi, "dbapi_connection", dbapi)  # a pool's proxy of it
        if dbapi is not None and dbapi is self._holder:
            self._holder = None
            self._lock.release()

    def _connection_ended(self, dbapi: object, *_: Any) -> None:
        self._release(dbapi)


def write_lock(engine: AsyncEngine) -> WriteLock | None:
    """The engine's write lock (SQLite), or None (PostgreSQL: row locks, no such wait)."""
    found = engine.sync_engine.__dict__.get("_gradtrack_write_lock")
    return found if isinstance(found, WriteLock) else None


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url`, with the per-dialect settings gradtrack relies on."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        lock = WriteLock()
        lock.install(engine.sync_engine)
        engine.sync_engine.__dict__["_gradtrack_write_lock"] = lock
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # A server that does not answer fails a connection attempt after 10 s (asyncpg waits 60),
    # so the person hears "try again" soon; the pool replaces broken connections (pre-ping).
    kwargs.setdefault("connect_args", {"timeout": 10})
    return create_async_engine(url, **kwargs)


class Database:
    """One engine and a session factory; pass it to whatever needs the database."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = normalise_url(url)
        self.engine = create_engine(self.url, **engine_kwargs)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits when the block ends and rolls back on error.
        What was handed to `after_sessions` meanwhile runs once the outermost session of
        this task has ended."""
        depth = _depth.get()
        depth_token = _depth.set(depth + 1)
        deferred_token = _deferred.set([]) if depth == 0 else None
        try:
            async with self._sessions() as session:
                try:
                    yield session
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
        finally:
            _depth.reset(depth_token)
            if deferred_token is not None:
                deferred = _deferred.get() or []
                _deferred.reset(deferred_token)
                for work in deferred:
                    try:
                        await work()
                    except Exception:
                        _log.warning("work deferred to the end of a session failed", exc_info=True)

    async def dispose(self) -> None:
        await self.engine.dispose()


_log = logging.getLogger(__name__)
_depth: ContextVar[int] = ContextVar("gradtrack_session_depth", default=0)
_deferred: ContextVar[list[Callable[[], Awaitable[None]]] | None] = ContextVar(
    "gradtrack_after_sessions", default=None
)


def session_open() -> bool:
    """Whether this task is inside a `Database.session()` block."""
    return _depth.get() > 0


def after_sessions(work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` when this task's outermost session has ended (committed or not): for
    writes that must not wait for that session's transaction (on SQLite a second writer
    waits for the first) nor go into it. Runs `work` later only inside a session."""
    deferred = _deferred.get()
    if deferred is None:
        raise RuntimeError("after_sessions outside a session")
    deferred.append(work)
