"""What an XLSForm may hold that a chat cannot ask is refused clearly (issue 19): one problem per
row, naming the sheet, the row, the question and the feature, and nothing else about that row.
Choices from a CSV file next to the form (select_one_from_file). And no input, however broken,
ends in a traceback of `gradtrack questionnaire check`."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from openpyxl import Workbook

from conversations.questionnaire import QuestionnaireError
from conversations.xlsform import import_xlsx, load_xlsx
from tests.test_xlsform_standard import cli, question, write_workbook

HEADER = ["type", "name", "label::English (en)", "appearance", "relevant", "required"]
CHOICES = [["list_name", "name", "label::English (en)"], ["yn", "yes", "Yes"], ["yn", "no", "No"]]


def form(tmp_path: Path, *rows: Sequence[object], name: str = "form.xlsx") -> Path:
    """A survey written as Kobo or Excel writes it: a question before and after `rows`."""
    survey: list[Sequence[object]] = [HEADER, ["text", "first", "Your name?", None, None, "yes"]]
    survey += rows
    survey.append(["select_one yn", "last", "Done?", None, None, "yes"])
    return write_workbook(tmp_path / name, {"survey": survey, "choices": CHOICES})


def problems_of(path: Path) -> list[str]:
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(path)
    return [str(problem) for problem in caught.value.problems]


# One row of every kind a chat cannot ask, as a form would hold it, and what the problem names.
REFUSED: list[tuple[list[object], str]] = [
    (["geopoint", "where", "Where are you?", None, None, None], "type geopoint"),
    (["geotrace", "route", "Your route to work", None, None, None], "type geotrace"),
    (["geoshape", "field", "Outline the field", None, None, None], "type geoshape"),
    (["start-geopoint", "gps", None, None, None, None], "type start-geopoint"),
    (["image", "photo", "A photo of your work", None, None, None], "type image"),
    (["image", "sig", "Sign here", "signature", None, None], "type image (appearance signature)"),
    (["image", "sketch", "Draw it", "draw", None, None], "type image (appearance draw)"),
    (["audio", "voice", "Tell us", None, None, None], "type audio"),
    (["background-audio", "bg", None, None, None, None], "type background-audio"),
    (["video", "clip", "Show us", None, None, None], "type video"),
    (["file", "cv", "Your CV", None, None, None], "type file"),
    (["barcode", "card", "Scan your card", None, None, None], "type barcode"),
    (["time", "at", "What time?", None, None, None], "type time"),
    (["dateTime", "stamp", "When exactly?", None, None, None], "type datetime"),
    (["rank", "order", "Order these", None, None, None], "type rank"),
    (["acknowledge", "ok", "I agree", None, None, None], "type acknowledge"),
    (["hidden", "secret", None, None, None, None], "type hidden"),
    (["xml-external", "towns", None, None, None, None], "type xml-external"),
    (["csv-external", "regions", None, None, None, None], "type csv-external"),
    (["select_one_external town", "town", "Town?", None, None, None], "select_one_external"),
    (["select_multiple_external town", "towns2", "Towns?", None, None, None], "_external"),
    (["select_one yn", "pick", "Pick", "search('schools')", None, None], "search() appearance"),
    (["select_one yn", "pick2", "Pick", "minimal search('x', 'matches')", None, None], "search()"),
    (["text", "code", "Code", "ex:org.example.scan", None, None], "appearance 'ex:org.example"),
    (
        ["integer", "n", "How many?", None, "pulldata('f', 'c', 'k', ${first}) > 1", None],
        "pulldata",
    ),
    (["text", "inst", "x", None, "count(instance('towns')/root/item) > 1", None], "instance()"),
    (["select_one_from_file towns.xml", "town3", "Town?", None, None, None], "not a CSV file"),
    (["select_one_from_file towns.csv", "town4", "Town?", None, None, None], "is not next to"),
]


@pytest.mark.parametrize(("row", "feature"), REFUSED, ids=[str(row[1]) for row, _ in REFUSED])
def test_each_kind_a_chat_cannot_ask_is_one_problem_naming_row_question_and_feature(
    tmp_path: Path, row: list[object], feature: str
) -> None:
    path = form(tmp_path, row)
    [problem] = problems_of(path)  # one, and nothing else (no "has no label" for the row)
    assert problem.startswith(f"{path}:survey:3: {row[1]}: ")
    assert feature in problem
    assert "not supported" in problem or "not next to" in problem or "not a CSV" in problem


def test_a_repeat_is_one_problem_at_its_begin_row(tmp_path: Path) -> None:
    path = form(
        tmp_path,
        ["begin repeat", "children", "Your children", None, None, None],
        ["text", "child", "Name?", None, None, "yes"],
        ["integer", "age", "Age?", None, None, "yes"],
        ["end repeat", None, None, None, None, None],
    )
    [problem] = problems_of(path)
    assert problem == (
        f"{path}:survey:3: children: a repeat (begin_repeat) is not supported: a chat asks "
        "each question once; ask for the number or a list instead"
    )


def test_a_form_of_every_refused_kind_reports_each_once_and_nothing_more(tmp_path: Path) -> None:
    rows = [row for row, _ in REFUSED]
    # later questions refer to refused ones, and a group holds only a refused question
    rows += [
        ["text", "why", "Why there?", None, "${where} != ''", None],
        ["begin_group", "media", "Media", None, None, None],
        ["audio", "story", None, None, None, None],
        ["end_group", None, None, None, None, None],
    ]
    path = form(tmp_path, *rows)
    problems = problems_of(path)
    assert len(problems) == len(REFUSED) + 1
    for number, (row, feature) in enumerate(REFUSED, start=3):
        assert problems[number - 3].startswith(f"{path}:survey:{number}: {row[1]}: ")
        assert feature in problems[number - 3]
    assert problems[-1].startswith(f"{path}:survey:{3 + len(REFUSED) + 2}: story: type audio")
    assert not any("has no label" in p or "does not exist" in p or "empty" in p for p in problems)


def test_metadata_rows_are_left_out_with_a_warning(tmp_path: Path) -> None:
    path = form(
        tmp_path,
        ["start", "start", None, None, None, None],
        ["end", "end", None, None, None, None],
        ["today", "today", None, None, None, None],
        ["deviceid", "deviceid", None, None, None, None],
        ["audit", "audit", None, None, None, None],
    )
    warnings: list[str] = []
    q = load_xlsx(path, warnings=warnings)
    assert [item.name for item in q.questions] == ["first", "last"]
    assert (
        warnings[0]
        == "survey: row 3: start (start) is recorded by ODK itself, never asked: left out"
    )
    assert len(warnings) == 5


# --- select_one_from_file -----------------------------------------------------------------


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_choices_from_a_csv_file_next_to_the_form(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "schools.csv",
        "name,label::English (en),label::Nederlands (nl),region\n"
        "ams,Amsterdam College,Amsterdam College,north\n"
        "\n"
        'rot,"Rotterdam Tech, harbour","Rotterdam Tech, haven",south\n',
    )
    path = write_workbook(
        tmp_path / "form.xlsx",
        {
            "survey": [
                ["type", "name", "label::English (en)", "label::Nederlands (nl)", "required"],
                ["select_one_from_file schools.csv", "school", "Your school?", "Je school?", "yes"],
                ["select_multiple_from_file schools.csv", "visited", "Visited?", "Bezocht?", None],
            ]
        },
    )
    warnings: list[str] = []
    q = load_xlsx(path, warnings=warnings)
    school, visited = question(q, "school"), question(q, "visited")
    assert school.type == "select_one" and visited.type == "select_multiple"
    assert school.list_name == visited.list_name == "schools_csv"
    choices = q.choices_for(school)
    assert [c.name for c in choices] == ["ams", "rot"]
    assert choices[1].labels == {"en": "Rotterdam Tech, harbour", "nl": "Rotterdam Tech, haven"}
    assert warnings == [
        "schools.csv: columns 'region' are not read (only the name, the labels and the columns "
        "a choice_filter reads)"
    ]
    # the YAML holds the choices: nothing reads the CSV file any more
    text = import_xlsx(path)
    (tmp_path / "schools.csv").unlink()
    assert "Rotterdam Tech, haven" in text


def test_a_csv_with_semicolons_a_bare_label_and_its_own_columns(tmp_path: Path) -> None:
    # Excel in much of Europe saves CSV with semicolons; the row's parameters name the columns
    write_csv(
        tmp_path / "Regio's NL.csv",
        "\ufeffcode;title;extra\nnh;Noord-Holland;x\nzh;Zuid-Holland;y\n",
    )
    path = write_workbook(
        tmp_path / "form.xlsx",
        {
            "survey": [
                ["type", "name", "label", "parameters"],
                [
                    "select_one_from_file Regio's NL.csv",
                    "region",
                    "Welke regio?",
                    "value=code label=title",
                ],
            ],
            "settings": [["default_language"], ["nl"]],
        },
    )
    q = load_xlsx(path)
    region = question(q, "region")
    assert region.list_name == "Regio_s_NL_csv"
    assert [(c.name, c.labels) for c in q.choices_for(region)] == [
        ("nh", {"nl": "Noord-Holland"}),
        ("zh", {"nl": "Zuid-Holland"}),
    ]
    assert not region.parameters


def test_one_csv_file_read_with_other_columns_is_another_list(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "a_very_long_file_name_for_the_schools.csv",
        "code,name,label::en\nx1,n1,First\nx2,n2,Second\n",
    )
    file_type = "select_one_from_file a_very_long_file_name_for_the_schools.csv"
    path = form(
        tmp_path,
        [file_type, "by_name", "Which?", None, None, "yes"],
        [file_type, "by_code", "Which?", None, None, "yes"],
        [file_type, "again", "Which?", None, None, "yes"],
        name="lists.xlsx",
    )
    with_code = path.with_name("coded.xlsx")
    write_workbook(
        with_code,
        {
            "survey": [
                ["type", "name", "label::en", "parameters"],
                [file_type, "by_name", "Which?", None],
                [file_type, "by_code", "Which?", "value=code"],
            ]
        },
    )
    q = load_xlsx(path)  # the same file, the same columns: one list
    assert question(q, "by_name").list_name == question(q, "again").list_name
    q = load_xlsx(with_code)
    lists = {name: [c.name for c in q.choices[name]] for name in q.choices}
    assert lists == {
        "a_very_long_file_name_for_th_csv": ["n1", "n2"],
        "a_very_long_file_name_fo_2_csv": ["x1", "x2"],
    }


def test_problems_in_a_csv_file_name_the_file_and_its_row(tmp_path: Path) -> None:
    csv_path = write_csv(
        tmp_path / "towns.csv", "name,label::en\nutrecht,Utrecht\nutrecht,Utrecht again\nzwolle,\n"
    )
    path = form(tmp_path, ["select_one_from_file towns.csv", "town", "Town?", None, None, "yes"])
    problems = problems_of(path)
    assert problems == [
        f"{csv_path}:3: choice utrecht appears twice in towns_csv (also on towns.csv row 2)",
        f"{csv_path}:4: choice zwolle in towns_csv has no label",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file towns.csv is empty"),
        (b"code,label\n", "has no 'name' column"),
        (b"name,label\n", "the bare 'label' column names no language"),
        (b"name,label::en\n\n", "has no choices under its header"),
        ("name,label::en\nz\xfcrich,Z\xfcrich\n".encode("latin-1"), "is not UTF-8 text"),
    ],
)
def test_a_csv_file_that_cannot_be_read_is_one_problem(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "towns.csv").write_bytes(content)
    path = form(tmp_path, ["select_one_from_file towns.csv", "town", "Town?", None, None, "yes"])
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:survey:3: town: ")
    assert message in problem


def test_a_long_csv_list_is_paged_and_one_too_long_is_refused_with_the_question(
    tmp_path: Path,
) -> None:
    lines = "".join(f"s{i},School {i}\n" for i in range(150))
    write_csv(tmp_path / "schools.csv", "name,label::en\n" + lines)
    path = form(tmp_path, ["select_one_from_file schools.csv", "school", "School?", None, None, 1])
    assert len(load_xlsx(path).choices["schools_csv"]) == 150  # shown in pages of 40
    lines = "".join(f"s{i},School {i}\n" for i in range(501))
    write_csv(tmp_path / "schools.csv", "name,label::en\n" + lines)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:survey:3: school offers 501 choices")
    assert "the chat shows at most 500 (in pages of 40 buttons" in problem


# --- no traceback for any input -----------------------------------------------------------


def _xlsx_bytes(build: object) -> bytes:
    workbook = Workbook()
    assert callable(build)
    build(workbook)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _sheet(workbook: Workbook, title: str, rows: Sequence[Sequence[object]]) -> None:
    sheet = workbook.active if title == "survey" else workbook.create_sheet(title)
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(list(row))


def _merged(workbook: Workbook) -> None:
    _sheet(workbook, "survey", [HEADER, ["text", "a", "A?"], ["text", "b", "B?"]])
    sheet = workbook["survey"]
    sheet.merge_cells("A2:A3")  # a type cell merged over two rows: the lower one is empty
    sheet.merge_cells("C1:D1")


def _formulas(workbook: Workbook) -> None:
    # formulas with no cached value (openpyxl saves none): read as empty cells
    _sheet(workbook, "survey", [HEADER, ["text", '=LOWER("A")', '=CONCAT("x","y")']])


def _numbers(workbook: Workbook) -> None:
    _sheet(workbook, "survey", [[1, 2, 3], [12, 3.5, True], ["integer", 7, 8]])


def _dates(workbook: Workbook) -> None:
    from datetime import datetime

    _sheet(workbook, "survey", [HEADER, [datetime(2026, 1, 2), "d", datetime(2026, 1, 2, 3, 4)]])


def _empty_sheets(workbook: Workbook) -> None:
    _sheet(workbook, "survey", [])
    _sheet(workbook, "choices", [])
    _sheet(workbook, "settings", [])


def _no_type_column(workbook: Workbook) -> None:
    _sheet(workbook, "survey", [["name", "label"], ["a", "A?"]])


def _choices_without_columns(workbook: Workbook) -> None:
    _sheet(workbook, "survey", [HEADER, ["select_one x", "a", "A?"]])
    _sheet(workbook, "choices", [["foo"], ["bar"], [None, None, "baz"]])


def _settings_odd(workbook: Workbook) -> None:
    _sheet(workbook, "survey", [HEADER, ["text", "a", "A?"]])
    _sheet(workbook, "settings", [["form_id", "version", "default_language"], [3.5, None, 42]])


def _odd_types(workbook: Workbook) -> None:
    rows: list[Sequence[object]] = [HEADER]
    for text in ("select_one", "select_one_from_file", "begin", "end", "range", "   ", "note x"):
        rows.append([text, f"q{len(rows)}", "Q?"])
    _sheet(workbook, "survey", rows)


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _truncated() -> bytes:
    data = _xlsx_bytes(lambda wb: _sheet(wb, "survey", [HEADER, ["text", "a", "A?"]]))
    return data[: len(data) // 2]


def _broken_xml() -> bytes:
    data = _xlsx_bytes(lambda wb: _sheet(wb, "survey", [HEADER, ["text", "a", "A?"]]))
    source = zipfile.ZipFile(io.BytesIO(data))
    entries = {name: source.read(name) for name in source.namelist()}
    entries["xl/worksheets/sheet1.xml"] = b"<worksheet><sheetData><row><c t="
    return _zip(entries)


MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty file", b"", "it is not an Excel workbook (.xlsx or .xls)"),
    ("text", b"type,name,label\ntext,a,A?\n", "it is not an Excel workbook (.xlsx or .xls)"),
    ("random bytes", bytes(range(256)) * 8, "it is not an Excel workbook (.xlsx or .xls)"),
    ("a zip, not a workbook", _zip({"hello.txt": b"hi"}), "it is a zip file, but not an Excel"),
    ("an empty zip", _zip({}), "it is not an Excel workbook"),
    ("a truncated workbook", _truncated(), "cannot read the spreadsheet: the workbook is damaged"),
    ("broken sheet XML", _broken_xml(), "cannot read the spreadsheet: the workbook is damaged"),
    ("OLE2 but no workbook", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024), ".xls workbook"),
    ("empty sheets", _xlsx_bytes(_empty_sheets), ".xlsx:survey: the survey sheet is empty"),
    ("no type column", _xlsx_bytes(_no_type_column), "the survey sheet has no 'type' column"),
    ("merged cells", _xlsx_bytes(_merged), "survey:3: the row has no type"),
    ("formulas", _xlsx_bytes(_formulas), "the row has no name"),
    ("numbers for text", _xlsx_bytes(_numbers), "the survey sheet has no 'type' column"),
    ("dates for text", _xlsx_bytes(_dates), "unknown type '2026-01-02'"),
    ("choices sheet of nothing", _xlsx_bytes(_choices_without_columns), "no 'list_name' column"),
    ("odd settings", _xlsx_bytes(_settings_odd), "default_language '42'"),
    ("odd types", _xlsx_bytes(_odd_types), "select_one needs one choice list"),
]


@pytest.mark.parametrize(
    ("content", "message"),
    [(content, message) for _, content, message in MALFORMED],
    ids=[name for name, _, _ in MALFORMED],
)
def test_a_malformed_workbook_is_a_clear_problem_never_a_traceback(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "form.xlsx"
    path.write_bytes(content)
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(path)
    assert message in str(caught.value)


def test_check_reports_every_malformed_workbook_without_a_traceback(tmp_path: Path) -> None:
    paths = []
    for number, (_, content, _message) in enumerate(MALFORMED):
        path = tmp_path / f"form{number}.xlsx"
        path.write_bytes(content)
        paths.append(str(path))
    folder = tmp_path / "folder.xlsx"
    folder.mkdir()  # not a file at all
    done = cli("questionnaire", "check", *paths, str(folder))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert done.stdout.count("FAILED") == len(MALFORMED) + 1
    for name, (_, _content, message) in zip(paths, MALFORMED, strict=True):
        assert f"{name}: FAILED" in done.stdout
        assert message in done.stderr
