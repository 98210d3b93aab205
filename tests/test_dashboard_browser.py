"""Staff in a real browser (Debian's Chromium, driven by Playwright) use the dashboard: log in
with the link the bot sends, read the overview, follow the drill-downs, download an export,
change the language and log out; without a session or with a wrong CSRF token they are
refused. Every page loads nothing from outside 127.0.0.1 and logs no console error (a CSP
violation would be one). On SQLite and PostgreSQL. (tests/test_dashboard.py: over HTTP.)"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Request,
    expect,
)
from sqlmodel import select

from bot.i18n import use_language
from bot.reporting import wave_label
from storage.models import Programme, Staff
from storage.staff import add_staff
from tests.harness import Harness, tr
from tests.test_dashboard import login_link, seed_small

TIMEOUT = 15_000  # ms, for every wait in the browser: a shared, noisy machine
expect.set_options(timeout=TIMEOUT)


@dataclass
class Watch:
    """What a browser context asked for and what its pages logged as errors."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Chromium logs a page answered with an error status as "Failed to load resource";
    # the statuses a test expects are listed here, any other error fails the test.
    expected_statuses: set[int] = field(default_factory=set)

    def attach(self, page: Page) -> None:
        page.on("request", self._request)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        failed = re.search(r"Failed to load resource: .*status of (\d+)", message.text)
        if failed and int(failed.group(1)) in self.expected_statuses:
            return
        self.errors.append(f"{message.text} ({message.location.get('url')})")

    def check(self) -> None:
        assert self.requests, "the browser made no request at all"
        outside = [url for url in self.requests if urlsplit(url).hostname != "127.0.0.1"]
        assert not outside, outside
        assert not self.errors, self.errors


async def new_page(browser: Browser, watch: Watch) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(accept_downloads=True)
    context.set_default_timeout(TIMEOUT)
    page = await context.new_page()
    watch.attach(page)
    return context, page


async def officer_of_alfa(h: Harness, role: str = "officer") -> tuple[int, str]:
    """seed_small's data and an officer (or admin) of alfa whose Telegram speaks Dutch;
    returns the staff member's Telegram id and a login link from the bot."""
    await seed_small(h)
    officer = h.user("nl")
    await add_staff(h.db, officer.id, role, school_code="alfa")
    return officer.id, await login_link(h, officer)


async def log_in(page: Page, link: str, web: str) -> None:
    """Open the link from the bot and press "Log in": the overview opens."""
    opened = await page.goto(link)
    assert opened is not None and opened.status == 200
    await page.locator("#login").click()
    await expect(page).to_have_url(f"{web}/dashboard")


async def staff_language(h: Harness, telegram_user_id: int) -> str | None:
    async with h.db.session() as session:
        staff = (
            await session.exec(select(Staff).where(Staff.telegram_user_id == telegram_user_id))
        ).one()
    return staff.language


def linked_row(page: Page, href: str) -> Locator:
    """The table row whose heading cell links to `href` (followed by nothing or a query)."""
    return page.locator("table.numbers tr").filter(
        has=page.locator(f'th a[href="{href}"], th a[href^="{href}?"]')
    )


async def test_an_officer_logs_in_with_the_link_from_the_bot_and_reads_the_overview(
    harness: Harness, web: str, browser: Browser
) -> None:
    h = harness
    _officer, link = await officer_of_alfa(h)
    watch = Watch()
    context, page = await new_page(browser, watch)

    await log_in(page, link, web)

    # In the officer's language (Telegram's nl), for their school.
    await expect(page.locator("html")).to_have_attribute("lang", "nl")
    heading = page.locator("h1")
    await expect(heading).to_contain_text(tr("nl", "Overview"))
    await expect(heading).to_contain_text("Alfa College")
    await expect(page.locator("main")).not_to_contain_text("Beta College")
    # m2: 6 graduates, 5 completed, 1 partial, shown as <5.
    row = linked_row(page, "/dashboard/waves/m2")
    await expect(row).to_have_count(1)
    await expect(row.locator('td[data-key="graduates"]')).to_have_text("6")
    await expect(row.locator('td[data-key="completed"]')).to_have_text("5")
    await expect(row.locator('td[data-key="partial"]')).to_have_text("<5")
    # Charts are inline SVG, drawn on the server.
    chart = page.locator("main figure > svg").first
    await expect(chart).to_be_visible()
    assert await page.locator("main figure > svg").count() >= 3

    await context.close()
    watch.check()


