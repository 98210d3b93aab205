"""The statistics report over the designed data set of tests/stats_seed.py, on SQLite and
PostgreSQL. Every expected number is counted by hand from the table in that module's docstring;
the comments show the arithmetic."""

from __future__ import annotations

import textwrap
from collections.abc import Hashable, Mapping
from datetime import UTC, date, datetime
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from bot.reporting import Report, build_report, current_waves, question_drop_off, staff_scope
from conversations import engine
from conversations.indicators import DESTINATIONS, Funnel, Indicators, Rate, load_specs
from conversations.registry import QuestionnaireRegistry
from conversations.waves import DEFAULT_PLAN_FILE, load_plans, parse_plans
from storage import stats
from storage.db import Database
from storage.erasure import erase_graduate
from storage.models import Answer, Graduate, ResponseStatus, Staff, SurveyResponse
from storage.stats import Scope
from tests import stats_seed
from tests.stats_seed import ADMIN_USER_ID, OFFICER_USER_ID, Seeded, seed, seed_m12

T = TypeVar("T")

PLANS = load_plans()
SPECS = load_specs()
REGISTRY = QuestionnaireRegistry()

Counts = tuple[int, int, int, int, int, int, int]
"""graduates, reachable, invited, started, completed, partial, declined"""
Fraction = tuple[int, int] | None
"""A shown rate as (numerator, denominator); None: not shown."""


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def counts(f: Funnel) -> Counts:
    return (f.graduates, f.reachable, f.invited, f.started, f.completed, f.partial, f.declined)


def shown(rate: Rate | None) -> Fraction:
    """What a reader sees of a rate: its fraction, or None when suppressed or undefined."""
    if rate is None or rate.value is None:
        return None
    assert rate.value == rate.numerator / rate.denominator
    return (rate.numerator, rate.denominator)


def raw(ind: Indicators) -> tuple[int, ...]:
    """respondents, the five destinations (DESTINATIONS order), employed, related yes and
    answered, relevant yes and answered."""
    return (
        ind.respondents,
        *(ind.destinations[d] for d in DESTINATIONS),
        ind.employed,
        ind.related_yes,
        ind.related_answered,
        ind.use_yes,
        ind.use_answered,
    )


def seen(ind: Indicators) -> tuple[tuple[Fraction, ...], Fraction, Fraction, Fraction]:
    """5a shares (DESTINATIONS order), 5b, 6a and the use of skills as shown (the seed's
    responses predate the satisfaction question of 6b1: test_twelve_month_wave has it)."""
    shares = ind.shares_5a()
    return (
        tuple(shown(shares[d]) for d in DESTINATIONS),
        shown(ind.i5b),
        shown(ind.i6a),
        shown(ind.use_of_skills),
    )


NOTHING: tuple[tuple[Fraction, ...], Fraction, Fraction, Fraction] = ((None,) * 5, None, None, None)


async def staff(db: Database, user_id: int) -> Staff:
    async with db.session() as session:
        return (await session.exec(select(Staff).where(Staff.telegram_user_id == user_id))).one()


async def report_for(db: Database, scope: Scope) -> Report:
    return await build_report(db, PLANS, SPECS, scope)


def by(report: Report, breakdown: str, wave: str = "m2") -> dict[Hashable, Indicators]:
    return report.wave_indicators(wave, breakdown)


# ---------------------------------------------------------------- the seed itself


def test_seed_docstring_table_is_the_data() -> None:
    assert stats_seed.__doc__ is not None
    assert textwrap.indent(stats_seed.describe(), "    ") in stats_seed.__doc__


async def test_seed_flags_agree_with_the_questionnaire_engine(db: Database) -> None:
    """complete, declined and current of every seeded response are what the survey flow would
    have stored for its answers."""
    await seed(db)
    async with db.session() as session:
        responses = (await session.exec(select(SurveyResponse))).all()
        answers = (await session.exec(select(Answer))).all()
    by_response: dict[int, dict[str, object]] = {}
    for answer in answers:
        by_response.setdefault(answer.response_id, {})[answer.question] = answer.value
    assert len(responses) == 41  # 31 m2 + 2 m6 + 8 pregrad
    for response in responses:
        assert response.id is not None
        given = by_response[response.id]
        q = REGISTRY.deployed(response.form_id)
        complete = engine.is_complete(q, engine.relevant_answers(q, given))  # type: ignore[arg-type]
        assert response.complete == (complete and not response.declined)
        assert response.declined == (given == {q.questions[0].name: "no"})
        assert (response.completed_at is not None) == response.complete
        if response.status == ResponseStatus.OPEN.value:
            assert response.current in q and response.current not in given
        else:
            assert response.current == ""


# ---------------------------------------------------------------- all schools (admin)


