"""Data exports for the admin dashboard: CSV and Excel (XLSX) files, from plain data.

What admins find in an export
=============================

**Responses** (one row per questionnaire response). First the fixed columns::

    respondent  school  programme  cohort  wave  form  version  status  outcome  started  completed
    language  carried

``respondent`` is a pseudonymous key: the same graduate has the same key in every export, but it
is never a name, chat id or student number. ``cohort`` is the graduation year; ``status`` is
``open`` (still being answered) or ``submitted``; ``outcome`` is ``completed``, ``partial`` or
``declined``, as the statistics count it (completed: routing core answered and sent, or its wave
closed; an open response of an open wave is partial); ``started`` and ``completed`` are dates
(``YYYY-MM-DD``, ``completed`` empty unless the outcome is ``completed``); ``language`` is the
language the graduate answered in (``nl``, ``es``, ``et``, ``it``, ``en``: the language the
questionnaire was shown in when it started; empty for responses started before this was
recorded); ``carried`` names the questions (separated by a space) that were not asked in this
response because the questionnaire carries them from the graduate's previous wave (``carry``:
the first job, the job details of the same job): their columns hold that earlier answer, which
counts as this response's answer. In XLSX files dates are Excel dates (formatted
``yyyy-mm-dd``), not text.

Then, for every question of the questionnaire in questionnaire order (notes have no answer and no
column), a column named after the question (``Q1``, ``E3``…) holding the stored answer:

- select one: the choice code (``employed``), followed by a ``<name>_label`` column with the
  choice's text in the export language (``Q1_label``: ``Ik werk in loondienst``);
- select multiple: the codes separated by a space (``job_site school``), and in ``<name>_label``
  their texts separated by ``; ``. A code the questionnaire does not know (from another version)
  stays in the code column but has no text in the label column;
- integer, decimal and scale: a number; text: the text as typed; date: ``YYYY-MM-DD``;
  month: ``YYYY-MM``.

An empty cell means no answer (the question was not asked, skipped, or not reached). Codes are
stable across languages and versions: analyse the code columns, read the label columns.

**Codebook** (one row per question, then one row per choice of a select question)::

    question  type  list  group  required  core  relevant  constraint  carry  min  max  label
    hint  choice  choice_label

``relevant`` is the condition under which the question is asked, including the conditions of
the groups it is in (each in parentheses, joined with ``and``); ``min``/``max`` are the range of
a scale question; ``required``/``core`` are ``yes``/``no``; ``carry`` is the condition under
which a later wave keeps the previous wave's answer instead of asking. Choice rows repeat
``question``, ``type`` and ``list`` (so a filter on ``question`` shows a question with its
choices) and fill ``choice`` and ``choice_label``.

Formula neutralisation
======================

A graduate can type anything into a text answer, including ``=HYPERLINK("http://evil", "click")``.
Spreadsheets run a cell that starts with ``=`` as a formula, and ``+``, ``-`` and ``@`` too; a
leading tab or line break can hide such a character. So every text cell in every export that
starts with one of :data:`FORMULA_PREFIXES` (:mod:`storage.cells`, shared with the invitation
sheets of ``gradtrack invites``) — also after leading spaces (``"  =1+2"``), which
some spreadsheets trim on import — gets an apostrophe in front: ``'=HYPERLINK(…)``. The
apostrophe is visible in the cell; the rest of the text is exactly what was typed. Numbers stay
numbers (a negative number such as ``-5`` is a number, not a formula), but a text answer
``-5 euros`` is text and gets the apostrophe. Yes/no values are written as the words ``yes`` and
``no``.

The prefixes follow the OWASP CSV Injection guidance (``=``, ``+``, ``-``, ``@``, tab, carriage
return), plus line feed and NUL (OWASP ASVS 5.0, requirement 1.2.10) and the full-width forms
``＝ ＋ － ＠`` that East Asian input methods produce and some spreadsheets accept. ``|`` and ``%``
are not included: they start no formula by themselves, and a DDE payload (``=cmd|' /C calc'!A0``)
needs one of the characters above first.

XLSX files get the same treatment (a cell edited and confirmed in Excel would otherwise turn into
a formula, and copies of the values end up in CSV files); in addition, text is always stored as
text, never as a formula or an error value (``#N/A``), and characters that XLSX cannot hold
(control characters other than tab and line breaks) become ``�`` (U+FFFD).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from conversations.questionnaire import Question, Questionnaire, QuestionType
from storage.cells import FORMULA_PREFIXES, formula_safe

__all__ = [
    "CODEBOOK_COLUMNS",
    "FORMULA_PREFIXES",
    "RESPONSE_FIXED_COLUMNS",
    "ResponseRecord",
    "Sheet",
    "codebook_sheet",
    "iter_csv",
    "neutralise",
    "response_sheet",
    "sheet_title",
    "to_csv",
    "to_xlsx",
]

RESPONSE_FIXED_COLUMNS: tuple[str, ...] = (
    "respondent",
    "school",
    "programme",
    "cohort",
    "wave",
    "form",
    "version",
    "status",
    "outcome",
    "started",
    "completed",
    "language",
    "carried",
)
CODEBOOK_COLUMNS: tuple[str, ...] = (
    "question",
    "type",
    "list",
    "group",
    "required",
    "core",
    "relevant",
    "constraint",
    "carry",
    "min",
    "max",
    "label",
    "hint",
    "choice",
    "choice_label",
)
LABEL_SUFFIX = "_label"
MULTIPLE_LABEL_SEPARATOR = "; "
MAX_SHEET_TITLE = 31
_SHEET_TITLE_FORBIDDEN = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
_NUMERIC_TYPES = frozenset({QuestionType.INTEGER, QuestionType.DECIMAL, QuestionType.SCALE})
_INTEGER_RE = re.compile(r"[+-]?\d+")
_DECIMAL_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_BOLD = Font(bold=True)
DATE_FORMAT = "yyyy-mm-dd"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# --- cells --------------------------------------------------------------------------------


def neutralise(value: object) -> str | int | float | None:
    """A cell value that is safe to open in Excel, LibreOffice Calc or Google Sheets.

    ``None`` stays ``None`` (an empty cell); ``int`` and finite ``float`` stay numbers; ``True``
    and ``False`` become ``"yes"`` and ``"no"``; dates become ISO text (``2026-06-30``);
    anything else becomes ``str(value)``, with an apostrophe in front when a spreadsheet would
    run it as a formula (see the module documentation). Applying it twice changes nothing more.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return formula_safe(value.isoformat() if isinstance(value, date) else str(value))


