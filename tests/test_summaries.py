"""The summary counts (storage/summaries.py) against a full recount, on SQLite and PostgreSQL:
after any sequence of answers, erasures, roster imports, wave changes, reach changes and the
passing of time, the refreshed summaries of every scope add up to what storage/stats.py counts
live at the refresh's time."""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from conversations.indicators import indicators, load_specs
from conversations.waves import load_plans
from storage import stats, summaries
from storage.db import Database
from storage.erasure import erase_graduate
from storage.models import (
    Answer,
    ChatState,
    Graduate,
    Institution,
    Invitation,
    InvitationStatus,
    Programme,
    ResponseStatus,
    SurveyResponse,
)
from storage.queries import web_chat_id
from storage.roster import import_roster
from storage.staff import add_staff
from storage.stats import Scope
from tests.harness import Harness
from tests.properties import FIXTURE_PROFILE
from tests.stats_seed import seed
from tests.test_dashboard import client_session, log_in, seed_small

PLANS = load_plans()
SPECS = load_specs()
QUESTIONS = [spec.questions for spec in SPECS.values()]
START = datetime(2025, 9, 10, 12, 0, tzinfo=UTC)
WAVES = ("pregrad", "m2", "m6")
ACTIVITIES = ("employed", "studying", "unemployed_looking", "caring")


async def live(session: Any, scope: Scope, now: datetime) -> dict[str, Counter[Any]]:
    """What the pages counted before the summaries: storage/stats.py over the live rows."""
    found: dict[str, Counter[Any]] = {
        "population": Counter(await stats.population(session, scope)),
        "waves": Counter(await stats.wave_counts(session, scope, now)),
        "channels": Counter(await stats.completed_by_channel(session, scope, now)),
        "reach": Counter(await stats.reach_counts(session, scope)),
        "days": Counter(await stats.completions_per_day(session, scope, now)),
        "completers": Counter(await stats.completers(session, scope)),
    }
    for q in QUESTIONS:
        rows = await stats.outcomes(session, scope, q, now)
        found[q.form_id] = Counter(rows)
        found[f"totals {q.form_id}"] = Counter(
            {"indicators": indicators(rows, SPECS[q.form_id], "total")}
        )
    for wave in WAVES:
        found[f"questions {wave}"] = Counter(await stats.question_counts(session, scope, wave))
    return found


async def kept(session: Any, scope: Scope) -> dict[str, Counter[Any]]:
    counts = await summaries.read(session, scope, QUESTIONS)
    assert counts is not None
    found: dict[str, Counter[Any]] = {
        "population": Counter(counts.population),
        "waves": Counter(counts.waves),
        "channels": Counter(counts.channels),
        "reach": Counter(counts.reach),
        "days": Counter(counts.days),
        "completers": Counter(counts.completers),
    }
    for form_id, rows in counts.outcomes.items():
        found[form_id] = Counter(rows)
    # The overview's rows without breakdowns give the same indicators' totals.
    totals = await summaries.read(session, scope, QUESTIONS, totals=True)
    assert totals is not None
    for form_id, rows in totals.outcomes.items():
        found[f"totals {form_id}"] = Counter(
            {"indicators": indicators(rows, SPECS[form_id], "total")}
        )
    for wave in WAVES:
        of_wave = await summaries.read(session, scope, QUESTIONS, wave)
        assert of_wave is not None and of_wave.questions is not None
        found[f"questions {wave}"] = Counter(of_wave.questions)
    return found


async def scopes(db: Database) -> list[Scope]:
    async with db.session() as session:
        schools = [s.id for s in (await session.exec(select(Institution))).all() if s.id]
        programmes = (await session.exec(select(Programme))).all()
    found = [Scope(), Scope(cohort=2025), Scope(institution_ids=tuple(schools[:1]))]
    found += [Scope(institution_id=i) for i in schools]
    found += [Scope(institution_id=p.institution_id, programme_id=p.id) for p in programmes]
    found += [Scope(programme_ids=tuple(p.id for p in programmes[:2] if p.id), cohort=2026)]
    return found


async def assert_summaries_equal_recount(db: Database, now: datetime) -> None:
    for scope in await scopes(db):
        async with db.session() as session:
            expected = await live(session, scope, now)
            found = await kept(session, scope)
        assert found == expected, scope


# ----------------------------------------------------------------- the changes

graduate_pick = st.integers(0, 10_000)


