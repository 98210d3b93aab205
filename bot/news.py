"""Sending alumni news: the recipients of due broadcasts, at the bulk rate, resumable.

`dispatch_news` first writes the recipients of every scheduled broadcast that is due (one
`Delivery` row each), then claims pending deliveries in batches and sends them. Each delivery
is marked sent in its own small transaction right after Telegram accepted it; a process that
dies (even with SIGKILL) leaves claimed rows whose claim expires and which are sent then, so
nobody is skipped, and nobody whose message was recorded gets it twice. While a batch is being
sent its claim is renewed, and a dispatcher that is stopped gives back the deliveries it did
not send, pending again at once (bot/claims.py). A cancelled broadcast stops within one
batch: its pending rows are cancelled and nothing more of it is sent.

The officer who scheduled a broadcast sees its progress in the chat, one message edited as
batches go out, and the final report (sent, blocked, failed, pending, cancelled).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlmodel import col, select
from telegram import Bot, Message
from telegram.error import BadRequest, TelegramError

from bot.claims import Held, batch_limit
from bot.delivery import RateLimiter, send_safely
from bot.i18n import _, use_language
from bot.metrics import sending
from bot.runtime import Runtime
from bot.telegram_channel import send_message
from conversations.news_compose import NewsMessage, failures_line, news_footer, render_news
from storage import news
from storage.models import (
    Broadcast,
    BroadcastStatus,
    Delivery,
    DeliveryStatus,
    Graduate,
    Institution,
    Staff,
)

log = logging.getLogger(__name__)


async def send_news(bot: Bot, chat_id: int, news: NewsMessage) -> Message:
    """Send `news` exactly as graduates get it (HTML, photo with caption, link button), as a
    bulk message: Telegram's errors come back as python-telegram-bot raises them, for
    bot.delivery.send_safely to classify."""
    return await send_message(bot, chat_id, news.text, news.keyboard, html=True, photo=news.photo)


LIVE_REFRESH_SECONDS = 0.5


class LiveBroadcasts:
    """Which broadcasts are still sending, re-read at most every half second, so that a
    cancel stops the senders within a moment."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.live: set[int] = set()
        self.known: set[int] = set()
        self.read_at = 0.0
        self.schools: dict[int, str | None] = {}

    async def is_live(self, broadcast_id: int) -> bool:
        now = time.monotonic()
        if broadcast_id not in self.known or now - self.read_at > LIVE_REFRESH_SECONDS:
            self.known.add(broadcast_id)
            self.live = await _still_sending(self.rt, self.known)
            self.read_at = now
        return broadcast_id in self.live

    async def school_name(self, institution_id: int) -> str | None:
        """The name news is signed with (read once per dispatch)."""
        if institution_id not in self.schools:
            async with self.rt.db.session() as session:
                school = await session.get(Institution, institution_id)
            self.schools[institution_id] = school.name if school else None
        return self.schools[institution_id]


@dataclass
class NewsReport:
    started: list[int] = field(default_factory=list)
    claimed: int = 0
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0


async def _claim(rt: Runtime, now: datetime, limit: int) -> list[int]:
    due = or_(
        and_(
            col(Delivery.status) == DeliveryStatus.PENDING.value,
            col(Delivery.due_at) <= now,
        ),
        and_(
            col(Delivery.status) == DeliveryStatus.CLAIMED.value,
            col(Delivery.claimed_at) < now - timedelta(seconds=rt.settings.claim_lease_seconds),
        ),
    )
    async with rt.db.session() as session:
        sending = select(Broadcast.id).where(Broadcast.status == BroadcastStatus.SENDING.value)
        candidates = (
            select(Delivery.id)
            .where(due, col(Delivery.broadcast_id).in_(sending))
            .order_by(col(Delivery.id))
            .limit(limit)
        )
        if rt.db.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        ids = list((await session.exec(candidates)).all())
        if not ids:
            return []
        claimed = await session.exec(
            update(Delivery)
            .where(col(Delivery.id).in_(ids), due)
            .values(
                status=DeliveryStatus.CLAIMED.value,
                claimed_at=now,
                attempts=col(Delivery.attempts) + 1,
            )
            .returning(col(Delivery.id))
        )
        return sorted(claimed.scalars().all())


async def _record(rt: Runtime, delivery_id: int, status: DeliveryStatus, **values: object) -> None:
    async with rt.db.engine.begin() as conn:
        await conn.execute(
            update(Delivery)
            .where(col(Delivery.id) == delivery_id)
            .values(status=status.value, claimed_at=None, **values)
        )


async def _still_sending(rt: Runtime, broadcast_ids: set[int]) -> set[int]:
    async with rt.db.session() as session:
        rows = await session.exec(
            select(Broadcast.id).where(
                col(Broadcast.id).in_(broadcast_ids),
                Broadcast.status == BroadcastStatus.SENDING.value,
            )
        )
        return {row for row in rows.all() if row is not None}


