"""Questionnaires as XLSForm spreadsheets and as canonical YAML.

- :func:`export_xlsx` writes the sheets ``survey``, ``choices`` and ``settings`` with
  ``label::English (en)``-style headers, one column per declared language; a choice's country
  variants go in ``label::English (en)::NL`` columns (language, then ISO country code).
- :func:`import_xlsx` reads such a workbook, also one written by hand in the usual XLSForm
  conventions, and returns YAML in our format, validated by :func:`parse_questionnaire`; every
  problem names the sheet and row (``file.xlsx:survey`` row 12).
- :func:`to_yaml` writes the canonical YAML of a questionnaire.

Spreadsheet conventions accepted on import (XLSForm as written, issue 19): headers in any
order and any case; ``label``, ``label::en``, ``label::English (en)``, ``label:English`` or
``label::Nederlands`` (names matched with Babel; a bare ``label``/``hint``/``form_title`` is
the default language: the settings' ``default_language``, else the ``language`` chosen at
import); ``constraint_message`` or ``constraint message``; ``list_name`` or ``list name``;
``required``/``core`` as yes/no, true/false, TRUE/FALSE, y/n or 1/0 (blank: not core, and
optional as in XLSForm, unless core); ``select_one  list`` with any spaces; ``begin group``/
``begin_group``; ``parameters`` as ``min=1 max=5``; ``form_title`` or ``title::…`` in
settings; blank rows skipped. The settings sheet is optional: form_id from the file's name,
version from its date, title from the form_id. Unused choice lists and group hints are left
out with a warning. Old Excel 97-2003 ``.xls`` files are read with xlrd; the file's first bytes,
not its name, decide which reader reads it.
ODK's ``${last-saved#name}`` (the answer in the previous wave) and ``${name}`` are read as
written, in expressions and in label and hint texts; our ``carry`` column is a column like
``relevant``. ``calculate`` rows (``calculation`` column), ``choice_filter`` and
``select_one LIST or_other`` are kept as they are; a choices column a choice_filter reads
(``region``) becomes the choices' ``columns``.
What a chat cannot ask (geopoint, image, repeats, external data …: conversations/
xlsform_refused.py) is refused with one problem per row and nothing else about it;
``select_one_from_file x.csv`` reads the CSV beside the form (conversations/choice_files.py),
with the columns a choice_filter reads; ``required`` as a condition (``${x} = 'yes'``) is
refused;
``range`` becomes a scale of buttons, or a typed whole number in bounds when too long.
Columns we do not know (``appearance``, ``media::image``…) are ignored: when one holds a value,
a comment at the top of the returned YAML says so, and the message is also appended to the
optional ``warnings`` list, so nothing is dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from babel import Locale, UnknownLocaleError
from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from conversations.choice_files import FROM_FILE_TYPES, read_choice_file
from conversations.expressions import NAME_RE, ExpressionError, parse_expression
from conversations.questionnaire import (
    CALCULATE,
    END_GROUP,
    MAX_SCALE_BUTTONS,
    ROW_KEYS,
    SUPPORTED_LANGUAGES,
    Calculation,
    Choice,
    Group,
    GroupEnd,
    Problem,
    Question,
    Questionnaire,
    QuestionnaireError,
    _parse,
)
from conversations.workbooks import (
    MEGABYTE,
    megabytes,
    open_workbook,
    open_xls,
    unpacked_size,
    workbook_kind,
)
from conversations.xlsform_refused import (
    END_REPEAT,
    METADATA_TYPES,
    RangePlan,
    range_plan,
    refusal,
    type_word,
)

# What one XLSForm workbook may hold (a questionnaire has hundreds of rows, a choice list a
# few thousand); reading stops at the first limit passed.
MAX_ROWS = 10_000
"""Rows with values in one sheet."""
MAX_COLUMNS = 200
MAX_CELL_CHARS = 10_000
MAX_UNPACKED_BYTES = 50 * MEGABYTE
MAX_PROBLEMS = 100

LANGUAGE_NAMES: dict[str, str] = {
    "en": "English",
    "nl": "Dutch",
    "es": "Spanish",
    "et": "Estonian",
    "it": "Italian",
}
_NAMES_TO_CODES: dict[str, str] = {
    "english": "en",
    "dutch": "nl",
    "nederlands": "nl",
    "spanish": "es",
    "español": "es",
    "espanol": "es",
    "castellano": "es",
    "estonian": "et",
    "eesti": "et",
    "italian": "it",
    "italiano": "it",
}

SURVEY_COLUMNS = ROW_KEYS
TRANSLATED_SURVEY_COLUMNS = ("label", "hint", "constraint_message")
CHOICES_COLUMNS = ("list_name", "name", "label")
SETTINGS_COLUMNS = ("form_id", "version", "default_language", "languages", "title")
_HEADER_ALIASES = {"form_title": "title", "listname": "list_name"}
_TRUE = {"yes", "y", "true", "1", "true()"}
_FALSE = {"no", "n", "false", "0", "false()"}
_CONDITION_RE = re.compile(r"\$\{|[=<>(]")  # a required that is an expression


def language_header(code: str) -> str:
    """How a column names a language: ``English (en)``."""
    name = LANGUAGE_NAMES.get(code)
    return f"{name} ({code})" if name else code


@cache
def _babel_names() -> dict[str, str]:
    """The English and native names of our languages, lowercased, by Babel (CLDR)."""
    names: dict[str, str] = {}
    for code in SUPPORTED_LANGUAGES:
        locale = Locale.parse(code)
        for name in (locale.get_language_name("en"), locale.get_language_name(code)):
            if name:
                names[name.strip().lower()] = code
    return names


def language_code(text: str) -> str | None:
    """The code in ``English (en)``, ``en``, ``en_GB``, ``English``, ``Nederlands`` or
    ``english`` (any case); None if unclear."""
    value = text.strip()
    match = re.search(r"\(\s*([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})?)\s*\)$", value)
    if match:
        return match.group(1).lower()
    if re.fullmatch(r"[A-Za-z]{2,3}", value):
        return value.lower()
    name = value.lower()
    code = _NAMES_TO_CODES.get(name) or _babel_names().get(name)
    if code is not None:
        return code
    if re.fullmatch(r"[A-Za-z]{2,3}[-_][A-Za-z0-9]{1,8}", value):  # en_GB, nl-BE
        try:
            return Locale.parse(value.replace("-", "_")).language.lower()
        except (ValueError, TypeError, UnknownLocaleError):
            return None
    return None


# --- canonical YAML -----------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


class _Flow(list[Any]):
    """A list written inline: ``[nl, es, en]``."""


class _FlowMap(dict[str, Any]):
    """A mapping written inline: ``{min: 1, max: 5}``."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    if any(c in data for c in "\x85\u2028\u2029"):
        # Line breaks to a YAML reader: written as they are, they came back as spaces or
        # broke the indentation (PyYAML writes them raw). Double quotes escape them.
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_flow(dumper: yaml.SafeDumper, data: _Flow) -> yaml.SequenceNode:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_Dumper.add_representer(str, _represent_str)


