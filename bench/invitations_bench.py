"""Benchmark: claiming and sending many due invitations through the sandbox.

The sandbox runs in its own process (so the CPU time measured here is ours alone); N
graduates with a started chat each have an invitation due now; one dispatcher claims and
sends them all at the configured bulk rate. Reported: total time against the time the
configured rate needs (the ratio; 1.00 is perfect), our CPU time per invitation, our peak
memory, and the sandbox's count of sendMessage calls (duplicates = calls - N).

    .venv/bin/python bench/invitations_bench.py [--count 100000] [--rate 500]
        [--database-url postgresql://postgres@127.0.0.1:5432/test]

Without --database-url a temporary SQLite file is used. With a PostgreSQL URL, the bench
creates and drops its own database next to the one named.
"""

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
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import build_application
from bot.clock import SystemClock
from bot.delivery import RateLimiter, dispatch_due
from bot.runtime import Runtime
from bot.settings import Settings
from conversations.rules import LANGUAGES, new_invite_token
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Graduate, Institution, Invitation, Programme

TOKEN = "7000000099:BENCHbenchBENCHbenchBENCHbench_0123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(url: str) -> None:
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


async def api(method: str, url: str, **kwargs: Any) -> Any:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kwargs) as response:
        body = await response.json()
        if response.status >= 300:
            raise RuntimeError(body)
        return body["result"]


async def seed(db: Database, first_user: int, count: int) -> None:
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
        school_id, programme_id = school.id, programme.id
    chunk = 5000
    for start in range(0, count, chunk):
        graduates = [
            {
                "institution_id": school_id,
                "programme_id": programme_id,
                "student_ref": f"b{i}",
                "graduation_date": date(2026, 6, 30),
                "language": LANGUAGES[i % len(LANGUAGES)],
                "self_registered": False,
                "chat_id": first_user + i,
                "invite_token": new_invite_token(),
                "consent_survey": True,
                "consent_followup": True,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(start, min(start + chunk, count))
        ]
        async with db.session() as session:
            await session.execute(insert(Graduate), graduates)
    async with db.session() as session:
        ids = list((await session.exec(select(Graduate.id).order_by(col(Graduate.id)))).all())
    for start in range(0, len(ids), chunk):
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
            for graduate_id in ids[start : start + chunk]
        ]
        async with db.session() as session:
            await session.execute(insert(Invitation), rows)


async def run(count: int, rate: float, database_url: str | None) -> None:
    port = free_port()
    sandbox = subprocess.Popen(  # noqa: ASYNC220 (started once, before any measurement)
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
    admin_url = None
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_for(f"{base}/sandbox/api/bots")
        users = await api(
            "POST", f"{base}/sandbox/api/bots/bench_bot/started_users", json={"count": count}
        )
        if database_url:
            admin_url = database_url
            name = f"gt_bench_{uuid.uuid4().hex[:8]}"
            admin = make_url(database_url).set(drivername="postgresql")
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
        await seed(db, users["first_id"], count)
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
        rt: Runtime = app.bot_data["gradtrack"]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        report = await dispatch_due(
            rt, limiter=RateLimiter(rate, burst=10), batch=1000, concurrency=8
        )
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        await app.shutdown()
        await db.dispose()
        stats = await api("GET", f"{base}/sandbox/api/stats")
        sent_calls = int(stats["ok_calls"].get("sendmessage", 0))
    finally:
        sandbox.terminate()
        sandbox.wait(10)
        if admin_url and database_url:
            admin = make_url(admin_url).set(drivername="postgresql")
            conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()
        tmp.cleanup()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ideal = count / rate
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; database: {make_url(url).get_backend_name()}"
    )
    print(f"invitations due:        {count}")
    print(
        f"sent / skipped / failed / retried: {report.sent} / {report.skipped} / "
        f"{report.failed} / {report.retried}"
    )
    print(f"sandbox Bot API calls:  {sent_calls} (duplicates: {sent_calls - count})")
    print(f"configured bulk rate:   {rate:.0f}/s -> ideal {ideal:.1f} s")
    print(
        f"total time:             {wall:.1f} s (ratio to the configured rate: "
        f"{ideal / wall:.2f} of it)"
    )
    print(f"our CPU per invitation: {cpu / count * 1000:.2f} ms")
    print(f"our peak memory (RSS):  {peak_mb:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    asyncio.run(run(args.count, args.rate, args.database_url))


if __name__ == "__main__":
    main()
