"""Actions and follow-up lists in a real browser (Chromium through Playwright), at desktop
and phone widths: an officer records an action from a graduate's comment with the form,
closes it, and reads the follow-up list; every page passes axe-core and does not scroll
sideways. On SQLite and PostgreSQL. (tests/test_actions_followups.py: over HTTP.)"""

from __future__ import annotations

from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, expect

from storage.staff import add_staff
from tests.harness import Harness
from tests.test_actions_followups import COMMENT, seed
from tests.test_dashboard import login_link
from tests.test_dashboard_browser import TIMEOUT, Watch
from tests.test_dashboard_glance import SIDEWAYS


async def test_an_action_and_the_lists_in_the_browser_at_desktop_and_phone_widths(
    harness: Harness, web: str, browser: Browser
) -> None:
    h = harness
    s = await seed(h)
    officer = h.user("en")
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    axe = Axe()
    found: dict[str, Any] = {}
    for width, height in ((1280, 900), (360, 800)):
        watch = Watch(expected_statuses={400})
        context = await browser.new_context(
            viewport={"width": width, "height": height}, bypass_csp=True
        )
        context.set_default_timeout(TIMEOUT)
        page = await context.new_page()
        watch.attach(page)
        await page.goto(await login_link(h, officer))
        await page.locator("#login").click()
        await expect(page).to_have_url(f"{web}/dashboard")

        await page.goto(f"{web}/dashboard/programmes/{s.cook}")
        await page.locator("#actions-link a").click()
        await expect(page.locator("h1")).to_contain_text("Actions")
        await page.locator("#what").fill("")
        await page.locator("#why").fill("Ovens")
        # An empty "what": the browser's own check keeps the form; the server's too.
        await page.locator("#what").evaluate("e => e.removeAttribute('required')")
        await page.get_by_role("button", name="Save the action").click()
        await expect(page.locator("#errors")).to_contain_text("Please say what will be done.")
        await expect(page.locator("#why")).to_have_value("Ovens")  # nothing lost
        for name, problems in [("new action", (await axe.run(page)).response["violations"])]:
            if problems:
                found[f"{width} {name}"] = [v["id"] for v in problems]
        assert await page.evaluate(SIDEWAYS) <= 0, (width, "actions")
        await page.locator("#what").fill(f"Oven practicals ({width})")
        await page.locator(f"#comment-{s.comment_id}").check()
        await page.locator("#who").fill("Team Cook")
        await page.get_by_role("button", name="Save the action").click()
        await expect(page).to_have_url(f"{web}/dashboard/actions/{1 if width == 1280 else 2}")
        await expect(page.locator("#linked-comments")).to_contain_text(COMMENT)
        await page.locator("#result").fill("Two practicals with a combi-steamer")
        await page.get_by_role("button", name="Close as done").click()
        await expect(page.locator("#action-status")).to_have_text("Done")
        await expect(page.locator("#news-text")).to_contain_text("combi-steamer")
        for path in (
            str(page.url).removeprefix(web),
            "/dashboard/followups?list=work",
            "/dashboard/followups?list=offer",
        ):
            await page.goto(f"{web}{path}")
            problems = (await axe.run(page)).response["violations"]
            if problems:
                found[f"{width} {path}"] = [
                    (v["id"], [n["target"] for n in v["nodes"]][:3]) for v in problems
                ]
            assert await page.evaluate(SIDEWAYS) <= 0, (width, path)
        await expect(page.locator(f"#g{s.ids['Ida Ict']}")).to_contain_text("Mentor a student")
        await context.close()
        watch.check()
    assert not found, found
