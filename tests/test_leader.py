"""One scheduler leader at a time (issue 7): the PostgreSQL advisory lock, stepping down
when the lock connection is lost, and two `gradtrack serve` processes on one PostgreSQL
database whose scheduler leader is killed with SIGKILL mid-way through a wave of invitations."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text
from sqlmodel import col, select

from bot.leader import Leadership, current_leader
from bot.sandbox import SandboxServer
from bot.scheduler import start_scheduler
from bot.web.server import SECRET_HEADER
from conversations.invitations import PREFIX
from conversations.waves import parse_plans
from storage.db import Database
from storage.invitations import plan_invitations
from storage.models import Graduate, Institution, Invitation, InvitationStatus, Programme
from storage.types import utcnow
from tests.harness import Harness, eventually

GRADTRACK = str(Path(sys.executable).with_name("gradtrack"))
POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

#: One wave, open from a week before "now" for three months, no reminders and no quiet
#: hours: every graduate below is owed exactly one invitation, due now, whatever the hour.
WAVES = """
default:
  quiet_hours: {start: "00:00", end: "00:00"}
  waves:
    - {name: m2, questionnaire: tracking, consent: survey, opens: 0d, closes: 3m}
"""
PLANS = parse_plans(WAVES, questionnaires={"tracking"})


def fast(db: Database, name: str, *, retry: float = 0.1) -> Leadership:
    return Leadership(db, name=name, retry_seconds=retry, check_seconds=0.1, timeout=5)


async def end_session(db: Database, application_name: str) -> None:
    """The server ends the session of a lock connection, as when that connection is lost."""
    async with db.engine.connect() as conn:
        ended = await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = :name"
            ),
            {"name": application_name},
        )
        assert ended.scalars().all() == [True]


async def owed_graduates(
    db: Database, sandbox: SandboxServer, token: str, count: int, now: datetime
) -> list[Graduate]:
    """`count` graduates who started the bot and consented, each owed one invitation due
    now: the rows are made by the planner itself (`plan_invitations`)."""
    user_ids = sandbox.create_started_users(token, count)
    async with db.session() as session:
        school = Institution(
            code="alfa",
            name="Alfa College",
            country="NL",
            default_language="nl",
            timezone="Europe/Amsterdam",
        )
        session.add(school)
        await session.flush()
        assert school.id is not None
        programme = Programme(
            institution_id=school.id, code="ICT4", name="Software developer", eqf_level=4
        )
        session.add(programme)
        await session.flush()
        assert programme.id is not None
        graduates = [
            Graduate(
                institution_id=school.id,
                programme_id=programme.id,
                student_ref=f"S{user_id}",
                graduation_date=now.date() - timedelta(days=7),
                language="en",
                chat_id=user_id,
                consent_survey=True,
                consent_followup=True,
            )
            for user_id in user_ids
        ]
        session.add_all(graduates)
    assert await plan_invitations(db, PLANS, now=now) == count
    async with db.session() as session:
        due = (await session.exec(select(Invitation).where(Invitation.due_at <= now))).all()
    assert len(due) == count
    return graduates


async def invitations(db: Database) -> list[Invitation]:
    async with db.session() as session:
        return list((await session.exec(select(Invitation).order_by(col(Invitation.id)))).all())


async def all_sent(db: Database) -> bool:
    return {row.status for row in await invitations(db)} == {InvitationStatus.SENT.value}


def invitations_received(sandbox: SandboxServer, token: str, graduate: Graduate) -> list[str]:
    """The invitation buttons in the graduate's chat, one per invitation message received."""
    assert graduate.chat_id is not None
    return [
        data
        for entry in sandbox.bot_messages(token, graduate.chat_id)
        for data in entry.callback_datas
        if data.startswith(PREFIX)
    ]


async def assert_each_received_exactly_once(
    db: Database, sandbox: SandboxServer, token: str, graduates: list[Graduate]
) -> list[Invitation]:
    rows = await invitations(db)
    owed = {row.graduate_id: f"{PREFIX}{row.id}" for row in rows}
    assert len(owed) == len(rows) == len(graduates)
    for graduate in graduates:
        assert graduate.chat_id is not None
        got = invitations_received(sandbox, token, graduate)
        assert got == [owed[graduate.id or 0]], (graduate.chat_id, got)
        assert len(sandbox.bot_messages(token, graduate.chat_id)) == 1
    assert {row.status for row in rows} == {InvitationStatus.SENT.value}
    return rows


# ---------------------------------------------------------------- the lock


