"""Roster templates, column names and exports as a newcomer meets them (issue 15, "The first
hour"), over HTTP against the running dashboard, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime

import aiohttp
import pytest
from markupsafe import escape
from openpyxl import load_workbook
from openpyxl.styles.numbers import is_date_format
from openpyxl.utils import get_column_letter
from sqlmodel import col, select

from bot.sandbox import SandboxUser
from storage.models import Graduate, Institution, Programme
from storage.roster import ALIASES, COLUMNS, HEADERS, header_key
from storage.staff import add_staff
from tests.harness import Harness, tr
from tests.test_dashboard import client_session, log_in, seed_small

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def upload(
    client: aiohttp.ClientSession, web: str, csrf: str, data: bytes, filename: str, mode: str
) -> tuple[int, str]:
    form = aiohttp.FormData()
    form.add_field("csrf", csrf)
    form.add_field("mode", mode)
    form.add_field("file", data, filename=filename)
    async with client.post(f"{web}/dashboard/roster", data=form) as response:
        return response.status, await response.text()


def two_rows(prefix: str, lang: str, *, as_dates: bool) -> list[dict[str, object]]:
    """Two graduates of alfa's P1, by column."""
    return [
        {
            "student_ref": f"{prefix}1",
            "name": "Noor Jansen",
            "school": "",
            "programme": "P1",
            "graduation_date": date(2026, 6, 30) if as_dates else "30-06-2026",
            "eqf_level": 4,
            "language": lang,
            "gender": "F",
            "birth_year": 2007,
            "email": f"noor.{prefix.lower()}1@example.org",
            "mobile": "+31 6 12345678",
            # the programme's kinds, as a school types them (issue 17)
            "isco_groups": "ISCO 2; 3",
            "pathway": "BOL",
            "vet_kind": "IVET",
        },
        {
            "student_ref": f"{prefix}2",
            "name": "Sam Vos",
            "school": "alfa",
            "programme": "P1",
            "graduation_date": date(2026, 7, 3) if as_dates else "2026-07-03",
            "eqf_level": "",
            "language": "",
            "gender": "M",
            "birth_year": "",
            "email": "",
            "mobile": "",
            "isco_groups": "",
            "pathway": "",
            "vet_kind": "",
        },
    ]


def problems_table(page: str) -> str:
    start = page.index('<table id="problems">')
    return page[start : page.index("</table>", start)]


