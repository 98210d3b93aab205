"""Schools, programmes and the roster import, on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlmodel import col, func, select

from bot.__main__ import build_parser, cmd_import
from bot.i18n import use_language
from bot.settings import Settings
from conversations.rules import PAYLOAD_RE
from conversations.workbooks import unpacked_size
from storage.db import Database
from storage.models import ConsentEvent, ConsentKind, Graduate
from storage.queries import set_consent
from storage.roster import (
    ALIASES,
    FileProblem,
    Limits,
    Problem,
    clean_text,
    import_roster,
    more_problems_text,
    parse_date,
    parse_gender,
    parse_language,
    read_csv,
    read_table,
)
from storage.schools import (
    SchoolError,
    list_schools,
    normalise_school_code,
    upsert_programme,
    upsert_school,
)
from tests.rosterfiles import bomb_rows, inline_row, raw_xlsx

DATA = Path(__file__).parent / "data" / "roster"
TODAY = date(2026, 5, 1)
HEADER = "student_ref,name,school,programme,eqf_level,graduation_date,language,gender,birth_year"


async def seed(db: Database) -> None:
    await upsert_school(db, "demo-nl", name="Demo College", country="NL")
    await upsert_programme(db, "demo-nl", "ICT4", name="Software developer", eqf_level=4)
    await upsert_programme(db, "demo-nl", "CHEF3", name="Cook", eqf_level=3, field="Catering")
    await upsert_school(db, "bcn", name="Institut Barcelona", country="ES")
    await upsert_programme(db, "bcn", "ADM", name="Administració", eqf_level=5)


async def graduates(db: Database) -> dict[str, Graduate]:
    async with db.session() as session:
        rows = (await session.exec(select(Graduate).order_by(col(Graduate.student_ref)))).all()
    return {g.student_ref: g for g in rows}


async def count(db: Database) -> int:
    async with db.session() as session:
        return (await session.exec(select(func.count()).select_from(Graduate))).one()


def write(tmp_path: Path, text: str, name: str = "roster.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


# Schools and programmes ----------------------------------------------------------------------


async def test_school_and_programme_upserts(db: Database) -> None:
    added = await upsert_school(db, " Demo-NL ", name="Demo  College", country="nl")
    assert added.created and added.code == "demo-nl"
    again = await upsert_school(db, "demo-nl", name="Demo College", country="NL")
    assert not again.created and again.changed == () and again.id == added.id
    moved = await upsert_school(db, "demo-nl", timezone="Europe/Brussels", language="en")
    assert moved.changed == ("default_language", "timezone")
    await upsert_school(
        db, "tln", name="Tallinn", country="EE", language="et", timezone="Europe/Tallinn"
    )

    p = await upsert_programme(db, "demo-nl", "ICT4", name="Software developer", eqf_level=4)
    assert p.created
    p2 = await upsert_programme(db, "DEMO-NL", "ICT4", eqf_level=4, field="ICT")
    assert not p2.created and p2.changed == ("field",) and p2.id == p.id

    listing = {s.code: s for s in await list_schools(db)}
    demo = listing["demo-nl"]
    assert (demo.name, demo.country, demo.language, demo.timezone) == (
        "Demo College",
        "NL",
        "en",
        "Europe/Brussels",
    )
    assert demo.join_payload == "s_demo-nl" and PAYLOAD_RE.match(demo.join_payload)
    assert [(x.code, x.eqf_level, x.field) for x in demo.programmes] == [("ICT4", 4, "ICT")]
    assert listing["tln"].programmes == ()


SCHOOL_PROBLEMS: list[tuple[dict[str, str], str]] = [
    ({"code": "x"}, "use 2 to 32 characters"),
    ({"code": "demo_nl"}, "use 2 to 32 characters"),
    ({"code": "a" * 33}, "use 2 to 32 characters"),
    ({"code": "new", "country": "NL"}, "needs --name"),
    ({"code": "new", "name": "New"}, "needs --country"),
    ({"code": "new", "name": "New", "country": "NLD"}, "ISO 3166-1 alpha-2"),
    ({"code": "new", "name": "New", "country": "DE"}, "needs --language"),
    ({"code": "new", "name": "New", "country": "DE", "language": "de"}, "use one of"),
    ({"code": "new", "name": "N", "country": "NL", "timezone": "Europe/Nowhere"}, "IANA"),
    ({"code": "new", "name": "N", "country": "NL", "timezone": "../etc/passwd"}, "IANA"),
    ({"code": "new", "name": " ", "country": "NL"}, "name is empty"),
]


async def test_school_validation(db: Database) -> None:
    for kwargs, message in SCHOOL_PROBLEMS:
        options: dict[str, Any] = dict(kwargs)
        code = options.pop("code")
        with pytest.raises(SchoolError, match=message):
            await upsert_school(db, code, **options)
    assert await list_schools(db) == []


async def test_programme_validation(db: Database) -> None:
    await upsert_school(db, "demo-nl", name="Demo", country="NL")
    with pytest.raises(SchoolError, match="unknown school 'nope'"):
        await upsert_programme(db, "nope", "ICT4", name="x", eqf_level=4)
    with pytest.raises(SchoolError, match="from 1 to 8"):
        await upsert_programme(db, "demo-nl", "ICT4", name="x", eqf_level=9)
    with pytest.raises(SchoolError, match="from 1 to 8"):
        await upsert_programme(db, "demo-nl", "ICT4", name="x", eqf_level=0)
    with pytest.raises(SchoolError, match="needs --eqf"):
        await upsert_programme(db, "demo-nl", "ICT4", name="x")
    with pytest.raises(SchoolError, match="programme code"):
        await upsert_programme(db, "demo-nl", "ICT 4", name="x", eqf_level=4)
    assert (await list_schools(db))[0].programmes == ()


def test_school_code_is_lower_case() -> None:
    assert normalise_school_code(" ROC-Utrecht ") == "roc-utrecht"


# Values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "country", "expected"),
    [
        ("F", None, "female"),
        ("v", "NL", "female"),
        ("Vrouw", "NL", "female"),
        ("mujer", "ES", "female"),
        ("Naine", "EE", "female"),
        ("N", "EE", "female"),
        ("N", "NL", None),
        ("donna", "IT", "female"),
        ("Femmina", "IT", "female"),
        ("M", "NL", "male"),
        ("man", None, "male"),
        ("H", "ES", "male"),
        ("H", "NL", None),
        ("hombre", None, "male"),
        ("mees", None, "male"),
        ("uomo", None, "male"),
        ("X", None, "other"),
        ("non-binary", None, "other"),
        ("anders", None, "other"),
        ("U", None, "unknown"),
        ("onbekend", None, "unknown"),
        ("", None, ""),
        ("vrouwtje", None, None),
    ],
)
def test_gender_forms(text: str, country: str | None, expected: str | None) -> None:
    assert parse_gender(text, country) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-06-30", date(2026, 6, 30)),
        ("2026-06-30 00:00:00", date(2026, 6, 30)),
        ("30-06-2026", date(2026, 6, 30)),
        ("30/06/2026", date(2026, 6, 30)),
        ("30.06.2026", date(2026, 6, 30)),
        ("1/7/2026", date(2026, 7, 1)),
        (datetime(2026, 6, 30), date(2026, 6, 30)),
        (date(2026, 6, 30), date(2026, 6, 30)),
        ("30-06/2026", "is not a date: use"),
        ("06/30/2026", "is not a date of the calendar"),
        ("2040-06-30", "is outside 1950-2032"),
        (46203, "is a number, not a date"),
    ],
)
def test_dates(value: object, expected: date | str) -> None:
    parsed = parse_date(value, TODAY)
    if isinstance(expected, date):
        assert parsed == expected
    else:
        assert isinstance(parsed, str) and expected in parsed


def test_text_cleaning_and_languages() -> None:
    assert clean_text("  Ann\x07e\u202e  de\tVries\r\n") == "Ann e de Vries"
    assert clean_text('=HYPERLINK("http://x")') == '=HYPERLINK("http://x")'
    assert clean_text(1001.0) == "1001"
    assert clean_text(None) == ""
    assert clean_text("Zoë") == clean_text("Zoe\u0308") == "Zoë"
    assert [parse_language(x) for x in ("nl", "EN", "en-GB", "it_IT", "", "de")] == [
        "nl",
        "en",
        "en",
        "it",
        "",
        None,
    ]
    assert ALIASES["studentnummer"] == "student_ref" and ALIASES["geslacht"] == "gender"


def test_csv_delimiters_and_line_numbers() -> None:
    semi = read_csv("\ufeffa;b\r\n1;2\r\n\r\n3;4\r\n".encode())
    assert semi.header == ["a", "b"]
    assert semi.rows == [(2, ["1", "2"]), (4, ["3", "4"])]
    comma = read_csv(b'\n\na,b\n"x\ny",2\n5,6\n')
    assert comma.header_line == 3
    assert comma.rows == [(4, ["x\ny", "2"]), (6, ["5", "6"])]
    tabs = read_csv(b"a\tb\n1\t2\n")
    assert tabs.rows == [(2, ["1", "2"])]


# Import --------------------------------------------------------------------------------------


async def test_good_csv_semicolons_and_bom(db: Database) -> None:
    await seed(db)
    result = await import_roster(db, DATA / "good_semicolon_bom.csv", today=TODAY)
    assert result.problems == []
    assert (result.rows, result.created, result.updated, result.unchanged) == (4, 4, 0, 0)
    assert result.written and result.ignored_columns == ["Mentor"]

    stored = await graduates(db)
    values = {
        ref: (g.name, g.graduation_date, g.language, g.gender, g.birth_year)
        for ref, g in stored.items()
    }
    assert values == {
        "1001": ("Anna de Vries", date(2026, 6, 30), "nl", "female", 2006),
        "1002": ("Bram Jansen", date(2026, 6, 30), None, "male", 2005),
        "1003": ("Chloë Bakker", date(2026, 7, 15), "en", "other", None),
        "1004": ('Daan "DJ" Smit', date(2026, 7, 1), "en", "unknown", 2004),
    }
    tokens = {g.invite_token for g in stored.values()}
    assert len(tokens) == 4
    assert all(t and PAYLOAD_RE.match(t) and t.startswith("i_") for t in tokens)
    assert all(g.chat_id is None and not g.self_registered for g in stored.values())
    # Programme by code, by exact name and by code in another case:
    programmes = {ref: g.programme_id for ref, g in stored.items()}
    assert programmes["1001"] == programmes["1002"] != programmes["1003"] == programmes["1004"]


async def test_good_xlsx_with_excel_dates(db: Database, tmp_path: Path) -> None:
    await seed(db)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Leerlingen"
    sheet.append(["Student number", "Full name", "Programme", "Graduation date", "Sex", "Born"])
    sheet.append([2001, "Eva Visser", "ICT4", datetime(2026, 6, 30), "F", 2006])
    sheet.append([])  # an empty row: the next keeps Excel's row number 4
    sheet.append(["2002", "Finn de Boer", "Cook", datetime(2026, 7, 3), "m", 2005.0])
    sheet.append([2003, "Gijs", "ICT4", 46203, "x", None])
    sheet["D4"].number_format = "DD-MM-YYYY"
    path = tmp_path / "roster.xlsx"
    workbook.save(path)

    bad = await import_roster(db, path, school_code="demo-nl", today=TODAY)
    assert bad.problems == [
        Problem(5, "Graduation date '46203' is a number, not a date: format the cells as dates")
    ]
    assert not bad.written and await count(db) == 0

    sheet["D5"] = datetime(2026, 6, 30)
    workbook.save(path)
    good = await import_roster(db, path, school_code="demo-nl", today=TODAY)
    assert good.problems == [] and good.created == 3 and good.written
    stored = await graduates(db)
    assert {
        ref: (g.name, g.graduation_date, g.gender, g.birth_year) for ref, g in stored.items()
    } == {
        "2001": ("Eva Visser", date(2026, 6, 30), "female", 2006),
        "2002": ("Finn de Boer", date(2026, 7, 3), "male", 2005),
        "2003": ("Gijs", date(2026, 6, 30), "other", None),
    }


async def test_every_problem_with_its_line(db: Database, tmp_path: Path) -> None:
    await seed(db)
    result = await import_roster(db, DATA / "problems.csv", today=TODAY)
    assert result.problems == [
        Problem(3, "unknown school 'nowhere'"),
        Problem(4, "unknown programme 'ICT9' at school 'demo-nl'"),
        Problem(5, "eqf_level 5 does not match programme 'ICT4' (EQF 4)"),
        Problem(6, "graduation_date '2026-13-01' is not a date of the calendar"),
        Problem(
            7,
            "graduation_date 'June 2026' is not a date: "
            "use 2026-06-30, 30-06-2026, 30/06/2026 or 30.06.2026",
        ),
        Problem(8, "duplicate student_ref 'A1' (also on line 2)"),
        Problem(9, "language 'de' is not supported: use nl, es, et, it, en"),
        Problem(10, "gender 'vrouwtje' is not recognised: use F, M, X or U"),
        Problem(11, "birth_year '06' is not a plausible year of birth (4 digits, 1926-2016)"),
        Problem(12, "birth_year '1900' is not a plausible year of birth (4 digits, 1926-2016)"),
        Problem(13, "student_ref is empty"),
        Problem(14, "name is empty"),
        Problem(14, "programme is empty"),
        Problem(14, "graduation_date is empty"),
        Problem(16, "name is longer than 200 characters (201)"),
        Problem(17, "student_ref is longer than 64 characters (65)"),
        Problem(22, "eqf_level 'x' is not a level from 1 to 8"),
        Problem(22, "graduation_date 2040-06-30 is outside 1950-2032"),
        Problem(24, "gender 'N' is not recognised: use F, M, X or U"),
        Problem(25, "school is empty"),
    ]
    # The good rows are counted, and nothing at all is written.
    assert (result.created, result.updated, result.unchanged) == (5, 0, 0)
    assert [c.line for c in result.changes] == [2, 18, 19, 20, 23]
    assert not result.written and await count(db) == 0

    # Without the bad rows the same file imports; formulas stay text, white space collapses.
    lines = (DATA / "problems.csv").read_text(encoding="utf-8").split("\n")
    keep = [lines[0], lines[1], *lines[17:21], lines[22]]
    result = await import_roster(db, write(tmp_path, "\n".join(keep) + "\n"), today=TODAY)
    assert result.problems == [] and result.created == 5
    stored = await graduates(db)
    assert stored["A13"].name == "=cmd|' /C calc'!A0"
    assert stored["A14"].name == "Ned Bell"
    assert stored["A15"].name == "Multi Line"
    assert (stored["A17"].gender, stored["A17"].language) == ("male", "es")


async def test_missing_columns_reported_once(db: Database, tmp_path: Path) -> None:
    await seed(db)
    path = write(tmp_path, "Student ID;Naam;Extra\nA1;Ann;x\nA2;;y\nA3;Cas;z\n")
    result = await import_roster(db, path, today=TODAY)
    assert result.problems == [
        Problem(1, "missing required column 'school'"),
        Problem(1, "missing required column 'programme'"),
        Problem(1, "missing required column 'graduation_date'"),
        Problem(3, "Naam is empty"),
    ]
    assert result.ignored_columns == ["Extra"]
    both = write(tmp_path, f"{HEADER},Student number\n", "two.csv")
    result = await import_roster(db, both, today=TODAY)
    assert result.problems == [
        Problem(1, "columns 'student_ref' and 'Student number' both give student_ref")
    ]


async def test_programme_names_must_be_unambiguous(db: Database, tmp_path: Path) -> None:
    await seed(db)
    await upsert_programme(db, "demo-nl", "CHEF2", name="Cook", eqf_level=2)
    await upsert_programme(db, "demo-nl", "ict4", name="Software developer", eqf_level=4)
    rows = "A1,Ann,demo-nl,Cook,,2026-06-30,,,\nA2,Bo,demo-nl,ICT4,,2026-06-30,,,\n"
    result = await import_roster(db, write(tmp_path, f"{HEADER}\n{rows}"), today=TODAY)
    assert result.problems == [
        Problem(
            2,
            "programme name 'Cook' is ambiguous at school 'demo-nl': use a code (CHEF2, CHEF3)",
        )
    ]
    # "ICT4" is the exact code of one programme, though "ict4" differs only in case.
    assert [c.student_ref for c in result.changes] == ["A2"]


async def test_file_level_problems(db: Database, tmp_path: Path) -> None:
    await seed(db)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(
        f"{HEADER}\nA1,Ann,demo-nl,ICT4,,2026-06-30,,,\n".encode() + "A2,Zoë".encode("latin-1")
    )
    result = await import_roster(db, latin1, today=TODAY)
    assert [p.line for p in result.problems] == [3]
    assert "not UTF-8" in result.problems[0].message
    empty = write(tmp_path, "\n\n", "empty.csv")
    assert (await import_roster(db, empty)).problems == [Problem(1, "the file is empty")]
    old = write(tmp_path, "x", "old.xls")
    assert "not supported" in (await import_roster(db, old)).problems[0].message
    broken = write(tmp_path, "not a zip", "broken.xlsx")
    assert "not a readable .xlsx" in (await import_roster(db, broken)).problems[0].message
    good = write(tmp_path, f"{HEADER}\nA1,Ann,,ICT4,,2026-06-30,,,\n", "school.csv")
    unknown = await import_roster(db, good, school_code="nope")
    assert unknown.problems == [Problem(0, "unknown school 'nope'")]
    other = write(tmp_path, f"{HEADER}\nA1,Ann,bcn,ADM,,2026-06-30,,,\n", "other.csv")
    mismatch = await import_roster(db, other, school_code="demo-nl", today=TODAY)
    assert mismatch.problems == [
        Problem(2, "school 'bcn' is not 'demo-nl', the school chosen for this import")
    ]
    assert await count(db) == 0


async def test_control_characters_are_removed(db: Database, tmp_path: Path) -> None:
    await seed(db)
    path = write(
        tmp_path, f"{HEADER}\nA\x001,Ann\x07e \u202eVries\u200b,demo-nl,ICT4,,2026-06-30,,,\n"
    )
    result = await import_roster(db, path, today=TODAY)
    assert result.problems == []
    assert [(g.student_ref, g.name) for g in (await graduates(db)).values()] == [
        ("A 1", "Ann e Vries")
    ]


async def test_dry_run_writes_nothing(db: Database) -> None:
    await seed(db)
    result = await import_roster(db, DATA / "good_semicolon_bom.csv", dry_run=True, today=TODAY)
    assert result.problems == [] and result.created == 4 and result.dry_run
    assert not result.written and await count(db) == 0


async def test_one_bad_row_means_nothing_is_written(db: Database, tmp_path: Path) -> None:
    await seed(db)
    await import_roster(db, DATA / "good_semicolon_bom.csv", today=TODAY)
    before = await graduates(db)
    good = (DATA / "good_semicolon_bom.csv").read_text(encoding="utf-8-sig")
    changed = (
        good.replace("Anna de Vries", "Anna Visser")
        + "1005;New One;demo-nl;ICT4;;31-06-2026;;;;\r\n"
    )
    result = await import_roster(db, write(tmp_path, changed), today=TODAY)
    assert result.problems == [
        Problem(7, "Graduation date '31-06-2026' is not a date of the calendar")
    ]
    assert (result.created, result.updated, result.unchanged) == (0, 1, 3)
    after = await graduates(db)
    assert after.keys() == before.keys() and after["1001"].name == "Anna de Vries"


async def test_reimport_updates_and_keeps_the_chat(db: Database, tmp_path: Path) -> None:
    await seed(db)
    source = DATA / "good_semicolon_bom.csv"
    await import_roster(db, source, today=TODAY)
    async with db.session() as session:
        anna = (await session.exec(select(Graduate).where(Graduate.student_ref == "1001"))).one()
        anna.chat_id, anna.language = 555, "en"  # linked, and chose English in the chat
        session.add(anna)
        await session.flush()
        set_consent(session, anna, ConsentKind.SURVEY, True, "2026-11")
    before = await graduates(db)

    again = await import_roster(db, source, today=TODAY)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4) and again.written

    text = source.read_text(encoding="utf-8-sig")
    text = text.replace("Anna de Vries", "Anna Visser").replace(
        "Bram Jansen;demo-nl;", "Bram J;demo-nl;"
    )
    text = text.replace(";CHEF3;3;2026-07-15;EN;X;;", ";ICT4;4;2026-07-15;it;X;2003;")
    result = await import_roster(db, write(tmp_path, text), today=TODAY)
    assert result.problems == []
    assert (result.created, result.updated, result.unchanged) == (0, 3, 1)
    assert {c.student_ref: c.fields for c in result.changes} == {
        "1001": ("name",),  # the roster's "nl" does not override the chat's "en"
        "1002": ("name",),
        "1003": ("programme_id", "language", "birth_year"),
    }
    after = await graduates(db)
    anna = after["1001"]
    assert (anna.name, anna.language, anna.chat_id) == ("Anna Visser", "en", 555)
    assert anna.consent_survey is True and anna.consent_survey_notice == "2026-11"
    for ref, graduate in after.items():
        assert graduate.invite_token == before[ref].invite_token
        assert graduate.id == before[ref].id
    assert after["1003"].programme_id == after["1001"].programme_id
    assert after["1004"].updated_at == before["1004"].updated_at
    async with db.session() as session:
        events = (await session.exec(select(ConsentEvent))).all()
    assert len(events) == 1


async def test_cli_prints_the_report(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Database(database_url)
    try:
        await seed(db)
    finally:
        await db.dispose()
    settings = Settings(database_url=database_url, _env_file=None)
    parser = build_parser()

    args = parser.parse_args(["import", str(DATA / "problems.csv")])
    assert isinstance(args, argparse.Namespace)
    assert await cmd_import(settings, args) == 1
    out = capsys.readouterr().out
    assert f"{DATA / 'problems.csv'}:3: unknown school 'nowhere'" in out
    assert "problem(s): nothing was written" in out

    args = parser.parse_args(["import", str(DATA / "good_semicolon_bom.csv"), "--dry-run"])
    assert await cmd_import(settings, args) == 0
    out = capsys.readouterr().out
    assert "4 rows: 4 would be created, 0 would be updated, 0 unchanged" in out
    assert "dry run: nothing was written" in out

    args = parser.parse_args(["import", str(DATA / "good_semicolon_bom.csv")])
    assert await cmd_import(settings, args) == 0
    assert "4 rows: 4 created, 0 updated, 0 unchanged" in capsys.readouterr().out


# Limits (issue 14): a file cannot stall the service -------------------------------------------

TOO_MANY_ROWS = "the file has more than 50,000 rows: split it into files of at most 50,000 rows"


async def test_a_300000_row_xlsx_is_refused_at_the_row_limit_with_one_line(
    database_url: str, huge_bad_roster_xlsx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file of the issue: 300,000 rows of bad data, 1.5 MB. `gradtrack import` refuses it
    as soon as row 50,001 is read, with one line (the old import reported every bad row:
    900,000 lines)."""
    db = Database(database_url)
    try:
        await seed(db)
        settings = Settings(database_url=database_url, _env_file=None)
        args = build_parser().parse_args(
            ["import", str(huge_bad_roster_xlsx), "--school", "demo-nl"]
        )
        assert await cmd_import(settings, args) == 1
        assert await count(db) == 0
    finally:
        await db.dispose()
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"{huge_bad_roster_xlsx}: {TOO_MANY_ROWS}",
        "0 rows: 0 would be created, 0 would be updated, 0 unchanged",
        "1 problem(s): nothing was written",
    ]