async def test_the_overview_drills_down_to_a_wave_and_a_programme(
    harness: Harness, web: str, browser: Browser
) -> None:
    h = harness
    _officer, link = await officer_of_alfa(h)
    async with h.db.session() as session:
        p1 = (await session.exec(select(Programme).where(Programme.code == "P1"))).one()
    watch = Watch()
    context, page = await new_page(browser, watch)
    await log_in(page, link, web)

    row = linked_row(page, "/dashboard/waves/m2")
    await row.locator("th a").click()
    await expect(page).to_have_url(re.compile(r"/dashboard/waves/m2(\?.*)?$"))
    with use_language("nl"):  # the wave by its name for staff, not its code
        m2_label = wave_label(h.runtime.plans.default.wave("m2"))
    await expect(page.locator("h1")).to_contain_text(m2_label)
    # The programme table: P1 with its numbers, and a link to the programme's page.
    programme = linked_row(page, f"/dashboard/programmes/{p1.id}")
    await expect(programme).to_have_count(1)
    await expect(programme).to_contain_text("P1 · Cook")
    await expect(programme.locator('td[data-key="graduates"]')).to_have_text("6")
    await expect(programme.locator('td[data-key="completed"]')).to_have_text("5")
    # The drop-off table lists questions of the questionnaire.
    drop_off = page.locator("#drop-off")
    await expect(drop_off).to_be_visible()
    await expect(drop_off.locator("tbody tr").first).to_contain_text("C0")
    await expect(page.locator("main figure > svg").first).to_be_visible()

    await programme.locator("th a").click()
    await expect(page).to_have_url(re.compile(rf"/dashboard/programmes/{p1.id}(\?.*)?$"))
    await expect(page.locator("h1")).to_have_text("P1 · Cook")
    m2 = linked_row(page, "/dashboard/waves/m2")
    await expect(m2.locator('td[data-key="completed"]')).to_have_text("5")
    await expect(page.locator("main figure > svg").first).to_be_visible()

    await context.close()
    watch.check()


async def test_an_admin_downloads_the_responses_as_csv(
    harness: Harness, web: str, browser: Browser
) -> None:
    h = harness
    officer, link = await officer_of_alfa(h, "admin")
    questionnaire = h.runtime.questionnaires.deployed("tracking")
    employed = questionnaire.choice(questionnaire.question("Q1"), "employed")
    assert employed is not None
    watch = Watch()
    context, page = await new_page(browser, watch)
    await log_in(page, link, web)

    await page.locator('header nav a[href^="/dashboard/exports"]').click()
    await expect(page).to_have_url(re.compile(r"/dashboard/exports(\?.*)?$"))
    form = page.locator("#export-responses")
    await form.locator('select[name="lang"]').select_option("it")
    async with page.expect_download(timeout=TIMEOUT) as info:
        await form.get_by_role("button", name="CSV", exact=True).click()
    download = await info.value
    assert download.suggested_filename == "responses-tracking.csv"
    saved = await download.path()
    body = (await asyncio.to_thread(saved.read_bytes)).decode("utf-8-sig")

    rows = list(csv.DictReader(io.StringIO(body)))
    header = list(rows[0].keys()) if rows else []
    for column in ("respondent", "school", "programme", "Q1", "Q1_label"):
        assert column in header, header
    assert header.index("Q1_label") == header.index("Q1") + 1
    assert len(rows) == 6
    assert {row["school"] for row in rows} == {"alfa"}
    assert {row["programme"] for row in rows} == {"P1"}
    assert {row["Q1"] for row in rows} == {"employed"}
    assert {row["Q1_label"] for row in rows} == {employed.labels["it"]}
    assert len({row["respondent"] for row in rows}) == 6
    # No names, chat ids, student numbers, or the officer's Telegram id.
    cells = {cell for row in rows for cell in row.values()}
    assert "Secret Name" not in body
    for k in range(6):
        assert str(900_000 + k) not in body
        assert f"a{k}" not in cells
    assert str(officer) not in body
    # The download was asked for by the page itself, from the dashboard's own origin.
    assert any("/dashboard/exports/responses.csv?" in url for url in watch.requests)

    await context.close()
    watch.check()