@pytest.mark.parametrize("lang", ["nl", "es"])
async def test_a_roster_template_in_the_staff_language_is_filled_in_and_imported(
    harness: Harness, web: str, lang: str
) -> None:
    h = harness
    alfa_id, _beta = await seed_small(h)
    officer = h.user(lang)
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    headers = [HEADERS[lang][column] for column in COLUMNS]
    async with client_session() as client:
        csrf = await log_in(h, client, officer)
        async with client.get(f"{web}/dashboard/roster") as got:
            html = await got.text()
        # The page lists every column under its name in the staff member's language, with
        # whether it is required, what it means and an example; and links to both templates.
        for title in headers:
            assert f"<code>{escape(title)}</code>" in html
        assert str(escape(tr(lang, "The graduate's full name."))) in html
        assert tr(lang, "required") in html and tr(lang, "optional") in html
        assert "<code>2026-06-30</code>" in html
        assert f'href="/dashboard/roster/template.csv?lang={lang}"' in html
        assert f'href="/dashboard/roster/template.xlsx?lang={lang}"' in html

        # The CSV template: its header row in the staff member's language (';'-separated,
        # as a spreadsheet program in that language writes it), filled in and uploaded.
        async with client.get(f"{web}/dashboard/roster/template.csv?lang={lang}") as download:
            assert download.status == 200
            assert "attachment" in download.headers["Content-Disposition"]
            text = (await download.read()).decode("utf-8-sig")
        (header,) = list(csv.reader(io.StringIO(text), delimiter=";"))
        assert header == headers
        assert all(
            ALIASES[header_key(title)] == column
            for title, column in zip(header, COLUMNS, strict=True)
        )
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=";")
        writer.writerow(header)
        for row in two_rows("C", lang, as_dates=False):
            writer.writerow([row[column] for column in COLUMNS])
        status, page = await upload(
            client, web, csrf, buffer.getvalue().encode("utf-8-sig"), "klas.csv", "import"
        )
        assert status == 200, page
        assert tr(lang, "Imported.") in page
        assert 'id="programmes-updated">1<' in page  # P1's ISCO groups, pathway, VET kind

        # The XLSX template: header bold and frozen, the date column formatted as dates,
        # student numbers as text; filled in (dates as Excel dates) and uploaded.
        async with client.get(f"{web}/dashboard/roster/template.xlsx") as download:
            assert download.status == 200
            assert download.content_type == XLSX
            data = await download.read()
        workbook = load_workbook(io.BytesIO(data))
        sheet = workbook.worksheets[0]
        first = [cell for cell in sheet[1]]
        assert [cell.value for cell in first] == headers
        assert all(cell.font.b for cell in first)
        assert sheet.freeze_panes == "A2"
        date_column = get_column_letter(COLUMNS.index("graduation_date") + 1)
        assert is_date_format(sheet.column_dimensions[date_column].number_format)
        ref_column = get_column_letter(COLUMNS.index("student_ref") + 1)
        assert sheet.column_dimensions[ref_column].number_format == "@"
        for row in two_rows("X", lang, as_dates=True):
            sheet.append([row[column] if row[column] != "" else None for column in COLUMNS])
        filled = io.BytesIO()
        workbook.save(filled)
        status, page = await upload(client, web, csrf, filled.getvalue(), "klas.xlsx", "import")
        assert status == 200, page
        assert tr(lang, "Imported.") in page

    async with h.db.session() as session:
        graduates = (
            await session.exec(
                select(Graduate).where(col(Graduate.student_ref).in_(["C1", "C2", "X1", "X2"]))
            )
        ).all()
    found = {
        g.student_ref: (g.institution_id, g.graduation_date, g.gender, g.language, g.birth_year)
        for g in graduates
    }
    assert found == {
        "C1": (alfa_id, date(2026, 6, 30), "female", lang, 2007),
        "C2": (alfa_id, date(2026, 7, 3), "male", None, None),
        "X1": (alfa_id, date(2026, 6, 30), "female", lang, 2007),
        "X2": (alfa_id, date(2026, 7, 3), "male", None, None),
    }
    async with h.db.session() as session:
        p1 = (await session.exec(select(Programme).where(Programme.code == "P1"))).one()
    assert (p1.isco_groups, p1.pathway, p1.vet_kind) == ("2,3", "school_based", "ivet")


async def test_every_column_is_accepted_under_its_name_in_every_language(
    harness: Harness, web: str
) -> None:
    """The header rows of all five templates, each filled in with a row, are imported."""
    h = harness
    await seed_small(h)
    officer = h.user("it")
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    async with client_session() as client:
        csrf = await log_in(h, client, officer)
        for k, lang in enumerate(sorted(HEADERS)):
            async with client.get(f"{web}/dashboard/roster/template.xlsx?lang={lang}") as got:
                workbook = load_workbook(io.BytesIO(await got.read()))
            sheet = workbook.worksheets[0]
            (row, _second) = two_rows(f"L{k}-", lang, as_dates=True)
            sheet.append([row[column] for column in COLUMNS])
            filled = io.BytesIO()
            workbook.save(filled)
            status, page = await upload(client, web, csrf, filled.getvalue(), "a.xlsx", "import")
            assert status == 200, (lang, page)
            assert tr("it", "Imported.") in page
    async with h.db.session() as session:
        refs = (
            await session.exec(
                select(Graduate.student_ref).where(col(Graduate.student_ref).like("L%"))
            )
        ).all()
    assert sorted(refs) == [f"L{k}-1" for k in range(5)]


