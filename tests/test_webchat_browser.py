"""A person in a real browser (Debian's Chromium, driven by Playwright) opens the sandbox's
web chat from a personal invite link, picks a language and gives consent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect

from bot.links import sandbox_chat_link
from bot.sandbox import SandboxServer
from bot.settings import Settings
from storage.db import Database
from tests.databases import SqliteProvider
from tests.harness import Harness, tr
from tests.test_onboarding import FOLLOWUP_Q, NEWS_Q, SURVEY_Q


@pytest.fixture
async def sqlite_harness(
    sandbox: SandboxServer, sqlite_provider: SqliteProvider
) -> AsyncIterator[Harness]:
    url = await sqlite_provider.fresh_database()
    db = Database(url)
    h = Harness(sandbox, db, Settings(database_url=url, telegram_bot_token="", _env_file=None))
    await h.start_bot()
    yield h
    await h.stop_bot()
    await db.dispose()


async def test_graduate_onboards_in_the_web_chat(sqlite_harness: Harness, browser: Browser) -> None:
    h = sqlite_harness
    school = await h.school(country="ES", language="es")
    graduate = await h.graduate(school)
    page = await browser.new_page(viewport={"width": 420, "height": 860})
    await page.goto(sandbox_chat_link(h.sandbox.url, h.token, graduate.invite_token or ""))

    await page.get_by_label("First name").fill("Marta")
    await page.get_by_label("Telegram language").fill("es")
    # Opening the chat from a deep link sends `/start <payload>` by itself, as Telegram does.
    await page.get_by_role("button", name="Open chat").click()

    messages = page.locator("#messages")
    await expect(messages).to_contain_text(school.name, timeout=15_000)
    await page.get_by_role("button", name="Español").click()
    for question, answer in ((SURVEY_Q, "Yes"), (FOLLOWUP_Q, "Yes"), (NEWS_Q, "No")):
        await expect(messages).to_contain_text(
            tr("es", question).format(school=school.name), timeout=15_000
        )
        # Only the open question has buttons: answered ones lost theirs.
        button = page.get_by_role("button", name=tr("es", answer), exact=True)
        await expect(button).to_have_count(1, timeout=15_000)
        await button.click()
    await expect(messages).to_contain_text(
        tr("es", "Thank you! Your choices are saved:"), timeout=15_000
    )
    await page.close()

    stored = await h.reload(graduate)
    assert stored.language == "es"
    assert (stored.consent_survey, stored.consent_followup, stored.consent_news) == (
        True,
        True,
        False,
    )


async def test_an_open_web_chat_tab_comes_back_after_the_sandbox_restarts(
    browser: Browser, tmp_path: object
) -> None:
    """Ctrl+C and `make run` again, with the web chat open: the tab reconnects as the same
    person, shows their chat, and gets what the bot says after the restart; reloading the
    tab opens the same chat."""
    from pathlib import Path

    state = Path(str(tmp_path)) / "sandbox.json"
    first = SandboxServer(host="127.0.0.1", port=0, state_file=state)
    await first.start()
    port = first.port
    token = first.create_bot("restart_bot", "Restart Bot")
    user = first.create_user(token, "Rita")
    await first.send_text(token, user.id, "hello")
    first.state.add_bot_message(first.chat(token, user.id), text="Before the restart")
    page = await browser.new_page(viewport={"width": 420, "height": 860})
    await page.goto(f"{first.url}/chat?bot=restart_bot&user={user.id}")
    messages = page.locator("#messages")
    await expect(messages).to_contain_text("Before the restart", timeout=15_000)
    await first.stop()
    await expect(page.locator("#status")).to_contain_text("offline", timeout=15_000)

    second = SandboxServer(host="127.0.0.1", port=port, state_file=state)
    await second.start()
    try:
        second.state.add_bot_message(second.chat(token, user.id), text="After the restart")
        await expect(messages).to_contain_text("After the restart", timeout=15_000)
        await expect(messages).to_contain_text("Before the restart")
        await expect(page.locator("#status")).to_contain_text("you are Rita", timeout=15_000)
        await page.reload()
        await expect(messages).to_contain_text("After the restart", timeout=15_000)
        await expect(page.locator("#status")).to_contain_text("you are Rita")
    finally:
        await page.close()
        await second.stop()
