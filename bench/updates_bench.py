"""Benchmark: updates per second one bot process handles through the sandbox, gradtrack side
by side with a minimal python-telegram-bot echo bot (bench/echo_bot.py), in polling and in
webhook mode, on SQLite and on PostgreSQL.

Processes: the sandbox (`python -m bot.sandbox --no-rate-limits`, one per database, with two
bots: gradtrack's and the echo bot's), the two bots under test, each in a process of its own
(`gradtrack run` for polling or `gradtrack serve` for the webhook; the echo bot polling or
behind an aiohttp webhook route), and this one, which seeds the database and plays the users
over the sandbox's user-side HTTP API.

- gradtrack: N graduates, consented, with the tracking questionnaire open (seeded directly in
  the database). Each simulated graduate sends /survey, then answers the question on screen
  (the first choice of a button question, one tick then Done for a multiple choice, a typed
  number or text), through the whole questionnaire to "Send my answers", then takes the next
  graduate. Every update reads and writes the database and is answered by the bot (answer
  the button, close the question, send the next one).
- echo: each user sends a text and waits for the same text back.

Closed loop: each of --users users sends its next update when it sees the bot's answer in the
sandbox. Both bot processes run at once but only one is driven at a time, in alternating
segments (gradtrack, echo, echo, gradtrack, ...: --rounds of each, --duration seconds per bot
in all, each segment after --warmup seconds of load), so that a shared, noisy machine weighs
on both alike. The users start once both processes are idle after their start (gradtrack's
scheduler plans the invitations of every graduate at start; the bench seeds them, marked
skipped, so that it finds nothing to create or send). Measured per bot:

- updates/s: answers seen by the users in the measured windows / their length;
- round trip p50/p95/p99: from the user's send to the answer seen in the sandbox (with K
  users queueing for one process that handles one update at a time, about K handler times);
- handler p50/p95/p99: `Application.process_update` timed inside the bot process (all handler
  groups; the same wrapper for both bots, installed by this script's `_child` launcher), and
  the SQL statements each update ran;
- CPU per update of the bot process (and of the PostgreSQL server processes serving the
  bench's database); Bot API calls per update (the sandbox's counters); the CPU share of the
  sandbox, of this process (the users) and of everything else on the machine (other people's
  work: the noise; near 100 % of a core, the sandbox or the users would be what limits).

A rate limiter holds a bot to 30 messages per second whatever the machine (Telegram's
limit); gradtrack ships with one. The main rows run both bots without it
(and the sandbox without its flood limits) to measure processing; --limiter-rows adds both
bots with their rate limiter as shipped (gradtrack: bot/ratelimit.py's ReplyFirstRateLimiter;
the echo bot: AIORateLimiter(max_retries=3)), polling, first database.
--profile SECONDS adds a run of gradtrack (polling, first database) under cProfile during
its measured windows and prints where the event loop's time goes.

    .venv/bin/python -m bench.updates_bench [--database sqlite|postgresql|both]
        [--pg-url postgresql://postgres@127.0.0.1:5432/test] [--users 8] [--rounds 8]
        [--warmup 1] [--duration 20] [--graduates 10000] [--with-survey 1000]
        [--limiter-rows] [--profile 15]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import cProfile
import json
import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy import insert, update
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import TOKEN, api, free_port, machine, seed_graduates
from conversations import engine
from conversations.registry import QuestionnaireRegistry
from conversations.waves import DEFAULT_PLAN_FILE, load_plans
from storage.db import Database
from storage.invitations import plan_invitations
from storage.migrate import upgrade
from storage.models import Graduate, Invitation, InvitationStatus, SurveyResponse

ROOT = Path(__file__).resolve().parent.parent
BOTS = ("gradtrack", "echo")
USERNAMES = {"gradtrack": "bench_bot", "echo": "echo_bench_bot"}
TOKENS = {"gradtrack": TOKEN, "echo": "7000000098:ECHOechoECHOechoECHOechoECHOecho_0123"}
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
THANKS = "Thank you! Your answers have been saved."
TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the bot process (child)


def child(argv: Sequence[str]) -> None:
    """`_child BOT MODE`: run gradtrack (`run` / `serve`) or the echo bot in this process, with
    `Application.process_update` timed and its SQL statements counted; written to --timings
    at exit (kind "update"). gradtrack's web chat requests are timed and counted the same
    way (kinds "web_post" and "web_page", for bench/webchat_bench.py). With --profile,
    SIGUSR1 starts cProfile and SIGUSR2 pauses it."""
    parser = argparse.ArgumentParser(prog="updates_bench _child")
    parser.add_argument("bot", choices=BOTS)
    parser.add_argument("mode", choices=("polling", "webhook"))
    parser.add_argument("--timings", required=True)
    parser.add_argument("--limiter", action="store_true")
    parser.add_argument("--profile", default="")
    parser.add_argument("--base-url", default="")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from telegram.ext import Application

    records: list[tuple[float, float, int, str]] = []
    # The statements of the update being processed (a context variable: updates handled side
    # by side behind the webhook each count their own, not the others' run meanwhile).
    statements: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
        "bench_statements", default=None
    )
    original = Application.process_update

    def count(*_: object) -> None:
        counter = statements.get()
        if counter is not None:
            counter[0] += 1

    event.listen(Engine, "before_cursor_execute", count)

    @contextlib.contextmanager
    def recorded(kind: str) -> Iterator[None]:
        started, clock, counter = time.time(), time.perf_counter(), [0]
        token = statements.set(counter)
        try:
            yield
        finally:
            statements.reset(token)
            records.append((started, time.perf_counter() - clock, counter[0], kind))

    async def timed(self: Any, update: object) -> None:
        with recorded("update"):
            await original(self, update)

    Application.process_update = timed  # type: ignore[method-assign]

    run: Callable[[], object]
    if args.bot == "gradtrack":
        import functools

        import bot.app
        import bot.web.chat
        from bot.__main__ import main as gradtrack_main

        def web_timed(handler: Callable[[Any], Awaitable[Any]], kind: str) -> Any:
            # wraps: the handler's access rule (bot/web/access.py) goes with it.
            @functools.wraps(handler)
            async def handle(request: Any) -> Any:
                with recorded(kind):
                    return await handler(request)

            return handle

        # Before the web app is built: add_web_chat mounts the module's handlers.
        bot.web.chat.chat_post = web_timed(bot.web.chat.chat_post, "web_post")
        bot.web.chat.chat_page = web_timed(bot.web.chat.chat_page, "web_page")

        if not args.limiter:
            bot.app.build_application = functools.partial(
                bot.app.build_application, rate_limiter=False
            )
        command = "run" if args.mode == "polling" else "serve"

        def run() -> object:
            return gradtrack_main([command])

    else:
        from bench.echo_bot import main as echo_main

        echo_args = ["--token", TOKENS["echo"], "--base-url", args.base_url]
        if args.mode == "webhook":
            echo_args += ["--webhook-port", str(args.port)]
        if args.limiter:
            echo_args.append("--rate-limiter")

        def run() -> object:
            echo_main(echo_args)
            return None

    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
        signal.signal(signal.SIGUSR2, lambda *_: profiler.disable())
    try:
        run()
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        Path(args.timings).write_text(json.dumps(records))


# ------------------------------------------------------------------ processes and databases


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / TICKS


def machine_busy() -> float:
    """CPU seconds all cores spent busy so far (Linux /proc/stat)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / TICKS


