"""Spreadsheet and YAML round trips, and workbooks written by hand in XLSForm conventions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from conversations.questionnaire import (
    Problem,
    Questionnaire,
    QuestionnaireError,
    load_questionnaire,
    parse_questionnaire,
)
from conversations.xlsform import (
    MAX_ROWS,
    export_xlsx,
    import_xlsx,
    language_code,
    language_header,
    load_xlsx,
    to_yaml,
)
from tests.rosterfiles import bomb_rows, raw_xlsx

DATA = Path(__file__).parent / "data" / "questionnaires"
DEPLOYED = Path(__file__).parent.parent / "conversations" / "questionnaires"
FIXTURES = sorted(DATA.glob("*.yaml"))
REAL = sorted(DEPLOYED.glob("*.yaml"))


@pytest.fixture(scope="module")
def small() -> Questionnaire:
    return load_questionnaire(DATA / "small.yaml")


def rows_of(path: Path, sheet: str) -> list[list[object]]:
    workbook = load_workbook(path)
    return [list(row) for row in workbook[sheet].iter_rows(values_only=True)]


def write_workbook(path: Path, sheets: Mapping[str, Sequence[Sequence[object]]]) -> Path:
    workbook = Workbook()
    default = workbook.active
    assert default is not None
    workbook.remove(default)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    return path


# --- canonical YAML -----------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURES + REAL, ids=lambda p: p.name)
def test_yaml_round_trip(path: Path) -> None:
    q = load_questionnaire(path)
    text = to_yaml(q)
    again = parse_questionnaire(text, "again.yaml")
    assert again == q
    assert to_yaml(again) == text


def test_canonical_yaml_is_readable(small: Questionnaire) -> None:
    text = to_yaml(small)
    assert text.startswith("settings:\n  form_id: small\n  version: '1.0'\n")
    assert "  languages: [en, nl]\n" in text
    assert "nl: Kleine enquête" in text
    assert "\n  - type: select_one yes_no\n    name: consent\n    label:\n      en: May we" in text
    assert "    required: false\n" in text
    assert "    required: true\n" not in text
    assert "    parameters: {min: 1, max: 5}\n" in text
    assert "    relevant: ${consent} = 'yes'\n" in text
    assert "  - type: end_group   # work\n" in text
    assert "\nchoices:\n  yes_no:\n    - name: 'yes'\n      label:\n        en: 'Yes'\n" in text
    assert "\\u" not in text and "{en:" not in text


def test_canonical_yaml_keeps_line_breaks_and_odd_texts() -> None:
    text = to_yaml(load_questionnaire(DATA / "small.yaml")).replace(
        "en: Anything else?", 'en: "Line one\\nline two: #3 - \'quoted\' \\"too\\""'
    )
    q = parse_questionnaire(text)
    assert q.question("comment").labels["en"] == "Line one\nline two: #3 - 'quoted' \"too\""
    again = to_yaml(q)
    assert "en: |-\n        Line one\n        line two" in again
    assert parse_questionnaire(again) == q


# --- export -------------------------------------------------------------------------------


def test_export_layout(small: Questionnaire, tmp_path: Path) -> None:
    path = tmp_path / "small.xlsx"
    export_xlsx(small, path)
    survey = rows_of(path, "survey")
    assert survey[0] == [
        "type",
        "name",
        "label::English (en)",
        "label::Dutch (nl)",
        "hint::English (en)",
        "hint::Dutch (nl)",
        "required",
        "relevant",
        "constraint",
        "constraint_message::English (en)",
        "constraint_message::Dutch (nl)",
        "parameters",
        "core",
        "carry",
    ]
    by_name = {row[1]: row for row in survey[1:] if row[1]}
    assert by_name["consent"][:4] == [
        "select_one yes_no",
        "consent",
        "May we ask you a few questions?",
        "Mogen we je een paar vragen stellen?",
    ]
    assert by_name["consent"][6] == "yes" and by_name["consent"][12] == "yes"
    hours = by_name["hours"]
    assert hours[4:7] == ["A whole number.", "Een heel getal.", "yes"]
    assert hours[8:11] == [". >= 1 and . <= 80", "Please type 1 to 80.", "Typ 1 tot 80."]
    assert hours[12] == "no"
    assert by_name["start"][6] == "no"
    assert by_name["satisfaction"][11] == "min=1 max=5"
    assert by_name["activity"][11] == "columns=2"
    assert by_name["intro"][6] is None and by_name["intro"][12] is None
    assert by_name["main"][:2] == ["begin_group", "main"]
    assert by_name["work"][2:4] == ["Your work", "Je werk"]
    types = [row[0] for row in survey[1:]]
    assert types.count("begin_group") == types.count("end_group") == 2
    assert len(survey) == 1 + len(small.rows)
    choices = rows_of(path, "choices")
    assert choices[0] == ["list_name", "name", "label::English (en)", "label::Dutch (nl)"]
    assert choices[1] == ["yes_no", "yes", "Yes", "Ja"]
    assert len(choices) == 1 + sum(len(items) for items in small.choices.values())
    settings = rows_of(path, "settings")
    assert settings == [
        ["form_id", "version", "default_language", "title::English (en)", "title::Dutch (nl)"],
        ["small", "1.0", "English (en)", "Small survey", "Kleine enquête"],
    ]


@pytest.mark.parametrize("path", FIXTURES + REAL, ids=lambda p: p.name)
def test_xlsx_round_trip(path: Path, tmp_path: Path) -> None:
    q = load_questionnaire(path)
    xlsx = tmp_path / "out.xlsx"
    export_xlsx(q, xlsx)
    warnings: list[str] = []
    text = import_xlsx(xlsx, warnings=warnings)
    assert warnings == []
    assert text.startswith("# Imported from out.xlsx\n")
    assert parse_questionnaire(text) == q
    assert load_xlsx(xlsx) == q
    assert to_yaml(parse_questionnaire(text)) == to_yaml(q)


def test_texts_that_look_like_formulas_or_numbers_stay_text(
    small: Questionnaire, tmp_path: Path
) -> None:
    text = to_yaml(small).replace("en: Anything else?", "en: =SUM(A1:A3)")
    text = text.replace("nl: Nog iets?", "nl: '0012'")
    q = parse_questionnaire(text)
    xlsx = tmp_path / "odd.xlsx"
    export_xlsx(q, xlsx)
    assert load_xlsx(xlsx) == q
    assert load_xlsx(xlsx).question("comment").labels == {"en": "=SUM(A1:A3)", "nl": "0012"}


# --- a workbook written by hand -----------------------------------------------------------

HAND_SURVEY: list[list[object]] = [
    [
        "name",
        "Label::English (en)",
        "type",
        "required",
        "relevant",
        "label::nl",
        "hint::English (en)",
        "hint::Nederlands",
        "constraint",
        "constraint message::English (en)",
        "Constraint Message::nl",
        "appearance",
        "core",
        "parameters",
    ],
    ["C0", "May we ask?", "select_one   yes_no", "yes", None, "Mogen we?", *[None] * 6, "TRUE"],
    [None] * 14,
    ["W", "Your work", "begin group", None, "${C0} = 'yes'", "Je werk"],
    [
        "hours",
        "Hours a week?",
        "integer",
        True,
        None,
        "Uren per week?",
        "A whole number",
        "Een heel getal",
        ". >= 1 and . <= 80",
        "1 to 80, please",
        "1 tot 80 graag",
        "numbers",
        "no",
        None,
    ],
    ["sat", "Satisfied?", "Scale", 1, None, "Tevreden?", *[None] * 6, "FALSE", "min=1 max=4"],
    ["level", "Level?", "select one levels", "y", None, "Niveau?"],
    ["", None, "end group"],
    ["   "],
    ["remark", "Anything else?", "text", "no", None, "Nog iets?"],
    ["thanks", "Thank you!", "note", "no", None, "Dank je!"],
]
HAND_CHOICES: list[list[object]] = [
    ["list name", "name", "label::English (en)", "label::nl", "image"],
    ["yes_no", "yes", "Yes", "Ja", None],
    ["yes_no", "no", "No", "Nee", None],
    [None, None, None, None, None],
    ["levels", 1, "Low", "Laag", "low.png"],
    ["levels", 2.0, "High", "Hoog", None],
]
HAND_SETTINGS: list[list[object]] = [
    ["form_title::English (en)", "form_title::nl", "form_id", "version", "default_language"],
    ["Made by hand", "Met de hand", "hand", 2026.1, "English (en)"],
]
HAND_EXPECTED = """\
settings:
  form_id: hand
  version: "2026.1"
  default_language: en
  languages: [en, nl]
  title: {en: Made by hand, nl: Met de hand}