def _represent_flow_map(dumper: yaml.SafeDumper, data: _FlowMap) -> yaml.MappingNode:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)


_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(_FlowMap, _represent_flow_map)


def _dump(data: object) -> str:
    return yaml.dump(
        data,
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
        width=1_000_000,  # a text stays on one line: easier to find, edit and compare
    )


Origin = tuple[str, int] | None  # (sheet, row) a YAML line came from


@dataclass
class _Document:
    """YAML built piece by piece, remembering where each line came from."""

    lines: list[str] = field(default_factory=list)
    origins: list[Origin] = field(default_factory=list)

    def add(self, text: str, origin: Origin, indent: str = "") -> None:
        for line in text.rstrip("\n").split("\n"):
            self.lines.append(indent + line if line else line)
            self.origins.append(origin)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def origin(self, line: int) -> Origin:
        """Where YAML line `line` (1-based) came from: that line, or the closest one before."""
        for index in range(min(line, len(self.origins)) - 1, -1, -1):
            if self.origins[index] is not None:
                return self.origins[index]
        return None


def _render(
    settings: dict[str, Any],
    settings_origin: Origin,
    rows: list[tuple[dict[str, Any], Origin]],
    choices: dict[str, list[tuple[dict[str, Any], Origin]]],
    comments: Iterable[str] = (),
) -> _Document:
    doc = _Document()
    for comment in comments:
        doc.add(f"# {comment}", None)
    doc.add(_dump({"settings": settings}), settings_origin)
    doc.add("", None)
    doc.add("survey:", rows[0][1] if rows else None)
    for index, (row, origin) in enumerate(rows):
        if index:
            doc.add("", None)
        text = _dump([row])
        if row.get("type") == END_GROUP and "group" in row:
            text = f"- type: {END_GROUP}   # {row.pop('group')}"
        doc.add(text, origin, "  ")
    if not rows:
        doc.lines[-1] = "survey: []"
    if choices:
        doc.add("", None)
        doc.add("choices:", None)
        for list_name, items in choices.items():
            first = items[0][1] if items else None
            key = _dump({list_name: None}).rstrip("\n").removesuffix(" null").removesuffix(":")
            if not items:
                doc.add(f"{key}: []", first, "  ")
                continue
            doc.add(f"{key}:", first, "  ")
            for item, origin in items:
                doc.add(_dump([item]), origin, "    ")
    return doc


def _question_row(question: Question) -> dict[str, Any]:
    row: dict[str, Any] = {"type": question.type_text, "name": question.name}
    row["label"] = dict(question.labels)
    if question.hints:
        row["hint"] = dict(question.hints)
    if question.answerable and not question.required:
        row["required"] = False
    if question.relevant is not None:
        row["relevant"] = question.relevant.source or str(question.relevant)
    if question.constraint is not None:
        row["constraint"] = question.constraint.source or str(question.constraint)
    if question.constraint_messages:
        row["constraint_message"] = dict(question.constraint_messages)
    if question.parameters:
        row["parameters"] = _FlowMap(question.parameters)
    if question.core:
        row["core"] = True
    if question.carry is not None:
        row["carry"] = question.carry.source or str(question.carry)
    if question.choice_filter is not None:
        row["choice_filter"] = question.choice_filter.source or str(question.choice_filter)
    return row


def _group_row(group: Group) -> dict[str, Any]:
    row: dict[str, Any] = {"type": "begin_group", "name": group.name}
    if group.labels:
        row["label"] = dict(group.labels)
    if group.relevant is not None:
        row["relevant"] = group.relevant.source or str(group.relevant)
    return row


def _calculation_row(calculation: Calculation) -> dict[str, Any]:
    row: dict[str, Any] = {"type": CALCULATE, "name": calculation.name}
    if calculation.relevant is not None:
        row["relevant"] = calculation.relevant.source or str(calculation.relevant)
    row["calculation"] = calculation.calculation.source or str(calculation.calculation)
    return row


def _choice_item(choice: Choice) -> dict[str, Any]:
    item: dict[str, Any] = {"name": choice.name, "label": dict(choice.labels)}
    if choice.countries:
        # By country code: a spreadsheet's columns cannot keep each choice's own order.
        item["countries"] = {c: dict(choice.countries[c]) for c in sorted(choice.countries)}
    if choice.columns:
        item["columns"] = _FlowMap(choice.columns)
    return item


def to_yaml(q: Questionnaire) -> str:
    """The canonical YAML of `q`: block style, languages in declared order, unicode as is."""
    settings = {
        "form_id": q.form_id,
        "version": q.version,
        "default_language": q.default_language,
        "languages": _Flow(q.languages),
        "title": dict(q.title),
    }
    rows: list[tuple[dict[str, Any], Origin]] = []
    for item in q.rows:
        if isinstance(item, Question):
            rows.append((_question_row(item), None))
        elif isinstance(item, Group):
            rows.append((_group_row(item), None))
        elif isinstance(item, Calculation):
            rows.append((_calculation_row(item), None))
        else:
            rows.append(({"type": END_GROUP, "group": item.name}, None))
    choices: dict[str, list[tuple[dict[str, Any], Origin]]] = {
        list_name: [(_choice_item(c), None) for c in items]
        for list_name, items in q.choices.items()
    }
    return _render(settings, None, rows, choices).text()