async def _deliver_one(
    rt: Runtime,
    limiter: RateLimiter,
    delivery: Delivery,
    graduate: Graduate,
    broadcast: Broadcast,
    live: LiveBroadcasts,
    report: NewsReport,
) -> None:
    assert delivery.id is not None and broadcast.id is not None
    if not await live.is_live(broadcast.id):
        await _record(rt, delivery.id, DeliveryStatus.CANCELLED)
        report.skipped += 1
        return
    if graduate.opted_out_at or graduate.erased_at or not graduate.consent_news:
        # Stopped, erased or unsubscribed from news since the recipients were chosen.
        await _record(rt, delivery.id, DeliveryStatus.CANCELLED, error="no longer reachable")
        report.skipped += 1
        return
    if graduate.chat_id is None or graduate.unreachable_at is not None:
        # Not in a Telegram chat: by e-mail, else in their web chat (bot/news_mail.py).
        await _deliver_elsewhere(rt, limiter, delivery, graduate, broadcast, report)
        return
    chat_id = graduate.chat_id
    school = await live.school_name(graduate.institution_id)
    await limiter.wait()
    with sending("news"):
        result = await send_safely(
            rt,
            chat_id,
            lambda: send_news(
                rt.bot,
                chat_id,
                render_news(broadcast, graduate.language, school),
            ),
            delivery.attempts,
        )
    if result.outcome == "sent":
        await _record(
            rt,
            delivery.id,
            DeliveryStatus.SENT,
            sent_at=rt.clock.now(),
            message_id=result.message_id,
            error=None,
        )
        report.sent += 1
    elif result.outcome == "retry":
        await _record(
            rt, delivery.id, DeliveryStatus.PENDING, due_at=result.retry_at, error=result.error
        )
        report.retried += 1
    elif result.outcome == "forbidden":
        await _record(rt, delivery.id, DeliveryStatus.BLOCKED, error=result.error)
        report.blocked += 1
    else:
        await _record(rt, delivery.id, DeliveryStatus.FAILED, error=result.error)
        report.failed += 1


async def _deliver_elsewhere(
    rt: Runtime,
    limiter: RateLimiter,
    delivery: Delivery,
    graduate: Graduate,
    broadcast: Broadcast,
    report: NewsReport,
) -> None:
    """A delivery to a graduate who is not in a Telegram chat: by e-mail when their address
    can be written to and a mail server is configured, else as a message in their web chat,
    else nowhere (cancelled)."""
    from bot.delivery import mail_enabled, mail_usable
    from bot.news_mail import send_news_mail
    from bot.web_channel import has_web_chat
    from storage.queries import web_chat_id

    assert delivery.id is not None and graduate.id is not None
    async with rt.db.session() as session:
        school = await session.get(Institution, graduate.institution_id)
    assert school is not None
    news = render_news(broadcast, graduate.language, school.name)
    if mail_usable(graduate) and mail_enabled(rt.settings):
        # The chat's footer names /privacy: the mail has its own (the unsubscribe link).
        lang = graduate.language if graduate.language in broadcast.texts else None
        with use_language(lang or broadcast.default_language):
            footer = "\n\n" + news_footer(school.name)
        body = news.text.removesuffix(footer)
        await limiter.wait()
        outcome = await send_news_mail(rt, graduate, school, broadcast, body, news.keyboard)
        if outcome == "sent":
            await _record(rt, delivery.id, DeliveryStatus.SENT, sent_at=rt.clock.now(), error=None)
            report.sent += 1
        elif outcome == "retry":
            retry_at = rt.clock.now() + timedelta(minutes=min(60, 2 ** min(delivery.attempts, 6)))
            await _record(
                rt, delivery.id, DeliveryStatus.PENDING, due_at=retry_at, error="mail not taken"
            )
            report.retried += 1
        else:
            await _record(rt, delivery.id, DeliveryStatus.FAILED, error=f"mail {outcome}")
            report.failed += 1
        return
    if await has_web_chat(rt.db, graduate.id):
        chat_id = web_chat_id(graduate.id)
        await rt.channel_for(chat_id).send(chat_id, news.text, news.keyboard, html=True)
        await _record(rt, delivery.id, DeliveryStatus.SENT, sent_at=rt.clock.now(), error=None)
        report.sent += 1
        return
    await _record(rt, delivery.id, DeliveryStatus.CANCELLED, error="no longer reachable")
    report.skipped += 1


