"""The programme report on the dashboard (issue 18): who may open it and its PDF (over
HTTP), and the page in Debian's Chromium at desktop and phone widths: reached from the
programme page, no accessibility violation (axe-core, shipped in axe-playwright-python),
no sideways scrolling, nothing loaded from outside, the PDF downloaded from its link. On
SQLite and PostgreSQL, with tests/test_dashboard.py's `seed_small` (alfa's P1 "Cook": 6
graduates of 2026, 5 of whom completed m2, each with a job title in E4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, expect
from sqlmodel import select

from storage.models import Answer, Programme
from storage.staff import add_staff
from tests.harness import Harness
from tests.test_dashboard import client_session, log_in, login_link, seed_small
from tests.test_dashboard_browser import TIMEOUT, Watch
from tests.test_dashboard_browser import log_in as log_in_browser

SIDEWAYS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


async def _p1(h: Harness) -> int:
    async with h.db.session() as session:
        programme = (await session.exec(select(Programme).where(Programme.code == "P1"))).one()
    assert programme.id is not None
    return programme.id


async def with_comments(h: Harness) -> None:
    """Each job title of seed_small also given as a comment (A4): the job titles themselves
    are no comments."""
    async with h.db.session() as session:
        for row in (await session.exec(select(Answer).where(Answer.question == "E4"))).all():
            text = str(row.value).replace("Chef", "More practice")
            session.add(Answer(response_id=row.response_id, question="A4", value=text))


async def test_who_may_open_the_report_and_its_pdf(harness: Harness, web: str) -> None:
    """alfa's officer: the page and the PDF of alfa's P1 with its comments (never the job
    titles), without an "all schools" column; an admin: with it; a researcher of all
    schools: the figures with the column, no comments (free text is not for them); beta's
    officer: 404 for both; without a session: 401."""
    h = harness
    await seed_small(h)
    await with_comments(h)
    p1 = await _p1(h)
    page, pdf = (
        f"{web}/dashboard/programmes/{p1}/report",
        f"{web}/dashboard/programmes/{p1}/report.pdf",
    )
    async with client_session() as stranger:
        for url in (page, pdf):
            async with stranger.get(url) as response:
                assert response.status == 401
    for role, school, status, all_schools in (
        ("officer", "alfa", 200, False),
        ("admin", None, 200, True),
        ("researcher", None, 200, True),
        ("officer", "beta", 404, False),
    ):
        user = h.user("en")
        await add_staff(h.db, user.id, role, school_code=school)
        async with client_session() as client:
            await log_in(h, client, user)
            async with client.get(page) as response:
                assert response.status == status, (role, school)
                body = await response.text()
            async with client.get(pdf) as response:
                assert response.status == status, (role, school)
                data = await response.read()
                kind = response.headers.get("Content-Type", "")
        if status == 404:
            assert "Cook" not in body and "Chef" not in body
            assert not data.startswith(b"%PDF")
            continue
        assert "Alfa College" in body and "P1 · Cook" in body
        assert ('data-col="all"' in body) == all_schools
        assert "Secret Name" not in body  # comments without names
        assert "Chef" not in body  # a job title (E4) is no comment
        assert kind == "application/pdf" and data.startswith(b"%PDF")
        if role == "researcher":
            assert "More practice" not in body and "HYPERLINK" not in body
            continue
        assert "More practice" in body  # the comments (A4), 5 respondents
        assert "=HYPERLINK(&#34;http://evil&#34;)" in body or "HYPERLINK(&quot;" in body


async def test_the_report_in_the_browser_on_a_desktop_and_a_phone(
    harness: Harness, web: str, browser: Browser
) -> None:
    h = harness
    await seed_small(h)
    p1 = await _p1(h)
    admin = h.user("nl")
    await add_staff(h.db, admin.id, "admin")
    watch = Watch()
    axe = Axe()
    for width, height in ((1280, 900), (360, 740)):
        context = await browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        context.set_default_timeout(TIMEOUT)
        page = await context.new_page()
        watch.attach(page)
        await log_in_browser(page, await login_link(h, admin), web)
        await page.goto(f"{web}/dashboard/programmes/{p1}")
        await page.locator("#programme-report").click()
        await expect(page).to_have_url(f"{web}/dashboard/programmes/{p1}/report")
        await expect(page.locator("h1")).to_contain_text("P1 · Cook")
        await expect(page.locator("#report-school")).to_contain_text("Alfa College")
        # In Dutch (the admin's Telegram language): 5 of 6 graduates, 83,3%.
        rate = page.locator(
            '#wave-m2 table.compared tr[data-key="response_rate"] td[data-col="programme"]'
        )
        await expect(rate).to_have_text("83,3%")
        assert await page.evaluate(SIDEWAYS) <= 0, width
        async with page.expect_download() as download_info:
            await page.locator("#report-pdf").click()
        download = await download_info.value
        path = await download.path()
        assert path is not None
        head = await asyncio.to_thread(Path(path).read_bytes)
        assert head.startswith(b"%PDF-")
        assert download.suggested_filename == "report-P1.pdf"
        # axe-core injects its script: a context of its own that may (bypass_csp).
        checked = await browser.new_context(
            viewport={"width": width, "height": height}, bypass_csp=True
        )
        axe_page = await checked.new_page()
        await log_in_browser(axe_page, await login_link(h, admin), web)
        await axe_page.goto(f"{web}/dashboard/programmes/{p1}/report")
        violations = (await axe.run(axe_page)).response["violations"]
        assert not violations, [
            (v["id"], [n["target"] for n in v["nodes"]][:3]) for v in violations
        ]
        await checked.close()
        await context.close()
    watch.check()