def _safe_row(values: Iterable[object]) -> list[str | int | float | None]:
    return [neutralise(value) for value in values]


@dataclass(frozen=True)
class Sheet:
    """A table to export. `rows` may be a generator: it is read once, by one to_csv/to_xlsx."""

    name: str
    """The sheet's name; to_xlsx makes it a valid Excel sheet title (see :func:`sheet_title`)."""
    header: Sequence[str]
    rows: Iterable[Sequence[object]]


# --- CSV ----------------------------------------------------------------------------------


def iter_csv(sheet: Sheet) -> Iterator[bytes]:
    """The CSV file of `sheet` in pieces (a UTF-8 byte order mark, then one piece per row), for
    streaming a large export. Comma separated, ``\\r\\n`` line ends, every cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    yield "\ufeff".encode()
    for row in _chain_header(sheet):
        writer.writerow(["" if cell is None else cell for cell in _safe_row(row)])
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()


def to_csv(sheet: Sheet) -> bytes:
    """The CSV file of `sheet`: UTF-8 with a byte order mark (so Excel reads the accents right),
    comma separated, ``\\r\\n`` line ends, quoted where needed, every cell neutralised."""
    return b"".join(iter_csv(sheet))


def _chain_header(sheet: Sheet) -> Iterator[Sequence[object]]:
    yield sheet.header
    yield from sheet.rows


# --- XLSX ---------------------------------------------------------------------------------


def sheet_title(name: str) -> str:
    """`name` as a valid Excel sheet title: ``[ ] : * ? / \\`` and control characters become
    ``_``, no apostrophe at either end, at most 31 characters, never empty."""
    title = _SHEET_TITLE_FORBIDDEN.sub("_", name).strip().strip("'").strip()
    title = title[:MAX_SHEET_TITLE].rstrip().rstrip("'")
    return title or "Sheet"


def _unique_titles(names: Iterable[str]) -> list[str]:
    """Sanitised titles, made unique the way Excel compares them (ignoring case)."""
    titles: list[str] = []
    seen: set[str] = set()
    for name in names:
        title = sheet_title(name)
        number = 1
        candidate = title
        while candidate.casefold() in seen:
            number += 1
            suffix = f" ({number})"
            candidate = title[: MAX_SHEET_TITLE - len(suffix)].rstrip().rstrip("'") + suffix
        seen.add(candidate.casefold())
        titles.append(candidate)
    return titles


def _xlsx_value(sheet: WriteOnlyWorksheet, value: object, *, bold: bool = False) -> object:
    """A value as openpyxl should write it: neutralised, text always as text, a date as an
    Excel date (formatted yyyy-mm-dd)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        cell = WriteOnlyCell(sheet, datetime(value.year, value.month, value.day))
        cell.number_format = DATE_FORMAT
        return cell
    safe = neutralise(value)
    if isinstance(safe, str):
        safe = ILLEGAL_CHARACTERS_RE.sub("\ufffd", safe)
    as_text = isinstance(safe, str) and safe in ERROR_CODES  # openpyxl: "#N/A" is an error
    if not (as_text or bold):
        return safe
    cell = WriteOnlyCell(sheet, safe)
    if as_text:
        cell.data_type = "s"
    if bold:
        cell.font = _BOLD
    return cell