def bad_rows_csv(tmp_path: Path, bad: int) -> Path:
    """`bad` rows with one problem each (a date that is not one)."""
    rows = "".join(f"R{k},Name {k},ICT4,2026-06-3{k % 10}x\n" for k in range(bad))
    return write(tmp_path, f"student_ref,name,programme,graduation_date\n{rows}", "bad.csv")


async def test_the_report_lists_the_first_100_problems_and_counts_the_rest(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bad_rows_csv(tmp_path, 1_334)
    db = Database(database_url)
    try:
        await seed(db)
        result = await import_roster(db, path, school_code="demo-nl", today=TODAY)
    finally:
        await db.dispose()
    assert [p.line for p in result.problems] == list(range(2, 102))
    assert result.more_problems == 1_234 and result.problem_count == 1_334
    assert not result.ok and not result.written and result.rows == 1_334
    with use_language("en"):
        assert more_problems_text(1_234) == "and 1,234 more problems"
        assert more_problems_text(1) == "and 1 more problem"
    with use_language("nl"):
        assert more_problems_text(1_234) == "en nog 1.234 problemen"  # Dutch digit grouping
    settings = Settings(database_url=database_url, _env_file=None)
    args = build_parser().parse_args(["import", str(path), "--school", "demo-nl"])
    assert await cmd_import(settings, args) == 1
    out = capsys.readouterr().out
    assert f"{path}:101: graduation_date" in out and f"{path}:102:" not in out
    assert f"{path}: and 1,234 more problems" in out
    assert "1334 problem(s): nothing was written" in out


def csv_rows(count: int) -> bytes:
    return ("a,b\n" + "x,y\n" * count).encode()


def test_csv_is_read_up_to_the_row_limit_and_no_further() -> None:
    assert len(read_csv(csv_rows(50_000)).rows) == 50_000
    with pytest.raises(FileProblem) as caught:
        read_csv(csv_rows(50_001))
    assert caught.value.problem == Problem(0, TOO_MANY_ROWS)
    # Empty lines are not rows, but a file of little else is refused too.
    with pytest.raises(FileProblem) as caught:
        read_csv(b"a,b\n" + b"\n" * 100_000 + b"x,y\n")
    assert caught.value.problem.message.startswith(
        "the file goes on for more than 100,000 rows, counting empty ones"
    )


def test_csv_lines_rows_columns_and_cells_are_bounded() -> None:
    small = Limits(columns=3, cell_chars=5, unpacked_bytes=1000)
    # One line longer than a row may be (3 columns of 5 characters): refused where it starts.
    with pytest.raises(FileProblem) as caught:
        read_csv(b"a,b\n1,2\n" + b"x" * 10_000 + b"\n", small)
    assert caught.value.problem == Problem(
        3, "the row is longer than 15 characters (is a quotation mark not closed?)"
    )
    # A quotation mark never closed: the "row" runs on over the lines that follow.
    with pytest.raises(FileProblem) as caught:
        read_csv(b'a,b\n"open,1\n' + b"z\n" * 50, small)
    assert caught.value.problem.line == 2
    # The default: a line of 200,000 characters (beyond a row of 100 cells of 1,000).
    with pytest.raises(FileProblem) as caught:
        read_csv(b"a,b\n" + b"x" * 200_000 + b"\n")
    assert caught.value.problem == Problem(
        2, "the row is longer than 100,000 characters (is a quotation mark not closed?)"
    )
    with pytest.raises(FileProblem) as caught:
        read_csv(b"a,b,c,d\n1,2\n", small)
    assert caught.value.problem == Problem(1, "the row has more than 3 columns")
    table = read_csv(b"a,b\n1,2,3,4\n1,123456\n1,2,,,,\n", small)
    assert table.bad == {
        2: "the row has more than 3 columns",
        3: "the cell in column B is longer than 5 characters (6)",
    }
    assert table.rows == [(2, []), (3, []), (4, ["1", "2"])]
    with pytest.raises(FileProblem) as caught:
        read_csv(b"a,b\n" + b"1,2\n" * 300, small)
    assert caught.value.problem == Problem(0, "the file is larger than 1 MB")


async def test_bad_cells_are_reported_at_their_line(db: Database, tmp_path: Path) -> None:
    await seed(db)
    path = write(
        tmp_path,
        "student_ref,name,programme,graduation_date\n"
        f"A1,{'n' * 1_001},ICT4,2026-06-30\nA2,Ann,ICT4,2026-06-30,{',x' * 100}\n",
    )
    result = await import_roster(db, path, school_code="demo-nl", today=TODAY)
    assert result.problems == [
        Problem(2, "the cell in column B is longer than 1,000 characters (1,001)"),
        Problem(3, "the row has more than 100 columns"),
    ]


def test_an_xlsx_is_counted_as_it_is_read_whatever_it_declares(tmp_path: Path) -> None:
    # It claims two rows (A1:B2) and holds 1,000.
    lying = raw_xlsx(
        tmp_path / "lying.xlsx",
        (inline_row(n, f"R{n}", "Ann") for n in range(1, 1_001)),
        dimension="A1:B2",
    )
    assert len(read_table(lying).rows) == 999
    with pytest.raises(FileProblem) as caught:
        read_table(lying, Limits(rows=100))
    assert caught.value.problem.message.startswith("the file has more than 100 rows")
    # A row numbered 5,000,000 after the header: openpyxl hands out every empty row before it.
    far = raw_xlsx(
        tmp_path / "far.xlsx", [inline_row(1, "a", "b"), inline_row(5_000_000, "x", "y")]
    )
    with pytest.raises(FileProblem) as caught:
        read_table(far)
    assert caught.value.problem == Problem(
        100_001,
        "the file goes on for more than 100,000 rows, counting empty ones: "
        "delete the empty rows at its end",
    )


async def test_a_zip_bomb_is_refused_before_it_is_opened(db: Database, tmp_path: Path) -> None:
    """190 KB that unpack to 61 MB: refused from the sizes the zip declares."""
    bomb = raw_xlsx(tmp_path / "bomb.xlsx", bomb_rows(60))
    assert bomb.stat().st_size < 300_000
    result = await import_roster(db, bomb, school_code="demo-nl", today=TODAY)
    assert result.problems == [
        Problem(
            0,
            "the workbook unpacks to 61 MB, more than the 50 MB allowed: remove other sheets "
            "and pictures, or save it as CSV UTF-8",
        )
    ]


def test_a_zip_that_understates_its_size_unpacks_no_more_than_it_says(tmp_path: Path) -> None:
    """The size check trusts the sizes the zip declares: Python's zipfile inflates an entry
    only up to its declared size (and then fails its checksum), so a bomb that declares 1 KB
    for its 61 MB sheet is a damaged workbook, not 61 MB in memory."""
    bomb = raw_xlsx(tmp_path / "liar.xlsx", bomb_rows(60))
    data = bytearray(bomb.read_bytes())
    with zipfile.ZipFile(bomb) as archive:
        names = [entry.filename for entry in archive.infolist()]
    # The central directory's record of the sheet: its uncompressed size is at offset 24.
    name = b"xl/worksheets/sheet1.xml"
    record = data.rindex(b"PK\x01\x02", 0, data.rindex(name))
    assert "xl/worksheets/sheet1.xml" in names
    data[record + 24 : record + 28] = (1024).to_bytes(4, "little")
    bomb.write_bytes(bytes(data))
    assert unpacked_size(bomb) is not None and unpacked_size(bomb) < 1024 * 1024  # type: ignore[operator]
    with pytest.raises(FileProblem) as caught:
        read_table(bomb)
    assert caught.value.problem.message.startswith("not a readable .xlsx workbook")


def test_the_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROSTER_MAX_ROWS", "10")
    monkeypatch.setenv("ROSTER_MAX_COLUMNS", "4")
    monkeypatch.setenv("ROSTER_MAX_CELL_CHARS", "20")
    monkeypatch.setenv("UPLOAD_MAX_UNPACKED_MB", "2")
    limits = Settings(_env_file=None).roster_limits
    assert limits == Limits(rows=10, columns=4, cell_chars=20, unpacked_bytes=2 * 1024 * 1024)
    assert Settings(_env_file=None, roster_max_rows=50_000).roster_limits.rows == 50_000
    with pytest.raises(FileProblem) as caught:
        read_csv(csv_rows(11), limits)
    assert caught.value.problem == Problem(
        0, "the file has more than 10 rows: split it into files of at most 10 rows"
    )