async def test_one_leader_at_a_time_and_the_other_takes_over(db: Database) -> None:
    first, second = fast(db, "first"), fast(db, "second")
    try:
        if db.dialect == "sqlite":
            # One process by design: it always leads, and there is no lock to show.
            assert await first.check() and await second.check()
            assert await current_leader(db) is None
            return
        assert await first.check()
        assert not await second.check()
        assert await first.check() and not await second.check()  # still the same leader
        assert await current_leader(db) == first.application_name
        # A graceful stop gives the lock back: the other takes it at its next try.
        await first.release()
        assert not first.is_leader
        assert await second.check()
        assert not await first.check()
        assert await current_leader(db) == second.application_name
        # A closed lock connection frees the lock too (what a killed process's does).
        second.terminate()  # the server notices the closed connection a moment later
        await eventually(first.check)
        assert await current_leader(db) == first.application_name
    finally:
        await first.release()
        await second.release()
    assert await current_leader(db) is None


@POSTGRESQL_ONLY
async def test_a_leader_whose_lock_connection_is_lost_steps_down(db: Database) -> None:
    """The leader checks its lock connection; when the server ended that session (the lock
    is free for others), it steps down on its next check and the other takes over."""
    first = fast(db, "first", retry=60)  # once deposed, it waits long before trying again
    second = fast(db, "second")
    changes: dict[str, list[bool]] = {"first": [], "second": []}
    watching = [asyncio.create_task(first.run(changes["first"].append))]
    try:
        await eventually(lambda: first.is_leader)
        watching.append(asyncio.create_task(second.run(changes["second"].append)))
        await asyncio.sleep(0.5)  # several rounds of both: nothing changes
        assert first.is_leader and not second.is_leader
        await end_session(db, first.application_name)
        await eventually(lambda: not first.is_leader and second.is_leader, timeout=10)
        assert changes == {"first": [True, False], "second": [True]}
        assert await current_leader(db) == second.application_name
    finally:
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
        await first.release()
        await second.release()


# ---------------------------------------------------------------- the scheduler, in process


@pytest.fixture
async def one_wave(harness: Harness) -> Harness:
    """The harness's bot with the one-wave plan (the plan job adds no other rows)."""
    harness.plans = PLANS
    await harness.restart_bot()
    return harness


@SQLITE_ONLY
async def test_on_sqlite_the_one_process_leads_and_sends_the_wave(one_wave: Harness) -> None:
    h = one_wave
    graduates = await owed_graduates(h.db, h.sandbox, h.token, 5, h.clock.now())
    scheduler = start_scheduler(h.runtime)
    try:
        await eventually(lambda: all_sent(h.db), timeout=30)
        assert scheduler.leadership.is_leader
    finally:
        scheduler.shutdown(wait=False)
    await assert_each_received_exactly_once(h.db, h.sandbox, h.token, graduates)


@POSTGRESQL_ONLY
async def test_a_deposed_leader_stops_sending_and_the_new_one_sends_the_rest(
    one_wave: Harness,
) -> None:
    """Two schedulers on one database: only the leader's jobs run. The leader's lock
    connection is lost while its dispatcher has messages in flight (held by the sandbox,
    not delivered): it pauses its jobs and stops that work at once; the other becomes the
    leader and, once the deposed leader's claims expire, sends the rest, once each."""
    h = one_wave
    rt = h.runtime
    rt.settings.bulk_send_per_second = 40  # one batch takes all 12 (rate x half a lease)
    rt.settings.dispatch_interval_seconds = 0.2
    rt.settings.claim_lease_seconds = 1
    graduates = await owed_graduates(h.db, h.sandbox, h.token, 12, h.clock.now())
    hang = h.sandbox.faults.hang("sendMessage", seconds=5, count=None)
    first = start_scheduler(rt, fast(h.db, "first", retry=60))
    second = None
    try:
        await eventually(lambda: first.leadership.is_leader)
        second = start_scheduler(rt, fast(h.db, "second"))
        await eventually(lambda: hang.hits >= 1)  # the leader's dispatcher is mid-send
        assert first.running_work >= 1
        assert not second.leadership.is_leader
        assert all(job.next_run_time is None for job in second.get_jobs())  # paused

        await end_session(h.db, first.leadership.application_name)
        await eventually(lambda: not first.leadership.is_leader and first.running_work == 0)
        assert all(job.next_run_time is None for job in first.get_jobs())
        await eventually(lambda: second.leadership.is_leader, timeout=10)
        h.sandbox.faults.clear()
        assert all(invitations_received(h.sandbox, h.token, g) == [] for g in graduates)

        h.clock.advance(timedelta(seconds=2))  # the deposed leader's claims expire
        await eventually(lambda: all_sent(h.db), timeout=30)
    finally:
        first.shutdown(wait=False)
        if second is not None:
            second.shutdown(wait=False)
    rows = await assert_each_received_exactly_once(h.db, h.sandbox, h.token, graduates)
    assert {row.attempts for row in rows} == {2}  # claimed by the first, sent by the second


