"""Benchmark: does one flooding chat slow down everyone else?

The bot polls an in-process sandbox (flood limits of the sandbox off) on a temporary SQLite
database. Four people each send /help, wait for the answer and half a second more, in a
closed loop, for --duration seconds, in three phases side by side in one run:
- quiet: nobody floods;
- flood, flood control on (as shipped: 3 per second, bursts of 20): one more chat sends
  --rate messages per second;
- flood, flood control off: the same flood.
Reported per phase: the four people's answers per second and their round trip p50/p95, and
what became of the flood (answered, dropped).

    .venv/bin/python -m bench.flood_bench [--duration 10] [--rate 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import machine
from bot.sandbox import RateLimits, SandboxServer
from bot.settings import Settings
from bot.throttle import THROTTLE_KEY, ChatThrottle
from storage.db import Database
from storage.migrate import upgrade
from tests.harness import Harness

PEOPLE = 4
THINK = 0.5  # seconds between a person's answer and their next message: quicker than people


@dataclass
class Phase:
    name: str
    round_trips: list[float] = field(default_factory=list)
    flood_sent: int = 0
    flood_answered: int = 0
    dropped: int = 0
    seconds: float = 0.0

    def row(self, quiet: Phase | None) -> str:
        rate = len(self.round_trips) / self.seconds
        ordered = sorted(self.round_trips)
        p50 = statistics.median(ordered) * 1000
        p95 = ordered[int(0.95 * (len(ordered) - 1))] * 1000
        ratio = f"{rate / (len(quiet.round_trips) / quiet.seconds):.2f}" if quiet else "1.00"
        flood = f"{self.flood_sent} / {self.flood_answered} / {self.dropped}"
        return f"| {self.name} | {rate:.1f} | {ratio} | {p50:.0f} / {p95:.0f} | {flood} |"


async def _person(h: Harness, user_id: int, until: float, phase: Phase) -> None:
    while time.perf_counter() < until:
        started = time.perf_counter()
        await h.sandbox.send_text(h.token, user_id, "/help")
        await h.sandbox.wait_for_bot_messages(h.token, user_id, count=1, timeout=60)
        phase.round_trips.append(time.perf_counter() - started)
        await asyncio.sleep(THINK)


async def _flood(h: Harness, user_id: int, until: float, rate: float, phase: Phase) -> None:
    interval = 1.0 / rate
    next_at = time.perf_counter()
    while time.perf_counter() < until:
        await h.sandbox.send_text(h.token, user_id, f"/help {phase.flood_sent}")
        phase.flood_sent += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


async def _phase(h: Harness, name: str, duration: float, rate: float | None) -> Phase:
    phase = Phase(name)
    people = [h.user("en", first_name=f"Person{i}").id for i in range(PEOPLE)]
    flooder = h.user("en", first_name="Flood").id
    throttle = h.app.bot_data.get(THROTTLE_KEY) if h.app else None
    dropped_before = throttle.dropped if isinstance(throttle, ChatThrottle) else 0
    started = time.perf_counter()
    until = started + duration
    tasks = [_person(h, p, until, phase) for p in people]
    if rate:
        tasks.append(_flood(h, flooder, until, rate, phase))
    await asyncio.gather(*tasks)
    phase.seconds = time.perf_counter() - started
    await asyncio.sleep(2)  # let the bot catch up before counting the flood's answers
    phase.flood_answered = len(h.sandbox.bot_messages(h.token, flooder))
    if isinstance(throttle, ChatThrottle):
        phase.dropped = throttle.dropped - dropped_before
    return phase


async def run(duration: float, rate: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'flood.sqlite3'}"
        await upgrade(url)
        db = Database(url)
        sandbox = SandboxServer(rate_limits=RateLimits(enabled=False), host="127.0.0.1", port=0)
        await sandbox.start()
        settings = Settings(database_url=url, telegram_bot_token="", _env_file=None)
        h = Harness(sandbox, db, settings)
        await h.start_bot()
        try:
            assert h.app is not None
            await _phase(h, "warm-up", 2, None)
            quiet = await _phase(h, "quiet", duration, None)
            h.app.bot_data[THROTTLE_KEY] = ChatThrottle(
                settings.throttle_per_second, settings.throttle_burst
            )
            on = await _phase(h, f"flood of {rate:.0f}/s, flood control on", duration, rate)
            h.app.bot_data[THROTTLE_KEY] = ChatThrottle(0, 1)
            off = await _phase(h, f"flood of {rate:.0f}/s, flood control off", duration, rate)
        finally:
            await h.stop_bot()
            await sandbox.stop()
            await db.dispose()
    print(f"Command: .venv/bin/python -m bench.flood_bench --duration {duration:g} --rate {rate:g}")
    print(f"{machine()}; SQLite; {PEOPLE} people in a closed loop, {duration:.0f} s each")
    print()
    print(
        "| phase | people's answers/s | vs quiet | round trip p50 / p95 ms "
        "| flood sent / answered / dropped |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    print(quiet.row(None))
    print(on.row(quiet))
    print(off.row(quiet))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=300.0)
    args = parser.parse_args()
    asyncio.run(run(args.duration, args.rate))


if __name__ == "__main__":
    main()
