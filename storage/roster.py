"""Roster import: a school's list of (future) graduates from CSV or XLSX, all or nothing.

The file is read and every row checked first; every problem is collected with the line (CSV)
or row (XLSX) number a person sees in their editor or in Excel, the header being line 1. Only a
file without problems is written, in one transaction. Rows are upserted by (school,
student_ref): existing graduates keep their chat link, invite token, consents and answers.

The file is read within `Limits` (rows, columns, cell and row length, unpacked size: refused
as soon as one is passed), in a worker thread; the report keeps the first 100 problems and
counts the rest.

Columns (header names are case-insensitive; accents do not count; spaces, dots and hyphens
count as underscores). Each column has a header in each of the five languages (`HEADERS`: the
header row of the template the dashboard offers, e.g. Dutch studentnummer, naam, school,
opleiding, diplomadatum, eqf-niveau, taal, geslacht, geboortejaar), and the other names in
`_OTHER_NAMES` are accepted too:

- `student_ref` (required): the school's number for the student
- `name` (required)
- `school` (required unless `--school` is given, or the staff member's school is used)
- `programme` (required; the programme's code or its exact name)
- `eqf_level` (optional; must match the programme's level, not stored)
- `graduation_date` (required)
- `language` (optional: nl, es, et, it, en; empty lets the bot choose)
- `gender` (optional; F/M/X/U and common words in the five languages)
- `birth_year` (optional, four digits)
- `email` (optional; checked and normalised by conversations/contacts.py, no DNS; the same
  address twice in a file is refused)
- `mobile` (optional; E.164, a national number in the school's country's plan)
- `isco_groups`, `pathway`, `vet_kind` (optional; the programme's, not the graduate's): the
  ISCO-08 major groups the programme trains for ("5", "5;7", "5, 7", "ISCO 5"), school-based
  or work-based ("BOL", "BBL", "school-based", "dual"), IVET or CVET ("IVET", "initial",
  "continuing"); conversations/programme_kinds.py reads them. A value sets the programme's;
  an empty cell leaves it as it is; two rows of one programme must not disagree.

A problem names a column by the header the file gives it, or (a missing column) by its header
in the staff member's language.

Other columns are ignored (and listed in the result). A column that is present is the truth
for the graduates in the file: an empty cell clears an optional value. A column that is absent
changes nothing. The roster language never overrides a language a graduate chose in the chat.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from babel.numbers import format_decimal
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlalchemy import Table as SqlTable
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import _, current_language, ngettext
from conversations.contacts import (
    ContactError,
    ContactProblem,
    country_calling_code,
    email_key,
    normalise_email,
    normalise_mobile,
)
from conversations.programme_kinds import (
    ProgrammeKindError,
    isco_text,
    parse_isco_groups,
    parse_pathway,
    parse_vet_kind,
)
from conversations.rules import LANGUAGES, new_invite_token, parse_birth_year
from conversations.waves import WavePlans
from conversations.workbooks import MEGABYTE, megabytes, open_workbook, unpacked_size
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
#: Every column the importer reads, in the order of the template.
COLUMNS = (
    *REQUIRED,
    "eqf_level",
    "language",
    "gender",
    "birth_year",
    "email",
    "mobile",
    "isco_groups",
    "pathway",
    "vet_kind",
)
#: Columns that describe the row's programme, not the graduate (set on the programme).
PROGRAMME_COLUMNS = ("isco_groups", "pathway", "vet_kind")

#: Each column's header in each language: the header row of the template a staff member
#: downloads, the name problems give a column the file does not have, and a header the
#: importer accepts. English uses the column names themselves. (Data, not translations: the
#: importer must accept exactly these words.)
HEADERS: dict[str, dict[str, str]] = {
    "en": {column: column for column in COLUMNS},
    "nl": {
        "student_ref": "studentnummer",
        "name": "naam",
        "school": "school",
        "programme": "opleiding",
        "graduation_date": "diplomadatum",
        "eqf_level": "eqf-niveau",
        "language": "taal",
        "gender": "geslacht",
        "birth_year": "geboortejaar",
        "email": "e-mailadres",
        "mobile": "mobiel nummer",
        "isco_groups": "ISCO-beroepsgroepen",
        "pathway": "leerweg",
        "vet_kind": "initieel of voortgezet",
    },
    "es": {
        "student_ref": "número de estudiante",
        "name": "nombre",
        "school": "centro",
        "programme": "ciclo formativo",
        "graduation_date": "fecha de titulación",
        "eqf_level": "nivel EQF",
        "language": "idioma",
        "gender": "sexo",
        "birth_year": "año de nacimiento",
        "email": "correo electrónico",
        "mobile": "móvil",
        "isco_groups": "grupos ISCO",
        "pathway": "modalidad",
        "vet_kind": "FP inicial o continua",
    },
    "it": {
        "student_ref": "matricola",
        "name": "nome",
        "school": "scuola",
        "programme": "corso",
        "graduation_date": "data del diploma",
        "eqf_level": "livello EQF",
        "language": "lingua",
        "gender": "genere",
        "birth_year": "anno di nascita",
        "email": "posta elettronica",
        "mobile": "cellulare",
        "isco_groups": "gruppi ISCO",
        "pathway": "tipo di percorso",
        "vet_kind": "formazione iniziale o continua",
    },
    "et": {
        "student_ref": "matriklinumber",
        "name": "nimi",
        "school": "kool",
        "programme": "õppekava",
        "graduation_date": "lõpetamise kuupäev",
        "eqf_level": "EKR tase",
        "language": "keel",
        "gender": "sugu",
        "birth_year": "sünniaasta",
        "email": "e-post",
        "mobile": "mobiil",
        "isco_groups": "ISCO pearühmad",
        "pathway": "õppevorm",
        "vet_kind": "esma- või täiendõpe",
    },
}

# Other names in use, in the five languages, for each column (besides HEADERS).
_OTHER_NAMES: dict[str, tuple[str, ...]] = {
    "student_ref": (
        "student_id",
        "student_number",
        "student_no",
        "student_nr",
        "ref",
        "studentnr",
        "leerlingnummer",
        "deelnemernummer",
        "deelnemersnummer",
        "numero_estudiante",
        "n_estudiante",
        "numero_alumno",
        "numero_de_alumno",
        "expediente",
        "numero_matricola",
        "matricola_studente",
        "matrikli_nr",
        "oppija_kood",
        "oppijakood",
        "opilase_number",
    ),
    "name": (
        "full_name",
        "student_name",
        "volledige_naam",
        "nombre_completo",
        "nome_completo",
        "nome_e_cognome",
        "ees_ja_perekonnanimi",
        "taisnimi",
    ),
    "school": (
        "school_code",
        "institution",
        "instelling",
        "schoolcode",
        "centro_educativo",
        "instituto",
        "istituto",
        "codice_scuola",
        "oppeasutus",
    ),
    "programme": (
        "program",
        "programme_code",
        "program_code",
        "course",
        "opleidingscode",
        "ciclo",
        "programa",
        "estudios",
        "indirizzo",
        "percorso",
        "qualifica",
        "eriala",
        "oppekava_kood",
    ),
    "eqf_level": (
        "eqf",
        "level",
        "eqf_niveau",
        "nivel",
        "nivel_eqf",
        "livello",
        "livello_eqf",
        "ekr_tase",
        "eqf_tase",
        "tase",
    ),
    "graduation_date": (
        "graduation",
        "graduated",
        "diploma_date",
        "date",
        "datum_diploma",
        "diploma_datum",
        "afstudeerdatum",
        "fecha_titulacion",
        "fecha_de_graduacion",
        "fecha_graduacion",
        "data_diploma",
        "data_qualifica",
        "data_conseguimento",
        "lopetamise_kuupaev",
        "lopetamise_kp",
        "lopukuupaev",
    ),
    "language": ("lang", "lengua", "suhtluskeel"),
    "gender": ("sex", "genero", "sesso", "sugu"),
    "birth_year": (
        "year_of_birth",
        "birthyear",
        "born",
        "ano_nacimiento",
        "anio_nacimiento",
        "anno_nascita",
        "anno_di_nascita",
        "synniaasta",
    ),
    "email": (
        "e_mail",
        "mail",
        "email_address",
        "e_mail_address",
        "emailadres",
        "correo",
        "correo_electronico",
        "e_posti_aadress",
        "meiliaadress",
        "indirizzo_email",
        "indirizzo_e_mail",
    ),
    "mobile": (
        "mobile_phone",
        "mobile_number",
        "phone",
        "phone_number",
        "mobiel",
        "mobielnummer",
        "telefoon",
        "telefoonnummer",
        "gsm",
        "movil",
        "telefono_movil",
        "celular",
        "mobiiltelefon",
        "mobiilinumber",
        "telefon",
        "numero_di_cellulare",
        "telefono_cellulare",
    ),
    "isco_groups": (
        "isco",
        "isco_08",
        "isco_group",
        "isco_major_groups",
        "occupation_groups",
        "isco_beroepsgroep",
        "isco_groepen",
        "beroepsgroepen",
        "grupo_isco",
        "grupos_ocupacionales",
        "gruppo_isco",
        "isco_pearuhm",
        "ametiruhmad",
    ),
    "pathway": (
        "learning_pathway",
        "bol_bbl",
        "bol/bbl",
        "school_or_work_based",
        "modalidad_fp",
        "fp_dual",
        "percorso_formativo",
        "tookohapohine",
    ),
    "vet_kind": (
        "ivet_cvet",
        "ivet/cvet",
        "vet_type",
        "type_of_vet",
        "initial_or_continuing",
        "ivet_of_cvet",
        "tipo_de_fp",
        "tipo_di_formazione",
        "oppe_liik",
    ),
}

_HEADER_SEPARATORS = re.compile(r"[\s.\-]+")


def header_key(title: str) -> str:
    """A header as the importer compares it: case, accents, and spaces, dots and hyphens (as
    underscores) do not count: 'Fecha de titulación' -> 'fecha_de_titulacion'."""
    decomposed = unicodedata.normalize("NFKD", title.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _HEADER_SEPARATORS.sub("_", plain).strip("_")


#: Header key -> column, for every header of HEADERS and every other name.
ALIASES: dict[str, str] = {
    header_key(alias): column
    for column in COLUMNS
    for alias in (
        column,
        *(headers[column] for headers in HEADERS.values()),
        *_OTHER_NAMES[column],
    )
}


def column_title(column: str, lang: str | None = None) -> str:
    """A column's header in `lang` (default: the current language)."""
    headers = HEADERS.get(lang or current_language(), HEADERS["en"])
    return headers[column]


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


