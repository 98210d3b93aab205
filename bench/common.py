"""What the delivery benchmarks share: a sandbox in its own process with started chats, a
database (temporary SQLite, or a fresh PostgreSQL database), seeded graduates, and the bot's
runtime wired to both."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import GradtrackApp, build_application
from bot.clock import SystemClock
from bot.runtime import Runtime
from bot.settings import Settings
from conversations.rules import LANGUAGES, new_invite_token
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Graduate, Institution, Invitation, Programme

TOKEN = "7000000099:BENCHbenchBENCHbenchBENCHbench_0123"
CHUNK = 5000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def api(method: str, url: str, **kwargs: Any) -> Any:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kwargs) as response:
        body = await response.json()
        if response.status >= 300:
            raise RuntimeError(body)
        return body["result"]


@dataclass
class Bench:
    sandbox_url: str
    first_user: int
    db: Database
    url: str
    app: GradtrackApp
    rt: Runtime

    async def sent_calls(self, method: str) -> int:
        stats = await api("GET", f"{self.sandbox_url}/sandbox/api/stats")
        return int(stats["ok_calls"].get(method.lower(), 0))


async def _wait_for(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@asynccontextmanager
async def bench(count: int, database_url: str | None) -> AsyncIterator[Bench]:
    """A sandbox process with `count` started chats, a migrated database, the runtime."""
    port = free_port()
    sandbox = subprocess.Popen(  # noqa: ASYNC220 (once, before anything is measured)
        [
            sys.executable,
            "-m",
            "bot.sandbox",
            "--port",
            str(port),
            "--token",
            TOKEN,
            "--username",
            "bench_bot",
            "--no-rate-limits",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tmp = tempfile.TemporaryDirectory()
    name = f"gt_bench_{uuid.uuid4().hex[:8]}"
    admin = make_url(database_url).set(drivername="postgresql") if database_url else None
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_for(f"{base}/sandbox/api/bots")
        users = await api(
            "POST", f"{base}/sandbox/api/bots/bench_bot/started_users", json={"count": count}
        )
        if admin is not None:
            conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
            await conn.execute(f'CREATE DATABASE "{name}"')
            await conn.close()
            url = admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
                hide_password=False
            )
        else:
            url = f"sqlite+aiosqlite:///{tmp.name}/bench.sqlite3"
        await upgrade(url)
        db = Database(url)
        settings = Settings(database_url=url, telegram_bot_token="", _env_file=None)
        app = build_application(
            settings,
            db,
            token=TOKEN,
            base_url=f"{base}/bot",
            rate_limiter=False,
            clock=SystemClock(),
        )
        await app.initialize()
        try:
            yield Bench(base, users["first_id"], db, url, app, app.bot_data["gradtrack"])
        finally:
            await app.shutdown()
            await db.dispose()
    finally:
        sandbox.terminate()
        sandbox.wait(10)
        if admin is not None:
            conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()
        tmp.cleanup()


async def seed_graduates(
    db: Database, first_user: int, count: int, *, onboarded: bool = True
) -> tuple[int, list[int]]:
    """A school and `count` graduates with a started chat who consented to everything;
    returns the school's id and the graduates' ids. `onboarded=False`: graduates as a roster
    import leaves them (no chat, no language, no consent yet), born in 2000 (no guardian step),
    who go through onboarding on their invite token."""
    now = datetime.now(UTC)
    async with db.session() as session:
        school = Institution(
            code="bench",
            name="Bench College",
            country="NL",
            default_language="nl",
            timezone="UTC",
        )
        session.add(school)
        await session.flush()
        programme = Programme(institution_id=school.id or 0, code="ICT4", name="ICT", eqf_level=4)
        session.add(programme)
        await session.flush()
        school_id, programme_id = school.id or 0, programme.id
    for start in range(0, count, CHUNK):
        rows = [
            {
                "institution_id": school_id,
                "programme_id": programme_id,
                "student_ref": f"b{i}",
                "graduation_date": date(2026, 6, 30),
                "language": LANGUAGES[i % len(LANGUAGES)] if onboarded else None,
                "birth_year": None if onboarded else 2000,
                "self_registered": False,
                "chat_id": first_user + i if onboarded else None,
                "invite_token": new_invite_token(),
                "consent_survey": True if onboarded else None,
                "consent_followup": True if onboarded else None,
                "consent_news": True if onboarded else None,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(start, min(start + CHUNK, count))
        ]
        async with db.session() as session:
            await session.execute(insert(Graduate), rows)
    async with db.session() as session:
        ids = list((await session.exec(select(Graduate.id).order_by(col(Graduate.id)))).all())
    return school_id, [i for i in ids if i is not None]


async def invitations_due_now(db: Database, graduate_ids: list[int]) -> None:
    """One invitation (m2, tracking) due a minute ago for each graduate."""
    now = datetime.now(UTC)
    for start in range(0, len(graduate_ids), CHUNK):
        rows = [
            {
                "graduate_id": graduate_id,
                "wave": "m2",
                "form_id": "tracking",
                "seq": 0,
                "due_at": now - timedelta(minutes=1),
                "closes_at": now + timedelta(days=30),
                "status": "pending",
                "attempts": 0,
            }
            for graduate_id in graduate_ids[start : start + CHUNK]
        ]
        async with db.session() as session:
            await session.execute(insert(Invitation), rows)


def machine() -> str:
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def command_line(
    description: str | None,
    run: Callable[[int, float, str | None], Coroutine[Any, Any, None]],
) -> None:
    """The delivery benchmarks' options: --count, --rate, --database-url."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    asyncio.run(run(args.count, args.rate, args.database_url))
