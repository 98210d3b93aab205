"""Benchmark (issue 16): the web chat's answer round trip with many people at once, next to the
Telegram path, on the same service process.

Processes, as in bench/updates_bench.py: the sandbox Bot API (`python -m bot.sandbox
--no-rate-limits`), one `gradtrack serve` (the webhook route and the web app with the web chat
at `/c/<token>`, on a loopback port; launched with updates_bench's `_child`, which times each
update and each web chat request and counts its SQL statements), and this process, which
seeds the database and plays the people: the web chat's people with tests/webchat.py's
WebGraduate (an aiohttp client that reads the page and posts its forms, as a browser without
scripts does), the Telegram people over the sandbox's user-side API (updates_bench's Chat).

Per database, two runs one after the other on the same service: `--people` web chat
graduates, then `--people` Telegram graduates (fresh roster rows: no chat, no consent yet;
the tracking questionnaire open for each, as an invitation leaves it). Each run has two
phases, all people at once in each (a closed loop, `--think` seconds between a person's
actions, ±50 %):

- onboarding: Start (web: the form's Start; Telegram: `/start <token>`), the language, the
  three consents;
- questionnaire: /survey, then `--answers` answers (the first choice, one tick then Done for a
  multiple choice, a typed number or text; 0: the whole questionnaire and Send).

Measured per phase and channel: the round trip a person sees (web: POST until the page after
the 303 is read and parsed, i.e. the next question on screen; Telegram: the update sent until
the next question (or the tick) is seen in the sandbox), p50/p95/p99; answers per second; the
service's CPU per answer (and PostgreSQL's server processes'); SQL statements per answer (all
the service's requests and updates in the window, e.g. POST and page GET for the web);
the service's own time per request (web: POST handler and page GET; Telegram: process_update).

    .venv/bin/python -m bench.webchat_bench [--people 50] [--answers 8] [--think 0]
        [--database sqlite|postgresql|both] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine
from bench.updates_bench import (
    DEFAULT_PG_URL,
    THANKS,
    BotProcess,
    Chat,
    Check,
    Sandbox,
    backends_cpu,
    cpu_seconds,
    database,
    database_name,
    describe_database,
    launch,
    machine_busy,
    new_prompt,
    next_answer,
    open_tracking,
    percentiles,
    print_profile,
    sandbox_process,
    seed,
    survey_step,
)
from storage.db import Database
from storage.models import Graduate
from tests.webchat import Page, PageMessage, WebGraduate

CHANNELS = ("web", "telegram")
PHASES = ("onboarding", "questionnaire")
SAVED = "Thank you! Your choices are saved"


@dataclass
class Phase:
    """One channel's phase: what the people saw and what the service spent."""

    channel: str
    phase: str
    #: (sent, seen) of every action.
    samples: list[tuple[float, float]] = field(default_factory=list)
    errors: int = 0
    finished: int = 0
    window: tuple[float, float] = (0.0, 0.0)
    cpu: float = 0.0
    db_cpu: float = 0.0
    sandbox_cpu: float = 0.0
    driver_cpu: float = 0.0
    others_cpu: float = 0.0

    async def timed(self, action: Awaitable[Any]) -> Any:
        sent = time.time()
        result = await action
        self.samples.append((sent, time.time()))
        return result


async def pause(think: float) -> None:
    if think > 0:
        await asyncio.sleep(think * random.uniform(0.5, 1.5))


# ------------------------------------------------------------------ the web chat's people


def newest_bot(page: Page) -> PageMessage:
    return next(m for m in reversed(page.messages) if m.kind in ("bot", "file"))


def _label_data(message: PageMessage, label: str) -> str:
    return next(d for text, d in message.buttons if text == label or text.endswith(label))


def _web_checked(page: Page) -> Page:
    if page.status != 200 or any("went wrong" in n for n in page.notices()):
        raise RuntimeError(f"page {page.status}: {page.notices()[-1:]}")
    return page


async def web_onboarding(g: WebGraduate, phase: Phase, think: float) -> None:
    await g.open()
    page = _web_checked(await phase.timed(g.start()))
    await pause(think)
    language = _label_data(newest_bot(page), "English")
    page = _web_checked(await phase.timed(g.press_data(language)))
    for _ in range(3):
        await pause(think)
        yes = _label_data(newest_bot(page), "Yes")
        page = _web_checked(await phase.timed(g.press_data(yes)))
    if not newest_bot(page).text.startswith(SAVED):
        raise RuntimeError(f"onboarding ended with {newest_bot(page).text[:80]!r}")