@dataclass(frozen=True)
class ProgrammeChange:
    """A programme whose `fields` (PROGRAMME_COLUMNS) the import sets or would set."""

    school: str
    code: str
    fields: tuple[str, ...]


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
    #: Problems found beyond the ones in `problems` (the first Limits.problems, by line).
    more_problems: int = 0
    #: Programmes whose ISCO groups, pathway or VET kind the file changes.
    programmes: list[ProgrammeChange] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problem_count(self) -> int:
        return len(self.problems) + self.more_problems


class ProblemList(list[Problem]):
    """Problems in the order they are found: the first `shown` kept, the rest only counted
    (a file of 50,000 bad rows must not make a report of 50,000 lines)."""

    def __init__(self, shown: int | None = None) -> None:
        super().__init__()
        self.shown = shown
        self.more = 0

    def add(self, problem: Problem) -> None:
        if self.shown is None or len(self) < self.shown:
            self.append(problem)
        else:
            self.more += 1


# ---------------------------------------------------------------------------------------------
# What the columns are, and a template to fill in

#: Languages whose spreadsheet programs separate CSV cells with ';' (a decimal comma).
_SEMICOLON_LANGUAGES = frozenset({"nl", "es", "et", "it"})
DATE_FORMAT = "yyyy-mm-dd"
TEXT_FORMAT = "@"


