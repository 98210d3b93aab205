"""Invitations and reminders by e-mail (issue 16): the channel chosen per row when it is
sent, the mail in the graduate's language as a real SMTP server on loopback (aiosmtpd)
receives it, bounces and temporary failures, one-click and page unsubscription, quiet hours,
the roster view, the sandbox's local mailbox, and a bad SMTP_URL refused at startup."""

from __future__ import annotations

import email
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, expect
from sqlmodel import col, select, update

from bot.delivery import RateLimiter, dispatch_due
from bot.i18n import use_language
from bot.invitation_mail import QR_CID
from bot.links import chat_link, unsubscribe_link
from bot.mail import LocalMailbox, SmtpMailer, parse_smtp_url
from bot.sandbox import SandboxServer
from conversations.registry import QuestionnaireRegistry
from storage.erasure import REASON_REQUEST, erase_graduate
from storage.invitations import plan_invitations
from storage.models import Graduate, Institution, Invitation
from storage.staff import add_staff
from tests.harness import Harness, eventually, tr
from tests.test_dashboard import client_session, log_in
from tests.test_mail import Handler, Received, free_port
from tests.test_survey import CHAT_DIR, MINI_PLANS
from tests.test_waves import local

SENDER = "Alfa College <noreply@alfa-college.example>"
OPENING = date(2026, 8, 30)  # the m2 wave of the June 2026 graduates opens at 10:00
NO_LIMIT = RateLimiter(0)
INVITE_SUBJECT = "{school} would like to know how you are doing"
REMINDER_SUBJECT = "Reminder: the questionnaire of {school} is open until {date}"
INVITE_LEAD = (
    "{school} would like to know how you are doing. Could you answer a few questions? "
    "It takes about five minutes, and the questionnaire is open until {date}."
)
REMINDER_LEAD = (
    "A friendly reminder: {school} would still like to know how you are doing. The "
    "questionnaire takes about five minutes and is open until {date}."
)


