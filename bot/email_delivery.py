"""Sending one claimed invitation or reminder row by e-mail (the dispatcher, bot/delivery.py,
chose the channel; this sends and says what became of it).

The mail server's answers:
- accepted: the row is sent;
- refused for good (5xx to RCPT or DATA): the address is marked bounced (Graduate.email_status,
  only if it is still the address the mail went to) and the row failed; no more mail goes
  to that address until the roster gives a new one;
- not now (4xx, or the server down, a timeout, TLS or login failing): the row goes back to
  pending with a growing delay. A 4xx about this message fails the row after MAX_ATTEMPTS; a
  server that cannot be reached, or that refuses us (login, MAIL FROM: our configuration),
  only delays, never loses, the row (it is retried until its wave closes). Once the server
  could not be reached, the other e-mail rows of the same batch are put back without trying
  (`MailOutage`), so that a pass does not wait for a timeout per row.

The mail server's reply may quote the address: it is never stored or logged; the row keeps
only the reply code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlmodel import col

from bot.i18n import use_language
from bot.invitation_mail import compose, last_day
from bot.links import chat_link, unsubscribe_link, web_chat_link
from bot.mail import Mailer, Outcome, build_message, make_mailer, parse_sender, sender_for
from bot.runtime import Runtime
from conversations.rules import new_invite_token
from storage.contacts import set_email_status
from storage.models import EmailStatus, Graduate, Institution, Invitation

if TYPE_CHECKING:
    from bot.delivery import RateLimiter

log = logging.getLogger(__name__)

#: A 4xx reply about one message fails its row after this many attempts.
MAX_ATTEMPTS = 8


@dataclass
class MailOutage:
    """Within one dispatcher batch: the mail server could not be reached; e-mail rows wait
    until `until` without being tried."""

    until: datetime | None = None


@dataclass(frozen=True)
class MailResult:
    """What became of one e-mail: "sent", "retry" (with `retry_at`), or "failed"."""

    outcome: str
    reason: str = ""
    retry_at: datetime | None = None
    error: str | None = None

    @property
    def report(self) -> str:
        return {"sent": "sent", "retry": "retried"}.get(self.outcome, "failed")


def mailer_of(rt: Runtime) -> Mailer:
    """The runtime's mailer (made at startup by `gradtrack run`/`serve`; made here on first
    use otherwise, e.g. by `gradtrack news dispatch` or a test)."""
    if rt.mailer is None:
        rt.mailer = make_mailer(rt.settings.smtp_url, rt.settings.mailbox_dir)
    return rt.mailer


def backoff(attempts: int) -> timedelta:
    """30 s, 1, 2, 4 ... minutes, at most an hour: as for Telegram's network errors."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


async def ensure_invite_token(rt: Runtime, graduate: Graduate) -> str:
    """The graduate's invite token (their web link's credential), made and stored now if
    they have none; another process making one at the same time wins, and its token is
    used."""
    if graduate.invite_token:
        return graduate.invite_token
    assert graduate.id is not None
    token = new_invite_token()
    async with rt.db.engine.begin() as conn:
        result = await conn.execute(
            update(Graduate)
            .where(col(Graduate.id) == graduate.id, col(Graduate.invite_token).is_(None))
            .values(invite_token=token)
        )
        if not result.rowcount:
            stored = await conn.execute(
                select(col(Graduate.invite_token)).where(col(Graduate.id) == graduate.id)
            )
            token = stored.scalar_one() or token
    graduate.invite_token = token
    return token


def school_sender(rt: Runtime, school: Institution) -> str:
    """MAIL_FROM; a bare address gets the school's name as its display name."""
    sender = sender_for(rt.settings.smtp_url, rt.settings.mail_from)
    address = parse_sender(sender)
    if address.display_name:
        return sender
    return str(Address(display_name=school.name, addr_spec=address.addr_spec))


async def send_invitation_mail(
    rt: Runtime,
    limiter: RateLimiter,
    invitation: Invitation,
    graduate: Graduate,
    school: Institution,
    outage: MailOutage,
) -> MailResult:
    """Compose the invitation or reminder in the graduate's language, send it, and say what
    became of it (see the module docstring). Marks a bounced address."""
    assert graduate.id is not None and graduate.email
    if outage.until is not None:
        return MailResult("retry", "mail_down", retry_at=outage.until, error="mail server down")
    token = await ensure_invite_token(rt, graduate)
    settings = rt.settings
    with use_language(graduate.language or school.default_language):
        mail = compose(
            reminder=invitation.seq > 0,
            school=school.name,
            until=last_day(invitation.closes_at, school.timezone),
            name=graduate.name,
            web_link=web_chat_link(settings, token),
            telegram_link=chat_link(settings, token),
            unsubscribe_url=unsubscribe_link(settings, graduate.id),
        )
    address = graduate.email
    try:
        to = str(Address(display_name=graduate.name or "", addr_spec=address))
        message = build_message(
            sender=school_sender(rt, school),
            to=to,
            subject=mail.subject,
            text=mail.text,
            html=mail.html,
            unsubscribe_url=unsubscribe_link(settings, graduate.id),
            now=rt.clock.now(),
            images=mail.images,
        )
    except (ValueError, IndexError) as error:  # an address the roster should have refused
        log.warning("invitation %s: no mail could be made: %s", invitation.id, type(error).__name__)
        return MailResult("failed", "bad_address", error="bad address")
    await limiter.wait()
    result = await mailer_of(rt).send(message)
    if result.outcome == Outcome.SENT:
        return MailResult("sent")
    if result.outcome == Outcome.PERMANENT:
        async with rt.db.session() as session:
            await set_email_status(
                session, graduate.id, address, EmailStatus.BOUNCED, rt.clock.now()
            )
        return MailResult("failed", "bounced", error=f"mail bounced ({result.code})")
    retry_at = rt.clock.now() + backoff(invitation.attempts)
    if result.code is None or result.code >= 500:
        # The server could not be reached, or refused us (login, MAIL FROM): not this
        # address's fault. Delay, never lose.
        outage.until = retry_at
        return MailResult("retry", "mail_down", retry_at=retry_at, error="mail server down")
    if invitation.attempts >= MAX_ATTEMPTS:
        return MailResult("failed", "gave_up", error=f"mail deferred ({result.code})")
    return MailResult("retry", "mail_deferred", retry_at=retry_at, error=f"mail ({result.code})")


__all__ = [
    "MAX_ATTEMPTS",
    "MailOutage",
    "MailResult",
    "backoff",
    "ensure_invite_token",
    "mailer_of",
    "send_invitation_mail",
]