@st.composite
def changes(draw: st.DrawFn) -> tuple[Any, ...]:
    kind = draw(
        st.sampled_from(
            (
                "answer",
                "answer",
                "complete",
                "decline",
                "erase",
                "import",
                "close_wave",
                "send",
                "reach",
                "time",
                "refresh",
                "programme",
            )
        )
    )
    if kind == "answer":
        return (
            kind,
            draw(graduate_pick),
            draw(st.sampled_from(WAVES)),
            draw(st.sampled_from(("Q1", "E6", "E7", "P1"))),
            draw(st.sampled_from((*ACTIVITIES, "completely", "a_lot", "not_at_all"))),
            draw(st.sampled_from(("telegram", "web", None))),
        )
    if kind in ("complete", "decline", "erase", "send"):
        return (kind, draw(graduate_pick), draw(st.booleans()))
    if kind == "import":
        return (
            kind,
            draw(st.sampled_from(("A05", "A20", "B03", "N1", "N2"))),
            draw(st.sampled_from(("P1", "P2"))),
            draw(st.sampled_from(("2025-06-30", "2026-06-30", "2025-07-15"))),
        )
    if kind == "close_wave":
        return (kind, draw(graduate_pick), draw(st.sampled_from(WAVES)), draw(st.integers(-5, 5)))
    if kind == "reach":
        return (
            kind,
            draw(graduate_pick),
            draw(st.sampled_from(("opt_out", "block", "bounce", "web_chat", "unlink"))),
        )
    if kind == "time":
        return (kind, draw(st.integers(1, 24 * 60)))
    if kind == "programme":
        return (kind, draw(graduate_pick), draw(st.sampled_from((2, 3, 4, 5, None))))
    return (kind,)


async def _graduate(session: Any, pick: int) -> Graduate:
    graduates = (await session.exec(select(Graduate).order_by(col(Graduate.id)))).all()
    return graduates[pick % len(graduates)]


async def _response(session: Any, graduate: Graduate, wave: str, channel: str | None) -> Any:
    found = (
        await session.exec(
            select(SurveyResponse).where(
                SurveyResponse.graduate_id == graduate.id, SurveyResponse.wave == wave
            )
        )
    ).first()
    if found is None:
        found = SurveyResponse(
            graduate_id=graduate.id or 0,
            form_id="pregrad" if wave == "pregrad" else "tracking",
            version="1",
            wave=wave,
            current="Q1",
            channel=channel,
        )
        session.add(found)
        await session.flush()
    return found


def _roster(ref: str, programme: str, graduated: str) -> bytes:
    school = "beta" if ref.startswith("B") else "alfa"
    programme = "P3" if school == "beta" else programme
    return (
        "student_ref,name,school,programme,graduation_date,gender,birth_year\n"
        f"{ref},Someone {ref},{school},{programme},{graduated},female,2004\n"
    ).encode()


async def apply(db: Database, change: tuple[Any, ...], now: datetime) -> datetime:
    """Make one change the way the service makes it; returns the (maybe later) time."""
    kind = change[0]
    if kind == "time":
        return now + timedelta(minutes=change[1])
    if kind == "refresh":
        assert await summaries.refresh(db, QUESTIONS, now) is not None
        return now
    if kind == "import":
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "roster.csv"
            path.write_bytes(_roster(*change[1:]))
            result = await import_roster(db, path, today=date(2026, 5, 1), plans=PLANS, now=now)
        assert not result.problems, result.problems
        return now
    async with db.session() as session:
        graduate = await _graduate(session, change[1])
        if kind == "answer":
            _, _, wave, question, value, channel = change
            response = await _response(session, graduate, wave, channel)
            answer = (
                await session.exec(
                    select(Answer).where(
                        Answer.response_id == response.id, Answer.question == question
                    )
                )
            ).first()
            if answer is None:
                session.add(Answer(response_id=response.id, question=question, value=value))
            else:
                answer.value = value
                session.add(answer)
        elif kind in ("complete", "decline"):
            responses = (
                await session.exec(
                    select(SurveyResponse).where(SurveyResponse.graduate_id == graduate.id)
                )
            ).all()
            for response in responses[:1]:
                if kind == "decline":
                    response.declined = change[2]
                else:
                    response.complete = True
                    response.completed_at = now
                    if change[2]:
                        response.status = ResponseStatus.SUBMITTED.value
                        response.submitted_at = now
                session.add(response)
        elif kind == "erase":
            await erase_graduate(session, graduate, now=now, reason="request")
        elif kind == "send":
            invitation = (
                await session.exec(
                    select(Invitation)
                    .where(Invitation.graduate_id == graduate.id)
                    .order_by(col(Invitation.id))
                )
            ).first()
            if invitation is not None:
                sent = InvitationStatus.SENT if change[2] else InvitationStatus.FAILED
                invitation.status = sent.value
                session.add(invitation)
        elif kind == "close_wave":
            _, _, wave, days = change
            for invitation in (
                await session.exec(
                    select(Invitation).where(
                        Invitation.graduate_id == graduate.id, Invitation.wave == wave
                    )
                )
            ).all():
                invitation.closes_at = now + timedelta(days=days)
                session.add(invitation)
        elif kind == "reach":
            how = change[2]
            if how == "opt_out":
                graduate.opted_out_at = now
            elif how == "block":
                graduate.unreachable_at = now
            elif how == "bounce":
                graduate.email = graduate.email or f"g{graduate.id}@example.org"
                graduate.email_status = "bounced"
            elif how == "unlink":
                graduate.chat_id = None
            elif await session.get(ChatState, web_chat_id(graduate.id or 0)) is None:
                session.add(ChatState(chat_id=web_chat_id(graduate.id or 0)))
            session.add(graduate)
        elif kind == "programme":
            programme = await session.get(Programme, graduate.programme_id)
            assert programme is not None
            programme.eqf_level = change[2]
            session.add(programme)
    return now