def backends_cpu(database: str) -> float:
    """CPU seconds so far of the PostgreSQL server processes serving `database`."""
    if not database:
        return 0.0
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            command = (proc / "cmdline").read_bytes()
            if command.startswith(b"postgres: ") and f" {database} ".encode() in command:
                total += cpu_seconds(int(proc.name))
    return total


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, RuntimeError):
            if await check():
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s")


async def settle(pid: int, timeout: float = 60.0) -> None:
    """Wait until a freshly started process is idle (below 15 % of a core over half a
    second): its start-up work (gradtrack's scheduler plans invitations at once) is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if cpu_seconds(pid) - before < 0.075:
            return
    raise RuntimeError(f"process {pid} still busy after {timeout:.0f} s")


@dataclass
class Sandbox:
    url: str
    proc: subprocess.Popen[bytes]
    #: The first id of `graduates` users started with gradtrack's bot, then of the echo
    #: bot's users.
    first_user: int
    echo_users: list[int]

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await api("GET", f"{self.url}/sandbox/api/stats")
        return result

    async def ok_calls(self) -> dict[str, int]:
        return {k: int(v) for k, v in (await self.stats())["ok_calls"].items()}


@asynccontextmanager
async def sandbox_process(graduates: int, echo_users: int) -> AsyncIterator[Sandbox]:
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 (before anything is measured)
        [
            *(sys.executable, "-m", "bot.sandbox", "--port", str(port)),
            *("--token", TOKENS["gradtrack"], "--username", USERNAMES["gradtrack"]),
            "--no-rate-limits",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        async def up() -> bool:
            await api("GET", f"{url}/sandbox/api/bots")
            return True

        await wait_until(up, "the sandbox")
        await api(
            "POST",
            f"{url}/sandbox/api/bots",
            json={"username": USERNAMES["echo"], "first_name": "Echo", "token": TOKENS["echo"]},
        )
        started = await api(
            "POST",
            f"{url}/sandbox/api/bots/{USERNAMES['gradtrack']}/started_users",
            json={"count": graduates},
        )
        echo = await api(
            "POST",
            f"{url}/sandbox/api/bots/{USERNAMES['echo']}/started_users",
            json={"count": echo_users},
        )
        first_echo = int(echo["first_id"])
        yield Sandbox(
            url, proc, int(started["first_id"]), list(range(first_echo, first_echo + echo_users))
        )
    finally:
        proc.terminate()
        proc.wait(10)


@asynccontextmanager
async def database(kind: str, pg_url: str) -> AsyncIterator[str]:
    """A temporary SQLite file, or a fresh PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
        return
    admin = make_url(pg_url).set(drivername="postgresql")
    dsn = admin.render_as_string(hide_password=False)
    name = f"gt_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        yield admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def database_name(url: str) -> str:
    """The PostgreSQL database's name ("" for SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return ""
    return parsed.database or ""


async def describe_database(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} (temporary file)"
    conn = await asyncpg.connect(
        parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return f"PostgreSQL {version} (a fresh database, dropped afterwards)"


async def seed(
    url: str, first_user: int, graduates: int, with_survey: int, *, onboarded: bool = True
) -> list[int]:
    """`graduates` consented graduates (English), the first `with_survey` of them with the
    tracking questionnaire open at its first question; returns those chats' ids. With
    `onboarded=False` they have no chat, no language and no consent yet (they come through
    onboarding first: bench/webchat_bench.py), and no chat ids are returned.

    The invitations and reminders the wave plan owes them are created here and marked
    skipped: the scheduler of each bot process then finds nothing to plan or send (its
    start-up `plan` pass still reads every graduate, before the users start)."""
    await upgrade(url)
    db = Database(url)
    try:
        _school, ids = await seed_graduates(db, first_user, graduates, onboarded=onboarded)
        registry = QuestionnaireRegistry()
        await registry.sync(db)
        plans = load_plans(DEFAULT_PLAN_FILE, set(registry.form_ids))
        await plan_invitations(db, plans, now=datetime.now(UTC))
        async with db.session() as session:
            await session.exec(update(Invitation).values(status=InvitationStatus.SKIPPED.value))
        if onboarded:
            async with db.session() as session:
                await session.exec(update(Graduate).values(language="en"))
        await open_tracking(db, ids[:with_survey])
    finally:
        await db.dispose()
    return [first_user + i for i in range(with_survey)] if onboarded else []


async def open_tracking(db: Database, graduate_ids: Sequence[int]) -> None:
    """The tracking questionnaire open at its first question for these graduates (wave m2),
    as an invitation's Start button leaves it: /survey then goes on with it."""
    if not graduate_ids:
        return
    registry = QuestionnaireRegistry()
    await registry.sync(db)
    q = registry.deployed("tracking")
    first = engine.next_question(q, {}, None)
    assert first is not None
    now = datetime.now(UTC)
    async with db.session() as session:
        await session.exec(
            insert(SurveyResponse),
            params=[
                {
                    "graduate_id": graduate_id,
                    "form_id": q.form_id,
                    "version": q.version,
                    "wave": "m2",
                    "status": "open",
                    "current": first.name,
                    "complete": False,
                    "declined": False,
                    "started_at": now,
                    "updated_at": now,
                }
                for graduate_id in graduate_ids
            ],
        )


