"""Alumni news by e-mail and in the web chat, for graduates who are not in a Telegram chat.

`bot/news.py` chooses the channel of each delivery when it sends it: Telegram for a graduate
linked there, else e-mail (an address that did not bounce and was not unsubscribed, a mail
server configured), else the graduate's web chat (a message they see when they next open
their link). The news text is the broadcast's, written with Telegram's small HTML subset
(conversations/news_html.py: bold, italic, links …), which e-mail shows as it is; the mail
adds the school's name, the graduate's web link and the unsubscribe link.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email.headerregistry import Address

from bot.email_delivery import ensure_invite_token, mailer_of, school_sender
from bot.i18n import _, use_language
from bot.invitation_mail import html_mail
from bot.links import unsubscribe_link, web_chat_link
from bot.mail import Outcome, build_message
from bot.runtime import Runtime
from conversations.channel import Keyboard
from storage.contacts import set_email_status
from storage.models import Broadcast, EmailStatus, Graduate, Institution


@dataclass(frozen=True)
class NewsMail:
    subject: str
    text: str
    html: str


def _plain(news_html: str) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", news_html))


def compose_news_mail(
    *, school: str, news_html: str, links: Keyboard, web_link: str, unsubscribe_url: str
) -> NewsMail:
    """The news as a mail, in the current language."""
    subject = _("News from {school}").format(school=school)
    reply = _("Reply or tell us what changed for you in your graduate chat:")
    because = _("You receive this e-mail because you asked {school} for alumni news.").format(
        school=school
    )
    stop = _("No more e-mails from us?")
    unsubscribe = _("Unsubscribe")
    link_lines = [f"{b.label}: {b.url}" for row in links for b in row if b.url]
    text = "\n".join(
        [
            _plain(news_html),
            *(["", *link_lines] if link_lines else []),
            "",
            reply,
            web_link,
            "",
            "-- ",
            because,
            f"{stop} {unsubscribe}: {unsubscribe_url}",
            "",
        ]
    )
    e = html.escape
    body = news_html.replace("\n", "<br>\n")  # the broadcast's HTML, checked when written
    buttons = "".join(
        f'<p><a href="{e(b.url or "")}" style="color:#1d5fbf;font-weight:bold">{e(b.label)}</a></p>'
        for row in links
        for b in row
        if b.url
    )
    page = html_mail(
        subject,
        [
            f"<p>{body}</p>",
            buttons,
            f'<p style="font-size:14px">{e(reply)}<br>'
            f'<a id="web-link" href="{e(web_link)}" style="color:#1d5fbf">{e(web_link)}</a></p>',
            '<hr style="border:0;border-top:1px solid #ddd;margin:24px 0">',
            f'<p style="font-size:13px;color:#444">{e(because)}<br>{e(stop)} '
            f'<a id="unsubscribe" href="{e(unsubscribe_url)}" style="color:#1d5fbf">'
            f"{e(unsubscribe)}</a></p>",
        ],
    )
    return NewsMail(subject, text, page)


async def send_news_mail(
    rt: Runtime,
    graduate: Graduate,
    school: Institution,
    broadcast: Broadcast,
    news_html: str,
    links: Keyboard,
) -> str:
    """Send the news to the graduate's address: "sent", "bounced" (the address is marked),
    "retry" (the server did not take it now) or "failed" (no mail could be made)."""
    assert graduate.id is not None and graduate.email
    token = await ensure_invite_token(rt, graduate)
    settings = rt.settings
    unsubscribe = unsubscribe_link(settings, graduate.id)
    with use_language(graduate.language or school.default_language):
        mail = compose_news_mail(
            school=school.name,
            news_html=news_html,
            links=links,
            web_link=web_chat_link(settings, token),
            unsubscribe_url=unsubscribe,
        )
    address = graduate.email
    try:
        message = build_message(
            sender=school_sender(rt, school),
            to=str(Address(display_name=graduate.name or "", addr_spec=address)),
            subject=mail.subject,
            text=mail.text,
            html=mail.html,
            unsubscribe_url=unsubscribe,
            now=rt.clock.now(),
        )
    except (ValueError, IndexError):
        return "failed"
    result = await mailer_of(rt).send(message)
    if result.outcome == Outcome.SENT:
        return "sent"
    if result.outcome == Outcome.PERMANENT:
        async with rt.db.session() as session:
            await set_email_status(
                session, graduate.id, address, EmailStatus.BOUNCED, rt.clock.now()
            )
        return "bounced"
    return "retry"
