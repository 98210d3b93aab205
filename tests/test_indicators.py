"""The maths of conversations/indicators.py on hand-made rows: suppression, rates, funnels,
weekly series, drop-off, the indicator spec and the indicators themselves. No database."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from conversations.indicators import (
    DEFAULT_SPEC_FILE,
    DESTINATIONS,
    EQAVET_DENOMINATOR,
    Funnel,
    IndicatorSpecError,
    Rate,
    Reach,
    add_completers,
    channel_counts,
    check_spec,
    drop_off,
    funnels,
    indicators,
    load_specs,
    parse_specs,
    suppress,
    suppress_parts,
    weekly,
)
from conversations.questionnaire import Questionnaire, load_questionnaire
from storage.stats import (
    ChannelRow,
    CompleterRow,
    DayRow,
    OutcomeRow,
    PopulationRow,
    QuestionRow,
    WaveRow,
)

QUESTIONNAIRES = Path(__file__).parent.parent / "conversations" / "questionnaires"
SPEC_TEXT = DEFAULT_SPEC_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tracking() -> Questionnaire:
    return load_questionnaire(QUESTIONNAIRES / "tracking.yaml")


# ---------------------------------------------------------------- suppression


def test_suppress_hides_one_to_four_and_shows_zero() -> None:
    assert suppress(0) == 0
    assert [suppress(n) for n in (1, 2, 3, 4)] == [None] * 4
    assert suppress(5) == 5 and suppress(1234) == 1234


def test_suppress_parts_primary() -> None:
    # two small parts hide each other: nothing more is hidden
    assert suppress_parts([10, 3, 2, 7]) == [10, None, None, 7]
    assert suppress_parts([1, 2, 3]) == [None, None, None]


def test_suppress_parts_secondary() -> None:
    # 3 alone would be total - 10 - 7: the smallest other part (7) goes too
    assert suppress_parts([10, 3, 7]) == [10, None, None]
    assert suppress_parts([6, 5, 1]) == [6, None, None]
    # zeros are shown and are never the one hidden with it (hiding 0 protects nothing)
    assert suppress_parts([10, 3, 7, 0]) == [10, None, None, 0]
    assert suppress_parts([0, 8, 4, 0, 9]) == [0, None, None, 0, 9]
    # a tie: exactly one of the two hides with the small part
    tied = suppress_parts([5, 2, 5])
    assert tied[1] is None and tied.count(None) == 2


def test_suppress_parts_zeros_and_nothing_hidden() -> None:
    assert suppress_parts([5, 6, 100]) == [5, 6, 100]
    assert suppress_parts([0, 0, 8]) == [0, 0, 8]
    assert suppress_parts([0, 0, 0]) == [0, 0, 0]
    assert suppress_parts([]) == []
    # the only non-zero part is small: there is no other part to hide
    assert suppress_parts([0, 3, 0]) == [0, None, 0]


# ---------------------------------------------------------------- rates


def test_rate_edge_cases() -> None:
    undefined = Rate(0, 0)
    assert undefined.value is None and not undefined.suppressed
    assert Rate(0, 12).value == 0.0 and not Rate(0, 12).suppressed
    assert Rate(5, 20).value == 0.25
    assert Rate(20, 20).value == 1.0
    # small numerator
    assert Rate(3, 40).value is None and Rate(3, 40).suppressed
    # small denominator, even with a numerator of 0 (0 of 4 says all 4 did not)
    assert Rate(0, 4).value is None and Rate(0, 4).suppressed
    assert Rate(4, 4).value is None and Rate(4, 4).suppressed
    assert Rate(5, 5).value == 1.0


# ---------------------------------------------------------------- response counts


def test_funnel_counts_rates_and_shown() -> None:
    f = Funnel(graduates=40, reachable=30, invited=28, started=20, completed=12, declined=3)
    assert f.partial == 5  # 20 - 12 - 3
    assert f.rate == Rate(12, 40) and f.rate.value == 0.3
    assert f.rate_reachable == Rate(12, 30) and f.rate_reachable.value == 0.4
    # primary suppression only: declined 3 is hidden, partial 5 and completed 12 stay
    assert f.shown() == {
        "graduates": 40,
        "reachable": 30,
        "invited": 28,
        "started": 20,
        "completed": 12,
        "partial": 5,
        "declined": None,
    }
    f.add(Funnel(graduates=2, reachable=1, invited=1, started=1, completed=0, declined=1))
    assert (f.graduates, f.reachable, f.invited, f.started, f.completed, f.declined) == (
        42,
        31,
        29,
        21,
        12,
        4,
    )
    small = Funnel(graduates=4, reachable=0, invited=0, started=0)
    assert small.shown()["graduates"] is None and small.shown()["reachable"] == 0
    assert small.rate.value is None and small.rate.suppressed  # 0 of 4


def test_funnels_population_follows_the_plan() -> None:
    population = [
        PopulationRow(1, 10, 2025, graduates=20, reachable=15),
        PopulationRow(1, 11, 2025, graduates=8, reachable=6),
        PopulationRow(1, 10, 2026, graduates=9, reachable=9),
    ]
    waves = [
        WaveRow(1, 10, 2025, "m2", invited=12, started=9, completed=7, declined=1),
        WaveRow(1, 11, 2025, "m2", invited=5, started=4, completed=2, declined=1),
        WaveRow(1, 10, 2025, None, invited=0, started=1, completed=1, declined=0),
    ]

    def waves_of(institution: int, programme: int) -> list[str]:
        return ["m2", "m6"] if programme == 10 else ["m2"]  # programme 11 has no m6

    by_wave = funnels(population, waves, waves_of, lambda w, i, p, c: w)
    assert by_wave["m2"] == Funnel(37, 30, 17, 13, 9, 2)  # 20 + 8 + 9, 15 + 6 + 9
    assert by_wave["m2"].partial == 2  # 13 - 9 - 2
    assert by_wave["m6"] == Funnel(29, 24)  # programme 10 only: 20 + 9, 15 + 9
    assert by_wave[None] == Funnel(0, 0, 0, 1, 1, 0)  # outside a wave: no population
    by_cohort = funnels(population, waves, waves_of, lambda w, i, p, c: (w, c))
    assert by_cohort[("m2", 2026)] == Funnel(9, 9)
    assert by_cohort[("m2", 2025)] == Funnel(28, 21, 17, 13, 9, 2)


def test_weekly_fills_gaps_and_suppresses() -> None:
    days = [
        DayRow("m2", date(2025, 9, 22), 6),  # Monday
        DayRow("m2", date(2025, 9, 3), 3),  # Wednesday: week of Monday 1 September
        DayRow("m6", date(2025, 9, 10), 9),
        DayRow("m2", date(2025, 9, 7), 2),  # Sunday: same week
        DayRow("m2", date(2025, 9, 1), 1),
        DayRow("m2", date(2025, 10, 5), 2),  # Sunday: week of Monday 29 September
    ]
    assert weekly(days, "m2") == [
        (date(2025, 9, 1), 6),  # 3 + 2 + 1
        (date(2025, 9, 8), 0),
        (date(2025, 9, 15), 0),
        (date(2025, 9, 22), 6),
        (date(2025, 9, 29), None),  # 2
    ]
    assert weekly(days) == [
        (date(2025, 9, 1), 6),
        (date(2025, 9, 8), 9),  # m6
        (date(2025, 9, 15), 0),
        (date(2025, 9, 22), 6),
        (date(2025, 9, 29), None),
    ]
    assert weekly(days, "m6") == [(date(2025, 9, 8), 9)]
    assert weekly(days, "pregrad") == []
    assert weekly([]) == []


# ---------------------------------------------------------------- drop-off


def test_drop_off_in_questionnaire_order(tracking: Questionnaire) -> None:
    rows = [
        QuestionRow("tracking", "S1", answered=3, stopped=1),
        QuestionRow("tracking", "C0", answered=12, stopped=0),
        QuestionRow("pregrad", "P1", answered=5, stopped=5),  # another questionnaire
        QuestionRow("tracking", "Q1", answered=8, stopped=2),
        QuestionRow("tracking", "E1", answered=4, stopped=0),
        QuestionRow("tracking", "Q1", answered=1, stopped=0),  # added up
        QuestionRow("tracking", "Z9", answered=7, stopped=7),  # not in this version
    ]
    result = drop_off(rows, tracking)
    assert [(d.question, d.answered, d.stopped) for d in result] == [
        ("C0", 12, 0),
        ("Q1", 9, 2),
        ("E1", 4, 0),
        ("S1", 3, 1),
    ]
    q1 = result[1]
    assert q1.shown == 11 and q1.rate == Rate(2, 11) and q1.rate.value is None
    assert result[0].rate.value == 0.0
    assert drop_off([], tracking) == []


# ---------------------------------------------------------------- the indicator spec


def test_the_spec_file() -> None:
    spec = load_specs()["tracking"]
    assert spec.activity == "Q1" and spec.related == "E6"
    assert set(spec.destinations) == set(DESTINATIONS)
    assert spec.destinations["employed"] == {"employed", "self_employed"}
    assert spec.destinations["other"] == {"not_available", "other"}
    assert spec.employed == {"employed", "self_employed", "working_and_studying"}
    assert spec.related_yes == {"completely", "partly"}
    assert spec.use == "E7" and spec.use_yes == {"a_lot", "a_little"}
    # 6b1 is satisfaction with the skills acquired (4 or 5 of 5), asked of everyone
    assert spec.satisfied == "A8" and spec.satisfied_yes == {"4", "5"}
    # 5b is "one year after": every indicator is reported from the 12-month wave
    assert spec.reported_at == {"5a": "m12", "5b": "m12", "6a": "m12", "6b1": "m12"}
    assert spec.wave_of("5b") == "m12"
    assert spec.destination("working_and_studying") == "working_and_studying"
    assert spec.destination("unemployed_looking") == "looking_for_work"
    assert spec.destination(None) is None


def broken(old: str, new: str) -> str:
    assert old in SPEC_TEXT
    return SPEC_TEXT.replace(old, new)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            broken("    studying: [studying]", "    studying: [studying]\n    jobless: [x]"),
            "tracking: unknown destination 'jobless'",
        ),
        (
            broken("other: [not_available, other]", "other: [not_available, other, employed]"),
            "tracking: employed is in two groups",
        ),
        (broken("  activity: Q1\n", ""), "tracking: 'activity' is missing"),
        (
            broken('  use_of_skills: {question: E7, "yes": [a_lot, a_little]}\n', ""),
            "'use_of_skills'",
        ),
        (broken('"yes": [4, 5]}', '"yes": ["4", "5"]}'), "satisfied.yes: a list of scale points"),
        (broken("reported_at: {5a: m12,", "reported_at: {5c: m12,"), "unknown indicator '5c'"),
        (broken("reported_at: {5a: m12,", "reported_at: {5a: 12,"), "reported_at must map"),
        (broken('{question: E6, "yes"', '{"yes"'), "tracking: 'question' is missing"),
        (
            broken("employed: [employed, self_employed, working", "employed: employed #"),
            "tracking: employed: a list of choice codes is expected",
        ),
        (
            broken("related: {question: E6", "related: E6 #"),
            "tracking: related must be a mapping (question, yes)",
        ),
        ("- tracking\n", "a mapping of questionnaire ids is expected"),
        ("tracking: [Q1]\n", "tracking: a mapping is expected"),
    ],
)
def test_parse_specs_errors(text: str, message: str) -> None:
    with pytest.raises(IndicatorSpecError) as error:
        parse_specs(text)
    assert message in str(error.value)


def test_parse_specs_of_nothing() -> None:
    assert parse_specs("") == {}


def test_check_spec_fits_the_tracking_questionnaire(tracking: Questionnaire) -> None:
    assert check_spec(load_specs()["tracking"], tracking) == []


def test_check_spec_reports_what_is_missing(tracking: Questionnaire) -> None:
    spec = load_specs()["tracking"]
    no_question = replace(spec, activity="Q9")
    assert check_spec(no_question, tracking) == ["tracking: the questionnaire has no question Q9"]
    not_select = replace(spec, related="E4")  # a text question
    assert check_spec(not_select, tracking) == ["tracking: E4 must be a select_one question"]
    no_choice = replace(
        spec,
        use_yes=frozenset({"a_lot", "heaps"}),
        destinations={
            **spec.destinations,
            "other": frozenset({"not_available", "other", "retired"}),
        },
    )
    assert check_spec(no_choice, tracking) == [
        "tracking: Q1 has no choice retired",
        "tracking: E7 has no choice heaps",
    ]


def test_check_spec_checks_the_satisfaction_scale(tracking: Questionnaire) -> None:
    spec = load_specs()["tracking"]
    assert check_spec(replace(spec, satisfied="E6"), tracking) == [
        "tracking: E6 must be a scale question"
    ]
    assert check_spec(replace(spec, satisfied_yes=frozenset({"5", "6"})), tracking) == [
        "tracking: A8 has no point 6"
    ]
    assert check_spec(replace(spec, satisfied="A9"), tracking) == [
        "tracking: the questionnaire has no question A9"
    ]


def test_check_spec_reports_an_activity_in_no_group(tracking: Questionnaire) -> None:
    """A choice of the activity question in no destination group would drop its respondents
    from the 5a shares (they would no longer add up to 100 %)."""
    spec = load_specs()["tracking"]
    forgotten = replace(spec, destinations={**spec.destinations, "other": frozenset({"other"})})
    assert check_spec(forgotten, tracking) == [
        "tracking: Q1 has choice not_available in no destination group"
    ]


# ---------------------------------------------------------------- the indicators


def outcome(
    activity: str | None,
    related: str | None = None,
    relevant: str | None = None,
    count: int = 1,
    *,
    wave: str | None = "m2",
    programme: int = 1,
    eqf: int | None = 4,
    gender: str | None = "female",
    age: str = "20_24",
    satisfied: str | None = None,
) -> OutcomeRow:
    return OutcomeRow(
        wave, programme, eqf, gender, age, activity, related, relevant, count, satisfied
    )


def test_indicators_count_the_employed_only() -> None:
    spec = load_specs()["tracking"]
    rows = [
        outcome("employed", "completely", "a_lot", 4, satisfied="5"),
        outcome("self_employed", "not_at_all", "a_little", 2, satisfied="3"),
        outcome("working_and_studying", "partly", "not_at_all", 3, satisfied="4"),
        outcome("employed", None, None, 1),  # E6, E7, A8 not stored: not in the denominators
        # stale E6 and E7 of a non-employed; A8 is asked of everyone and counts
        outcome("studying", "completely", "a_lot", 5, satisfied="2"),
        outcome("unemployed_looking", count=2, satisfied="4"),
        outcome("not_available", count=1, satisfied="1"),
        outcome("other", count=1),
    ]
    result = indicators(rows, spec)
    assert set(result) == {"m2"}
    total = result["m2"]["total"]
    assert total.respondents == 19  # 4 + 2 + 3 + 1 + 5 + 2 + 1 + 1
    assert total.destinations == {
        "employed": 7,  # 4 + 2 + 1
        "working_and_studying": 3,
        "studying": 5,
        "looking_for_work": 2,
        "other": 2,  # not_available + other
    }
    assert total.employed == 10  # 7 + 3
    assert (total.related_yes, total.related_answered) == (7, 9)  # 4 + 3 of 4 + 2 + 3
    assert (total.use_yes, total.use_answered) == (6, 9)  # 4 + 2 of 9
    assert total.use_of_skills == Rate(6, 9)
    # 6b1: 4 or 5 of 5, over all who answered A8: 4 + 3 + 2 of 4 + 2 + 3 + 5 + 2 + 1
    assert (total.satisfied_yes, total.satisfied_answered) == (9, 17)
    assert total.i5b == Rate(10, 19)
    assert total.i6a == Rate(7, 9) and total.i6b1 == Rate(9, 17)
    shares = total.shares_5a()
    # w+s 3, looking 2, other 2 hidden: three small parts, no secondary suppression
    assert shares["employed"] == Rate(7, 19) and shares["studying"] == Rate(5, 19)
    assert shares["working_and_studying"] is None
    assert shares["looking_for_work"] is None and shares["other"] is None


def test_shares_5a_secondary_suppression() -> None:
    spec = load_specs()["tracking"]
    rows = [
        outcome("employed", "completely", "a_lot", 9),
        outcome("studying", count=6),
        outcome("unemployed_looking", count=2),
    ]
    shares = indicators(rows, spec)["m2"]["total"].shares_5a()
    # looking 2 is the only small part: studying 6 (smaller than 9) is hidden too, zeros show
    assert shares == {
        "employed": Rate(9, 17),
        "working_and_studying": Rate(0, 17),
        "studying": None,
        "looking_for_work": None,
        "other": Rate(0, 17),
    }


def test_indicators_by_breakdown_and_wave() -> None:
    spec = load_specs()["tracking"]
    rows = [
        outcome("employed", "completely", "a_lot", 5, gender="male", programme=1, eqf=4),
        outcome("employed", "partly", "a_lot", 2, gender=None, programme=2, eqf=None),
        outcome("studying", count=3, gender="unknown", programme=2, eqf=None, age="unknown"),
        outcome("employed", "completely", "a_lot", 7, wave="m6"),
    ]
    by_gender = indicators(rows, spec, "gender")
    assert set(by_gender) == {"m2", "m6"}
    assert set(by_gender["m2"]) == {"male", "unknown"}  # None and "unknown" are one group
    assert by_gender["m2"]["unknown"].respondents == 5
    assert by_gender["m6"]["female"].respondents == 7
    by_eqf = indicators(rows, spec, "eqf")["m2"]
    assert {k: v.respondents for k, v in by_eqf.items()} == {4: 5, None: 5}
    by_programme = indicators(rows, spec, "programme")["m2"]
    assert {k: v.employed for k, v in by_programme.items()} == {1: 5, 2: 2}
    by_age = indicators(rows, spec, "age_band")["m2"]
    assert {k: v.respondents for k, v in by_age.items()} == {"20_24": 7, "unknown": 3}
    with pytest.raises(ValueError, match="unknown breakdown"):
        indicators(rows, spec, "colour")


def completers(gender: str, count: int, *, programme: int = 1, year: int = 2025) -> CompleterRow:
    return CompleterRow(1, programme, date(year, 6, 30), 4, gender, "20_24", count)


def test_the_twelve_month_wave_over_respondents_and_over_completers() -> None:
    """A hand-counted 12-month wave: 13 respondents of 20 completers (programme 1, class of
    2025); programme 2's plan has no m12, and the class of 2026 has not reached it."""
    spec = load_specs()["tracking"]
    rows = [
        outcome("employed", "completely", "a_lot", 5, wave="m12", satisfied="5"),
        outcome("working_and_studying", "partly", "a_little", 2, wave="m12", satisfied="4"),
        outcome("studying", count=5, wave="m12", satisfied="3"),
        outcome("unemployed_looking", count=1, wave="m12", gender="male", satisfied="4"),
    ]
    roster = [
        completers("female", 12),
        completers("male", 5),
        completers("other", 3),
        completers("female", 4, year=2026),  # m12 not open for them yet
        completers("male", 9, programme=2),  # their plan: m2 only
    ]

    def waves_of(institution_id: int, programme_id: int) -> list[str]:
        return ["m2", "m12"] if programme_id == 1 else ["m2"]

    def opened(wave: str, row: CompleterRow) -> bool:
        return wave == "m2" or row.graduation_date.year == 2025

    total = add_completers(indicators(rows, spec), roster, waves_of, "total", opened)
    m12 = total["m12"]["total"]
    assert (m12.respondents, m12.completers) == (13, 20)  # 5 + 2 + 5 + 1; 12 + 5 + 3
    assert m12.response_rate == Rate(13, 20)
    # 5b over respondents and over completers: employed 5 + working and studying 2
    assert m12.i5b == Rate(7, 13) and m12.rates("completers")["5b"] == Rate(7, 20)
    # working and studying counts as employed (5b) and is its own 5a group
    assert m12.destinations["working_and_studying"] == 2 and m12.employed == 7
    # 6a over the employed who answered E6: 5 + 2 related of 7
    assert m12.i6a == Rate(7, 7) and m12.rates("completers")["6a"] == Rate(7, 20)
    # 6b1: satisfied (4, 5) of everyone who answered A8: 5 + 2 + 1 of 13
    assert m12.i6b1 == Rate(8, 13) and m12.rates("completers")["6b1"] == Rate(8, 20)
    assert m12.use_of_skills == Rate(7, 7)
    # 5a: working and studying 2 and looking 1 are hidden (two small parts: no more)
    assert m12.shares_5a() == {
        "employed": Rate(5, 13),
        "working_and_studying": None,
        "studying": Rate(5, 13),
        "looking_for_work": None,
        "other": Rate(0, 13),
    }
    assert m12.shares_5a("completers")["employed"] == Rate(5, 20)
    assert m12.shares_5a("completers")["looking_for_work"] is None
    # m2 has completers (20 + 4 + 9) and no respondent: a row of zeros, not a missing row
    m2 = total["m2"]["total"]
    assert (m2.respondents, m2.completers) == (0, 33)
    assert m2.response_rate == Rate(0, 33) and m2.response_rate.value == 0
    assert EQAVET_DENOMINATOR == "respondents"
    with pytest.raises(ValueError, match="unknown denominator"):
        m12.share(1, "graduates")

    by_gender = add_completers(indicators(rows, spec, "gender"), roster, waves_of, "gender", opened)
    female, male, other = (by_gender["m12"][g] for g in ("female", "male", "other"))
    assert (female.respondents, female.completers) == (12, 12)
    assert female.response_rate.value == 1.0
    # one male respondent of five: the rate is hidden, the five completers are shown
    assert (male.respondents, male.completers) == (1, 5)
    assert male.response_rate.value is None and male.response_rate.suppressed
    # three "other" completers and no respondent: a small denominator hides even 0 %
    assert (other.respondents, other.completers) == (0, 3)
    assert other.response_rate.suppressed
    assert other.rates("completers")["5b"].suppressed