async def web_questionnaire(g: WebGraduate, phase: Phase, answers: int, think: float) -> bool:
    """/survey, then `answers` answers (0: to the end); True if the answers were sent."""
    page = _web_checked(await phase.timed(g.command("survey")))
    done = 0
    while not answers or done < answers:
        shown = newest_bot(page)
        if shown.text.startswith(THANKS):
            return True
        await pause(think)
        action, value = survey_step(shown.buttons, shown.text)
        post = g.type(value) if action == "type" else g.press_data(value)
        page = _web_checked(await phase.timed(post))
        done += 1
    return newest_bot(page).text.startswith(THANKS)


# ------------------------------------------------------------------ the Telegram people


def _said(prefix: str, before: int) -> Check:
    def check(changed: list[dict[str, Any]]) -> dict[str, Any] | None:
        for e in changed:
            if (
                e["kind"] == "message"
                and e["sender"] == "bot"
                and e["seq"] > before
                and (e.get("text") or "").startswith(prefix)
            ):
                return e
        return None

    return check


def _press(entry: dict[str, Any], label: str) -> dict[str, Any]:
    markup = entry.get("reply_markup") or {}
    buttons = [b for row in markup.get("inline_keyboard", ()) for b in row]
    data = next(
        b["callback_data"]
        for b in buttons
        if b.get("text") == label or str(b.get("text", "")).endswith(label)
    )
    return {"message_id": entry["message_id"], "callback_data": data}


async def telegram_onboarding(chat: Chat, token: str, phase: Phase, think: float) -> None:
    await chat.sync()
    current = await phase.timed(
        chat.act("messages", {"text": f"/start {token}"}, new_prompt(chat.revision))
    )
    await pause(think)
    current = await phase.timed(
        chat.act("press", _press(current, "English"), new_prompt(chat.revision))
    )
    for n in range(3):
        await pause(think)
        expect = _said(SAVED, chat.revision) if n == 2 else new_prompt(chat.revision)
        current = await phase.timed(chat.act("press", _press(current, "Yes"), expect))


async def telegram_questionnaire(chat: Chat, phase: Phase, answers: int, think: float) -> bool:
    path, body, expect = "messages", {"text": "/survey"}, new_prompt(chat.revision)
    done = -1  # /survey is not an answer
    while not answers or done < answers:
        current = await phase.timed(chat.act(path, body, expect))
        done += 1
        if (current.get("text") or "").startswith(THANKS):
            return True
        await pause(think)
        path, body, _kind, expect = next_answer(current, chat.revision)
    return False


# ------------------------------------------------------------------ one run


@dataclass
class Service:
    sandbox: Sandbox
    process: BotProcess
    url: str
    #: (id, invite token) of the seeded graduates, in order: the first half for the web chat.
    graduates: list[tuple[int, str]]
    #: The service runs under cProfile (paused) and this phase is profiled: (channel, phase).
    profiled: tuple[str, str] | None = None

    async def open_questionnaires(self, graduates: list[tuple[int, str]]) -> None:
        """Between the phases, outside the measured windows: the tracking questionnaire
        opened for these graduates, as an invitation's Start button would."""
        db = Database(self.url)
        try:
            await open_tracking(db, [i for i, _token in graduates])
        finally:
            await db.dispose()


async def measured(
    svc: Service,
    phase: Phase,
    people: list[Callable[[], Awaitable[bool | None]]],
) -> None:
    """Run every person's part of `phase` at once; the service's CPU over the window."""
    name = database_name(svc.url)

    def snapshot() -> list[float]:
        return [
            svc.process.cpu(),
            backends_cpu(name),
            cpu_seconds(svc.sandbox.proc.pid),
            time.process_time(),
            machine_busy(),
        ]

    async def one(person: Callable[[], Awaitable[bool | None]]) -> None:
        try:
            if await person():
                phase.finished += 1
        except (TimeoutError, RuntimeError, StopIteration, aiohttp.ClientError) as exc:
            phase.errors += 1
            print(f"    (a {phase.channel} graduate gave up: {str(exc)[:160]})", flush=True)

    profiling = svc.profiled == (phase.channel, phase.phase)
    before, start = snapshot(), time.time()
    if profiling:
        svc.process.proc.send_signal(signal.SIGUSR1)
    await asyncio.gather(*(one(p) for p in people))
    if profiling:
        svc.process.proc.send_signal(signal.SIGUSR2)
    after, stop = snapshot(), time.time()
    cpu, db_cpu, sandbox, driver, busy = (b - a for a, b in zip(before, after, strict=True))
    phase.window = (start, stop)
    phase.cpu, phase.db_cpu, phase.sandbox_cpu, phase.driver_cpu = cpu, db_cpu, sandbox, driver
    phase.others_cpu = busy - cpu - db_cpu - sandbox - driver