async def test_without_a_session_the_dashboard_is_refused(
    harness: Harness, web: str, browser: Browser
) -> None:
    h = harness
    await officer_of_alfa(h)
    watch = Watch(expected_statuses={401})
    context, page = await new_page(browser, watch)

    for path in ("/dashboard", "/dashboard/waves/m2", "/dashboard/exports"):
        response = await page.goto(f"{web}{path}")
        assert response is not None and response.status == 401, path
        await expect(page.locator("p.message")).to_contain_text("/dashboard")
        await expect(page.locator("header nav")).to_have_count(0)
        await expect(page.locator("main")).not_to_contain_text("Alfa College")
    # A forged cookie is no session either.
    await context.add_cookies(
        [{"name": "gradtrack_session", "value": "forged", "url": f"{web}/dashboard"}]
    )
    response = await page.goto(f"{web}/dashboard")
    assert response is not None and response.status == 401

    await context.close()
    watch.check()


async def test_a_wrong_csrf_token_is_refused_and_the_right_one_changes_the_language(
    harness: Harness, web: str, browser: Browser
) -> None:
    h = harness
    officer, link = await officer_of_alfa(h)
    watch = Watch(expected_statuses={403})
    context, page = await new_page(browser, watch)
    await log_in(page, link, web)
    await expect(page.locator("html")).to_have_attribute("lang", "nl")
    form = page.locator('form[action="/dashboard/language"]')
    csrf = form.locator('input[name="csrf"]')
    right = await csrf.get_attribute("value")
    assert right

    await csrf.evaluate("(input) => { input.value = 'wrong'; }")
    await form.locator("select").select_option("et")
    async with page.expect_response(
        lambda r: r.url.endswith("/dashboard/language") and r.request.method == "POST"
    ) as refused:
        await form.get_by_role("button").click()
    assert (await refused.value).status == 403
    await expect(page.locator("h1")).to_have_text(tr("nl", "This form has expired"))
    assert await staff_language(h, officer) == "nl"
    await page.goto(f"{web}/dashboard")
    await expect(page.locator("html")).to_have_attribute("lang", "nl")

    # The form as the page gave it: the language changes, and the page follows.
    await form.locator("select").select_option("et")
    await form.get_by_role("button").click()
    await expect(page.locator("html")).to_have_attribute("lang", "et")
    await expect(page).to_have_url(f"{web}/dashboard")
    await expect(page.locator("h1")).to_contain_text(tr("et", "Overview"))
    assert await staff_language(h, officer) == "et"
    # The session (and its token) are the same after the change.
    assert await csrf.get_attribute("value") == right

    await context.close()
    watch.check()


async def test_logging_out_ends_the_session(harness: Harness, web: str, browser: Browser) -> None:
    h = harness
    _officer, link = await officer_of_alfa(h)
    watch = Watch(expected_statuses={401, 403})
    context, page = await new_page(browser, watch)
    await log_in(page, link, web)
    cookies = await context.cookies(f"{web}/dashboard")
    session = [c for c in cookies if c["name"] == "gradtrack_session"]
    assert session and session[0].get("httpOnly")

    async with page.expect_response(
        lambda r: r.url.endswith("/dashboard/logout") and r.request.method == "POST"
    ) as out:
        await page.locator("#logout").click()
    assert (await out.value).status == 200
    await expect(page.locator("h1")).to_have_text(tr("nl", "Logged out"))
    await expect(page.locator("#logout")).to_have_count(0)
    assert not [c for c in await context.cookies(f"{web}/dashboard") if c["value"]]

    response = await page.goto(f"{web}/dashboard")
    assert response is not None and response.status == 401
    await expect(page.locator("p.message")).to_contain_text("/dashboard")
    # Not even a copy of the old cookie brings the session back.
    await context.add_cookies([{**session[0]}])
    response = await page.goto(f"{web}/dashboard")
    assert response is not None and response.status == 401
    # Nor does the spent link from the bot.
    await page.goto(link)
    await expect(page.locator("#login")).to_have_count(0)

    await context.close()
    watch.check()