# ------------------------------------------------------------------ the simulated users


def _buttons(entry: dict[str, Any] | None) -> list[dict[str, Any]]:
    markup = (entry or {}).get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", ()) for b in row]


def _typed_answer(text: str) -> str:
    if "Type a number" in text:
        return "32"
    if "Type the date" in text:
        return "30-06-2026"
    if "Type the month" in text:
        return "06-2026"
    return "Cook in a restaurant"


Check = Callable[[list[dict[str, Any]]], dict[str, Any] | None]


def new_prompt(before: int) -> Check:
    """The bot's next question (a new message with buttons) or its thanks."""

    def check(changed: list[dict[str, Any]]) -> dict[str, Any] | None:
        found = [
            e
            for e in changed
            if e["kind"] == "message"
            and e["sender"] == "bot"
            and e["seq"] > before
            and (_buttons(e) or (e.get("text") or "").startswith(THANKS))
        ]
        return found[-1] if found else None

    return check


def toggled(message_id: int) -> Check:
    """The question's keyboard shown again with a choice ticked."""

    def check(changed: list[dict[str, Any]]) -> dict[str, Any] | None:
        for e in changed:
            if (
                e["kind"] == "message"
                and e["sender"] == "bot"
                and e["message_id"] == message_id
                and any("☑️" in b.get("text", "") for b in _buttons(e))
            ):
                return e
        return None

    return check


