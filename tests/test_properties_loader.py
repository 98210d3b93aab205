"""Properties of the questionnaire loader (conversations/questionnaire.py) and the XLSForm
import (conversations/xlsform.py).

- Generated valid questionnaires load, keep every text and code, and round-trip through the
  canonical YAML and through a spreadsheet.
- Mutated questionnaires (keys dropped or retyped, junk values, random expressions, unknown
  types, duplicate names, rows swapped so that expressions point forward), mutated YAML text,
  random YAML documents, deep nesting and random bytes either load or raise
  QuestionnaireError listing problems with a message and a line: never another exception.
- Random workbooks (random headers, cells of every type, random bytes) import or raise
  QuestionnaireError.
"""

from __future__ import annotations

import copy
import io
import json
import tempfile
import warnings
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from conversations.questionnaire import (
    Questionnaire,
    QuestionnaireError,
    QuestionType,
    load_questionnaire,
    parse_questionnaire,
)
from conversations.xlsform import export_xlsx, import_xlsx, load_xlsx, to_yaml
from tests.properties import (
    PROFILE,
    dump_yaml,
    extreme_numbers,
    hostile_bytes,
    hostile_text,
    questionnaire_documents,
)
from tests.test_properties_expressions import GRAMMAR_PIECES
from tests.test_xlsform import write_workbook

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests" / "data" / "questionnaires" / "small.yaml"
MINI = ROOT / "tests" / "data" / "chat" / "mini.yaml"

GENERATED_EXAMPLES = 25
MUTATED_DOCUMENT_EXAMPLES = 40
MUTATED_TEXT_EXAMPLES = 40
RANDOM_DOCUMENT_EXAMPLES = 40
NESTING_EXAMPLES = 10
BYTES_EXAMPLES = 40
WORKBOOK_EXAMPLES = 15
XLSX_ROUND_TRIP_EXAMPLES = 15


def check_loads_or_reports(text: str) -> Questionnaire | None:
    """The loader's contract: a questionnaire, or QuestionnaireError whose every problem has a
    message and a line within the text (0: the file as a whole)."""
    try:
        return parse_questionnaire(text, "q.yaml")
    except QuestionnaireError as error:
        check_problems(error, text.count("\n") + 2)
        return None


def check_problems(error: QuestionnaireError, lines: int) -> None:
    assert error.problems
    for problem in error.problems:
        assert isinstance(problem.message, str) and problem.message.strip()
        assert 0 <= problem.line <= lines, (problem, lines)
    assert str(error)


# --- valid questionnaires -----------------------------------------------------------------


@settings(PROFILE, max_examples=GENERATED_EXAMPLES)
@given(questionnaire_documents())
def test_generated_questionnaires_load_and_round_trip(document: dict[str, Any]) -> None:
    q = parse_questionnaire(dump_yaml(document))
    settings_ = document["settings"]
    assert (q.form_id, q.version, q.default_language) == (
        settings_["form_id"],
        settings_["version"],
        settings_["default_language"],
    )
    assert dict(q.title) == settings_["title"]
    rows = [row for row in document["survey"] if row["type"] not in ("begin_group", "end_group")]
    assert [question.name for question in q.questions] == [row["name"] for row in rows]
    for question, row in zip(q.questions, rows, strict=True):
        assert question.type_text == row["type"]
        assert dict(question.labels) == row["label"]
        assert dict(question.hints) == row.get("hint", {})
        assert question.required == (row.get("required", True) and question.answerable)
    for list_name, items in document.get("choices", {}).items():
        assert [(c.name, dict(c.labels)) for c in q.choices[list_name]] == [
            (item["name"], item["label"]) for item in items
        ]
    again = parse_questionnaire(to_yaml(q))
    assert again == q
    assert to_yaml(again) == to_yaml(q)


# --- mutated questionnaires -----------------------------------------------------------------


@cache
def base_documents() -> tuple[dict[str, Any], ...]:
    return tuple(yaml.safe_load(path.read_text(encoding="utf-8")) for path in (SMALL, MINI))


