"""Reach per channel and response rates per channel on the dashboard (issue 16, "Staff").

A school whose graduates fall in every reach category: one linked through the Telegram
sandbox and one who started their web chat over HTTP (their responses begun by the real
survey code, which records the channel), the others written as rows. The figures are
counted by hand below; on SQLite and PostgreSQL.

    ref prog  contact                                   reach    m2 response (channel)
    T1  ICT4  linked in the Telegram sandbox            chat     complete (telegram, begun)
    T2  ICT4  chat id                                   chat     complete (telegram)
    T3  ICT4  chat id                                   chat     complete (telegram)
    T4  ICT4  chat id                                   chat     complete (telegram)
    T5  ICT4  chat id                                   chat     complete (telegram)
    T6  ICT4  chat id, e-mail bounced                   chat     complete (telegram)
    W1  ICT4  started the web chat over HTTP            web      complete (web, begun)
    W2  ICT4  web chat state row                        web      complete (web)
    W3  ICT4  chat id but blocked, web chat state row   web      complete (web)
    W4  ICT4  none, but a response begun on the web     web      complete (web)
    W5  ICT4  web chat state row, e-mail ok             web      complete (web)
    E1  ICT4  e-mail                                    email    complete (unknown: old row)
    N5  ICT4  chat id but blocked                       none     -
    E2  CHEF4 e-mail                                    email    invited
    E3  CHEF4 e-mail                                    email    invited
    E4  CHEF4 e-mail                                    email    invited
    E5  CHEF4 e-mail, status ok                         email    invited
    B1  CHEF4 e-mail bounced                            bounced  -
    B2  CHEF4 e-mail unsubscribed                       bounced  -
    N1  CHEF4 opened the web link, did nothing          none     invited
    N2  CHEF4 nothing                                   none     invited
    N3  CHEF4 opted out, e-mail ok                      none     -
    N4  CHEF4 opted out, web chat state row             none     -
    X1  CHEF4 erased (had a web chat and an e-mail)     -        -

    reach       chat web email bounced none | all
    school        6   5    5      2      5  |  23   bounced hidden, so web is hidden too
    ICT4          6   5    1      0      1  |  13   email and none hidden: web is shown
    m2          invited  telegram       web            unknown
    all            18    6 = 33.3 %     5 = 27.8 %     1 (<5, –)
    ICT4           12    6 = 50.0 %     5 = 41.7 %     1 (<5, –)
    CHEF4           6    0 = 0.0 %      0 = 0.0 %      0
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import col, select, update

from conversations import survey
from conversations.rules import new_invite_token
from storage.models import (
    ChatState,
    Graduate,
    Institution,
    Invitation,
    Programme,
    ResponseStatus,
    SurveyResponse,
)
from storage.queries import get_chat_state, web_chat_id
from storage.staff import add_staff
from storage.stats import Scope
from tests.harness import Harness, tr
from tests.test_dashboard import client_session, log_in
from tests.webchat import WebGraduate

GRADUATION = date(2026, 6, 30)  # m2 opened on 2026-08-30; the harness's clock is 2026-11-23
DONE_AT = datetime(2026, 9, 3, 12, 0, tzinfo=UTC)

ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    # ref: programme, fields (T1 and W1 are made by the bot; "web": a web chat state row)
    "T2": ("ICT4", {"chat_id": 800_002}),
    "T3": ("ICT4", {"chat_id": 800_003}),
    "T4": ("ICT4", {"chat_id": 800_004}),
    "T5": ("ICT4", {"chat_id": 800_005}),
    "T6": ("ICT4", {"chat_id": 800_006, "email": "t6@example.org", "email_status": "bounced"}),
    "W2": ("ICT4", {"web": True}),
    "W3": ("ICT4", {"chat_id": 800_013, "unreachable_at": DONE_AT, "web": True}),
    "W4": ("ICT4", {}),
    "W5": ("ICT4", {"web": True, "email": "w5@example.org", "email_status": "ok"}),
    "E1": ("ICT4", {"email": "e1@example.org"}),
    "N5": ("ICT4", {"chat_id": 800_025, "unreachable_at": DONE_AT}),
    "E2": ("CHEF4", {"email": "e2@example.org"}),
    "E3": ("CHEF4", {"email": "e3@example.org"}),
    "E4": ("CHEF4", {"email": "e4@example.org"}),
    "E5": ("CHEF4", {"email": "e5@example.org", "email_status": "ok"}),
    "B1": ("CHEF4", {"email": "b1@example.org", "email_status": "bounced"}),
    "B2": ("CHEF4", {"email": "b2@example.org", "email_status": "unsubscribed"}),
    "N1": ("CHEF4", {}),
    "N2": ("CHEF4", {}),
    "N3": ("CHEF4", {"opted_out_at": DONE_AT, "email": "n3@example.org"}),
    "N4": ("CHEF4", {"opted_out_at": DONE_AT, "web": True}),
    "X1": (
        "CHEF4",
        {"opted_out_at": DONE_AT, "erased_at": DONE_AT, "email": "x1@example.org", "web": True},
    ),
}
COMPLETED = {  # ref: channel of the completed m2 response (None: recorded before 0012)
    **{ref: "telegram" for ref in ("T2", "T3", "T4", "T5", "T6")},
    **{ref: "web" for ref in ("W2", "W3", "W4", "W5")},
    "E1": None,
}
INVITED_ONLY = ("E2", "E3", "E4", "E5", "N1", "N2")


async def programme_ids(h: Harness, school: Institution) -> dict[str, int]:
    async with h.db.session() as session:
        rows = await session.exec(select(Programme).where(Programme.institution_id == school.id))
        return {p.code: p.id or 0 for p in rows.all()}


async def begin_m2(h: Harness, graduate_id: int, chat_id: int) -> SurveyResponse:
    """Begin the graduate's m2 response in `chat_id`'s chat, as an invitation's button does
    (the real survey code: it records the channel)."""
    async with h.db.session() as session:
        graduate = await session.get(Graduate, graduate_id)
        assert graduate is not None
        state = await get_chat_state(session, chat_id)
        return await survey.begin(h.runtime, session, graduate, "tracking", state, wave="m2")


async def seed_reach(h: Harness, web: str) -> tuple[Institution, dict[str, int]]:
    """The school of the module docstring; returns it and its programmes' ids."""
    school = await h.school()
    programmes = await programme_ids(h, school)
    ids: dict[str, int] = {}

    # T1: linked in Telegram (onboarding in the sandbox).
    t1, _user = await h.consenting_graduate("en", school=school)
    assert t1.id is not None and t1.chat_id is not None
    ids["T1"] = t1.id
    # W1: opened their web link and went through onboarding in the web chat.
    w1 = await h.graduate(school, language="en", ref="W1")
    assert w1.id is not None and w1.invite_token is not None
    ids["W1"] = w1.id
    browser = WebGraduate(web, w1.invite_token, "en")
    try:
        await browser.start()
        await browser.press("English")
        for answer in ("Yes", "Yes", "Yes"):
            await browser.press(tr("en", answer))
    finally:
        await browser.close()

    async with h.db.session() as session:
        await session.exec(
            update(Graduate)
            .where(col(Graduate.id).in_([t1.id, w1.id]))
            .values(programme_id=programmes["ICT4"])
        )
        for ref, (programme, fields) in ROWS.items():
            fields = dict(fields)
            web_chat = fields.pop("web", False)
            graduate = Graduate(
                institution_id=school.id or 0,
                programme_id=programmes[programme],
                student_ref=ref,
                graduation_date=GRADUATION,
                invite_token=new_invite_token(),
                **fields,
            )
            session.add(graduate)
            await session.flush()
            assert graduate.id is not None
            ids[ref] = graduate.id
            if web_chat:
                session.add(ChatState(chat_id=web_chat_id(graduate.id), graduate_id=graduate.id))
            if ref in COMPLETED:
                session.add(
                    SurveyResponse(
                        graduate_id=graduate.id,
                        form_id="tracking",
                        version="2026.1",
                        wave="m2",
                        channel=COMPLETED[ref],
                        status=ResponseStatus.SUBMITTED.value,
                        complete=True,
                        started_at=DONE_AT,
                        completed_at=DONE_AT,
                        submitted_at=DONE_AT,
                    )
                )
            if ref in INVITED_ONLY:
                session.add(
                    Invitation(
                        graduate_id=graduate.id,
                        wave="m2",
                        form_id="tracking",
                        due_at=datetime(2026, 8, 30, 8, tzinfo=UTC),
                        closes_at=datetime(2026, 12, 29, 23, tzinfo=UTC),
                        status="sent",
                        sent_at=datetime(2026, 8, 30, 8, tzinfo=UTC),
                    )
                )

    # N1 opens their web link and leaves: opening alone makes no web chat.
    async with h.db.session() as session:
        n1 = await session.get(Graduate, ids["N1"])
        assert n1 is not None and n1.invite_token is not None
    visitor = WebGraduate(web, n1.invite_token, "en")
    try:
        assert (await visitor.open()).status == 200
    finally:
        await visitor.close()

    # T1 and W1 begin m2 in their chats; the responses are then sent (the answering itself
    # is tested in test_survey_tracking and test_web_chat).
    begun = [
        await begin_m2(h, t1.id, t1.chat_id),
        await begin_m2(h, w1.id, web_chat_id(w1.id)),
    ]
    assert [r.channel for r in begun] == ["telegram", "web"]
    async with h.db.session() as session:
        await session.exec(
            update(SurveyResponse)
            .where(col(SurveyResponse.id).in_([r.id for r in begun]))
            .values(
                status=ResponseStatus.SUBMITTED.value,
                complete=True,
                completed_at=DONE_AT,
                submitted_at=DONE_AT,
            )
        )
    return school, programmes