def echoed(text: str, before: int) -> Check:
    def check(changed: list[dict[str, Any]]) -> dict[str, Any] | None:
        for e in changed:
            if e["sender"] == "bot" and e["seq"] > before and e.get("text") == text:
                return e
        return None

    return check


def survey_step(buttons: Sequence[tuple[str, str]], text: str) -> tuple[str, str]:
    """What the graduate does with the question on screen, on any channel (the buttons'
    labels and callback data are the same in Telegram and the web chat): ("press", data) for
    the first choice, Done once a choice is ticked, or Send on the review; ("tick", data) for
    one tick of a multiple choice; ("type", text) for a typed answer."""
    datas = [data for _label, data in buttons]
    ticked = any("☑️" in label for label, _data in buttons)

    def first(prefix: str) -> str:
        return next(d for d in datas if d.startswith(prefix))

    if any(d.startswith("ss:") for d in datas):
        return "press", first("ss:")
    if any(d.startswith("st:") for d in datas):
        return ("press", first("sd:")) if ticked else ("tick", first("st:"))
    if any(d.startswith("sv:") for d in datas):
        return "press", first("sv:")
    return "type", _typed_answer(text)


def next_answer(current: dict[str, Any], revision: int) -> tuple[str, dict[str, Any], str, Check]:
    """What the graduate does with the question on screen (`survey_step`), as a sandbox
    call and the check that finds the bot's answer to it."""
    buttons = [(str(b.get("text", "")), str(b.get("callback_data", ""))) for b in _buttons(current)]
    action, value = survey_step(buttons, current.get("text") or "")
    if action == "type":
        return "messages", {"text": value}, "typed", new_prompt(revision)
    body = {"message_id": current["message_id"], "callback_data": value}
    if action == "tick":
        return "press", body, "button", toggled(current["message_id"])
    return "press", body, "button", new_prompt(revision)


class Chat:
    """One user's chat with one bot, through the sandbox's user-side API."""

    def __init__(self, http: aiohttp.ClientSession, sandbox: str, bot: str, chat_id: int) -> None:
        self.http = http
        self.url = f"{sandbox}/sandbox/api/chats/{USERNAMES[bot]}/{chat_id}"
        self.revision = 0

    async def _get(self, **query: Any) -> dict[str, Any]:
        async with self.http.get(self.url, params=query) as response:
            body = await response.json()
        if not body.get("ok"):
            raise RuntimeError(body)
        result: dict[str, Any] = body["result"]
        return result

    async def sync(self) -> None:
        self.revision = int((await self._get(limit=0))["revision"])

    async def act(self, path: str, body: dict[str, Any], expect: Check) -> dict[str, Any]:
        """Do something as the user, then wait until `expect` finds the bot's answer among the
        chat's entries changed since."""
        async with self.http.post(f"{self.url}/{path}", json=body) as response:
            answer = await response.json()
        if not answer.get("ok"):
            raise RuntimeError(answer)
        before = self.revision
        deadline = time.monotonic() + 10.0
        while True:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError(f"no answer to {body}")
            data = await self._get(since=self.revision, wait=f"{wait:.2f}", limit=12)
            self.revision = int(data["revision"])
            changed = [e for e in data["entries"] if e["updated"] > before]
            found = expect(changed)
            if found is not None:
                return found