def to_xlsx(sheets: Sequence[Sheet]) -> bytes:
    """An Excel workbook with one worksheet per sheet, in order.

    Written in openpyxl's write-only (streaming) mode, so rows are never held in memory. The
    header row is bold and frozen (it stays in view when scrolling). Every cell is neutralised
    and text is stored as text. Sheet names are made valid and unique (see :func:`sheet_title`).
    """
    workbook = Workbook(write_only=True)
    for sheet, title in zip(sheets, _unique_titles(s.name for s in sheets), strict=True):
        worksheet = workbook.create_sheet(title)
        worksheet.freeze_panes = "A2"
        worksheet.append([_xlsx_value(worksheet, name, bold=True) for name in sheet.header])
        for row in sheet.rows:
            worksheet.append([_xlsx_value(worksheet, value) for value in row])
    if not sheets:
        workbook.create_sheet("Sheet")  # a workbook needs a worksheet
    output = io.BytesIO()
    workbook.save(output)
    return output.getvalue()


# --- responses ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseRecord:
    """One response as the export sees it. `answers` maps question names to stored values."""

    respondent: str
    """Pseudonymous key: never a name, chat id or student number."""
    school: str
    programme: str
    cohort: int
    """Graduation year."""
    wave: str | None
    form_id: str
    version: str
    status: str
    """``open`` or ``submitted``."""
    outcome: str
    """``completed``, ``partial`` or ``declined``."""
    started: date
    completed: date | None
    answers: Mapping[str, object]
    language: str | None = None
    """The language the graduate answered in; None: not recorded (responses before 0009)."""
    carried: tuple[str, ...] = ()
    """The questions whose answers were carried from the graduate's previous wave."""


def _text(labels: Mapping[str, str], lang: str, questionnaire: Questionnaire, fallback: str) -> str:
    """The text in `lang`, else in the questionnaire's default language, else any, else
    `fallback`."""
    return (
        labels.get(lang)
        or labels.get(questionnaire.default_language)
        or next(iter(labels.values()), "")
        or fallback
    )


def _is_empty(value: object) -> bool:
    return value is None or value == "" or value == [] or value == ()


def _codes(value: object) -> list[str]:
    """The codes of a select answer: a list of codes, or (older data) a space-separated string."""
    if isinstance(value, list | tuple):
        return [str(code) for code in value if not _is_empty(code)]
    return str(value).split()