async def test_reach_and_channel_counts_as_counted_by_hand(harness: Harness, web: str) -> None:
    """The report's numbers before suppression: every category and channel of the table."""
    h = harness
    school, programmes = await seed_reach(h, web)
    report = await build(h, Scope(institution_id=school.id))
    assert report.reach().counts == {"chat": 6, "web": 5, "email": 5, "bounced": 2, "none": 5}
    assert report.reach(programmes["ICT4"]).counts == {"chat": 6, "web": 5, "email": 1, "none": 1}
    assert report.reach(programmes["CHEF4"]).counts == {"email": 4, "bounced": 2, "none": 4}
    m2 = report.by_wave_channel["m2"]
    assert (m2.invited, m2.completed) == (18, {"telegram": 6, "web": 5, "unknown": 1})
    # The channels add up to the wave's completed responses.
    assert sum(m2.completed.values()) == report.by_wave["m2"].completed == 12
    ict4 = report.by_wave_programme_channel[("m2", programmes["ICT4"])]
    assert (ict4.invited, ict4.completed) == (12, {"telegram": 6, "web": 5, "unknown": 1})
    chef4 = report.by_wave_programme_channel[("m2", programmes["CHEF4"])]
    assert (chef4.invited, chef4.completed) == (6, {})


async def build(h: Harness, scope: Scope) -> Any:
    from bot.reporting import build_report
    from conversations.indicators import default_specs

    now = h.clock.now()
    return await build_report(
        h.db, h.runtime.plans, default_specs(), scope, today=now.date(), now=now
    )