@dataclass
class MailServer:
    """aiosmtpd on a fixed loopback port, which can be stopped and started again."""

    port: int
    received: Received = field(default_factory=Received)
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(Handler(self.received), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[EmailMessage]:
        return [
            email.message_from_bytes(data, policy=policy.default)
            for _from, rcpt, data in self.received.messages
            if address in rcpt
        ]


@pytest.fixture
async def smtp() -> AsyncIterator[MailServer]:
    server = MailServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def mailing(harness: Harness, smtp: MailServer) -> Harness:
    """The bot with the mini wave plan (m2: invitation and two reminders, consent "survey"),
    sending e-mail to `smtp` from MAIL_FROM, and its web server (the links' address)."""
    harness.questionnaires = QuestionnaireRegistry(CHAT_DIR)
    harness.plans = MINI_PLANS
    harness.clock.set(datetime(2026, 6, 1, 9, 0, tzinfo=UTC))
    url = f"smtp+insecure://127.0.0.1:{smtp.port}"
    harness.settings.smtp_url = url
    harness.settings.mail_from = SENDER
    await harness.restart_bot()
    harness.runtime.mailer = SmtpMailer(parse_smtp_url(url), timeout=5)
    await harness.start_web()
    return harness


async def dispatch(h: Harness) -> dict[str, Any]:
    report = await dispatch_due(h.runtime, limiter=NO_LIMIT, mail_limiter=NO_LIMIT)
    return {
        "sent": report.sent,
        "skipped": report.skipped,
        "deferred": report.deferred,
        "failed": report.failed,
        "retried": report.retried,
    }


async def rows_of(h: Harness, graduate: Graduate) -> list[Invitation]:
    async with h.db.session() as session:
        return list(
            (
                await session.exec(
                    select(Invitation)
                    .where(Invitation.graduate_id == graduate.id)
                    .order_by(col(Invitation.seq))
                )
            ).all()
        )


async def set_fields(h: Harness, graduate: Graduate, **values: Any) -> None:
    async with h.db.session() as session:
        await session.exec(update(Graduate).where(col(Graduate.id) == graduate.id).values(**values))


async def plan(h: Harness) -> None:
    await plan_invitations(h.db, h.runtime.plans, now=h.clock.now())


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def the_date(lang: str) -> str:
    """The last day of the m2 wave (closes 2026-10-30 at midnight), as `lang` writes it."""
    from bot.i18n import format_date

    with use_language(lang):
        return format_date(date(2026, 10, 29), "long")


# ---------------------------------------------------------------- the invitation e-mail


async def test_an_unlinked_graduate_gets_the_invitation_by_email_in_their_language(
    mailing: Harness, smtp: MailServer
) -> None:
    h = mailing
    school = await h.school(country="IT", language="it")
    anna = await h.graduate(school, language="nl", name="Anna de Vries", email="anna@example.nl")
    # No language of his own: the school's (Italian); no invite token yet: one is made.
    marco = await h.graduate(school, email="marco@example.it")
    await set_fields(h, marco, invite_token=None)
    await plan(h)

    h.clock.set(local(OPENING, 10, 5))
    assert await dispatch(h) == {"sent": 2, "skipped": 0, "deferred": 0, "failed": 0, "retried": 0}
    assert await dispatch(h) == {"sent": 0, "skipped": 0, "deferred": 0, "failed": 0, "retried": 0}

    base = h.settings.base_url
    for graduate, lang, greeting in (
        (anna, "nl", tr("nl", "Hello {name},").format(name="Anna de Vries")),
        (marco, "it", tr("it", "Hello,")),
    ):
        assert graduate.email is not None and graduate.id is not None
        (message,) = smtp.to(graduate.email)
        stored = await h.reload(graduate)
        token = stored.invite_token
        assert token is not None and token.startswith("i_")
        assert message["Subject"].strip() == tr(lang, INVITE_SUBJECT).format(school=school.name)
        assert message["From"] == SENDER
        assert graduate.email in message["To"]
        unsubscribe = unsubscribe_link(h.settings, graduate.id)
        assert unsubscribe.startswith(f"{base}/u/{graduate.id}-")
        assert message["List-Unsubscribe"] == f"<{unsubscribe}>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text, html = parts(message)
        lead = tr(lang, INVITE_LEAD).format(school=school.name, date=the_date(lang))
        web_link = f"{base}/c/{token}"
        telegram = chat_link(h.settings, token)
        assert telegram is not None
        for body in (text, unescape(html)):
            assert greeting in body
            assert lead in body
            assert web_link in body
            assert telegram in body
            assert unsubscribe in body
        assert tr(lang, "Unsubscribe") in unescape(html)
        assert tr(lang, "This link is personal: please do not pass it on.") in text
        # The QR code travels with the mail: nothing is fetched by the mail client.
        assert f'src="cid:{QR_CID}"' in html
        (image,) = [p for p in message.walk() if p.get_content_type() == "image/png"]
        assert image["Content-ID"] == f"<{QR_CID}>"
        png = image.get_payload(decode=True)
        assert isinstance(png, bytes) and png.startswith(b"\x89PNG\r\n\x1a\n")
        assert re.findall(r'src="([^"]*)"', html) == [f"cid:{QR_CID}"]  # nothing remote
        assert "<link" not in html and "url(" not in html

    assert [(r.seq, r.status, r.channel) for r in await rows_of(h, anna)] == [
        (0, "sent", "email"),
        (1, "pending", None),
        (2, "pending", None),
    ]

    # Two weeks later, the reminder says it is one.
    h.clock.set(local(OPENING + timedelta(weeks=2), 10, 5))
    assert (await dispatch(h))["sent"] == 2
    _invitation, reminder = smtp.to("anna@example.nl")
    # (A long subject is folded onto its own line; readers unfold it: space is not content.)
    assert reminder["Subject"].strip() == tr("nl", REMINDER_SUBJECT).format(
        school=school.name, date=the_date("nl")
    )
    text, _html = parts(reminder)
    assert tr("nl", REMINDER_LEAD).format(school=school.name, date=the_date("nl")) in text


async def test_who_gets_an_email_and_who_does_not(mailing: Harness, smtp: MailServer) -> None:
    """No mail to a graduate reachable in the chat (Telegram), a stopped, unsubscribed,
    bounced or erased one, or one who refused the consent; mail to one who blocked the bot,
    and to one never asked (the consent is asked when they open the link)."""
    h = mailing
    school = await h.school()
    tina, tina_chat = await h.consenting_graduate("en", school)
    stan, stan_chat = await h.consenting_graduate("en", school)
    blake, blake_chat = await h.consenting_graduate("en", school)
    for graduate, address in ((tina, "tina@x.nl"), (stan, "stan@x.nl"), (blake, "blake@x.nl")):
        await set_fields(h, graduate, email=address)
    await h.send(stan_chat, "/stop")
    h.sandbox.block(h.token, blake_chat.id)

    async def blake_blocked() -> bool:
        return (await h.reload(blake)).unreachable_at is not None

    await eventually(blake_blocked)
    una = await h.graduate(school, email="una@x.nl", email_status="unsubscribed")
    bea = await h.graduate(school, email="bea@x.nl", email_status="bounced")
    erin = await h.graduate(school, email="erin@x.nl")
    rene = await h.graduate(school, email="rene@x.nl", consent_survey=False)
    nora = await h.graduate(school)
    eli = await h.graduate(school, email="eli@x.nl")
    await plan(h)
    async with h.db.session() as session:
        stored = await session.get(Graduate, erin.id)
        assert stored is not None
        await erase_graduate(session, stored, now=h.clock.now(), reason=REASON_REQUEST)

    h.clock.set(local(OPENING, 10, 5))
    before = len(h.sandbox.bot_messages(h.token, tina_chat.id))
    # (Erin's rows were skipped when her data was erased: the dispatcher never sees them.)
    assert await dispatch(h) == {"sent": 3, "skipped": 5, "deferred": 0, "failed": 0, "retried": 0}
    received = sorted(rcpt[0] for _from, rcpt, _data in smtp.received.messages)
    assert received == ["blake@x.nl", "eli@x.nl"]
    (invite,) = await h.replies(tina_chat, 1)  # in the chat, not by mail
    assert invite.content.startswith("Hello! Alfa College would like to know")
    assert len(h.sandbox.bot_messages(h.token, tina_chat.id)) == before + 1

    async def first(graduate: Graduate) -> tuple[str, str | None, str | None]:
        row = (await rows_of(h, graduate))[0]
        return row.status, row.error, row.channel

    assert await first(tina) == ("sent", None, "telegram")
    assert await first(blake) == ("sent", None, "email")
    assert await first(eli) == ("sent", None, "email")
    assert await first(stan) == ("skipped", "stopped", None)
    assert await first(una) == ("skipped", "no_channel", None)
    assert await first(bea) == ("skipped", "no_channel", None)
    assert await first(erin) == ("skipped", None, None)
    assert await first(rene) == ("skipped", "no_consent", None)
    assert await first(nora) == ("skipped", "no_channel", None)


async def test_one_message_per_wave_step_across_channels(
    mailing: Harness, smtp: MailServer
) -> None:
    """The invitation by e-mail; the graduate then opens the Telegram link, and the reminder
    goes to the chat only. A graduate whose Telegram account is gone (403 when sending) gets
    that same row by e-mail instead, once."""
    h = mailing
    school = await h.school()
    gina = await h.graduate(school, email="gina@x.nl")
    fay, fay_chat = await h.consenting_graduate("en", school)
    await set_fields(h, fay, email="fay@x.nl")
    h.sandbox.deactivate_user(fay_chat.id)  # the bot learns it only when sending (403)
    await plan(h)

    h.clock.set(local(OPENING, 10, 5))
    # Gina by mail; Fay's row comes back from Telegram (403) and goes out by mail in the
    # same pass's next batch.
    first = await dispatch(h)
    assert (first["sent"], first["retried"], first["failed"]) == (2, 1, 0)
    assert sorted(rcpt[0] for _f, rcpt, _d in smtp.received.messages) == [
        "fay@x.nl",
        "gina@x.nl",
    ]
    assert (await dispatch(h))["sent"] == 0
    fay_invitation = (await rows_of(h, fay))[0]
    assert (fay_invitation.status, fay_invitation.channel) == ("sent", "email")
    assert (await h.reload(fay)).unreachable_reason == "deactivated"

    # Gina opens her Telegram link and says yes: later steps go to the chat.
    user = h.user("en")
    assert gina.invite_token is not None
    await h.send(user, f"/start {gina.invite_token}")
    await h.press(user, "English", expect=2)
    for _ in range(3):
        await h.press(user, "Yes")
    await eventually(lambda: _linked(h, gina))
    h.clock.set(local(OPENING + timedelta(weeks=2), 10, 5))
    messages_before = len(h.sandbox.bot_messages(h.token, user.id))
    outcome = await dispatch(h)
    assert outcome["sent"] == 2  # Gina in the chat, Fay by mail
    (reminder,) = await h.replies(user, 1)
    assert reminder.content.startswith("A friendly reminder")
    assert len(h.sandbox.bot_messages(h.token, user.id)) == messages_before + 1
    assert len(smtp.to("gina@x.nl")) == 1  # still only the invitation
    assert [(r.seq, r.status, r.channel) for r in await rows_of(h, gina)][:2] == [
        (0, "sent", "email"),
        (1, "sent", "telegram"),
    ]
    assert len(smtp.to("fay@x.nl")) == 2


async def _linked(h: Harness, graduate: Graduate) -> bool:
    return (await h.reload(graduate)).chat_id is not None


# ---------------------------------------------------------------- failures


async def test_a_bounce_marks_the_address_and_the_roster_view_shows_it(
    mailing: Harness, smtp: MailServer
) -> None:
    h = mailing
    school = await h.school()
    bad = await h.graduate(school, name="Bo Gus", ref="B-17", email="nobody@example.nl")
    good = await h.graduate(school, email="fine@example.nl")
    await h.graduate(school, ref="N-1", name="No Way")  # no e-mail, not in a chat
    await plan(h)
    smtp.received.refuse["nobody@example.nl"] = "550 5.1.1 <nobody@example.nl>: no such user"

    h.clock.set(local(OPENING, 10, 5))
    outcome = await dispatch(h)
    assert (outcome["sent"], outcome["failed"]) == (1, 1)
    stored = await h.reload(bad)
    assert stored.email_status == "bounced" and stored.email_status_at == h.clock.now()
    row = (await rows_of(h, bad))[0]
    assert (row.status, row.channel, row.error) == ("failed", "email", "mail bounced (550)")
    assert "nobody" not in (row.error or "")  # the server's words (with the address) not kept
    # No more mail to the bounced address; the other graduate gets the reminder.
    h.clock.set(local(OPENING + timedelta(weeks=2), 10, 5))
    outcome = await dispatch(h)
    assert (outcome["sent"], outcome["skipped"]) == (1, 2)
    assert len(smtp.to("fine@example.nl")) == 2 and not smtp.to("nobody@example.nl")
    assert (await rows_of(h, bad))[1].error == "no_channel"
    assert good.id is not None

    # The roster view of the school's officer lists it and counts who cannot be reached.
    officer = h.user("en", first_name="Olga")
    await add_staff(h.db, officer.id, "officer", school_code=school.code)
    async with client_session() as client:
        await log_in(h, client, officer)
        async with client.get(f"{h.settings.base_url}/dashboard/roster") as page:
            assert page.status == 200
            html = await page.text()
    problems = html.split('id="email-problems"', 1)[1].split("</table>", 1)[0]
    assert "B-17" in problems and "Bo Gus" in problems and "nobody@example.nl" in problems
    assert "Bounced" in problems and "fine@example.nl" not in problems
    assert re.search(r'id="reach-bounced">1<', html)
    assert re.search(r'id="reach-email">1<', html)  # fine@example.nl
    assert re.search(r'id="reach-none">2<', html)  # the bounced one and the one without
    # ... and lists them, with why.
    cannot = html.split('id="no-way"', 1)[1].split("</table>", 1)[0]
    assert "B-17" in cannot and "E-mail bounced or unsubscribed, not in a chat" in cannot
    assert "N-1" in cannot and "No Way" in cannot and "Not in a chat, no e-mail address" in cannot
    assert "fine@example.nl" not in cannot


async def test_a_server_that_defers_or_is_down_delays_and_never_loses_the_mail(
    mailing: Harness, smtp: MailServer
) -> None:
    h = mailing
    school = await h.school()
    await h.graduate(school, email="later@example.nl")
    await h.graduate(school, email="also@example.nl")
    await plan(h)
    h.clock.set(local(OPENING, 10, 5))

    # 451 for one address: tried again later, then delivered.
    smtp.received.refuse["later@example.nl"] = "451 4.7.1 Greylisted, try again later"
    outcome = await dispatch(h)
    assert (outcome["sent"], outcome["retried"], outcome["failed"]) == (1, 1, 0)
    assert (await dispatch(h))["sent"] == 0  # not before its retry time
    del smtp.received.refuse["later@example.nl"]
    h.clock.advance(timedelta(minutes=1))
    assert (await dispatch(h))["sent"] == 1
    assert len(smtp.to("later@example.nl")) == 1

    # The server is down when the reminders fall due: both wait, none is lost.
    smtp.stop()
    h.clock.set(local(OPENING + timedelta(weeks=2), 10, 5))
    for _ in range(10):  # however many passes find it down
        outcome = await dispatch(h)
        assert (outcome["sent"], outcome["failed"]) == (0, 0)
        h.clock.advance(timedelta(hours=1))
    async with h.db.session() as session:
        reminders = (await session.exec(select(Invitation).where(Invitation.seq == 1))).all()
    assert {(r.status, r.error) for r in reminders} == {("pending", "mail server down")}
    smtp.start()
    assert (await dispatch(h))["sent"] == 2
    assert len(smtp.to("later@example.nl")) == 2 and len(smtp.to("also@example.nl")) == 2
    assert (await dispatch(h))["sent"] == 0


async def test_quiet_hours_hold_back_email_too(mailing: Harness, smtp: MailServer) -> None:
    h = mailing
    school = await h.school()
    await h.graduate(school, email="night@example.nl")
    await plan(h)
    h.clock.set(local(OPENING, 22, 30))  # the dispatcher was down at 10:00
    assert (await dispatch(h))["deferred"] == 1
    h.clock.set(local(OPENING + timedelta(days=1), 8, 59))
    assert (await dispatch(h))["sent"] == 0
    assert not smtp.received.messages
    h.clock.set(local(OPENING + timedelta(days=1), 9, 0))
    assert (await dispatch(h))["sent"] == 1
    assert len(smtp.to("night@example.nl")) == 1


# ---------------------------------------------------------------- unsubscribing


async def mailed_unsubscribe_link(
    h: Harness, smtp: MailServer, school: Institution, lang: str, address: str
) -> tuple[Graduate, str]:
    """A graduate speaking `lang` who got the invitation by mail, and the visible
    unsubscribe link of that mail."""
    graduate = await h.graduate(school, language=lang, email=address)
    await plan(h)
    h.clock.set(local(OPENING, 10, 5))
    await dispatch(h)
    (message,) = smtp.to(address)
    _text, html = parts(message)
    found = re.search(r'id="unsubscribe" href="([^"]+)"', html)
    assert found
    return graduate, found.group(1)


async def test_one_click_unsubscribe_as_a_mail_client_sends_it(
    mailing: Harness, smtp: MailServer
) -> None:
    h = mailing
    school = await h.school()
    ines = await h.graduate(school, language="es", email="ines@example.es")
    await plan(h)
    h.clock.set(local(OPENING, 10, 5))
    assert (await dispatch(h))["sent"] == 1
    (message,) = smtp.to("ines@example.es")
    url = message["List-Unsubscribe"].strip("<>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # RFC 8058: a POST with that body, no cookie, no CSRF token, from no page of ours.
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            url,
            data="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as response,
    ):
        assert response.status == 200
        page = await response.text()
    assert tr("es", "You are unsubscribed") in page
    stored = await h.reload(ines)
    assert (stored.email_status, stored.email_status_at) == ("unsubscribed", h.clock.now())

    h.clock.set(local(OPENING + timedelta(weeks=2), 10, 5))
    assert (await dispatch(h))["skipped"] == 1
    assert len(smtp.to("ines@example.es")) == 1  # nothing after the unsubscription


async def test_the_unsubscribe_page_asks_first_in_the_graduates_language(
    mailing: Harness, smtp: MailServer
) -> None:
    h = mailing
    school = await h.school()
    eva, link = await mailed_unsubscribe_link(h, smtp, school, "et", "eva@example.ee")
    async with aiohttp.ClientSession() as client:
        async with client.get(link) as response:  # a mail scanner opening the link
            assert response.status == 200
            page = await response.text()
        assert (await h.reload(eva)).email_status is None  # a GET changes nothing
        assert tr("et", "No more e-mails from {school}?").format(school=school.name) in page
        assert 'lang="et"' in page
        form = re.search(r'<form method="post" action="([^"]+)"', page)
        assert form and form.group(1) == link.removeprefix(h.settings.base_url)
        async with client.post(link, data={"List-Unsubscribe": "One-Click"}) as response:
            assert response.status == 200
            assert (
                tr("et", "{school} will send you no more e-mails.").format(school=school.name)
                in await response.text()
            )
        assert (await h.reload(eva)).email_status == "unsubscribed"
        # Forged, mistyped or another graduate's: a clear page, 404, nothing recorded.
        assert eva.id is not None
        forged = re.sub(r"-[A-Za-z0-9_-]{22}$", "-" + "A" * 22, link)
        other = link.replace(f"/u/{eva.id}-", f"/u/{eva.id + 1}-")
        for bad in (forged, other, link[:-1], f"{h.settings.base_url}/u/nothing"):
            async with client.post(bad, data={"List-Unsubscribe": "One-Click"}) as response:
                assert response.status == 404
                assert "This link is not valid" in await response.text()


# ---------------------------------------------------------------- the local mailbox


async def test_without_smtp_the_mail_is_kept_in_the_sandboxs_mailbox(
    mailing: Harness, tmp_path: Path
) -> None:
    h = mailing
    h.settings.smtp_url, h.settings.mail_from = "", ""
    h.runtime.mailer = LocalMailbox(tmp_path / "mailbox")
    school = await h.school()
    await h.graduate(school, language="it", email="lia@example.it")
    await plan(h)
    h.clock.set(local(OPENING, 10, 5))
    assert (await dispatch(h))["sent"] == 1

    sandbox = SandboxServer(host="127.0.0.1", port=0, mailbox_dir=tmp_path / "mailbox")
    url = await sandbox.start()
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{url}/sandbox/api/mail") as response:
                (entry,) = (await response.json())["result"]
            assert entry["subject"] == tr("it", INVITE_SUBJECT).format(school=school.name)
            assert "lia@example.it" in entry["to"]
            async with client.get(f"{url}/sandbox/mailbox?mail={entry['file']}") as response:
                page = await response.text()
            assert entry["subject"] in page and f'src="/sandbox/mail/{entry["file"]}"' in page
            assert 'sandbox="' in page
            async with client.get(f"{url}/sandbox/mail/{entry['file']}") as response:
                assert response.status == 200
                csp = response.headers["Content-Security-Policy"]
                shown = await response.text()
            assert "script" not in csp and "default-src 'none'" in csp and "sandbox" in csp
            assert tr("it", "Start the questionnaire") in shown
            assert "cid:" not in shown and "data:image/png;base64," in shown
            for bad in ("../index.jsonl", "x.eml", entry["file"].replace(".eml", ".txt")):
                async with client.get(f"{url}/sandbox/mail/{bad}") as response:
                    assert response.status == 404
    finally:
        await sandbox.stop()


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SMTP_URL": "http://mail.example"}, "SMTP_URL must start with"),
        ({"SMTP_URL": "smtp+insecure://mail.example:25"}, "only for a loopback address"),
        ({"SMTP_URL": "smtps://u:p@mail.example"}, "MAIL_FROM is not set"),
    ],
)
def test_a_bad_mail_configuration_is_refused_at_startup(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    from tests.test_cli import _cli

    url = f"sqlite+aiosqlite:///{tmp_path}/gt.sqlite3"
    for command in ("run", "serve"):
        done = _cli(command, env={"DATABASE_URL": url, "MAIL_FROM": "", **env})
        assert done.returncode == 2, done.stdout + done.stderr
        assert says in done.stderr
        assert not (tmp_path / "gt.sqlite3").exists()  # refused before anything was opened


async def test_unsubscribing_in_a_phone_browser(
    mailing: Harness, smtp: MailServer, browser: Browser
) -> None:
    """Chromium at 360 px opens the mail's unsubscribe link (Dutch): no accessibility
    violation (axe-core), nothing loaded from elsewhere, the page fits the screen, and the
    button (a real form POST under the page's CSP) unsubscribes."""
    h = mailing
    school = await h.school()
    noor, link = await mailed_unsubscribe_link(h, smtp, school, "nl", "noor@example.nl")
    context = await browser.new_context(viewport={"width": 360, "height": 740})
    page = await context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    await page.goto(link)
    title = tr("nl", "No more e-mails from {school}?").format(school=school.name)
    await expect(page.locator("h1")).to_have_text(title)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    axe_context = await browser.new_context(viewport={"width": 360, "height": 740}, bypass_csp=True)
    axe_page = await axe_context.new_page()
    for url in (link, f"{h.settings.base_url}/u/1-{'A' * 22}"):
        await axe_page.goto(url)
        violations = (await Axe().run(axe_page)).response["violations"]
        assert not violations, [(v["id"], v["impact"]) for v in violations]
    await axe_context.close()
    await page.locator("#confirm").click()
    await expect(page.locator("h1")).to_have_text(tr("nl", "You are unsubscribed"))
    assert (await h.reload(noor)).email_status == "unsubscribed"
    assert all(url.startswith(h.settings.base_url) for url in requests), requests
    await context.close()


def test_with_a_real_bot_and_no_smtp_server_email_is_no_channel() -> None:
    """With a real bot token and no SMTP_URL nobody reads the local mailbox: a graduate
    outside the chat is skipped (`no_channel`), as before e-mail existed; in the sandbox, or
    with an SMTP server, the same graduate gets e-mail."""
    from bot.delivery import mail_enabled, route
    from bot.settings import Settings

    def settings(**values: str) -> Settings:
        return Settings(_env_file=None, **values)  # type: ignore[arg-type]

    real = "123456:" + "A" * 35
    assert not mail_enabled(settings(telegram_bot_token=real, secret_key="k" * 40))
    assert mail_enabled(settings(telegram_bot_token=real, smtp_url="smtps://u:p@mail.example"))
    assert mail_enabled(settings())  # the sandbox: the local mailbox
    now = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)
    invitation = Invitation(
        graduate_id=1,
        wave="m2",
        form_id="mini",
        seq=0,
        due_at=now,
        closes_at=now + timedelta(days=30),
    )
    graduate = Graduate(
        id=1,
        institution_id=1,
        programme_id=1,
        student_ref="r1",
        graduation_date=date(2026, 6, 30),
        email="a@example.nl",
    )
    plan_ = MINI_PLANS.default
    assert route(invitation, graduate, plan_, now) == ("email", "")
    assert route(invitation, graduate, plan_, now, mail=False) == ("", "no_channel")
    graduate.invite_revoked_at = now  # the school stopped the personal link: nothing to send
    assert route(invitation, graduate, plan_, now) == ("", "link_revoked")


