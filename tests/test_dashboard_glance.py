"""The dashboard at a glance, as a newcomer reads it on a desktop and on a phone (issue 15):
charts whose text is at least 12 px, percentages never shown as "<5", a funnel that never
narrows the wrong way, no page that scrolls sideways at 400 or 360 px, no accessibility
violation (axe-core), `/` leading to the dashboard, and every error and login page in the
reader's language. In Debian's Chromium (Playwright) and over HTTP, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import aiohttp
from axe_playwright_python.async_playwright import Axe
from markupsafe import escape
from playwright.async_api import Browser, Page, expect
from sqlalchemy import text
from sqlmodel import select

from bot.sandbox import SandboxUser
from storage.models import Programme
from storage.staff import add_staff
from tests.harness import Harness, tr
from tests.test_dashboard import client_session, login_link, seed_small
from tests.test_dashboard import log_in as log_in_over_http
from tests.test_dashboard_browser import TIMEOUT, Watch, log_in

PHONES = ((400, 860), (360, 740))
DESKTOP = (1280, 900)


async def admin_of_all(h: Harness, language: str = "nl") -> SandboxUser:
    """seed_small's data and an admin of every school (in Telegram: `language`)."""
    await seed_small(h)
    admin = h.user(language)
    await add_staff(h.db, admin.id, "admin")
    return admin


async def p1_id(h: Harness) -> int:
    async with h.db.session() as session:
        programme = (await session.exec(select(Programme).where(Programme.code == "P1"))).one()
    assert programme.id is not None
    return programme.id


async def open_page(browser: Browser, watch: Watch, width: int, height: int) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(TIMEOUT)
    page = await context.new_page()
    watch.attach(page)
    return page


CHART_TEXT_SIZES = """() => Array.from(document.querySelectorAll("svg.chart text")).map((t) => {
  const matrix = t.getScreenCTM();
  const scale = Math.hypot(matrix.a, matrix.b);
  return [t.textContent, scale * parseFloat(getComputedStyle(t).fontSize)];
})"""


async def test_every_chart_text_is_at_least_12px_on_a_desktop_and_on_phones(
    harness: Harness, web: str, browser: Browser
) -> None:
    """The charts are drawn in a viewBox: drawn 640 wide and squeezed into a phone, their
    12 px text came out at 6 px. Measured in the browser, after scaling."""
    h = harness
    admin = await admin_of_all(h)
    programme = await p1_id(h)
    watch = Watch()
    for width, height in (DESKTOP, *PHONES):
        page = await open_page(browser, watch, width, height)
        await log_in(page, await login_link(h, admin), web)
        for path in ("/dashboard", "/dashboard/waves/m2", f"/dashboard/programmes/{programme}"):
            await page.goto(f"{web}{path}")
            sizes: list[tuple[str, float]] = await page.evaluate(CHART_TEXT_SIZES)
            assert len(sizes) >= 5, (path, sizes)
            small = [(t, round(size, 2)) for t, size in sizes if size < 11.99]
            assert not small, (width, path, small)
            # Nor is a chart wider than its box (it would be cut off or scroll).
            overflow = await page.evaluate(
                """() => Array.from(document.querySelectorAll("figure")).filter(
                     (f) => f.querySelector("svg").getBoundingClientRect().right
                            > f.getBoundingClientRect().right + 0.5).length"""
            )
            assert overflow == 0, (width, path)
        await page.context.close()
    watch.check()


PERCENT_CELLS = """() => {
  const found = [];
  for (const table of document.querySelectorAll("main table")) {
    const heads = Array.from(table.querySelectorAll("thead th")).map((th) => th.textContent);
    for (const row of table.querySelectorAll("tbody tr")) {
      Array.from(row.children).forEach((cell, i) => {
        if (i < heads.length) found.push([heads[i], cell.textContent.trim()]);
      });
    }
  }
  return found;
}"""


def is_percentage_column(heading: str, lang: str) -> bool:
    names = [tr(lang, "Response rate"), tr(lang, "Rate of reachable"), tr(lang, "Drop-off")]
    return any(name in heading for name in names) or bool(re.match(r"\s*(5a|5b|6a|6b1) ·", heading))