def cells(html: str, table_id: str | None = None, row_attr: str = "data-reach") -> dict[str, Any]:
    """{row key: {data-key: text}} of the reach table (by `row_attr`)."""
    if table_id is not None:
        found = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
        assert found, table_id
        html = found.group(0)
    rows = re.findall(rf'<tr {row_attr}="(\w+)">(.*?)</tr>', html, re.S)
    return {
        key: {k: v.replace("\xa0", " ") for k, v in re.findall(r'data-key="(\w+)">([^<]*)<', row)}
        for key, row in rows
    }


def channel_rows(html: str, section: str) -> dict[str, dict[str, str]]:
    """{row label: {data-key: text}} of the channel table in the section headed `section`."""
    found = re.search(rf"<h2>{re.escape(section)}</h2>.*?</table>", html, re.S)
    assert found, section
    rows = re.findall(
        r'<tr class="channel-row">\s*<th scope="row">(.*?)</th>(.*?)</tr>', found.group(0), re.S
    )
    return {
        re.sub(r"<[^>]+>", "", label).strip(): dict(re.findall(r'data-key="(\w+)">([^<]*)<', row))
        for label, row in rows
    }


def m2_row(html: str) -> dict[str, str]:
    """The m2 row of a page's channel table by wave."""
    rows = channel_rows(html, "Response rate per channel")
    (row,) = [v for k, v in rows.items() if k.startswith("2 months after graduation")]
    return row