@pytest.mark.parametrize(
    ("lang", "date_header"),
    [("nl", "Diplomadatum"), ("es", "fecha de titulación")],
)
async def test_roster_problems_name_the_column_as_the_file_or_the_staff_member_does(
    harness: Harness, web: str, lang: str, date_header: str
) -> None:
    h = harness
    await seed_small(h)
    officer = h.user(lang)
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    names = HEADERS[lang]
    local = f"{names['student_ref']},{names['name']},{names['programme']},{date_header}"
    async with client_session() as client:
        csrf = await log_in(h, client, officer)

        async def problems(text: str) -> str:
            status, page = await upload(client, web, csrf, text.encode(), "klas.csv", "check")
            assert status == 422, page
            return page

        # The file's own header, as it is written there.
        page = await problems(f"{local}\nN1,Noor,P1,\nN2,Sam,P1,31-06-2026\n")
        empty = tr(lang, "{column} is empty").format(column=date_header)
        assert empty != f"{date_header} is empty"  # in the staff member's language
        assert str(escape(empty)) in page
        not_a_day = tr(lang, "{column} {value} is not a date of the calendar").format(
            column=date_header, value="'31-06-2026'"
        )
        assert str(escape(not_a_day)) in page
        assert "graduation_date" not in problems_table(page)

        # A file with English headers gets them back.
        page = await problems("student_ref,name,programme,graduation_date\nN1,Noor,P1,\n")
        assert str(escape(tr(lang, "{column} is empty").format(column="graduation_date"))) in page

        # A column the file lacks: named in the staff member's language.
        page = await problems(f"{names['student_ref']},{names['name']},{names['programme']}\n")
        missing = tr(lang, "missing required column {name}").format(
            name=repr(names["graduation_date"])
        )
        assert str(escape(missing)) in page


# Exports ---------------------------------------------------------------------------------------


async def admin_of_alfa(h: Harness) -> tuple[int, SandboxUser]:
    alfa_id, _beta = await seed_small(h)
    admin = h.user("en")
    await add_staff(h.db, admin.id, "admin", school_code="alfa")
    return alfa_id, admin


async def test_the_response_rates_export_fills_the_cohort_of_every_row(
    harness: Harness, web: str
) -> None:
    """Without a cohort chosen, every row of the rates table used to have an empty cohort
    (and two cohorts of a programme were added up in one row)."""
    h = harness
    alfa_id, admin = await admin_of_alfa(h)
    async with h.db.session() as session:
        p1 = (await session.exec(select(Programme).where(Programme.code == "P1"))).one()
        assert p1.id is not None
        for k in range(5):
            session.add(
                Graduate(
                    institution_id=alfa_id,
                    programme_id=p1.id,
                    student_ref=f"old{k}",
                    graduation_date=date(2025, 6, 30),
                )
            )
    async with client_session() as client:
        await log_in(h, client, admin)
        async with client.get(f"{web}/dashboard/exports/rates.csv") as download:
            assert download.status == 200
            rows = list(csv.DictReader(io.StringIO((await download.read()).decode("utf-8-sig"))))
        async with client.get(f"{web}/dashboard/exports/indicators.xlsx") as download:
            workbook = load_workbook(io.BytesIO(await download.read()))
    assert rows and all(row["cohort"] for row in rows)
    m2 = {row["cohort"]: row for row in rows if row["wave"] == "m2"}
    assert set(m2) == {"2025", "2026"}
    assert (m2["2026"]["graduates"], m2["2026"]["completed"]) == ("6", "5")
    assert (m2["2025"]["graduates"], m2["2025"]["completed"]) == ("5", "0")
    sheet = list(workbook["response_rates"].iter_rows(values_only=True))
    cohort = sheet[0].index("cohort")
    assert {row[cohort] for row in sheet[1:]} == {2025, 2026}