async def web_run(svc: Service, people: int, answers: int, think: float) -> list[Phase]:
    onboarding, questionnaire = Phase("web", "onboarding"), Phase("web", "questionnaire")
    mine = svc.graduates[:people]
    graduates = [WebGraduate(svc.process.base_url, token) for _id, token in mine]
    try:
        await measured(
            svc,
            onboarding,
            [functools.partial(web_onboarding, g, onboarding, think) for g in graduates],
        )
        await svc.open_questionnaires(mine)
        await measured(
            svc,
            questionnaire,
            [
                functools.partial(web_questionnaire, g, questionnaire, answers, think)
                for g in graduates
            ],
        )
    finally:
        for g in graduates:
            await g.close()
    return [onboarding, questionnaire]


async def telegram_run(svc: Service, people: int, answers: int, think: float) -> list[Phase]:
    onboarding = Phase("telegram", "onboarding")
    questionnaire = Phase("telegram", "questionnaire")
    mine = svc.graduates[people : 2 * people]
    connector = aiohttp.TCPConnector(limit=4 * people)
    async with aiohttp.ClientSession(connector=connector) as http:
        chats = [
            Chat(http, svc.sandbox.url, "gradtrack", svc.sandbox.first_user + i)
            for i in range(people)
        ]
        await measured(
            svc,
            onboarding,
            [
                functools.partial(telegram_onboarding, c, t, onboarding, think)
                for c, (_id, t) in zip(chats, mine, strict=True)
            ],
        )
        await svc.open_questionnaires(mine)
        await measured(
            svc,
            questionnaire,
            [
                functools.partial(telegram_questionnaire, c, questionnaire, answers, think)
                for c in chats
            ],
        )
    return [onboarding, questionnaire]


async def invite_tokens(url: str) -> list[tuple[int, str]]:
    """(id, invite token) of every graduate, in order."""
    db = Database(url)
    try:
        async with db.session() as session:
            rows = await session.exec(select(Graduate).order_by(col(Graduate.id)))
            return [(g.id or 0, g.invite_token or "") for g in rows.all()]
    finally:
        await db.dispose()


# ------------------------------------------------------------------ results


@dataclass
class Row:
    database: str
    channel: str
    phase: str
    people: int
    answers: int
    finished: int
    errors: int
    per_second: float
    round_trip: tuple[float, float, float]
    #: The service's own time: web POST handler and page GET, or process_update.
    handlers: dict[str, tuple[float, float, float]]
    sql: float
    #: SQL statements per request of each kind ("web_post", "web_page", "update").
    sql_by_kind: dict[str, float]
    cpu_ms: float
    db_cpu_ms: float
    sandbox_share: float
    driver_share: float
    others_share: float


def row_of(
    kind: str, people: int, phase: Phase, records: list[tuple[float, float, int, str]]
) -> Row:
    start, stop = phase.window
    seconds = max(1e-9, stop - start)
    inside = [r for r in records if start <= r[0] < stop]
    answers = len(phase.samples)
    handlers: dict[str, tuple[float, float, float]] = {}
    sql_by_kind: dict[str, float] = {}
    for name in ("web_post", "web_page", "update"):
        mine = [r for r in inside if r[3] == name]
        if mine:
            handlers[name] = percentiles([r[1] for r in mine])
            sql_by_kind[name] = sum(r[2] for r in mine) / len(mine)
    return Row(
        database=kind,
        channel=phase.channel,
        phase=phase.phase,
        people=people,
        answers=answers,
        finished=phase.finished,
        errors=phase.errors,
        per_second=answers / seconds,
        round_trip=percentiles([seen - sent for sent, seen in phase.samples]),
        handlers=handlers,
        sql=sum(r[2] for r in inside) / max(1, answers),
        sql_by_kind=sql_by_kind,
        cpu_ms=phase.cpu / max(1, answers) * 1000,
        db_cpu_ms=phase.db_cpu / max(1, answers) * 1000,
        sandbox_share=phase.sandbox_cpu / seconds,
        driver_share=phase.driver_cpu / seconds,
        others_share=phase.others_cpu / seconds,
    )