async def test_a_percentage_column_never_shows_less_than_5_but_a_dash_with_a_footnote(
    harness: Harness, web: str, browser: Browser
) -> None:
    """ "<5" in a percentage column reads as "under 5 %". Beta College has 3 graduates:
    its response rate is not shown, as "–", and the footnote says what "–" means; the counts
    columns still say "<5"."""
    h = harness
    admin = await admin_of_all(h)
    programme = await p1_id(h)
    watch = Watch()
    page = await open_page(browser, watch, *DESKTOP)
    await log_in(page, await login_link(h, admin), web)
    dashes = 0
    for path in ("/dashboard", "/dashboard/waves/m2", f"/dashboard/programmes/{programme}"):
        await page.goto(f"{web}{path}")
        cells: list[tuple[str, str]] = await page.evaluate(PERCENT_CELLS)
        percentages = [(head, cell) for head, cell in cells if is_percentage_column(head, "nl")]
        assert percentages, path
        assert not [c for c in percentages if c[1] == "<5"], (path, percentages)
        dashes += sum(1 for _head, cell in percentages if cell == "–")
        await expect(page.locator("#not-shown")).to_have_text(
            "– " + tr("nl", "fewer than 5 people: not shown")
        )
    assert dashes >= 2
    # The wave's school table: beta's 3 graduates ("<5"), its rate "–".
    await page.goto(f"{web}/dashboard/waves/m2")
    beta = page.locator("table.numbers tr").filter(has_text="Beta")
    await expect(beta.locator('td[data-key="graduates"]')).to_have_text("<5")
    await expect(beta.locator('td[data-key="rate"]')).to_have_text("–")
    await page.context.close()
    watch.check()


async def test_the_funnel_never_shows_fewer_invited_than_started(
    harness: Harness, web: str
) -> None:
    """seed_small's six graduates answered m2 without an invitation row (as from /survey):
    the table said "invited 0, started 6". Now each step is at least the next."""
    h = harness
    admin = await admin_of_all(h, "en")
    programme = await p1_id(h)
    async with client_session() as client:
        await log_in_over_http(h, client, admin)
        for path in ("/dashboard", "/dashboard/waves/m2", f"/dashboard/programmes/{programme}"):
            async with client.get(f"{web}{path}") as response:
                body = await response.text()
            rows = re.findall(r"<tr>\s*<th scope=\"row\">(.*?)</tr>", body, re.S)
            checked = 0
            for row in rows:
                cells = dict(re.findall(r'<td data-key="(\w+)">([^<]*)</td>', row))
                if "invited" not in cells:
                    continue
                numbers = [cells[k] for k in ("invited", "started", "completed")]
                if "&lt;5" in numbers:
                    continue
                invited, started, completed = (int(n.replace(",", "")) for n in numbers)
                assert invited >= started >= completed, (path, row)
                checked += 1
            assert checked >= 1, path
            if path == "/dashboard":  # m2: the six who started were reached
                m2 = re.search(r"waves/m2[^>]*>.*?</tr>", body, re.S)
                assert m2 and '<td data-key="invited">6</td>' in m2.group(0), body


async def pages_of(h: Harness, web: str) -> list[str]:
    programme = await p1_id(h)
    return [
        "/dashboard",
        "/dashboard/waves/m2",
        f"/dashboard/programmes/{programme}",
        "/dashboard/broadcasts",
        "/dashboard/roster",
        "/dashboard/exports",
        "/dashboard/no-such-page",
    ]


SIDEWAYS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


