"""Benchmark: claiming and sending many due invitations through the sandbox.

The sandbox runs in its own process (so the CPU time measured here is ours alone); N
graduates with a started chat each have an invitation due now; one dispatcher claims and
sends them all at the configured bulk rate. Reported: total time against the time the
configured rate needs (the ratio; 1.00 is perfect), our CPU time per invitation, our peak
memory, and the sandbox's count of sendMessage calls (duplicates = calls - N).

    .venv/bin/python -m bench.invitations_bench [--count 100000] [--rate 200]
        [--database-url postgresql://postgres@127.0.0.1:5432/test]

Without --database-url a temporary SQLite file is used. With a PostgreSQL URL, the bench
creates and drops its own database next to the one named.
"""

from __future__ import annotations

import time

from sqlalchemy.engine import make_url

from bench.common import (
    bench,
    command_line,
    invitations_due_now,
    machine,
    peak_memory_mb,
    seed_graduates,
)
from bot.delivery import RateLimiter, dispatch_due


async def run(count: int, rate: float, database_url: str | None) -> None:
    async with bench(count, database_url) as b:
        _school, ids = await seed_graduates(b.db, b.first_user, count)
        await invitations_due_now(b.db, ids)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        report = await dispatch_due(
            b.rt, limiter=RateLimiter(rate, burst=10), batch=1000, concurrency=8
        )
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        calls = await b.sent_calls("sendMessage")
        backend = make_url(b.url).get_backend_name()
    ideal = count / rate
    print(f"{machine()}; database: {backend}")
    print(f"invitations due:        {count}")
    print(
        f"sent / skipped / failed / retried: {report.sent} / {report.skipped} / "
        f"{report.failed} / {report.retried}"
    )
    print(f"sandbox Bot API calls:  {calls} (duplicates: {calls - count})")
    print(f"configured bulk rate:   {rate:.0f}/s -> ideal {ideal:.1f} s")
    print(
        f"total time:             {wall:.1f} s (ratio to the configured rate: {ideal / wall:.2f})"
    )
    print(f"our CPU per invitation: {cpu / count * 1000:.2f} ms")
    print(f"our peak memory (RSS):  {peak_memory_mb():.0f} MB")


def main() -> None:
    command_line(__doc__, run)


if __name__ == "__main__":
    main()