survey:
  - type: select_one yes_no
    name: C0
    label: {en: "May we ask?", nl: "Mogen we?"}
    core: true
  - type: begin_group
    name: W
    label: {en: Your work, nl: Je werk}
    relevant: ${C0} = 'yes'
  - type: integer
    name: hours
    label: {en: "Hours a week?", nl: "Uren per week?"}
    hint: {en: A whole number, nl: Een heel getal}
    constraint: . >= 1 and . <= 80
    constraint_message: {en: "1 to 80, please", nl: 1 tot 80 graag}
  - type: scale
    name: sat
    label: {en: "Satisfied?", nl: "Tevreden?"}
    parameters: {min: 1, max: 4}
  - type: select_one levels
    name: level
    label: {en: "Level?", nl: "Niveau?"}
  - type: end_group
  - type: text
    name: remark
    required: false
    label: {en: "Anything else?", nl: "Nog iets?"}
  - type: note
    name: thanks
    label: {en: "Thank you!", nl: "Dank je!"}
choices:
  yes_no:
    - {name: "yes", label: {en: "Yes", nl: Ja}}
    - {name: "no", label: {en: "No", nl: Nee}}
  levels:
    - {name: "1", label: {en: Low, nl: Laag}}
    - {name: "2", label: {en: High, nl: Hoog}}
