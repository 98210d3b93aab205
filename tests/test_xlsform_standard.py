"""XLSForm as the standard writes it (issue 19): forms as Excel and KoboToolbox users write
them, with no settings sheet, language columns named in several ways, a blank `required`,
unused choice lists; and `gradtrack questionnaire check|import` on them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import Workbook

from conversations.questionnaire import Question, Questionnaire, QuestionnaireError
from conversations.xlsform import import_xlsx, language_code, load_xlsx
from tests.xlsfiles import write_xls

GRADTRACK = str(Path(sys.executable).with_name("gradtrack"))


def write_workbook(path: Path, sheets: Mapping[str, Sequence[Sequence[object]]]) -> Path:
    workbook = Workbook()
    default = workbook.active
    assert default is not None
    workbook.remove(default)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    workbook.save(path)
    return path


def dated(path: Path, day: str) -> Path:
    """Give the file the modification date `day` (YYYY-MM-DD)."""
    stamp = datetime.fromisoformat(f"{day}T12:00:00").timestamp()
    os.utime(path, (stamp, stamp))
    return path


def question(q: Questionnaire, name: str) -> Question:
    return next(item for item in q.questions if item.name == name)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRADTRACK, *args], capture_output=True, text=True, timeout=60, check=False
    )


# A form as KoboToolbox exports it: no settings sheet, `label::English (en)` columns, a
# `required` column left blank where the question may be skipped, a list no question uses
# any more, a hint on a group.
KOBO_SURVEY: list[list[object]] = [
    [
        "type",
        "name",
        "label::English (en)",
        "label::Nederlands (nl)",
        "hint::English (en)",
        "hint::Nederlands (nl)",
        "required",
        "relevant",
    ],
    ["select_one yn", "working", "Do you work?", "Werk je?", None, None, "true", None],
    [
        "begin_group",
        "job",
        "Your job",
        "Je baan",
        "About your work",
        "Over je werk",
        None,
        "${working} = 'yes'",
    ],
    ["integer", "hours", "Hours a week?", "Uren per week?", None, None, "TRUE", None],
    ["text", "employer", "Employer?", "Werkgever?", "Optional", "Mag leeg", None, None],
    ["end_group", None, None, None, None, None, None, None],
    ["text", "remarks", "Anything else?", "Nog iets?", None, None, "false", None],
    ["select_one yn", "again", "May we ask again?", "Mogen we nog eens vragen?", None, None, 1],
]
KOBO_CHOICES: list[list[object]] = [
    ["list_name", "name", "label::English (en)", "label::Nederlands (nl)"],
    ["yn", "yes", "Yes", "Ja"],
    ["yn", "no", "No", "Nee"],
    ["old_sectors", "it", "IT", "ICT"],
    ["old_sectors", "care", "Care", "Zorg"],
]


@pytest.fixture()
def kobo(tmp_path: Path) -> Path:
    path = write_workbook(
        tmp_path / "Graduate Survey 2026.xlsx", {"survey": KOBO_SURVEY, "choices": KOBO_CHOICES}
    )
    return dated(path, "2026-03-15")


def test_a_form_without_a_settings_sheet(kobo: Path) -> None:
    warnings: list[str] = []
    q = load_xlsx(kobo, warnings=warnings)
    assert q.form_id == "graduate_survey_2026"  # the file's name
    assert q.version == "20260315"  # the file's date
    assert q.default_language == "en"  # the first language of the columns
    assert q.languages == ("en", "nl")
    assert q.title == {"en": "graduate_survey_2026", "nl": "graduate_survey_2026"}
    assert [item.name for item in q.questions] == [
        "working",
        "hours",
        "employer",
        "remarks",
        "again",
    ]


def test_a_blank_required_is_optional_and_yes_true_1_are_required(kobo: Path) -> None:
    q = load_xlsx(kobo)
    assert question(q, "working").required  # true
    assert question(q, "hours").required  # TRUE
    assert not question(q, "employer").required  # blank: XLSForm's default
    assert not question(q, "remarks").required  # false
    assert question(q, "again").required  # 1


def test_unused_lists_and_group_hints_are_warnings(kobo: Path) -> None:
    warnings: list[str] = []
    text = import_xlsx(kobo, warnings=warnings)
    assert warnings == [
        "survey: row 3: a group's hint is not shown in a chat and was left out",
        "choices: list 'old_sectors' (rows 4, 5) is not used by any question and was left out",
    ]
    assert "old_sectors" not in load_xlsx(kobo).choices
    assert "# Warning: choices: list 'old_sectors'" in text


def test_settings_without_form_id_or_version(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "exit-poll.xlsx",
        {
            "survey": [["type", "name", "label"], ["text", "why", "Why did you leave?"]],
            "settings": [["form_title", "default_language"], ["Exit poll", "English (en)"]],
        },
    )
    q = load_xlsx(dated(path, "2025-11-02"))
    assert (q.form_id, q.version, q.default_language) == ("exit_poll", "20251102", "en")
    assert q.title == {"en": "Exit poll"}  # a single-language form_title: the default language
    assert question(q, "why").labels == {"en": "Why did you leave?"}
    assert not question(q, "why").required


def test_bare_label_and_hint_columns_take_the_language_chosen_at_import(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "enquete.xlsx",
        {
            "survey": [
                ["type", "name", "label", "hint", "required"],
                ["text", "job", "Wat doe je nu?", "Je baan of opleiding", "yes"],
            ],
        },
    )
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(path)
    assert "choose one at import (--language en)" in str(caught.value)
    q = load_xlsx(path, language="nl")
    assert q.default_language == "nl" and q.languages == ("nl",)
    assert question(q, "job").labels == {"nl": "Wat doe je nu?"}
    assert question(q, "job").hints == {"nl": "Je baan of opleiding"}
    assert q.title == {"nl": "enquete"}
    # the settings' default_language comes first
    with_settings = write_workbook(
        tmp_path / "enquete2.xlsx",
        {
            "survey": [["type", "name", "label"], ["text", "job", "What do you do?"]],
            "settings": [["default_language"], ["en"]],
        },
    )
    assert load_xlsx(with_settings, language="nl").default_language == "en"
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(path, language="Klingon")
    assert "--language 'Klingon': choose one of" in str(caught.value)


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("label::English (en)", "en"),
        ("label::en", "en"),
        ("label:English", "en"),
        ("Label::english", "en"),
        ("LABEL::EN", "en"),
        ("label::Nederlands", "nl"),
        ("label:Dutch (nl)", "nl"),
        ("label::español", "es"),
        ("label::Spanish", "es"),
        ("label::eesti", "et"),
        ("label::Estonian (et)", "et"),
        ("label::Italiano", "it"),
        ("label::en_GB", "en"),
    ],
)
def test_language_columns_as_tools_name_them(tmp_path: Path, header: str, lang: str) -> None:
    path = write_workbook(
        tmp_path / "lang.xlsx",
        {
            "survey": [["type", "name", header, "required"], ["text", "T", "Text", "yes"]],
            "settings": [["form_id", "version"], ["lang", "1"]],
        },
    )
    q = load_xlsx(path)
    assert question(q, "T").labels == {lang: "Text"}
    assert q.default_language == lang


@pytest.mark.parametrize(
    ("text", "code"),
    [("Estonian", "et"), ("EESTI", "et"), ("nederlands", "nl"), ("Italian", "it"), ("nl-BE", "nl")],
)
def test_language_names_by_babel(text: str, code: str) -> None:
    assert language_code(text) == code


def test_a_workbook_is_known_by_its_content_not_its_name(kobo: Path, tmp_path: Path) -> None:
    upper = tmp_path / "FORM.XLSX"
    upper.write_bytes(kobo.read_bytes())
    misnamed = tmp_path / "form.yaml"
    misnamed.write_bytes(kobo.read_bytes())
    done = cli("questionnaire", "check", str(upper), str(misnamed))
    assert done.returncode == 0, done.stderr
    assert f"{upper}: form version" in done.stdout
    assert f"{misnamed}: form version" in done.stdout
    assert "Traceback" not in done.stderr


def test_check_reports_every_file(kobo: Path, tmp_path: Path) -> None:
    broken = write_workbook(
        tmp_path / "broken.xlsx",
        {"survey": [["type", "name", "label::en", "required"], ["text", "T", "x", "maybe"]]},
    )
    garbage = tmp_path / "old.xls"
    garbage.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 not really a workbook")
    missing = tmp_path / "missing.yaml"
    done = cli("questionnaire", "check", str(broken), str(kobo), str(garbage), str(missing))
    assert done.returncode == 1
    assert f"{broken}: FAILED" in done.stdout
    assert f"{kobo}: graduate_survey_2026 version 20260315, 5 questions" in done.stdout
    assert done.stdout.count("FAILED") == 3
    assert "required must be true or false, not 'maybe'" in done.stderr
    assert f"{garbage}: cannot read the .xls workbook" in done.stderr
    assert "Traceback" not in done.stderr
    # warnings of every file, the ones that pass too
    assert f"{kobo}: warning: choices: list 'old_sectors'" in done.stderr


def test_import_prints_warnings_also_when_it_fails(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "failing.xlsx",
        {
            "survey": [["type", "name", "label::en", "required"], ["text", "T", "x", "maybe"]],
            "choices": [["list_name", "name", "label::en"], ["unused", "a", "A"]],
        },
    )
    target = tmp_path / "failing.yaml"
    done = cli("questionnaire", "import", str(path), str(target))
    assert done.returncode == 1
    assert "warning: choices: list 'unused' (rows 2) is not used" in done.stderr
    assert "required must be true or false, not 'maybe'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not target.exists()


def test_import_with_a_language(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "kort.xlsx",
        {"survey": [["type", "name", "label"], ["text", "T", "Wat doe je nu?"]]},
    )
    target = tmp_path / "kort.yaml"
    refused = cli("questionnaire", "import", str(path), str(target))
    assert refused.returncode == 1 and "--language" in refused.stderr
    done = cli("questionnaire", "import", str(path), str(target), "--language", "nl")
    assert done.returncode == 0, done.stderr
    assert "      nl: Wat doe je nu?\n" in target.read_text(encoding="utf-8")


def test_an_old_xls_workbook_is_read_whatever_its_name(kobo: Path, tmp_path: Path) -> None:
    sheets = {"survey": KOBO_SURVEY, "choices": KOBO_CHOICES}
    expected = load_xlsx(kobo)
    for name in ("Graduate Survey 2026.xls", "Graduate Survey 2026.xlsx"):
        # an .xls, and an .xls renamed .xlsx: the file's content decides
        folder = tmp_path / name.rpartition(".")[2]
        folder.mkdir()
        path = dated(write_xls(folder / name, sheets), "2026-03-15")
        warnings: list[str] = []
        assert load_xlsx(path, warnings=warnings) == expected
        assert "choices: list 'old_sectors' (rows 4, 5) is not used" in warnings[1]
    numbers = write_xls(
        tmp_path / "numbers.xls",
        {
            "survey": [["type", "name", "label", "required"], ["integer", "n", "How many?", 1]],
            "settings": [["form_id", "version", "default_language"], ["numbers", 2026.1, "en"]],
        },
    )
    q = load_xlsx(numbers)
    assert (q.form_id, q.version) == ("numbers", "2026.1")
    assert question(q, "n").required


def test_a_broken_xls_is_a_clear_problem(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"  # an OLE2 compound file's start, then nothing sensible
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(path)
    [problem] = caught.value.problems
    assert problem.message.startswith("cannot read the .xls workbook: ")