@dataclass
class Load:
    """One bot's users: they act while `go` is set, and stop for good once `done`."""

    go: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False
    in_flight: int = 0
    #: (sent, answer seen, kind) of every update.
    samples: list[tuple[float, float, str]] = field(default_factory=list)
    errors: int = 0
    graduates_done: int = 0

    async def turn(self) -> bool:
        """Wait for this bot's segment; False: the run is over."""
        await self.go.wait()
        return not self.done

    async def timed(
        self, chat: Chat, path: str, body: dict[str, Any], expect: Check, kind: str
    ) -> dict[str, Any]:
        self.in_flight += 1
        sent = time.time()
        try:
            found = await chat.act(path, body, expect)
        finally:
            self.in_flight -= 1
        self.samples.append((sent, time.time(), kind))
        return found

    async def idle(self) -> None:
        """Wait until no update of this bot is in flight (after `go` was cleared)."""
        for _ in range(200):
            if not self.in_flight:
                return
            await asyncio.sleep(0.05)


async def graduate_user(
    http: aiohttp.ClientSession, sandbox: str, chats: Iterator[int], load: Load
) -> None:
    """Graduate after graduate: /survey, every question, Send my answers."""
    while await load.turn():
        chat_id = next(chats, None)
        if chat_id is None:
            raise RuntimeError("not enough graduates with an open questionnaire (--with-survey)")
        chat = Chat(http, sandbox, "gradtrack", chat_id)
        await chat.sync()
        path, body, kind = "messages", {"text": "/survey"}, "command"
        expect = new_prompt(chat.revision)
        try:
            while await load.turn():
                current = await load.timed(chat, path, body, expect, kind)
                if (current.get("text") or "").startswith(THANKS):
                    load.graduates_done += 1
                    break
                path, body, kind, expect = next_answer(current, chat.revision)
        except (TimeoutError, RuntimeError, aiohttp.ClientError) as exc:
            load.errors += 1
            print(f"    (a graduate gave up: {str(exc)[:160]})", flush=True)


async def echo_user(http: aiohttp.ClientSession, sandbox: str, chat_id: int, load: Load) -> None:
    chat = Chat(http, sandbox, "echo", chat_id)
    await chat.sync()
    n = 0
    while await load.turn():
        n += 1
        text = f"ping {chat_id} {n}"
        try:
            await load.timed(chat, "messages", {"text": text}, echoed(text, chat.revision), "text")
        except (TimeoutError, RuntimeError, aiohttp.ClientError) as exc:
            load.errors += 1
            print(f"    (an echo user gave up: {str(exc)[:160]})", flush=True)
            await chat.sync()


# ------------------------------------------------------------------ one pair of bots


@dataclass
class Result:
    database: str
    mode: str
    bot: str
    limiter: bool
    seconds: float
    updates: int
    per_second: float
    round_trip: tuple[float, float, float]
    handler: tuple[float, float, float]
    handled: int
    sql: float
    cpu_ms: float
    calls: float
    sandbox_cpu: float
    driver_cpu: float
    db_cpu_ms: float
    others_cpu: float
    errors: int
    graduates: int


def percentiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return (float("nan"),) * 3
    ordered = sorted(values)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return at(0.50), at(0.95), at(0.99)


