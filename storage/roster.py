"""Roster import: a school's list of (future) graduates from CSV or XLSX, all or nothing.

The file is read and every row checked first; every problem is collected with the line (CSV)
or row (XLSX) number a person sees in their editor or in Excel, the header being line 1. Only a
file without problems is written, in one transaction. Rows are upserted by (school,
student_ref): existing graduates keep their chat link, invite token, consents and answers.

Columns (header names are case-insensitive; spaces, dots and hyphens count as underscores),
with the other names accepted for them:

- `student_ref` (required): student_id, student_number, student_no, student_nr, ref,
  studentnummer, leerlingnummer, matricola
- `name` (required): full_name, student_name, naam, nombre, nome, nimi
- `school` (required unless `--school` is given): school_code, institution
- `programme` (required; the programme's code or its exact name): program, programme_code,
  program_code, course, opleiding
- `eqf_level` (optional; must match the programme's level, not stored): eqf, level
- `graduation_date` (required): graduation, graduated, diploma_date, date
- `language` (optional: nl, es, et, it, en; empty lets the bot choose): lang, taal
- `gender` (optional; F/M/X/U and common words in the five languages): sex, geslacht
- `birth_year` (optional, four digits): year_of_birth, birthyear, born, geboortejaar

Other columns are ignored (and listed in the result). A column that is present is the truth
for the graduates in the file: an empty cell clears an optional value. A column that is absent
changes nothing. The roster language never overrides a language a graduate chose in the chat.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Table as SqlTable
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import _
from conversations.rules import LANGUAGES, new_invite_token, parse_birth_year
from conversations.waves import WavePlans
from storage.db import Database
from storage.erasure import ref_hash
from storage.invitations import plan_invitations
from storage.models import ErasedRef, Graduate, Institution, Programme
from storage.types import utcnow

NAME_MAX = 200
REF_MAX = 64
LOOKUP_BY_REF_MAX = 500
LOOKUP_BATCH = 5000
EARLIEST_GRADUATION_YEAR = 1950
GRADUATION_YEARS_AHEAD = 6

REQUIRED = ("student_ref", "name", "school", "programme", "graduation_date")

ALIASES: dict[str, str] = {
    alias: canonical
    for canonical, aliases in {
        "student_ref": (
            "student_ref",
            "student_id",
            "student_number",
            "student_no",
            "student_nr",
            "ref",
            "studentnummer",
            "leerlingnummer",
            "matricola",
        ),
        "name": ("name", "full_name", "student_name", "naam", "nombre", "nome", "nimi"),
        "school": ("school", "school_code", "institution"),
        "programme": (
            "programme",
            "program",
            "programme_code",
            "program_code",
            "course",
            "opleiding",
        ),
        "eqf_level": ("eqf_level", "eqf", "level"),
        "graduation_date": ("graduation_date", "graduation", "graduated", "diploma_date", "date"),
        "language": ("language", "lang", "taal"),
        "gender": ("gender", "sex", "geslacht"),
        "birth_year": ("birth_year", "year_of_birth", "birthyear", "born", "geboortejaar"),
    }.items()
    for alias in aliases
}

FEMALE, MALE, OTHER, UNKNOWN = "female", "male", "other", "unknown"
# Common ways to write gender in English, Dutch, Spanish, Estonian and Italian rosters.
GENDERS: dict[str, str] = {
    **dict.fromkeys(
        (
            "f",
            "female",
            "woman",
            "v",
            "vrouw",
            "vrouwelijk",
            "mujer",
            "femenino",
            "femenina",
            "naine",
            "naissoost",
            "donna",
            "femmina",
            "femminile",
        ),
        FEMALE,
    ),
    **dict.fromkeys(
        (
            "m",
            "male",
            "man",
            "mannelijk",
            "hombre",
            "masculino",
            "mees",
            "meessoost",
            "uomo",
            "maschio",
            "maschile",
        ),
        MALE,
    ),
    **dict.fromkeys(
        (
            "x",
            "other",
            "non-binary",
            "nonbinary",
            "non binary",
            "diverse",
            "anders",
            "overig",
            "non-binair",
            "niet-binair",
            "otro",
            "otra",
            "no binario",
            "muu",
            "altro",
            "non binario",
        ),
        OTHER,
    ),
    **dict.fromkeys(
        (
            "u",
            "unknown",
            "not stated",
            "prefer not to say",
            "onbekend",
            "desconocido",
            "no consta",
            "teadmata",
            "sconosciuto",
            "non indicato",
        ),
        UNKNOWN,
    ),
}
# Letters whose meaning depends on the country's forms: Estonian N(aine), Spanish H(ombre).
COUNTRY_GENDERS: dict[str, dict[str, str]] = {"EE": {"n": FEMALE}, "ES": {"h": MALE}}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Invisible format characters that only hide or reorder text: zero-width space, bidi
# embeddings/overrides/isolates, BOM. (Zero-width joiners stay: scripts and emoji need them.)
_INVISIBLE = re.compile("[\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]00:00(?::00(?:\.0+)?)?)?$")
_DMY_DATE = re.compile(r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4})$")
_HEADER_SEPARATORS = re.compile(r"[\s.\-]+")


class Problem(NamedTuple):
    """A problem at a line of the file (the header is line 1; 0: the file as a whole)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True)
