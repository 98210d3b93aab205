"""Sending what is due: invitations and reminders, claimed from their rows.

One `dispatch_due` pass claims due rows (committed), then for each decides: skip it (the
graduate completed the wave, withdrew consent, stopped, was erased, cannot be reached on any
channel, or the wave closed), defer it (quiet hours of the school), or send it, and records
the outcome. The channel is chosen per row when it is sent (`route`): Telegram for a graduate
linked in a chat who has not blocked the bot (at the bulk rate), else e-mail to a usable
address (at MAIL_SEND_PER_SECOND; bot/email_delivery.py says what the mail server's answers
do); the row records which (`Invitation.channel`), and it is sent once, on one channel.

A dispatcher that dies after claiming leaves rows whose claim expires (`CLAIM_LEASE`) and
are claimed again: nothing is lost. While a batch is being sent its claim
is renewed, and a pass that is stopped gives back the rows it did not send (bot/claims.py).
A row is marked sent in its own small transaction right after Telegram (or the mail server)
accepted the message,
so at most the messages in flight at the moment of a crash could be sent twice; nothing is
sent twice by a crash between claim and send.

Telegram's answers: 403 (blocked, deactivated) marks the graduate unreachable and the row
failed, never retried (with a usable e-mail address, the row goes back to pending and is
sent by e-mail on the next pass); 429 waits `retry_after` (python-telegram-bot's rate limiter, a few
times), then puts the row back for later; network errors and 5xx put it back with a growing
delay; 400 fails the row.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import col, update
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.claims import Held, batch_limit
from bot.email_delivery import MailOutage, send_invitation_mail
from bot.i18n import use_language
from bot.metrics import sending
from bot.runtime import Runtime, mark_unreachable
from bot.settings import Settings
from conversations.channel import Keyboard
from conversations.invitations import PREFIX, invitation_message
from conversations.waves import Plan, next_allowed
from storage.invitations import claim_due, completed_waves, load_claimed
from storage.models import (
    Channel,
    EmailStatus,
    Graduate,
    Institution,
    Invitation,
    InvitationStatus,
    Programme,
)

log = logging.getLogger(__name__)

WORKER = f"{socket.gethostname()}:{os.getpid()}"
MAX_ATTEMPTS = 8


def retry_after(exc: RetryAfter) -> timedelta:
    """Telegram's retry_after, whichever type python-telegram-bot gives it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


class RateLimiter:
    """At most `per_second` sends per second on average, in short bursts."""

    def __init__(self, per_second: float, burst: int = 1) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.burst = max(1, burst)
        self._next = time.monotonic()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            self._next = max(self._next, now - self.interval * (self.burst - 1))
            delay = self._next - now
            self._next += self.interval
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class SendResult:
    """What Telegram said to one message: sent, forbidden (403), retry later, or failed."""

    outcome: str
    reason: str = ""
    message_id: int | None = None
    retry_at: datetime | None = None
    error: str | None = None

    @property
    def report(self) -> str:
        return {"sent": "sent", "retry": "retried"}.get(self.outcome, "failed")


async def send_safely(
    rt: Runtime, chat_id: int, send: Callable[[], Awaitable[Message]], attempts: int
) -> SendResult:
    """Send one bulk message and classify Telegram's answer (see the module docstring).
    A 403 also marks the graduate unreachable."""
    try:
        # A 429 is first retried by python-telegram-bot's rate limiter after retry_after (it
        # holds every request of the bot meanwhile, as Telegram asks); when that is not
        # enough, the row goes back for later and the dispatcher goes on with the others.
        message = await send()
    except Forbidden as exc:
        await mark_unreachable(rt, chat_id, exc.message)
        return SendResult("forbidden", "forbidden", error=exc.message[:200])
    except RetryAfter as exc:
        return SendResult("retry", "429", retry_at=rt.clock.now() + retry_after(exc))
    except BadRequest as exc:
        return SendResult("failed", "bad_request", error=exc.message[:200])
    except (NetworkError, TelegramError) as exc:
        if attempts >= MAX_ATTEMPTS:
            return SendResult("failed", "gave_up", error=str(exc)[:200])
        backoff = timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))
        return SendResult(
            "retry", "network", retry_at=rt.clock.now() + backoff, error=str(exc)[:200]
        )
    return SendResult("sent", message_id=message.message_id)


@dataclass
class DispatchReport:
    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    failed: int = 0
    retried: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str, reason: str = "") -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        if reason:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


async def _finish(
    rt: Runtime, invitation_id: int, status: InvitationStatus, **values: object
) -> None:
    # One small Core transaction per message: the outcome is stored right after Telegram's
    # answer (no ORM session needed for a single UPDATE).
    async with rt.db.engine.begin() as conn:
        await conn.execute(
            update(Invitation)
            .where(col(Invitation.id) == invitation_id)
            .values(status=status.value, claimed_at=None, claimed_by=None, **values)
        )


