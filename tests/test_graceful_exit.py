"""A stop never cuts a database transaction in the middle, and a process always ends.

Seen in CI: `gradtrack run` got SIGTERM while the scheduler's jobs were starting; the
planner was cancelled inside an SQLite statement, its connection was torn down in a
shielded task that never finished (aiosqlite 0.22), the dispatcher's next write waited on
the SQLite lock ("database is locked", the sent invitation's outcome lost) and the process
never exited. Now the scheduler asks its jobs to stop and waits for them (bot/scheduler.py),
and the command's event loop ends within a few seconds whatever is left (bot/runner.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import col, select

from bot.leader import Leadership
from bot.scheduler import LeaderScheduler
from storage.models import Institution
from tests.harness import Harness

ROOT = Path(__file__).resolve().parents[1]


def _scheduler(h: Harness, key: int) -> LeaderScheduler:
    return LeaderScheduler(Leadership(h.runtime.db, key=key), h.runtime, timezone="UTC")


async def _schools(h: Harness) -> list[str]:
    async with h.db.session() as session:
        rows = await session.exec(select(Institution.code).order_by(col(Institution.id)))
        return [code for code in rows.all() if code.startswith("unit-")]


async def test_a_stop_lets_the_job_finish_the_transaction_it_is_in(harness: Harness) -> None:
    """A job writing one row per transaction (each transaction taking a while) is stopped
    while inside one: that transaction commits, the job sees the stop and ends by itself
    (nothing cancelled), and the database takes the next write at once."""
    h = harness
    rt = h.runtime
    begun: list[str] = []
    inside = asyncio.Event()

    async def write_units() -> None:
        while not rt.stopping:
            code = f"unit-{len(begun)}"
            begun.append(code)
            async with rt.db.session() as session:
                session.add(Institution(code=code, name=code, country="NL", default_language="en"))
                await session.flush()
                inside.set()
                await asyncio.sleep(0.3)  # the stop comes while the transaction is open

    scheduler = _scheduler(h, key=7101)
    assert await scheduler.leadership.check()
    scheduler.add_leader_job(write_units, id="units", next_run_time=datetime.now(UTC))
    scheduler.start()
    try:
        await asyncio.wait_for(inside.wait(), 30)
        await scheduler.stop(grace=30)
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
    assert rt.stopping
    assert begun and await _schools(h) == begun  # the unit in progress was committed too
    async with rt.db.session() as session:  # nothing holds the write lock
        session.add(
            Institution(code="unit-after", name="after", country="NL", default_language="en")
        )


async def test_a_job_that_does_not_stop_is_cancelled_after_the_grace(harness: Harness) -> None:
    """A job that never looks at the stop is cancelled once the grace is over."""
    h = harness
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def deaf() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    scheduler = _scheduler(h, key=7102)
    assert await scheduler.leadership.check()
    scheduler.add_leader_job(deaf, id="deaf", next_run_time=datetime.now(UTC))
    scheduler.start()
    try:
        await asyncio.wait_for(started.wait(), 30)
        assert not cancelled.is_set()
        await asyncio.wait_for(scheduler.stop(grace=0.2, timeout=5), 30)
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
    assert cancelled.is_set()
    assert scheduler.running_work == 0


STUCK = """
import asyncio, atexit, sys, threading
from bot import runner

atexit.register(lambda: print("atexit ran", flush=True))

async def close_forever():
    # Like aiosqlite's close after its worker thread stopped: the first cancel is taken,
    # then it waits for a future nobody will ever resolve.
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.get_running_loop().create_future()

async def command():
    if STUCK:
        asyncio.ensure_future(close_forever())
        threading.Thread(target=threading.Event().wait, name="worker-forever").start()
    await asyncio.sleep(0.1)
    print("command done", flush=True)
    return 3

sys.exit(runner.finish(runner.run(command(), grace=0.5)))
"""


def _exit_of(stuck: bool) -> subprocess.CompletedProcess[str]:
    script = f"STUCK = {stuck}\n" + textwrap.dedent(STUCK)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_a_command_whose_tasks_and_threads_never_end_still_exits() -> None:
    """`asyncio.run` would wait forever for the task, the interpreter for the thread: the
    process ends with the command's exit code, and the log names what did not end."""
    done = _exit_of(stuck=True)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "command done" in done.stdout
    assert "did not end when stopping" in done.stderr
    assert "close_forever" in done.stderr and "worker-forever" in done.stderr


def test_a_clean_command_ends_as_usual() -> None:
    done = _exit_of(stuck=False)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "command done" in done.stdout and "atexit ran" in done.stdout
    assert "did not end" not in done.stderr