class RowChange:
    """A graduate the import creates or updates; `fields` are the changed columns."""

    line: int
    school: str
    student_ref: str
    action: str  # "create" or "update"
    fields: tuple[str, ...] = ()


@dataclass
class ImportResult:
    path: str
    dry_run: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    changes: list[RowChange] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    #: Lines of graduates who had their data erased: left out, never created again.
    erased: list[int] = field(default_factory=list)
    written: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------------------------------------
# Reading the file


@dataclass
class Table:
    header: list[Any]
    header_line: int
    rows: list[tuple[int, list[Any]]]


class FileProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(line, message)


def _blank(cells: Sequence[Any]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


def _delimiter(text: str) -> str:
    """Semicolon (Dutch/Italian/Spanish Excel), tab or comma: whichever the header uses most."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in (";", "\t", ",")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(data: bytes) -> Table:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise FileProblem(
            line,
            _(
                "the file is not UTF-8 text (byte 0x{byte}); "
                "in Excel choose 'Save as' → 'CSV UTF-8'"
            ).format(byte=f"{data[error.start]:02x}"),
        ) from error
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    header: list[Any] | None = None
    header_line = 1
    rows: list[tuple[int, list[Any]]] = []
    previous = 0
    try:
        for record in reader:
            line, previous = previous + 1, reader.line_num
            if _blank(record):
                continue
            if header is None:
                header, header_line = record, line
            else:
                rows.append((line, record))
    except csv.Error as error:
        raise FileProblem(
            reader.line_num, _("the CSV cannot be read here: {error}").format(error=error)
        ) from error
    if header is None:
        raise FileProblem(1, _("the file is empty"))
    return Table(header, header_line, rows)


def read_xlsx(path: Path) -> Table:
    """The first sheet; row numbers are Excel's."""
    from openpyxl import load_workbook

    header: list[Any] | None = None
    header_line = 1
    rows: list[tuple[int, list[Any]]] = []
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
        try:
            sheet = workbook.worksheets[0]
            # Some writers store a wrong used range; read every row that is really there.
            sheet.reset_dimensions()
            for number, values in enumerate(sheet.iter_rows(min_row=1, values_only=True), 1):
                cells = list(values)
                if _blank(cells):
                    continue
                if header is None:
                    header, header_line = cells, number
                else:
                    rows.append((number, cells))
        finally:
            workbook.close()
    except Exception as error:
        # A damaged or hostile file: openpyxl reads it lazily, row by row, and fails with
        # whatever its zip and XML readers raise (EOFError, ParseError, OSError, ...).
        raise FileProblem(
            0,
            _("not a readable .xlsx workbook: {error}").format(error=error or type(error).__name__),
        ) from error
    if header is None:
        raise FileProblem(1, _("the first sheet is empty"))
    return Table(header, header_line, rows)


def read_table(path: Path) -> Table:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return read_xlsx(path)
    if suffix == ".xls":
        raise FileProblem(
            0, _("old Excel .xls files are not supported: save as .xlsx or CSV UTF-8")
        )
    return read_csv(path.read_bytes())


# ---------------------------------------------------------------------------------------------
# Values


def clean_text(value: Any) -> str:
    """A cell as text: control and invisible characters removed, white space collapsed.
    Values that look like formulas (=, +, -, @) stay plain text; nothing is evaluated."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "TRUE" if value else "FALSE"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, datetime):
        text = value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        text = str(value)
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", _CONTROL.sub(" ", text))
    return " ".join(text.split())


def parse_date(value: Any, today: date) -> date | str:
    """A graduation date, or why not. ISO 2026-06-30; day first 30-06-2026, 30/06/2026,
    30.06.2026; an Excel date cell."""
    if isinstance(value, datetime):
        parsed = value.date()
    elif isinstance(value, date):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return _(
            "graduation_date {value} is a number, not a date: format the cells as dates"
        ).format(value=repr(clean_text(value)))
    else:
        text = clean_text(value)
        iso, dmy = _ISO_DATE.match(text), _DMY_DATE.match(text)
        try:
            if iso:
                parsed = date(int(iso[1]), int(iso[2]), int(iso[3]))
            elif dmy:
                parsed = date(int(dmy[4]), int(dmy[3]), int(dmy[1]))
            else:
                return _(
                    "graduation_date {value} is not a date: "
                    "use 2026-06-30, 30-06-2026, 30/06/2026 or 30.06.2026"
                ).format(value=repr(text))
        except ValueError:
            return _("graduation_date {value} is not a date of the calendar").format(
                value=repr(text)
            )
    last = today.year + GRADUATION_YEARS_AHEAD
    if not EARLIEST_GRADUATION_YEAR <= parsed.year <= last:
        return _("graduation_date {value} is outside {first}-{last}").format(
            value=parsed.isoformat(), first=EARLIEST_GRADUATION_YEAR, last=last
        )
    return parsed


def parse_language(text: str) -> str | None:
    """nl, es, et, it, en (any case; a region like nl-BE is dropped); '' for empty; None: bad."""
    if not text:
        return ""
    code = text.replace("_", "-").split("-")[0].lower()
    return code if code in LANGUAGES else None


def parse_gender(text: str, country: str | None) -> str | None:
    """female/male/other/unknown, '' for empty; None when not recognised."""
    if not text:
        return ""
    key = " ".join(text.casefold().replace(".", " ").replace("_", " ").split())
    return COUNTRY_GENDERS.get((country or "").upper(), {}).get(key) or GENDERS.get(key)


def parse_eqf(value: Any) -> int | None:
    text = clean_text(value)
    if re.fullmatch(r"[1-8]", text):
        return int(text)
    return None


# ---------------------------------------------------------------------------------------------
# Checking the rows


@dataclass
class _Row:
    line: int
    institution_id: int
    school_code: str
    student_ref: str
    values: dict[str, Any]  # the Graduate columns the file gives


@dataclass
class _Lookups:
    schools: dict[str, Institution]
    programmes: dict[int, list[Programme]]


def _map_header(header: list[Any], line: int) -> tuple[dict[str, int], list[str], list[Problem]]:
    columns: dict[str, int] = {}
    ignored: list[str] = []
    problems: list[Problem] = []
    for index, cell in enumerate(header):
        title = clean_text(cell)
        key = _HEADER_SEPARATORS.sub("_", title.casefold()).strip("_")
        canonical = ALIASES.get(key)
        if canonical is None:
            if title:
                ignored.append(title)
            continue
        if canonical in columns:
            first = clean_text(header[columns[canonical]])
            problems.append(
                Problem(
                    line,
                    _("columns {first} and {second} both give {column}").format(
                        first=repr(first), second=repr(title), column=canonical
                    ),
                )
            )
            continue
        columns[canonical] = index
    return columns, ignored, problems


def _find_programme(programmes: list[Programme], value: str, school: str) -> Programme | str:
    """By code (exact, then ignoring case), then by exact name; or why none."""
    for p in programmes:
        if p.code == value:
            return p
    folded = [p for p in programmes if p.code.casefold() == value.casefold()]
    if len(folded) == 1:
        return folded[0]
    named = [p for p in programmes if p.name == value]
    if len(named) == 1:
        return named[0]
    if named:
        codes = ", ".join(sorted(p.code for p in named))
        return _(
            "programme name {value} is ambiguous at school {school}: use a code ({codes})"
        ).format(value=repr(value), school=repr(school), codes=codes)
    return _("unknown programme {value} at school {school}").format(
        value=repr(value), school=repr(school)
    )


def _check_rows(
    table: Table,
    columns: dict[str, int],
    lookups: _Lookups,
    school_code: str | None,
    today: date,
) -> tuple[list[_Row], list[Problem]]:
    rows: list[_Row] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, str], int] = {}

    for line, cells in table.rows:

        def cell(name: str, cells: list[Any] = cells) -> Any:
            index = columns.get(name)
            return cells[index] if index is not None and index < len(cells) else None

        bad: list[str] = []
        values: dict[str, Any] = {}

        ref = clean_text(cell("student_ref"))
        if "student_ref" in columns:
            if not ref:
                bad.append(_("student_ref is empty"))
            elif len(ref) > REF_MAX:
                bad.append(
                    _("student_ref is longer than {limit} characters ({length})").format(
                        limit=REF_MAX, length=len(ref)
                    )
                )

        name = clean_text(cell("name"))
        if "name" in columns:
            if not name:
                bad.append(_("name is empty"))
            elif len(name) > NAME_MAX:
                bad.append(
                    _("name is longer than {limit} characters ({length})").format(
                        limit=NAME_MAX, length=len(name)
                    )
                )
            else:
                values["name"] = name

        school: Institution | None = None
        code = clean_text(cell("school")).lower()
        if school_code and code and code != school_code:
            bad.append(
                _("school {code} is not {school}, the school chosen for this import").format(
                    code=repr(code), school=repr(school_code)
                )
            )
        code = code or (school_code or "")
        if not code:
            if "school" in columns:
                bad.append(_("school is empty"))
        else:
            school = lookups.schools.get(code)
            if school is None:
                bad.append(_("unknown school {code}").format(code=repr(code)))

        programme: Programme | None = None
        programme_text = clean_text(cell("programme"))
        if "programme" in columns:
            if not programme_text:
                bad.append(_("programme is empty"))
            elif school is not None:
                assert school.id is not None
                found = _find_programme(
                    lookups.programmes.get(school.id, []), programme_text, school.code
                )
                if isinstance(found, str):
                    bad.append(found)
                else:
                    programme = found
                    values["programme_id"] = programme.id

        if "eqf_level" in columns:
            raw = cell("eqf_level")
            if clean_text(raw):
                level = parse_eqf(raw)
                if level is None:
                    bad.append(
                        _("eqf_level {value} is not a level from 1 to 8").format(
                            value=repr(clean_text(raw))
                        )
                    )
                elif (
                    programme is not None
                    and programme.eqf_level is not None
                    and programme.eqf_level != level
                ):
                    bad.append(
                        _("eqf_level {level} does not match programme {code} (EQF {eqf})").format(
                            level=level, code=repr(programme.code), eqf=programme.eqf_level
                        )
                    )

        if "graduation_date" in columns:
            raw = cell("graduation_date")
            if not clean_text(raw):
                bad.append(_("graduation_date is empty"))
            else:
                parsed = parse_date(raw, today)
                if isinstance(parsed, str):
                    bad.append(parsed)
                else:
                    values["graduation_date"] = parsed

        if "language" in columns:
            text = clean_text(cell("language"))
            language = parse_language(text)
            if language is None:
                bad.append(
                    _("language {value} is not supported: use {languages}").format(
                        value=repr(text), languages=", ".join(LANGUAGES)
                    )
                )
            else:
                values["language"] = language or None

        if "gender" in columns:
            text = clean_text(cell("gender"))
            gender = parse_gender(text, school.country if school else None)
            if gender is None:
                bad.append(
                    _("gender {value} is not recognised: use F, M, X or U").format(value=repr(text))
                )
            else:
                values["gender"] = gender or None

        if "birth_year" in columns:
            text = clean_text(cell("birth_year"))
            if not text:
                values["birth_year"] = None
            else:
                year = parse_birth_year(text, today)
                if year is None:
                    bad.append(
                        _(
                            "birth_year {value} is not a plausible year of birth "
                            "(4 digits, {first}-{last})"
                        ).format(value=repr(text), first=today.year - 100, last=today.year - 10)
                    )
                else:
                    values["birth_year"] = year

        if ref and code:
            key = (code, ref)
            if key in seen:
                bad.append(
                    _("duplicate student_ref {value} (also on line {line})").format(
                        value=repr(ref), line=seen[key]
                    )
                )
            else:
                seen[key] = line

        problems.extend(Problem(line, message) for message in bad)
        if not bad and school is not None and school.id is not None:
            rows.append(_Row(line, school.id, school.code, ref, values))
    return rows, problems


# ---------------------------------------------------------------------------------------------
# The database side


async def _lookups(session: AsyncSession) -> _Lookups:
    schools = (await session.exec(select(Institution))).all()
    programmes = (await session.exec(select(Programme).order_by(col(Programme.id)))).all()
    by_school: dict[int, list[Programme]] = {}
    for p in programmes:
        by_school.setdefault(p.institution_id, []).append(p)
    return _Lookups({s.code.lower(): s for s in schools}, by_school)


GRADUATE_TABLE: SqlTable = Graduate.__table__  # type: ignore[attr-defined]
_COMPARED = ("programme_id", "name", "graduation_date", "language", "gender", "birth_year")


async def _existing(session: AsyncSession, rows: list[_Row]) -> dict[tuple[int, str], Any]:
    """The graduates the rows refer to, in a few queries whatever the file's size.

    A small file asks for its references; a large one reads the school's graduates once and
    keeps those in the file (right after a big import PostgreSQL's statistics are stale, and
    many IN (...) lookups would each scan the table).
    """
    refs: dict[int, set[str]] = {}
    for row in rows:
        refs.setdefault(row.institution_id, set()).add(row.student_ref)
    table = GRADUATE_TABLE.c
    columns = (
        table.id,
        table.institution_id,
        table.student_ref,
        table.chat_id,
        *(table[name] for name in _COMPARED),
    )
    found: dict[tuple[int, str], Any] = {}
    for institution_id, wanted in refs.items():
        query = select(*columns).where(table.institution_id == institution_id)
        if len(wanted) <= LOOKUP_BY_REF_MAX:
            query = query.where(table.student_ref.in_(sorted(wanted)))
        result = await session.stream(query.execution_options(yield_per=LOOKUP_BATCH))
        async for partition in result.partitions():
            for record in partition:
                if record.student_ref in wanted:
                    found[(record.institution_id, record.student_ref)] = record
    return found


async def _without_erased(
    session: AsyncSession,
    rows: list[_Row],
    existing: dict[tuple[int, str], Any],
    key: bytes,
    result: ImportResult,
) -> list[_Row]:
    """Leave out the new rows of graduates who had their data erased (by keyed hash)."""
    new = [row for row in rows if (row.institution_id, row.student_ref) not in existing]
    if not new:
        return rows
    hashes = {id(row): ref_hash(key, row.institution_id, row.student_ref) for row in new}
    erased = set(
        (
            await session.exec(
                select(ErasedRef.institution_id, ErasedRef.ref_hash).where(
                    col(ErasedRef.ref_hash).in_(set(hashes.values()))
                )
            )
        ).all()
    )
    kept = []
    for row in rows:
        if id(row) in hashes and (row.institution_id, hashes[id(row)]) in erased:
            result.erased.append(row.line)
        else:
            kept.append(row)
    return kept


def _plan(
    rows: list[_Row], existing: dict[tuple[int, str], Any], result: ImportResult
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    now = utcnow()
    creates: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for row in rows:
        before = existing.get((row.institution_id, row.student_ref))
        if before is None:
            creates.append(
                {
                    "institution_id": row.institution_id,
                    "student_ref": row.student_ref,
                    "name": None,
                    "language": None,
                    "gender": None,
                    "birth_year": None,
                    **row.values,
                    "self_registered": False,
                    "invite_token": new_invite_token(),
                    "created_at": now,
                    "updated_at": now,
                }
            )
            result.changes.append(RowChange(row.line, row.school_code, row.student_ref, "create"))
            continue
        values = dict(row.values)
        if before.chat_id is not None:
            # The graduate chose their language in the chat: the roster's does not override it.
            values.pop("language", None)
        changed = tuple(k for k in _COMPARED if k in values and getattr(before, k) != values[k])
        if not changed:
            result.unchanged += 1
            continue
        updates.append({"id": before.id, **{k: values[k] for k in changed}, "updated_at": now})
        result.changes.append(
            RowChange(row.line, row.school_code, row.student_ref, "update", changed)
        )
    result.created = len(creates)
    result.updated = len(updates)
    return creates, updates


async def _write(
    session: AsyncSession, creates: list[dict[str, Any]], updates: list[dict[str, Any]]
) -> None:
    if creates:
        # Core INSERT (executemany, batched by the driver): 50,000 rows in about two seconds.
        await session.exec(insert(GRADUATE_TABLE), params=creates)
    # Bulk UPDATE by primary key wants the same keys in every parameter set per statement.
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for values in updates:
        groups.setdefault(tuple(sorted(values)), []).append(values)
    for group in groups.values():
        await session.exec(update(Graduate), params=group)


async def import_roster(
    db: Database,
    path: str | Path,
    *,
    school_code: str | None = None,
    dry_run: bool = False,
    today: date | None = None,
    ref_key: bytes | None = None,
    plans: WavePlans | None = None,
    now: datetime | None = None,
) -> ImportResult:
    """Check the roster at `path` and, unless `dry_run` or any problem, upsert it in one
    transaction. The result says what was (or would be) created, updated and left unchanged,
    and every problem with its line. With `plans`, the invitations of the new graduates are
    planned right after (so that a wave open for them can be answered at once)."""
    path = Path(path)
    today = today or date.today()
    result = ImportResult(path=str(path), dry_run=dry_run)
    try:
        table = read_table(path)
    except FileProblem as problem:
        result.problems.append(problem.problem)
        return result
    result.rows = len(table.rows)
    columns, result.ignored_columns, header_problems = _map_header(table.header, table.header_line)
    result.problems.extend(header_problems)
    required = [c for c in REQUIRED if not (c == "school" and school_code)]
    result.problems.extend(
        Problem(table.header_line, _("missing required column {name}").format(name=repr(name)))
        for name in required
        if name not in columns
    )
    code = school_code.strip().lower() if school_code else None
    try:
        async with db.session() as session:
            lookups = await _lookups(session)
            if code and code not in lookups.schools:
                result.problems.insert(
                    0, Problem(0, _("unknown school {code}").format(code=repr(code)))
                )
                return result
            rows, row_problems = _check_rows(table, columns, lookups, code, today)
            result.problems.extend(row_problems)
            result.problems.sort(key=lambda p: p.line)
            existing = await _existing(session, rows)
            if ref_key is not None:
                rows = await _without_erased(session, rows, existing, ref_key, result)
            creates, updates = _plan(rows, existing, result)
            if dry_run or result.problems:
                await session.rollback()
                return result
            await _write(session, creates, updates)
        result.written = True
        schools = {int(values["institution_id"]) for values in creates}
        if plans is not None and schools:
            await plan_invitations(db, plans, now=now or utcnow(), institution_ids=schools)
    except IntegrityError as error:
        result.written = False
        result.problems.append(
            Problem(
                0,
                _(
                    "the database refused the import, nothing was written (did another "
                    "import run at the same time? try again): {error}"
                ).format(error=error.orig),
            )
        )
    return result