async def test_all_schools_funnels(db: Database) -> None:
    seeded = await seed(db)
    admin = await staff(db, ADMIN_USER_ID)
    report = await report_for(db, staff_scope(admin))
    assert report.scope == Scope()
    assert [w.name for w in report.waves] == ["pregrad", "m2", "m6", "m12"]
    assert report.cohorts == [2025, 2026]
    assert set(report.names.schools) == {seeded.alfa, seeded.beta}
    p1, p2, p3 = (seeded.programmes[p] for p in ("P1", "P2", "P3"))

    # Every graduate's plan (the default) has all three waves: 55 graduates, 43 reachable
    # (55 minus unlinked A17 A23 B22 C11 D10, blocked A18 D11, opted out A24 B04 B07,
    # erased B23 C05 = 55 - 12).
    assert {w: counts(f) for w, f in report.by_wave.items()} == {
        # invited D01-D09 (D11 failed); started D01-D08; complete D01-D06; D08 partial; D07
        "pregrad": (55, 43, 9, 8, 6, 1, 1),
        # invited 17 + 8 + 10; started 15 + 7 + 9; complete 12 + 5 + 6; partial 2 + 1 + 2;
        # declined A15 B06 C09
        "m2": (55, 43, 35, 31, 23, 5, 3),
        # invited A01-A05; A01 and A02 complete
        "m6": (55, 43, 5, 2, 2, 0, 0),
        "m12": (55, 43, 0, 0, 0, 0, 0),  # nobody invited yet
    }
    assert {k: counts(f) for k, f in report.by_wave_cohort.items()} == {
        ("pregrad", 2025): (37, 31, 0, 0, 0, 0, 0),  # 18 + 8 + 11 graduates, 16 + 6 + 9
        ("pregrad", 2026): (18, 12, 9, 8, 6, 1, 1),  # 4 + 3 + 11 graduates, 2 + 1 + 9
        ("m2", 2025): (37, 31, 35, 31, 23, 5, 3),
        ("m2", 2026): (18, 12, 0, 0, 0, 0, 0),  # D01's m2 invitation is only pending
        ("m6", 2025): (37, 31, 5, 2, 2, 0, 0),
        ("m12", 2025): (37, 31, 0, 0, 0, 0, 0),
        ("m6", 2026): (18, 12, 0, 0, 0, 0, 0),
        ("m12", 2026): (18, 12, 0, 0, 0, 0, 0),
    }
    assert {k: counts(f) for k, f in report.by_wave_programme.items()} == {
        ("pregrad", p1): (22, 18, 0, 0, 0, 0, 0),  # 18 + 4 graduates, 16 + 2 reachable
        ("pregrad", p2): (11, 7, 0, 0, 0, 0, 0),  # 8 + 3, 6 + 1
        ("pregrad", p3): (22, 18, 9, 8, 6, 1, 1),  # 11 + 11, 9 + 9
        # A01-A16 and A18 invited; A01-A15 started; A13 A14 partial; A15 declined
        ("m2", p1): (22, 18, 17, 15, 12, 2, 1),
        # B01-B08 invited; B07 did not start; B08 partial; B06 declined
        ("m2", p2): (11, 7, 8, 7, 5, 1, 1),
        # C01-C10 invited; C01-C09 started; C07 C08 partial; C09 declined
        ("m2", p3): (22, 18, 10, 9, 6, 2, 1),
        ("m6", p1): (22, 18, 5, 2, 2, 0, 0),
        ("m12", p1): (22, 18, 0, 0, 0, 0, 0),
        ("m6", p2): (11, 7, 0, 0, 0, 0, 0),
        ("m12", p2): (11, 7, 0, 0, 0, 0, 0),
        ("m6", p3): (22, 18, 0, 0, 0, 0, 0),
        ("m12", p3): (22, 18, 0, 0, 0, 0, 0),
    }
    assert {k: counts(f) for k, f in report.by_wave_school.items()} == {
        ("pregrad", seeded.alfa): (33, 25, 0, 0, 0, 0, 0),  # P1 + P2: 22 + 11, 18 + 7
        ("pregrad", seeded.beta): (22, 18, 9, 8, 6, 1, 1),
        ("m2", seeded.alfa): (33, 25, 25, 22, 17, 3, 2),  # 17 + 8 invited, 15 + 7 started
        ("m2", seeded.beta): (22, 18, 10, 9, 6, 2, 1),
        ("m6", seeded.alfa): (33, 25, 5, 2, 2, 0, 0),
        ("m12", seeded.alfa): (33, 25, 0, 0, 0, 0, 0),
        ("m6", seeded.beta): (22, 18, 0, 0, 0, 0, 0),
        ("m12", seeded.beta): (22, 18, 0, 0, 0, 0, 0),
    }


async def test_all_schools_rates_and_what_is_shown(db: Database) -> None:
    await seed(db)
    report = await report_for(db, Scope())
    m2, m6, pregrad = (report.by_wave[w] for w in ("m2", "m6", "pregrad"))
    assert shown(m2.rate) == (23, 55)  # 23 complete / 55 graduates
    assert m2.rate.value == pytest.approx(0.41818, abs=1e-5)
    assert shown(m2.rate_reachable) == (23, 43)  # 23 complete / 43 reachable
    assert not m2.rate.suppressed
    # 2 complete m6 responses: a small numerator hides the rate
    assert m6.rate.value is None and m6.rate.suppressed
    assert shown(report.by_wave_cohort[("pregrad", 2026)].rate) == (6, 18)
    assert shown(report.by_wave_cohort[("pregrad", 2026)].rate_reachable) == (6, 12)
    # the m2 wave of cohort 2026 has not opened: 0 / 18 is shown as 0
    not_yet = report.by_wave_cohort[("m2", 2026)]
    assert not_yet.rate.value == 0.0 and not not_yet.rate.suppressed

    # complete 23, partial 5, declined 3: only declined is small. Counts of answering
    # behaviour get the primary suppression only (Funnel.shown), so partial 5 stays.
    assert m2.shown() == {
        "graduates": 55,
        "reachable": 43,
        "invited": 35,
        "started": 31,
        "completed": 23,
        "partial": 5,
        "declined": None,
    }
    # started 2 = complete 2 + 0 + 0: small counts hidden, zeros shown
    assert m6.shown() == {
        "graduates": 55,
        "reachable": 43,
        "invited": 5,
        "started": None,
        "completed": None,
        "partial": 0,
        "declined": 0,
    }
    # complete 6, partial 1, declined 1
    assert pregrad.shown() == {
        "graduates": 55,
        "reachable": 43,
        "invited": 9,
        "started": 8,
        "completed": 6,
        "partial": None,
        "declined": None,
    }