# --- export -------------------------------------------------------------------------------


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _parameters_text(parameters: Any) -> str:
    return " ".join(f"{key}={value}" for key, value in parameters.items())


def export_xlsx(q: Questionnaire, path: str | Path) -> None:
    """Write `q` as an XLSForm workbook (sheets survey, choices, settings)."""
    langs = [language_header(lang) for lang in q.languages]
    workbook = Workbook()
    survey = workbook.active
    assert survey is not None
    survey.title = "survey"
    headers = ["type", "name"]
    headers += [f"label::{h}" for h in langs] + [f"hint::{h}" for h in langs]
    headers += ["required", "relevant", "constraint"]
    headers += [f"constraint_message::{h}" for h in langs] + ["parameters", "core", "carry"]
    # only when used: a form without them keeps the layout it always had
    if any(item.choice_filter is not None for item in q.questions):
        headers.append("choice_filter")
    if q.calculations:
        headers.append("calculation")
    _append(survey, headers)
    for item in q.rows:
        values: dict[str, object] = {}
        if isinstance(item, Question):
            values = {"type": item.type_text, "name": item.name}
            for lang, header in zip(q.languages, langs, strict=True):
                values[f"label::{header}"] = item.labels.get(lang)
                values[f"hint::{header}"] = item.hints.get(lang)
                values[f"constraint_message::{header}"] = item.constraint_messages.get(lang)
            if item.answerable:
                values["required"] = _yes_no(item.required)
                values["core"] = _yes_no(item.core)
            if item.relevant is not None:
                values["relevant"] = item.relevant.source or str(item.relevant)
            if item.constraint is not None:
                values["constraint"] = item.constraint.source or str(item.constraint)
            if item.parameters:
                values["parameters"] = _parameters_text(item.parameters)
            if item.carry is not None:
                values["carry"] = item.carry.source or str(item.carry)
            if item.choice_filter is not None:
                values["choice_filter"] = item.choice_filter.source or str(item.choice_filter)
        elif isinstance(item, Calculation):
            values = _calculation_row(item)
        elif isinstance(item, Group):
            values = {"type": "begin_group", "name": item.name}
            for lang, header in zip(q.languages, langs, strict=True):
                values[f"label::{header}"] = item.labels.get(lang)
            if item.relevant is not None:
                values["relevant"] = item.relevant.source or str(item.relevant)
        elif isinstance(item, GroupEnd):
            values = {"type": END_GROUP}
        _append(survey, [values.get(header) for header in headers])

    choices = workbook.create_sheet("choices")
    countries = list(
        dict.fromkeys(
            country for items in q.choices.values() for c in items for country in c.countries
        )
    )
    choice_headers = ["list_name", "name"] + [f"label::{h}" for h in langs]
    choice_headers += [f"label::{h}::{country}" for country in countries for h in langs]
    extra = list(
        dict.fromkeys(key for items in q.choices.values() for c in items for key in c.columns)
    )
    choice_headers += extra
    _append(choices, choice_headers)
    for list_name, items in q.choices.items():
        for choice in items:
            labels = [choice.labels.get(lang) for lang in q.languages]
            labels += [
                choice.countries.get(country, {}).get(lang)
                for country in countries
                for lang in q.languages
            ]
            labels += [choice.columns.get(key) for key in extra]
            _append(choices, [list_name, choice.name, *labels])

    settings = workbook.create_sheet("settings")
    setting_headers = ["form_id", "version", "default_language"]
    setting_headers += [f"title::{h}" for h in langs]
    _append(settings, setting_headers)
    _append(
        settings,
        [
            q.form_id,
            q.version,
            language_header(q.default_language),
            *(q.title.get(lang) for lang in q.languages),
        ],
    )
    for sheet, widths in (
        (survey, {"A": 24, "B": 14}),
        (choices, {"A": 18, "B": 18}),
        (settings, {"A": 14, "B": 12, "C": 18}),
    ):
        sheet.freeze_panes = "A2"
        for column, width in widths.items():
            sheet.column_dimensions[column].width = width
    workbook.save(path)


def _append(sheet: Worksheet, values: Sequence[object]) -> None:
    """Append a row; text is always stored as text (never read as a formula or a number)."""
    sheet.append([None if value in (None, "") else value for value in values])
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
            cell.number_format = "@"


# --- import -------------------------------------------------------------------------------


@dataclass
class _Sheet:
    title: str
    headers: list[str]
    rows: list[tuple[int, list[object]]]  # (row number, values), blank rows left out