async def bench_database(
    kind: str, pg_url: str, people: int, answers: int, think: float, profile: str = ""
) -> list[Row]:
    """Both channels' runs on one fresh database and one service process. `profile`: the
    service's web chat questionnaire phase under cProfile, printed at the end."""
    async with database(kind, pg_url) as url, sandbox_process(people, 1) as sb:
        print(f"database: {await describe_database(url)}", flush=True)
        await seed(url, sb.first_user, 2 * people, 0, onboarded=False)
        graduates = await invite_tokens(url)
        with tempfile.TemporaryDirectory() as tmp:
            stats = str(Path(tmp, "serve.prof")) if profile else ""
            process = await launch(
                Path(tmp, "serve"), sb, url, "gradtrack", "webhook", False, stats
            )
            records: list[tuple[float, float, int, str]] = []
            try:
                svc = Service(sb, process, url, graduates)
                if profile:
                    svc.profiled = (profile, "questionnaire")
                phases = await web_run(svc, people, answers, think)
                phases += await telegram_run(svc, people, answers, think)
            finally:
                records = process.stop_all()
            if profile:
                print(f"the service during the {profile} questionnaire phase, under cProfile:")
                print_profile(stats)
    return [row_of(kind, people, phase, records) for phase in phases]


def _ms(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.0f}" if v >= 10 else f"{v:.1f}" for v in values)


def print_table(rows: list[Row]) -> None:
    print(
        "| database | phase | channel | answers | answers/s | round trip p50/p95/p99 ms | "
        "service time per request p50/p95/p99 ms | CPU ms/answer: service (+ PostgreSQL) | "
        "SQL statements/answer (per request) | "
        "CPU share: sandbox / people / rest of the machine | errors |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    names = {"web_post": "POST", "web_page": "page", "update": "update"}
    for r in rows:
        handlers = "; ".join(f"{names[k]} {_ms(v)}" for k, v in r.handlers.items())
        per_request = ", ".join(f"{names[k]} {v:.1f}" for k, v in r.sql_by_kind.items())
        cpu = f"{r.cpu_ms:.1f}"
        if r.database == "postgresql":
            cpu += f" (+ {r.db_cpu_ms:.1f})"
        print(
            f"| {r.database} | {r.phase} | {r.channel} | {r.answers} | {r.per_second:.1f} | "
            f"{_ms(r.round_trip)} | {handlers} | {cpu} | {r.sql:.1f} ({per_request}) | "
            f"{r.sandbox_share:.0%} / {r.driver_share:.0%} / {r.others_share:.0%} | {r.errors} |"
        )
    by = {(r.database, r.phase, r.channel): r for r in rows}
    for (db, phase, channel), r in by.items():
        other = by.get((db, phase, "telegram"))
        if channel == "web" and other is not None and other.per_second:
            print(
                f"{db}, {phase}: web / Telegram: answers/s {r.per_second / other.per_second:.2f}, "
                f"round trip p50 {r.round_trip[0] / other.round_trip[0]:.2f}, "
                f"CPU/answer {r.cpu_ms / other.cpu_ms:.2f}"
            )


async def run(args: argparse.Namespace) -> list[Row]:
    began = time.perf_counter()
    if args.database:
        kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    else:
        kinds = ["postgresql"] if args.database_url else ["sqlite"]
    pg_url = args.database_url or os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_URL
    print(f"command: .venv/bin/python -m bench.webchat_bench {' '.join(sys.argv[1:])}".rstrip())
    print(machine())
    print(
        f"{args.people} people per channel at once; {args.answers or 'all'} answers each after "
        f"onboarding; think time {args.think:g} s (±50 %)",
        flush=True,
    )
    rows: list[Row] = []
    for kind in kinds:
        profile = args.profile if kind == kinds[0] else ""
        rows += await bench_database(kind, pg_url, args.people, args.answers, args.think, profile)
    print()
    print_table(rows)
    print(f"\ntotal time: {time.perf_counter() - began:.0f} s")
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--people", type=int, default=50, help="people per channel, all at once")
    p.add_argument(
        "--answers", type=int, default=8, help="answers per person after /survey (0: all)"
    )
    p.add_argument("--think", type=float, default=0.0, help="seconds between a person's actions")
    p.add_argument("--database", choices=("sqlite", "postgresql", "both"), default=None)
    p.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL server to create a fresh database on (default: TEST_DATABASE_URL, "
        f"else {DEFAULT_PG_URL}); given alone, the run is on PostgreSQL",
    )
    p.add_argument(
        "--profile",
        choices=CHANNELS,
        default="",
        help="run the service under cProfile during this channel's questionnaire phase (first "
        "database) and print where its time goes; the figures of that phase are then slower",
    )
    return p


def main() -> None:
    asyncio.run(run(parser().parse_args()))


if __name__ == "__main__":
    main()