# ---------------------------------------------------------------- two serve processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Worker:
    """One `gradtrack serve` process and what it printed (with the time it was read)."""

    process: asyncio.subprocess.Process
    port: int
    lines: list[tuple[float, str]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def said(self, needle: str, after: float = 0.0) -> float | None:
        """When a line containing `needle` was printed (read) after `after`, if it was."""
        return next((t for t, line in self.lines if needle in line and t >= after), None)

    def output(self) -> str:
        return "\n".join(line for _t, line in self.lines[-60:])


async def start_worker(env: dict[str, str], port: int) -> Worker:
    process = await asyncio.create_subprocess_exec(
        GRADTRACK,
        "serve",
        env={**env, "PORT": str(port)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    worker = Worker(process, port)

    async def read() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            worker.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip()))

    worker.reader = asyncio.create_task(read())
    return worker


class Balancer:
    """The platform's load balancer in front of the serve processes: each webhook call goes
    to the next process in turn, or to another when that one does not answer."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self.turn = 0
        self.served: list[tuple[float, int]] = []  # (when, pid) of each answered call
        self._session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() in ("content-type", SECRET_HEADER.lower())
        }
        assert self._session is not None
        self.turn += 1
        for step in range(len(self.workers)):
            worker = self.workers[(self.turn + step) % len(self.workers)]
            url = f"http://127.0.0.1:{worker.port}{request.path_qs}"
            try:
                async with self._session.post(url, data=body, headers=headers) as answer:
                    payload = await answer.read()
                    if answer.status == 200:
                        self.served.append((time.monotonic(), worker.pid))
                    return web.Response(
                        status=answer.status, body=payload, content_type="application/json"
                    )
            except aiohttp.ClientConnectionError:
                continue
        return web.Response(status=502)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await self._session.close()
            await runner.cleanup()


class Chatter:
    """A stream of updates: a few people send /help, one message every `pause` seconds, and
    count on one answer each. `paused` holds the stream."""

    def __init__(self, sandbox: SandboxServer, token: str, people: int, pause: float) -> None:
        self.sandbox, self.token, self.pause = sandbox, token, pause
        self.people = sandbox.create_started_users(token, people)
        self.sent: Counter[int] = Counter()
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        turn = 0
        while not self._stop:
            await self.flowing.wait()
            if self._stop:
                return
            person = self.people[turn % len(self.people)]
            await self.sandbox.send_text(self.token, person, "/help")
            self.sent[person] += 1
            turn += 1
            await asyncio.sleep(self.pause)

    def answered(self) -> bool:
        return all(
            len(self.sandbox.bot_messages(self.token, person)) == self.sent[person]
            for person in self.people
        )

    async def hold(self) -> None:
        """Stop sending and wait until everything sent was answered."""
        self.flowing.clear()
        await eventually(self.answered, timeout=60)

    async def stop(self) -> None:
        self._stop = True
        self.flowing.set()
        if self._task is not None:
            await self._task
        await eventually(self.answered, timeout=60)


@POSTGRESQL_ONLY
async def test_two_serve_processes_the_leader_killed_the_other_takes_over(
    db: Database, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Issue 7: two `gradtrack serve` processes share one PostgreSQL database behind a load
    balancer, under a stream of updates from the sandbox. One is the scheduler leader and
    sends a wave of invitations at a low bulk rate; it is killed with SIGKILL mid-way; the
    other takes over within 30 seconds and sends the rest. Every invitation reaches its
    graduate exactly once and every row ends `sent`.

    The kill moment, honestly: a row is marked sent right after Telegram accepted the
    message, so a process killed between the two would have its message sent again once its
    claim expires (at-least-once, bot/delivery.py). The test does not kill at a random
    moment: the sandbox first holds every sendMessage (a hang, answered 504 later, never
    delivered), and the leader is killed once every message Telegram delivered is marked
    sent in the database, so its messages in flight are undelivered ones. Likewise a webhook
    update is acknowledged before it is handled, so SIGKILL can drop one in flight (SIGTERM
    drains; SIGKILL cannot): the stream of /help messages is held from just before the hang
    until the kill is over, and every /help must be answered once.

    The dead leader's claimed rows are sent again when their claim expires, so
    CLAIM_LEASE_SECONDS is short here (10 s); its default is 5 minutes."""
    url = db.url
    token = sandbox.create_bot(username="gradtrack_test_bot", first_name="GradTrack")
    waves = tmp_path / "waves.yaml"
    waves.write_text(WAVES)
    total = 60
    graduates = await owed_graduates(db, sandbox, token, total, utcnow())
    chatter = Chatter(sandbox, token, people=4, pause=0.25)

    workers: list[Worker] = []
    balancer = Balancer(workers)
    async with balancer.serving() as public_url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")},
            "DATABASE_URL": url,
            "TELEGRAM_BOT_TOKEN": token,
            "TELEGRAM_API_BASE_URL": f"{sandbox.url}/bot",
            "PUBLIC_URL": public_url,
            "HOST": "127.0.0.1",
            "SECRET_KEY": "leader-test-secret-key-of-at-least-32-characters",
            "WAVES_FILE": str(waves),
            "BULK_SEND_PER_SECOND": "4",
            "THROTTLE_PER_SECOND": "0",  # the chatter is faster than a person
            "DISPATCH_INTERVAL_SECONDS": "1",
            "CLAIM_LEASE_SECONDS": "10",
            "LOG_LEVEL": "INFO",
        }
        workers.extend(await asyncio.gather(*(start_worker(env, _free_port()) for _ in range(2))))
        try:
            await _kill_the_leader_and_check(
                db, sandbox, token, graduates, workers, balancer, chatter
            )
            await chatter.stop()
            # The survivor stops cleanly on SIGTERM, and gives the lock back.
            survivor = next(w for w in workers if w.process.returncode is None)
            survivor.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(survivor.process.wait(), 60) == 0, survivor.output()
            assert await current_leader(db) is None
        finally:
            for worker in workers:
                if worker.process.returncode is None:
                    worker.process.kill()
                    await worker.process.wait()
                if worker.reader is not None:
                    with suppress(Exception):
                        await asyncio.wait_for(worker.reader, 10)

    rows = await assert_each_received_exactly_once(db, sandbox, token, graduates)
    before = sum(1 for row in rows if row.attempts == 1)  # sent by the leader that died
    taken_over = sum(1 for row in rows if row.attempts == 2)  # claimed by it, sent by the other
    assert before + taken_over == total and 10 <= before < total