def _cell_text(value: object) -> str:
    """A cell as text: numbers without a spurious .0, dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value).replace("\r\n", "\n").strip()


class _TooBig(Exception):
    """A sheet past the limits: reading stops there."""

    def __init__(self, row: int, message: str) -> None:
        super().__init__(message)
        self.row = row
        self.message = message


def _read_sheet(sheet: Any, importer: _Importer) -> _Sheet:
    """The header and the rows that are not empty, as the sheet really holds them, within
    MAX_ROWS, MAX_COLUMNS and MAX_CELL_CHARS (a row past those is a problem of its own)."""
    headers: list[str] = []
    rows: list[tuple[int, list[object]]] = []
    for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
        if number > 2 * MAX_ROWS:
            raise _TooBig(
                number,
                f"the sheet goes on for more than {2 * MAX_ROWS:,} rows, counting empty ones: "
                "delete the empty rows at its end",
            )
        cells = list(values)
        while cells and _cell_text(cells[-1]) == "":
            cells.pop()
        if len(cells) > MAX_COLUMNS:
            if number == 1:
                raise _TooBig(1, f"the header has more than {MAX_COLUMNS} columns")
            importer.problem(sheet.title, number, f"the row has more than {MAX_COLUMNS} columns")
            continue
        long = next(
            (i for i, value in enumerate(cells) if len(_cell_text(value)) > MAX_CELL_CHARS), None
        )
        if long is not None:
            importer.problem(
                sheet.title,
                number,
                f"the cell in column {get_column_letter(long + 1)} is longer than "
                f"{MAX_CELL_CHARS:,} characters",
            )
            continue
        if number == 1:
            headers = [_cell_text(value) for value in cells]
            continue
        if not cells:
            continue
        if len(rows) >= MAX_ROWS:
            raise _TooBig(
                number, f"the sheet has more than {MAX_ROWS:,} rows: is this a questionnaire?"
            )
        rows.append((number, cells))
    return _Sheet(sheet.title, headers, rows)


@dataclass
class _Column:
    index: int
    header: str
    key: str
    lang: str | None = None  # for translated columns; "" when the header names none
    country: str | None = None  # a choice label's country variant: label::English (en)::NL


COUNTRY_HEADER_RE = re.compile(r"[A-Za-z]{2}")


def _columns(
    sheet: _Sheet,
    known: tuple[str, ...],
    translated: tuple[str, ...],
    importer: _Importer,
    countries: bool = False,
) -> tuple[list[_Column], list[_Column]]:
    """The columns we read, and the ones we ignore. `countries`: the sheet may have country
    variants of its labels (``label::English (en)::NL``)."""
    columns: list[_Column] = []
    ignored: list[_Column] = []
    seen: dict[tuple[str, str | None, str | None], str] = {}
    for index, header in enumerate(sheet.headers):
        if not header:
            continue
        # label::English (en), and label:English (one colon, as some tools write it)
        base, _, suffix = header.partition("::" if "::" in header else ":")
        key = re.sub(r"[\s_]+", "_", base.strip().lower())
        key = _HEADER_ALIASES.get(key, key)
        if key not in known or (suffix and key not in translated):
            ignored.append(_Column(index, header, key))
            continue
        lang: str | None = None
        country: str | None = None
        if key in translated:
            if suffix:
                language, _, country_part = suffix.partition("::")
                lang = language_code(language)
                if lang is None:
                    importer.problem(
                        sheet.title,
                        1,
                        f"column {header!r}: which language is {language.strip()!r}? "
                        f"Name it like {key}::English (en)",
                    )
                    continue
                if country_part:
                    if not countries:
                        importer.problem(
                            sheet.title,
                            1,
                            f"column {header!r}: only choice labels have country variants; "
                            f"name it like {key}::English (en)",
                        )
                        continue
                    if not COUNTRY_HEADER_RE.fullmatch(country_part.strip()):
                        importer.problem(
                            sheet.title,
                            1,
                            f"column {header!r}: which country is {country_part.strip()!r}? "
                            f"Name it like {key}::English (en)::NL (an ISO country code)",
                        )
                        continue
                    country = country_part.strip().upper()
            else:
                lang = ""
        if (key, lang, country) in seen:
            importer.problem(
                sheet.title,
                1,
                f"columns {seen[(key, lang, country)]!r} and {header!r} hold the same thing",
            )
            continue
        seen[(key, lang, country)] = header
        columns.append(_Column(index, header, key, lang, country))
    return columns, ignored


def _flag(text: str) -> bool | str:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return text


class _Importer:
    def __init__(
        self, path: str | Path, supported: tuple[str, ...], language: str | None = None
    ) -> None:
        self.path = str(path)
        self.supported = supported
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        # the language of bare label/hint/form_title columns: the settings' default_language,
        # else the one chosen at import (--language)
        self.language = language_code(language) if language else None
        if language and self.language not in supported:
            self.problem(
                None,
                0,
                f"--language {language!r}: choose one of {', '.join(supported)}",
            )
            self.language = None
        self.default_language: str | None = self.language
        # Rows refused as a whole (issue 19): one problem each, nothing else said about them.
        self.refused: set[tuple[str, int]] = set()
        self.placeholders: list[dict[str, Any]] = []
        self.refused_lists: set[str] = set()  # lists only refused rows use: left out quietly
        # select_one_from_file: the list each row's CSV file became, the files read.
        self.file_rows: dict[int, str] = {}
        self.file_choices: dict[str, list[tuple[dict[str, Any], Origin]]] = {}
        self.files: dict[str, str] = {}  # the origin's "sheet" name of a CSV file -> its path
        self.file_lists: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self.range_rows: dict[int, RangePlan] = {}  # range rows: as buttons, or typed
        self.filtered: list[str] = []  # the choices columns the choice_filters read

    def problem(self, sheet: str | None, row: int, message: str) -> None:
        source = f"{self.path}:{sheet}" if sheet else self.path
        self.problems.append(Problem(source, row, message))

    def ignore(self, sheet: _Sheet, ignored: list[_Column]) -> None:
        for column in ignored:
            used = [n for n, cells in sheet.rows if _value(cells, column.index)]
            if used:
                self.warnings.append(
                    f"{sheet.title}: column {column.header!r} is not part of the gradtrack "
                    f"format and was ignored (it has values in rows {_rows_text(used)})"
                )

    def refused_row(
        self,
        sheet: _Sheet,
        number: int,
        cells: list[object],
        columns: list[_Column],
        rows: list[tuple[dict[str, Any], Origin]],
    ) -> bool:
        """Refuse a row a chat cannot ask (issue 19): one problem naming the row, its name and
        the feature, and a stand-in question of the same name in its place so that nothing
        else (a reference to it, an empty group) is said about it. Metadata rows are left out
        with a warning. True: the row is dealt with."""
        by_key = {c.key: _value(cells, c.index) for c in columns if c.lang is None}
        type_text, name = by_key.get("type", ""), by_key.get("name", "")
        word = type_word(type_text)
        if not word:
            return False
        if word in METADATA_TYPES:
            self.warnings.append(
                f"{sheet.title}: row {number}: {name or word} ({word}) is recorded by ODK "
                "itself, never asked: left out"
            )
            return True
        if word == END_REPEAT:
            return True  # its begin_repeat row is refused
        cells_by_header = {
            header.strip().lower(): _value(cells, index)
            for index, header in enumerate(sheet.headers)
            if header and _value(cells, index)
        }
        reason = refusal(type_text, cells_by_header)
        if reason is None and word in FROM_FILE_TYPES:
            reason = self.choice_file(number, type_text, by_key.get("parameters", ""))
        if reason is None and word == "range":
            plan = range_plan(by_key.get("parameters", ""), MAX_SCALE_BUTTONS)
            if isinstance(plan, str):
                reason = plan
            else:
                self.range_rows[number] = plan
        if reason is None:
            return False
        self.problem(sheet.title, number, f"{name or 'the row'}: {reason}")
        self.refused.add((sheet.title, number))
        self.refused_lists.update(type_text.split()[1:2])
        if word != "begin_repeat" and NAME_RE.fullmatch(name):
            stand_in: dict[str, Any] = {"type": "text", "name": name, "required": False}
            self.placeholders.append(stand_in)
            rows.append((stand_in, (sheet.title, number)))
        return True

    def choice_file(self, number: int, type_text: str, parameters: str) -> str | None:
        """Read the CSV file of a select_one_from_file row into a choice list (once per file);
        why not, or None when it was read."""
        kind, _, filename = type_text.strip().partition(" ")
        filename = filename.strip()
        if not filename:
            return f"{kind} needs the name of a CSV file next to the form: {kind} schools.csv"
        params = _parameters(parameters) if parameters else {}
        columns = {
            key: str(value) for key, value in (params or {}).items() if key in ("value", "label")
        }
        origin_name = Path(filename).name
        known = self.file_lists.get((filename, tuple(sorted(columns.items()))))
        if known is not None:
            self.file_rows[number] = known
            return None
        result = read_choice_file(
            Path(self.path).parent,
            filename,
            self.default_language,
            columns,
            language_code,
            self.filtered,
        )
        if isinstance(result, str):
            return result
        list_name, number_ = result.list_name, 1
        while list_name in self.file_choices:  # another file of that name, or other columns
            number_ += 1
            list_name = f"{result.list_name.removesuffix('_csv')[:24]}_{number_}_csv"
        self.files[origin_name] = str(Path(self.path).parent / filename)
        self.file_lists[(filename, tuple(sorted(columns.items())))] = list_name
        self.file_rows[number] = list_name
        for item, _ in result.items:
            if "columns" in item:
                item["columns"] = _FlowMap(item["columns"])
        self.file_choices[list_name] = [(item, (origin_name, line)) for item, line in result.items]
        self.warnings.extend(result.warnings)
        return None

    def from_file(self, sheet: _Sheet, number: int, row: dict[str, Any]) -> None:
        """A select_one_from_file row read: the type names the file's list; the parameters
        that chose its columns are used up."""
        list_name = self.file_rows.get(number)
        if list_name is None or sheet.title.lower() != "survey":
            return
        kind = "select_multiple" if "multiple" in row["type"].split()[0] else "select_one"
        row["type"] = f"{kind} {list_name}"
        parameters = row.get("parameters")
        if isinstance(parameters, dict):
            for key in ("value", "label"):
                parameters.pop(key, None)
            if not parameters:
                del row["parameters"]

    def as_range(self, sheet: _Sheet, number: int, row: dict[str, Any]) -> None:
        """A range row: a scale of buttons when it fits, else a typed whole number."""
        plan = self.range_rows.get(number)
        if plan is None or sheet.title.lower() != "survey":
            return
        row["type"] = plan.type
        others = {
            key: value
            for key, value in dict(row.get("parameters") or {}).items()
            if key not in ("start", "end", "step")
        }
        row.pop("parameters", None)
        row["parameters"] = _FlowMap({**plan.parameters, **others})
        if plan.note:
            self.warnings.append(f"{sheet.title}: row {number}: {plan.note}")

    def run(self) -> _Document:
        if self.problems:
            raise QuestionnaireError(self.problems)
        if workbook_kind(self.path) == "xls":  # by its content, whatever its name
            return self.build(self.read_xls())
        size = unpacked_size(self.path)
        if size is not None and size > MAX_UNPACKED_BYTES:
            self.problem(
                None,
                0,
                f"the workbook unpacks to {megabytes(size):,} MB, more than the "
                f"{megabytes(MAX_UNPACKED_BYTES)} MB allowed",
            )
            raise QuestionnaireError(self.problems)
        sheets: dict[str, _Sheet] = {}
        try:
            workbook = open_workbook(self.path)
            try:
                for sheet in workbook:
                    sheets[sheet.title.strip().lower()] = _read_sheet(sheet, self)
            finally:
                workbook.close()
        except _TooBig as error:
            self.problem(sheet.title, error.row, error.message)
            raise QuestionnaireError(_capped(self.problems, self.path)) from None
        except Exception as error:
            # A damaged or hostile file: openpyxl reads it lazily, sheet by sheet, and fails
            # with whatever its zip and XML readers raise (EOFError, ParseError, ...).
            self.problem(None, 0, f"cannot read the spreadsheet: {_unreadable(self.path, error)}")
            raise QuestionnaireError(self.problems) from None
        return self.build(sheets)

    def read_xls(self) -> dict[str, _Sheet]:
        """The sheets of an old Excel 97-2003 workbook (xlrd)."""
        size = Path(self.path).stat().st_size
        if size > MAX_UNPACKED_BYTES:
            self.problem(
                None,
                0,
                f"the workbook is {megabytes(size):,} MB, more than the "
                f"{megabytes(MAX_UNPACKED_BYTES)} MB allowed",
            )
            raise QuestionnaireError(self.problems)
        sheets: dict[str, _Sheet] = {}
        title = None
        try:
            for sheet in open_xls(self.path):
                title = sheet.title
                sheets[sheet.title.strip().lower()] = _read_sheet(sheet, self)
        except _TooBig as error:
            self.problem(title, error.row, error.message)
            raise QuestionnaireError(_capped(self.problems, self.path)) from None
        except Exception as error:
            # xlrd raises XLRDError, CompDocError, struct.error, IndexError ... on a bad file
            self.problem(None, 0, f"cannot read the .xls workbook: {error or type(error).__name__}")
            raise QuestionnaireError(self.problems) from None
        return sheets

    def build(self, sheets: dict[str, _Sheet]) -> _Document:
        if "survey" not in sheets:
            self.problem(None, 0, "the workbook has no 'survey' sheet")
        if self.problems:
            raise QuestionnaireError(_capped(self.problems, self.path))
        settings: dict[str, Any] = {}
        settings_origin: Origin = None
        if "settings" in sheets:  # optional in XLSForm
            settings, settings_origin = self.settings(sheets["settings"])
        survey_langs: list[str] = []
        self.filtered = _filter_columns(_column_values(sheets["survey"], "choice_filter"))
        rows = self.survey(sheets["survey"], survey_langs)
        if not rows and self.problems:  # no survey to speak of: the rest would be noise
            raise QuestionnaireError(_capped(_sorted(self.problems), self.path))
        filtered = _filter_columns(row.get("choice_filter") for row, _ in rows)
        choices = self.choices(sheets["choices"], filtered) if "choices" in sheets else {}
        for list_name, items in self.file_choices.items():
            if list_name in choices:
                number = min(n for n, name in self.file_rows.items() if name == list_name)
                self.problem(
                    "survey",
                    number,
                    f"the choices sheet has a list {list_name}, the name the CSV file's list "
                    "takes: rename that list",
                )
            choices[list_name] = items
        self.unused_lists(rows, choices)
        self.defaults(settings, survey_langs)
        for stand_in in self.placeholders:  # refused rows: a label that says nothing more
            stand_in["label"] = {lang: stand_in["name"] for lang in settings["languages"]}
        settings = {key: settings[key] for key in SETTINGS_COLUMNS if key in settings}
        comments = [f"Imported from {Path(self.path).name}"]
        comments += [f"Warning: {warning}" for warning in self.warnings]
        return _render(settings, settings_origin, rows, choices, comments)

    def defaults(self, settings: dict[str, Any], survey_langs: list[str]) -> None:
        """What XLSForm leaves out, as XLSForm tools fill it in: the form_id from the file's
        name, the version from the file's date, the title from the form_id."""
        path = Path(self.path)
        if "form_id" not in settings:
            form_id = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_")[:24]
            settings["form_id"] = form_id.strip("_") or "form"
        if "version" not in settings:
            try:
                stamp = datetime.fromtimestamp(path.stat().st_mtime)
            except OSError:
                stamp = datetime.now()
            settings["version"] = stamp.strftime("%Y%m%d")
        if "default_language" not in settings:
            default = self.default_language or (survey_langs[0] if survey_langs else None)
            if default is not None:
                settings["default_language"] = default
        if "languages" not in settings:
            languages = list(survey_langs) + list(settings.get("title", {}))
            if settings.get("default_language") and not languages:
                languages.append(settings["default_language"])  # only bare columns
            settings["languages"] = _Flow(dict.fromkeys(languages).keys())
        if "title" not in settings and settings["languages"]:
            settings["title"] = {lang: settings["form_id"] for lang in settings["languages"]}
        elif "title" in settings and isinstance(settings["languages"], list):
            # XLSForm's form_title is one text, whatever languages the labels are in (as ODK
            # shows it): a language without its own title shows that one
            titles = settings["title"]
            default = titles.get(settings.get("default_language")) or next(iter(titles.values()))
            for lang in settings["languages"]:
                titles.setdefault(lang, default)

    def unused_lists(
        self,
        rows: list[tuple[dict[str, Any], Origin]],
        choices: dict[str, list[tuple[dict[str, Any], Origin]]],
    ) -> None:
        """Choice lists no question uses are left out with a warning (XLSForm allows them)."""
        used = set()
        for row, _ in rows:
            words = str(row.get("type", "")).split()
            if len(words) > 1:
                used.add(words[1])
        for list_name in [name for name in choices if name not in used]:
            if list_name in self.refused_lists:
                del choices[list_name]  # its question was refused: nothing more to say
                continue
            numbers = [origin[1] for _, origin in choices[list_name] if origin]
            self.warnings.append(
                f"choices: list {list_name!r} (rows {_rows_text(numbers)}) is not used by any "
                "question and was left out"
            )
            del choices[list_name]

    def translated(
        self, cells: list[object], column: _Column, target: dict[str, dict[str, str]], sheet: str
    ) -> None:
        text = _value(cells, column.index)
        if not text:
            return
        lang = column.lang or self.default_language
        if lang is None:
            self.problem(
                sheet,
                1,
                f"column {column.header!r} names no language: set default_language in the "
                f"settings sheet, choose one at import (--language en) or name it like "
                f"{column.key}::English (en)",
            )
            return
        texts = target.setdefault(column.key, {})
        if lang in texts:
            self.problem(sheet, 1, f"two columns give the {column.key} in {lang}: keep one of them")
            return
        texts[lang] = text

    def settings(self, sheet: _Sheet) -> tuple[dict[str, Any], Origin]:
        columns, ignored = _columns(sheet, SETTINGS_COLUMNS, ("title",), self)
        self.ignore(sheet, ignored)
        if not sheet.rows:
            self.problem(sheet.title, 2, "the settings sheet has no values in row 2")
            return {}, (sheet.title, 2)
        number, cells = sheet.rows[0]
        for extra, _ in sheet.rows[1:]:
            self.problem(sheet.title, extra, "settings take one row (row 2); this row is extra")
        values = {c.key: _value(cells, c.index) for c in columns if c.lang is None}
        settings: dict[str, Any] = {}
        for key in ("form_id", "version"):
            if values.get(key):
                settings[key] = values[key]
        default = values.get("default_language", "")
        if default:
            code = language_code(default)
            if code is None:
                self.problem(
                    sheet.title,
                    number,
                    f"default_language {default!r}: write it like English (en) or en",
                )
            else:
                settings["default_language"] = code
                self.default_language = code
        if values.get("languages"):
            settings["languages"] = _Flow(
                language_code(part) or part
                for part in re.split(r"[\s,;]+", values["languages"])
                if part
            )
        texts: dict[str, dict[str, str]] = {}
        for column in columns:
            if column.lang is not None:
                self.translated(cells, column, texts, sheet.title)
        if texts.get("title"):
            settings["title"] = texts["title"]
        return settings, (sheet.title, number)

    def survey(self, sheet: _Sheet, langs: list[str]) -> list[tuple[dict[str, Any], Origin]]:
        columns, ignored = _columns(sheet, SURVEY_COLUMNS, TRANSLATED_SURVEY_COLUMNS, self)
        self.ignore(sheet, ignored)
        for column in columns:
            lang = column.lang if column.lang else self.default_language
            if column.lang is not None and lang and lang not in langs:
                langs.append(lang)
        if not sheet.headers and not sheet.rows:
            self.problem(sheet.title, 0, "the survey sheet is empty")
            return []
        if not any(c.key == "type" for c in columns):
            self.problem(sheet.title, 1, "the survey sheet has no 'type' column")
            return []
        rows: list[tuple[dict[str, Any], Origin]] = []
        for number, cells in sheet.rows:
            if self.refused_row(sheet, number, cells, columns, rows):
                continue
            row: dict[str, Any] = {}
            texts: dict[str, dict[str, str]] = {}
            for column in columns:
                if column.lang is not None:
                    self.translated(cells, column, texts, sheet.title)
                    continue
                text = _value(cells, column.index)
                if not text:
                    continue
                if column.key == "type":
                    row["type"] = _type_text(text)
                elif (
                    column.key == "required"
                    and _CONDITION_RE.search(text)
                    and not isinstance(_flag(text), bool)  # true() is a flag
                ):
                    # XLSForm allows a condition (${paid} = 'yes'); a chat question is
                    # required or not
                    self.problem(
                        sheet.title,
                        number,
                        f"required {text!r} is not supported: a question is required or not "
                        "(write yes or no); a condition that depends on other answers is not "
                        "supported",
                    )
                    row["required"] = False
                elif column.key in ("required", "core"):
                    row[column.key] = _flag(text)
                elif column.key == "parameters":
                    parameters = _parameters(text)
                    if parameters is None:
                        self.problem(
                            sheet.title,
                            number,
                            f"parameters {text!r}: write them like min=1 max=5",
                        )
                    else:
                        row["parameters"] = _FlowMap(parameters)
                else:
                    row[column.key] = text
            row.update(texts)
            ordered = {key: row[key] for key in SURVEY_COLUMNS if key in row}
            self.from_file(sheet, number, ordered)
            self.as_range(sheet, number, ordered)
            if "type" not in ordered:
                self.problem(sheet.title, number, "the row has no type")
                continue
            if ordered["type"] == END_GROUP:
                ordered.pop("name", None)  # XLSForm end rows may repeat the name: not needed
            kind = ordered["type"].split()[0]
            if kind == CALCULATE:
                dropped = [key for key in TRANSLATED_SURVEY_COLUMNS if key in ordered]
                for text_key in dropped:
                    del ordered[text_key]
                if dropped:
                    self.warnings.append(
                        f"{sheet.title}: row {number}: a calculate row is not shown; its "
                        f"{' and '.join(dropped)} was left out"
                    )
            if kind in ("note", "begin_group", END_GROUP, CALCULATE):
                for key in ("required", "core"):
                    if ordered.get(key) is False:
                        del ordered[key]  # "no" on a row that is not a question: harmless
            elif "required" not in ordered and ordered.get("core") is not True:
                # XLSForm: a blank required is optional (a core question is always required)
                ordered["required"] = False
            if kind == "begin_group" and "hint" in ordered:
                del ordered["hint"]
                self.warnings.append(
                    f"{sheet.title}: row {number}: a group's hint is not shown in a chat and was "
                    "left out"
                )
            ordered = {key: ordered[key] for key in SURVEY_COLUMNS if key in ordered}
            rows.append((ordered, (sheet.title, number)))
        return rows

    def choices(
        self, sheet: _Sheet, filtered: Iterable[str] = ()
    ) -> dict[str, list[tuple[dict[str, Any], Origin]]]:
        """`filtered`: the columns choice_filters read (``region``), kept as `columns`."""
        known = (*CHOICES_COLUMNS, *filtered)
        columns, ignored = _columns(sheet, known, ("label",), self, countries=True)
        self.ignore(sheet, ignored)
        if not any(c.key == "list_name" for c in columns):
            if sheet.rows:
                self.problem(sheet.title, 1, "the choices sheet has no 'list_name' column")
            return {}
        result: dict[str, list[tuple[dict[str, Any], Origin]]] = {}
        for number, cells in sheet.rows:
            item: dict[str, Any] = {}
            texts: dict[str, dict[str, str]] = {}
            variants: dict[str, dict[str, dict[str, str]]] = {}
            list_name = ""
            for column in columns:
                if column.country is not None:
                    self.translated(
                        cells, column, variants.setdefault(column.country, {}), sheet.title
                    )
                elif column.lang is not None:
                    self.translated(cells, column, texts, sheet.title)
                elif column.key == "list_name":
                    list_name = _value(cells, column.index)
                elif column.key not in CHOICES_COLUMNS:
                    if _value(cells, column.index):
                        extra = item.setdefault("columns", _FlowMap())
                        extra[column.key] = _value(cells, column.index)
                elif _value(cells, column.index):
                    item[column.key] = _value(cells, column.index)
            if not list_name:
                self.problem(sheet.title, number, "the choice has no list_name")
                continue
            extra_columns = item.pop("columns", None)
            item.update(texts)
            if extra_columns:
                item["columns"] = extra_columns  # after name and label
            filled = {c: v["label"] for c, v in variants.items() if v.get("label")}
            if filled:
                item["countries"] = filled
            result.setdefault(list_name, []).append((item, (sheet.title, number)))
        return result


