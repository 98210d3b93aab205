"""Removing a staff member (issue 14): `gradtrack staff remove` works whatever the person did,
ends their dashboard sessions, login links and chat commands at once, and keeps the news and
segments they wrote, with the creator shown as a removed staff member. On SQLite and
PostgreSQL, through the sandbox and the dashboard over HTTP."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

from sqlmodel import col, select
from yarl import URL

from conversations.staff import cmd_staff
from storage.models import Broadcast, BroadcastStatus, ChatState, DashboardLogin, Segment, Staff
from storage.staff import add_staff, list_staff, remove_staff
from tests.harness import Harness, eventually, tr
from tests.test_dashboard import client_session, log_in, login_link
from tests.test_news_compose import _seed

STAFF_ONLY = "This command is for school staff."


async def _logins(h: Harness) -> list[DashboardLogin]:
    async with h.db.session() as session:
        return list((await session.exec(select(DashboardLogin))).all())


async def test_removed_staff_lose_access_at_once_and_their_news_stays(
    harness: Harness, web: str
) -> None:
    h = harness
    school = await h.school("alfa", language="nl")
    await _seed(h, school, 8_999_999, 9_000_000)
    officer = h.user("en")
    await add_staff(h.db, officer.id, "officer", school_code="alfa", name="Olga Officer")

    # The officer logs in to the dashboard, and asks for a second link they never open.
    async with client_session() as browser:
        await log_in(h, browser, officer)
        cookie = browser.cookie_jar.filter_cookies(URL(f"{web}/dashboard"))["gradtrack_session"]
    unused = await login_link(h, officer)
    (session_row,) = [row for row in await _logins(h) if row.used_at is not None]

    # ... writes news in the chat: saves a segment and schedules the news.
    await h.send(officer, "/news")
    await h.send(officer, "Open dag op vrijdag")
    await h.press(officer, "Dutch")
    (audience,) = await h.press(officer, "Done")
    await h.press(officer, "Save as segment", message=audience)
    _saved, audience = await h.send(officer, "Everyone", expect=2)
    _header, _preview, prompt = await h.press(officer, "Continue", expect=3, message=audience)
    await h.press(officer, "Schedule", message=prompt)
    (done,) = await h.send(officer, "01-06-2031 10:00")
    assert done.content.startswith("Scheduled:"), done.content
    async with h.db.session() as session:
        broadcast = (await session.exec(select(Broadcast))).one()
        segment = (await session.exec(select(Segment))).one()
        member = (await session.exec(select(Staff).where(Staff.name == "Olga Officer"))).one()
    assert broadcast.created_by == segment.created_by == member.id
    assert broadcast.report_chat_id == officer.id

    # `gradtrack staff remove` (the CLI's own function) succeeds.
    removal = argparse.Namespace(action="remove", telegram_id=officer.id)
    assert await cmd_staff(h.settings, removal) == 0

    # The session cookie is refused on its next request, the unused link no longer works,
    # and the chat's staff commands are refused.
    async with (
        client_session(cookies={"gradtrack_session": cookie.value}) as old,
        old.get(f"{web}/dashboard") as page,
    ):
        assert page.status == 401
        assert "Send /dashboard" in await page.text()
    async with client_session() as browser, browser.get(unused) as page:
        assert page.status == 403
        assert "not valid" in await page.text()
    token = unused.rsplit("/", 1)[1]
    async with (
        client_session() as browser,
        browser.post(f"{web}/dashboard/login", data={"token": token}) as refused,
    ):
        assert refused.status == 403
        assert "gradtrack_session" not in refused.cookies
    for command in ("/stats", "/dashboard", "/broadcasts"):
        (reply,) = await h.send(officer, command)
        assert reply.content == tr("en", STAFF_ONLY), command
    assert await _logins(h) == []

    # The news and the segment stay, their creator a tombstone that identifies no one; the
    # delivery report no longer goes to the removed person's chat.
    async with h.db.session() as session:
        kept = (await session.exec(select(Broadcast))).one()
        kept_segment = (await session.exec(select(Segment))).one()
        tombstone = await session.get(Staff, member.id)
    assert kept.status == BroadcastStatus.SCHEDULED.value and kept.created_by == member.id
    assert kept.report_chat_id is None
    assert kept_segment.created_by == member.id
    assert tombstone is not None and tombstone.removed_at is not None
    assert (tombstone.telegram_user_id, tombstone.name, tombstone.language) == (None, None, None)
    assert [row.staff.telegram_user_id for row in await list_staff(h.db)] == []

    # An admin still sees the news, written by "removed staff member". Their session may get
    # the removed one's login row id (SQLite reuses the highest id once deleted): the old
    # cookie stays refused, since it is bound to the row's token, not only its id.
    admin = h.user("en")
    await add_staff(h.db, admin.id, "admin", name="Ada Admin")
    async with client_session() as browser:
        await log_in(h, browser, admin)
        async with browser.get(f"{web}/dashboard/broadcasts") as page:
            listing = await page.text()
        async with browser.get(f"{web}/dashboard/broadcasts/{kept.id}") as page:
            detail = await page.text()
    row = re.search(rf'href="/dashboard/broadcasts/{kept.id}".*?</tr>', listing, re.S)
    assert row, listing
    assert '<td class="creator">removed staff member</td>' in row.group(0)
    assert "removed staff member" in detail and "Olga" not in listing + detail
    (admin_row,) = [row for row in await _logins(h) if row.used_at is not None]
    if h.db.dialect == "sqlite":
        assert admin_row.id == session_row.id  # the id was reused
    async with (
        client_session(cookies={"gradtrack_session": cookie.value}) as old,
        old.get(f"{web}/dashboard") as page,
    ):
        assert page.status == 401

    # Removing again says so; the same person can be made staff again, from scratch.
    assert not await remove_staff(h.db, officer.id)
    again, created = await add_staff(h.db, officer.id, "officer", school_code="alfa")
    assert created and again.id != member.id
    (reply,) = await h.send(officer, "/broadcasts")
    assert reply.content != tr("en", STAFF_ONLY)


async def test_expired_and_ended_login_rows_are_cleaned_up(harness: Harness, web: str) -> None:
    from bot.scheduler import cleanup_job  # here: the other test runs without it

    h = harness
    await h.school("alfa")
    admin = h.user("en")
    await add_staff(h.db, admin.id, "admin")
    await login_link(h, admin)  # never used: expires after 10 minutes
    async with client_session() as browser:
        csrf = await log_in(h, browser, admin)
        async with browser.post(f"{web}/dashboard/logout", data={"csrf": csrf}) as out:
            assert out.status == 200  # ended
    assert len(await _logins(h)) == 2
    h.clock.advance(timedelta(minutes=11))
    fresh = await login_link(h, admin)  # still usable
    async with client_session() as browser:
        await log_in(h, browser, admin)  # an open session
        assert await cleanup_job(h.runtime) == 2
        left = await _logins(h)
        assert len(left) == 2
        assert sum(row.used_at is None for row in left) == 1  # the fresh link
        async with browser.get(f"{web}/dashboard") as page:
            assert page.status == 200  # the open session is untouched
        async with browser.get(fresh) as page:
            assert page.status == 200
        # Once the session has expired, its row goes too.
        h.clock.advance(timedelta(hours=9))
        assert await cleanup_job(h.runtime) == 2
    assert await _logins(h) == []
    async with h.db.session() as session:
        assert (
            await session.exec(select(Staff).where(col(Staff.telegram_user_id) == admin.id))
        ).one()


async def test_staff_removed_while_writing_news_are_answered_like_anyone(
    harness: Harness,
) -> None:
    h = harness
    await h.school("alfa")
    officer = h.user("en")
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    await h.send(officer, "/news")
    (more,) = await h.send(officer, "Reunion on Friday")
    assert await remove_staff(h.db, officer.id)
    # A button of the draft is no longer active; a message gets the answer anyone gets.
    await h.press(officer, "English", expect=0, message=more)
    await eventually(lambda: len(h.callback_answers(officer)) == 1)
    stranger = h.user("en")
    (expected,) = await h.send(stranger, "Hello")
    (reply,) = await h.send(officer, "Hello")
    assert reply.content == expected.content
    async with h.db.session() as session:
        state = await session.get(ChatState, officer.id)
    assert state is not None and state.flow == ""