def _bot_env(
    url: str, sandbox: str, port: int, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WEBHOOK_"))}
    env.update(
        TELEGRAM_BOT_TOKEN=TOKENS["gradtrack"],
        TELEGRAM_API_BASE_URL=f"{sandbox}/bot",
        DATABASE_URL=url,
        HOST="127.0.0.1",
        PORT=str(port),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        SECRET_KEY="bench-secret-key-" * 3,
        METRICS_TOKEN="",
        THROTTLE_PER_SECOND="0",  # the simulated graduates answer as fast as the bot does
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides or {})
    return env


@dataclass
class BotProcess:
    """A bot under test in its own process, and the files it writes."""

    proc: subprocess.Popen[bytes]
    timings: Path
    log: Path
    #: Its loopback port: the webhook and the web app of `gradtrack serve`.
    port: int = 0

    @property
    def base_url(self) -> str:
        """The PUBLIC_URL it was given (the web chat's links are under it)."""
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        tmp: Path,
        sb: Sandbox,
        url: str,
        bot: str,
        mode: str,
        limiter: bool,
        profile: str,
        env: Mapping[str, str] | None = None,
    ) -> BotProcess:
        tmp.mkdir()
        port = free_port()
        timings, log_path = tmp / "timings.json", tmp / "bot.log"
        command = [sys.executable, "-m", "bench.updates_bench", "_child", bot, mode]
        command += ["--timings", str(timings), "--base-url", f"{sb.url}/bot", "--port", str(port)]
        if limiter:
            command.append("--limiter")
        if profile:
            command += ["--profile", profile]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=_bot_env(url, sb.url, port, env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return cls(proc, timings, log_path, port)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"the bot stopped:\n{self.log.read_text()[-3000:]}")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> list[tuple[float, float, int]]:
        """SIGTERM, and what the bot wrote at exit: per update, when its handling started,
        how long it took, how many SQL statements it ran."""
        return [(at, took, sql) for at, took, sql, kind in self.stop_all() if kind == "update"]

    def stop_all(self) -> list[tuple[float, float, int, str]]:
        """SIGTERM, and every record the bot wrote at exit, updates and web chat requests:
        (start, seconds, SQL statements, kind)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not self.timings.exists():
            raise SystemExit(f"the bot left no timings:\n{self.log.read_text()[-3000:]}")
        records = json.loads(self.timings.read_text())
        return [(float(a), float(b), int(c), str(d)) for a, b, c, d in records]


async def launch(
    tmp: Path,
    sb: Sandbox,
    url: str,
    bot: str,
    mode: str,
    limiter: bool,
    profile: str,
    env: Mapping[str, str] | None = None,
) -> BotProcess:
    """Start a bot process; return once it polls (or set its webhook) and is idle. `env`
    overrides the bot's environment (`_bot_env`)."""
    before = await sb.ok_calls()
    ready = "deletewebhook" if mode == "polling" else "setwebhook"
    launched = time.perf_counter()
    process = BotProcess.start(tmp, sb, url, bot, mode, limiter, profile, env)

    async def started() -> bool:
        process.check_alive()
        return (await sb.ok_calls()).get(ready, 0) > before.get(ready, 0)

    try:
        await wait_until(started, f"{bot} {mode}")
        up = time.perf_counter() - launched
        await settle(process.proc.pid)
    except BaseException:
        with contextlib.suppress(BaseException):
            process.stop()
        raise
    print(
        f"    {bot}: up after {up:.1f} s, idle after {time.perf_counter() - launched:.1f} s",
        flush=True,
    )
    return process


@dataclass
class Tally:
    """One bot's measured windows, summed."""

    windows: list[tuple[float, float]] = field(default_factory=list)
    cpu: float = 0.0
    sandbox_cpu: float = 0.0
    driver_cpu: float = 0.0
    db_cpu: float = 0.0
    #: Everything else the machine did meanwhile: other people's work, the noise.
    others_cpu: float = 0.0
    calls: int = 0


async def measure_segment(
    sb: Sandbox,
    process: BotProcess,
    load: Load,
    tally: Tally,
    warmup: float,
    seconds: float,
    *,
    database: str,
    profile: bool,
) -> None:
    """Let one bot's users act: `warmup` seconds, then `seconds` measured."""
    load.go.set()
    await asyncio.sleep(warmup)

    async def snapshot() -> tuple[float, dict[str, int], list[float]]:
        calls = await sb.ok_calls()
        cpu = [
            process.cpu(),
            cpu_seconds(sb.proc.pid),
            time.process_time(),
            backends_cpu(database),
            machine_busy(),
        ]
        return time.time(), calls, cpu

    start, calls0, cpu0 = await snapshot()
    if profile:
        process.proc.send_signal(signal.SIGUSR1)
    await asyncio.sleep(max(0.0, start + seconds - time.time()))
    if profile:
        process.proc.send_signal(signal.SIGUSR2)
    stop, calls1, cpu1 = await snapshot()
    load.go.clear()
    bot, sandbox, driver, backends, busy = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    tally.windows.append((start, stop))
    tally.cpu += bot
    tally.sandbox_cpu += sandbox
    tally.driver_cpu += driver
    tally.db_cpu += backends
    tally.others_cpu += busy - bot - sandbox - driver - backends
    tally.calls += sum(calls1.get(k, 0) - calls0.get(k, 0) for k in calls1 if k != "getupdates")
    await load.idle()


