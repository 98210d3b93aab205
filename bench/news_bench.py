"""Benchmark: one alumni-news broadcast to many graduates through the sandbox.

The sandbox runs in its own process; N graduates with a started chat want news; one
broadcast to all of them is scheduled now and the news dispatcher sends it at the configured
bulk rate. Reported: the achieved rate as a fraction of the configured limit (goal: at least
0.95), duplicates seen by the sandbox (goal: 0), our CPU time per message, our peak memory.

    .venv/bin/python -m bench.news_bench [--count 100000] [--rate 200]
        [--database-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy.engine import make_url

from bench.common import bench, command_line, machine, peak_memory_mb, seed_graduates
from bot.delivery import RateLimiter
from bot.news import dispatch_news
from storage import news
from storage.models import Broadcast


async def run(count: int, rate: float, database_url: str | None) -> None:
    async with bench(count, database_url) as b:
        school_id, _ids = await seed_graduates(b.db, b.first_user, count)
        async with b.db.session() as session:
            broadcast = Broadcast(
                institution_id=school_id,
                texts={
                    "nl": "<b>Open dag</b> op 12 maart: kom langs!",
                    "en": "<b>Open day</b> on 12 March: come and visit!",
                },
                default_language="nl",
                filter=news.Audience(institution_ids=(school_id,)).to_filter(),
            )
            session.add(broadcast)
            await session.flush()
            await news.schedule(session, broadcast, datetime.now(UTC))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        report = await dispatch_news(
            b.rt, limiter=RateLimiter(rate, burst=10), batch=1000, concurrency=8
        )
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        calls = await b.sent_calls("sendMessage")
        backend = make_url(b.url).get_backend_name()
    achieved = report.sent / wall
    print(f"{machine()}; database: {backend}")
    print(f"recipients:             {count}")
    print(
        f"sent / blocked / failed / retried: {report.sent} / {report.blocked} / "
        f"{report.failed} / {report.retried}"
    )
    print(f"sandbox Bot API calls:  {calls} (duplicates: {calls - count})")
    print(f"configured limit:       {rate:.0f}/s")
    print(
        f"achieved rate:          {achieved:.1f}/s = {achieved / rate:.3f} of the limit "
        f"({wall:.1f} s, including writing the recipients)"
    )
    print(f"our CPU per message:    {cpu / count * 1000:.2f} ms")
    print(f"our peak memory (RSS):  {peak_memory_mb():.0f} MB")


def main() -> None:
    command_line(__doc__, run)


if __name__ == "__main__":
    main()
