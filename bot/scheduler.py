"""APScheduler ticks a few dispatcher jobs; the work itself is in rows with due times.

No job per graduate and nothing pickled: `dispatch` claims due invitations and reminders,
`news` sends alumni news, `plan` creates the rows newly imported or newly consenting
graduates are owed, `prompts` sends questions a crash or a failure of Telegram left unsent,
`retention` erases personal data past the retention period, `cleanup` deletes dashboard
login links and sessions that can no longer be used, `summaries` counts again the statistics
of the programmes that changed (storage/summaries.py), every minute. Every job is
safe to run twice at once or to miss a tick.

Only the scheduler leader runs them (bot/leader.py): on PostgreSQL, several processes share
the database and the one holding the scheduler lock leads; on SQLite the one process does.
The jobs are paused while this process follows; when it becomes the leader they resume (the
dispatchers at once), and when it steps down they are paused again and the work in progress
is stopped. A graceful stop of the process (`LeaderScheduler.stop`) waits for that work to
wind down: the dispatchers give back what they claimed and did not send.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.claims import STOP_WAIT_SECONDS
from bot.delivery import RateLimiter, dispatch_due
from bot.leader import Leadership
from bot.news import dispatch_news
from bot.runtime import Runtime
from conversations.indicators import default_specs
from conversations.prompting import resend_pending_prompts
from storage.invitations import plan_invitations
from storage.summaries import refresh as refresh_summaries

log = logging.getLogger(__name__)

#: Jobs that run as soon as this process becomes the leader; the others wait for their tick.
RUN_AT_ONCE = ("dispatch", "news", "plan", "prompts", "summaries")
#: How often the summary counts are brought up to date: the overview and `/stats` are at most
#: this (and one refresh's time) behind.
SUMMARY_SECONDS = 60


async def plan_job(rt: Runtime) -> int:
    created = await plan_invitations(rt.db, rt.plans, now=rt.clock.now())
    if created:
        log.info("planned %d invitations and reminders", created)
    return created


async def summaries_job(rt: Runtime) -> int | None:
    """Count again the programmes whose statistics changed (all of them the first time)."""
    questions = [spec.questions for spec in default_specs().values()]
    refreshed = await refresh_summaries(rt.db, questions, rt.clock.now())
    if refreshed is None:
        return None
    if refreshed.programmes is None or refreshed.programmes:
        log.info(
            "summaries: counted %s programmes again (%d rows)",
            "all" if refreshed.programmes is None else refreshed.programmes,
            refreshed.rows,
        )
    return refreshed.programmes


async def retention_job(rt: Runtime) -> int:
    from storage.erasure import retention_sweep

    erased = await retention_sweep(
        rt.db, now=rt.clock.now(), retention_months=rt.settings.retention_months
    )
    if erased:
        log.info("retention: erased the personal data of %d graduates", erased)
    return erased


async def cleanup_job(rt: Runtime) -> int:
    """Hourly: expired dashboard logins, and web chats' /mydata files older than a day."""
    from bot.web_channel import delete_old_files
    from storage.staff import purge_logins

    deleted = await purge_logins(rt.db, rt.clock.now())
    if deleted:
        log.info("cleanup: deleted %d expired or ended dashboard logins", deleted)
    files = await delete_old_files(rt.db)  # the rows are stamped with the real time
    if files:
        log.info("cleanup: deleted %d web chat files older than a day", files)
    return deleted + files