def _number(value: object, question: Question) -> object:
    """A numeric answer as a number; text that is not a plain number stays text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER_RE.fullmatch(text):
            return int(text)
        if question.type != QuestionType.INTEGER and _DECIMAL_RE.fullmatch(text):
            return float(text)
    return value


def _date(value: object) -> object:
    """A date answer (stored as ``YYYY-MM-DD``) as a date; anything else as it is."""
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return value
    return value


def _answer_cells(
    questionnaire: Questionnaire, question: Question, value: object, lang: str
) -> list[object]:
    """The cells of one question: [value], or [codes, labels] for a select question."""
    if not question.is_select:
        if _is_empty(value):
            return [None]
        if question.type in _NUMERIC_TYPES:
            return [_number(value, question)]
        if question.type == QuestionType.DATE:
            return [_date(value)]
        return [value]
    if _is_empty(value):
        return [None, None]
    if question.is_multiple or isinstance(value, list | tuple):
        codes = _codes(value)
    else:
        codes = [str(value)]
    labels = []
    for code in codes:
        choice = questionnaire.choice(question, code)
        if choice is not None:
            labels.append(_text(choice.labels, lang, questionnaire, choice.name))
    return [" ".join(codes), MULTIPLE_LABEL_SEPARATOR.join(labels)]


def exported_questions(questionnaire: Questionnaire, *, free_text: bool = True) -> list[Question]:
    """The questions with a column: every answerable one (without `free_text`: but those
    answered in the graduate's own words, which may name people or give contacts)."""
    return [
        question
        for question in questionnaire.questions
        if question.answerable and (free_text or question.type != QuestionType.TEXT)
    ]


def response_header(questionnaire: Questionnaire, *, free_text: bool = True) -> list[str]:
    """The columns of :func:`response_sheet`."""
    header = list(RESPONSE_FIXED_COLUMNS)
    for question in exported_questions(questionnaire, free_text=free_text):
        header.append(question.name)
        if question.is_select:
            header.append(question.name + LABEL_SUFFIX)
    return header


def response_sheet(
    questionnaire: Questionnaire,
    records: Iterable[ResponseRecord],
    lang: str,
    *,
    name: str = "responses",
    schools: Mapping[str, Questionnaire] | None = None,
    free_text: bool = True,
) -> Sheet:
    """Responses as a sheet: the fixed columns, then per answerable question `<name>` (code,
    number or text) and, for select questions, `<name>_label` (choice texts in `lang`, else in
    the questionnaire's default language). Answers to questions the questionnaire does not have
    are left out. `schools` maps a school's code to the questionnaire as that school shows it
    (Questionnaire.for_school): a row's labels are the ones its graduate saw. Rows are made
    lazily, one record at a time, as the sheet is written. Without `free_text`, the questions
    answered in the graduate's own words are left out (a researcher's export)."""
    questions = exported_questions(questionnaire, free_text=free_text)

    def row(record: ResponseRecord) -> list[object]:
        cells: list[object] = [
            record.respondent,
            record.school,
            record.programme,
            record.cohort,
            record.wave,
            record.form_id,
            record.version,
            record.status,
            record.outcome,
            record.started,
            record.completed,
            record.language,
            " ".join(record.carried) or None,
        ]
        shown = (schools or {}).get(record.school, questionnaire)
        for question in questions:
            cells += _answer_cells(shown, question, record.answers.get(question.name), lang)
        return cells

    return Sheet(
        name,
        response_header(questionnaire, free_text=free_text),
        (row(record) for record in records),
    )


# --- codebook -----------------------------------------------------------------------------


def _relevance(question: Question) -> str | None:
    texts = [expression.source or str(expression) for expression in question.relevance]
    if not texts:
        return None
    if len(texts) == 1:
        return texts[0]
    return " and ".join(f"({text})" for text in texts)


def codebook_sheet(questionnaire: Questionnaire, lang: str) -> Sheet:
    """What every column of :func:`response_sheet` means, as a sheet called ``codebook``.

    Columns :data:`CODEBOOK_COLUMNS`. One row per answerable question, in questionnaire order,
    followed (for a select question) by one row per choice in display order. Texts in `lang`,
    else in the questionnaire's default language."""
    rows: list[Sequence[object]] = []
    for question in questionnaire.questions:
        if not question.answerable:
            continue
        low, high = question.scale_range if question.type == QuestionType.SCALE else (None, None)
        constraint, carry = question.constraint, question.carry
        rows.append(
            [
                question.name,
                str(question.type),
                question.list_name,
                "/".join(question.group) or None,
                question.required,
                question.core,
                _relevance(question),
                (constraint.source or str(constraint)) if constraint is not None else None,
                (carry.source or str(carry)) if carry is not None else None,
                low,
                high,
                _text(question.labels, lang, questionnaire, question.name),
                _text(question.hints, lang, questionnaire, "") or None,
                None,
                None,
            ]
        )
        for choice in questionnaire.choices_for(question):
            rows.append(
                [question.name, str(question.type), question.list_name]
                + [None] * 10
                + [choice.name, _text(choice.labels, lang, questionnaire, choice.name)]
            )
    return Sheet("codebook", CODEBOOK_COLUMNS, rows)
