"""Staff: the CLI and storage, the staff invite link, the check of staff commands, and the
graduates' /news choice. Through the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest
from sqlmodel import select

from conversations.notice import shown_version
from conversations.rules import PayloadKind, parse_start_payload
from conversations.staff import cmd_staff
from storage.db import Database
from storage.models import Institution, Staff, StaffInvite
from storage.staff import (
    StaffError,
    add_staff,
    create_invite,
    list_staff,
    remove_staff,
    staff_of,
)
from tests.harness import Harness, tr

STAFF_ONLY = "This command is for school staff."


async def _staff(db: Database) -> list[Staff]:
    async with db.session() as session:
        return list((await session.exec(select(Staff).order_by(Staff.id))).all())  # type: ignore[arg-type]


async def test_add_list_remove_staff(harness: Harness) -> None:
    db = harness.db
    school = await harness.school("alfa")
    member, created = await add_staff(db, 111, "officer", school_code="ALFA", name="Ann")
    assert created and member.institution_id == school.id and member.role == "officer"
    again, created = await add_staff(db, 111, "admin", name=None)
    assert not created and again.role == "admin" and again.institution_id is None
    assert again.name == "Ann"
    with pytest.raises(StaffError, match="officer needs a school"):
        await add_staff(db, 222, "officer")
    with pytest.raises(StaffError, match="no school"):
        await add_staff(db, 222, "officer", school_code="nope")
    with pytest.raises(StaffError, match="role"):
        await add_staff(db, 222, "boss", school_code="alfa")
    rows = await list_staff(db)
    assert [(r.staff.telegram_user_id, r.school_code) for r in rows] == [(111, None)]
    assert await remove_staff(db, 111)
    assert not await remove_staff(db, 111)
    assert await _staff(db) == []


async def test_cli_staff_commands(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    await harness.school("alfa")
    settings = harness.settings.model_copy(
        update={"bot_username": "gradtrack_test_bot", "telegram_bot_token": "123456:real-token"}
    )

    async def run(**kw: object) -> int:
        return await cmd_staff(settings, argparse.Namespace(**kw))

    assert await run(action="add", telegram_id=5, role="officer", school="alfa", name="Bo") == 0
    assert "staff 5 added: officer of alfa" in capsys.readouterr().out
    assert await run(action="add", telegram_id=6, role="officer", school=None, name=None) == 1
    assert "officer needs a school" in capsys.readouterr().err
    assert await run(action="list") == 0
    assert "5  officer  alfa  Bo" in capsys.readouterr().out
    assert await run(action="invite", role="admin", school=None, hours=48.0) == 0
    link = capsys.readouterr().out.splitlines()[0]
    assert link.startswith("https://t.me/gradtrack_test_bot?start=t_")
    payload = link.split("start=", 1)[1]
    assert len(payload) <= 64 and parse_start_payload(payload).kind is PayloadKind.STAFF
    assert await run(action="remove", telegram_id=5) == 0
    assert await run(action="remove", telegram_id=5) == 1

    capsys.readouterr()
    # Without a token (the sandbox), the link opens the sandbox's web chat: no BOT_USERNAME.
    sandbox = harness.settings.model_copy(update={"bot_username": "", "sandbox_port": 8099})
    assert (
        await cmd_staff(
            sandbox, argparse.Namespace(action="invite", role="admin", school=None, hours=1.0)
        )
        == 0
    )
    sandbox_link = capsys.readouterr().out.splitlines()[0]
    assert sandbox_link.startswith("http://127.0.0.1:8099/chat?bot=gradtrack_demo_bot&start=t_")


async def test_staff_invite_link_once_and_not_expired(harness: Harness) -> None:
    school = await harness.school("alfa")
    now = harness.clock.now()
    invite = await create_invite(harness.db, "officer", "alfa", 48, now)
    user = harness.user("it")
    (welcome,) = await harness.send(user, f"/start {invite.token}")
    assert welcome.text == tr(
        "it",
        "Welcome! You are now {role} for {school}. Send /news to write alumni news, "
        "/broadcasts to see the news sent, /stats for the response figures and "
        "/dashboard for a login link to the web dashboard.",
    ).format(role=tr("it", "alumni officer"), school=school.name)
    async with harness.db.session() as session:
        member = await staff_of(session, user.id)
        assert member is not None and member.institution_id == school.id
        assert member.language == "it" and member.role == "officer"

    # Used: someone else gets a clear message and nothing changes.
    other = harness.user("es")
    (used,) = await harness.send(other, f"/start {invite.token}")
    assert used.text == tr("es", "This staff link has already been used. Please ask for a new one.")
    # Expired.
    old = await create_invite(harness.db, "admin", None, 1, now - timedelta(hours=2))
    (expired,) = await harness.send(other, f"/start {old.token}")
    assert expired.text == tr("es", "This staff link has expired. Please ask for a new one.")
    # Unknown.
    (unknown,) = await harness.send(other, "/start t_nosuchtoken")
    assert unknown.text == tr(
        "es", "I don't recognise this staff link. Please check that you opened the whole link."
    )
    assert [m.telegram_user_id for m in await _staff(harness.db)] == [user.id]
    async with harness.db.session() as session:
        stored = (await session.exec(select(StaffInvite).where(StaffInvite.id == old.id))).one()
        assert stored.used_at is None


async def test_staff_commands_refuse_graduates_and_strangers(harness: Harness) -> None:
    _graduate, user = await harness.consenting_graduate("nl")
    for command in ("/broadcasts", "/cancel"):
        (refused,) = await harness.send(user, command)
        assert refused.text == tr("nl", STAFF_ONLY)
    stranger = harness.user("et")
    (refused,) = await harness.send(stranger, "/broadcasts")
    assert refused.text == tr("et", STAFF_ONLY)


async def test_graduate_news_toggle_with_consent_trail(harness: Harness) -> None:
    graduate, user = await harness.consenting_graduate("en", answers=("Yes", "Yes", "No"))
    (status,) = await harness.send(user, "/news")
    assert status.text == "You do not receive alumni news from your school."
    await harness.press(user, "Receive alumni news", expect=0)
    await harness.keyboard_shows(user, status, "Stop alumni news")
    assert (await harness.reload(graduate)).consent_news is True
    # The old "Receive" button cannot be pressed again: the message now only offers "Stop".
    await harness.press(user, "Stop alumni news", expect=0, message=status)
    await harness.keyboard_shows(user, status, "Receive alumni news")
    stored = await harness.reload(graduate)
    assert stored.consent_news is False
    async with harness.db.session() as session:
        school = await session.get(Institution, graduate.institution_id)
    assert school is not None
    version = shown_version(harness.settings, school)
    events = [(e.kind, e.granted, e.notice_version) for e in await harness.consent_events(graduate)]
    assert events[-3:] == [
        ("news", False, version),
        ("news", True, version),
        ("news", False, version),
    ]


async def test_news_for_someone_not_registered(harness: Harness) -> None:
    user = harness.user("en")
    (reply,) = await harness.send(user, "/news")
    assert reply.content.startswith("Hello! This is your school's graduate chat.")