"""


def test_a_workbook_written_by_hand(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "hand.xlsx",
        {"Survey": HAND_SURVEY, "choices": HAND_CHOICES, "settings": HAND_SETTINGS},
    )
    warnings: list[str] = []
    text = import_xlsx(path, warnings=warnings)
    assert parse_questionnaire(text) == parse_questionnaire(HAND_EXPECTED)
    assert warnings == [
        "Survey: column 'appearance' is not part of the gradtrack format and was ignored "
        "(it has values in rows 5)",
        "choices: column 'image' is not part of the gradtrack format and was ignored "
        "(it has values in rows 5)",
    ]
    assert "# Warning: Survey: column 'appearance'" in text
    assert load_xlsx(path) == parse_questionnaire(HAND_EXPECTED)


def test_bare_label_columns_are_the_default_language(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "bare.xlsx",
        {
            "survey": [["type", "name", "label"], ["text", "T", "Your name?"]],
            "settings": [
                ["form_id", "version", "default_language", "form_title"],
                ["bare", "1", "en", "Bare"],
            ],
        },
    )
    q = load_xlsx(path)
    assert q.languages == ("en",)
    assert q.question("T").labels == {"en": "Your name?"}
    assert q.title == {"en": "Bare"}


def test_a_bare_label_column_and_a_language_column_for_the_same_language(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "twice.xlsx",
        {
            "survey": [["type", "name", "label", "label::en"], ["text", "T", "Name?", "Name?"]],
            "settings": [
                ["form_id", "version", "default_language", "form_title"],
                ["twice", "1", "en", "Twice"],
            ],
        },
    )
    assert [str(p) for p in import_problems(path)] == [
        f"{path}:survey:1: two columns give the label in en: keep one of them"
    ]


def test_a_bare_label_column_needs_a_default_language(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "bare.xlsx",
        {
            "survey": [["type", "name", "label"], ["text", "T", "Your name?"]],
            "settings": [["form_id", "version"], ["bare", "1"]],
        },
    )
    with pytest.raises(QuestionnaireError) as caught:
        import_xlsx(path)
    messages = [str(p) for p in caught.value.problems]
    assert f"{path}:survey:1: column 'label' names no language: set default_language" in "\n".join(
        messages
    )


# --- problems point at sheets and rows ----------------------------------------------------


def import_problems(path: Path) -> list[Problem]:
    with pytest.raises(QuestionnaireError) as caught:
        import_xlsx(path)
    return caught.value.problems


def test_problems_name_the_sheet_and_row(small: Questionnaire, tmp_path: Path) -> None:
    path = tmp_path / "small.xlsx"
    export_xlsx(small, path)
    workbook = load_workbook(path)
    survey, choices, settings = workbook["survey"], workbook["choices"], workbook["settings"]
    assert [survey[f"B{n}"].value for n in (7, 8, 10)] == ["hours", "related", "channels"]
    survey["A7"] = "intger"  # the type of `hours`
    survey["H8"] = "${hours} >== 12"  # the relevant of `related`
    survey["B10"] = "start"  # `channels` renamed: `start` (row 11) is now a second one
    choices["B3"] = "yes"  # a second "yes" in yes_no
    settings["A2"] = "Small!"
    workbook.save(path)
    found = [(p.source, p.line, p.message) for p in import_problems(path)]
    src = str(path)
    assert (f"{src}:settings", 2) in [(s, line) for s, line, _ in found]
    expected = [
        (f"{src}:survey", 7, "unknown type 'intger'"),
        (f"{src}:survey", 8, "relevant: expected a value, found '=' at character 12"),
        (f"{src}:survey", 11, "duplicate name start (also used on survey row 10)"),
        (f"{src}:choices", 3, "choice yes appears twice in yes_no (also on choices row 2)"),
        (f"{src}:settings", 2, "form_id must be 1 to 24"),
    ]
    for source, line, fragment in expected:
        assert any(s == source and n == line and fragment in m for s, n, m in found), (
            f"{source}:{line}: {fragment}\n" + "\n".join(map(str, found))
        )
    sheets = [source.rsplit(":", 1)[1] for source, _, _ in found]
    assert sheets == sorted(sheets, key=["settings", "survey", "choices"].index)


def test_import_problems_of_the_spreadsheet_itself(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "bad.xlsx",
        {
            "survey": [
                ["type", "name", "label::Klingon", "label::en", "label::English (en)"],
                ["text", "T", "x", "y", "z"],
                [None, "U", None, "y", None],
                ["scale", "S", None, "y", None],
            ],
            "choices": [["name", "label::en"], ["a", "A"]],
        },
    )
    found = [str(p) for p in import_problems(path)]
    assert f"{path}: the workbook has no 'settings' sheet" not in found  # optional (issue 19)
    no_survey = write_workbook(tmp_path / "nosurvey.xlsx", {"choices": [["list_name"]]})
    assert [str(p) for p in import_problems(no_survey)] == [
        f"{no_survey}: the workbook has no 'survey' sheet"
    ]
    path = write_workbook(
        tmp_path / "bad.xlsx",
        {
            "survey": [
                [
                    "type",
                    "name",
                    "label::Klingon",
                    "label::en",
                    "label::English (en)",
                    "parameters",
                ],
                ["text", "T", "x", "y", "z", None],
                [None, "U", None, "y", None, None],
                ["scale", "S", None, "y", None, "min:1"],
            ],
            "choices": [["name", "label::en"], ["a", "A"]],
            "settings": [
                ["form_id", "version", "default_language", "title::en"],
                ["bad", "1", "Dutch", "Bad"],
            ],
        },
    )
    found = [str(p) for p in import_problems(path)]
    assert (
        f"{path}:settings:2: settings: default_language 'nl' is not one of the languages" in found
    )
    assert (
        f"{path}:survey:1: column 'label::Klingon': which language is 'Klingon'? "
        "Name it like label::English (en)"
    ) in found
    assert (
        f"{path}:survey:1: columns 'label::en' and 'label::English (en)' hold the same thing"
    ) in found
    assert f"{path}:survey:3: the row has no type" in found
    assert f"{path}:survey:4: parameters 'min:1': write them like min=1 max=5" in found
    assert f"{path}:choices:1: the choices sheet has no 'list_name' column" in found


def test_a_file_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    path.write_text("not a zip")
    found = import_problems(path)
    assert len(found) == 1
    assert found[0].source == str(path) and found[0].line == 0
    assert found[0].message.startswith("cannot read the spreadsheet")
    assert import_problems(tmp_path / "missing.xlsx")[0].message.startswith("cannot read")


def test_required_values_that_mean_nothing_are_reported(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "req.xlsx",
        {
            "survey": [["type", "name", "label::en", "required"], ["text", "T", "x", "maybe"]],
            "settings": [
                ["form_id", "version", "default_language", "title::en"],
                ["req", "1", "en", "Req"],
            ],
        },
    )
    assert [str(p) for p in import_problems(path)] == [
        f"{path}:survey:2: required must be true or false, not 'maybe'"
    ]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("English (en)", "en"),
        ("Nederlands (nl)", "nl"),
        (" Dutch ( nl ) ", "nl"),
        ("en", "en"),
        ("ES", "es"),
        ("Eesti", "et"),
        ("italiano", "it"),
        ("Español", "es"),
        ("Klingon", None),
        ("", None),
    ],
)
def test_language_code(text: str, code: str | None) -> None:
    assert language_code(text) == code


def test_language_header() -> None:
    assert [language_header(code) for code in ("en", "nl", "es", "et", "it", "fr")] == [
        "English (en)",
        "Dutch (nl)",
        "Spanish (es)",
        "Estonian (et)",
        "Italian (it)",
        "fr",
    ]


# --- limits (issue 14): a workbook cannot stall the import ----------------------------------


SETTINGS_ROWS = [["form_id", "version", "default_language", "title::en"], ["big", "1", "en", "Big"]]


def big_survey(path: Path, rows: int, *, type_: str = "text") -> Path:
    """An XLSForm as openpyxl writes it, with `rows` questions."""
    workbook = Workbook(write_only=True)
    survey = workbook.create_sheet("survey")
    survey.append(["type", "name", "label::English (en)"])
    for k in range(rows):
        survey.append([type_, f"q{k}", f"Question {k}?"])
    settings = workbook.create_sheet("settings")
    for row in SETTINGS_ROWS:
        settings.append(row)
    workbook.save(path)
    return path


def test_a_survey_sheet_past_the_row_limit_is_refused_there(tmp_path: Path) -> None:
    path = big_survey(tmp_path / "big.xlsx", MAX_ROWS + 1)
    assert [str(p) for p in import_problems(path)] == [
        f"{path}:survey:{MAX_ROWS + 2}: the sheet has more than 10,000 rows: "
        "is this a questionnaire?"
    ]


def test_an_xlsform_zip_bomb_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    bomb = raw_xlsx(tmp_path / "bomb.xlsx", bomb_rows(60), sheet_title="survey")
    assert [str(p) for p in import_problems(bomb)] == [
        f"{bomb}: the workbook unpacks to 61 MB, more than the 50 MB allowed"
    ]


def test_xlsform_problems_stop_at_100_and_say_how_many_more(tmp_path: Path) -> None:
    path = big_survey(tmp_path / "bad.xlsx", 150, type_="nonsense")
    found = [str(p) for p in import_problems(path)]
    assert len(found) == 101
    assert found[-1] == f"{path}: and 50 more problems"  # one a row


def test_xlsform_rows_and_cells_are_bounded(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "wide.xlsx",
        {
            "survey": [
                ["type", "name", "label::English (en)"],
                ["text", "T", "x" * 10_001],
                ["text", "U", "Why?", *(["x"] * 200)],
            ],
            "settings": SETTINGS_ROWS,
        },
    )
    assert [str(p) for p in import_problems(path)] == [
        f"{path}:survey:2: the cell in column C is longer than 10,000 characters",
        f"{path}:survey:3: the row has more than 200 columns",
    ]