@dataclass(frozen=True)
class ColumnGuide:
    column: str
    title: str
    """The header in the staff member's language."""
    required: bool
    meaning: str
    example: str


def column_guide(
    *, school_given: bool = False, school: str | None = None, programme: str | None = None
) -> list[ColumnGuide]:
    """Every column with its header, whether it is required, a one-line meaning and an
    example, in the current language. `school_given`: the school comes from the upload form
    (or the staff member's own school), so the school column may be left out. `school` and
    `programme`: codes for the examples."""
    meanings = {
        "student_ref": (
            _("The school's own number for the student; it stays the same in every file."),
            "2026-0142",
        ),
        "name": (_("The graduate's full name."), _("Noor Jansen")),
        "school": (
            _("Your school's code; you may leave it out (your own school is used).")
            if school_given
            else _("The school's code; not needed when you choose the school above."),
            school or "alfa",
        ),
        "programme": (
            _("The programme's code, or its exact name."),
            programme or "ICT4",
        ),
        "graduation_date": (
            _("The date of the diploma (expected or obtained), formatted as a date."),
            "2026-06-30",
        ),
        "eqf_level": (
            _("The EQF level of the programme, 1 to 8; it must match the programme."),
            "4",
        ),
        "language": (
            _("The language the bot speaks to the graduate: nl, es, et, it or en."),
            current_language(),
        ),
        "gender": (_("F, M, X (other) or U (unknown)."), "F"),
        "birth_year": (_("The year of birth, four digits."), "2007"),
        "email": (
            _("An e-mail address, to reach graduates who are not in a chat."),
            "noor.jansen@example.org",
        ),
        "mobile": (
            _("A mobile number, with the country code or as dialled in the school's country."),
            "+31 6 12345678",
        ),
        "isco_groups": (
            _(
                "The programme's: the ISCO-08 major groups (0 to 9) of the occupations it "
                "trains for, separated by ; or a comma. An empty cell changes nothing."
            ),
            "5;7",
        ),
        "pathway": (
            _(
                "The programme's: school-based (BOL) or work-based (BBL, apprenticeship). "
                "An empty cell changes nothing."
            ),
            "BOL",
        ),
        "vet_kind": (
            _(
                "The programme's: IVET (initial VET) or CVET (continuing VET). An empty cell "
                "changes nothing."
            ),
            "IVET",
        ),
    }
    return [
        ColumnGuide(
            column,
            column_title(column),
            column in REQUIRED and not (column == "school" and school_given),
            *meanings[column],
        )
        for column in COLUMNS
    ]