async def test_all_schools_weekly_completions(db: Database) -> None:
    await seed(db)
    report = await report_for(db, Scope())
    assert report.weekly("m2") == [
        (date(2025, 8, 25), 5),  # C01 C02 (27th), C03 (28th), A01 (30th), A02 (31st)
        (date(2025, 9, 1), 7),  # A03-A09, A09 on Sunday the 7th
        (date(2025, 9, 8), 0),  # a week without completions is filled in
        (date(2025, 9, 15), None),  # A10 A11 B01, A12 on Sunday 23:30 UTC: 4
        (date(2025, 9, 22), 7),  # B02-B05 C04 C05 C06
    ]
    assert report.weekly("m6") == [(date(2026, 1, 5), None)]  # A01, A02
    assert report.weekly("pregrad") == [
        (date(2026, 5, 11), 5),  # D01-D05, Friday 15th to Sunday 17th
        (date(2026, 5, 18), 0),
        (date(2026, 5, 25), None),  # D06
    ]
    every = report.weekly()
    # Monday 2025-08-25 to Monday 2026-05-25: 273 days = 39 weeks, 40 Mondays
    assert len(every) == 40
    assert every[0] == (date(2025, 8, 25), 5) and every[-1] == (date(2026, 5, 25), None)
    assert dict(every)[date(2026, 1, 5)] is None
    assert dict(every)[date(2025, 12, 1)] == 0


async def test_days_are_utc_days_whatever_the_session_time_zone(db: Database) -> None:
    """A12 completed on Sunday 2025-09-21 at 23:30 UTC (Monday in Amsterdam and Auckland)."""
    await seed(db)
    async with db.session() as session:
        if db.dialect == "postgresql":
            connection = await session.connection()
            await connection.execute(text("SET TIME ZONE 'Pacific/Auckland'"))
        days = await stats.completions_per_day(session, Scope())
    per_day = {(row.wave, row.day): row.completed for row in days}
    assert per_day[("m2", date(2025, 9, 21))] == 1  # A12
    assert per_day[("m2", date(2025, 9, 22))] == 1  # B02
    assert per_day[("m2", date(2025, 8, 27))] == 2  # C01 09:15, C02 18:40
    assert per_day[("m2", date(2025, 9, 28))] == 1  # C06 at 21:00 UTC
    assert sum(row.completed for row in days) == 31  # 23 m2 + 2 m6 + 6 pregrad


async def test_all_schools_drop_off(db: Database) -> None:
    await seed(db)
    scope = Scope()
    m2 = await question_drop_off(db, REGISTRY, scope, PLANS.default.waves[1])
    assert [(d.question, d.answered, d.stopped) for d in m2] == [
        ("C0", 31, 0),  # every started response (declined ones answered "no")
        ("Q1", 26, 2),  # 23 complete + A14 B08 C07; A13 and C08 stopped there
        ("E1", 17, 0),  # 9 employed + 6 working and studying + A14 C07
        ("E2", 16, 1),  # 15 + A14; C07 stopped there
        ("E3", 0, 1),  # A14 stopped there (E3 is not core: complete ones did not answer)
        ("E6", 15, 0),
        ("E7", 15, 0),
        ("S1", 11, 1),  # 6 working and studying + 5 studying; B08 stopped there
        ("U1", 2, 0),  # A12 B05
        ("U2", 0, 1),  # A12: complete, still open at U2
        ("O1", 1, 0),  # C06
    ]
    q1 = m2[1]
    assert q1.shown == 28 and q1.rate.value is None  # 2 stopped of 28: a small numerator
    assert m2[0].rate.value == 0.0  # 0 of 31
    pregrad = await question_drop_off(db, REGISTRY, scope, PLANS.default.waves[0])
    assert [(d.question, d.answered, d.stopped) for d in pregrad] == [
        ("P0", 8, 0),  # D01-D08
        ("P1", 6, 1),  # D01-D06; D08 stopped there
    ]
    m6 = await question_drop_off(db, REGISTRY, scope, PLANS.default.waves[2])
    assert [(d.question, d.answered, d.stopped) for d in m6] == [
        (q, 2, 0) for q in ("C0", "Q1", "E1", "E2", "E6", "E7")
    ]


# (respondents, employed, working_and_studying, studying, looking_for_work, other,
#  employed for 5b, related yes, related answered, relevant yes, relevant answered)
# of the m2 respondents, counted from the seed table.
M2_RAW: dict[str, dict[Hashable, tuple[int, ...]]] = {
    "total": {"total": (23, 9, 6, 5, 2, 1, 15, 10, 15, 9, 15)},
    "programme": {
        # A01-A06 employed (A06 self), A07-A11 w+s, A12 looking; E6 yes: A01 A02 A03 A04 A06
        # A07 A08 A09 = 8; E7 yes: A01 A02 A04 A06 A07 A08 = 6
        "P1": (12, 6, 5, 0, 1, 0, 11, 8, 11, 6, 11),
        "P2": (5, 1, 0, 3, 1, 0, 1, 1, 1, 1, 1),  # B01 employed; B02-B04 studying; B05
        # C01 C02 employed (C02 self), C03 w+s, C04 C05 studying, C06 other;
        # E6 yes: C01; E7 yes: C01 C02
        "P3": (6, 2, 1, 2, 0, 1, 3, 1, 3, 2, 3),
    },
    "eqf": {
        4: (18, 8, 6, 2, 1, 1, 14, 9, 14, 8, 14),  # P1 + P3
        3: (5, 1, 0, 3, 1, 0, 1, 1, 1, 1, 1),  # P2
    },
    "gender": {
        # A01 A02 A03 A06 C02 | A07 A09 A11 | B02 | B05 | C06
        "female": (11, 5, 3, 1, 1, 1, 8, 6, 8, 5, 8),
        # A04 A05 B01 C01 | A08 C03 | B03 B04 | A12
        "male": (9, 4, 2, 2, 1, 0, 6, 4, 6, 4, 6),
        "other": (1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1),  # A10
        "unknown": (2, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0),  # C04 ("unknown"), C05 (erased: NULL)
    },
    "age_band": {
        # age = 2025 - birth year: A01 A02 B01 | A08 | B02 B03 | B05 (born 2006, 2007)
        "under_20": (7, 3, 1, 2, 1, 0, 4, 4, 4, 4, 4),
        # A03 A04 A05 A06 C01 | A07 A09 A10 C03 | C04 | A12 (born 2002-2005)
        "20_24": (11, 5, 4, 1, 1, 0, 9, 6, 9, 4, 9),
        "25_29": (2, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1),  # A11 (1999), B04 (2000)
        "30_plus": (1, 1, 0, 0, 0, 0, 1, 0, 1, 1, 1),  # C02 (1990)
        "unknown": (2, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0),  # C05 (erased), C06 (no birth year)
    },
}