async def pair(
    sb: Sandbox,
    *,
    database: str,
    url: str,
    mode: str,
    users: int,
    rounds: int,
    warmup: float,
    duration: float,
    chats: Iterator[int],
    limiter: bool = False,
    profile: str = "",
) -> list[Result]:
    """gradtrack and the echo bot, each in its own process, driven in alternating segments."""
    segment = duration / rounds
    loads = {bot: Load() for bot in BOTS}
    tallies = {bot: Tally() for bot in BOTS}
    with tempfile.TemporaryDirectory() as tmp:
        procs: dict[str, BotProcess] = {}
        try:
            for bot in BOTS:
                procs[bot] = await launch(
                    Path(tmp, bot),
                    sb,
                    url,
                    bot,
                    mode,
                    limiter,
                    profile if bot == "gradtrack" else "",
                )
            connector = aiohttp.TCPConnector(limit=8 * users)
            async with aiohttp.ClientSession(connector=connector) as http:
                tasks = [
                    asyncio.ensure_future(graduate_user(http, sb.url, chats, loads["gradtrack"]))
                    for _ in range(users)
                ] + [
                    asyncio.ensure_future(echo_user(http, sb.url, chat, loads["echo"]))
                    for chat in sb.echo_users[:users]
                ]
                try:
                    for number in range(rounds):
                        order = BOTS if number % 2 == 0 else BOTS[::-1]
                        for bot in order:
                            await measure_segment(
                                sb,
                                procs[bot],
                                loads[bot],
                                tallies[bot],
                                warmup,
                                segment,
                                database=database_name(url),
                                profile=bool(profile) and bot == "gradtrack",
                            )
                finally:
                    for load in loads.values():
                        load.done = True
                        load.go.set()
                    await asyncio.gather(*tasks)
        finally:
            timings = {bot: process.stop() for bot, process in procs.items()}
    return [
        _result(database, mode, bot, limiter, loads[bot], tallies[bot], timings[bot])
        for bot in BOTS
    ]


def _result(
    database: str,
    mode: str,
    bot: str,
    limiter: bool,
    load: Load,
    tally: Tally,
    timings: list[tuple[float, float, int]],
) -> Result:
    def inside(at: float) -> bool:
        return any(start <= at < stop for start, stop in tally.windows)

    seconds = sum(stop - start for start, stop in tally.windows)
    window = [(sent, seen) for sent, seen, _kind in load.samples if inside(seen)]
    handled = [(took, sql) for at, took, sql in timings if inside(at)]
    updates = len(window)
    return Result(
        database=database,
        mode=mode,
        bot=bot,
        limiter=limiter,
        seconds=seconds,
        updates=updates,
        per_second=updates / seconds,
        round_trip=percentiles([seen - sent for sent, seen in window]),
        handler=percentiles([took for took, _sql in handled]),
        handled=len(handled),
        sql=sum(sql for _took, sql in handled) / max(1, len(handled)),
        cpu_ms=tally.cpu / max(1, updates) * 1000,
        calls=tally.calls / max(1, updates),
        sandbox_cpu=tally.sandbox_cpu / seconds,
        driver_cpu=tally.driver_cpu / seconds,
        db_cpu_ms=tally.db_cpu / max(1, updates) * 1000,
        others_cpu=tally.others_cpu / seconds,
        errors=load.errors,
        graduates=load.graduates_done,
    )


# ------------------------------------------------------------------ reporting


def _ms(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.0f}" if v >= 10 else f"{v:.1f}" for v in values)