class LeaderScheduler(AsyncIOScheduler):
    """An AsyncIOScheduler whose jobs run only while `leadership` says this process leads.

    `shutdown()` also stops watching the leadership and closes the lock connection, which
    hands the lock to another process at once."""

    def __init__(
        self, leadership: Leadership, runtime: Runtime | None = None, **options: Any
    ) -> None:
        super().__init__(**options)
        self.leadership = leadership
        self.runtime = runtime
        self._watch: asyncio.Task[None] | None = None
        self._work: set[asyncio.Task[Any]] = set()
        self._runs: set[asyncio.Task[Any]] = set()
        self._stopping = False

    def add_leader_job(self, func: Callable[..., Awaitable[Any]], **options: Any) -> None:
        """Add `func` as a job, paused until this process leads."""
        options.setdefault("next_run_time", None)  # None: added paused
        self.add_job(self._while_leading(func), **options)

    def watch(self) -> None:
        """Start following the leadership (on the running event loop)."""
        if self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(
                self.leadership.run(self._on_change), name="gradtrack-scheduler-leadership"
            )

    def shutdown(self, wait: bool = True) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self._stand_down()
        self.leadership.terminate()
        super().shutdown(wait)

    async def stop(
        self, grace: float = STOP_WAIT_SECONDS, timeout: float = STOP_WAIT_SECONDS + 5.0
    ) -> None:
        """A graceful stop: pause the jobs and ask the work in progress to stop
        (`Runtime.stopping`: a dispatcher sends no further row, finishes the messages in
        flight and gives back the rows it did not send, bot/claims.py); wait up to `grace`
        for it to end by itself, so that no database transaction is cut in the middle. Work
        still running then is cancelled and given up to `timeout` to wind down; then
        `shutdown`, all before the database closes."""
        self._stopping = True
        if self.runtime is not None:
            self.runtime.stopping = True
        self._stand_down(cancel=False)
        running = self._work | self._runs
        if running:
            _done, running = await asyncio.wait(running, timeout=grace)
        if running:
            log.warning(
                "scheduler: %d jobs still running after %.0f s: cancelled", len(running), grace
            )
            self._stand_down()
            # Before `shutdown`, which cancels the job runs themselves (APScheduler would log
            # each as failed with a CancelledError).
            left = self._work | self._runs
            if left:
                await asyncio.wait(left, timeout=timeout)
        self.shutdown(wait=False)

    @property
    def running_work(self) -> int:
        """How many job runs are in progress."""
        return len(self._work)

    def _on_change(self, leading: bool) -> None:
        if leading and not self._stopping:
            now = datetime.now(UTC)
            for job in self.get_jobs():
                if job.id in RUN_AT_ONCE:
                    self.modify_job(job.id, next_run_time=now)
                else:
                    self.resume_job(job.id)
            log.info("scheduler: dispatcher jobs running in this process")
        else:
            self._stand_down()
            log.info("scheduler: dispatcher jobs paused in this process")

    def _stand_down(self, cancel: bool = True) -> None:
        if self.running:
            for job in self.get_jobs():
                self.pause_job(job.id)
        if cancel:
            for task in list(self._work):
                task.cancel()

    def _while_leading(self, func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(func)
        async def job(*args: Any, **kwargs: Any) -> Any:
            if not self.leadership.is_leader:
                return None
            work = asyncio.ensure_future(func(*args, **kwargs))
            self._work.add(work)
            current = asyncio.current_task()
            if current is not None:
                self._runs.add(current)
            try:
                return await work
            except asyncio.CancelledError:
                if work.cancelled() and (current is None or not current.cancelling()):
                    why = "this process stops" if self._stopping else "this process stepped down"
                    log.info("scheduler: %s stopped (%s)", func.__name__, why)
                    return None
                raise
            finally:
                if current is not None:
                    self._runs.discard(current)
                self._work.discard(work)
                if not work.done():
                    work.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await work

        return job


def start_scheduler(rt: Runtime, leadership: Leadership | None = None) -> LeaderScheduler:
    """Start the dispatcher jobs on the running event loop; they run while this process is
    the scheduler leader (`leadership`, by default on `rt.db` with the default timings)."""
    limiter = RateLimiter(rt.settings.bulk_send_per_second)
    mail_limiter = RateLimiter(rt.settings.mail_send_per_second)
    scheduler = LeaderScheduler(leadership or Leadership(rt.db), rt, timezone="UTC")
    options = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    interval = rt.settings.dispatch_interval_seconds
    scheduler.add_leader_job(
        dispatch_due,
        trigger="interval",
        seconds=interval,
        args=[rt],
        kwargs={"limiter": limiter, "mail_limiter": mail_limiter},
        id="dispatch",
        **options,
    )
    scheduler.add_leader_job(
        dispatch_news,
        trigger="interval",
        seconds=interval,
        args=[rt],
        kwargs={"limiter": limiter},
        id="news",
        **options,
    )
    scheduler.add_leader_job(
        resend_pending_prompts,
        trigger="interval",
        seconds=interval,
        args=[rt],
        id="prompts",
        **options,
    )
    scheduler.add_leader_job(
        plan_job, trigger="interval", minutes=10, args=[rt], id="plan", **options
    )
    scheduler.add_leader_job(
        summaries_job,
        trigger="interval",
        seconds=SUMMARY_SECONDS,
        args=[rt],
        id="summaries",
        **options,
    )
    scheduler.add_leader_job(
        retention_job, trigger="interval", hours=24, args=[rt], id="retention", **options
    )
    scheduler.add_leader_job(
        cleanup_job, trigger="interval", hours=1, args=[rt], id="cleanup", **options
    )
    scheduler.start()
    scheduler.watch()
    return scheduler