M2_SEEN: dict[str, dict[Hashable, tuple[tuple[Fraction, ...], Fraction, Fraction, Fraction]]] = {
    # looking 2 and other 1 hidden: two parts hide each other
    "total": {"total": (((9, 23), (6, 23), (5, 23), None, None), (15, 23), (10, 15), (9, 15))},
    "programme": {
        # looking 1 is the only small part: the smallest other part (w+s 5) is hidden too;
        # the zeros are shown
        "P1": (((6, 12), None, (0, 12), None, (0, 12)), (11, 12), (8, 11), (6, 11)),
        # 1 employed / 5: small numerator; 6a and 6b1 are 1 / 1
        "P2": ((None, (0, 5), None, None, (0, 5)), None, None, None),
        # 3 / 6 employed, 1 / 3 and 2 / 3: all small
        "P3": ((None, None, None, (0, 6), None), None, None, None),
    },
    "eqf": {
        4: (((8, 18), (6, 18), None, None, None), (14, 18), (9, 14), (8, 14)),
        3: ((None, (0, 5), None, None, (0, 5)), None, None, None),
    },
    "gender": {
        "female": (((5, 11), None, None, None, None), (8, 11), (6, 8), (5, 8)),
        "male": ((None, None, None, None, (0, 9)), (6, 9), None, None),  # 6a, 6b1: 4 / 6
        "other": NOTHING,  # one respondent: even the zeros are 0 / 1
        "unknown": NOTHING,  # two respondents; 6a is 0 / 0
    },
    "age_band": {
        "under_20": ((None, None, None, None, (0, 7)), None, None, None),  # 4 / 7, 4 / 4
        "20_24": (((5, 11), None, None, None, (0, 11)), (9, 11), (6, 9), None),  # 6b1 4 / 9
        "25_29": NOTHING,
        "30_plus": NOTHING,
        "unknown": NOTHING,
    },
}


def keyed(seeded: Seeded, breakdown: str, expected: Mapping[Hashable, T]) -> dict[Hashable, T]:
    """Programme codes of the expectations as the programme ids of the database."""
    if breakdown != "programme":
        return dict(expected)
    return {seeded.programmes[str(code)]: value for code, value in expected.items()}


@pytest.mark.parametrize("breakdown", list(M2_RAW))
async def test_all_schools_indicators(db: Database, breakdown: str) -> None:
    seeded = await seed(db)
    report = await report_for(db, Scope())
    groups = by(report, breakdown)
    assert {k: raw(v) for k, v in groups.items()} == keyed(seeded, breakdown, M2_RAW[breakdown])
    assert {k: seen(v) for k, v in groups.items()} == keyed(seeded, breakdown, M2_SEEN[breakdown])


async def test_indicators_per_wave_and_edge_cases(db: Database) -> None:
    await seed(db)
    report = await report_for(db, Scope())
    # m6 is counted apart from m2: A01 (completely, a_lot) and A02 (partly, a_lot)
    assert {k: raw(v) for k, v in by(report, "total", "m6").items()} == {
        "total": (2, 2, 0, 0, 0, 0, 2, 2, 2, 2, 2)
    }
    assert seen(by(report, "total", "m6")["total"]) == NOTHING
    # the pre-graduation questionnaire has no indicators
    assert report.wave_indicators("pregrad") == {}
    assert report.wave_indicators("no_such_wave") == {}
    unknown = by(report, "gender")["unknown"]
    assert unknown.i6a == Rate(0, 0) and not unknown.i6a.suppressed  # undefined, not hidden
    assert by(report, "gender")["other"].i6a.suppressed  # 0 / 1: a small denominator


# ---------------------------------------------------------------- one school (officer)