async def _kill_the_leader_and_check(
    db: Database,
    sandbox: SandboxServer,
    token: str,
    graduates: list[Graduate],
    workers: list[Worker],
    balancer: Balancer,
    chatter: Chatter,
) -> None:
    for worker in workers:
        await _printed(worker, "gradtrack serving on", timeout=90)
    chatter.start()

    # Exactly one leads: the database names it, it says so, and the other follows.
    async def led() -> bool:
        return await _leader_pid(db) is not None

    await eventually(led, timeout=30)
    leader_pid = await _leader_pid(db)
    leader = next(w for w in workers if w.pid == leader_pid)
    survivor = next(w for w in workers if w is not leader)
    await _printed(leader, f"scheduler leader: this process (pid {leader.pid}")
    await _printed(survivor, "scheduler follower")
    assert survivor.said("scheduler leader: this process") is None, survivor.output()

    def delivered() -> int:
        return sum(len(invitations_received(sandbox, token, g)) for g in graduates)

    await eventually(lambda: delivered() >= 10, timeout=60)

    # Hold the stream, then every sendMessage; kill once what was delivered is marked sent.
    await chatter.hold()
    # Any process handles any chat's update: both answered some through the balancer.
    assert {pid for _t, pid in balancer.served} == {leader.pid, survivor.pid}
    hang = sandbox.faults.hang("sendMessage", seconds=20, count=None)
    await eventually(lambda: hang.hits >= 1, timeout=30)
    await asyncio.sleep(0.5)

    async def settled() -> bool:
        rows = await invitations(db)
        return delivered() == sum(1 for r in rows if r.status == InvitationStatus.SENT.value)

    await eventually(settled, timeout=30)
    assert delivered() < len(graduates)
    killed_at = time.monotonic()
    leader.process.send_signal(signal.SIGKILL)
    assert await leader.process.wait() == -signal.SIGKILL
    sandbox.faults.clear()
    chatter.flowing.set()

    # The other takes over within 30 seconds (the bound), and sends the rest.
    takeover = f"scheduler leader: this process (pid {survivor.pid}"
    await _printed(survivor, takeover, after=killed_at, timeout=60)
    took = (survivor.said(takeover, after=killed_at) or 0) - killed_at
    print(f"scheduler takeover {took:.2f} s after the leader's SIGKILL")
    assert took < 30, survivor.output()
    assert await _leader_pid(db) == survivor.pid
    await eventually(lambda: all_sent(db), timeout=120)
    # The stream went on: the survivor answered what came after the kill.
    await eventually(
        lambda: any(t > killed_at and pid == survivor.pid for t, pid in balancer.served),
        timeout=30,
    )


async def _printed(worker: Worker, needle: str, after: float = 0.0, timeout: float = 30) -> None:
    try:
        await eventually(lambda: worker.said(needle, after) is not None, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{needle!r} never printed:\n{worker.output()}") from None


async def _leader_pid(db: Database) -> int | None:
    name = await current_leader(db)
    if name is None:
        return None
    return int(name.rsplit(":", 1)[1])