def template_csv(lang: str) -> bytes:
    """An empty roster with the header row in `lang`: UTF-8 with a byte order mark (so Excel
    reads the accents), cells separated the way a spreadsheet program in `lang` expects."""
    buffer = io.StringIO()
    delimiter = ";" if lang in _SEMICOLON_LANGUAGES else ","
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerow(
        [column_title(column, lang) for column in COLUMNS]
    )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def template_xlsx(lang: str, sheet_name: str = "roster") -> bytes:
    """An empty roster workbook with the header row in `lang`, bold and frozen; the student
    number column holds text (leading zeros stay) and the graduation date column dates."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = sheet_name
    bold = Font(bold=True)
    for index, column in enumerate(COLUMNS, start=1):
        title = column_title(column, lang)
        cell = sheet.cell(row=1, column=index, value=title)
        cell.font = bold
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = max(12, len(title) + 4)
        if column == "graduation_date":
            sheet.column_dimensions[letter].number_format = DATE_FORMAT
        elif column == "student_ref":
            sheet.column_dimensions[letter].number_format = TEXT_FORMAT
    sheet.freeze_panes = "A2"
    output = io.BytesIO()
    workbook.save(output)
    return output.getvalue()


# ---------------------------------------------------------------------------------------------
# Reading the file


@dataclass(frozen=True)
class Limits:
    """What one roster file may hold. Reading stops at the first limit passed, so a hostile
    or mistaken file costs no more than a file at the limits."""

    #: Rows with data (the header and empty rows not counted); ROSTER_MAX_ROWS.
    rows: int = 50_000
    #: Columns of the header and of any row; ROSTER_MAX_COLUMNS.
    columns: int = 100
    #: Characters in one cell; ROSTER_MAX_CELL_CHARS.
    cell_chars: int = 1_000
    #: What an .xlsx unpacks to, and the size of a CSV; UPLOAD_MAX_UNPACKED_MB.
    unpacked_bytes: int = 50 * MEGABYTE
    #: Problems listed (the rest are counted).
    problems: int = 100

    @property
    def row_chars(self) -> int:
        """The longest CSV row (a line, or several when a quoted cell holds line breaks)."""
        return self.columns * self.cell_chars

    @property
    def all_rows(self) -> int:
        """Rows read at most, empty ones included (a sheet of a million empty rows)."""
        return 2 * self.rows


DEFAULT_LIMITS = Limits()


@dataclass
class Table:
    header: list[Any]
    header_line: int
    rows: list[tuple[int, list[Any]]]
    #: Rows that cannot be checked (too many columns, a cell too long): line -> why. Their
    #: cells are left out of `rows` (kept there empty).
    bad: dict[int, str] = field(default_factory=dict)


class FileProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(line, message)


def number_text(n: int) -> str:
    """A number in the current language's format: 50,000 (en), 50.000 (nl), 50 000 (et)."""
    return format_decimal(n, locale=current_language())


def more_problems_text(n: int) -> str:
    """'and 1,234 more problems', in the current language."""
    return ngettext("and {count} more problem", "and {count} more problems", n).format(
        count=number_text(n)
    )


