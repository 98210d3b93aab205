"""Benchmark (issue 16): the web chat's answer round trip with many people at once, next to the
Telegram path, on the same service process.

Processes, as in bench/updates_bench.py: the sandbox Bot API (`python -m bot.sandbox
--no-rate-limits`), one `gradtrack serve` (the webhook route and the web app with the web chat
at `/c/<token>`, on a loopback port; launched with updates_bench's `_child`, which times each
update and each web chat request and counts its SQL statements), and this process, which
seeds the database and plays the people: the web chat's people with tests/webchat.py's
WebGraduate (an aiohttp client that reads the page and posts its forms, as a browser without
scripts does), the Telegram people over the sandbox's user-side API (updates_bench's Chat).

Per database, on one fresh service: `--channels apart` (the default) plays `--people` web
chat graduates, then `--people` Telegram graduates, in windows of their own; `--channels
together` plays half of `--people` on each channel in the same windows (so that a noisy,
shared machine weighs on both alike; the service's CPU is then shared by both); `both` does
the two, each on a fresh database and service. The graduates are fresh roster rows (no chat,
no consent yet). Two phases, all people at once in each (a closed loop, `--think` seconds
between a person's actions, ±50 %; the people's first actions spread over one think time):

- onboarding: Start (web: the form's Start; Telegram: `/start <token>`), the language, the
  three consents;
- questionnaire (opened for each graduate in between, as an invitation's Start button leaves
  it): /survey, then `--answers` answers (the first choice, one tick then Done for a multiple
  choice, a typed number or text; 0: the whole questionnaire and Send).

Measured per phase and channel: the round trip a person sees (web: POST until the page after
the 303 is read and parsed, i.e. the next question on screen; Telegram: the update sent until
the next question (or the tick) is seen in the sandbox), p50/p95/p99; answers per second; the
service's CPU per answer (and PostgreSQL's server processes'); SQL statements per answer (all
the service's requests and updates in the window, e.g. POST and page GET for the web);
the service's own time per request (web: POST handler and page GET; Telegram: process_update).

    .venv/bin/python -m bench.webchat_bench [--people 50] [--answers 8] [--think 0]
        [--channels apart|together|both] [--database sqlite|postgresql|both]
        [--database-url postgresql://...] [--profile web|telegram]
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


@dataclass(eq=False)
class Phase:
    """One channel's phase: what the people saw and what the service spent."""

    channel: str
    phase: str
    #: (sent, seen) of every action.
    samples: list[tuple[float, float]] = field(default_factory=list)
    errors: int = 0
    finished: int = 0
    window: tuple[float, float] = (0.0, 0.0)
    #: The answers of every phase measured in the same window (the service's CPU is theirs).
    window_answers: int = 0
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
    #: Seconds between a person's actions (each phase's start is spread over it too).
    think: float = 0.0

    async def open_questionnaires(self, graduates: list[tuple[int, str]]) -> None:
        """Between the phases, outside the measured windows: the tracking questionnaire
        opened for these graduates, as an invitation's Start button would."""
        db = Database(self.url)
        try:
            await open_tracking(db, [i for i, _token in graduates])
        finally:
            await db.dispose()


Person = tuple[Phase, Callable[[], Awaitable[bool | None]]]


async def measured(svc: Service, people: list[Person]) -> None:
    """Run every person's part at once (each in its channel's phase); the service's CPU over
    the window, shared by the phases in it."""
    name = database_name(svc.url)

    def snapshot() -> list[float]:
        return [
            svc.process.cpu(),
            backends_cpu(name),
            cpu_seconds(svc.sandbox.proc.pid),
            time.process_time(),
            machine_busy(),
        ]

    async def one(phase: Phase, person: Callable[[], Awaitable[bool | None]]) -> None:
        # People come in spread over one think time, not all in the same millisecond.
        await asyncio.sleep(random.uniform(0, svc.think))
        try:
            if await person():
                phase.finished += 1
        except (TimeoutError, RuntimeError, StopIteration, aiohttp.ClientError) as exc:
            phase.errors += 1
            print(f"    (a {phase.channel} graduate gave up: {str(exc)[:160]})", flush=True)

    phases = list(dict.fromkeys(phase for phase, _person in people))
    profiling = any(svc.profiled == (p.channel, p.phase) for p in phases)
    before, start = snapshot(), time.time()
    if profiling:
        svc.process.proc.send_signal(signal.SIGUSR1)
    await asyncio.gather(*(one(phase, person) for phase, person in people))
    if profiling:
        svc.process.proc.send_signal(signal.SIGUSR2)
    after, stop = snapshot(), time.time()
    cpu, db_cpu, sandbox, driver, busy = (b - a for a, b in zip(before, after, strict=True))
    answers = sum(len(p.samples) for p in phases)
    for phase in phases:
        phase.window = (start, stop)
        phase.window_answers = answers
        phase.cpu, phase.db_cpu, phase.sandbox_cpu, phase.driver_cpu = cpu, db_cpu, sandbox, driver
        phase.others_cpu = busy - cpu - db_cpu - sandbox - driver


