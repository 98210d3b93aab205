"""Properties of the roster import (storage/roster.py).

- Any bytes as a CSV file (bad encodings, BOMs, any delimiter, huge fields, quotes, NUL) are
  read into a table or refused with a problem at a line: never another exception. The same
  for any bytes as an .xlsx file.
- Checking random rows (every column under its aliases, duplicated and missing columns,
  formula-like cells, hostile text, numbers, dates) never raises; every row it passes holds
  valid, cleaned values, and every other row has a problem at its line.
- Importing random files into a real database (SQLite and PostgreSQL): a file with a problem
  changes nothing; a file without one is imported exactly (the rows the check passed, no
  other), and every graduate stored is valid.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
import unicodedata
import warnings
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from conversations.rules import LANGUAGES
from storage.db import Database
from storage.models import Graduate, Institution, Programme
from storage.roster import (
    ALIASES,
    EARLIEST_GRADUATION_YEAR,
    GRADUATION_YEARS_AHEAD,
    NAME_MAX,
    REF_MAX,
    FileProblem,
    Table,
    _check_rows,
    _Lookups,
    _map_header,
    import_roster,
    read_csv,
    read_table,
)
from storage.roster import _lookups as database_lookups
from storage.schools import upsert_programme, upsert_school
from tests.properties import FIXTURE_PROFILE, PROFILE, hostile_bytes, hostile_text

READ_EXAMPLES = 100
XLSX_BYTES_EXAMPLES = 40
CHECK_EXAMPLES = 80
IMPORT_EXAMPLES = 15  # per database backend

TODAY = date(2026, 5, 1)
GENDERS = {"female", "male", "other", "unknown"}
CONTROL_OR_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)

# --- files ------------------------------------------------------------------------------------

FORMULAS = ("=cmd|' /C calc'!A0", "+1+1", "-2", "@SUM(A1)", '=HYPERLINK("http://x","y")', "\t=1")

cell_texts = st.one_of(
    hostile_text(30),
    st.sampled_from(FORMULAS),
    st.sampled_from(["", " ", '"', '""', "a,b", "a;b", "a\tb", "line\nbreak", "\r", "x\x00y"]),
)


def _spelled(canonical: str) -> st.SearchStrategy[str]:
    """A column under any of its aliases, in any case and spelling."""
    aliases = sorted(alias for alias, name in ALIASES.items() if name == canonical)
    return st.sampled_from(aliases).flatmap(
        lambda alias: st.sampled_from(
            [alias, alias.upper(), alias.replace("_", " "), alias.replace("_", "-"), f" {alias}."]
        )
    )


@st.composite
def columns(draw: st.DrawFn) -> list[str]:
    """A header: usually every required column, under any alias and spelling, in any order,
    with optional and unknown ones; sometimes one missing or given twice."""
    names = ["student_ref", "name", "programme", "graduation_date", "school"]
    names += draw(st.lists(st.sampled_from(sorted(set(ALIASES.values()))), max_size=6))
    header = [draw(_spelled(name)) for name in dict.fromkeys(names)]
    if draw(st.integers(0, 4)) == 0:
        del header[draw(st.integers(0, len(header) - 1))]
    if draw(st.integers(0, 4)) == 0:
        header.append(draw(st.sampled_from(sorted(ALIASES)) | hostile_text(10)))
    return draw(st.permutations(header))


GOOD: dict[str, list[str]] = {
    "student_ref": ["1001", "1002", "1003", "A-7", " 1001 ", "Zoë-1"],
    "name": ["Ann de Vries", "Zoë", "Zoe\u0308", "  José   Ruiz ", "Анна"],
    "school": ["demo-nl", "DEMO-NL", " demo-nl "],
    "programme": ["ICT4", "ict4", "Cook", "CHEF3", "Software developer"],
    "eqf_level": [""],
    "graduation_date": ["2026-06-30", "30-06-2026", "30/06/2026", "1.7.2025"],
    "language": ["nl", "EN", "en-GB", "it_IT", ""],
    "gender": ["F", "m", "x", "U", "vrouw", "Mannelijk", ""],
    "birth_year": ["2004", "2000", ""],
}
BAD: dict[str, list[str]] = {
    "student_ref": ["", "x" * 65, "\u200b"],
    "name": ["", "N" * 201, "\x00\x07"],
    "school": ["nowhere", "bcn", ""],
    "programme": ["Twin", "ADM", "x", ""],
    "eqf_level": ["9", "four", "4.5", "5"],
    "graduation_date": ["31.02.2026", "2099-01-01", "46203", "", "2026-6-31"],
    "language": ["de", "nl-"],
    "gender": ["?", "woman?", "n", "h"],
    "birth_year": ["1900", "04", "２００４", "2020"],
}


def value_for(header: str, messiness: int = 3) -> st.SearchStrategy[str]:
    """A cell for a column: valid, or (`messiness` times in 10) wrong or hostile."""
    key = re.sub(r"[\s.\-]+", "_", header.strip().casefold()).strip("_")
    canonical = ALIASES.get(key, "")
    good = st.sampled_from(GOOD.get(canonical, [""]))
    if canonical == "student_ref":  # a few known (updates across files), mostly new ones
        good |= st.from_regex(r"[A-Z]?[0-9]{3,6}", fullmatch=True)
    bad = st.sampled_from(BAD.get(canonical, ["?"])) | cell_texts
    return st.integers(0, 9).flatmap(lambda k: bad if k < messiness else good)


def _csv_text(draw: st.DrawFn, header: list[str], rows: list[list[str]]) -> str:
    """The rows as CSV, in a layout a spreadsheet program might choose."""
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=draw(st.sampled_from([",", ";", "\t"])),
        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])),
        lineterminator=draw(st.sampled_from(["\r\n", "\n", "\r"])),
    )
    for row in [header, *rows]:
        writer.writerow(row)
    return buffer.getvalue()


@st.composite
def clean_csv_files(draw: st.DrawFn) -> bytes:
    """A roster without a single problem (every required column once, each student once),
    under any aliases and layout: its every row must be imported."""
    names = ["student_ref", "name", "programme", "graduation_date", "school"]
    names += draw(st.lists(st.sampled_from(["language", "gender", "birth_year", "eqf_level"])))
    header = draw(st.permutations([draw(_spelled(name)) for name in dict.fromkeys(names)]))
    canonical = [ALIASES[re.sub(r"[\s.\-]+", "_", h.strip().casefold()).strip("_")] for h in header]
    ref = canonical.index("student_ref")
    rows = draw(
        st.lists(
            st.tuples(*(value_for(name, messiness=0) for name in header)).map(list),
            max_size=6,
            unique_by=lambda row: " ".join(row[ref].split()),
        )
    )
    return _csv_text(draw, header, rows).encode(draw(st.sampled_from(["utf-8", "utf-8-sig"])))


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A roster as a school's spreadsheet program might save it, or mangle it."""
    header = draw(columns())
    messiness = draw(st.sampled_from([0, 0, 0, 1, 5]))
    cells_of_a_row = st.tuples(*(value_for(name, messiness) for name in header)).map(list)
    if messiness:
        cells_of_a_row |= st.lists(cell_texts, max_size=len(header) + 2)  # ragged rows
    rows = draw(st.lists(cells_of_a_row, max_size=6))
    text = _csv_text(draw, header, rows)
    encoding = draw(st.sampled_from(["utf-8"] * 5 + ["utf-8-sig", "utf-16", "cp1252"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.integers(0, 19)) == 0:  # damage
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at:]
    return data


def check_table(table: Table) -> None:
    assert table.header and not all(not str(cell).strip() for cell in table.header)
    lines = [line for line, _ in table.rows]
    assert lines == sorted(set(lines)) and all(line > table.header_line for line in lines)
    for _, cells in table.rows:
        assert all(isinstance(cell, str) for cell in cells)


@settings(PROFILE, max_examples=READ_EXAMPLES)
@given(csv_files() | hostile_bytes())
@example(b"")
@example(b"\xef\xbb\xbf")
@example(b"a,b\n" + b"x" * 200_000 + b"\n")  # beyond the csv module's field limit
@example(b'a,b\n"unclosed\n')
@example(b"a\x00b,c\n1,2\n")
@example("naam;school\nZoë;x\n".encode("latin-1"))
def test_any_bytes_are_read_or_refused(data: bytes) -> None:
    try:
        table = read_csv(data)
    except FileProblem as problem:
        assert problem.problem.message and problem.problem.line >= 0
        return
    check_table(table)


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # duplicate member names are part of the damage
        for name, content in members:
            archive.writestr(name, content)
    return buffer.getvalue()


xlsx_members = st.lists(
    st.tuples(
        st.sampled_from(
            ["[Content_Types].xml", "xl/workbook.xml", "_rels/.rels", "xl/worksheets/sheet1.xml"]
        ),
        st.binary(max_size=60) | st.just(b"<?xml version='1.0'?><a/>"),
    ),
    max_size=4,
    unique_by=lambda member: member[0],
)


@settings(PROFILE, max_examples=XLSX_BYTES_EXAMPLES)
@given(hostile_bytes(200) | xlsx_members.map(_zip))
def test_any_bytes_as_an_xlsx_roster_are_refused(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "roster.xlsx"
        path.write_bytes(data)
        try:
            table = read_table(path)
        except FileProblem as problem:
            assert problem.problem.message
            return
        check_table(table)


# --- checking rows ----------------------------------------------------------------------------


def _school_lookups() -> _Lookups:
    """Two schools as the database would give them (no database needed to check rows)."""
    demo = Institution(id=1, code="demo-nl", name="Demo", country="NL", default_language="nl")
    bcn = Institution(id=2, code="bcn", name="Barcelona", country="ES", default_language="es")
    programmes = {
        1: [
            Programme(id=10, institution_id=1, code="ICT4", name="Software developer", eqf_level=4),
            Programme(id=11, institution_id=1, code="CHEF3", name="Cook", eqf_level=3),
        ],
        2: [
            Programme(id=20, institution_id=2, code="ADM", name="Twin", eqf_level=5),
            Programme(id=21, institution_id=2, code="ADM2", name="Twin", eqf_level=5),
        ],
    }
    return _Lookups({"demo-nl": demo, "bcn": bcn}, programmes)


def graduate_problem(
    values: dict[str, Any], ref: str, school_id: int, programme_school: int | None
) -> str | None:
    """Why a graduate's values may not be stored (None: they may). From the documented rules,
    not from the checking code."""

    def clean(text: object, limit: int) -> bool:
        return (
            isinstance(text, str)
            and 0 < len(text) <= limit
            and not CONTROL_OR_INVISIBLE.search(text)
            and text == " ".join(text.split())
            and text == unicodedata.normalize("NFC", text)
        )

    if not clean(ref, REF_MAX):
        return f"student_ref {ref!r}"
    if "name" in values and not clean(values["name"], NAME_MAX):
        return f"name {values['name']!r}"
    if values.get("language") not in (None, *LANGUAGES):
        return f"language {values['language']!r}"
    if values.get("gender") not in (None, *GENDERS):
        return f"gender {values['gender']!r}"
    year = values.get("birth_year")
    if year is not None and not (
        isinstance(year, int) and TODAY.year - 100 <= year <= TODAY.year - 10
    ):
        return f"birth_year {year!r}"
    when = values.get("graduation_date")
    if when is not None and not (
        isinstance(when, date)
        and EARLIEST_GRADUATION_YEAR <= when.year <= TODAY.year + GRADUATION_YEARS_AHEAD
    ):
        return f"graduation_date {when!r}"
    if programme_school is not None and programme_school != school_id:
        return "a programme of another school"
    return None


cells: st.SearchStrategy[Any] = st.one_of(
    cell_texts,
    st.none(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.datetimes(),
)


@settings(PROFILE, max_examples=CHECK_EXAMPLES)
@given(data=st.data())
def test_checked_rows_are_valid_and_every_other_row_has_a_problem(data: st.DataObject) -> None:
    header: list[Any] = data.draw(columns())
    rows = data.draw(
        st.lists(
            st.tuples(*(value_for(str(name)) | cells for name in header)).map(list)
            | st.lists(cells, max_size=len(header) + 2),
            max_size=8,
        )
    )
    table = Table(header, 1, [(line, row) for line, row in enumerate(rows, start=2)])
    school = data.draw(st.sampled_from([None, "demo-nl", "bcn"]))
    columns_, _ignored, header_problems = _map_header(table.header, 1)
    checked, problems = _check_rows(table, columns_, _school_lookups(), school, TODAY)
    assert all(problem.message for problem in [*header_problems, *problems])
    bad_lines = {problem.line for problem in problems}
    for row in checked:
        assert row.line not in bad_lines
        programme = row.values.get("programme_id")
        problem = graduate_problem(
            row.values,
            row.student_ref,
            row.institution_id,
            None if programme is None else programme // 10,  # ids 10, 11 at school 1...
        )
        assert problem is None, problem
    complete = all(c in columns_ for c in ("student_ref", "name", "programme", "graduation_date"))
    if complete and ("school" in columns_ or school):
        # Every row either passes or has a problem at its line.
        assert {row.line for row in checked} | bad_lines == {line for line, _ in table.rows}


# --- importing --------------------------------------------------------------------------------


async def _seed(db: Database) -> None:
    async with db.session() as session:
        if (await session.exec(select(Institution))).first() is not None:
            return
    await upsert_school(db, "demo-nl", name="Demo College", country="NL")
    await upsert_programme(db, "demo-nl", "ICT4", name="Software developer", eqf_level=4)
    await upsert_programme(db, "demo-nl", "CHEF3", name="Cook", eqf_level=3)
    await upsert_school(db, "bcn", name="Institut Barcelona", country="ES")
    await upsert_programme(db, "bcn", "ADM", name="Twin", eqf_level=5)
    await upsert_programme(db, "bcn", "ADM2", name="Twin", eqf_level=5)


async def _graduates(db: Database) -> dict[tuple[int, str], dict[str, Any]]:
    """Every graduate, by (school, student_ref)."""
    async with db.session() as session:
        rows = (await session.exec(select(Graduate).order_by(col(Graduate.id)))).all()
        programmes = {p.id: p.institution_id for p in (await session.exec(select(Programme))).all()}
    return {
        (g.institution_id, g.student_ref): {
            "name": g.name,
            "language": g.language,
            "gender": g.gender,
            "birth_year": g.birth_year,
            "graduation_date": g.graduation_date,
            "programme_school": programmes[g.programme_id],
            "invite_token": g.invite_token,
            "updated_at": g.updated_at,
        }
        for g in rows
    }


@settings(FIXTURE_PROFILE, max_examples=IMPORT_EXAMPLES)
@given(
    content=clean_csv_files() | csv_files(),
    school=st.sampled_from([None, None, None, "demo-nl", "DEMO-NL", "bcn", "nowhere"]),
    dry_run=st.integers(0, 4).map(lambda n: n == 0),
)
@example(content=b"\xff\xfe\x00junk", school=None, dry_run=False)
async def test_import_writes_exactly_the_checked_rows_or_nothing(
    db: Database, content: bytes, school: str | None, dry_run: bool
) -> None:
    await _seed(db)
    async with db.session() as session:
        lookups = await database_lookups(session)
    ids = {code: institution.id for code, institution in lookups.schools.items()}
    before = await _graduates(db)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "roster.csv"
        path.write_bytes(content)
        result = await import_roster(db, path, school_code=school, dry_run=dry_run, today=TODAY)
    after = await _graduates(db)
    assert all(problem.message for problem in result.problems)
    event("problems" if result.problems else "dry run" if dry_run else "written")
    if result.problems or dry_run:
        assert not result.written
        assert after == before, "nothing may change"
        return
    assert result.written
    # The rows the check passes are exactly the ones imported (created, updated, unchanged).
    table = read_csv(content)
    columns_, _, _ = _map_header(table.header, table.header_line)
    checked, problems = _check_rows(
        table, columns_, lookups, school.lower() if school else None, TODAY
    )
    assert not problems
    assert sorted(c.line for c in result.changes) == sorted(
        row.line
        for row in checked
        if (row.institution_id, row.student_ref) not in before
        or any(c.line == row.line for c in result.changes)
    )
    assert len(result.changes) + result.unchanged == len(checked)
    created = {(ids[c.school], c.student_ref) for c in result.changes if c.action == "create"}
    updated = {(ids[c.school], c.student_ref) for c in result.changes if c.action == "update"}
    assert created == set(after) - set(before) and set(before) <= set(after)
    assert (result.created, result.updated) == (len(created), len(updated))
    for key, values in after.items():
        if key in before and key not in updated:
            assert values == before[key], "a graduate not in the changes changed"
        problem = graduate_problem(values, key[1], key[0], values["programme_school"])
        assert problem is None, problem
        assert values["invite_token"]


def test_regression_a_damaged_xlsx_roster_is_a_problem(tmp_path: Path) -> None:
    """Found by test_any_bytes_as_an_xlsx_roster_are_refused: openpyxl reads a workbook
    lazily and fails with EOFError, ParseError, OSError or NotImplementedError, which escaped
    read_xlsx (and the dashboard's upload)."""
    for number, members in enumerate(
        [
            [("[Content_Types].xml", b"<?xml"), ("xl/workbook.xml", b"")],
            [("xl/workbook.xml", b"<?xml version='1.0'?><a/>")],
        ]
    ):
        path = tmp_path / f"roster{number}.xlsx"
        path.write_bytes(_zip(members))
        try:
            read_table(path)
        except FileProblem as problem:
            assert problem.problem.message.startswith("not a readable .xlsx workbook: ")
        else:
            raise AssertionError("a damaged workbook was read")
