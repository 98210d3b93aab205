"""APScheduler ticks a few dispatcher jobs; the work itself is in rows with due times.

No job per graduate and nothing pickled: `dispatch` claims due invitations and reminders,
`plan` creates the rows newly imported or newly consenting graduates are owed, `retention`
erases personal data past the retention period. Every job is safe to run twice at once or
to miss a tick.
"""

from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.delivery import RateLimiter, dispatch_due
from bot.news import dispatch_news
from bot.runtime import Runtime
from storage.invitations import plan_invitations

log = logging.getLogger(__name__)


async def plan_job(rt: Runtime) -> int:
    created = await plan_invitations(rt.db, rt.plans, now=rt.clock.now())
    if created:
        log.info("planned %d invitations and reminders", created)
    return created


async def retention_job(rt: Runtime) -> int:
    from storage.erasure import retention_sweep

    erased = await retention_sweep(
        rt.db, now=rt.clock.now(), retention_months=rt.settings.retention_months
    )
    if erased:
        log.info("retention: erased the personal data of %d graduates", erased)
    return erased


def start_scheduler(rt: Runtime) -> AsyncIOScheduler:
    """Start the dispatcher jobs on the running event loop."""
    limiter = RateLimiter(rt.settings.bulk_send_per_second)
    scheduler = AsyncIOScheduler(timezone="UTC")
    options = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    scheduler.add_job(
        dispatch_due,
        "interval",
        seconds=rt.settings.dispatch_interval_seconds,
        args=[rt],
        kwargs={"limiter": limiter},
        id="dispatch",
        next_run_time=datetime.now(),
        **options,
    )
    scheduler.add_job(
        dispatch_news,
        "interval",
        seconds=rt.settings.dispatch_interval_seconds,
        args=[rt],
        kwargs={"limiter": limiter},
        id="news",
        next_run_time=datetime.now(),
        **options,
    )
    scheduler.add_job(
        plan_job,
        "interval",
        minutes=10,
        args=[rt],
        id="plan",
        next_run_time=datetime.now(),
        **options,
    )
    scheduler.add_job(retention_job, "interval", hours=24, args=[rt], id="retention", **options)
    scheduler.start()
    return scheduler