async def test_no_dashboard_page_scrolls_sideways_at_400_and_360_px(
    harness: Harness, web: str, browser: Browser
) -> None:
    """Wide tables scroll inside their own box, with a shadow at the edge that hides more
    columns, and the box can be scrolled with the keyboard; the page itself never does."""
    h = harness
    admin = await admin_of_all(h)
    watch = Watch(expected_statuses={401, 404})
    for width, height in PHONES:
        page = await open_page(browser, watch, width, height)
        # Before logging in: the login page, and the pages of someone without a session.
        opened = await page.goto(await login_link(h, admin))
        assert opened is not None and opened.status == 200
        assert await page.evaluate(SIDEWAYS) <= 0, (width, "login")
        await page.locator("#login").click()
        await expect(page).to_have_url(f"{web}/dashboard")
        for path in await pages_of(h, web):
            await page.goto(f"{web}{path}")
            assert await page.evaluate(SIDEWAYS) <= 0, (width, path)
        await page.goto(f"{web}/dashboard")
        boxes = page.locator(".table-scroll")
        assert await boxes.count() >= 3
        wide = await boxes.evaluate_all(
            """(all) => all.filter((b) => b.scrollWidth > b.clientWidth).map((b) => [
                 b.tabIndex, getComputedStyle(b).overflowX, getComputedStyle(b).backgroundImage])"""
        )
        assert wide, "no table is wider than a phone: nothing to scroll"
        for tab_index, overflow, background in wide:
            assert tab_index == 0 and overflow == "auto"
            assert "gradient" in background  # the shadow at the edge
        await page.context.close()
    page = await open_page(browser, watch, *PHONES[1])
    for path in ("/dashboard", "/no-such-page"):
        await page.goto(f"{web}{path}")
        assert await page.evaluate(SIDEWAYS) <= 0, path
    await page.context.close()
    watch.check()


async def test_axe_finds_no_accessibility_violation_on_the_dashboard(
    harness: Harness, web: str, browser: Browser
) -> None:
    """axe-core (shipped inside axe-playwright-python, nothing fetched) on every page, on a
    phone of 400 px."""
    h = harness
    admin = await admin_of_all(h)
    watch = Watch(expected_statuses={404})
    axe = Axe()
    context = await browser.new_context(viewport={"width": 400, "height": 860}, bypass_csp=True)
    context.set_default_timeout(TIMEOUT)
    page = await context.new_page()
    watch.attach(page)
    found: dict[str, Any] = {}
    await page.goto(await login_link(h, admin))
    violations = (await axe.run(page)).response["violations"]
    if violations:
        found["login"] = [v["id"] for v in violations]
    await page.locator("#login").click()
    await expect(page).to_have_url(f"{web}/dashboard")
    for path in await pages_of(h, web):
        await page.goto(f"{web}{path}")
        results = await axe.run(page)
        violations = results.response["violations"]
        if violations:
            found[path] = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in violations]
    assert not found, found
    await context.close()
    watch.check()


# ---------------------------------------------------------------- addresses and languages


async def test_the_site_address_leads_to_the_dashboard_and_an_unknown_one_to_a_page(
    harness: Harness, web: str
) -> None:
    h = harness
    await seed_small(h)
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{web}/", allow_redirects=False) as root:
            assert root.status == 302
            assert root.headers["Location"] == "/dashboard"
        async with client.get(f"{web}/") as followed:  # no session yet: the login hint
            assert followed.status == 401
            assert str(followed.url) == f"{web}/dashboard"
        headers = {"Accept-Language": "it-IT,it;q=0.9,en;q=0.5"}
        async with client.get(f"{web}/wp-admin", headers=headers) as missing:
            assert missing.status == 404
            assert missing.content_type == "text/html"
            body = await missing.text()
        assert 'lang="it"' in body
        assert f"<h1>{tr('it', 'Not found')}</h1>" in body
        assert "Not Found" not in body and "Not found" not in body
        assert 'href="/dashboard"' in body
        # The service's own routes answer as before.
        async with client.get(f"{web}/healthz") as health:
            assert health.status == 200 and (await health.json()) == {"status": "ok"}


NOT_VALID = "This login link is not valid. Send /dashboard to the bot to get a new one."
USED = "This login link has already been used. Send /dashboard to the bot to get a new one."
EXPIRED = "This login link has expired. Send /dashboard to the bot to get a new one."

