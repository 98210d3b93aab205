"""An XLSForm as a school writes it, imported and asked in the chat through the sandbox (issue
19): a note with formatting, choices from a CSV file next to the form, ranges as buttons and
as a typed number in bounds, integer and date answers with their errors in the graduate's
language. And the pieces: labels as Telegram HTML, ranges, bounds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlmodel import select

from bot.sandbox.state import TranscriptEntry
from conversations import engine
from conversations.label_format import label_html, label_plain
from conversations.questionnaire import QuestionnaireError
from conversations.xlsform import export_xlsx, import_xlsx, load_xlsx
from storage.models import Answer
from tests.harness import Harness, tr
from tests.test_real_updates import _deploy, _rows
from tests.test_web_chat import onboard, open_web_survey
from tests.test_xlsform_standard import question, write_workbook

SURVEY: list[list[object]] = [
    ["type", "name", "label::English (en)", "label::Nederlands (nl)", "parameters", "required"],
    [
        "note",
        "intro",
        "**Welcome**, and *thanks* for helping <3 & more",
        "**Welkom**, en *dank* voor je hulp <3 & meer",
        None,
        None,
    ],
    ["select_one_from_file schools.csv", "school", "Your school?", "Je school?", None, "yes"],
    ["range", "happy", "How happy are you?", "Hoe blij ben je?", "start=0 end=10", "yes"],
    ["range", "hours", "Hours a week?", "Uren per week?", "start=0 end=80 step=1", "yes"],
    ["date", "since", "Working since?", "Werkt sinds?", None, "yes"],
]
SCHOOLS = (
    "name,label::English (en),label::Nederlands (nl)\n"
    "north,North College,Noord College\n"
    "south,South College,Zuid College\n"
)


def write_form(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "schools.csv").write_text(SCHOOLS, encoding="utf-8")
    sheets: dict[str, Sequence[Sequence[object]]] = {
        "survey": SURVEY,
        "settings": [["form_id", "version"], ["chatform", "1"]],
    }
    return write_workbook(folder / "chatform.xlsx", sheets)


def test_the_form_imports_as_the_chat_asks_it(tmp_path: Path) -> None:
    warnings: list[str] = []
    q = load_xlsx(write_form(tmp_path / "form"), warnings=warnings)
    assert question(q, "happy").type == "scale"
    assert question(q, "happy").scale_values == tuple(range(11))
    hours = question(q, "hours")
    assert hours.type == "integer" and hours.bounds == (0, 80)
    assert warnings == [
        "survey: row 5: the range from 0 to 80 has 81 points, more than 11 buttons: it is "
        "asked as a typed whole number in that range"
    ]
    assert [c.name for c in q.choices_for(question(q, "school"))] == ["north", "south"]
    # exported and imported again, it means the same (the CSV's choices are in the workbook)
    export_xlsx(q, tmp_path / "again.xlsx")
    assert load_xlsx(tmp_path / "again.xlsx") == q


async def test_an_imported_xlsform_is_asked_in_the_chat(harness: Harness, tmp_path: Path) -> None:
    text = import_xlsx(write_form(tmp_path / "form"))
    deployed = tmp_path / "deployed"
    deployed.mkdir()
    await _deploy(harness, deployed, text, "chatform")
    graduate, user = await harness.consenting_graduate("nl")
    await harness.open_survey(graduate, "chatform")
    _welcome, note, school = await harness.send(user, "/survey", expect=3)

    # the note's formatting as Telegram shows it: bold and italic, "<" and "&" as written
    assert note.text == "Welkom, en dank voor je hulp <3 & meer"
    assert [(e["type"], e["offset"], e["length"]) for e in note.entities or []] == [
        ("bold", 0, 6),
        ("italic", 11, 4),
    ]
    assert "Je school?" in (school.text or "")
    assert [[b["text"] for b in row] for row in _rows(school)] == [
        ["Noord College"],
        ["Zuid College"],
    ]

    (happy,) = await harness.press(user, "Zuid College", message=school)
    # 0 to 10: eleven buttons, in rows Telegram accepts (at most 8 a row)
    assert [[b["text"] for b in row] for row in _rows(happy)][:2] == [
        ["0", "1", "2", "3", "4", "5"],
        ["6", "7", "8", "9", "10"],
    ]
    (hours,) = await harness.press(user, "8", message=happy)
    assert tr("nl", "Type a number from {min} to {max}.").format(min=0, max=80) in (
        hours.text or ""
    )

    (error,) = await harness.send(user, "100")
    assert error.text == "Typ een getal van 0 tot en met 80."
    (error,) = await harness.send(user, "veertig")
    assert error.text == tr("nl", "Please type a whole number, for example 12.")
    (since,) = await harness.send(user, "40")
    (error,) = await harness.send(user, "31-02-2026")
    assert error.text == tr("nl", "Please type a date as day-month-year, for example 30-06-2026.")
    (review,) = await harness.send(user, "1-9-2025")
    assert "Werkt sinds?" in (review.text or "")
    await harness.press(user, tr("nl", "✅ Send my answers"), message=review)
    async with harness.db.session() as session:
        answers = {a.question: a.value for a in (await session.exec(select(Answer))).all()}
    assert answers == {"school": "south", "happy": 8, "hours": 40, "since": "2025-09-01"}
    assert since.text is not None


async def test_the_note_reads_well_in_the_web_chat(harness: Harness, tmp_path: Path) -> None:
    """The web chat shows the same messages without Telegram's tags: no markers, no
    escapes."""
    deployed = tmp_path / "deployed"
    deployed.mkdir()
    await _deploy(harness, deployed, import_xlsx(write_form(tmp_path / "form")), "chatform")
    base = await harness.start_web()
    graduate, g, _page = await onboard(harness, base, "en")
    try:
        await open_web_survey(harness, graduate, "chatform")
        page = await g.command("survey")
        texts = page.bot_texts()
        assert "Welcome, and thanks for helping <3 & more" in texts
        assert "Your school?" in texts[-1]
        assert not any("<b>" in text or "&lt;" in text or "**" in text for text in texts)
    finally:
        await g.close()


def _texts(message: TranscriptEntry) -> list[list[str]]:
    return [[str(b["text"]) for b in row] for row in _rows(message)]


async def test_a_long_list_is_shown_a_page_at_a_time(harness: Harness, tmp_path: Path) -> None:
    """95 schools from a CSV file: pages of 40 buttons with More and Earlier, turned in
    place; a choice on any page answers, and ticks on a later page stay on that page."""
    folder = tmp_path / "form"
    folder.mkdir()
    rows = "".join(f"s{i},School {i}\n" for i in range(95))
    (folder / "schools.csv").write_text("name,label\n" + rows, encoding="utf-8")
    sheets: dict[str, Sequence[Sequence[object]]] = {
        "survey": [
            ["type", "name", "label", "required"],
            ["select_one_from_file schools.csv", "school", "Your school?", "yes"],
            ["select_multiple_from_file schools.csv", "visits", "Schools you visited?", "yes"],
        ],
        "settings": [["form_id", "version", "default_language"], ["paged", "1", "en"]],
    }
    deployed = tmp_path / "deployed"
    deployed.mkdir()
    text = import_xlsx(write_workbook(folder / "paged.xlsx", sheets))
    await _deploy(harness, deployed, text, "paged")
    graduate, user = await harness.consenting_graduate("en")
    await harness.open_survey(graduate, "paged")
    _welcome, school = await harness.send(user, "/survey", expect=2)
    shown = _texts(school)
    assert shown[0] == ["School 0"] and shown[39] == ["School 39"]
    assert shown[40:] == [["More ▶"]]

    await harness.press(user, "More ▶", expect=0, message=school)
    await harness.keyboard_shows(user, school, "School 79")
    shown = _texts(school)
    assert shown[0] == ["School 40"] and shown[40:] == [["◀ Earlier", "More ▶"]]
    (visits,) = await harness.press(user, "School 55", message=school)
    assert "→ School 55" in (school.text or "")

    for last in ("School 79", "School 94"):
        await harness.press(user, "More ▶", expect=0, message=visits)
        await harness.keyboard_shows(user, visits, last)
    shown = _texts(visits)
    assert shown[0] == ["⬜ School 80"] and len(shown) == 15 + 3
    assert shown[15:] == [["◀ Earlier"], ["Done ✔"], ["◀ Back"]]
    await harness.press(user, "School 90", expect=0, message=visits)
    await harness.keyboard_shows(user, visits, "☑️ School 90")
    assert _texts(visits)[0] == ["⬜ School 80"]  # still the third page
    (review,) = await harness.press(user, "Done ✔", message=visits)
    # changed from the review: the page that shows the answer given
    (again,) = await harness.press(user, "✏️ 1", message=review)
    assert _texts(again)[15] == ["✅ School 55"]
    (review,) = await harness.press(user, "Next ▶", message=again)
    await harness.press(user, "✅ Send my answers", message=review)
    async with harness.db.session() as session:
        answers = {a.question: a.value for a in (await session.exec(select(Answer))).all()}
    assert answers == {"school": "s55", "visits": ["s90"]}


# --- the pieces -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "html", "plain"),
    [
        ("**Welcome** to the *survey*", "<b>Welcome</b> to the <i>survey</i>", None),
        ("__Bold__ and _emphasis_", "<b>Bold</b> and <i>emphasis</i>", "Bold and emphasis"),
        ("a < b & c > d", "a &lt; b &amp; c &gt; d", "a < b & c > d"),
        ("# Part 2\nYour _job_", "<b>Part 2</b>\nYour <i>job</i>", "Part 2\nYour job"),
        ("snake_case_name and 2*3*4", "snake_case_name and 2*3*4", None),
        ("*a **b* c**", "*a **b* c**", None),  # markers that do not pair: as written
        (
            "See [our site](https://example.org/?a=1&b=2)",
            'See <a href="https://example.org/?a=1&amp;b=2">our site</a>',
            "See our site",
        ),
        ('<span style="color:red">Red</span> text<br>next', "Red text\nnext", None),
        ("<b>not ours</b>", "&lt;b&gt;not ours&lt;/b&gt;", "<b>not ours</b>"),
    ],
)
def test_label_formatting_as_telegram_html(label: str, html: str, plain: str | None) -> None:
    assert label_html(label) == html
    if plain is not None:
        assert label_plain(label) == plain


@pytest.mark.parametrize(
    ("parameters", "kind", "values"),
    [
        ("start=1 end=5", "scale", (1, 2, 3, 4, 5)),
        ("start=0 end=100 step=10", "scale", tuple(range(0, 101, 10))),
        ("", "scale", tuple(range(1, 11))),  # XLSForm's defaults: 1 to 10
    ],
)
def test_ranges_that_fit_are_buttons(
    tmp_path: Path, parameters: str, kind: str, values: tuple[int, ...]
) -> None:
    path = write_workbook(
        tmp_path / "r.xlsx",
        {"survey": [["type", "name", "label::en", "parameters"], ["range", "r", "R?", parameters]]},
    )
    r = question(load_xlsx(path), "r")
    assert r.type == kind and r.scale_values == values


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ("start=0 end=1 step=0.5", "a chat asks ranges of whole numbers only"),
        ("start=10 end=0", "start must be below end"),
        ("start=0 end=100 step=5", "its 21 points are more than 11 buttons"),
        ("start=zero", "range parameter 'start=zero' is not a number"),
    ],
)
def test_ranges_a_chat_cannot_ask_are_refused(
    tmp_path: Path, parameters: str, message: str
) -> None:
    path = write_workbook(
        tmp_path / "r.xlsx",
        {"survey": [["type", "name", "label::en", "parameters"], ["range", "r", "R?", parameters]]},
    )
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(path)
    [problem] = caught.value.problems
    assert str(problem).startswith(f"{path}:survey:2: r: ")
    assert message in problem.message


def test_typed_numbers_keep_to_min_and_max(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "n.xlsx",
        {
            "survey": [
                ["type", "name", "label::en", "parameters"],
                ["integer", "age", "Age?", "min=15 max=99"],
                ["decimal", "km", "Distance?", "min=0"],
            ]
        },
    )
    q = load_xlsx(path)
    age, km = question(q, "age"), question(q, "km")
    assert engine.parse_typed(age, "15") == 15
    with pytest.raises(engine.AnswerError) as caught:
        engine.parse_typed(age, "100")
    assert (caught.value.kind, caught.value.params) == ("out_of_range", {"min": 15, "max": 99})
    assert engine.parse_typed(km, "2,5") == 2.5
    with pytest.raises(engine.AnswerError) as caught:
        engine.parse_typed(km, "-1")
    assert caught.value.params == {"min": 0, "max": None}
    assert not engine.valid_answer(q, age, 12) and engine.valid_answer(q, age, 40)
