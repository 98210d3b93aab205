"""EQAVET 6a "working in the occupation trained for" (the graduate's ISCO-08 major group, E4b,
against the groups their programme declares) and the breakdowns by pathway, VET kind, school
and country, on the hand-counted data set of tests/occupation_seed.py, on SQLite and
PostgreSQL; and the same on the dashboard and in the indicator export."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Hashable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.reporting import Report, build_report
from conversations import engine
from conversations.indicators import (
    DEFAULT_SPEC_FILE,
    Indicators,
    IndicatorSpecError,
    Rate,
    check_spec,
    indicators,
    load_specs,
    parse_specs,
)
from conversations.questionnaire import load_questionnaire
from conversations.waves import load_plans
from storage.db import Database
from storage.staff import add_staff
from storage.stats import OutcomeRow, Scope
from tests import occupation_seed
from tests.harness import Harness
from tests.test_cli import _cli
from tests.test_dashboard import client_session, log_in

SPEC = load_specs()["tracking"]
QUESTIONNAIRES = Path(__file__).parent.parent / "conversations" / "questionnaires"
PLANS = load_plans()


def shown(rate: Rate) -> tuple[int, int] | None:
    """The fraction a reader sees, None when it is suppressed or undefined."""
    return None if rate.value is None else (rate.numerator, rate.denominator)


async def m12(
    db: Database, breakdown: str, scope: Scope | None = None
) -> dict[Hashable, Indicators]:
    report: Report = await build_report(db, PLANS, {"tracking": SPEC}, scope or Scope())
    return report.wave_indicators("m12", breakdown)


def test_the_occupation_counts_only_the_employed_of_programmes_that_declare_groups() -> None:
    """Hand-made rows: the figure is over the employed who answered E4b and whose programme
    declares groups; the answer counts when its group is one of them."""

    def row(activity: str, occupation: str | None, groups: str | None, n: int) -> OutcomeRow:
        return OutcomeRow(
            "m12", 1, 4, "female", "20_24", activity, None, None, n, None, occupation, groups
        )

    rows = [
        row("employed", "isco5", "5,7", 6),  # yes
        row("self_employed", "isco7", "5,7", 1),  # yes
        row("working_and_studying", "isco9", "5,7", 2),  # answered, not in the groups
        row("employed", "isco5", None, 3),  # programme declares nothing: not counted
        row("employed", None, "5,7", 4),  # did not answer E4b: not counted
        row("studying", "isco5", "5", 5),  # not employed: not counted
    ]
    total = indicators(rows, SPEC)["m12"]["total"]
    assert (total.occupation_yes, total.occupation_answered) == (7, 9)  # 6 + 1 of 6 + 1 + 2
    assert total.i6a_occupation == Rate(7, 9)
    assert total.rates()["6a_occupation"] == Rate(7, 9)
    assert total.employed == 16  # 6 + 1 + 2 + 3 + 4: 5b does not depend on E4b


async def test_occupation_and_the_new_breakdowns_on_a_hand_counted_seed(db: Database) -> None:
    schools = (await occupation_seed.seed(db)).schools

    # Total: 26 respondents of 28 completers (K09, K10 did not answer).
    # Employed (employed, self-employed, working and studying): COOK 6 (K01-K06), COOKBBL 5,
    # ADM 4, GEN 2, ELEC 3 = 20.
    # Occupation, answered by the employed of a programme that declares groups: COOK 5
    # (K01-K05; K06 has no E4b), COOKBBL 5, ADM 4, ELEC 3 (GEN declares none) = 17;
    # in a declared group: COOK 4 (not K04, isco9), COOKBBL 4 (not W04, isco4), ADM 2
    # (D01, D02), ELEC 2 (E01 isco7, E02 isco8) = 12.
    (total,) = (await m12(db, "total")).values()
    assert (total.respondents, total.completers, total.employed) == (26, 28, 20)
    assert (total.occupation_yes, total.occupation_answered) == (12, 17)
    assert shown(total.i6a_occupation) == (12, 17)
    assert shown(total.rates("completers")["6a_occupation"]) == (12, 28)
    assert shown(total.i6a) is None and total.related_answered == 0  # E6 was not asked here

    # Pathway: school-based COOK + ADM (14 respondents of 16, occupation 4 + 2 of 5 + 4);
    # work-based COOKBBL + ELEC (9 of 9, occupation 4 + 2 of 5 + 3); not declared GEN (3).
    pathway = await m12(db, "pathway")
    assert set(pathway) == {"school_based", "work_based", "unknown"}
    school_based, work_based = pathway["school_based"], pathway["work_based"]
    assert (school_based.respondents, school_based.completers) == (14, 16)
    assert shown(school_based.i6a_occupation) == (6, 9)
    assert (work_based.respondents, work_based.completers) == (9, 9)
    assert shown(work_based.i6a_occupation) == (6, 8)
    assert shown(work_based.i5b) == (8, 9)  # W01-W05 and E01-E03 employed, E04 other
    unknown = pathway["unknown"]
    assert unknown.respondents == 3 and unknown.response_rate.suppressed  # 3 of 3: hidden

    # VET kind: IVET COOK + COOKBBL + ELEC (17 respondents of 19, occupation 4+4+2 of 5+5+3);
    # CVET ADM (6 of 6, occupation 2 of 4: both under five, hidden).
    kind = await m12(db, "vet_kind")
    assert (kind["ivet"].respondents, kind["ivet"].completers) == (17, 19)
    assert shown(kind["ivet"].i6a_occupation) == (10, 13)
    assert kind["cvet"].respondents == 6
    assert kind["cvet"].i6a_occupation == Rate(2, 4) and kind["cvet"].i6a_occupation.suppressed

    # School: alfa COOK + COOKBBL (13 of 15; employed 6 + 5 = 11; occupation 8 of 10);
    # beta ADM + GEN (9 of 9; employed 4 + 2 = 6; occupation 2 of 4, hidden);
    # gamma ELEC (4 respondents: hidden, and every rate over them).
    by_school = await m12(db, "school")
    alfa, beta, gamma = (by_school[schools[code]] for code in ("alfa", "beta", "gamma"))
    assert (alfa.respondents, alfa.completers) == (13, 15)
    assert shown(alfa.i5b) == (11, 13) and shown(alfa.i6a_occupation) == (8, 10)
    assert shown(beta.i5b) == (6, 9) and beta.i6a_occupation.suppressed
    assert gamma.respondents == 4 and gamma.i5b.suppressed and gamma.response_rate.suppressed

    # Country: NL alfa + gamma (17 of 19, occupation 8 + 2 of 10 + 3); ES beta (9 of 9).
    country = await m12(db, "country")
    assert set(country) == {"NL", "ES"}
    assert (country["NL"].respondents, country["NL"].completers) == (17, 19)
    assert shown(country["NL"].i6a_occupation) == (10, 13)
    assert country["ES"].respondents == 9 and country["ES"].i6a_occupation.suppressed

    # A questionnaire without an occupation question: the other figures as before, no 6a
    # occupation figure.
    plain_spec = replace(SPEC, occupation=None, occupation_groups={})
    report = await build_report(db, PLANS, {"tracking": plain_spec}, Scope())
    (plain,) = report.wave_indicators("m12", "total").values()
    assert (plain.respondents, plain.employed, plain.occupation_answered) == (26, 20, 0)

    # One school's report has only that school and country in them.
    only = Scope(institution_id=schools["alfa"])
    assert list(await m12(db, "school", only)) == [schools["alfa"]]
    assert list(await m12(db, "country", only)) == ["NL"]
    assert shown((await m12(db, "total", only))["total"].i6a_occupation) == (8, 10)


def _row_cells(html: str, label: str) -> dict[str, str]:
    """The cells of the first table row headed `label` (the table over respondents comes
    before the one over completers)."""
    found = re.search(rf'<th scope="row">{re.escape(label)}</th>(.*?)</tr>', html, re.S)
    assert found, (label, html)
    return dict(re.findall(r'data-key="(\w+)">([^<]*)<', found.group(1)))


async def _pages(
    h: Harness, web: str, role: str, programmes: tuple[int, ...] = ()
) -> tuple[str, str, list[dict[str, str]], list[str]]:
    """The overview, the m12 wave page, the indicator export and the pages of `programmes`,
    as `role` sees them."""
    user = h.user("en")
    await add_staff(h.db, user.id, role, school_code="alfa" if role == "officer" else None)
    async with client_session() as client:
        await log_in(h, client, user)
        async with client.get(f"{web}/dashboard") as page:
            overview = (await page.text()).replace("\xa0", " ")
        async with client.get(f"{web}/dashboard/waves/m12") as page:
            wave = (await page.text()).replace("\xa0", " ")
        async with client.get(f"{web}/dashboard/exports/indicators.csv") as download:
            assert download.status == 200
            text = (await download.read()).decode("utf-8-sig")
        pages = []
        for programme in programmes:
            async with client.get(f"{web}/dashboard/programmes/{programme}") as page:
                pages.append(await page.text())
    exported = [r for r in csv.DictReader(io.StringIO(text)) if r["wave"] == "m12"]
    return overview, wave, exported, pages


async def test_the_dashboard_and_the_export_show_the_occupation_and_the_breakdowns(
    harness: Harness, web: str
) -> None:
    """An admin (all schools) sees 6a in the occupation trained for beside perceived related,
    and the breakdowns by pathway, VET kind, school and country (small groups hidden); an
    officer of alfa sees alfa's figures, without the school and country breakdowns."""
    h = harness
    h.clock.set(datetime(2026, 8, 1, 9, 0, tzinfo=UTC))  # m12 has opened for 2025-06-30
    seeded = await occupation_seed.seed(h.db)
    ids = (seeded.programmes["COOK"], seeded.programmes["GEN"])
    overview, wave, exported, (cook, general) = await _pages(h, web, "admin", ids)

    # The reporting table: 12 of the 17 employed who answered E4b in a programme that
    # declares groups (70.6 %); 12 of the 28 completers (42.9 %).
    table = re.search(r'<table class="numbers" id="eqavet">.*?</table>', overview, re.S)
    assert table, overview
    occupation = re.search(r'<tr data-indicator="6a_occupation">(.*?)</tr>', table.group(0), re.S)
    assert occupation, table.group(0)
    cells = dict(re.findall(r'data-key="(\w+)">([^<]*)<', occupation.group(1)))
    assert "6a · Working in the occupation trained for" in occupation.group(1)
    assert (cells["respondents_share"], cells["counted_over"]) == ("70.6%", "17")
    assert cells["completers_share"] == "42.9%"
    assert '<tr data-indicator="6a">' in table.group(0)  # perceived related stays beside it

    # The wave page's breakdowns (over respondents): NL 10 of 13 (76.9 %), ES 2 of 4 hidden;
    # school-based 6 of 9 (66.7 %), work-based 6 of 8 (75.0 %); gamma's 4 respondents hidden.
    for title in ("School-based or work-based", "Initial or continuing VET", "School", "Country"):
        assert f"<h3>{title}</h3>" in wave
    assert _row_cells(wave, "Netherlands")["respondents"] == "17"
    assert _row_cells(wave, "Netherlands")["6a_occupation"] == "76.9%"
    assert _row_cells(wave, "Spain")["6a_occupation"] == "–"
    assert _row_cells(wave, "School-based (e.g. BOL)")["6a_occupation"] == "66.7%"
    assert _row_cells(wave, "Work-based (e.g. BBL, apprenticeship)")["6a_occupation"] == "75.0%"
    assert _row_cells(wave, "Gamma ROC")["respondents"] == "&lt;5"
    assert _row_cells(wave, "Continuing VET (CVET)")["6a_occupation"] == "–"

    # A programme's page says what it declares.
    assert "Trains for the ISCO-08 major groups 5." in cook
    assert "School-based (e.g. BOL) · Initial VET (IVET)" in cook
    assert "No ISCO-08 major groups declared" in general

    rows = {(r["breakdown"], r["group"]): r for r in exported}
    assert rows[("total", "All respondents")]["6a_occupation_pct"] == "70.6"
    assert rows[("total", "All respondents")]["6a_occupation_of_completers_pct"] == "42.9"
    assert rows[("country", "Netherlands")]["6a_occupation_pct"] == "76.9"
    assert rows[("country", "Spain")]["6a_occupation_pct"] == "<5"
    assert rows[("school", "Gamma ROC")]["respondents"] == "<5"
    assert rows[("pathway", "Not declared")]["respondents"] == "<5"  # GEN's 3
    assert rows[("vet_kind", "Initial VET (IVET)")]["6a_occupation_pct"] == "76.9"  # 10 / 13

    # An officer of alfa: alfa's 8 of 10 (80.0 %); no school or country breakdown.
    overview, wave, exported, _ = await _pages(h, web, "officer")
    table = re.search(r'<tr data-indicator="6a_occupation">(.*?)</tr>', overview, re.S)
    assert table and 'data-key="respondents_share">80.0%<' in table.group(1)
    assert "<h3>Country</h3>" not in wave and "<h3>School</h3>" not in wave
    assert "<h3>School-based or work-based</h3>" in wave
    assert {r["breakdown"] for r in exported} == {
        "total",
        "programme",
        "eqf",
        "gender",
        "age_band",
        "pathway",
        "vet_kind",
    }


