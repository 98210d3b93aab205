"""Benchmark: how long a person waits for an answer from the scheduler leader while it sends a
broadcast, against a worker that sends nothing in bulk; with python-telegram-bot's
AIORateLimiter (one queue for replies and bulk sends, as gradtrack shipped before issue 14)
and with gradtrack's ReplyFirstRateLimiter (bot/ratelimit.py), side by side in one run.

The sandbox runs in its own process (`--no-rate-limits`: the bot's limiter is what is
measured). This process runs the bot (polling, SQLite), the news dispatcher and the people.
`--people` people each send /help, wait for the answer and `THINK` seconds more, in a closed
loop. Segments of `--seconds` alternate, `--rounds` times: for each limiter, *idle* (replies
only: a worker) and *broadcast* (the news dispatcher sends a broadcast to `--recipients`
graduates meanwhile, at `--bulk` per second as the scheduler does: `dispatch_news` with
`RateLimiter(BULK_SEND_PER_SECOND)` and 4 senders). Reported per limiter and segment kind: the
people's round trip (their send to the answer seen in the sandbox) p50/p95/max, how long
each reply waited in the rate limiter (the part the limiter decides; the rest is the
machine), answers, and the bulk messages sent per second.

    .venv/bin/python -m bench.replies_bench [--bulk 20 30] [--seconds 6] [--rounds 2]
        [--people 4] [--recipients 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from telegram.ext import AIORateLimiter, BaseRateLimiter

from bench.common import TOKEN, Bench, bench, machine, seed_graduates
from bench.updates_bench import Chat
from bot.app import ALLOWED_UPDATES, build_application
from bot.clock import SystemClock
from bot.delivery import RateLimiter
from bot.metrics import message_kind
from bot.news import dispatch_news
from bot.ratelimit import ReplyFirstRateLimiter
from bot.settings import Settings
from storage import news
from storage.models import Broadcast

THINK = 0.3
LIMITERS = ("AIORateLimiter", "ReplyFirstRateLimiter")


@dataclass
class Row:
    round_trips: list[float] = field(default_factory=list)
    #: How long each reply (sendMessage) waited in the rate limiter before it went out.
    limiter_waits: list[float] = field(default_factory=list)
    #: `Application.process_update` of each person's update, in this process.
    handler: list[float] = field(default_factory=list)
    errors: int = 0
    bulk_sent: int = 0
    seconds: float = 0.0


class Timed(BaseRateLimiter[Any]):
    """A rate limiter, with the time each reply waited in it before its call went out."""

    def __init__(self, inner: BaseRateLimiter[Any], waits: list[float]) -> None:
        self.inner = inner
        self.waits = waits

    async def initialize(self) -> None:
        await self.inner.initialize()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    async def process_request(
        self,
        callback: Any,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Any,
    ) -> Any:
        entered = time.perf_counter()
        waited: list[float] = []

        async def call(*a: Any, **k: Any) -> Any:
            if not waited:
                waited.append(time.perf_counter() - entered)
            return await callback(*a, **k)

        try:
            return await self.inner.process_request(
                call, args, kwargs, endpoint, data, rate_limit_args
            )
        finally:
            if waited and endpoint == "sendMessage" and message_kind() == "reply":
                self.waits.append(waited[0])


def limiter(name: str, bulk: float, row: Row) -> BaseRateLimiter[Any]:
    inner: BaseRateLimiter[Any] = (
        AIORateLimiter(max_retries=3)
        if name == "AIORateLimiter"
        else ReplyFirstRateLimiter(bulk, max_retries=3)
    )
    return Timed(inner, row.limiter_waits)


def answered(before: int) -> Any:
    def check(changed: list[dict[str, Any]]) -> dict[str, Any] | None:
        for e in changed:
            if e["kind"] == "message" and e["sender"] == "bot" and e["seq"] > before:
                return e
        return None

    return check


async def person(
    http: aiohttp.ClientSession, b: Bench, chat_id: int, until: float, row: Row
) -> None:
    chat = Chat(http, b.sandbox_url, "gradtrack", chat_id)
    await chat.sync()
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            await chat.act("messages", {"text": "/help"}, answered(chat.revision))
        except (TimeoutError, RuntimeError, aiohttp.ClientError):
            row.errors += 1
            await chat.sync()
            continue
        row.round_trips.append(time.perf_counter() - started)
        await asyncio.sleep(THINK)


async def segment(
    b: Bench,
    http: aiohttp.ClientSession,
    name: str,
    bulk: float,
    broadcasting: bool,
    people: list[int],
    seconds: float,
    row: Row,
) -> None:
    settings = Settings(
        database_url=b.url, telegram_bot_token="", bulk_send_per_second=bulk, _env_file=None
    )
    app = build_application(
        settings,
        b.db,
        token=TOKEN,
        base_url=f"{b.sandbox_url}/bot",
        rate_limiter=limiter(name, bulk, row),
        clock=SystemClock(),
    )
    original = app.process_update

    async def timed(update: object) -> None:
        started = time.perf_counter()
        try:
            await original(update)
        finally:
            row.handler.append(time.perf_counter() - started)

    app.process_update = timed  # type: ignore[method-assign]
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0.0, timeout=5, allowed_updates=ALLOWED_UPDATES)
    rt = app.bot_data["gradtrack"]
    dispatcher: asyncio.Task[Any] | None = None
    if broadcasting:
        await news.start_due(b.db, datetime.now(UTC))  # the recipients, before the clock runs
        dispatcher = asyncio.create_task(
            dispatch_news(rt, limiter=RateLimiter(settings.bulk_send_per_second))
        )
    sent_before = await b.sent_calls("sendMessage")
    answers_before = len(row.round_trips)
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(person(http, b, chat, until, row) for chat in people))
    elapsed = time.perf_counter() - started
    if dispatcher is not None:
        dispatcher.cancel()
        await asyncio.gather(dispatcher, return_exceptions=True)
    replies = len(row.round_trips) - answers_before
    row.bulk_sent += await b.sent_calls("sendMessage") - sent_before - replies
    row.seconds += elapsed
    await app.updater.stop()
    await app.stop()
    await app.shutdown()


async def schedule_broadcast(b: Bench, school_id: int) -> None:
    async with b.db.session() as session:
        broadcast = Broadcast(
            institution_id=school_id,
            texts={"nl": "<b>Open dag</b> op 12 maart", "en": "<b>Open day</b> on 12 March"},
            default_language="nl",
            filter=news.Audience(institution_ids=(school_id,)).to_filter(),
        )
        session.add(broadcast)
        await session.flush()
        await news.schedule(session, broadcast, datetime.now(UTC))


def ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f}"


async def run(args: argparse.Namespace) -> None:
    recipients, people_count = args.recipients, args.people
    async with bench(recipients + people_count, None) as b:
        school_id, _ = await seed_graduates(b.db, b.first_user, recipients)
        people = [b.first_user + recipients + i for i in range(people_count)]
        rows: dict[tuple[float, str, str], Row] = {}
        async with aiohttp.ClientSession() as http:
            for _ in range(args.rounds):
                for bulk in args.bulk:
                    for name in LIMITERS:
                        for kind in ("idle", "broadcast"):
                            if kind == "broadcast":
                                await schedule_broadcast(b, school_id)
                            row = rows.setdefault((bulk, name, kind), Row())
                            await segment(
                                b,
                                http,
                                name,
                                bulk,
                                kind == "broadcast",
                                people,
                                args.seconds,
                                row,
                            )
    print(machine() + "; SQLite (temporary file); sandbox in its own process, no rate limits")
    print(
        f"{people_count} people (/help, {THINK} s between answers); {args.rounds} segments of "
        f"{args.seconds:.0f} s per row; broadcasts to {recipients} graduates"
    )
    print(
        "| BULK_SEND_PER_SECOND | rate limiter | process | people's answers | "
        "round trip p50 / p95 / max ms | handler p50 / p95 / max ms | "
        "reply's wait in the rate limiter p50 / p95 / max ms | "
        "bulk sent/s | errors |"
    )
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (bulk, name, kind), row in rows.items():
        trips = row.round_trips
        process = "leader, broadcasting" if kind == "broadcast" else "worker, idle"
        spread = f"{ms(trips, 0.5)} / {ms(trips, 0.95)} / {ms(trips, 1.0)}"
        waits = row.limiter_waits
        held = f"{ms(waits, 0.5)} / {ms(waits, 0.95)} / {ms(waits, 1.0)}"
        h = row.handler
        handled = f"{ms(h, 0.5)} / {ms(h, 0.95)} / {ms(h, 1.0)}"
        rate = f"{row.bulk_sent / row.seconds:.1f}" if kind == "broadcast" else "-"
        print(
            f"| {bulk:.0f} | {name} | {process} | {len(trips)} | {spread} | {handled} | {held} | "
            f"{rate} | {row.errors} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bulk", type=float, nargs="+", default=[20.0, 30.0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--recipients", type=int, default=3000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