def print_table(results: list[Result]) -> None:
    rate = {(r.database, r.mode, r.limiter, r.bot): r.per_second for r in results}
    print(
        "| database | mode | bot | updates/s | gradtrack/echo | round trip p50/p95/p99 ms | "
        "handler p50/p95/p99 ms | CPU ms/update: bot (+ PostgreSQL) | Bot API calls/update | "
        "SQL statements/update | CPU share: sandbox / users / rest of the machine |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        ratio = ""
        if r.bot == "gradtrack":
            echo = rate.get((r.database, r.mode, r.limiter, "echo"))
            ratio = f"**{r.per_second / echo:.2f}**" if echo else ""
        name = r.bot + (" (rate limiter)" if r.limiter else "")
        cpu = f"{r.cpu_ms:.1f}"
        if r.database == "postgresql" and r.bot == "gradtrack":
            cpu += f" (+ {r.db_cpu_ms:.1f})"
        print(
            f"| {r.database} | {r.mode} | {name} | {r.per_second:.1f} | {ratio} | "
            f"{_ms(r.round_trip)} | {_ms(r.handler)} | {cpu} | {r.calls:.2f} | {r.sql:.1f} | "
            f"{r.sandbox_cpu:.0%} / {r.driver_cpu:.0%} / {r.others_cpu:.0%} |"
        )


def print_profile(path: str, top: int = 25) -> None:
    """Where the bot process's main thread (the event loop) spends the measured windows: own
    time by package, then functions by cumulative time (a coroutine's time counts while it
    runs, not while it awaits)."""
    stats = pstats.Stats(path)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    groups: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        found = re.search(r"site-packages/([^/]+)", filename)
        if found:
            group = found.group(1).removesuffix(".py")
        elif filename.startswith(str(ROOT)):
            group = "gradtrack: " + Path(filename).relative_to(ROOT).parts[0]
        elif filename == "~":
            owner = re.search(r"of '([\w.]+)' objects|built-in method ([\w.]+)", name)
            label = (owner.group(1) or owner.group(2)) if owner else name
            group = "built-in: " + label.rsplit(".", 1)[0]
            if group == "built-in: select":
                group = "(idle: the event loop waiting for I/O)"
        else:
            group = "stdlib: " + Path(filename).stem
        groups[group] = groups.get(group, 0.0) + tottime
    print(f"the event loop's time by package, own time ({total:.1f} s in all):")
    for group, seconds in sorted(groups.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {seconds / total:6.1%}  {group}")
    print(f"top {top} functions by cumulative time:")
    stats.sort_stats("cumulative").print_stats(top)


# ------------------------------------------------------------------ main


async def run(args: argparse.Namespace) -> None:
    began = time.perf_counter()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    print(f"command: .venv/bin/python -m bench.updates_bench {' '.join(sys.argv[1:])}".rstrip())
    print(machine())
    print(
        f"{args.users} users per bot (closed loop); per row {args.duration:.0f} s measured in "
        f"{args.rounds} segments, each after {args.warmup:.1f} s of load; "
        f"{args.graduates} graduates seeded"
    )
    results: list[Result] = []
    for kind in kinds:
        async with (
            database(kind, args.pg_url) as url,
            sandbox_process(args.graduates, args.users) as sb,
        ):
            print(f"database: {await describe_database(url)}")
            seeding = time.perf_counter()
            chats = iter(await seed(url, sb.first_user, args.graduates, args.with_survey))
            print(f"  seeded in {time.perf_counter() - seeding:.0f} s", flush=True)
            plan = [("polling", False), ("webhook", False)]
            if args.limiter_rows and kind == kinds[0]:
                plan.append(("polling", True))
            for mode, limiter in plan:
                print(f"  {kind} {mode}{' with its rate limiter' if limiter else ''}:", flush=True)
                rows = await pair(
                    sb,
                    database=kind,
                    url=url,
                    mode=mode,
                    users=args.users,
                    rounds=args.rounds,
                    warmup=args.warmup,
                    duration=args.duration,
                    chats=chats,
                    limiter=limiter,
                )
                results += rows
                for r in rows:
                    print(
                        f"    {r.bot}: {r.per_second:.1f} updates/s, {r.handled} handled in "
                        f"{r.seconds:.1f} s, errors {r.errors}, graduates finished {r.graduates}",
                        flush=True,
                    )
            if args.profile and kind == kinds[0]:
                with tempfile.TemporaryDirectory() as tmp:
                    out = str(Path(tmp, "gradtrack.prof"))
                    print(f"  {kind} polling, gradtrack under cProfile:", flush=True)
                    profiled = await pair(
                        sb,
                        database=kind,
                        url=url,
                        mode="polling",
                        users=args.users,
                        rounds=1,
                        warmup=args.warmup,
                        duration=args.profile,
                        chats=chats,
                        profile=out,
                    )
                    print(f"    {profiled[0].per_second:.1f} updates/s under the profiler")
                    print_profile(out)
    print()
    print_table(results)
    print()
    print(f"total time: {time.perf_counter() - began:.0f} s")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_URL,
        help="PostgreSQL server to create a fresh database on",
    )
    parser.add_argument("--users", type=int, default=8, help="concurrent users per bot")
    parser.add_argument("--rounds", type=int, default=8, help="segments per bot and row")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before a segment")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per row")
    parser.add_argument("--graduates", type=int, default=10_000)
    parser.add_argument(
        "--with-survey", type=int, default=1_000, help="graduates with the questionnaire open"
    )
    parser.add_argument("--limiter-rows", action="store_true", help="also with the rate limiters")
    parser.add_argument("--profile", type=float, default=0.0, help="seconds under cProfile")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