async def _work(
    rt: Runtime,
    limiter: RateLimiter,
    pending: list[tuple[Delivery, Graduate, Broadcast]],
    live: LiveBroadcasts,
    report: NewsReport,
    held: Held,
) -> None:
    """One of a few concurrent senders taking deliveries off the shared list."""
    while pending:
        delivery, graduate, broadcast = pending.pop()
        if not held.holds(delivery.id or 0):
            continue  # the claim ran out: another dispatcher has the delivery now
        try:
            await held.complete(
                delivery.id or 0,
                _deliver_one(rt, limiter, delivery, graduate, broadcast, live, report),
            )
        except Exception:  # one message must not stop the broadcast
            log.exception("news delivery %s failed", delivery.id)


def progress_text(broadcast: Broadcast, reasons: list[tuple[str, int]] | None = None) -> str:
    """The officer's report, in the current language, with why messages failed."""
    done = broadcast.status in (BroadcastStatus.DONE.value, BroadcastStatus.CANCELLED.value)
    if broadcast.status == BroadcastStatus.CANCELLED.value:
        head = _("News #{id} was cancelled.")
    elif done:
        head = _("News #{id} has been sent.")
    else:
        head = _("News #{id} is being sent…")
    lines = [
        head.format(id=broadcast.id),
        _("Recipients: {total}").format(total=broadcast.total),
        _("Sent: {n}").format(n=broadcast.sent),
        _("Blocked the bot: {n}").format(n=broadcast.blocked),
        _("Failed: {n}").format(n=broadcast.failed),
        _("Pending: {n}").format(n=news.pending_count(broadcast)),
        _("Cancelled: {n}").format(n=broadcast.cancelled),
    ]
    if reasons:
        lines.append(failures_line(reasons))
    return "\n".join(lines)


async def report_progress(rt: Runtime, broadcast_id: int) -> Broadcast:
    """Store the numbers and show them to the officer (one message, edited)."""
    broadcast = await news.refresh_counts(rt.db, broadcast_id, rt.clock.now())
    if broadcast.report_chat_id is None:
        return broadcast
    async with rt.db.session() as session:
        staff = (
            await session.exec(
                select(Staff).where(Staff.telegram_user_id == broadcast.report_chat_id)
            )
        ).first()
        school = (
            await session.get(Institution, broadcast.institution_id)
            if broadcast.institution_id
            else None
        )
        reasons = (await news.failure_reasons(session, [broadcast_id])).get(broadcast_id)
    language = (staff.language if staff else None) or (school.default_language if school else None)
    with use_language(language):
        text = progress_text(broadcast, reasons)
    try:
        if broadcast.report_message_id:
            await rt.bot.edit_message_text(
                text, broadcast.report_chat_id, broadcast.report_message_id
            )
        else:
            message = await rt.bot.send_message(broadcast.report_chat_id, text)
            async with rt.db.engine.begin() as conn:
                await conn.execute(
                    update(Broadcast)
                    .where(col(Broadcast.id) == broadcast_id)
                    .values(report_message_id=message.message_id)
                )
    except BadRequest as exc:  # "message is not modified": nothing new to show
        log.debug("progress of news %s not shown: %s", broadcast_id, exc)
    except TelegramError:
        log.warning("could not show the progress of news %s", broadcast_id, exc_info=True)
    return broadcast


async def dispatch_news(
    rt: Runtime,
    *,
    limiter: RateLimiter | None = None,
    batch: int = 500,
    concurrency: int = 4,
    max_batches: int | None = None,
) -> NewsReport:
    """Start due broadcasts, then claim and send their deliveries, batch by batch."""
    limiter = limiter or RateLimiter(rt.settings.bulk_send_per_second)
    report = NewsReport(started=await news.start_due(rt.db, rt.clock.now()))
    touched: set[int] = set(report.started)
    live = LiveBroadcasts(rt)
    limit = batch_limit(batch, rt.settings.bulk_send_per_second, rt.settings.claim_lease_seconds)
    batches = 0
    while (max_batches is None or batches < max_batches) and not rt.stopping:
        now = rt.clock.now()
        ids = await _claim(rt, now, limit)
        if not ids:
            break
        batches += 1
        report.claimed += len(ids)
        held = Held(rt, Delivery, ids, now)
        async with held.sending():
            async with rt.db.session() as session:
                rows = (
                    await session.exec(
                        select(Delivery, Graduate, Broadcast)
                        .join(Graduate, col(Graduate.id) == Delivery.graduate_id)
                        .join(Broadcast, col(Broadcast.id) == Delivery.broadcast_id)
                        .where(col(Delivery.id).in_(ids))
                        .order_by(col(Delivery.id))
                    )
                ).all()
            broadcasts = {row[2].id for row in rows if row[2].id is not None}
            touched |= broadcasts
            pending = [(d, g, b) for d, g, b in reversed(rows)]
            await asyncio.gather(
                *(
                    _work(rt, limiter, pending, live, report, held)
                    for _ in range(max(1, concurrency))
                )
            )
        for broadcast_id in broadcasts:
            await report_progress(rt, broadcast_id)
    for broadcast_id in touched:
        await report_progress(rt, broadcast_id)
    return report