@settings(FIXTURE_PROFILE, max_examples=25, deadline=None)
@given(st.lists(changes(), max_size=12))
async def test_summaries_equal_a_full_recount_after_any_changes(
    db: Database, steps: list[tuple[Any, ...]]
) -> None:
    async with db.session() as session:
        seeded = (await session.exec(select(Institution))).first() is not None
    if not seeded:
        await seed(db)
    now = START
    async with db.session() as session:
        state = await summaries.refreshed_at(session)
    if state is not None:
        now = max(now, state)  # the examples share the database: time goes on
    assert await summaries.refresh(db, QUESTIONS, now) is not None
    for step in steps:
        now = await apply(db, step, now)
    assert await summaries.refresh(db, QUESTIONS, now) is not None
    await assert_summaries_equal_recount(db, now)


async def test_before_the_first_refresh_there_are_no_summaries(db: Database) -> None:
    await seed(db)
    async with db.session() as session:
        assert await summaries.read(session, Scope(), QUESTIONS) is None
    refreshed = await summaries.refresh(db, QUESTIONS, START)
    assert refreshed is not None and refreshed.programmes is None and refreshed.rows > 0
    await assert_summaries_equal_recount(db, START)


async def test_a_refresh_counts_only_the_programmes_that_changed(db: Database) -> None:
    seeded = await seed(db)
    await summaries.refresh(db, QUESTIONS, START)
    nothing = await summaries.refresh(db, QUESTIONS, START + timedelta(minutes=1))
    assert nothing is not None and nothing.programmes == 0
    later = START + timedelta(minutes=2)
    async with db.session() as session:
        graduate = await session.get(Graduate, seeded.graduates["A13"])
        assert graduate is not None
        graduate.opted_out_at = later
        session.add(graduate)
    one = await summaries.refresh(db, QUESTIONS, later)
    assert one is not None and one.programmes == 1
    await assert_summaries_equal_recount(db, later)


async def test_a_wave_closing_counts_its_unsent_responses_as_completed(db: Database) -> None:
    """Time is the one change without a row: an unsent response whose routing core is
    answered counts as completed once its wave closes, and the summaries follow."""
    await seed(db)
    async with db.session() as session:
        closes = (
            await session.exec(
                select(Invitation.closes_at)
                .join(SurveyResponse, col(SurveyResponse.graduate_id) == Invitation.graduate_id)
                .where(
                    SurveyResponse.wave == Invitation.wave,
                    Invitation.seq == 0,
                    col(SurveyResponse.complete),
                    SurveyResponse.status == ResponseStatus.OPEN.value,
                )
                .order_by(col(Invitation.closes_at))
            )
        ).first()
    assert closes is not None
    before, after = closes - timedelta(minutes=1), closes + timedelta(minutes=1)
    await summaries.refresh(db, QUESTIONS, before)
    async with db.session() as session:
        counts = await summaries.read(session, Scope(), QUESTIONS)
        assert counts is not None
        was = sum(row.completed for row in counts.waves)
    await summaries.refresh(db, QUESTIONS, after)
    async with db.session() as session:
        counts = await summaries.read(session, Scope(), QUESTIONS)
        assert counts is not None and counts.as_of == after
        assert sum(row.completed for row in counts.waves) > was
    await assert_summaries_equal_recount(db, after)


# ----------------------------------------------------------------- the pages


def _as_of(html: str) -> str:
    found = re.search(r'<p class="as-of">(Counts as of [^<]* UTC;[^<]*)</p>', html)
    assert found, html
    return found.group(1)