def _blank(cells: Sequence[Any]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


def _trimmed(cells: Sequence[Any]) -> list[Any]:
    """The cells without the empty ones at the end of the row."""
    end = len(cells)
    while end and _blank(cells[end - 1 : end]):
        end -= 1
    return list(cells[:end])


def _too_many_rows(limits: Limits) -> FileProblem:
    return FileProblem(
        0,
        _(
            "the file has more than {limit} rows: split it into files of at most {limit} rows"
        ).format(limit=number_text(limits.rows)),
    )


def _collect(records: Iterable[tuple[int, Sequence[Any]]], limits: Limits) -> Table | None:
    """The header and the rows of (line, cells) records, within `limits`; None: all empty."""
    header: list[Any] | None = None
    header_line = 1
    table = Table([], 1, [])
    seen = 0
    for line, record in records:
        seen += 1
        if seen > limits.all_rows:
            raise FileProblem(
                line,
                _(
                    "the file goes on for more than {limit} rows, counting empty ones: "
                    "delete the empty rows at its end"
                ).format(limit=number_text(limits.all_rows)),
            )
        cells = _trimmed(record)
        if not cells:
            continue
        long = next(
            (
                (index, len(cell))
                for index, cell in enumerate(cells[: limits.columns])
                if isinstance(cell, str) and len(cell) > limits.cell_chars
            ),
            None,
        )
        problem: str | None = None
        if len(cells) > limits.columns:
            problem = _("the row has more than {limit} columns").format(
                limit=number_text(limits.columns)
            )
        elif long is not None:
            problem = _(
                "the cell in column {column} is longer than {limit} characters ({length})"
            ).format(
                column=get_column_letter(long[0] + 1),
                limit=number_text(limits.cell_chars),
                length=number_text(long[1]),
            )
        if header is None:
            if problem is not None:
                raise FileProblem(line, problem)
            header, header_line = cells, line
            continue
        if len(table.rows) >= limits.rows:
            raise _too_many_rows(limits)
        if problem is not None:
            table.bad[line] = problem
            cells = []
        table.rows.append((line, cells))
    if header is None:
        return None
    table.header, table.header_line = header, header_line
    return table


def _delimiter(text: str) -> str:
    """Semicolon (Dutch/Italian/Spanish Excel), tab or comma: whichever the header uses most."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in (";", "\t", ",")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, as surrogateescape keeps them


class _CsvLines:
    """The lines of a CSV stream as text, within the limits. Each line is read with a bounded
    readline (\n, \r\n or a lone \r ends it, as with open(newline="")), bytes that are not
    UTF-8 are reported at their line, and the characters of the row being read are counted,
    since a quoted cell can hold line breaks."""

    def __init__(self, stream: BinaryIO, limits: Limits) -> None:
        self.text = io.TextIOWrapper(
            stream, encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        self.limits = limits
        self.line = 0  # lines read
        self.total = 0  # characters read
        self.row_chars = 0  # characters of the row being read
        self.row_line = 1
        self.ahead: list[str] = []

    def start_row(self) -> None:
        self.row_chars = 0
        self.row_line = self.line + 1

    def _read(self) -> str:
        limit = self.limits.row_chars
        text = self.text.readline(limit + 1)
        if not text:
            return ""
        self.line += 1
        self.total += len(text)
        if self.total > self.limits.unpacked_bytes:
            raise FileProblem(0, _file_too_large(self.limits))
        escaped = _ESCAPED.search(text)
        if escaped:
            raise FileProblem(
                self.line,
                _(
                    "the file is not UTF-8 text (byte 0x{byte}); "
                    "in Excel choose 'Save as' → 'CSV UTF-8'"
                ).format(byte=f"{ord(escaped.group()) - 0xDC00:02x}"),
            )
        self.row_chars += len(text)
        if self.row_chars > limit:
            raise FileProblem(
                self.row_line,
                _(
                    "the row is longer than {limit} characters (is a quotation mark not closed?)"
                ).format(limit=number_text(limit)),
            )
        return text

    def first_text(self) -> str:
        """The first line that is not empty, for the delimiter; the lines read up to it are
        still to come."""
        while len(self.ahead) < self.limits.all_rows and (text := self._read()):
            self.ahead.append(text)
            if text.strip():
                return text
            self.start_row()
        return ""

    def __iter__(self) -> Iterator[str]:
        ahead, self.ahead = self.ahead, []
        yield from ahead
        while text := self._read():
            yield text


def _file_too_large(limits: Limits) -> str:
    return _("the file is larger than {limit} MB").format(
        limit=number_text(megabytes(limits.unpacked_bytes))
    )


def read_csv(data: bytes | BinaryIO, limits: Limits = DEFAULT_LIMITS) -> Table:
    """A CSV file, read as a stream and refused as soon as it passes `limits`."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    lines = _CsvLines(stream, limits)
    reader = csv.reader(lines, delimiter=_delimiter(lines.first_text()))

    def records() -> Iterator[tuple[int, list[str]]]:
        previous = 0
        while True:
            lines.start_row()
            record = next(reader, None)
            if record is None:
                return
            line, previous = previous + 1, reader.line_num
            yield line, record

    try:
        table = _collect(records(), limits)
    except csv.Error as error:
        raise FileProblem(
            reader.line_num, _("the CSV cannot be read here: {error}").format(error=error)
        ) from error
    if table is None:
        raise FileProblem(1, _("the file is empty"))
    return table


def read_xlsx(path: Path, limits: Limits = DEFAULT_LIMITS) -> Table:
    """The first sheet; row numbers are Excel's. The unpacked size is checked before the
    workbook is opened, and the rows are read one by one (whatever the sheet declares)."""
    size = unpacked_size(path)
    if size is not None and size > limits.unpacked_bytes:
        raise FileProblem(
            0,
            _(
                "the workbook unpacks to {size} MB, more than the {limit} MB allowed: "
                "remove other sheets and pictures, or save it as CSV UTF-8"
            ).format(
                size=number_text(megabytes(size)),
                limit=number_text(megabytes(limits.unpacked_bytes)),
            ),
        )
    table: Table | None = None
    try:
        # The used range a file declares may be wrong (or hostile: A1:XFD1048576); the rows
        # that are really there are read, and counted.
        workbook = open_workbook(path, first_only=True)
        try:
            sheet = workbook.worksheets[0]
            table = _collect(enumerate(sheet.iter_rows(min_row=1, values_only=True), 1), limits)
        finally:
            workbook.close()
    except FileProblem:
        raise
    except Exception as error:
        # A damaged or hostile file: openpyxl reads it lazily, row by row, and fails with
        # whatever its zip and XML readers raise (EOFError, ParseError, OSError, ...).
        raise FileProblem(
            0,
            _("not a readable .xlsx workbook: {error}").format(error=error or type(error).__name__),
        ) from error
    if table is None:
        raise FileProblem(1, _("the first sheet is empty"))
    return table


def read_table(path: Path, limits: Limits = DEFAULT_LIMITS) -> Table:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return read_xlsx(path, limits)
    if suffix == ".xls":
        raise FileProblem(
            0, _("old Excel .xls files are not supported: save as .xlsx or CSV UTF-8")
        )
    with path.open("rb") as stream:
        if path.is_file() and path.stat().st_size > limits.unpacked_bytes:
            raise FileProblem(0, _file_too_large(limits))
        return read_csv(stream, limits)


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


def parse_date(value: Any, today: date, column: str = "graduation_date") -> date | str:
    """A graduation date, or why not (naming the date's `column`). ISO 2026-06-30; day first
    30-06-2026, 30/06/2026, 30.06.2026; an Excel date cell."""
    if isinstance(value, datetime):
        parsed = value.date()
    elif isinstance(value, date):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return _("{column} {value} is a number, not a date: format the cells as dates").format(
            column=column, value=repr(clean_text(value))
        )
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
                    "{column} {value} is not a date: "
                    "use 2026-06-30, 30-06-2026, 30/06/2026 or 30.06.2026"
                ).format(column=column, value=repr(text))
        except ValueError:
            return _("{column} {value} is not a date of the calendar").format(
                column=column, value=repr(text)
            )
    last = today.year + GRADUATION_YEARS_AHEAD
    if not EARLIEST_GRADUATION_YEAR <= parsed.year <= last:
        return _("{column} {value} is outside {first}-{last}").format(
            column=column, value=parsed.isoformat(), first=EARLIEST_GRADUATION_YEAR, last=last
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


def contact_problem_text(problem: ContactProblem, value: str, country: str | None) -> str:
    """Why a roster's e-mail or mobile cell was refused, for the person fixing the file."""
    shown = repr(value)
    if problem == ContactProblem.EMAIL_SPACE:
        return _("email {value} contains a space").format(value=shown)
    if problem == ContactProblem.EMAIL_NO_AT:
        return _("email {value} must contain exactly one @").format(value=shown)
    if problem == ContactProblem.EMAIL_LOCAL:
        return _("email {value} has a malformed part before the @").format(value=shown)
    if problem == ContactProblem.EMAIL_DOMAIN:
        return _("email {value} has a malformed domain after the @").format(value=shown)
    if problem == ContactProblem.EMAIL_LONG:
        return _("email {value} is longer than 254 characters").format(value=shown)
    if country:
        return _(
            "mobile {value} is not a valid phone number: write it with the country code "
            "(+{code} …) or as a national number of {country}"
        ).format(
            value=shown,
            code=country_calling_code(country),
            country=country.upper(),
        )
    return _("mobile {value} is not a valid phone number: write it with the country code").format(
        value=shown
    )


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


@dataclass
class _ProgrammeValues:
    """What the rows say of each programme (PROGRAMME_COLUMNS): programme id -> column ->
    (value, the first line that gave it)."""

    values: dict[int, dict[str, tuple[str, int]]] = field(default_factory=dict)
    programmes: dict[int, Programme] = field(default_factory=dict)


def _programme_value(column: str, text: str, title: str) -> str:
    """A programme cell's value as stored; ProgrammeKindError with the message if not
    understood."""
    if column == "isco_groups":
        try:
            groups = parse_isco_groups(text)
            if not groups:
                raise ProgrammeKindError(text)
            return isco_text(groups) or ""
        except ProgrammeKindError as error:
            raise ProgrammeKindError(
                _(
                    "{column} {value}: {part} is not an ISCO-08 major group; use the digits "
                    "0 to 9, e.g. 5 or 5;7"
                ).format(column=title, value=repr(text), part=repr(error.value))
            ) from None
    if column == "pathway":
        value = parse_pathway(text)
        if value is None:
            raise ProgrammeKindError(
                _(
                    "{column} {value} is not understood: use school-based (BOL) or work-based (BBL)"
                ).format(column=title, value=repr(text))
            )
        return value
    value = parse_vet_kind(text)
    if value is None:
        raise ProgrammeKindError(
            _("{column} {value} is not understood: use IVET or CVET").format(
                column=title, value=repr(text)
            )
        )
    return value


def _map_header(header: list[Any], line: int) -> tuple[dict[str, int], list[str], list[Problem]]:
    columns: dict[str, int] = {}
    ignored: list[str] = []
    problems: list[Problem] = []
    for index, cell in enumerate(header):
        title = clean_text(cell)
        canonical = ALIASES.get(header_key(title))
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
                        first=repr(first), second=repr(title), column=column_title(canonical)
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
    shown: int | None = None,
    programme_values: _ProgrammeValues | None = None,
) -> tuple[list[_Row], ProblemList]:
    """The rows that pass, and the problems of the others in line order (the first `shown`
    of them; ProblemList.more counts the rest). What the rows say of their programmes goes
    into `programme_values`."""
    rows: list[_Row] = []
    problems = ProblemList(shown)
    said = programme_values if programme_values is not None else _ProgrammeValues()
    seen: dict[tuple[str, str], int] = {}
    seen_emails: dict[str, int] = {}
    # A column is named as the file's header names it, else in the staff member's language.
    titles = {column: column_title(column) for column in COLUMNS}
    for column, index in columns.items():
        titles[column] = clean_text(table.header[index]) or titles[column]
    ref_title, name_title = titles["student_ref"], titles["name"]

    for line, cells in table.rows:
        if line in table.bad:
            problems.add(Problem(line, table.bad[line]))
            continue

        def cell(name: str, cells: list[Any] = cells) -> Any:
            index = columns.get(name)
            return cells[index] if index is not None and index < len(cells) else None

        bad: list[str] = []
        values: dict[str, Any] = {}

        ref = clean_text(cell("student_ref"))
        if "student_ref" in columns:
            if not ref:
                bad.append(_("{column} is empty").format(column=ref_title))
            elif len(ref) > REF_MAX:
                bad.append(
                    _("{column} is longer than {limit} characters ({length})").format(
                        column=ref_title, limit=REF_MAX, length=len(ref)
                    )
                )

        name = clean_text(cell("name"))
        if "name" in columns:
            if not name:
                bad.append(_("{column} is empty").format(column=name_title))
            elif len(name) > NAME_MAX:
                bad.append(
                    _("{column} is longer than {limit} characters ({length})").format(
                        column=name_title, limit=NAME_MAX, length=len(name)
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
                bad.append(_("{column} is empty").format(column=titles["school"]))
        else:
            school = lookups.schools.get(code)
            if school is None:
                bad.append(_("unknown school {code}").format(code=repr(code)))

        programme: Programme | None = None
        programme_text = clean_text(cell("programme"))
        if "programme" in columns:
            if not programme_text:
                bad.append(_("{column} is empty").format(column=titles["programme"]))
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
                        _("{column} {value} is not a level from 1 to 8").format(
                            column=titles["eqf_level"], value=repr(clean_text(raw))
                        )
                    )
                elif (
                    programme is not None
                    and programme.eqf_level is not None
                    and programme.eqf_level != level
                ):
                    bad.append(
                        _("{column} {level} does not match programme {code} (EQF {eqf})").format(
                            column=titles["eqf_level"],
                            level=level,
                            code=repr(programme.code),
                            eqf=programme.eqf_level,
                        )
                    )

        for column in PROGRAMME_COLUMNS:
            text = clean_text(cell(column)) if column in columns else ""
            if not text:
                continue  # an empty cell leaves the programme's value as it is
            try:
                value = _programme_value(column, text, titles[column])
            except ProgrammeKindError as error:
                bad.append(str(error))
                continue
            if programme is None or programme.id is None:
                continue
            known = said.values.setdefault(programme.id, {})
            given, given_at = known.setdefault(column, (value, line))
            if given != value:
                bad.append(
                    _("{column} {value} for programme {code} differs from line {line}").format(
                        column=titles[column],
                        value=repr(text),
                        code=repr(programme.code),
                        line=given_at,
                    )
                )
            said.programmes[programme.id] = programme

        if "graduation_date" in columns:
            raw = cell("graduation_date")
            if not clean_text(raw):
                bad.append(_("{column} is empty").format(column=titles["graduation_date"]))
            else:
                parsed = parse_date(raw, today, titles["graduation_date"])
                if isinstance(parsed, str):
                    bad.append(parsed)
                else:
                    values["graduation_date"] = parsed

        if "language" in columns:
            text = clean_text(cell("language"))
            language = parse_language(text)
            if language is None:
                bad.append(
                    _("{column} {value} is not supported: use {languages}").format(
                        column=titles["language"], value=repr(text), languages=", ".join(LANGUAGES)
                    )
                )
            else:
                values["language"] = language or None

        if "gender" in columns:
            text = clean_text(cell("gender"))
            gender = parse_gender(text, school.country if school else None)
            if gender is None:
                bad.append(
                    _("{column} {value} is not recognised: use F, M, X or U").format(
                        column=titles["gender"], value=repr(text)
                    )
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
                            "{column} {value} is not a plausible year of birth "
                            "(4 digits, {first}-{last})"
                        ).format(
                            column=titles["birth_year"],
                            value=repr(text),
                            first=today.year - 100,
                            last=today.year - 10,
                        )
                    )
                else:
                    values["birth_year"] = year

        if "email" in columns:
            text = clean_text(cell("email"))
            if not text:
                values["email"] = None
            else:
                try:
                    address = normalise_email(text)
                except ContactError as error:
                    bad.append(contact_problem_text(error.problem, text, None))
                else:
                    first = seen_emails.setdefault(email_key(address), line)
                    if first != line:
                        bad.append(
                            _("duplicate email {value} (also on line {line})").format(
                                value=repr(text), line=first
                            )
                        )
                    else:
                        values["email"] = address

        if "mobile" in columns:
            text = clean_text(cell("mobile"))
            if not text:
                values["mobile"] = None
            else:
                country = school.country if school else None
                try:
                    values["mobile"] = normalise_mobile(text, country)
                except ContactError as error:
                    bad.append(contact_problem_text(error.problem, text, country))

        if ref and code:
            key = (code, ref)
            if key in seen:
                bad.append(
                    _("duplicate {column} {value} (also on line {line})").format(
                        column=ref_title, value=repr(ref), line=seen[key]
                    )
                )
            else:
                seen[key] = line

        for message in bad:
            problems.add(Problem(line, message))
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
_COMPARED = (
    "programme_id",
    "name",
    "graduation_date",
    "language",
    "gender",
    "birth_year",
    "email",
    "mobile",
)


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
                    "email": None,
                    "mobile": None,
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
        update_values = {k: values[k] for k in changed}
        if "email" in changed:
            # A new address has no history: a bounce or unsubscription was the old one's.
            update_values.update(email_status=None, email_status_at=None)
        updates.append({"id": before.id, **update_values, "updated_at": now})
        result.changes.append(
            RowChange(row.line, row.school_code, row.student_ref, "update", changed)
        )
    result.created = len(creates)
    result.updated = len(updates)
    return creates, updates