ENGLISH = (
    "Please log in",
    "Not found",
    "Not Found",
    "Not allowed",
    "Too large",
    "Something went wrong",
    "Cannot log in",
    "Log in",
    "Counts of fewer than 5 people",
    "fewer than 5 people: not shown",
    "Send /dashboard to the bot",
    "This form",
    "There is no",
)


def in_language(body: str, lang: str, title: str) -> None:
    """`body` is a page in `lang` headed `title` (English), with none of the English
    sentences of the error pages."""
    assert f'<html lang="{lang}">' in body
    assert f"<h1>{escape(tr(lang, title))}</h1>" in body, body
    for sentence in ENGLISH:
        if tr(lang, sentence) != sentence:
            assert sentence not in body, (lang, sentence)


async def test_every_error_and_login_page_speaks_the_reader_s_language(
    harness: Harness, web: str
) -> None:
    """401, 403, 404, 413, 500 and the expired, used and invalid login links, in Estonian
    and Italian: from Accept-Language without a session, from the staff member's language
    with one (whatever the browser says)."""
    h = harness
    await seed_small(h)
    for lang in ("et", "it"):
        accept = {"Accept-Language": f"{lang},en;q=0.5"}
        async with client_session(headers=accept) as client:
            async with client.get(f"{web}/dashboard") as page:
                assert page.status == 401
                in_language(await page.text(), lang, "Please log in")
            async with client.get(f"{web}/nowhere") as page:
                assert page.status == 404
                in_language(await page.text(), lang, "Not found")
            async with client.get(f"{web}/dashboard/login/not-a-token") as page:
                assert page.status == 403
                body = await page.text()
                in_language(body, lang, "Cannot log in")
                assert escape(tr(lang, NOT_VALID)) in body
            big = {"token": "x" * (70 * 1024)}
            async with client.post(f"{web}/dashboard/login", data=big) as page:
                assert page.status == 413
                in_language(await page.text(), lang, "Too large")
            async with client.post(
                f"{web}/dashboard/login", data={"token": "x"}, headers={"Origin": "http://evil"}
            ) as page:
                assert page.status == 403
                in_language(await page.text(), lang, "Not allowed")

        # A used and an expired link, for a staff member whose Telegram speaks `lang`.
        staff = h.user(lang)
        await add_staff(h.db, staff.id, "admin")
        link = await login_link(h, staff)
        token = link.rsplit("/", 1)[1]
        async with client_session(headers={"Accept-Language": "en"}) as client:
            async with client.get(link) as page:
                in_language(await page.text(), lang, "Log in to the gradtrack dashboard")
            async with client.post(f"{web}/dashboard/login", data={"token": token}) as page:
                assert page.status == 200
            # Logged in: the staff member's language rules, whatever the browser says.
            async with client.get(f"{web}/dashboard/no-such-page") as page:
                assert page.status == 404
                in_language(await page.text(), lang, "Not found")
            async with client.get(f"{web}/dashboard/waves/no-such-wave") as page:
                assert page.status == 404
                in_language(await page.text(), lang, "Not found")
            async with client.post(f"{web}/dashboard/language", data={"csrf": "wrong"}) as page:
                assert page.status == 403
                in_language(await page.text(), lang, "This form has expired")
            # A fault in the database: a page of ours, not aiohttp's bare text.
            await rename(h, "survey_response", "survey_response_away")
            try:
                async with client.get(f"{web}/dashboard") as page:
                    assert page.status == 500
                    in_language(await page.text(), lang, "Something went wrong")
            finally:
                await rename(h, "survey_response_away", "survey_response")
        async with client_session(headers={"Accept-Language": lang}) as other:
            async with other.post(f"{web}/dashboard/login", data={"token": token}) as page:
                assert page.status == 403
                body = await page.text()
                in_language(body, lang, "Cannot log in")
                assert escape(tr(lang, USED)) in body
            late = await login_link(h, staff)
            h.clock.advance(timedelta(minutes=11))
            async with other.get(late) as page:
                assert page.status == 403
                body = await page.text()
                in_language(body, lang, "Cannot log in")
                assert escape(tr(lang, EXPIRED)) in body


async def rename(h: Harness, old: str, new: str) -> None:
    async with h.db.engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
