"""The staff's flows on the channel-neutral core: Telegram routes them, the web chat does not,
and what they send (link buttons, news with formatting) is rendered by each channel."""

from __future__ import annotations

from sqlmodel import select

from bot.web_channel import web_channel
from conversations.channel import Button, keyboard
from storage.models import Broadcast, DashboardLogin
from storage.queries import web_chat_id
from storage.staff import add_staff
from tests.harness import Harness, tr
from tests.test_web_chat import newest_bot, onboard

STAFF_COMMANDS = ("news", "cancel", "broadcasts", "stats", "dashboard")


async def test_the_web_chat_does_not_run_staff_commands(harness: Harness, web: str) -> None:
    """Staff accounts are Telegram accounts: in a graduate's web chat the staff commands are
    unknown commands (the help comes back), and staff buttons are stale; no draft, no login
    link is made."""
    h = harness
    _graduate, g, _page = await onboard(h, web, "nl")
    try:
        help_page = await g.command("help")
        help_text = newest_bot(help_page).text
        for name in STAFF_COMMANDS:
            page = await g.type(f"/{name}")
            assert newest_bot(page).text == help_text, name
            assert tr("nl", "This command is for school staff.") not in page.bot_texts()
        for data in ("nw:on", "nc:1:audience:go", "bc:1"):
            page = await g.press_data(data)
            assert page.notices()[-1] == tr("nl", "This button is no longer active."), data
    finally:
        await g.close()
    async with h.db.session() as session:
        assert (await session.exec(select(Broadcast))).all() == []
        assert (await session.exec(select(DashboardLogin))).all() == []


async def test_dashboard_link_comes_with_a_link_button_on_https(harness: Harness) -> None:
    """Behind HTTPS, /dashboard's login link also comes as a button that opens it (Telegram
    refuses link buttons to plain http, so there is none on http)."""
    h = harness
    officer = h.user("en")
    await add_staff(h.db, officer.id, "admin")
    (plain,) = await h.send(officer, "/dashboard")
    assert "/dashboard/login/" in plain.content
    assert plain.reply_markup is None
    h.settings.public_url = "https://school.example"
    (reply,) = await h.send(officer, "/dashboard")
    assert reply.reply_markup is not None
    ((button,),) = reply.reply_markup["inline_keyboard"]
    assert button["text"] == "Open the dashboard"
    assert button["url"].startswith("https://school.example/dashboard/login/")
    assert button["url"] in reply.content


async def test_the_web_chat_shows_formatted_news_as_text_and_links(
    harness: Harness, web: str
) -> None:
    """What the web chat makes of a message with Telegram HTML, a photo and a link button:
    the text without the markup, the link written under it, no button to press."""
    h = harness
    graduate, g, _page = await onboard(h, web, "en")
    assert graduate.id is not None and h.app is not None
    channel = web_channel(h.app.bot_data["gradtrack"])
    try:
        await channel.send(
            web_chat_id(graduate.id),
            "<b>Open day</b> on <i>Friday</i> &lt;3 &amp; more",
            keyboard([[Button("Read more", url="https://school.example/open-day")]]),
            html=True,
            photo="AgACAgIAAxkBAAIBfake",
        )
        page = await g.open()
    finally:
        await g.close()
    shown = page.messages[-1]
    assert shown.kind == "bot"
    assert (
        shown.text == "Open day on Friday <3 & more\n\nRead more: https://school.example/open-day"
    )
    assert shown.buttons == []