def route(
    invitation: Invitation, graduate: Graduate, plan: Plan, now: datetime, *, mail: bool = True
) -> tuple[str, str]:
    """(channel, "") for a row to send now, or ("", why not) for one to skip.

    One row is one message on one channel, chosen when it is sent: a graduate linked in a
    chat who has not blocked the bot gets it in Telegram (with the wave's consent); anyone
    else with an e-mail address that did not bounce and was not unsubscribed gets it by
    e-mail, unless they refused the wave's consent (never asked: the school may write to its
    graduates; the consent is asked when they open the link). /stop stops both. Without
    `mail` (no mail server configured: `mail_enabled`), e-mail is no channel."""
    if graduate.erased_at is not None:
        return "", "erased"
    if graduate.opted_out_at is not None:
        return "", "stopped"
    if invitation.closes_at <= now:
        return "", "closed"
    wave = plan.wave(invitation.wave)
    needed = wave.consent if wave is not None else "followup"
    consent = graduate.consent_followup if needed == "followup" else graduate.consent_survey
    if graduate.chat_id is not None and graduate.unreachable_at is None:
        return (Channel.TELEGRAM.value, "") if consent else ("", "no_consent")
    if mail and mail_usable(graduate):
        if consent is False:
            return "", "no_consent"
        if graduate.invite_revoked_at is not None:
            return "", "link_revoked"  # the school stopped the graduate's link
        return Channel.EMAIL.value, ""
    return "", "no_channel"


def mail_enabled(settings: Settings) -> bool:
    """Whether invitations may go by e-mail: an SMTP server is configured, or this is the
    sandbox (`make run`), whose mails go to the local mailbox. With a real bot token and no
    SMTP_URL, nobody would read the local mailbox: e-mail is off."""
    return bool(settings.smtp_url.strip()) or settings.uses_sandbox


def mail_usable(graduate: Graduate) -> bool:
    """Whether mail may go to the graduate's address: there is one, it did not bounce, and
    the graduate did not unsubscribe from e-mail."""
    return bool(graduate.email) and graduate.email_status not in (
        EmailStatus.BOUNCED.value,
        EmailStatus.UNSUBSCRIBED.value,
    )


@dataclass
class _Batch:
    """What one claimed batch shares: who already sent the wave, the texts already made,
    whether the mail server is down."""

    now: datetime
    completed: set[tuple[int, str]]
    texts: dict[tuple[object, ...], tuple[str, Keyboard]] = field(default_factory=dict)
    outage: MailOutage = field(default_factory=MailOutage)
    mail: bool = True


@dataclass
class Limiters:
    """The pace of one dispatcher: Telegram's bulk rate, and the mail rate."""

    telegram: RateLimiter
    mail: RateLimiter


async def _deliver(
    rt: Runtime,
    limiters: Limiters,
    row: tuple[Invitation, Graduate, Institution, Programme],
    batch: _Batch,
    report: DispatchReport,
) -> None:
    invitation, graduate, school, programme = row
    now = batch.now
    assert invitation.id is not None and graduate.id is not None
    plan = rt.plans.for_graduate(school.code, programme.code)
    channel, reason = route(invitation, graduate, plan, now, mail=batch.mail)
    if not reason and (graduate.id, invitation.wave) in batch.completed:
        reason = "completed"
    if reason:
        await _finish(rt, invitation.id, InvitationStatus.SKIPPED, error=reason)
        report.count("skipped", reason)
        return
    allowed = next_allowed(now, plan.quiet_hours, school.timezone)
    if allowed > now:
        await _finish(rt, invitation.id, InvitationStatus.PENDING, due_at=allowed)
        report.count("deferred", "quiet_hours")
        return
    if channel == Channel.EMAIL.value:
        await _deliver_mail(rt, limiters.mail, row, batch, report)
        return
    key = (graduate.language, school.id, invitation.seq, invitation.closes_at)
    if key not in batch.texts:
        with use_language(graduate.language):
            batch.texts[key] = invitation_message(invitation, school)
    text, template = batch.texts[key]
    button = template[0][0]
    markup = InlineKeyboardMarkup(
        [[InlineKeyboardButton(button.label, callback_data=f"{PREFIX}{invitation.id}")]]
    )
    await limiters.telegram.wait()
    assert graduate.chat_id is not None
    chat_id = graduate.chat_id
    with sending("invitation"):
        result = await send_safely(
            rt,
            chat_id,
            lambda: rt.bot.send_message(chat_id, text, reply_markup=markup),
            invitation.attempts,
        )
    if result.outcome == "forbidden" and batch.mail and mail_usable(graduate):
        # Blocked the bot (or the account is gone): the same row goes by e-mail instead, in
        # the next batch (route() sees the graduate unreachable in the chat now).
        await _finish(
            rt, invitation.id, InvitationStatus.PENDING, due_at=rt.clock.now(), error="forbidden"
        )
        report.count("retried", "forbidden")
        return
    # Sent; back for later; or, forbidden (no e-mail to turn to) or failed, never again.
    await _record(
        rt,
        invitation.id,
        Channel.TELEGRAM,
        result.outcome,
        result.retry_at,
        result.error,
        result.message_id,
    )
    report.count(result.report, result.reason)