def test_reach_hides_a_second_group_when_one_would_be_given_away_by_the_total() -> None:
    reach = Reach({"chat": 6, "web": 5, "email": 5, "bounced": 2, "none": 5})
    assert reach.total == 23
    assert reach.shown() == {"chat": 6, "web": None, "email": 5, "bounced": None, "none": 5}
    shares = reach.shares()
    assert shares["web"] is None and shares["bounced"] is None
    assert shares["chat"] == Rate(6, 23)
    # Two small groups: nothing more to hide; an empty group is shown as 0.
    two = Reach({"chat": 6, "web": 5, "email": 1, "none": 1})
    assert two.shown() == {"chat": 6, "web": 5, "email": None, "bounced": 0, "none": None}


def test_the_channels_rates_add_up_to_completed_over_invited() -> None:
    wave_funnels: dict[str | None, Funnel] = {
        "m2": Funnel(invited=18, completed=12),
        "m6": Funnel(invited=3),
    }
    rows = [
        ChannelRow(1, 10, 2026, "m2", "telegram", 4),
        ChannelRow(1, 11, 2026, "m2", "telegram", 2),
        ChannelRow(1, 10, 2026, "m2", "web", 5),
        ChannelRow(1, 10, 2026, "m2", "unknown", 1),
    ]
    counts = channel_counts(wave_funnels, rows, lambda w, i, p, c: w)
    m2 = counts["m2"]
    assert (m2.invited, m2.completed) == (18, {"telegram": 6, "web": 5, "unknown": 1})
    assert [m2.shown(c) for c in ("telegram", "web", "unknown")] == [6, 5, None]
    assert m2.rate("telegram") == Rate(6, 18) and m2.rate("unknown").suppressed
    total = sum(m2.completed.values())
    assert total == wave_funnels["m2"].completed
    assert counts["m6"].invited == 3 and counts["m6"].completed == {}
