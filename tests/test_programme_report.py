"""The programme report's figures (issue 18) against the hand-counted data set of
tests/report_seed.py (tests/stats_seed.py with its m12 wave, P1's class of 2024 and a few
comments), on SQLite and PostgreSQL; and the same report as a PDF, rendered to images with
pdftoppm and read back with pdftotext (Debian's poppler-utils: `make test` installs it).

The report is of alfa's P1 on 2026-12-03 (every wave has opened for the classes of 2024 and
2025; for 2026 only pregrad and m2). Comments show the counting."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import select

from bot import i18n
from bot.web import dashboard
from bot.web.programme_report import (
    ProgrammeReport,
    WaveSection,
    build_programme_report,
    change_text,
    page_values,
)
from bot.web.report_pdf import render_pdf
from conversations.indicators import Rate, load_specs
from conversations.programme_report import change, suppress_within
from conversations.registry import QuestionnaireRegistry
from conversations.waves import load_plans
from storage.db import Database
from storage.models import Programme
from tests.databases import in_ci
from tests.report_seed import COMMENTS_2024, M6_COMMENT, M12_COMMENT, seed_report

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
Fraction = tuple[int, int] | None


def shown(rate: Rate | None) -> Fraction:
    """A rate as the reader sees it: (numerator, denominator), None when not shown."""
    if rate is None or rate.value is None:
        return None
    return (rate.numerator, rate.denominator)


async def p1_report(
    db: Database, *, all_schools: bool, cohort: int | None = None
) -> ProgrammeReport:
    seeded = await seed_report(db)
    async with db.session() as session:
        programme = await session.get(Programme, seeded.programmes["P1"])
    assert programme is not None
    with i18n.use_language("en"):
        return await build_programme_report(
            db,
            load_plans(),
            load_specs(),
            QuestionnaireRegistry(),
            programme,
            cohort=cohort,
            all_schools=all_schools,
            now=NOW,
        )


def section(report: ProgrammeReport, wave: str) -> WaveSection:
    return next(s for s in report.sections if s.wave.name == wave)


def compared(s: WaveSection, key: str) -> tuple[Fraction, Fraction, Fraction]:
    figures = next(f for k, _label, f in s.compared() if k == key)
    return shown(figures.programme), shown(figures.school), shown(figures.all_schools)


def question(
    s: WaveSection, name: str
) -> dict[str, tuple[int | None, Fraction, Fraction, Fraction]]:
    table = next(t for t in s.questions if t.name == name)
    return {
        line.label: (line.count, shown(line.share), shown(line.school), shown(line.all_schools))
        for line in table.lines
    }


def the_change(
    report: ProgrammeReport, key: str, wave: str
) -> list[tuple[int, Fraction, float | None]]:
    trend = next(t for t in report.trends if t.key == key and t.wave == wave)
    return [
        (p.cohort, shown(p.rate), round(p.change, 1) if p.change is not None else None)
        for p in trend.points
    ]


async def test_the_report_of_a_programme_counted_by_hand(db: Database) -> None:
    report = await p1_report(db, all_schools=True)
    assert report.school.name == "Alfa College" and report.programme.code == "P1"
    assert report.cohorts == [2024, 2025, 2026]
    with i18n.use_language("en"):
        assert report.period == "Graduates of 2024–2026, as of Dec 3, 2026"
    assert [s.wave.name for s in report.sections] == ["pregrad", "m2", "m6", "m12"]

    # Response rates (completed / graduates the wave has opened for), beside alfa and all:
    # m2: P1 2024 12 of 14, 2025 12 of 18, 2026 0 of 4 -> 24 of 36; alfa adds P2 (5 of 8 + 3
    # of 2026) -> 29 of 47; all add P3 (6 of 11 + 11 of 2026) -> 35 of 69.
    m2 = section(report, "m2")
    assert compared(m2, "response_rate") == ((24, 36), (29, 47), (35, 69))
    # m12 (opened for 2024 and 2025 only): 11 of 14 + 18 = 32; alfa's P2 8 more; all + P3 11.
    m12 = section(report, "m12")
    assert compared(m12, "response_rate") == ((11, 32), (11, 40), (11, 51))

    # 5b at m2: 2025 11 (5 employed, 1 self-employed, 5 working and studying) + 2024 5 = 16
    # of 24; alfa + P2's 1 employed = 17 of 29; all + P3's employed, self-employed and
    # working-and-studying = 20 of 35.
    assert compared(m2, "5b") == ((16, 24), (17, 29), (20, 35))
    # Over completers: 16 of P1's 36 m2 completers.
    assert shown(m2.indicators.rates("completers")["5b"]) == (16, 36)
    # 5a at m2, P1: employed 5 + 5 = 10; studying 7 (2024); working and studying 5; self-
    # employed 1 and looking 1 are inside "employed" (self) and "looking" (1: hidden).
    assert compared(m2, "5a_employed")[0] == (11, 24)  # employed + self-employed: 10 + 1
    assert compared(m2, "5a_looking_for_work")[0] is None  # 1 person (A12)
    # 6b1 at m12: 7 of the 10 who answered A8 (stats_seed's M12_ROWS); nobody else has m12.
    assert compared(m12, "6b1") == ((7, 10), (7, 10), (7, 10))

    # The closed questions at m2. Q1, single choice over 24: employed 10, self-employed 1,
    # studying 7, working and studying 5, looking 1, not available 0, other 0. Self-employed
    # and looking are hidden (1 each); then, as 5a and 5b publish sums of these codes:
    # - 5a "employed" = employed + self-employed (11): employed too (10 would give 1);
    # - its complement (13) = studying + working and studying + looking: working and
    #   studying (5, the smallest) too;
    # - 5b's complement (24 - 16 = 8) = studying + looking: studying too.
    # Only the zeros are left. alfa (29: employed 11, self 1, studying 10, working and
    # studying 5, looking 2) goes the same way. All schools (35: employed 12, self 2,
    # studying 12, working and studying 6, looking 2, other 1): self, looking and other are
    # hidden, employed with self (5a), and no group is left with one hidden code: studying
    # 12 and working and studying 6 stay.
    q1 = question(m2, "Q1")
    assert q1["I work for an employer"] == (None, None, None, None)
    assert q1["I'm self-employed (zzp) / freelance"] == (None, None, None, None)
    assert q1["I'm studying"] == (None, None, None, (12, 35))
    assert q1["I'm working and studying"] == (None, None, None, (6, 35))
    assert q1["I'm looking for work"] == (None, None, None, None)
    assert q1["Something else"] == (0, (0, 24), (0, 29), None)  # 0 shown; all schools: 1
    # E6 (the employed: 2025 11, 2024 5 = 16): completely 6 + 5 = 11, partly 2, not at all
    # 3: partly and not at all hidden, and completely too, as 6a publishes completely +
    # partly (13 of 16).
    e6 = question(m2, "E6")
    assert e6["Completely"][:2] == (None, None)
    assert e6["Partly"][:2] == (None, None) and e6["Not at all"][:2] == (None, None)
    # At m12 (11 respondents): E1 "less than a month after" 7 of the 7 employed.
    assert question(m12, "E1")["Less than 1 month after"][:2] == (7, (7, 7))
    # The labels are the school's country's (alfa is Dutch: "zzp" above).
    # At m6, 2 respondents: every count and share hidden, the comments too.
    m6 = section(report, "m6")
    assert next(t for t in m6.questions if t.name == "Q1").answered is None
    assert question(m6, "Q1")["I work for an employer"][:2] == (None, None)
    assert m6.comments_hidden and not m6.comments

    # A8 at m12 (scale 1-5): 1, 2, 3 once, 4 three times, 5 four times: all under five, so
    # every count is hidden; the median of 1 2 3 4 4 4 5 5 5 5 is 4, shown (10 answered).
    a8 = next(t for t in m12.questions if t.name == "A8")
    assert a8.answered == 10 and a8.median == 4.0 and a8.school_median == 4.0
    assert [line.count for line in a8.lines] == [None] * 5
    # U1 (months looking; A12 only at m2): one answer, no median.
    u1 = next(t for t in m2.questions if t.name == "U1")
    assert u1.answered is None and u1.median is None
    # A7, several answers (2024's Y01-Y06): guest lesson 3 (hidden), mentor 5 of 6, no
    # thanks 1 (hidden): counts of their own, primary suppression only.
    a7 = question(m2, "A7")
    assert a7["Give a guest lesson"][:2] == (None, None)
    assert a7["Mentor a student"][:2] == (5, (5, 6))
    assert a7["No, thanks"][:2] == (None, None)
    assert a7["Host an intern at my work"][:2] == (0, (0, 6))
    # Questions nobody of P1 answered in a wave are named, not tabled.
    assert "S2" in m2.unanswered and "S2" not in [t.name for t in m2.questions]

    # Comments at m2 (24 respondents): the three of 2024, newest first, with the routing
    # answer beside them; no name.
    (a4,) = m2.comments
    assert a4.question == "A4"
    assert [(c.text, c.activity) for c in a4.comments] == [
        (COMMENTS_2024["Y06"], "I'm studying"),
        (COMMENTS_2024["Y02"], "I work for an employer"),
        (COMMENTS_2024["Y01"], "I work for an employer"),
    ]
    assert [c.text for group in m12.comments for c in group.comments] == [M12_COMMENT]
    assert M6_COMMENT not in str(report.sections)
    assert "Graduate Y01" not in str(report) and "Graduate A02" not in str(report)


async def test_trends_show_a_change_only_when_it_rests_on_five_people(db: Database) -> None:
    report = await p1_report(db, all_schools=False)
    # Response rate at m2: 2024 12 of 14 (85.7 %), 2025 12 of 18 (66.7 %): the drop is
    # 19.0 points of 18 graduates = 3.4 people: not shown as a change; 2026 0 of 4: hidden.
    assert the_change(report, "response_rate", "m2") == [
        (2024, (12, 14), None),
        (2025, (12, 18), None),
        (2026, None, None),
    ]
    # 5b at m2: 2024 5 of 12 (41.7 %), 2025 11 of 12 (91.7 %): +50 points of 12 = 6 people.
    # 2026 has no respondent (0 of 0: no figure, no change).
    assert the_change(report, "5b", "m2") == [
        (2024, (5, 12), None),
        (2025, (11, 12), 50.0),
        (2026, None, None),
    ]
    # Use of skills: 2024 5 of 5, 2025 6 of 11: -45.5 points of 11 = exactly 5 people: shown.
    assert the_change(report, "use", "m2")[:2] == [(2024, (5, 5), None), (2025, (6, 11), -45.5)]
    # 6a: 2024 5 of 5, 2025 8 of 11: 3 people: not a change.
    assert the_change(report, "6a", "m2")[:2] == [(2024, (5, 5), None), (2025, (8, 11), None)]
    # m12, opened for 2024 (none answered: 0 of 14) and 2025 (11 of 18): +61.1 points.
    assert the_change(report, "response_rate", "m12") == [
        (2024, (0, 14), None),
        (2025, (11, 18), 61.1),
    ]
    with i18n.use_language("en"):
        assert change_text(50.0) == "+50.0 points" and change_text(None) == "–"
    # An officer's report has no "all schools" column.
    assert not report.with_all_schools
    assert compared(section(report, "m2"), "response_rate")[2] is None


def test_a_change_resting_on_fewer_than_five_people_is_not_a_change() -> None:
    assert change(Rate(5, 10), Rate(10, 10)) == 50.0  # 5 people of 10
    assert change(Rate(5, 10), Rate(9, 10)) is None  # 4 people
    assert change(Rate(0, 3), Rate(5, 5)) is None  # the earlier figure is hidden
    assert change(Rate(20, 100), Rate(24, 100)) is None  # 4 points of 100 = 4 people
    assert change(Rate(20, 100), Rate(25, 100)) == pytest.approx(5.0)


async def test_the_page_renders_the_report_in_every_language(db: Database) -> None:
    """programme_report.html with the dashboard's templates, as the page renders it (a
    question with several answers, suppressed cells, comments escaped), in each language."""
    report = await p1_report(db, all_schools=True)
    env = dashboard._environment()
    for lang in i18n.LANGUAGES:
        with i18n.use_language(lang):
            html = env.get_template("programme_report.html").render(
                session=None, lang=lang, path="/", **page_values(report, "")
            )
        assert "Alfa College" in html and 'data-question="A7"' in html
        assert "Teach &lt;b&gt;Git&lt;/b&gt; earlier &amp; better" in html
        assert "<b>Git</b>" not in html and M6_COMMENT not in html
        assert html.count("<svg") == len(report.trends)
    assert "Opleidingsrapport" not in html  # the last language is not Dutch


def test_one_hidden_code_in_a_published_group_hides_another() -> None:
    """5a publishes employed + self-employed: with self-employed hidden, employed goes too;
    studying, alone in the complement with nothing hidden, stays."""
    counts = {"employed": 10, "self_employed": 1, "studying": 7}
    shown = {"employed": 10, "self_employed": None, "studying": 7}
    group = frozenset({"employed", "self_employed"})
    assert suppress_within(counts, shown, [group]) == {
        "employed": None,
        "self_employed": None,
        "studying": 7,
    }
    # With a zero beside the hidden one, nothing more can be had: unchanged.
    assert suppress_within({"a": 0, "b": 2}, {"a": 0, "b": None}, [frozenset("ab")]) == {
        "a": 0,
        "b": None,
    }


async def test_a_cohort_filter_narrows_the_figures_but_not_the_trends(db: Database) -> None:
    report = await p1_report(db, all_schools=False, cohort=2024)
    with i18n.use_language("en"):
        assert report.period.startswith("Graduates of 2024,")
    # m2 of the class of 2024 only: 12 of 14; alfa's 2024 is P1's (P2 has no 2024 class).
    assert compared(section(report, "m2"), "response_rate")[:2] == ((12, 14), (12, 14))
    assert [p.cohort for p in next(t for t in report.trends if t.wave == "m2").points] == [
        2024,
        2025,
        2026,
    ]


@pytest.fixture
def poppler() -> None:
    """Debian's poppler-utils (`make test` installs it); missing: skipped, or failed in CI."""
    if not (shutil.which("pdftoppm") and shutil.which("pdftotext")):
        message = "pdftoppm/pdftotext missing: `make test` installs Debian's poppler-utils"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.usefixtures("poppler")
