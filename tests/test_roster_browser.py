"""The roster page on a phone-sized screen, in Chromium (issue 15, "The first hour"): a Dutch
officer sees what the columns are, downloads the template in Dutch, fills it in and imports
it, with nothing of the page's main part
reaching past the right edge of the screen. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
from datetime import date

from openpyxl import load_workbook
from playwright.async_api import Browser, FilePayload, Page, expect
from sqlmodel import col, select

from storage.models import Graduate
from storage.roster import COLUMNS, HEADERS
from tests.harness import Harness, tr
from tests.test_dashboard_browser import TIMEOUT, Watch, log_in, officer_of_alfa

WIDTH = 400


async def too_wide(page: Page) -> list[str]:
    """What on the page's main part reaches past the right edge of the screen (the header's
    navigation is the layout's, tested with it)."""
    found = await page.evaluate(
        """() => [...document.querySelectorAll('main, main *')]
            .filter((e) => e.getBoundingClientRect().right > window.innerWidth)
            .map((e) => `${e.tagName}#${e.id}: ${(e.textContent || '').trim().slice(0, 40)}`)"""
    )
    return list(found)


async def test_a_dutch_officer_fills_in_the_roster_template_on_a_400px_screen(
    harness: Harness, web: str, browser: Browser
) -> None:
    h = harness
    _officer, link = await officer_of_alfa(h)
    watch = Watch()
    context = await browser.new_context(
        accept_downloads=True, viewport={"width": WIDTH, "height": 800}
    )
    context.set_default_timeout(TIMEOUT)
    page = await context.new_page()
    watch.attach(page)
    await log_in(page, link, web)

    await page.goto(f"{web}/dashboard/roster")
    guide = page.locator("#columns")
    await expect(guide).to_be_visible()
    # Every column under its Dutch name, and what goes in it.
    for column in COLUMNS:
        await expect(guide.locator(f"#column-{column} code")).to_have_text(HEADERS["nl"][column])
    await expect(guide).to_contain_text(tr("nl", "The graduate's full name."))
    assert not await too_wide(page)

    xlsx = page.locator("#template-xlsx")
    await expect(xlsx).to_be_visible()
    box = await xlsx.bounding_box()
    assert box is not None and box["x"] + box["width"] <= WIDTH
    async with page.expect_download(timeout=TIMEOUT) as info:
        await xlsx.click()
    download = await info.value
    assert download.suggested_filename == "roster-nl.xlsx"
    saved = await download.path()
    data = await asyncio.to_thread(saved.read_bytes)
    workbook = load_workbook(io.BytesIO(data))
    sheet = workbook.worksheets[0]
    assert [cell.value for cell in sheet[1]] == [HEADERS["nl"][c] for c in COLUMNS]
    sheet.append(["B1", "Noor Jansen", None, "P1", date(2026, 6, 30), 4, "nl", "V", 2007])
    sheet.append(["B2", "Sam Vos", None, "P1", date(2026, 6, 30), None, None, "M", None])
    filled = io.BytesIO()
    workbook.save(filled)

    await page.locator("#file").set_input_files(
        files=FilePayload(
            name="klas 4b.xlsx",
            mimeType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            buffer=filled.getvalue(),
        )
    )
    await page.get_by_role("button", name=tr("nl", "Import")).click()
    await expect(page.locator("#report .ok")).to_have_text(tr("nl", "Imported."))
    assert not await too_wide(page)
    async with h.db.session() as session:
        refs = (
            await session.exec(
                select(Graduate.student_ref).where(col(Graduate.student_ref).in_(["B1", "B2"]))
            )
        ).all()
    assert sorted(refs) == ["B1", "B2"]

    await context.close()
    watch.check()