def _filter_columns(texts: Iterable[object]) -> list[str]:
    """The choices columns these choice_filters read (unreadable filters are reported by the
    loader)."""
    found: dict[str, None] = {}
    for text in texts:
        if not isinstance(text, str):
            continue
        try:
            expression = parse_expression(text, columns=True)
        except ExpressionError:
            continue
        found.update(dict.fromkeys(sorted(expression.columns() - {"name"})))
    return list(found)


def _column_values(sheet: _Sheet, key: str) -> list[str]:
    """The values in the sheet's column `key` (a header in any case and spacing), read before
    the rows are: a CSV file of choices is read while the survey is."""
    indexes = [
        index
        for index, header in enumerate(sheet.headers)
        if re.sub(r"[\s_]+", "_", header.strip().lower()) == key
    ]
    return [_value(cells, index) for _, cells in sheet.rows for index in indexes]


def _unreadable(path: str, error: Exception) -> str:
    """Why a file is no .xlsx workbook, in words a school understands."""
    if workbook_kind(path) is None:
        return (
            "it is not an Excel workbook (.xlsx or .xls): save the form from Excel, LibreOffice "
            "or KoboToolbox as .xlsx"
        )
    if isinstance(error, KeyError) and "[Content_Types].xml" in str(error):
        return "it is a zip file, but not an Excel workbook (.xlsx)"
    return f"the workbook is damaged ({error or type(error).__name__})"