async def run_people(
    svc: Service, web: int, telegram: int, answers: int, think: float, together: bool
) -> list[Phase]:
    """`web` web chat graduates and `telegram` Telegram graduates: onboarding, then the
    questionnaire; the channels one after the other, or `together` in the same windows."""
    phases = {(c, p): Phase(c, p) for c in CHANNELS for p in PHASES}
    web_mine, telegram_mine = svc.graduates[:web], svc.graduates[web : web + telegram]
    graduates = [WebGraduate(svc.process.base_url, token) for _id, token in web_mine]
    connector = aiohttp.TCPConnector(limit=4 * max(1, telegram))
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            chats = [
                Chat(http, svc.sandbox.url, "gradtrack", svc.sandbox.first_user + i)
                for i in range(telegram)
            ]
            onboarding = phases["web", "onboarding"], phases["telegram", "onboarding"]
            questionnaire = phases["web", "questionnaire"], phases["telegram", "questionnaire"]
            steps: list[tuple[list[Person], list[Person]]] = [
                (
                    [
                        (onboarding[0], functools.partial(web_onboarding, g, onboarding[0], think))
                        for g in graduates
                    ],
                    [
                        (
                            onboarding[1],
                            functools.partial(telegram_onboarding, c, t, onboarding[1], think),
                        )
                        for c, (_id, t) in zip(chats, telegram_mine, strict=True)
                    ],
                ),
                (
                    [
                        (
                            questionnaire[0],
                            functools.partial(
                                web_questionnaire, g, questionnaire[0], answers, think
                            ),
                        )
                        for g in graduates
                    ],
                    [
                        (
                            questionnaire[1],
                            functools.partial(
                                telegram_questionnaire, c, questionnaire[1], answers, think
                            ),
                        )
                        for c in chats
                    ],
                ),
            ]
            for number, (on_web, on_telegram) in enumerate(steps):
                if together:
                    await measured(svc, on_web + on_telegram)
                else:
                    await measured(svc, on_web)
                    await measured(svc, on_telegram)
                if number == 0:
                    await svc.open_questionnaires(web_mine + telegram_mine)
    finally:
        for g in graduates:
            await g.close()
    return [phases[c, p] for c in CHANNELS for p in PHASES if (web if c == "web" else telegram)]


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
    #: "apart" (the channels one after the other) or "together" (in the same windows).
    mix: str
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


#: What the service records for each channel's actions.
KINDS = {"web": ("web_post", "web_page"), "telegram": ("update",)}


def row_of(
    kind: str, mix: str, people: int, phase: Phase, records: list[tuple[float, float, int, str]]
) -> Row:
    start, stop = phase.window
    seconds = max(1e-9, stop - start)
    inside = [r for r in records if start <= r[0] < stop and r[3] in KINDS[phase.channel]]
    answers = len(phase.samples)
    handlers: dict[str, tuple[float, float, float]] = {}
    sql_by_kind: dict[str, float] = {}
    for name in KINDS[phase.channel]:
        mine = [r for r in inside if r[3] == name]
        if mine:
            handlers[name] = percentiles([r[1] for r in mine])
            sql_by_kind[name] = sum(r[2] for r in mine) / len(mine)
    return Row(
        database=kind,
        mix=mix,
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
        cpu_ms=phase.cpu / max(1, phase.window_answers) * 1000,
        db_cpu_ms=phase.db_cpu / max(1, phase.window_answers) * 1000,
        sandbox_share=phase.sandbox_cpu / seconds,
        driver_share=phase.driver_cpu / seconds,
        others_share=phase.others_cpu / seconds,
    )