async def test_officer_sees_alfa_only(db: Database) -> None:
    seeded = await seed(db)
    officer = await staff(db, OFFICER_USER_ID)
    scope = staff_scope(officer)
    assert scope == Scope(institution_id=seeded.alfa)
    report = await report_for(db, scope)
    p1, p2 = seeded.programmes["P1"], seeded.programmes["P2"]

    # no beta anywhere
    assert set(report.names.schools) == {seeded.alfa}
    assert set(report.names.programmes) == {p1, p2}
    assert {school for _w, school in report.by_wave_school} == {seeded.alfa}
    assert {programme for _w, programme in report.by_wave_programme} == {p1, p2}
    assert all(day.day not in (date(2025, 8, 27), date(2025, 8, 28)) for day in report.days)
    assert {row.wave for row in report.days} == {"m2", "m6"}

    assert report.cohorts == [2025, 2026]
    assert {w: counts(f) for w, f in report.by_wave.items()} == {
        "pregrad": (33, 25, 0, 0, 0, 0, 0),  # P1 22 + P2 11 graduates, 18 + 7 reachable
        "m2": (33, 25, 25, 22, 17, 3, 2),  # invited 17 + 8, started 15 + 7, complete 12 + 5
        "m6": (33, 25, 5, 2, 2, 0, 0),
        "m12": (33, 25, 0, 0, 0, 0, 0),  # nobody invited yet
    }
    assert {k: counts(f) for k, f in report.by_wave_cohort.items() if k[0] == "m2"} == {
        ("m2", 2025): (26, 22, 25, 22, 17, 3, 2),  # 18 + 8 graduates, 16 + 6 reachable
        ("m2", 2026): (7, 3, 0, 0, 0, 0, 0),  # A21-A24 B21-B23; A21 A22 B21 reachable
    }
    m2 = report.by_wave["m2"]
    assert shown(m2.rate) == (17, 33) and shown(m2.rate_reachable) == (17, 25)
    # partial 3 (A13 A14 B08) and declined 2 (A15 B06) are small
    assert m2.shown()["completed"] == 17
    assert m2.shown()["partial"] is None and m2.shown()["declined"] is None

    assert report.weekly("m2") == [
        (date(2025, 8, 25), None),  # A01 A02
        (date(2025, 9, 1), 7),  # A03-A09
        (date(2025, 9, 8), 0),
        (date(2025, 9, 15), None),  # A10 A11 A12 B01
        (date(2025, 9, 22), None),  # B02-B05
    ]
    assert report.weekly("pregrad") == []

    # P1 + P2: employed 6 + 1, w+s 5, studying 3, looking 1 + 1; E6 yes 8 + 1, E7 yes 6 + 1
    total = by(report, "total")["total"]
    assert raw(total) == (17, 7, 5, 3, 2, 0, 12, 9, 12, 7, 12)
    assert seen(total) == (((7, 17), (5, 17), None, None, (0, 17)), (12, 17), (9, 12), (7, 12))
    assert {k: raw(v) for k, v in by(report, "programme").items()} == {
        p1: M2_RAW["programme"]["P1"],
        p2: M2_RAW["programme"]["P2"],
    }
    # beta's unknowns are gone; alfa's erased B23 (no gender) is a completer, no respondent
    assert set(by(report, "gender")) == {"female", "male", "other", "unknown"}
    assert by(report, "gender")["unknown"].respondents == 0
    # A01 A02 A03 A06 | A07 A09 A11 | B02 | B05: E6 yes 6 of 7 employed, E7 yes 4 of 7
    female = by(report, "gender")["female"]
    assert raw(female) == (9, 4, 3, 1, 1, 0, 7, 6, 7, 4, 7)
    assert seen(female) == ((None, None, None, None, (0, 9)), (7, 9), (6, 7), None)
    assert set(by(report, "eqf")) == {3, 4}
    assert raw(by(report, "eqf")[4]) == M2_RAW["programme"]["P1"]  # only P1 is EQF 4 in alfa

    m2_wave = report.wave("m2")
    assert m2_wave is not None
    drop = await question_drop_off(db, REGISTRY, scope, m2_wave)
    assert [(d.question, d.answered, d.stopped) for d in drop] == [
        ("C0", 22, 0),  # A01-A15, B01-B06, B08
        ("Q1", 19, 1),  # 17 complete + A14 B08; A13 stopped
        ("E1", 13, 0),  # 11 + 1 employed + A14
        ("E2", 13, 0),
        ("E3", 0, 1),  # A14
        ("E6", 12, 0),
        ("E7", 12, 0),
        ("S1", 8, 1),  # A07-A11 + B02-B04; B08 stopped
        ("U1", 2, 0),  # A12 B05
        ("U2", 0, 1),  # A12
    ]


async def test_alfa_p2(db: Database) -> None:
    seeded = await seed(db)
    officer = await staff(db, OFFICER_USER_ID)
    p2 = seeded.programmes["P2"]
    scope = staff_scope(officer, programme_id=p2)
    assert scope == Scope(institution_id=seeded.alfa, programme_id=p2)
    report = await report_for(db, scope)
    assert report.cohorts == [2025, 2026]
    assert {w: counts(f) for w, f in report.by_wave.items()} == {
        "pregrad": (11, 7, 0, 0, 0, 0, 0),  # 8 + 3 graduates; B04 B07 B22 B23 unreachable
        "m2": (11, 7, 8, 7, 5, 1, 1),  # B01-B08 invited, B07 did not start
        "m6": (11, 7, 0, 0, 0, 0, 0),
        "m12": (11, 7, 0, 0, 0, 0, 0),  # nobody invited yet
    }
    assert {k: counts(f) for k, f in report.by_wave_programme.items()} == {
        ("pregrad", p2): (11, 7, 0, 0, 0, 0, 0),
        ("m2", p2): (11, 7, 8, 7, 5, 1, 1),
        ("m6", p2): (11, 7, 0, 0, 0, 0, 0),
        ("m12", p2): (11, 7, 0, 0, 0, 0, 0),
    }
    assert set(report.by_wave_school) == {(w, seeded.alfa) for w in ("pregrad", "m2", "m6", "m12")}
    m2 = report.by_wave["m2"]
    assert shown(m2.rate) == (5, 11) and shown(m2.rate_reachable) == (5, 7)
    assert m2.shown() == {
        "graduates": 11,
        "reachable": 7,
        "invited": 8,
        "started": 7,
        "completed": 5,
        "partial": None,  # B08
        "declined": None,  # B06
    }
    assert report.weekly("m2") == [(date(2025, 9, 15), None), (date(2025, 9, 22), None)]
    total = by(report, "total")["total"]
    assert raw(total) == M2_RAW["programme"]["P2"]
    assert seen(total) == M2_SEEN["programme"]["P2"]
    assert {k: raw(v) for k, v in by(report, "gender").items()} == {
        "male": (3, 1, 0, 2, 0, 0, 1, 1, 1, 1, 1),  # B01 employed, B03 B04 studying
        "female": (2, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0),  # B02 studying, B05 looking
        "unknown": (0,) * 11,  # erased B23: a completer who did not answer
    }
    m2_wave = report.wave("m2")
    assert m2_wave is not None
    drop = await question_drop_off(db, REGISTRY, scope, m2_wave)
    assert [(d.question, d.answered, d.stopped) for d in drop] == [
        ("C0", 7, 0),
        ("Q1", 6, 0),  # B01-B05 + B08
        ("E1", 1, 0),  # B01
        ("E2", 1, 0),
        ("E6", 1, 0),
        ("E7", 1, 0),
        ("S1", 3, 1),  # B02-B04; B08 stopped
        ("U1", 1, 0),  # B05
    ]