# ---------------------------------------------------------------- the question and its spec


def test_e4b_asks_everyone_in_block_e_for_one_of_the_ten_isco_major_groups() -> None:
    tracking = load_questionnaire(QUESTIONNAIRES / "tracking.yaml")
    question = tracking.question("E4b")
    names = [q.name for q in tracking.questions]
    assert names.index("E4b") == names.index("E4") + 1  # right after the typed job title
    assert question.type == "select_one" and question.required
    codes = [c.name for c in tracking.choices_for(question)]
    assert codes == [f"isco{g}" for g in "1234567890"]
    # Each code counts as its own ISCO-08 major group.
    assert dict(SPEC.occupation_groups) == {f"isco{g}": g for g in "1234567890"}
    for choice in tracking.choices_for(question):
        for lang in ("en", "nl", "es", "et", "it"):
            label = str(choice.labels[lang])
            assert 0 < len(label) <= 40, (choice.name, lang, label)  # a phone button
    # Asked of the employed, the self-employed and the working students, of no one else.
    for activity in ("employed", "self_employed", "working_and_studying"):
        assert engine.is_relevant(tracking, question, {"C0": "yes", "Q1": activity})
    for activity in ("studying", "unemployed_looking", "not_available", "other"):
        assert not engine.is_relevant(tracking, question, {"C0": "yes", "Q1": activity})