async def bench_database(
    kind: str,
    pg_url: str,
    people: int,
    answers: int,
    think: float,
    profile: str = "",
    together: bool = False,
) -> list[Row]:
    """Both channels' runs on one fresh database and one service process: `people` on each
    channel one after the other, or (`together`) half of them on each channel at once.
    `profile`: the service's questionnaire phase of that channel under cProfile, printed."""
    web, telegram = ((people + 1) // 2, people // 2) if together else (people, people)
    async with database(kind, pg_url) as url, sandbox_process(max(1, telegram), 1) as sb:
        print(f"database: {await describe_database(url)}", flush=True)
        await seed(url, sb.first_user, web + telegram, 0, onboarded=False)
        graduates = await invite_tokens(url)
        with tempfile.TemporaryDirectory() as tmp:
            stats = str(Path(tmp, "serve.prof")) if profile else ""
            process = await launch(
                Path(tmp, "serve"), sb, url, "gradtrack", "webhook", False, stats
            )
            records: list[tuple[float, float, int, str]] = []
            try:
                svc = Service(sb, process, url, graduates, think=think)
                if profile:
                    svc.profiled = (profile, "questionnaire")
                phases = await run_people(svc, web, telegram, answers, think, together)
            finally:
                records = process.stop_all()
            if profile:
                print(f"the service during the {profile} questionnaire phase, under cProfile:")
                print_profile(stats)
    mix = "together" if together else "apart"
    return [row_of(kind, mix, web if p.channel == "web" else telegram, p, records) for p in phases]


def _ms(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.0f}" if v >= 10 else f"{v:.1f}" for v in values)


def print_table(rows: list[Row]) -> None:
    print(
        "| database | channels | phase | channel | people | answers | answers/s | "
        "round trip p50/p95/p99 ms | "
        "service time per request p50/p95/p99 ms | CPU ms/answer: service (+ PostgreSQL) | "
        "SQL statements/answer (per request) | "
        "CPU share: sandbox / people / rest of the machine | errors |"
    )
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    names = {"web_post": "POST", "web_page": "page", "update": "update"}
    for r in rows:
        handlers = "; ".join(f"{names[k]} {_ms(v)}" for k, v in r.handlers.items())
        per_request = ", ".join(f"{names[k]} {v:.1f}" for k, v in r.sql_by_kind.items())
        cpu = f"{r.cpu_ms:.1f}"
        if r.database == "postgresql":
            cpu += f" (+ {r.db_cpu_ms:.1f})"
        print(
            f"| {r.database} | {r.mix} | {r.phase} | {r.channel} | {r.people} | {r.answers} | "
            f"{r.per_second:.1f} | "
            f"{_ms(r.round_trip)} | {handlers} | {cpu} | {r.sql:.1f} ({per_request}) | "
            f"{r.sandbox_share:.0%} / {r.driver_share:.0%} / {r.others_share:.0%} | {r.errors} |"
        )
    by = {(r.database, r.mix, r.phase, r.channel): r for r in rows}
    for (db, mix, phase, channel), r in by.items():
        other = by.get((db, mix, phase, "telegram"))
        if channel == "web" and other is not None and other.per_second:
            rate = r.per_second / r.people / (other.per_second / other.people)
            cpu = f", CPU/answer {r.cpu_ms / other.cpu_ms:.2f}" if mix == "apart" else ""
            print(
                f"{db}, {mix}, {phase}: web / Telegram: answers/s per person {rate:.2f}, "
                f"round trip p50 {r.round_trip[0] / other.round_trip[0]:.2f}, "
                f"p99 {r.round_trip[2] / other.round_trip[2]:.2f}{cpu}"
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
        f"{args.people} people at once (apart: on each channel in turn; together: half on "
        f"each channel); {args.answers or 'all'} answers each after onboarding; think time "
        f"{args.think:g} s (±50 %)",
        flush=True,
    )
    rows: list[Row] = []
    for kind in kinds:
        profile = args.profile if kind == kinds[0] else ""
        mixes = {"apart": [False], "together": [True], "both": [True, False]}[args.channels]
        for together in mixes:
            rows += await bench_database(
                kind, pg_url, args.people, args.answers, args.think, profile, together
            )
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
    p.add_argument(
        "--channels",
        choices=("apart", "together", "both"),
        default="apart",
        help="apart: --people on each channel, one channel after the other; together: half "
        "of --people on each channel, in the same windows (a noisy machine weighs on both)",
    )
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