async def test_the_dashboard_shows_reach_and_response_rates_per_channel(
    harness: Harness, web: str
) -> None:
    h = harness
    school, programmes = await seed_reach(h, web)
    admin = h.user("en")
    await add_staff(h.db, admin.id, "admin")
    async with client_session() as client:
        await log_in(h, client, admin)
        async with client.get(f"{web}/dashboard?school={school.id}") as page:
            assert page.status == 200
            overview = await page.text()
        async with client.get(f"{web}/dashboard/waves/m2?school={school.id}") as page:
            assert page.status == 200
            wave = await page.text()
        async with client.get(f"{web}/dashboard/programmes/{programmes['ICT4']}") as page:
            assert page.status == 200
            ict4 = await page.text()
        async with client.get(f"{web}/dashboard/exports/rates.csv?school={school.id}") as got:
            assert got.status == 200
            rates = list(csv.DictReader(io.StringIO((await got.read()).decode("utf-8-sig"))))

    # The school's reach: bounced (2) is hidden, and so is the smallest other group (web, 5),
    # or 23 minus the others would give it away.
    assert cells(overview, "reach") == {
        "chat": {"count": "6", "share": "26.1%"},
        "web": {"count": "&lt;5", "share": "–"},
        "email": {"count": "5", "share": "21.7%"},
        "bounced": {"count": "&lt;5", "share": "–"},
        "none": {"count": "5", "share": "21.7%"},
        "total": {"count": "23", "share": ""},
    }
    assert "Erased graduates are not counted." in overview
    # ICT4 alone: two groups hidden, so the web chat's 5 can be shown.
    assert cells(ict4, "reach") == {
        "chat": {"count": "6", "share": "46.2%"},
        "web": {"count": "5", "share": "38.5%"},
        "email": {"count": "&lt;5", "share": "–"},
        "bounced": {"count": "0", "share": "0.0%"},
        "none": {"count": "&lt;5", "share": "–"},
        "total": {"count": "13", "share": ""},
    }

    # The wave page: per programme, completed per channel over the invited (18 in all).
    by_programme = channel_rows(wave, "Response rate per channel")
    assert by_programme == {
        "All programmes": {
            "invited": "18",
            **{"completed_telegram": "6", "rate_telegram": "33.3%"},
            **{"completed_web": "5", "rate_web": "27.8%"},
            **{"completed_unknown": "&lt;5", "rate_unknown": "–"},
        },
        "ICT4 · Software developer": {
            "invited": "12",
            **{"completed_telegram": "6", "rate_telegram": "50.0%"},
            **{"completed_web": "5", "rate_web": "41.7%"},
            **{"completed_unknown": "&lt;5", "rate_unknown": "–"},
        },
        "CHEF4 · Cook": {
            "invited": "6",
            **{"completed_telegram": "0", "rate_telegram": "0.0%"},
            **{"completed_web": "0", "rate_web": "0.0%"},
            **{"completed_unknown": "0", "rate_unknown": "0.0%"},
        },
    }
    # The overview and the programme page: per wave.
    assert m2_row(overview) == by_programme["All programmes"]
    assert m2_row(ict4) == by_programme["ICT4 · Software developer"]

    # The rates export: the same per programme and cohort.
    m2 = {row["programme"]: row for row in rates if row["wave"] == "m2"}
    assert {k: m2["ICT4"][k] for k in ("invited", "completed")} == {
        "invited": "12",
        "completed": "12",
    }
    assert [m2["ICT4"][f"completed_{c}"] for c in ("telegram", "web", "unknown")] == [
        "6",
        "5",
        "<5",
    ]
    assert [m2["ICT4"][f"rate_{c}_pct"] for c in ("telegram", "web", "unknown")] == [
        "50.0",
        "41.7",
        "<5",
    ]
    assert [m2["CHEF4"][f"completed_{c}"] for c in ("telegram", "web", "unknown")] == ["0"] * 3


async def test_without_old_responses_the_unknown_channel_is_not_shown(
    harness: Harness, web: str
) -> None:
    """A service that recorded every response's channel shows Telegram and the web chat
    only, and a school with no graduates shows an empty reach table of zeros."""
    h = harness
    school = await h.school()
    graduate, _user = await h.consenting_graduate("en", school=school)
    assert graduate.id is not None and graduate.chat_id is not None
    await begin_m2(h, graduate.id, graduate.chat_id)
    empty = await h.school(code="gamma")
    admin = h.user("en")
    await add_staff(h.db, admin.id, "admin")
    async with client_session() as client:
        await log_in(h, client, admin)
        async with client.get(f"{web}/dashboard/waves/m2?school={school.id}") as page:
            wave = await page.text()
        async with client.get(f"{web}/dashboard?school={empty.id}") as page:
            overview = await page.text()
    rows = channel_rows(wave, "Response rate per channel")
    assert rows["All programmes"] == {
        "invited": "&lt;5",
        **{"completed_telegram": "0", "rate_telegram": "–"},
        **{"completed_web": "0", "rate_web": "–"},
    }
    assert "Channel unknown" not in wave
    reach = cells(overview, "reach")
    assert {key: row["count"] for key, row in reach.items()} == {
        "chat": "0",
        "web": "0",
        "email": "0",
        "bounced": "0",
        "none": "0",
        "total": "0",
    }
