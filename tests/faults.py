"""Helpers for the fault tests: a TCP proxy that can cut a database off, a harness whose bot
gives up on slow Bot API calls sooner than python-telegram-bot's default 5 s, and a full
disk under SQLite."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from storage.db import Database
from storage.models import ProcessedUpdate
from tests.harness import Harness


class TcpProxy:
    """Forwards connections on 127.0.0.1:`port` to `target_host`:`target_port`.

    `cut()` is the server going away: every open connection is reset and new ones are
    refused (nothing listens on the port any more) until `restore()` listens again on the
    same port. `accepted` counts the connections it forwarded, `killed` those `cut()` reset.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.accepted = 0
        self.killed = 0
        self._server: asyncio.Server | None = None
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def is_cut(self) -> bool:
        return self._server is None

    async def start(self) -> int:
        """Listen (on a free port the first time, on the same port after a cut)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def cut(self) -> int:
        """Reset every open connection and stop listening; returns how many were reset."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        killed = len(self._open)
        for client, upstream in list(self._open):
            client.transport.abort()
            upstream.transport.abort()
        self._open.clear()
        if server is not None:
            await server.wait_closed()
        self.killed += killed
        return killed

    async def restore(self) -> None:
        """Listen again on the same port: new connections reach the server."""
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:  # accepted just before the cut
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        if self.is_cut:  # cut while connecting upstream
            writer.transport.abort()
            up_writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._open.add(pair)
        self.accepted += 1
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._open.discard(pair)
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for side in pair:
                side.transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


class ImpatientHarness(Harness):
    """The harness with a bot that waits `read_timeout` seconds for a Bot API answer (the
    production default is python-telegram-bot's 5 s), so that a test can make calls time
    out without waiting long. getUpdates keeps its own transport and timeouts."""

    read_timeout: float = 2.0

    async def start_bot(self) -> None:
        await super().start_bot()
        assert self.app is not None
        request = self.app.bot.request
        # HTTPXRequest takes its default timeouts from its httpx client on every call.
        client: httpx.AsyncClient = request._client
        client.timeout = httpx.Timeout(5.0, read=self.read_timeout)


class SqliteFull:
    """A full disk under SQLite: while `full`, every new connection of `db`'s engine gets
    `PRAGMA max_page_count` at the database's current size (SQLite never sets it lower), so
    a write that needs one more page fails with SQLITE_FULL, "database or disk is full", the
    error a full disk gives. `fill()` and `make_room()` drop the pooled connections, so that
    the next ones are opened with the limit, or without it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.full = False
        event.listen(db.engine.sync_engine, "connect", self._on_connect)

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        if self.full:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA max_page_count = 1")  # = the current size: no growth
            cursor.close()

    async def fill(self, first_id: int, room: int) -> int:
        """Stop the file from growing, then use up the room left in the pages of
        `processed_update`, which every update's transaction writes: rows like the bot's,
        ids `first_id`, `first_id` + 1, ... (fewer than `room`), until SQLite says the disk
        is full. An update whose id is above all of them, written after them, needs a new
        page, as the last of them did. Returns how many rows fitted."""
        self.full = True
        await self.db.engine.dispose()
        for n in range(room):
            try:
                async with self.db.session() as session:
                    session.add(ProcessedUpdate(update_id=first_id + n))
            except OperationalError as exc:
                assert "database or disk is full" in str(exc), exc
                return n
        raise AssertionError(f"{room} rows fitted: the limit is not in force")

    async def make_room(self) -> None:
        self.full = False
        await self.db.engine.dispose()