async def test_cohort_2025(db: Database) -> None:
    seeded = await seed(db)
    admin = await staff(db, ADMIN_USER_ID)
    scope = staff_scope(admin, cohort=2025)
    assert scope == Scope(cohort=2025)
    report = await report_for(db, scope)
    assert report.cohorts == [2025]
    assert set(report.names.schools) == {seeded.alfa, seeded.beta}
    assert {w: counts(f) for w, f in report.by_wave.items()} == {
        "pregrad": (37, 31, 0, 0, 0, 0, 0),  # 18 + 8 + 11 graduates, 16 + 6 + 9 reachable
        "m2": (37, 31, 35, 31, 23, 5, 3),
        "m6": (37, 31, 5, 2, 2, 0, 0),
        "m12": (37, 31, 0, 0, 0, 0, 0),  # nobody invited yet
    }
    assert {k: counts(f) for k, f in report.by_wave_school.items() if k[0] == "m2"} == {
        ("m2", seeded.alfa): (26, 22, 25, 22, 17, 3, 2),
        ("m2", seeded.beta): (11, 9, 10, 9, 6, 2, 1),
    }
    m2 = report.by_wave["m2"]
    assert shown(m2.rate) == (23, 37) and shown(m2.rate_reachable) == (23, 31)
    assert report.weekly("pregrad") == []  # the pregrad responses are cohort 2026's
    assert [count for _week, count in report.weekly("m2")] == [5, 7, 0, None, 7]
    # every m2 respondent is of cohort 2025: the indicators are those of all schools
    for breakdown, expected in M2_RAW.items():
        groups = by(report, breakdown)
        assert {k: raw(v) for k, v in groups.items()} == keyed(seeded, breakdown, expected)


# ---------------------------------------------------------------- open waves, responses


async def test_open_waves(db: Database) -> None:
    seeded = await seed(db)
    everyone, alfa, beta = (
        Scope(),
        Scope(institution_id=seeded.alfa),
        Scope(institution_id=seeded.beta),
    )

    async def at(moment: str, scope: Scope = everyone) -> list[tuple[str, int]]:
        return await current_waves(db, scope, utc(moment))

    assert await at("2025-08-27 07:59") == []  # beta's m2 invitations are due at 08:00
    assert await at("2025-08-27 08:00") == [("m2", 2025)]
    assert await at("2025-08-28 12:00", alfa) == []  # alfa's are due on the 30th
    assert await at("2025-09-15 12:00", alfa) == [("m2", 2025)]
    assert await at("2025-10-28 12:00", beta) == []  # closed 2025-10-26 23:00
    assert await at("2025-10-28 12:00") == [("m2", 2025)]  # alfa's closes 2025-10-29 23:00
    assert await at("2025-11-15 12:00") == []
    assert await at("2026-01-15 12:00", alfa) == [("m6", 2025)]
    assert await at("2026-06-01 12:00") == [("pregrad", 2026)]
    assert await at("2026-06-01 12:00", alfa) == []
    assert await at("2026-06-25 21:59") == [("pregrad", 2026)]
    assert await at("2026-06-25 22:00") == []  # closes at midnight in Madrid
    assert await at("2026-09-01 12:00") == [("m2", 2026)]  # D01's invitation, still pending
    assert await at("2026-09-01 12:00", Scope(cohort=2025)) == []