async def test_the_pdf_has_the_school_the_programme_the_period_and_the_figures(
    db: Database, tmp_path: Path
) -> None:
    """Rendered to PNG with pdftoppm: A4 pages that are not blank; the text layer
    (pdftotext) holds the school's name, the programme, the period and a figure (P1's m2
    response rate, 24 of 36 = 66.7 %), in the reader's language (Dutch: 66,7%)."""
    report = await p1_report(db, all_schools=True)
    with i18n.use_language("nl"):
        pdf = render_pdf(report)
        period = report.period
    assert pdf.startswith(b"%PDF")
    pages, text = await asyncio.to_thread(_render, pdf, tmp_path)
    assert len(pages) >= 2
    with Image.open(pages[0]) as first:
        assert first.format == "PNG"
        assert round(first.height / first.width, 2) == round(297 / 210, 2)  # A4 portrait
    assert _ink(pages[0]) > 0.01  # not blank
    assert "Alfa College" in text and "P1 · Software developer" in text
    assert period in text and "2024–2026" in text
    assert "66,7%" in text  # m2 response rate, in Dutch
    assert "Opleidingsrapport" in text  # the title, in Dutch
    assert COMMENTS_2024["Y02"] in text and M6_COMMENT not in text
    assert "Graduate Y01" not in text