def _value(cells: list[object], index: int) -> str:
    return _cell_text(cells[index]) if index < len(cells) else ""


def _rows_text(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:5])
    return shown + (", …" if len(numbers) > 5 else "")


def _type_text(text: str) -> str:
    words = text.split()
    head = " ".join(words[:2]).lower()
    if head in ("begin group", "end group", "select one", "select multiple"):
        words = [head.replace(" ", "_"), *words[2:]]
    elif words:
        words[0] = words[0].lower()
    return " ".join(words)


def _parameters(text: str) -> dict[str, object] | None:
    result: dict[str, object] = {}
    for part in re.split(r"[\s,;]+", text.strip()):
        if not part:
            continue
        key, equals, value = part.partition("=")
        if not equals or not key or not value:
            return None
        result[key.strip()] = int(value) if re.fullmatch(r"-?[0-9]{1,9}", value) else value
    return result


def import_xlsx(
    path: str | Path,
    *,
    supported_languages: Iterable[str] = SUPPORTED_LANGUAGES,
    warnings: list[str] | None = None,
    language: str | None = None,
) -> str:
    """YAML in our format from an XLSForm workbook, validated (QuestionnaireError otherwise).

    Problems name the sheet and row: source ``file.xlsx:survey``, line = the row number.
    `warnings` receives the warnings also when the import fails. `language`: the language of
    bare ``label``/``hint``/``form_title`` columns when the settings name no default_language.
    """
    doc, _ = _import(path, tuple(supported_languages), warnings, language)
    return doc.text()


