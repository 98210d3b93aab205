"""The comments and plans-and-destinations pages in a real browser (Debian's Chromium, driven
by Playwright), at desktop and phone widths: an officer tags a comment with the page's own
form and removes it (an administrator of the school: comments are not for alumni
officers), filters by theme, picks a wave; no page scrolls sideways, axe-core finds
no accessibility violation, nothing is loaded from elsewhere. On SQLite and PostgreSQL.
(tests/test_feedback.py: the same over HTTP, with the hand-counted figures.)"""

from __future__ import annotations

import re
from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, expect

from storage.staff import add_staff
from tests import feedback_seed
from tests.feedback_seed import COMMENTS
from tests.harness import Harness, tr
from tests.test_dashboard import login_link
from tests.test_dashboard_browser import TIMEOUT, Watch, log_in
from tests.test_dashboard_glance import DESKTOP, PHONES, SIDEWAYS


async def test_an_administrator_tags_comments_and_reads_plans_on_a_desktop_and_a_phone(
    harness: Harness, web: str, browser: Browser
) -> None:
    h = harness
    seeded = await feedback_seed.seed(h.db)
    officer = h.user("it")
    await add_staff(h.db, officer.id, "admin", school_code="alfa")  # comments: admins
    watch = Watch(expected_statuses={400})  # the refused empty theme
    axe = Axe()
    found: dict[str, Any] = {}
    comments = f"{web}/dashboard/programmes/{seeded.p1}/comments"
    plans = f"{web}/dashboard/programmes/{seeded.p1}/expectations"
    for number, (width, height) in enumerate((DESKTOP, *PHONES)):
        context = await browser.new_context(
            viewport={"width": width, "height": height}, bypass_csp=True
        )
        context.set_default_timeout(TIMEOUT)
        page = await context.new_page()
        watch.attach(page)
        await log_in(page, await login_link(h, officer), web)

        # From the programme page to its comments, in the officer's Italian.
        await page.goto(f"{web}/dashboard/programmes/{seeded.p1}")
        await page.locator("#programme-pages a").nth(1).click()
        await expect(page).to_have_url(re.compile(re.escape(comments) + r"(\?school=\d+)?$"))
        await expect(page.locator("h1")).to_contain_text(tr("it", "Comments"))
        quotes = page.locator("#comments blockquote")
        await expect(quotes).to_have_text([text for _ref, _wave, text, _at in COMMENTS])
        await expect(page.locator("main")).not_to_contain_text("Secret Name")

        # Tag the newest comment with the page's form; the theme is counted and filters.
        theme = f"attrezzature {number}"
        newest = page.locator("li.comment").first
        await newest.get_by_label(tr("it", "Add a theme")).fill(theme)
        await newest.get_by_role("button", name=tr("it", "Add"), exact=True).click()
        await expect(page.locator("li.comment").first.locator("li.tag")).to_contain_text(theme)
        row = page.locator(f'#themes tr[data-theme="{theme}"]')
        await expect(row.locator('td[data-key="count"]')).to_have_text("1")
        await row.locator("a").click()
        await expect(quotes).to_have_text([COMMENTS[0][2]])
        # An empty theme: the error, in Italian, and nothing lost.
        await page.goto(comments)
        second = page.locator("li.comment").nth(1)
        await second.get_by_label(tr("it", "Add a theme")).fill("   ")
        await second.get_by_role("button", name=tr("it", "Add"), exact=True).click()
        await expect(page.locator("#error")).to_have_text(
            tr("it", "Please give the theme a name of 1 to 60 characters, e.g. “work placement”.")
        )
        await page.wait_for_load_state("load")
        assert await page.evaluate(SIDEWAYS) <= 0, (width, "comments")
        violations = (await axe.run(page)).response["violations"]
        if violations:
            found[f"{width} comments"] = [v["id"] for v in violations]
        # Remove the theme again.
        await page.goto(comments)
        remove = tr("it", "Remove the theme “{theme}”").format(theme=theme)
        await page.get_by_role("button", name=remove).click()
        await expect(page.locator("li.comment").first.locator("li.tag")).to_have_count(0)

        # Plans and destinations, one wave at a time.
        await page.goto(plans)
        table = page.locator("#expectations")
        await expect(
            table.locator('tr[data-plan="work"] td[data-key="employed"] .count')
        ).to_have_text("8")
        await page.locator("#wave").select_option("m2")
        await page.locator("#expectations-wave button").click()
        await expect(
            table.locator('tr[data-plan="total"] td[data-key="total"] .count')
        ).to_have_text("6")
        await page.wait_for_load_state("load")  # its stylesheet too, before measuring
        wide = await page.evaluate(
            """() => Array.from(document.querySelectorAll("body *")).filter(
                 (e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1
               ).slice(0, 8).map((e) => e.tagName + "#" + e.id + "." + e.className + " "
                 + Math.round(e.getBoundingClientRect().right))"""
        )
        assert await page.evaluate(SIDEWAYS) <= 0, (width, "expectations", wide)
        violations = (await axe.run(page)).response["violations"]
        if violations:
            found[f"{width} expectations"] = [
                (v["id"], [n["target"] for n in v["nodes"]][:3]) for v in violations
            ]
        await context.close()
    assert not found, found
    watch.check()