def _render(pdf: bytes, folder: Path) -> tuple[list[Path], str]:
    """Every page of `pdf` as a PNG (pdftoppm), and its text layer (pdftotext)."""
    path = folder / "report.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(folder / "page")], check=True)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    return sorted(folder.glob("page-*.png")), text


def _ink(png: Path) -> float:
    """The share of the page's pixels that are not near white."""
    with Image.open(png) as image:
        grey = image.convert("L")
        histogram = grey.histogram()
        return sum(histogram[:200]) / (grey.width * grey.height)


async def test_a_programme_without_graduates_has_an_empty_report_page_and_pdf(
    db: Database,
) -> None:
    """A programme just added: no wave, no trend; the period says there are no graduates
    yet; the page and the PDF are made all the same."""
    seeded = await seed_report(db)
    async with db.session() as session:
        empty = Programme(institution_id=seeded.alfa, code="P9", name="New programme")
        session.add(empty)
    async with db.session() as session:
        programme = (await session.exec(select(Programme).where(Programme.code == "P9"))).one()
    with i18n.use_language("et"):
        report = await build_programme_report(
            db,
            load_plans(),
            load_specs(),
            QuestionnaireRegistry(),
            programme,
            cohort=None,
            all_schools=False,
            now=NOW,
        )
        assert report.sections == [] and report.trends == []
        assert report.period == "Nimekirjas pole veel lõpetajaid, seisuga 3. dets 2026"
        html = (
            dashboard._environment()
            .get_template("programme_report.html")
            .render(session=None, lang="et", path="/", **page_values(report, ""))
        )
        assert report.period in html and "P9 · New programme" in html
        assert render_pdf(report).startswith(b"%PDF")