async def test_iter_responses(db: Database) -> None:
    seeded = await seed(db)
    refs = {graduate_id: ref for ref, graduate_id in seeded.graduates.items()}
    alfa = Scope(institution_id=seeded.alfa)
    async with db.session() as session:
        rows = [r async for r in stats.iter_responses(session, alfa, "tracking", "m2", batch=4)]
        with_m6 = [r async for r in stats.iter_responses(session, alfa, "tracking", batch=4)]
        pregrad = [r async for r in stats.iter_responses(session, Scope(), "pregrad")]
        none = [r async for r in stats.iter_responses(session, alfa, "pregrad")]
        later = [r async for r in stats.iter_responses(session, Scope(cohort=2026), "tracking")]

    # A01-A15 and B01-B06, B08: 22 responses over 6 batches of 4, in id order, no duplicates
    got = [refs[r.response.graduate_id] for r in rows]
    assert sorted(got) == [f"A{n:02}" for n in range(1, 16)] + [
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B08",
    ]
    ids = [r.response.id or 0 for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == 22
    assert {r.school for r in rows} == {"alfa"} and {r.cohort for r in rows} == {2025}
    answers = {refs[r.response.graduate_id]: r.answers for r in rows}
    assert answers["A06"] == {
        "C0": "yes",
        "Q1": "self_employed",
        "E1": "under_1_month",
        "E2": "permanent",
        "E6": "completely",
        "E7": "a_little",
    }
    assert answers["A12"] == {"C0": "yes", "Q1": "unemployed_looking", "U1": 3}
    assert answers["A13"] == {"C0": "yes"}
    assert answers["A15"] == {"C0": "no"}
    assert {refs[r.response.graduate_id]: r.programme for r in rows}["B08"] == "P2"

    assert len(with_m6) == 24  # and A01, A02 once more for m6
    assert sorted(r.response.wave or "" for r in with_m6).count("m6") == 2

    assert sorted(refs[r.response.graduate_id] for r in pregrad) == [
        f"D{n:02}" for n in range(1, 9)
    ]
    assert {(r.school, r.programme, r.cohort) for r in pregrad} == {("beta", "P3", 2026)}
    assert {refs[r.response.graduate_id]: r.answers for r in pregrad}["D08"] == {"P0": "yes"}
    assert none == [] and later == []


async def test_erasure_keeps_the_counts(db: Database) -> None:
    """Erasing A03 (female, born 2005, employed, E6 completely, E7 not_at_all): still a
    graduate and a respondent with the same answers, but no longer reachable, and now of
    unknown gender and age."""
    await seed(db)
    await REGISTRY.sync(db)  # erasure reads the questionnaire versions to keep closed answers
    async with db.session() as session:
        a03 = (await session.exec(select(Graduate).where(col(Graduate.student_ref) == "A03"))).one()
        await erase_graduate(session, a03, now=utc("2026-03-01 12:00"), reason="request")
    report = await report_for(db, Scope())
    assert counts(report.by_wave["m2"]) == (55, 42, 35, 31, 23, 5, 3)  # reachable 43 - 1
    total = by(report, "total")["total"]
    assert raw(total) == M2_RAW["total"]["total"]  # the answers are kept
    gender = {k: raw(v) for k, v in by(report, "gender").items()}
    assert gender["female"] == (10, 4, 3, 1, 1, 1, 7, 5, 7, 5, 7)  # 11 - A03
    assert gender["unknown"] == (3, 1, 0, 2, 0, 0, 1, 1, 1, 0, 1)  # C04 C05 + A03
    ages = {k: raw(v) for k, v in by(report, "age_band").items()}
    assert ages["20_24"] == (10, 4, 4, 1, 1, 0, 8, 5, 8, 4, 8)
    assert ages["unknown"] == (3, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1)


async def test_a_school_with_its_own_plan_sees_its_own_waves(db: Database) -> None:
    """beta follows a plan of its own (pregrad, m3): its staff do not see the default's m2 and
    m6, and its graduates are the population of m3 and pregrad only."""
    default = DEFAULT_PLAN_FILE.read_text(encoding="utf-8")
    assert "schools: {}" in default
    plans = parse_plans(
        default.replace(
            "schools: {}",
            "schools:\n"
            "  beta:\n"
            "    waves:\n"
            "      - {name: pregrad, questionnaire: pregrad, opens: -6w, closes: 0d}\n"
            "      - {name: m3, questionnaire: tracking, opens: 3m, closes: 5m}\n",
        )
    )
    seeded = await seed(db)
    beta = await build_report(db, plans, SPECS, Scope(institution_id=seeded.beta))
    assert [w.name for w in beta.waves] == ["pregrad", "m3"]
    assert counts(beta.by_wave["m3"]) == (22, 18, 0, 0, 0, 0, 0)  # P3: 11 + 11, 9 + 9
    alfa = await build_report(db, plans, SPECS, Scope(institution_id=seeded.alfa))
    assert [w.name for w in alfa.waves] == ["pregrad", "m2", "m6", "m12"]
    everyone = await build_report(db, plans, SPECS, Scope())
    assert [w.name for w in everyone.waves] == ["pregrad", "m2", "m6", "m12", "m3"]
    assert counts(everyone.by_wave["pregrad"])[:2] == (55, 43)  # both plans have pregrad
    assert counts(everyone.by_wave["m6"])[:2] == (33, 25)  # alfa only


async def test_a_wave_counts_only_the_graduates_it_has_opened_for(db: Database) -> None:
    """With `today`, a cohort a wave has not reached yet does not count in its graduates."""
    await seed(db)
    # 2026-11-23: m2 (2 months after graduation) has opened for everyone; m6 (6 months) for
    # the 2025 cohort only (2025-06-30 + 6m = 2025-12-30; 2026-06-30 + 6m = 2026-12-30).
    report = await build_report(db, PLANS, SPECS, Scope(), today=date(2026, 11, 23))
    assert (report.by_wave["m2"].graduates, report.by_wave["m2"].reachable) == (55, 43)
    assert (report.by_wave["m6"].graduates, report.by_wave["m6"].reachable) == (37, 31)
    assert report.by_wave["pregrad"].graduates == 55
    assert report.by_wave["m6"].rate.suppressed  # 2 complete / 37: fewer than 5 people
    # 2026-08-28: m2 has opened for beta's 2026 cohort (2026-06-26 + 2m = 08-26), not yet
    # for alfa's (2026-06-30 + 2m = 08-30): 37 of 2025 + 11 of P3 2026; reachable 31 + 9.
    early = await build_report(db, PLANS, SPECS, Scope(), today=date(2026, 8, 28))
    assert (early.by_wave["m2"].graduates, early.by_wave["m2"].reachable) == (48, 40)
    assert early.by_wave["m2"].completed == 23
    assert (early.by_wave_cohort[("m2", 2026)].graduates) == 11


# ---------------------------------------------------------------- what counts as completed


async def _seed_states(db: Database, now: datetime) -> dict[str, str]:
    """One school, one programme, one graduate per response state in wave m2. Returns the
    outcome each should have, by student ref."""
    from datetime import timedelta

    from storage.models import Institution, Invitation, Programme

    async with db.session() as session:
        school = Institution(
            code="states", name="States College", country="NL", default_language="nl"
        )
        session.add(school)
        await session.flush()
        assert school.id is not None
        programme = Programme(institution_id=school.id, code="P", name="P", eqf_level=4)
        session.add(programme)
        await session.flush()
        assert programme.id is not None
        open_wave = now + timedelta(days=20)
        closed_wave = now - timedelta(days=20)
        # ref: (status, core answered, declined, the wave's closing time, expected outcome)
        states = {
            "sent": ("submitted", True, False, open_wave, "completed"),
            "unsent-open-wave": ("open", True, False, open_wave, "partial"),
            "unsent-closed-wave": ("open", True, False, closed_wave, "completed"),
            "halfway-closed-wave": ("open", False, False, closed_wave, "partial"),
            "halfway-open-wave": ("open", False, False, open_wave, "partial"),
            "declined": ("submitted", False, True, open_wave, "declined"),
        }
        for number, (ref, state) in enumerate(states.items()):
            status, core, declined, closes, _outcome = state
            graduate = Graduate(
                institution_id=school.id,
                programme_id=programme.id,
                student_ref=ref,
                graduation_date=date(2026, 6, 30),
                chat_id=700_000 + number,
            )
            session.add(graduate)
            await session.flush()
            assert graduate.id is not None
            session.add(
                Invitation(
                    graduate_id=graduate.id,
                    wave="m2",
                    form_id="tracking",
                    due_at=closes - timedelta(days=60),
                    closes_at=closes,
                    status="sent",
                )
            )
            response = SurveyResponse(
                graduate_id=graduate.id,
                form_id="tracking",
                version="1",
                wave="m2",
                status=status,
                complete=core,
                declined=declined,
                completed_at=now - timedelta(days=1) if core else None,
            )
            session.add(response)
            await session.flush()
            assert response.id is not None
            session.add(Answer(response_id=response.id, question="C0", value="yes"))
            if core:
                session.add(Answer(response_id=response.id, question="Q1", value="studying"))
                session.add(Answer(response_id=response.id, question="S1", value="higher_vet"))
        return {ref: state[-1] for ref, state in states.items()}


async def test_a_response_counts_as_completed_once_sent_or_once_its_wave_closed(
    db: Database,
) -> None:
    """An answered but unsent response of a wave still open is partial, in the wave table,
    the indicators, the responses per day and the rows of the export; once its wave has closed
    its answered routing core counts (HESA's rule)."""
    now = datetime.now(UTC)
    expected = await _seed_states(db, now)
    async with db.session() as session:
        (row,) = await stats.wave_counts(session, Scope())
        spec = SPECS["tracking"].questions
        outcomes = await stats.outcomes(session, Scope(), spec)
        days = await stats.completions_per_day(session, Scope())
        rows = [r async for r in stats.iter_responses(session, Scope(), "tracking")]
        refs = {g.id: g.student_ref for g in (await session.exec(select(Graduate))).all()}
    assert (row.started, row.completed, row.partial, row.declined) == (6, 2, 3, 1)
    assert sum(o.count for o in outcomes) == 2
    assert sum(d.completed for d in days) == 2
    assert {refs[r.response.graduate_id]: r.outcome for r in rows} == expected
    report = await report_for(db, Scope())
    m2 = report.by_wave["m2"]
    assert (m2.completed, m2.partial, m2.declined) == (2, 3, 1)


# ---------------------------------------------------------------- the funnel never widens


async def test_someone_who_started_without_an_invitation_counts_as_invited(db: Database) -> None:
    """A graduate who starts a wave from /survey or onboarding, without an invitation row,
    was reached all the same: the funnel never reads "invited 0, started 2" (issue 15).
    invited >= started >= completed in every cell of the report."""
    seeded = await seed(db)
    p1 = seeded.programmes["P1"]
    async with db.session() as session:
        # A21 and A22 (P1, 2026, linked, no invitation at all) start pregrad by themselves;
        # A22 also takes a survey outside any wave.
        for ref, wave in (("A21", "pregrad"), ("A22", "pregrad"), ("A22", None)):
            session.add(
                SurveyResponse(
                    graduate_id=seeded.graduates[ref],
                    form_id="tracking",
                    version="2026.1",
                    wave=wave,
                    status="open",
                    current="Q1",
                )
            )
    report = await report_for(db, Scope())
    # P1's pregrad: 22 graduates, 18 reachable, 0 invitations sent, 2 started.
    assert counts(report.by_wave_programme[("pregrad", p1)]) == (22, 18, 2, 2, 0, 2, 0)
    # pregrad in all: D01-D09 invited, D01-D08 started, plus A21 and A22.
    assert counts(report.by_wave["pregrad"]) == (55, 43, 11, 10, 6, 3, 1)
    assert counts(report.by_wave[None]) == (0, 0, 1, 1, 0, 1, 0)
    # The rest of the data set is as before (every started graduate there was invited).
    assert counts(report.by_wave["m2"]) == (55, 43, 35, 31, 23, 5, 3)
    for groups in (
        report.by_wave,
        report.by_wave_programme,
        report.by_wave_cohort,
        report.by_wave_school,
    ):
        for key, funnel in groups.items():
            assert funnel.invited >= funnel.started >= funnel.completed, (key, counts(funnel))


# ---------------------------------------------------------------- the 12-month wave


async def test_twelve_month_wave_indicators_over_respondents_and_completers(db: Database) -> None:
    """EQAVET 5a, 5b, 6a, 6b1 and the use of skills from the 12-month wave of alfa P1
    (stats_seed.M12_ROWS, counted by hand there), over respondents and over completers, with
    the small groups suppressed. On 2026-08-01 m12 has opened for the class of 2025 (graduated
    2025-06-30, opens 12 months later), not for that of 2026: 18 completers, not 22."""
    seeded = await seed(db)
    await seed_m12(db, seeded)
    p1 = seeded.programmes["P1"]
    scope = Scope(institution_id=seeded.alfa, programme_id=p1)
    report = await build_report(db, PLANS, SPECS, scope, today=date(2026, 8, 1))
    wave = report.reported("tracking", "5b")
    assert wave is not None and wave.name == "m12"
    assert all(report.reported("tracking", i) == wave for i in ("5a", "6a", "6b1"))
    total = by(report, "total", "m12")["total"]
    assert (total.respondents, total.completers) == (11, 18)
    assert shown(total.response_rate) == (11, 18)
    assert total.destinations == {
        "employed": 6,
        "working_and_studying": 1,
        "studying": 3,
        "looking_for_work": 1,
        "other": 0,
    }
    assert shown(total.i5b) == (7, 11)
    assert shown(total.rates("completers")["5b"]) == (7, 18)
    assert shown(total.i6a) == (6, 7)
    assert shown(total.i6b1) == (7, 10)  # satisfaction: 4 or 5 of those who answered A8
    assert shown(total.rates("completers")["6b1"]) == (7, 18)
    assert shown(total.use_of_skills) == (6, 7)
    # 5a: three small groups are hidden; the employed and the zero are shown
    shares = total.shares_5a()
    assert shown(shares["employed"]) == (6, 11) and shown(shares["other"]) == (0, 11)
    assert all(shares[d] is None for d in ("working_and_studying", "studying", "looking_for_work"))
    assert shown(total.shares_5a("completers")["employed"]) == (6, 18)

    gender = by(report, "gender", "m12")
    female, male, other = (gender[g] for g in ("female", "male", "other"))
    assert (female.respondents, female.completers) == (7, 10)
    assert shown(female.response_rate) == (7, 10)
    # female 6b1: A01 A02 A07 A11 satisfied of 7: a numerator under five is hidden
    assert female.i6b1 == Rate(4, 7) and shown(female.i6b1) is None
    assert (male.respondents, male.completers) == (3, 7)
    assert shown(male.response_rate) is None and male.response_rate.suppressed
    assert (other.respondents, other.completers) == (1, 1)
    assert shown(other.rates("completers")["5b"]) is None

    # m6 keeps its own respondents (A01 A02) over the same 18 completers
    m6 = by(report, "total", "m6")["total"]
    assert (m6.respondents, m6.completers) == (2, 18)
