"""Real databases for the tests: SQLite files and a real PostgreSQL server.

PostgreSQL comes from TEST_DATABASE_URL (default: the server at 127.0.0.1:5432, database
`test`). Where no server answers, a throwaway cluster is started with initdb (as the
`postgres` user when we are root, since initdb refuses root). Where that is impossible too,
the PostgreSQL runs are skipped with a message, except in CI (CI=true), where it is a failure.

Each test gets its own database, cloned from a template that was migrated once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from storage.migrate import upgrade

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _asyncpg_dsn(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


async def _can_connect(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary directory, stopped and removed at the end."""

    directory: Path
    port: int
    bindir: Path
    user: str | None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.directory / "server.log"

    def _run(self, *args: str) -> None:
        command = list(args)
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        data = self.directory / "data"
        self._run(str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self) -> None:
        try:
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-m",
                "immediate",
                "stop",
            )
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def start_throwaway_cluster() -> ThrowawayCluster | str:
    """Start a private cluster, or say why that is impossible."""
    candidates = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = shutil.which("initdb") or (candidates[-1] if candidates else None)
    if not initdb:
        return "no initdb found (install Debian's postgresql package)"
    user: str | None = None
    directory = Path(tempfile.mkdtemp(prefix="gradtrack-pg-"))
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            user = name
            os.chown(directory, entry.pw_uid, entry.pw_gid)
            break
        else:
            return "running as root and no unprivileged user to run initdb as"
    cluster = ThrowawayCluster(directory, _free_port(), Path(initdb).parent, user)
    try:
        cluster.start()
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(directory, ignore_errors=True)
        return f"could not start a throwaway cluster: {exc}"
    return cluster


class PostgresProvider:
    """Hands out fresh, migrated PostgreSQL databases; one template per test session."""

    def __init__(self, admin_url: str, cluster: ThrowawayCluster | None = None) -> None:
        self.admin_url = admin_url
        self.cluster = cluster
        self.template = f"gt_tpl_{uuid.uuid4().hex[:10]}"
        self.created: list[str] = []
        self._template_ready = False

    def url_for(self, database: str) -> str:
        parsed = make_url(self.admin_url).set(drivername="postgresql+asyncpg", database=database)
        return parsed.render_as_string(hide_password=False)

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(self.admin_url), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def fresh_database(self) -> str:
        if not self._template_ready:
            await self._admin(f'CREATE DATABASE "{self.template}"')
            await upgrade(self.url_for(self.template))
            self._template_ready = True
        name = f"gt_{uuid.uuid4().hex[:12]}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return self.url_for(name)

    async def empty_database(self) -> str:
        name = f"gt_{uuid.uuid4().hex[:12]}"
        await self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url_for(name)

    async def drop(self, url: str) -> None:
        name = make_url(url).database
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def close(self) -> None:
        for name in [*self.created, self.template]:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self.cluster is not None:
            self.cluster.stop()


async def find_postgres() -> PostgresProvider | str:
    """A provider on TEST_DATABASE_URL, the local server, or a throwaway cluster; else why not."""
    url = os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_URL
    problem = await _can_connect(url)
    if problem is None:
        return PostgresProvider(url)
    cluster = await asyncio.to_thread(start_throwaway_cluster)
    if isinstance(cluster, str):
        return f"PostgreSQL at {url} does not answer ({problem}), and {cluster}"
    return PostgresProvider(cluster.url, cluster)


class SqliteProvider:
    """Fresh migrated SQLite files, copied from a template migrated once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.template = directory / "template.sqlite3"
        self._ready = False

    async def fresh_database(self) -> str:
        if not self._ready:
            await upgrade(f"sqlite+aiosqlite:///{self.template}")
            self._ready = True
        target = self.directory / f"gt_{uuid.uuid4().hex[:12]}.sqlite3"
        shutil.copyfile(self.template, target)
        return f"sqlite+aiosqlite:///{target}"

    async def empty_database(self) -> str:
        return f"sqlite+aiosqlite:///{self.directory / f'gt_{uuid.uuid4().hex[:12]}.sqlite3'}"
