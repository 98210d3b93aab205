"""Metrics in Prometheus' text format, served as `GET /metrics` by the service's web app.

    gradtrack_updates_handled_total{type}     updates that went through the handlers
                                              (type: message, callback_query, my_chat_member,
                                              other); a redelivered update dropped by
                                              bot.dedupe is not counted
    gradtrack_handler_seconds                 histogram: from the update entering the handlers
                                              to the last handler finishing
    gradtrack_messages_sent_total{kind}       messages Telegram accepted (one per send call):
                                              invitation (invitations and reminders), news,
                                              reply (everything else: answers in the chat,
                                              questions, officers' progress reports)
    gradtrack_telegram_errors_total{code}     Bot API answers 429 and 403, 5xx, and calls that
                                              failed on the network (code: 429, 403, 5xx,
                                              network); every call counts, also the 429s that
                                              python-telegram-bot's rate limiter then retried
    gradtrack_invitations_due                 pending invitations and reminders due now
    gradtrack_news_pending                    news deliveries not sent yet (pending)

plus the `process_*` metrics (CPU, memory, open files) of prometheus_client.

Metrics are per process: each `gradtrack serve` worker counts what it did itself and serves
its own counters, so let Prometheus scrape every worker (and sum over them). The two gauges
are counted in the database at scrape time, so every worker shows the same, whole-service
value for them (aggregate those with max, not sum).

Each Application has a `Metrics` of its own, on a `CollectorRegistry` of its own (never
prometheus_client's global one): a test or a benchmark building several applications in one
process gets separate, fresh counters. The counting happens at two places: two TypeHandlers
around all others (`update_started`, `update_finished`, the pattern of bot.dedupe), and the
HTTP transport of the bot (`InstrumentedRequest`), which sees every Bot API call and its HTTP
status; the kind of a message sent is the one `sending()` set in the sending task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from sqlalchemy import func, select
from sqlmodel import col
from telegram import Update
from telegram.ext import ContextTypes
from telegram.request import HTTPXRequest, RequestData

from bot import logs
from storage.db import Database
from storage.models import Delivery, DeliveryStatus, Invitation, InvitationStatus

log = logging.getLogger(__name__)

# The classic text format (what Prometheus asks for by default and every scraper reads).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_KEY = "gradtrack_metrics"

#: Handler groups of the two timing handlers: before bot.dedupe (-1), after claim_leftover.
FIRST_GROUP = -10
LAST_GROUP = 1000

UPDATE_TYPES = ("message", "callback_query", "my_chat_member", "other")
KINDS = ("invitation", "news", "reply")
ERROR_CODES = ("429", "403", "5xx", "network")
# Handler latency: replies take tens of milliseconds; a slow database shows in the tail.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Bot API methods that send a message (sendChatAction shows "typing…" and sends none).
_SEND_METHODS = {"copymessage", "copymessages", "forwardmessage", "forwardmessages"}

# The `_created` series double every counter for little use.
disable_created_metrics()

_kind: ContextVar[str] = ContextVar("gradtrack_message_kind", default="reply")
_started: ContextVar[float | None] = ContextVar("gradtrack_update_started", default=None)


class Metrics:
    """The metrics of one process's bot, on a registry of their own."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.updates_handled = Counter(
            "gradtrack_updates_handled",
            "Telegram updates that went through the handlers, by type.",
            ["type"],
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "gradtrack_handler_seconds",
            "Seconds from an update entering the handlers to the last handler finishing.",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.messages_sent = Counter(
            "gradtrack_messages_sent",
            "Messages Telegram accepted, by kind (invitation, news, reply).",
            ["kind"],
            registry=self.registry,
        )
        self.telegram_errors = Counter(
            "gradtrack_telegram_errors",
            "Bot API calls answered 429, 403 or 5xx, or failed on the network.",
            ["code"],
            registry=self.registry,
        )
        self.updates_throttled = Counter(
            "gradtrack_updates_throttled",
            "Updates dropped because their chat sent faster than THROTTLE_PER_SECOND.",
            registry=self.registry,
        )
        self.updates_refused = Counter(
            "gradtrack_updates_refused",
            "Updates dropped because they did not come from a private chat with the bot.",
            registry=self.registry,
        )
        self.invitations_due = Gauge(
            "gradtrack_invitations_due",
            "Invitations and reminders pending with a due time in the past (whole service).",
            registry=self.registry,
        )
        self.news_pending = Gauge(
            "gradtrack_news_pending",
            "News deliveries pending: not sent yet (whole service).",
            registry=self.registry,
        )
        # Every series from the start, at 0: a rate() needs the zero before the first event.
        for update_type in UPDATE_TYPES:
            self.updates_handled.labels(type=update_type)
        for kind in KINDS:
            self.messages_sent.labels(kind=kind)
        for code in ERROR_CODES:
            self.telegram_errors.labels(code=code)
        if process:
            ProcessCollector(registry=self.registry)

    # -- the Bot API transport --------------------------------------------------------

    def api_answered(self, api_method: str, status: int) -> None:
        """Count one Bot API answer (`api_method` as in the URL, e.g. sendMessage)."""
        if 200 <= status < 300:
            name = api_method.lower()
            if name in _SEND_METHODS or (name.startswith("send") and name != "sendchataction"):
                self.messages_sent.labels(kind=_kind.get()).inc()
        elif status == 429:
            self.telegram_errors.labels(code="429").inc()
        elif status == 403:
            self.telegram_errors.labels(code="403").inc()
        elif status >= 500:
            self.telegram_errors.labels(code="5xx").inc()

    def api_failed(self) -> None:
        """Count one Bot API call that got no answer (connection, timeout)."""
        self.telegram_errors.labels(code="network").inc()

    # -- scraping ---------------------------------------------------------------------

    async def refresh(self, db: Database, now: datetime) -> None:
        """Count the due invitations and the pending news in the database (two COUNTs over
        indexed columns: invitation.status / due_at and delivery.status)."""
        due = (
            select(func.count())
            .select_from(Invitation)
            .where(
                col(Invitation.status) == InvitationStatus.PENDING.value,
                col(Invitation.due_at) <= now,
            )
        )
        pending = (
            select(func.count())
            .select_from(Delivery)
            .where(col(Delivery.status) == DeliveryStatus.PENDING.value)
        )
        try:
            async with db.engine.connect() as conn:
                self.invitations_due.set((await conn.scalar(due)) or 0)
                self.news_pending.set((await conn.scalar(pending)) or 0)
        except Exception:  # the counters are still worth serving without the database
            log.warning("metrics: could not count due invitations and news", exc_info=True)
            self.invitations_due.set(float("nan"))
            self.news_pending.set(float("nan"))

    def exposition(self) -> bytes:
        """Everything, in Prometheus' text format (CONTENT_TYPE)."""
        return generate_latest(self.registry)