def _programme_changes(
    said: _ProgrammeValues, lookups: _Lookups, result: ImportResult
) -> list[dict[str, Any]]:
    """The programme updates (id and changed PROGRAMME_COLUMNS) the rows ask for, listed in
    `result.programmes`."""
    codes = {school.id: school.code for school in lookups.schools.values()}
    updates: list[dict[str, Any]] = []
    for programme_id, columns in sorted(said.values.items()):
        programme = said.programmes[programme_id]
        changed = {
            column: value or None
            for column, (value, _line) in columns.items()
            if getattr(programme, column) != (value or None)
        }
        if changed:
            ordered = tuple(c for c in PROGRAMME_COLUMNS if c in changed)
            result.programmes.append(
                ProgrammeChange(codes.get(programme.institution_id, "?"), programme.code, ordered)
            )
            updates.append({"id": programme_id, **changed})
    return updates


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
    limits: Limits = DEFAULT_LIMITS,
    plans: WavePlans | None = None,
    now: datetime | None = None,
) -> ImportResult:
    """Check the roster at `path` and, unless `dry_run` or any problem, upsert it in one
    transaction. The result says what was (or would be) created, updated and left unchanged,
    and the first `limits.problems` problems with their lines (and how many more there are).
    With `plans`, the invitations of the new graduates are planned right after (so that a
    wave open for them can be answered at once).

    The file is read and its rows checked in a worker thread: a big file (up to `limits`, and
    refused as soon as it passes them) keeps the bot and the web pages answering meanwhile."""
    path = Path(path)
    today = today or date.today()
    result = ImportResult(path=str(path), dry_run=dry_run)
    try:
        table = await asyncio.to_thread(read_table, path, limits)
    except FileProblem as problem:
        result.problems.append(problem.problem)
        return result
    result.rows = len(table.rows)
    columns, result.ignored_columns, problems = _map_header(table.header, table.header_line)
    required = [c for c in REQUIRED if not (c == "school" and school_code)]
    problems.extend(
        Problem(
            table.header_line,
            _("missing required column {name}").format(name=repr(column_title(name))),
        )
        for name in required
        if name not in columns
    )
    code = school_code.strip().lower() if school_code else None
    try:
        async with db.session() as session:
            lookups = await _lookups(session)
            if code and code not in lookups.schools:
                unknown = Problem(0, _("unknown school {code}").format(code=repr(code)))
                result.problems = [unknown, *problems][: limits.problems]
                result.more_problems = len(problems) + 1 - len(result.problems)
                return result
            said = _ProgrammeValues()
            rows, row_problems = await asyncio.to_thread(
                _check_rows, table, columns, lookups, code, today, limits.problems, said
            )
            programme_updates = _programme_changes(said, lookups, result)
            problems.extend(row_problems)  # all at the header line or after, in line order
            problems.sort(key=lambda p: p.line)
            result.problems = problems[: limits.problems]
            result.more_problems = len(problems) - len(result.problems) + row_problems.more
            existing = await _existing(session, rows)
            if ref_key is not None:
                rows = await _without_erased(session, rows, existing, ref_key, result)
            creates, updates = await asyncio.to_thread(_plan, rows, existing, result)
            if dry_run or result.problems:
                await session.rollback()
                return result
            await _write(session, creates, updates)
            for values in programme_updates:
                await session.exec(update(Programme), params=[values])
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
