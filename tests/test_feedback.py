"""The programme's comments and its expectations table (issue 18): against the hand-counted
seed (tests/feedback_seed.py), over storage and over HTTP, with tagging through the forms,
on SQLite and PostgreSQL. (tests/test_feedback_browser.py: the pages in Chromium.)"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import col, select

from bot.reporting import count_text
from conversations.feedback import (
    DESTINATIONS,
    PLAN_ROWS,
    TOTAL,
    Grid,
    check_feedback,
    default_feedback,
    expectation_grids,
    parse_feedback,
    theme_key,
    theme_name,
)
from conversations.indicators import IndicatorSpecError, default_specs
from conversations.questionnaire import load_questionnaire
from storage import feedback
from storage.db import Database
from storage.demo import DEMO_COMMENTS, ensure_demo
from storage.erasure import REASON_REQUEST, erase_graduate, retention_sweep
from storage.models import CommentTag, Graduate, Institution, Programme
from storage.staff import add_staff
from storage.stats import Scope
from tests import feedback_seed
from tests.feedback_seed import COMMENTS, EXPECTED_M12, NOT_SHOWN
from tests.harness import Harness, tr
from tests.test_cli import _cli
from tests.test_dashboard import client_session, log_in

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
QUESTIONNAIRES = "conversations/questionnaires"


def shown_counts(grid: Grid) -> dict[str, dict[str, str]]:
    """The grid as the page shows it, without the all-zero columns."""
    shown = grid.shown()
    keep = ("employed", "studying", "looking_for_work", TOTAL)
    return {
        plan: {d: count_text(shown[(plan, d)]) for d in keep}
        for plan in (*PLAN_ROWS, TOTAL)
        if plan in EXPECTED_M12
    }


async def _grids(db: Database, scope: Scope) -> dict[str | None, Grid]:
    spec = default_feedback()["tracking"]
    indicators = default_specs()["tracking"]
    async with db.session() as session:
        rows = await feedback.plan_rows(session, scope, spec, indicators.activity, NOW)
    return expectation_grids(rows, spec, indicators)


async def test_the_expectations_table_against_the_hand_counted_seed(db: Database) -> None:
    seeded = await feedback_seed.seed(db)
    grids = await _grids(db, Scope(seeded.alfa, seeded.p1))
    m12 = grids["m12"]
    assert m12.respondents == 28
    counts = {(p, d): m12.cell(p, d) for p in PLAN_ROWS for d in DESTINATIONS if m12.cell(p, d)}
    assert counts == {
        ("work", "employed"): 8,
        ("work", "studying"): 1,
        ("work", "looking_for_work"): 5,
        ("study", "employed"): 2,
        ("study", "studying"): 6,
        ("not_sure", "looking_for_work"): 5,
        ("none", "employed"): 1,
    }
    assert shown_counts(m12) == EXPECTED_M12
    shares = m12.shares()
    work_employed = shares[("work", "employed")]
    assert work_employed is not None and work_employed.value == pytest.approx(8 / 14)
    assert shares[("work", "studying")] is None
    m2 = grids["m2"]
    assert m2.respondents == 6 and m2.cell("work", "employed") == 6
    # The cohort and the programme narrow it: P2 has 4, the class of 2026 nobody.
    assert (await _grids(db, Scope(seeded.alfa, seeded.p2)))["m12"].respondents == 4
    assert await _grids(db, Scope(seeded.alfa, seeded.p1, 2026)) == {}


def test_a_single_hidden_number_in_a_row_or_column_takes_another_with_it() -> None:
    """work: 12 employed, 3 looking; study: 9 studying, 4 looking. The totals per destination
    (12, 9, 7: the 5a counts) are shown on the programme page, so they stay; 3 and 4 are
    small; 12 goes with 3 (row work) and 9 with 4 (row study); then column employed would
    hold 12 alone beside its shown total, so study's 0 there is hidden too, and work's 0 in
    column studying."""
    grid = Grid()
    grid.add("work", "employed", 12)
    grid.add("work", "looking_for_work", 3)
    grid.add("study", "studying", 9)
    grid.add("study", "looking_for_work", 4)
    shown = grid.shown()
    hidden = {key for key, n in shown.items() if n is None}
    assert hidden == {
        ("work", "employed"),
        ("work", "studying"),
        ("work", "looking_for_work"),
        ("study", "employed"),
        ("study", "studying"),
        ("study", "looking_for_work"),
    }
    assert [shown[(p, TOTAL)] for p in ("work", "study", TOTAL)] == [15, 13, 28]
    assert [shown[(TOTAL, d)] for d in ("employed", "studying", "looking_for_work")] == [12, 9, 7]
    # No row or column is left with exactly one hidden number.
    columns = (*DESTINATIONS, TOTAL)
    for p in PLAN_ROWS:
        assert sum(shown[(p, d)] is None for d in columns) != 1, p
    for d in columns:
        assert sum(shown[(p, d)] is None for p in (*PLAN_ROWS, TOTAL)) != 1, d
    # The totals row is hidden as 5a is: 3 alone would be worked out from the rest.
    small = Grid()
    small.add("work", "employed", 20)
    small.add("study", "studying", 3)
    small.add("study", "employed", 6)
    assert small.shown()[(TOTAL, "studying")] is None
    assert small.shown()[(TOTAL, "employed")] is None
    big = Grid()
    big.add("work", "employed", 20)
    big.add("study", "studying", 7)
    assert all(v is not None for v in big.shown().values())


def test_the_deployed_comments_and_plans_fit_the_questionnaires() -> None:
    spec = default_feedback()["tracking"]
    tracking = load_questionnaire(f"{QUESTIONNAIRES}/tracking.yaml")
    pregrad = load_questionnaire(f"{QUESTIONNAIRES}/pregrad.yaml")
    assert spec.comments == ("A4",)
    assert check_feedback(spec, tracking, pregrad) == []
    wrong = parse_feedback(
        "tracking:\n  comments: [E3]\n  expectations:\n    questionnaire: pregrad\n"
        "    question: P1\n    plans: {work: [work, dream_job]}\n"
    )["tracking"]
    problems = check_feedback(wrong, tracking, pregrad)
    assert "tracking: comments: E3 is not a text question" in problems
    assert "tracking: expectations: P1 has no choice dream_job" in problems
    assert "tracking: expectations: P1 has choice not_sure in no plan group" in problems
    with pytest.raises(IndicatorSpecError, match="unknown plan group 'someday'"):
        parse_feedback("tracking:\n  expectations: {question: P1, plans: {someday: [x]}}\n")


def test_theme_names_are_tidied_and_compared_without_case() -> None:
    assert theme_name("  work   placement ") == "work placement"
    assert theme_name("") is None and theme_name("   ") is None
    assert theme_name("x" * 61) is None and theme_name("x" * 60) == "x" * 60
    assert theme_name("tab\u0000") is None and theme_name(None) is None
    assert theme_key("Teachers") == theme_key("TEACHERS")


async def test_comments_newest_first_with_their_routing_answers_and_tags(db: Database) -> None:
    seeded = await feedback_seed.seed(db)
    spec = default_feedback()["tracking"]
    async with db.session() as session:
        await feedback.add_tag(session, seeded.alfa, seeded.responses["G09/m12"], "A4", "Stage")
        await feedback.add_tag(session, seeded.alfa, seeded.responses["G01/m12"], "A4", "stage")
        found = await feedback.comments(
            session, Scope(seeded.alfa, seeded.p1), spec, "Q1", None, NOW
        )
        themes = await feedback.school_themes(session, seeded.alfa)
        m2 = await feedback.comments(session, Scope(seeded.alfa, seeded.p1), spec, "Q1", "m2", NOW)
        assert await feedback.respondents(session, Scope(seeded.alfa, seeded.p2), "tracking") == 4
    assert [c.text for c in found] == [text for _ref, _w, text, _at in COMMENTS]
    assert [(c.wave, c.cohort, c.activity) for c in found] == [
        ("m12", 2025, "studying"),
        ("m12", 2025, "unemployed_looking"),
        ("m12", 2025, "employed"),
        ("m2", 2025, "employed"),
    ]
    # One theme: the second spelling joins the first.
    assert [t.theme for t in found[1].tags] == ["Stage"] == [t.theme for t in found[2].tags]
    assert themes == ["Stage"]
    assert [c.text for c in m2] == [COMMENTS[3][2]]


async def test_erasing_a_graduate_deletes_their_comments_tags(db: Database) -> None:
    """/delete (erase_graduate) and the retention sweep delete the tags of the graduate's
    comments, and only theirs."""
    seeded = await feedback_seed.seed(db)
    async with db.session() as session:
        for ref in ("G09", "G15"):
            await feedback.add_tag(
                session, seeded.alfa, seeded.responses[f"{ref}/m12"], "A4", "teachers"
            )
    async with db.session() as session:
        graduate = await session.get(Graduate, seeded.graduates["G09"])
        assert graduate is not None
        await erase_graduate(session, graduate, now=NOW, reason=REASON_REQUEST)
    async with db.session() as session:
        left = (await session.exec(select(CommentTag.response_id))).all()
        spec = default_feedback()["tracking"]
        found = await feedback.comments(
            session, Scope(seeded.alfa, seeded.p1), spec, "Q1", None, NOW
        )
    assert left == [seeded.responses["G15/m12"]]
    assert "The work placement was too short." not in [c.text for c in found]
    # The retention period: everyone graduated in 2025, more than 12 months ago.
    assert await retention_sweep(db, now=NOW, retention_months=12) > 0
    async with db.session() as session:
        assert (await session.exec(select(CommentTag))).all() == []


# ---------------------------------------------------------------- over HTTP


def table_cells(html: str) -> dict[str, dict[str, str]]:
    """The expectations table as {plan: {destination: count}}."""
    table = re.search(r'<table class="numbers" id="expectations">.*?</table>', html, re.S)
    assert table, html
    return {
        plan: {
            key: count.replace("&lt;", "<")
            for key, count in re.findall(
                r'data-key="(\w+)"><span class="count">([^<]*(?:&lt;5)?)</span>', body
            )
        }
        for plan, body in re.findall(r'<tr data-plan="(\w+)">(.*?)</tr>', table.group(0), re.S)
    }


async def officer(
    h: Harness, school: str = "alfa", lang: str = "en", role: str = "officer"
) -> tuple[aiohttp.ClientSession, str]:
    """A logged-in client of a new officer (or admin) of `school`, and its CSRF token."""
    user = h.user(lang)
    await add_staff(h.db, user.id, role, school_code=school)
    client = client_session()
    return client, await log_in(h, client, user)


async def test_the_expectations_page_and_export_show_the_hand_counted_table(
    harness: Harness, web: str
) -> None:
    h = harness
    seeded = await feedback_seed.seed(h.db)
    client, _csrf = await officer(h)
    async with client:
        async with client.get(f"{web}/dashboard/programmes/{seeded.p1}") as page:
            assert f"/dashboard/programmes/{seeded.p1}/expectations" in await page.text()
        base = f"{web}/dashboard/programmes/{seeded.p1}/expectations"
        async with client.get(base) as page:  # m12: the wave 5a is reported from
            assert page.status == 200
            html = await page.text()
        async with client.get(f"{base}?wave=m2") as page:
            m2 = await page.text()
        async with client.get(f"{base}?wave=nope") as page:
            assert page.status == 404
        async with client.get(f"{web}/dashboard/exports/expectations.csv") as download:
            assert download.status == 200
            rows = list(csv.DictReader(io.StringIO((await download.read()).decode("utf-8-sig"))))
    cells = table_cells(html)
    for plan, expected in EXPECTED_M12.items():
        assert {k: cells[plan][k] for k in expected} == expected, plan
    assert cells["work"]["working_and_studying"] == "0"
    assert "57.1%" in re.search(r'<tr data-plan="work">.*?</tr>', html, re.S).group(0)  # type: ignore[union-attr]
    assert "Secret Name" not in html
    m2_cells = table_cells(m2)
    assert m2_cells["work"]["employed"] == "6" and m2_cells["total"]["total"] == "6"
    p1_m12 = {r["plan"]: r for r in rows if r["programme"] == "P1" and r["wave"] == "m12"}
    assert p1_m12["work"]["employed"] == "8" and p1_m12["work"]["employed_pct"] == "57.1"
    assert p1_m12["work"]["studying"] == "<5" and p1_m12["work"]["studying_pct"] == "<5"
    assert p1_m12["total"]["respondents"] == "28"
    assert {r["school"] for r in rows} == {"alfa"}  # beta is not the officer's


async def test_comments_newest_first_without_names_and_a_small_programme_shows_none(
    harness: Harness, web: str
) -> None:
    h = harness
    seeded = await feedback_seed.seed(h.db)
    client, _csrf = await officer(h, lang="nl", role="admin")
    async with client:
        async with client.get(f"{web}/dashboard/programmes/{seeded.p1}/comments") as page:
            assert page.status == 200
            html = await page.text()
        async with client.get(f"{web}/dashboard/programmes/{seeded.p1}/comments?wave=m2") as page:
            m2 = await page.text()
        async with client.get(f"{web}/dashboard/programmes/{seeded.p2}/comments") as page:
            small = await page.text()
        async with client.get(
            f"{web}/dashboard/programmes/{seeded.p1}/comments?cohort=2026"
        ) as page:  # nobody of the class of 2026 answered: nothing to show
            assert 'id="comments-hidden"' in await page.text()
    texts = re.findall(r"<blockquote>(.*?)</blockquote>", html, re.S)
    assert texts == [str(escape_html(text)) for _ref, _wave, text, _at in COMMENTS]
    assert "<b>bold</b>" not in html  # escaped
    for text in NOT_SHOWN:
        assert text not in html
    assert "Secret Name" not in html and "G15" not in html
    routing = re.findall(r'<dd data-key="(\w+)">([^<]*)</dd>', html)
    first = dict(routing[:4])
    assert first["activity"] == tr("nl", "In education or training")
    assert first["cohort"] == "2025"
    assert first["wave"] == "12 maanden na het afstuderen"  # in the officer's Dutch
    assert re.findall(r"<blockquote>(.*?)</blockquote>", m2) == [str(escape_html(COMMENTS[3][2]))]
    assert "Small group comment" not in small
    assert 'id="comments-hidden"' in small


def escape_html(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


async def _post(
    client: aiohttp.ClientSession, url: str, data: dict[str, object]
) -> tuple[int, str, str]:
    async with client.post(url, data=data) as response:
        return response.status, await response.text(), str(response.url)


async def _tags(h: Harness) -> list[tuple[int, str, str]]:
    async with h.db.session() as session:
        rows = await session.exec(
            select(CommentTag.response_id, CommentTag.question, CommentTag.theme).order_by(
                col(CommentTag.id)
            )
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def test_staff_tag_comments_through_the_forms(harness: Harness, web: str) -> None:
    """An administrator of alfa (Estonian) adds themes, a second spelling joins the first,
    counts per theme, filters by one, removes one; a bad theme gets the error in Estonian
    with what was typed kept; a wrong CSRF token, a comment of another programme or school, and a
    response that is no comment are refused, and nothing is stored."""
    h = harness
    seeded = await feedback_seed.seed(h.db)
    g09, g01 = seeded.responses["G09/m12"], seeded.responses["G01/m12"]
    page = f"{web}/dashboard/programmes/{seeded.p1}/comments"
    client, csrf = await officer(h, lang="et", role="admin")
    async with client:
        form = {"csrf": csrf, "question": "A4"}
        async with client.post(
            f"{page}/tag?wave=m12",
            data={**form, "response": g09, "theme": " Work  placement "},
            allow_redirects=False,
        ) as response:  # back to the comment, on the page as it was
            assert response.status == 303
            assert response.headers["Location"] == (
                f"/dashboard/programmes/{seeded.p1}/comments?wave=m12#c{g09}-A4"
            )
        await _post(client, f"{page}/tag", {**form, "response": g01, "theme": "WORK PLACEMENT"})
        await _post(client, f"{page}/tag", {**form, "response": g01, "theme": "teachers"})
        await _post(client, f"{page}/tag", {**form, "response": g01, "theme": "teachers"})
        assert await _tags(h) == [
            (g09, "A4", "Work placement"),
            (g01, "A4", "Work placement"),
            (g01, "A4", "teachers"),
        ]
        async with client.get(page) as response:
            html = await response.text()
        counts = dict(
            re.findall(r'<tr data-theme="([^"]+)">.*?data-key="count">(\d+)<', html, re.S)
        )
        assert counts == {"work placement": "2", "teachers": "1"}
        async with client.get(f"{page}?theme=teachers") as response:
            only = re.findall(r"<blockquote>(.*?)</blockquote>", await response.text())
        assert only == [COMMENTS[2][2]]

        # Bad input: the page again, with the error in Estonian and the text kept.
        for bad in ("", "   ", "x" * 61):
            status, html, _url = await _post(
                client, f"{page}/tag", {**form, "response": g09, "theme": bad}
            )
            assert status == 400
            assert (
                tr(
                    "et",
                    "Please give the theme a name of 1 to 60 characters, e.g. “work placement”.",
                )
                in html
            )
        assert 'value="' + "x" * 61 + '"' in html
        # Refused: a wrong CSRF token; no such comment; a blank or partial one; E4.
        status, _html, _url = await _post(
            client,
            f"{page}/tag",
            {"csrf": "wrong", "question": "A4", "response": g09, "theme": "x"},
        )
        assert status == 403
        for response_id, question in (
            (seeded.responses["G14/m12"], "A4"),  # blank
            (seeded.responses["G30/m12"], "A4"),  # partial
            (g01, "E4"),  # a job title is no comment
            (seeded.responses["B1/m12"], "A4"),  # beta's, under alfa's programme
            (seeded.responses["H1/m12"], "A4"),  # P2's, under P1
            (99_999_999, "A4"),
        ):
            status, _html, _url = await _post(
                client,
                f"{page}/tag",
                {**form, "question": question, "response": response_id, "theme": "x"},
            )
            assert status == 404, (response_id, question)
        # Removing a theme.
        await _post(client, f"{page}/untag", {**form, "response": g01, "theme": "work placement"})
    assert await _tags(h) == [(g09, "A4", "Work placement"), (g01, "A4", "teachers")]

    # Beta's administrator: alfa's programme is not found, nor is alfa's comment under beta's.
    client, csrf = await officer(h, "beta", "es", role="admin")
    async with client:
        for url in (page, f"{web}/dashboard/programmes/{seeded.p3}/comments"):
            status, _html, _url = await _post(
                client,
                f"{url}/tag",
                {"csrf": csrf, "question": "A4", "response": g09, "theme": "y"},
            )
            assert status == 404
            status, _html, _url = await _post(
                client,
                f"{url}/untag",
                {"csrf": csrf, "question": "A4", "response": g09, "theme": "work placement"},
            )
            assert status == 404
    assert await _tags(h) == [(g09, "A4", "Work placement"), (g01, "A4", "teachers")]


async def test_comments_are_read_by_those_who_work_on_programmes_and_tagged_by_officers(
    harness: Harness, web: str
) -> None:
    """As the privacy notice tells graduates: an alumni officer of alfa (Italian) reads the
    comments (never a name) and tags them; P1's programme team reads them but may not tag
    (the role refusal in their language); a researcher (free text is not for them) is refused
    the page, and the plans-and-destinations table (totals) is open to them."""
    h = harness
    seeded = await feedback_seed.seed(h.db)
    page = f"{web}/dashboard/programmes/{seeded.p1}/comments"
    g09 = seeded.responses["G09/m12"]
    tag = {"csrf": "", "question": "A4", "response": g09, "theme": "stage"}

    client, csrf = await officer(h, lang="it")
    async with client:
        async with client.get(f"{page}?wave=m12") as response:
            assert response.status == 200
            html = await response.text()
        status, _body, _url = await _post(client, f"{page}/tag", {**tag, "csrf": csrf})
        assert status == 200
    assert escape_html(COMMENTS[0][2]) in html and "Secret Name" not in html
    assert await _tags(h) == [(g09, "A4", "stage")]

    def refusal(lang: str, role: str) -> str:
        return tr(
            lang, "This page is not open to your role ({role}). Please go back to the dashboard."
        ).format(role=tr(lang, role))

    team = h.user("nl")
    await add_staff(h.db, team.id, "programme", school_code="alfa", programmes="P1")
    async with client_session() as client:
        csrf = await log_in(h, client, team)
        async with client.get(f"{page}?wave=m12") as response:
            assert response.status == 200
            assert escape_html(COMMENTS[0][2]) in await response.text()
        for action in ("tag", "untag"):
            status, body, _url = await _post(client, f"{page}/{action}", {**tag, "csrf": csrf})
            assert status == 403 and escape_html(refusal("nl", "programme team")) in body
    assert await _tags(h) == [(g09, "A4", "stage")]

    researcher = h.user("es")
    await add_staff(h.db, researcher.id, "researcher")
    async with client_session() as client:
        await log_in(h, client, researcher)
        async with client.get(page) as response:
            assert response.status == 403
            body = await response.text()
        assert escape_html(refusal("es", "researcher")) in body
        for _ref, _wave, text, _at in COMMENTS:
            assert escape_html(text) not in body
        async with client.get(f"{web}/dashboard/programmes/{seeded.p1}/expectations") as response:
            assert response.status == 200


def test_questionnaire_check_compares_the_plans_and_comments_with_indicators_yaml(
    tmp_path: Path,
) -> None:
    """A school that adds a plan choice to its pre-graduation questionnaire, or turns A4 into
    a choice, hears that indicators.yaml's plan groups or comments no longer fit."""
    pregrad = Path(QUESTIONNAIRES) / "pregrad.yaml"
    changed = tmp_path / "pregrad.yaml"
    changed.write_text(
        pregrad.read_text(encoding="utf-8").replace(
            "    - name: not_sure", "    - name: gap_year", 1
        ),
        encoding="utf-8",
    )
    refused = _cli("questionnaire", "check", str(changed))
    assert refused.returncode == 1, refused.stdout
    problems = refused.stderr
    assert "tracking: expectations: P1 has no choice not_sure" in problems
    assert "tracking: expectations: P1 has choice gap_year in no plan group" in problems
    tracking = Path(QUESTIONNAIRES) / "tracking.yaml"
    text = tracking.read_text(encoding="utf-8")
    assert "  - type: text\n    name: A4\n" in text
    changed = tmp_path / "tracking.yaml"
    changed.write_text(text.replace("name: A4\n", "name: A4x\n", 1), encoding="utf-8")
    refused = _cli("questionnaire", "check", str(changed))
    assert refused.returncode == 1
    assert "tracking: comments: no question A4" in refused.stderr


async def test_the_demo_school_has_comments_to_read(db: Database) -> None:
    """`make run`'s demo school: each seeded programme has comments, with enough respondents
    for the page to show them."""
    await ensure_demo(db, now=NOW)
    spec = default_feedback()["tracking"]
    async with db.session() as session:
        school = (await session.exec(select(Institution).where(Institution.code == "demo"))).one()
        chef = (await session.exec(select(Programme).where(Programme.code == "CHEF4"))).one()
        scope = Scope(school.id, chef.id)
        found = await feedback.comments(session, scope, spec, "Q1", None, NOW)
        assert await feedback.respondents(session, scope, "tracking", None, NOW) >= 5
    assert len(found) == 4 and {c.text for c in found} <= set(DEMO_COMMENTS)