junk_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        extreme_numbers(),
        hostile_text(30),
        st.sampled_from(
            [
                "select_one",
                "select_one nolist",
                "select_multiple yes_no extra",
                "begin_group x",
                "end group",
                "Integer",
                "note",
                "calculate",
                "scale",
                "${consent} = 'yes'",
                "${later} = 1",
                ". > 3",
                "${consent} ==",
                "1.10",
                "2026-06-30",
                "",
            ]
        ),
        st.lists(st.sampled_from(GRAMMAR_PIECES), max_size=12).map("".join),
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.text(max_size=6) | st.sampled_from(["en", "nl", "min", "max"]), children, max_size=3
        )
    ),
    max_leaves=8,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document a value sits (the document itself excluded)."""
    found: list[tuple[Any, ...]] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        found.append((*path, key))
        found.extend(_paths(child, (*path, key)))
    return found


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        document = document[key]
    return document


ROW_TYPES = [
    *(str(kind) for kind in QuestionType),
    "select_one yes_no",
    "select_multiple nolist",
    "begin_group",
    "end_group",
    "geopoint",
    "select_one",
]


def mutate(data: st.DataObject, document: dict[str, Any]) -> None:
    """One random change, of the kind a careless or hostile author makes."""
    paths = _paths(document)
    rows = document.get("survey") if isinstance(document.get("survey"), list) else None
    kind = data.draw(
        st.sampled_from(["drop", "junk", "junk", "add", "duplicate", "swap", "refer", "type"])
    )
    if kind in ("duplicate", "swap", "refer", "type") and not rows:
        kind = "junk"
    if kind == "drop" and paths:
        path = data.draw(st.sampled_from(paths))
        parent = _parent(document, path)
        del parent[path[-1]]
    elif kind == "junk" and paths:
        path = data.draw(st.sampled_from(paths))
        _parent(document, path)[path[-1]] = data.draw(junk_values)
    elif kind == "add":
        containers = [()] + [p for p in paths if isinstance(_parent(document, p)[p[-1]], dict)]
        path = data.draw(st.sampled_from(containers))
        target = _parent(document, (*path, None)) if path else document
        key = data.draw(
            st.sampled_from(["relevant", "constraint", "name", "choices", "x"])
            | st.text(max_size=8)
        )
        target[key] = data.draw(junk_values)
    elif kind == "duplicate" and rows:
        rows.insert(
            data.draw(st.integers(0, len(rows))), copy.deepcopy(data.draw(st.sampled_from(rows)))
        )
    elif kind == "swap" and rows:
        i, j = data.draw(st.integers(0, len(rows) - 1)), data.draw(st.integers(0, len(rows) - 1))
        rows[i], rows[j] = rows[j], rows[i]
    elif kind == "refer" and rows:
        row = data.draw(st.sampled_from(rows))
        names = [r.get("name") for r in rows if isinstance(r, dict)] + ["nobody"]
        if isinstance(row, dict):
            name = data.draw(st.sampled_from(names))
            row[data.draw(st.sampled_from(["relevant", "constraint"]))] = data.draw(
                st.sampled_from([f"${{{name}}} = 'yes'", f"selected(${{{name}}}, 'x')", ". > 1"])
            )
    elif kind == "type" and rows:
        row = data.draw(st.sampled_from(rows))
        if isinstance(row, dict):
            row["type"] = data.draw(st.sampled_from(ROW_TYPES) | hostile_text(12))


@settings(PROFILE, max_examples=MUTATED_DOCUMENT_EXAMPLES)
@given(data=st.data())
def test_mutated_questionnaires_load_or_report_problems(data: st.DataObject) -> None:
    document = copy.deepcopy(
        data.draw(st.sampled_from(base_documents()) | questionnaire_documents(max_rows=5))
    )
    for _ in range(data.draw(st.integers(1, 4))):
        mutate(data, document)
    check_loads_or_reports(dump_yaml(document))


@settings(PROFILE, max_examples=MUTATED_TEXT_EXAMPLES)
@given(data=st.data())
def test_mutated_yaml_text_loads_or_reports_problems(data: st.DataObject) -> None:
    """Edits to the file as text: cuts, insertions, lines repeated (duplicate keys) or
    re-indented."""
    lines = MINI.read_text(encoding="utf-8").splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        kind = data.draw(st.sampled_from(["cut", "insert", "repeat", "indent"]))
        if kind == "cut":
            del lines[i : i + data.draw(st.integers(1, 5))]
        elif kind == "insert":
            lines.insert(i, data.draw(hostile_text(40)))
        elif kind == "repeat":
            lines.insert(i, lines[i])
        else:
            lines[i] = " " * data.draw(st.integers(0, 9)) + lines[i].lstrip(" ")
        if not lines:
            lines = ["\n"]
    check_loads_or_reports("".join(lines))


yaml_scalars = st.one_of(st.none(), st.booleans(), extreme_numbers(), hostile_text(20))
yaml_documents = st.recursive(
    yaml_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["settings", "survey", "choices", "form_id", "type", "name", "label"])
            | st.text(max_size=8)
            | st.integers(),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(PROFILE, max_examples=RANDOM_DOCUMENT_EXAMPLES)
@given(yaml_documents)
def test_random_yaml_documents_load_or_report_problems(document: Any) -> None:
    check_loads_or_reports(yaml.safe_dump(document, allow_unicode=True))


@settings(PROFILE, max_examples=NESTING_EXAMPLES)
@given(
    st.sampled_from(["[", "- ", "{a: ", "[{a: ", "&x [", "? ", "- [", "!!seq ["]),
    st.integers(1, 20_000),
)
@example("[", 100_000)
@example("- ", 5000)
@example("{a: ", 20_000)
def test_deep_nesting_is_a_problem_not_a_recursion_error(opener: str, depth: int) -> None:
    """PyYAML composes nested nodes recursively: a few thousand levels of [ or - raised
    RecursionError (the explicit examples fail without the loader's depth limit)."""
    check_loads_or_reports(opener * depth + "x")


@settings(PROFILE, max_examples=BYTES_EXAMPLES)
@given(hostile_bytes())
@example(b"\xff\xfe\x00\x00")
@example("settings: é".encode("latin-1"))
@example(b"settings:\x00 x")
def test_random_files_load_or_report_problems(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "q.yaml"
        path.write_bytes(content)
        try:
            load_questionnaire(path)
        except QuestionnaireError as error:
            check_problems(error, content.count(b"\n") + 2)


# --- spreadsheets -------------------------------------------------------------------------

HEADERS = {
    "survey": [
        "type",
        "name",
        "label",
        "label::English (en)",
        "label::nl",
        "label::Klingon",
        "hint",
        "required",
        "relevant",
        "constraint",
        "constraint_message",
        "parameters",
        "core",
        "appearance",
        "Type",
        "",
    ],
    "choices": ["list_name", "list name", "name", "label", "label::en", "label::xx", "image"],
    "settings": ["form_id", "version", "default_language", "languages", "title", "form_title"],
}
cells: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=False, allow_infinity=False),
    st.dates(),
    st.datetimes(),
    hostile_text(20).map(lambda text: ILLEGAL_CHARACTERS_RE.sub("", text)[:1000]),
    st.sampled_from(
        [
            "select_one yes_no",
            "select one  yes_no",
            "begin group",
            "end_group",
            "integer",
            "note",
            "yes_no",
            "yes",
            "no",
            "en",
            "English (en)",
            "min=1 max=5",
            "min=x",
            "${a} = 'yes'",
            "a",
            "=1+1",
        ]
    ),
)


@st.composite
def workbooks(draw: st.DrawFn) -> dict[str, list[list[Any]]]:
    sheets: dict[str, list[list[Any]]] = {}
    for title in draw(
        st.lists(
            st.sampled_from(["survey", "choices", "settings", "Survey ", "x"]),
            min_size=1,
            unique=True,
        )
    ):
        known = HEADERS.get(title.strip().lower(), ["a"])
        header = draw(
            st.lists(
                st.sampled_from(known)
                | hostile_text(8).map(lambda t: ILLEGAL_CHARACTERS_RE.sub("", t)),
                max_size=8,
            )
        )
        rows = draw(st.lists(st.lists(cells, max_size=len(header) + 2), max_size=6))
        sheets[title] = [header, *rows]
    return sheets


@settings(PROFILE, max_examples=WORKBOOK_EXAMPLES)
@given(workbooks())
def test_random_workbooks_import_or_report_problems(sheets: dict[str, list[list[Any]]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write_workbook(Path(directory) / "form.xlsx", sheets)
        warnings: list[str] = []
        try:
            text = import_xlsx(path, warnings=warnings)
        except QuestionnaireError as error:
            check_problems(error, 10**6)
            return
        parse_questionnaire(text)  # what import returns is valid


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # duplicate member names are part of the damage
        for name, content in members:
            archive.writestr(name, content)
    return buffer.getvalue()


@settings(PROFILE, max_examples=BYTES_EXAMPLES // 2)
@given(
    hostile_bytes()
    | st.lists(
        st.tuples(
            st.sampled_from(["[Content_Types].xml", "xl/workbook.xml", "x"]), st.binary(max_size=50)
        ),
        max_size=3,
    ).map(_zip)
)
def test_random_bytes_as_a_workbook_are_a_problem(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "form.xlsx"
        path.write_bytes(content)
        try:
            load_xlsx(path)
        except QuestionnaireError as error:
            check_problems(error, 10**6)
        else:
            raise AssertionError("random bytes made a questionnaire")


def _as_cells_keep_it(value: Any) -> Any:
    """Texts as a spreadsheet cell gives them back: without surrounding white space (import
    trims cells) and without carriage returns (line ends are read as line feeds)."""
    if isinstance(value, dict):
        return {key: _as_cells_keep_it(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_cells_keep_it(item) for item in value]
    if isinstance(value, str):
        return value.replace("\r", "").strip() or "x"
    return value


@settings(PROFILE, max_examples=XLSX_ROUND_TRIP_EXAMPLES)
@given(questionnaire_documents(max_rows=6).map(_as_cells_keep_it))
def test_generated_questionnaires_round_trip_through_a_spreadsheet(
    document: dict[str, Any],
) -> None:
    q = parse_questionnaire(dump_yaml(document))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "form.xlsx"
        export_xlsx(q, path)
        assert load_xlsx(path) == q


# --- regressions ------------------------------------------------------------------------------

HEAD = (
    'settings: {form_id: t, version: "1", default_language: en, languages: [en], title: {en: T}}'
    "\nsurvey:\n"
)


def test_regression_control_characters_are_problems() -> None:
    """Found by test_mutated_yaml_text_loads_or_reports_problems (a raw control character
    made PyYAML's reader raise outside the loader's error handling) and by
    test_generated_questionnaires_round_trip_through_a_spreadsheet (an escaped one loaded, and
    export_xlsx then failed: a spreadsheet cannot hold it)."""
    raw = HEAD + "  - {type: text, name: a, label: {en: 'Hi\x1f'}}\n"
    with pytest.raises(QuestionnaireError) as caught:
        parse_questionnaire(raw)
    assert str(caught.value) == "<string>:3: the character U+001F is not allowed in YAML; remove it"
    escaped = HEAD + '  - {type: text, name: a, label: {en: "Hi\\b"}}\n'
    with pytest.raises(QuestionnaireError, match="holds the control character U\\+0008"):
        parse_questionnaire(escaped)
    assert parse_questionnaire(HEAD + '  - {type: text, name: a, label: {en: "a\\tb\\r\\nc"}}')


def test_regression_deep_nesting_is_a_yaml_problem() -> None:
    with pytest.raises(QuestionnaireError, match="nests more than 50 levels deep"):
        parse_questionnaire("[" * 100_000)


@pytest.mark.parametrize("separator", ["\x85", "\u2028", "\u2029"])
def test_regression_unicode_line_breaks_survive_the_canonical_yaml(separator: str) -> None:
    """Found by test_generated_questionnaires_load_and_round_trip: PyYAML writes NEL, LS and
    PS as they are and reads them back as line breaks, so to_yaml turned them into spaces (or,
    next to a line feed, wrote YAML that did not load)."""
    for label in (f"a{separator}b", f"a\n{separator}b", f"a{separator}"):
        row = {"type": "text", "name": "a", "label": {"en": label}}
        q = parse_questionnaire(HEAD + f"  - {json.dumps(row)}\n")  # JSON is YAML
        assert q.questions[0].labels["en"] == label
        again = parse_questionnaire(to_yaml(q))
        assert again == q and again.questions[0].labels["en"] == label


def test_regression_a_damaged_workbook_is_a_problem(tmp_path: Path) -> None:
    """Found by test_random_bytes_as_a_workbook_are_a_problem: openpyxl reads a workbook
    lazily and fails with EOFError, ParseError or NotImplementedError, which escaped."""
    path = tmp_path / "form.xlsx"
    path.write_bytes(_zip([("[Content_Types].xml", b"<?xml"), ("xl/workbook.xml", b"")]))
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(path)
    assert caught.value.problems[0].message.startswith("cannot read the spreadsheet: ")