def test_the_occupation_spec_is_checked_against_the_questionnaire() -> None:
    tracking = load_questionnaire(QUESTIONNAIRES / "tracking.yaml")
    assert check_spec(SPEC, tracking) == []
    assert check_spec(replace(SPEC, occupation="E4"), tracking) == [
        "tracking: E4 must be a select_one question"
    ]
    renamed = replace(SPEC, occupation_groups={**SPEC.occupation_groups, "isco10": "1"})
    assert check_spec(renamed, tracking) == ["tracking: E4b has no choice isco10"]
    # Without an occupation entry the figure is simply not computed.
    text = DEFAULT_SPEC_FILE.read_text(encoding="utf-8")
    start = text.index("  occupation:\n")
    end = text.index("\n", text.index("    groups:", start)) + 1
    without = parse_specs(text[:start] + text[end:])["tracking"]
    assert without.occupation is None and without.questions.occupation is None
    for old, new, message in (
        (
            "groups: {isco1: 1,",
            "groups: {isco1: 11,",
            "occupation.groups.isco1: 11 is not an ISCO-08 major group",
        ),
        ("groups: {isco1: 1,", "groups: {isco1: true,", "occupation.groups.isco1: True is not"),
        (
            "  occupation:\n",
            "  occupation: E4b\n  unused:\n",
            "tracking: occupation must be a mapping (question, groups)",
        ),
    ):
        assert old in text
        with pytest.raises(IndicatorSpecError, match=re.escape(message)):
            parse_specs(text.replace(old, new, 1))


def test_questionnaire_check_compares_the_questionnaire_with_indicators_yaml(
    tmp_path: Path,
) -> None:
    """A school that renames E4b in its copy of the questionnaire hears that indicators.yaml
    no longer fits it, and the check fails."""
    tracking = QUESTIONNAIRES / "tracking.yaml"
    fits = _cli("questionnaire", "check", str(tracking))
    assert fits.returncode == 0 and fits.stdout.rstrip().endswith("OK"), fits.stderr
    renamed = tmp_path / "tracking.yaml"
    renamed.write_text(
        tracking.read_text(encoding="utf-8").replace("name: E4b", "name: E4c", 1), encoding="utf-8"
    )
    refused = _cli("questionnaire", "check", str(renamed))
    assert refused.returncode == 1
    assert "indicators do not fit" in refused.stdout
    assert (
        f"{renamed}: conversations/indicators.yaml: tracking: the questionnaire has no question "
        "E4b" in refused.stderr
    )
