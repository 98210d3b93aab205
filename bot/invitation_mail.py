"""What an invitation or reminder e-mail says: subject, plain text and HTML, in the current
language (bot.i18n.use_language), with the personal web link, the Telegram link and its QR
code (a PNG sent with the mail, shown as `cid:`), and a visible unsubscribe link.

The mail goes to graduates who cannot be reached in a chat (bot/delivery.py decides); it says
the same as the Telegram invitation (conversations/invitations.invitation_message) and why the
school asks. Everything from the roster (the school's and the graduate's names) is escaped in
the HTML; nothing is fetched from the network by the reader's mail client.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from html import escape
from zoneinfo import ZoneInfo

import segno

from bot.i18n import _, current_language, format_date

#: The Content-ID of the QR code image in the HTML part.
QR_CID = "telegram-qr"


@dataclass(frozen=True)
class InvitationMail:
    """One e-mail, ready for bot.mail.build_message."""

    subject: str
    text: str
    html: str
    images: dict[str, bytes] = field(default_factory=dict)


#: The QR mask pattern (0-7) every code uses.
QR_MASK = 3


@lru_cache(maxsize=1024)
def qr_png(data: str) -> bytes:
    """The QR code of `data` as a PNG (segno, pure Python), large enough to scan from a
    screen, with the quiet zone the standard asks for. The mask pattern is fixed: every one
    of the eight is valid and scans; choosing the best by scoring all eight took two thirds
    of the time of a mail (bench/mail_bench.py)."""
    out = io.BytesIO()
    segno.make(data, error="m", micro=False, boost_error=False, mask=QR_MASK).save(
        out, kind="png", scale=5, border=4
    )
    return out.getvalue()


def last_day(closes_at: datetime, timezone: str) -> str:
    """The last day the questionnaire is open, as the current locale writes it (the wave
    closes at midnight: its last day is the day before)."""
    local = (closes_at - timedelta(seconds=1)).astimezone(ZoneInfo(timezone))
    return format_date(local.date(), "long")


def compose(
    *,
    reminder: bool,
    school: str,
    until: str,
    name: str | None,
    web_link: str,
    telegram_link: str | None,
    unsubscribe_url: str,
) -> InvitationMail:
    """The invitation (or, with `reminder`, a reminder) in the current language. `until`:
    the last day, already written (`last_day`)."""
    if reminder:
        subject = _("Reminder: the questionnaire of {school} is open until {date}").format(
            school=school, date=until
        )
        lead = _(
            "A friendly reminder: {school} would still like to know how you are doing. The "
            "questionnaire takes about five minutes and is open until {date}."
        ).format(school=school, date=until)
        button = _("Answer now")
    else:
        subject = _("{school} would like to know how you are doing").format(school=school)
        lead = _(
            "{school} would like to know how you are doing. Could you answer a few questions? "
            "It takes about five minutes, and the questionnaire is open until {date}."
        ).format(school=school, date=until)
        button = _("Start the questionnaire")
    greeting = _("Hello {name},").format(name=name) if name else _("Hello,")
    why = _(
        "{school} asks its graduates what they do after their training, in work or in further "
        "study, to improve its programmes. Every answer helps the school and the students "
        "after you."
    ).format(school=school)
    browser = _("Answer in your browser, no app needed:")
    personal = _("This link is personal: please do not pass it on.")
    telegram = _("Prefer Telegram? Open the questionnaire in the school's Telegram chat:")
    scan = _("Or scan this code with your phone's camera.")
    qr_alt = _("QR code that opens the Telegram chat")
    open_telegram = _("Open in Telegram")
    because = _("You receive this e-mail because you are a graduate of {school}.").format(
        school=school
    )
    stop = _("No more e-mails from us?")
    unsubscribe = _("Unsubscribe")

    lines = [greeting, "", lead, "", why, "", browser, web_link, personal, ""]
    if telegram_link:
        lines += [telegram, telegram_link, ""]
    lines += ["-- ", because, f"{stop} {unsubscribe}: {unsubscribe_url}", ""]
    text = "\n".join(lines)

    e = escape
    button_style = (
        "display:inline-block;padding:12px 22px;border-radius:6px;background:#1d5fbf;"
        "color:#ffffff;font-weight:bold;text-decoration:none"
    )
    parts = [
        f"<p>{e(greeting)}</p>",
        f"<p>{e(lead)}</p>",
        f"<p>{e(why)}</p>",
        f"<p>{e(browser)}</p>",
        f'<p><a id="web-link" href="{e(web_link)}" style="{button_style}">{e(button)}</a></p>',
        f'<p style="font-size:14px;color:#444">{e(personal)}<br>'
        f'<a href="{e(web_link)}" style="color:#1d5fbf;word-break:break-all">{e(web_link)}</a>'
        "</p>",
    ]
    images: dict[str, bytes] = {}
    if telegram_link:
        images[QR_CID] = qr_png(telegram_link)
        parts += [
            '<hr style="border:0;border-top:1px solid #ddd;margin:24px 0">',
            f"<p>{e(telegram)}</p>",
            f'<p><a id="telegram-link" href="{e(telegram_link)}" style="color:#1d5fbf">'
            f"{e(open_telegram)}</a></p>",
            f"<p>{e(scan)}</p>",
            f'<p><img src="cid:{QR_CID}" alt="{e(qr_alt)}"></p>',
        ]
    parts += [
        '<hr style="border:0;border-top:1px solid #ddd;margin:24px 0">',
        f'<p style="font-size:13px;color:#444">{e(because)}<br>{e(stop)} '
        f'<a id="unsubscribe" href="{e(unsubscribe_url)}" style="color:#1d5fbf">'
        f"{e(unsubscribe)}</a></p>",
    ]
    return InvitationMail(subject, text, html_mail(subject, parts), images)


def html_mail(subject: str, body: list[str]) -> str:
    """A mail's HTML page in the current language: `body`'s HTML in a plain card, styled
    inline (mail programs drop style sheets), titled `subject`."""
    e = escape
    return "\n".join(
        [
            "<!doctype html>",
            f'<html lang="{e(current_language())}"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{e(subject)}</title></head>",
            '<body style="margin:0;padding:16px;background:#f4f5f7;color:#111;'
            'font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5">',
            '<div style="max-width:560px;margin:0 auto;background:#ffffff;padding:24px;'
            'border-radius:8px">',
            *body,
            "</div></body></html>",
        ]
    )


__all__ = ["QR_CID", "InvitationMail", "compose", "html_mail", "last_day", "qr_png"]