async def _record(
    rt: Runtime,
    invitation_id: int,
    channel: Channel,
    outcome: str,
    retry_at: datetime | None,
    error: str | None,
    message_id: int | None = None,
) -> None:
    """Store what became of one message on `channel`: "sent", "retry" (pending again at
    `retry_at`), anything else failed for good."""
    if outcome == "sent":
        await _finish(
            rt,
            invitation_id,
            InvitationStatus.SENT,
            sent_at=rt.clock.now(),
            message_id=message_id,
            error=None,
            channel=channel.value,
        )
    elif outcome == "retry":
        await _finish(
            rt,
            invitation_id,
            InvitationStatus.PENDING,
            due_at=retry_at,
            error=error,
            channel=channel.value,
        )
    else:
        await _finish(
            rt, invitation_id, InvitationStatus.FAILED, error=error, channel=channel.value
        )


async def _deliver_mail(
    rt: Runtime,
    limiter: RateLimiter,
    row: tuple[Invitation, Graduate, Institution, Programme],
    batch: _Batch,
    report: DispatchReport,
) -> None:
    invitation, graduate, school, _programme = row
    assert invitation.id is not None
    result = await send_invitation_mail(rt, limiter, invitation, graduate, school, batch.outage)
    await _record(rt, invitation.id, Channel.EMAIL, result.outcome, result.retry_at, result.error)
    report.count(result.report, result.reason)


async def _work(
    rt: Runtime,
    limiters: Limiters,
    pending: list[tuple[Invitation, Graduate, Institution, Programme]],
    batch: _Batch,
    report: DispatchReport,
    held: Held,
) -> None:
    """One of a few concurrent senders taking rows off the shared list."""
    while pending:
        row = pending.pop()
        if not held.holds(row[0].id or 0):
            continue  # the claim ran out: another dispatcher has the row now
        try:
            await held.complete(row[0].id or 0, _deliver(rt, limiters, row, batch, report))
        except Exception:  # one message's failure must not stop the batch
            log.exception("invitation %s could not be delivered", row[0].id)


async def dispatch_due(
    rt: Runtime,
    *,
    limiter: RateLimiter | None = None,
    mail_limiter: RateLimiter | None = None,
    batch: int = 500,
    concurrency: int = 4,
    worker: str = WORKER,
    max_batches: int | None = None,
) -> DispatchReport:
    """Claim and send everything due now, batch by batch: Telegram at the bulk rate
    (`limiter`), e-mail at MAIL_SEND_PER_SECOND (`mail_limiter`)."""
    settings = rt.settings
    limiters = Limiters(
        limiter or RateLimiter(settings.bulk_send_per_second),
        mail_limiter or RateLimiter(settings.mail_send_per_second),
    )
    report = DispatchReport()
    lease = settings.claim_lease_seconds
    # Batches sized by Telegram's rate, as before; a batch of slower e-mails keeps its claim
    # by renewing it (bot/claims.py).
    limit = batch_limit(batch, settings.bulk_send_per_second, lease)
    batches = 0
    while (max_batches is None or batches < max_batches) and not rt.stopping:
        now = rt.clock.now()
        async with rt.db.session() as session:
            ids = await claim_due(
                session,
                now=now,
                worker=worker,
                limit=limit,
                lease=timedelta(seconds=lease),
            )
        if not ids:
            break
        batches += 1
        report.claimed += len(ids)
        held = Held(rt, Invitation, ids, now, worker)
        async with held.sending():
            async with rt.db.session() as session:
                rows = await load_claimed(session, ids)
                completed = await completed_waves(
                    session, {(row[1].id or 0, row[0].wave) for row in rows}
                )
            shared = _Batch(now, completed, mail=mail_enabled(settings))
            pending = list(reversed(rows))
            await asyncio.gather(
                *(
                    _work(rt, limiters, pending, shared, report, held)
                    for _ in range(max(1, concurrency))
                )
            )
    if report.claimed:
        log.info("dispatch: %s", report)
    return report