def metrics_of(application: Any) -> Metrics:
    """The Metrics of `application` (a new one if it has none yet)."""
    bot_data = application.bot_data
    found = bot_data.get(METRICS_KEY)
    if not isinstance(found, Metrics):
        found = bot_data[METRICS_KEY] = Metrics()
    return found


def message_kind() -> str:
    """The kind of message this task sends now: "reply", or the kind `sending()` set."""
    return _kind.get()


@contextmanager
def sending(kind: str) -> Iterator[None]:
    """Messages sent inside the block (in this task) count as `kind`."""
    token = _kind.set(kind)
    try:
        yield
    finally:
        _kind.reset(token)


class InstrumentedRequest(HTTPXRequest):
    """python-telegram-bot's HTTP transport, counting every Bot API answer in `metrics`."""

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        write_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        connect_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        pool_timeout: Any = HTTPXRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        try:
            status, payload = await super().do_request(
                url,
                method,
                request_data=request_data,
                read_timeout=read_timeout,
                write_timeout=write_timeout,
                connect_timeout=connect_timeout,
                pool_timeout=pool_timeout,
            )
        except Exception:
            self.metrics.api_failed()
            raise
        self.metrics.api_answered(url.rsplit("/", 1)[-1], status)
        return status, payload


# -- the two handlers around all others ------------------------------------------------


def update_type(update: Update) -> str:
    if update.message is not None:
        return "message"
    if update.callback_query is not None:
        return "callback_query"
    if update.my_chat_member is not None:
        return "my_chat_member"
    return "other"


async def update_started(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """First handler (group FIRST_GROUP): start the clock; the update's id and chat go into
    every log record until it is done."""
    _started.set(time.perf_counter())
    chat = update.effective_chat
    logs.clear()
    logs.bind(update_id=update.update_id, chat=logs.chat_ref(chat.id) if chat is not None else None)


async def update_finished(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Last handler (group LAST_GROUP, also after a handler failed): count and time it."""
    started = _started.get()
    _started.set(None)
    logs.clear()
    if started is None:
        return
    metrics = metrics_of(context.application)
    metrics.updates_handled.labels(type=update_type(update)).inc()
    metrics.handler_seconds.observe(time.perf_counter() - started)