async def test_make_run_s_demo_graduate_gets_the_invitation_in_the_local_mailbox(
    harness: Harness, tmp_path: Path
) -> None:
    """What a newcomer sees with `make run`: the demo graduate handed out (not in a chat yet,
    with an address) gets the open wave's invitation by e-mail in the local mailbox, with the
    same personal link as the printed invite."""
    from storage.demo import ensure_demo

    h = harness
    moment = local(date(2026, 12, 3), 11, 0)
    h.clock.set(moment)
    demo = await ensure_demo(h.db, h.runtime.plans, now=moment, email=True)
    assert demo.wave is not None
    h.runtime.mailer = LocalMailbox(tmp_path)
    assert (await dispatch(h))["sent"] == 1
    (entry,) = LocalMailbox(tmp_path).entries()
    assert entry["to"].endswith("@example.org>") or entry["to"].endswith("@example.org")
    message = email.message_from_bytes(
        (tmp_path / entry["file"]).read_bytes(), policy=policy.default
    )
    assert isinstance(message, EmailMessage)
    text, _html = parts(message)
    assert f"{h.settings.base_url}/c/{demo.invite_token}" in text
    again = await ensure_demo(h.db, h.runtime.plans, now=moment, email=True)
    assert again.invite_token == demo.invite_token  # not linked yet: the same invite
    assert (await dispatch(h))["sent"] == 0  # and no second mail