def _m2_cells(html: str) -> dict[str, str]:
    row = re.search(
        r"<tr>\s*<th scope=\"row\"><a href=\"/dashboard/waves/m2[^>]*>.*?</tr>", html, re.S
    )
    assert row, html
    return dict(re.findall(r'data-key="(\w+)">([^<]*)<', row.group(0)))


async def test_the_overview_reads_the_summaries_as_of_their_time(
    harness: Harness, web: str
) -> None:
    """Once the scheduler leader has counted, the overview shows those counts and says when
    they were counted; a response sent after that shows at the next refresh."""
    h = harness
    await seed_small(h)
    officer = h.user("en")
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    async with client_session() as client:
        await log_in(h, client, officer)
        async with client.get(f"{web}/dashboard") as page:
            html = await page.text()
        assert "Counts as of" not in html  # never counted: counted for the page
        assert _m2_cells(html)["completed"] == "5"

        counted = h.clock.now()
        await summaries.refresh(h.db, QUESTIONS, counted)
        async with h.db.session() as session:
            (last,) = (
                await session.exec(select(SurveyResponse).where(SurveyResponse.status == "open"))
            ).all()
            last.status, last.complete, last.completed_at = "submitted", True, counted
            session.add(last)
        async with client.get(f"{web}/dashboard") as page:
            html = await page.text()
        first = _as_of(html)
        assert f":{counted.minute:02d}" in first
        assert _m2_cells(html)["completed"] == "5"  # as counted, before the last response

        h.clock.advance(timedelta(minutes=1))
        await summaries.refresh(h.db, QUESTIONS, h.clock.now())
        async with client.get(f"{web}/dashboard") as page:
            html = await page.text()
        assert _as_of(html) != first
        assert _m2_cells(html)["completed"] == "6"


async def test_the_wave_drill_down_reads_the_summaries_as_of_their_time(
    harness: Harness, web: str
) -> None:
    h = harness
    await seed_small(h)
    officer = h.user("en")
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    counted = h.clock.now()
    await summaries.refresh(h.db, QUESTIONS, counted)
    async with h.db.session() as session:
        (last,) = (
            await session.exec(select(SurveyResponse).where(SurveyResponse.status == "open"))
        ).all()
        last.status, last.complete, last.completed_at = "submitted", True, counted
        session.add(last)
        session.add(Answer(response_id=last.id or 0, question="E2", value="permanent"))
    async with client_session() as client:
        await log_in(h, client, officer)
        async with client.get(f"{web}/dashboard/waves/m2") as page:
            assert page.status == 200
            before = await page.text()
        h.clock.advance(timedelta(minutes=1))
        await summaries.refresh(h.db, QUESTIONS, h.clock.now())
        async with client.get(f"{web}/dashboard/waves/m2") as page:
            after = await page.text()
    assert _as_of(before) != _as_of(after)
    completed = re.compile(r'data-key="completed">([^<]*)<')
    assert [m.group(1) for m in completed.finditer(before)][:1] == ["5"]
    assert [m.group(1) for m in completed.finditer(after)][:1] == ["6"]


async def test_stats_in_the_chat_read_the_summaries(harness: Harness) -> None:
    h = harness
    await seed_small(h)
    officer = h.user("nl")
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    await summaries.refresh(h.db, QUESTIONS, h.clock.now())
    (reply,) = await h.send(officer, "/stats")
    assert "Aantallen van" in reply.content and "UTC" in reply.content
    assert "Alfa College" in reply.content and "Beta" not in reply.content


async def test_every_counted_table_has_its_triggers_at_the_head_migration(db: Database) -> None:
    """Alembic's batch mode re-creates an SQLite table without its triggers: a later migration
    that alters one of these tables must create them again, or changes go unmarked."""
    from sqlalchemy import text

    expected = {
        "graduate": 3,
        "survey_response": 3,
        "invitation": 3,
        "answer": 3,
        "chat_state": 2,
        "programme": 1,
        "institution": 1,
    }
    async with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            rows = await conn.execute(
                text(
                    "SELECT c.relname, t.tgtype FROM pg_trigger t JOIN pg_class c"
                    " ON c.oid = t.tgrelid WHERE t.tgname LIKE 'summary_mark_%'"
                )
            )
            # One trigger per table; its events are bits 2 (INSERT), 3 (DELETE), 4 (UPDATE).
            found = {table: bin(kind & 0b11100).count("1") for table, kind in rows}
        else:
            rows = await conn.execute(
                text(
                    "SELECT tbl_name, count(*) FROM sqlite_master WHERE type = 'trigger'"
                    " AND name LIKE 'summary_mark_%' GROUP BY tbl_name"
                )
            )
            found = {table: int(n) for table, n in rows}
    assert found == expected
