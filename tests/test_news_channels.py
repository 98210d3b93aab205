"""Alumni news on the channel each graduate uses: Telegram for those in a chat, e-mail (a
real SMTP server on loopback) for those with an address, the web chat for those who only
opened their web link; nobody who did not say yes to news, stopped, or whose address
bounced with no other channel."""

from __future__ import annotations

from sqlmodel import col, select

from bot.news import dispatch_news
from storage import news
from storage.models import ChatState, Delivery, DeliveryStatus, WebMessage
from storage.queries import web_chat_id
from tests.harness import Harness
from tests.test_email_invitations import NO_LIMIT, MailServer, mailing, parts, set_fields, smtp
from tests.test_news_delivery import broadcast, readers

__all__ = ["mailing", "smtp"]  # fixtures


async def test_news_reaches_each_graduate_on_their_channel(
    mailing: Harness, smtp: MailServer
) -> None:
    h = mailing
    school = await h.school()
    (in_chat,) = await readers(h, school, 1)
    by_mail = await h.graduate(school, language="nl", consent_news=True, email="ana@example.org")
    on_web = await h.graduate(school, language="en", consent_news=True)
    bounced = await h.graduate(school, consent_news=True, email="gone@example.org")
    await set_fields(h, bounced, email_status="bounced")
    await h.graduate(school, consent_news=False, email="no@example.org")
    stopped = await h.graduate(school, consent_news=True, email="stop@example.org")
    await set_fields(h, stopped, opted_out_at=h.clock.now())
    async with h.db.session() as session:  # opened their web link
        session.add(ChatState(chat_id=web_chat_id(on_web.id or 0), graduate_id=on_web.id))
    row = await broadcast(
        h,
        school,
        {"en": "<b>Open day</b> on 12 March", "nl": "<b>Open dag</b> op 12 maart"},
        news.Audience(institution_ids=(school.id or 0,)),
        link_url="https://alfa.example/open-day",
        link_labels={"en": "Read more", "nl": "Lees meer"},
    )
    report = await dispatch_news(h.runtime, limiter=NO_LIMIT)
    assert report.sent == 3, report

    # Telegram, as before.
    telegram = h.sandbox.bot_messages(h.token, in_chat.chat_id or 0)
    assert len(telegram) == 1 and "Open day" in telegram[0].content
    # E-mail, in Dutch, with the web link and the unsubscribe link, not the chat's /privacy.
    (mail,) = smtp.to("ana@example.org")
    assert mail["Subject"] == "Nieuws van Alfa College"
    assert mail["List-Unsubscribe"]
    text, html = parts(mail)
    assert "Open dag op 12 maart" in text and "<b>Open dag</b>" in html
    assert "Lees meer: https://alfa.example/open-day" in text
    assert f"/c/{by_mail.invite_token}" in text
    assert "/privacy" not in text
    # The web chat: a message of the conversation, the link written out.
    async with h.db.session() as session:
        shown = (
            await session.exec(
                select(WebMessage).where(col(WebMessage.chat_id) == web_chat_id(on_web.id or 0))
            )
        ).all()
        deliveries = (
            await session.exec(select(Delivery).where(Delivery.broadcast_id == row.id))
        ).all()
    assert len(shown) == 1 and shown[0].text.startswith("Open day on 12 March")
    assert "Read more: https://alfa.example/open-day" in shown[0].text
    # Nobody else: not the bounced address, not the one without consent, not the stopped.
    assert smtp.to("gone@example.org") == smtp.to("no@example.org") == []
    assert smtp.to("stop@example.org") == []
    assert {d.graduate_id for d in deliveries} == {in_chat.id, by_mail.id, on_web.id}
    assert all(d.status == DeliveryStatus.SENT.value for d in deliveries)