async def test_responses_in_xlsx_have_real_dates(harness: Harness, web: str) -> None:
    """Started and completed were text (2026-09-02) in the XLSX export: a spreadsheet could
    not sort or filter them as dates. Now they are Excel dates; in CSV, ISO text."""
    h = harness
    _alfa, admin = await admin_of_alfa(h)
    async with client_session() as client:
        await log_in(h, client, admin)
        async with client.get(f"{web}/dashboard/exports/responses.xlsx") as download:
            assert download.status == 200
            workbook = load_workbook(io.BytesIO(await download.read()))
        async with client.get(f"{web}/dashboard/exports/responses.csv") as download:
            rows = list(csv.DictReader(io.StringIO((await download.read()).decode("utf-8-sig"))))
    sheet = workbook.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    body = list(sheet.iter_rows(min_row=2))
    assert len(body) == 6
    for row in body:
        cell = row[header.index("started")]
        assert cell.data_type == "d" and is_date_format(cell.number_format), cell
        assert isinstance(cell.value, datetime)
    completed = [row[header.index("completed")] for row in body]
    assert sum(cell.value is None for cell in completed) == 1
    for cell in completed:
        if cell.value is not None:
            assert cell.data_type == "d" and is_date_format(cell.number_format)
            assert cell.value == datetime(2026, 9, 2)
    assert {row["completed"] for row in rows} == {"2026-09-02", ""}
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["started"]) for row in rows)


async def test_responses_exports_hold_the_language_answered_in(harness: Harness, web: str) -> None:
    """A graduate who chose Italian in the chat starts a questionnaire: its row in the
    exports says "it"; responses from before the language was recorded leave it empty."""
    h = harness
    alfa_id, admin = await admin_of_alfa(h)
    async with h.db.session() as session:
        alfa = await session.get(Institution, alfa_id)
    assert alfa is not None
    graduate, _user = await h.consenting_graduate("it", school=alfa)
    started = await h.open_survey(graduate, "tracking")
    assert started.language == "it"
    async with client_session() as client:
        await log_in(h, client, admin)
        async with client.get(f"{web}/dashboard/exports/responses.xlsx") as download:
            workbook = load_workbook(io.BytesIO(await download.read()))
        async with client.get(f"{web}/dashboard/exports/responses.csv") as download:
            rows = list(csv.DictReader(io.StringIO((await download.read()).decode("utf-8-sig"))))
    sheet = list(workbook.worksheets[0].iter_rows(values_only=True))
    header = list(sheet[0])
    assert header[header.index("completed") + 1] == "language"
    language = header.index("language")
    assert sorted(str(row[language] or "") for row in sheet[1:]) == [""] * 6 + ["it"]
    assert sorted(row["language"] for row in rows) == [""] * 6 + ["it"]


def selected(html: str, select_id: str) -> list[str]:
    found = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', html, re.S)
    assert found, select_id
    return re.findall(r'<option value="([^"]*)"[^>]*\bselected\b', found.group(1))


async def test_every_questionnaire_picker_starts_on_the_same_questionnaire(
    harness: Harness, web: str
) -> None:
    """The responses picker started on tracking, the codebook's on pregrad (the first in
    the list): now both, and a download without a choice, give the tracking questionnaire."""
    h = harness
    _alfa, admin = await admin_of_alfa(h)
    assert h.runtime.questionnaires.form_ids == ["pregrad", "tracking"]
    async with client_session() as client:
        await log_in(h, client, admin)
        async with client.get(f"{web}/dashboard/exports") as page:
            html = await page.text()
        assert selected(html, "form") == ["tracking"]
        assert selected(html, "cform") == ["tracking"]
        for path in ("responses.csv", "codebook.csv", "codebook.xlsx", "responses.xlsx"):
            async with client.get(f"{web}/dashboard/exports/{path}") as download:
                assert download.status == 200
                assert "-tracking" in download.headers["Content-Disposition"], path