def load_xlsx(
    path: str | Path,
    *,
    supported_languages: Iterable[str] = SUPPORTED_LANGUAGES,
    warnings: list[str] | None = None,
    language: str | None = None,
) -> Questionnaire:
    """The questionnaire in an XLSForm workbook (QuestionnaireError with sheet rows)."""
    _, questionnaire = _import(path, tuple(supported_languages), warnings, language)
    return questionnaire


def _import(
    path: str | Path,
    supported: tuple[str, ...],
    warnings: list[str] | None,
    language: str | None = None,
) -> tuple[_Document, Questionnaire]:
    importer = _Importer(path, supported, language)
    try:
        return _checked(importer)
    finally:
        if warnings is not None:
            warnings.extend(importer.warnings)


def _checked(importer: _Importer) -> tuple[_Document, Questionnaire]:
    doc = importer.run()

    def where(line: int) -> str:
        origin = doc.origin(line)
        return f"{origin[0]} row {origin[1]}" if origin else f"line {line}"

    try:
        questionnaire = _parse(doc.text(), importer.path, importer.supported, where)
    except QuestionnaireError as error:
        problems = list(importer.problems)
        for problem in error.problems:
            origin = doc.origin(problem.line) if problem.line else None
            if origin is None:
                problems.append(Problem(importer.path, 0, problem.message))
            elif origin in importer.refused:
                continue  # refused with one problem: nothing else is said about the row
            elif origin[0] in importer.files:  # a choice of a select_one_from_file CSV file
                problems.append(Problem(importer.files[origin[0]], origin[1], problem.message))
            else:
                problems.append(Problem(f"{importer.path}:{origin[0]}", origin[1], problem.message))
        raise QuestionnaireError(_capped(_sorted(problems), importer.path)) from None
    if importer.problems:
        raise QuestionnaireError(_capped(_sorted(importer.problems), importer.path))
    return doc, questionnaire


_SHEET_ORDER = {"settings": 0, "survey": 1, "choices": 2}


def _sorted(problems: list[Problem]) -> list[Problem]:
    def key(problem: Problem) -> tuple[int, int]:
        sheet = problem.source.rpartition(":")[2].lower()
        return _SHEET_ORDER.get(sheet, -1), problem.line

    return sorted(problems, key=key)


def _capped(problems: list[Problem], source: str) -> list[Problem]:
    """The first MAX_PROBLEMS problems, and a last one that says how many more there are."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    more = len(problems) - MAX_PROBLEMS
    word = "problem" if more == 1 else "problems"
    return [*problems[:MAX_PROBLEMS], Problem(source, 0, f"and {more:,} more {word}")]
