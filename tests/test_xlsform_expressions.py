"""XLSForm features a chat questionnaire needs (issue 19): ``${name}`` in texts, choice_filter,
or_other, calculate, and today(), regex(), if(), concat() in expressions. The forms are written
here as KoboToolbox and Excel write them; the routes the engine takes are compared with the
form's logic worked out by hand as ODK Collect would follow it."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.i18n import use_language
from bot.sandbox.state import TranscriptEntry
from conversations import engine, survey
from conversations.expressions import ExpressionError, parse_expression
from conversations.questionnaire import Questionnaire, QuestionnaireError, parse_questionnaire
from conversations.registry import QuestionnaireRegistry
from conversations.waves import parse_plans
from conversations.xlsform import export_xlsx, import_xlsx, load_xlsx, to_yaml
from storage.models import Answer
from tests.harness import Harness, tr
from tests.test_questionnaire_loader import problems
from tests.test_web_chat import newest_bot, onboard, open_web_survey
from tests.test_xlsform_standard import write_workbook

SURVEY_HEADERS: list[object] = [
    "type",
    "name",
    "label::English (en)",
    "label::Nederlands (nl)",
    "hint::English (en)",
    "hint::Nederlands (nl)",
    "required",
    "relevant",
    "constraint",
    "constraint_message::English (en)",
    "constraint_message::Nederlands (nl)",
    "choice_filter",
    "calculation",
]


def survey_row(
    type_: str,
    name: str,
    en: str | None = None,
    nl: str | None = None,
    *,
    hint: str | None = None,
    required: str | None = None,
    relevant: str | None = None,
    constraint: str | None = None,
    message: str | None = None,
    choice_filter: str | None = None,
    calculation: str | None = None,
) -> list[object]:
    return [
        type_,
        name,
        en,
        nl,
        *(hint.split(" | ") if hint else (None, None)),
        required,
        relevant,
        constraint,
        *(message.split(" | ") if message else (None, None)),
        choice_filter,
        calculation,
    ]


# A graduate survey as a school writes it in Excel: region, then the schools of that region
# (a `region` column in the choices sheet), the age and a hidden "adult" worked out from it,
# a welcome note naming the school chosen, a job question with "Other", a postcode checked
# with a regular expression, a start date not in the future, and a closing note that shows a
# calculated text.
PATHWAYS_SURVEY: list[Sequence[object]] = [
    SURVEY_HEADERS,
    survey_row("select_one regions", "region", "Where is your school?", "Waar is je school?",
               required="yes"),
    survey_row("select_one schools", "school", "Which school in ${region}?",
               "Welke school in ${region}?", required="yes", choice_filter="region=${region}"),
    survey_row("integer", "age", "How old are you?", "Hoe oud ben je?", required="yes",
               constraint=". >= 14 and . <= 99"),
    survey_row("calculate", "adult", calculation="if(${age} >= 18, 'yes', 'no')"),
    survey_row("note", "welcome", "Welcome, ${school} graduate!",
               "Welkom, oud-student van ${school}!"),
    survey_row("select_one jobs or_other", "job", "What do you do now?", "Wat doe je nu?",
               required="yes", relevant="${adult} = 'yes'"),
    survey_row("text", "postcode", "Your postcode?", "Je postcode?",
               hint="Like 1234 AB | Zoals 1234 AB",
               constraint="regex(., '^[0-9]{4} ?[A-Z]{2}$')",
               message="Write it like 1234 AB | Schrijf het als 1234 AB"),
    survey_row("date", "started", "When did you start at ${job}?", "Wanneer begon je?",
               relevant="selected(${job}, 'work')", constraint=". <= today()"),
    survey_row("calculate", "status",
               calculation="concat('age ', ${age}, if(${adult} = 'yes', ', adult', ', minor'))"),
    survey_row("note", "minor", "Come back when you are 18 (${status}).",
               "Kom terug als je 18 bent (${status}).", relevant="${adult} = 'no'"),
    survey_row("note", "done", "Thank you (${status}).", "Bedankt (${status})."),
]  # fmt: skip
PATHWAYS_CHOICES: list[list[object]] = [
    ["list_name", "name", "label::English (en)", "label::Nederlands (nl)", "region"],
    ["regions", "north", "North", "Noord", None],
    ["regions", "south", "South", "Zuid", None],
    ["schools", "n1", "Noorderpoort", "Noorderpoort", "north"],
    ["schools", "n2", "Alfa-college", "Alfa-college", "north"],
    ["schools", "s1", "Summa", "Summa", "south"],
    ["schools", "s2", "Curio", "Curio", "south"],
    ["jobs", "work", "Working", "Werken", None],
    ["jobs", "study", "Studying", "Studeren", None],
]


@pytest.fixture()
def pathways(tmp_path: Path) -> Path:
    return write_workbook(
        tmp_path / "pathways.xlsx",
        {
            "survey": PATHWAYS_SURVEY,
            "choices": PATHWAYS_CHOICES,
            "settings": [["form_id", "version", "default_language"], ["pathways", "1", "en"]],
        },
    )


def route(
    q: Questionnaire, plan: dict[str, Any]
) -> tuple[list[str], dict[str, tuple[str, ...]], dict[str, Any]]:
    """The rows the engine shows in order (notes too) when the graduate answers as `plan`
    says, the choices offered at each select question, and the answers kept."""
    answers: dict[str, Any] = {}
    shown: list[str] = []
    offered: dict[str, tuple[str, ...]] = {}
    question = engine.next_question(q, answers, None)
    while question is not None:
        shown.append(question.name)
        if question.is_select:
            values = engine.values(q, answers)
            offered[question.name] = tuple(
                c.name for c in engine.choices_offered(q, question, values)
            )
        if question.answerable:
            value = plan[question.name]
            if question.type == "select_one":
                value = engine.check_choice(q, question, value, answers)
            assert engine.check_constraint(q, question, value, answers), (question.name, value)
            answers[question.name] = value
        question = engine.next_question(q, answers, question.name)
    assert engine.first_unanswered(q, answers) is None
    return shown, offered, engine.relevant_answers(q, answers)


# The form's logic by hand, as ODK follows it: region and school always; the school list is
# the region's; age always; the welcome note always; job only for adults (age >= 18), with
# job_other only after "other"; the postcode always (optional); the start date only after
# "work"; the "come back" note only for minors; the closing note always.
ADULT_WORKING = {
    "region": "north",
    "school": "n2",
    "age": 20,
    "job": "work",
    "postcode": "9712 AB",
    "started": "2026-01-15",
}
ROUTES: list[tuple[str, dict[str, Any], list[str], dict[str, tuple[str, ...]]]] = [
    (
        "adult working in the north",
        ADULT_WORKING,
        ["region", "school", "age", "welcome", "job", "postcode", "started", "done"],
        {"region": ("north", "south"), "school": ("n1", "n2"), "job": ("work", "study", "other")},
    ),
    (
        "adult with another job in the south",
        {**ADULT_WORKING, "region": "south", "school": "s1", "job": "other",
         "job_other": "Own bakery"},
        ["region", "school", "age", "welcome", "job", "job_other", "postcode", "done"],
        {"region": ("north", "south"), "school": ("s1", "s2"), "job": ("work", "study", "other")},
    ),
    (
        "minor in the south",
        {"region": "south", "school": "s2", "age": 16, "postcode": "5611 AA"},
        ["region", "school", "age", "welcome", "postcode", "minor", "done"],
        {"region": ("north", "south"), "school": ("s1", "s2")},
    ),
    (
        "adult studying, just 18",
        {**ADULT_WORKING, "age": 18, "job": "study"},
        ["region", "school", "age", "welcome", "job", "postcode", "done"],
        {"region": ("north", "south"), "school": ("n1", "n2"), "job": ("work", "study", "other")},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "plan", "expected", "choices"), ROUTES)
def test_the_routes_are_the_forms_logic(
    pathways: Path,
    name: str,
    plan: dict[str, Any],
    expected: list[str],
    choices: dict[str, tuple[str, ...]],
) -> None:
    q = load_xlsx(pathways)
    shown, offered, _kept = route(q, plan)
    assert shown == expected, name
    assert offered == choices, name


def test_a_round_trip_keeps_every_feature_and_every_route(pathways: Path, tmp_path: Path) -> None:
    q = load_xlsx(pathways)
    assert parse_questionnaire(to_yaml(q)) == q
    export_xlsx(q, tmp_path / "exported.xlsx")
    again = load_xlsx(tmp_path / "exported.xlsx")
    assert again == q
    assert again.question("school").choice_filter == parse_expression(
        "region = ${region}", columns=True
    )
    assert again.question("job").or_other
    assert [c.name for c in again.calculations] == ["adult", "status"]
    for _name, plan, expected, choices in ROUTES:
        assert route(again, plan)[:2] == (expected, choices)
    # the YAML says it the way the spreadsheet did
    text = import_xlsx(pathways)
    assert "type: select_one jobs or_other" in text
    assert "choice_filter: region=${region}" in text
    assert "columns: {region: north}" in text
    assert "calculation: if(${age} >= 18, 'yes', 'no')" in text


def test_other_is_stored_as_odk_stores_it(pathways: Path) -> None:
    q = load_xlsx(pathways)
    plan = {**ADULT_WORKING, "job": "other", "job_other": "Own bakery"}
    _shown, _offered, kept = route(q, plan)
    assert kept["job"] == "other"
    assert kept["job_other"] == "Own bakery"
    assert "adult" not in kept  # a calculation is not an answer
    job = q.question("job")
    other = q.choice(job, "other")
    assert other is not None and other.label("nl") == "Anders"
    assert q.question("job_other").label("nl") == "Welke andere?"
    assert q.question("job_other").other_of == "job"


def test_an_answer_the_filter_no_longer_offers_counts_as_none(pathways: Path) -> None:
    """Back to the region, south instead of north: the northern school is not kept."""
    q = load_xlsx(pathways)
    answers: dict[str, Any] = {"region": "south", "school": "n1", "age": 20}
    assert "school" not in engine.relevant_answers(q, answers)
    first = engine.first_unanswered(q, answers)
    assert first is not None and first.name == "school"
    with pytest.raises(engine.AnswerError):
        engine.check_choice(q, q.question("school"), "n1", answers)
    assert engine.check_choice(q, q.question("school"), "s1", answers) == "s1"


def test_texts_show_earlier_answers_in_the_persons_language(pathways: Path) -> None:
    q = load_xlsx(pathways)
    answers: dict[str, Any] = {"region": "north", "school": "n2", "age": 16}
    values = engine.values(q, answers)
    assert values["adult"] == "no"
    assert values["status"] == "age 16, minor"

    def shown(name: str, lang: str) -> str:
        with use_language(lang):
            return survey.piped(q, {}, q.question(name).label(lang), lang, values)

    assert shown("school", "nl") == "Welke school in Noord?"
    assert shown("school", "en") == "Which school in North?"
    assert shown("welcome", "nl") == "Welkom, oud-student van Alfa-college!"
    assert shown("minor", "en") == "Come back when you are 18 (age 16, minor)."
    # an answer that does not count (yet) shows as nothing
    assert shown("started", "en") == "When did you start at ?"


def test_regex_and_today_in_constraints(pathways: Path) -> None:
    q = load_xlsx(pathways)
    postcode = q.question("postcode")
    assert engine.check_constraint(q, postcode, "9712 AB", {})
    assert engine.check_constraint(q, postcode, "9712AB", {})
    assert not engine.check_constraint(q, postcode, "97 12 AB", {})
    assert engine.constraint_message(postcode, "en") == "Write it like 1234 AB"
    started = q.question("started")
    assert engine.check_constraint(q, started, date.today().isoformat(), {})
    assert not engine.check_constraint(q, started, "2999-01-01", {})
    past = parse_expression(". <= today()")
    assert not past.holds({}, "2026-06-02", today=date(2026, 6, 1))
    assert past.holds({}, "2026-06-01", today=date(2026, 6, 1))


@pytest.mark.parametrize(
    ("text", "answers", "expected"),
    [
        ("if(${a} = 'x', 'one', 'two')", {"a": "x"}, "one"),
        ("if(${a} = 'x', 'one', 'two')", {}, "two"),
        ("concat(${a}, '-', ${n}, '-', ${m})", {"a": "x", "n": 3, "m": ["p", "q"]}, "x-3-p q"),
        ("regex(${a}, '^[a-z]+$')", {"a": "abc"}, True),
        ("regex(${a}, '[0-9]')", {"a": "abc"}, False),
        ("string-length(concat(${a}, ${a}))", {"a": "abc"}, 6),
        ("if(regex(${a}, 'b'), concat('has ', 'b'), '')", {"a": "abc"}, "has b"),
        ("regex(${a}, '^[0-9]+(-[0-9]+)?$')", {"a": "12-34"}, True),
        ("regex(${a}, '^(ab){2}$')", {"a": "abab"}, True),
    ],
)
def test_if_concat_regex(text: str, answers: dict[str, Any], expected: object) -> None:
    expression = parse_expression(text)
    assert expression.evaluate(answers) == expected
    assert parse_expression(str(expression)) == expression


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("if(${a}, 'b')", "if() takes 3 arguments, not 2"),
        ("concat()", "concat() takes at least 1 argument, not 0"),
        ("today(${a})", "today() takes 0 arguments, not 1"),
        ("regex(${a}, ${b})", "the pattern must be a text in quotes"),
        ("regex(${a}, '[0-9')", "the pattern is not valid"),
        ("regex(${a}, '(a+)+$')", "can take ages to match"),
        ("regex(${a}, '(a)\\1')", "can take ages to match"),
        ("regex(${a}, '(a|aa)*$')", "can take ages to match"),
        ("regex(${a}, '^((a*)b)+$')", "can take ages to match"),
        ("regex(${a}, '(?:[0-9]+)+')", "can take ages to match"),
        ("region = ${region}", "unexpected word 'region'"),
        ("upper(${a})", "unknown function 'upper'"),
    ],
)
def test_bad_function_calls(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError, match=None) as caught:
        parse_expression(text)
    assert fragment in str(caught.value)


def form(rows: str, choices: str) -> str:
    head = "settings: {form_id: demo, version: '1', default_language: en, languages: [en], "
    head += "title: {en: Demo}}\n"
    indent = textwrap.indent
    return head + "choices:\n" + indent(choices, "  ") + "survey:\n" + indent(rows, "  ")


ROWS = """\
- type: select_one regions
  name: region
  label: {en: Region}
- type: select_one schools
  name: school
  label: {en: School}
  choice_filter: region = ${region}
"""
CHOICES = """\
regions:
  - {name: north, label: {en: North}}
schools:
  - {name: n1, label: {en: N1}, columns: {region: north}}
"""


def test_the_yaml_format_expresses_the_same() -> None:
    q = parse_questionnaire(form(ROWS, CHOICES))
    school = q.question("school")
    assert school.choice_filter is not None
    assert [c.name for c in engine.choices_offered(q, school, {"region": "north"})] == ["n1"]
    assert engine.choices_offered(q, school, {"region": "south"}) == ()


@pytest.mark.parametrize(
    ("rows", "choices", "fragment"),
    [
        (ROWS.replace("region = ${region}", "area = ${region}"), CHOICES,
         "choice_filter reads the column area, which no choice of schools has"),
        (ROWS + "- {type: text, name: t, label: {en: T}, choice_filter: x = 1}\n", CHOICES,
         "choice_filter is only for select_one and select_multiple questions"),
        (ROWS.replace("select_one schools", "select_one schools or_other")
         + "- {type: text, name: school_other, label: {en: T}}\n", CHOICES,
         "or_other adds the question school_other"),
        (ROWS.replace("select_one regions", "select_one regions or_other"),
         CHOICES.replace("north, label", "other, label"),
         "or_other adds the choice other, but regions has one already"),
        (ROWS.replace("select_one regions", "select_multiple regions or_other"), CHOICES,
         "or_other is only for select_one here"),
        (ROWS + "- {type: calculate, name: c}\n", CHOICES, "calculate row c has no calculation"),
        (ROWS + "- {type: calculate, name: c, calculation: '${d}'}\n"
         "- {type: text, name: d, label: {en: D}}\n", CHOICES,
         "calculation refers to d, which comes later"),
        (ROWS + "- {type: calculate, name: c, calculation: '1', label: {en: C}}\n", CHOICES,
         "label is not allowed on a calculate row"),
        (ROWS + "- {type: calculate, name: c, calculation: '1'}\n"
         "- {type: text, name: d, label: {en: '${last-saved#c}'}}\n", CHOICES,
         "a calculate row, which is not stored"),
        (ROWS + "- {type: note, name: n, label: {en: 'At ${}'}}\n", CHOICES,
         "label in en: ${} names no question"),
        (ROWS + "- {type: note, name: n, label: {en: 'At ${schol}'}}\n", CHOICES,
         "label in en refers to schol, which does not exist; did you mean 'school'?"),
        (ROWS.replace("label: {en: Region}", "label: {en: 'Region ${school}'}"), CHOICES,
         "label in en refers to school, which comes later"),
    ],
)  # fmt: skip
def test_the_loader_explains_mistakes(rows: str, choices: str, fragment: str) -> None:
    found = [str(problem) for problem in problems(form(rows, choices))]
    assert any(fragment in problem for problem in found), found


def test_a_calculation_steers_relevance_and_the_estimate(pathways: Path) -> None:
    q = load_xlsx(pathways)
    # an adult: the longest route still counts job and started (if the job is work)
    k, left = engine.remaining_estimate(q, {"region": "north", "school": "n1", "age": 20}, "age")
    assert (k, left) == (3, 3)  # after the age: job, postcode, started
    k, left = engine.remaining_estimate(q, {"region": "north", "school": "n1", "age": 15}, "age")
    assert (k, left) == (3, 1)  # a minor: only the postcode


def test_a_form_refused_names_the_row(tmp_path: Path) -> None:
    job = survey_row("select_one jobs", "job", "Job?", "Baan?", choice_filter="sector=${job}")
    rows: list[Sequence[object]] = [SURVEY_HEADERS, job]
    choices: list[Sequence[object]] = [
        ["list_name", "name", "label::English (en)", "label::Nederlands (nl)"],
        ["jobs", "work", "Working", "Werken"],
    ]
    path = write_workbook(tmp_path / "bad.xlsx", {"survey": rows, "choices": choices})
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(path)
    text = str(caught.value)
    assert "bad.xlsx:survey:2: choice_filter" in text


# --- in the chat -------------------------------------------------------------------------

PLANS = parse_plans(
    """
default:
  waves:
    - {name: m2, questionnaire: pathways, consent: survey, opens: 2m, closes: 4m,
       reminders: {count: 2, every: 2w}}
""",
    questionnaires={"pathways"},
)


@pytest.fixture
async def deployed(harness: Harness, tmp_path: Path, pathways: Path) -> Harness:
    """The harness with the imported pathways form deployed."""
    directory = tmp_path / "deployed"
    directory.mkdir()
    (directory / "pathways.yaml").write_text(import_xlsx(pathways), encoding="utf-8")
    harness.questionnaires = QuestionnaireRegistry(directory)
    harness.plans = PLANS
    await harness.restart_bot()
    return harness


def texts(message: TranscriptEntry) -> list[str]:
    return [str(button["text"]) for button in message.buttons]


async def test_the_form_in_the_chat_in_dutch(deployed: Harness) -> None:
    """Through the sandbox: the school question names the region chosen and offers only its
    schools, the note names the school, "Anders" asks which, a postcode is checked with its
    regex and the review shows what was answered."""
    h = deployed
    graduate, user = await h.consenting_graduate("nl")
    await h.open_survey(graduate, "pathways")
    _welcome, region = await h.send(user, "/survey", expect=2)
    assert "Waar is je school?" in region.content
    assert texts(region) == ["Noord", "Zuid"]

    (school,) = await h.press(user, "Zuid", message=region)
    assert "Welke school in Zuid?" in school.content
    assert texts(school)[:3] == ["Summa", "Curio", tr("nl", "◀ Back")]

    (age,) = await h.press(user, "Curio", message=school)
    assert "Hoe oud ben je?" in age.content
    note, job = await h.send(user, "20", expect=2)
    assert note.content == "Welkom, oud-student van Curio!"
    assert "Wat doe je nu?" in job.content
    assert texts(job)[:3] == ["Werken", "Studeren", "Anders"]

    (other,) = await h.press(user, "Anders", message=job)
    assert "Welke andere?" in other.content
    (postcode,) = await h.send(user, "Eigen bakkerij")
    assert "Je postcode?" in postcode.content
    (refused,) = await h.send(user, "12")
    assert refused.content == "Schrijf het als 1234 AB"
    done, review = await h.send(user, "5611 AA", expect=2)
    assert done.content == "Bedankt (age 20, adult)."  # the closing note, then the review
    assert review.content.startswith("Controleer je antwoorden.")
    for shown in ("Welke school in Zuid?\n    → Curio", "Anders", "Eigen bakkerij", "5611 AA"):
        assert shown in review.content
    assert "Wanneer begon je?" not in review.content  # only after "Werken"


async def test_the_form_in_the_web_chat(deployed: Harness) -> None:
    """The same conversation core in the web chat: the region named, its schools only, the
    school in the note, Other and its text, and what was typed kept."""
    h = deployed
    base = await h.start_web()
    graduate, g, _page = await onboard(h, base, "en")
    try:
        response = await open_web_survey(h, graduate, "pathways")
        page = await g.command("survey")
        assert "Where is your school?" in newest_bot(page).text
        page = await g.press("North")
        school = newest_bot(page)
        assert "Which school in North?" in school.text
        assert [text for text, _data in school.buttons][:2] == ["Noorderpoort", "Alfa-college"]
        assert "Summa" not in [text for text, _data in school.buttons]
        page = await g.press("Noorderpoort")
        page = await g.type("19")
        assert "Welcome, Noorderpoort graduate!" in page.bot_texts()
        page = await g.press("Other")
        assert "Specify other." in newest_bot(page).text
        page = await g.type("Own bakery")
        page = await g.press(tr("en", "Skip ▶"))  # the postcode is optional
        assert "Thank you (age 19, adult)." in page.bot_texts()  # the closing note
        assert newest_bot(page).text.startswith("Please check your answers.")
        page = await g.press(tr("en", "✅ Send my answers"))
    finally:
        await g.close()
    async with h.db.session() as session:
        rows = (await session.exec(select(Answer).where(Answer.response_id == response.id))).all()
    assert {row.question: row.value for row in rows} == {
        "region": "north",
        "school": "n1",
        "age": 19,
        "job": "other",
        "job_other": "Own bakery",
    }


GROUPED = """\
- type: select_one regions
  name: region
  label: {en: Region}
- type: begin_group
  name: north_only
  relevant: ${region} = 'north'
- type: calculate
  name: tag
  calculation: concat('N-', ${region})
- type: note
  name: seen
  label: {en: 'Tag ${tag}'}
- type: end_group
- type: select_one regions
  name: again
  label: {en: 'Again (${tag})'}
  relevant: ${tag} = ''
"""


def test_a_calculation_in_a_group_that_does_not_apply_is_empty() -> None:
    q = parse_questionnaire(form(GROUPED, "regions:\n  - {name: north, label: {en: North}}\n"
                                 "  - {name: south, label: {en: South}}\n"))  # fmt: skip
    assert engine.values(q, {"region": "north"})["tag"] == "N-north"
    assert engine.values(q, {"region": "south"})["tag"] == ""
    assert route(q, {"region": "north"})[0] == ["region", "seen"]
    assert route(q, {"region": "south", "again": "north"})[0] == ["region", "again"]
    assert parse_questionnaire(to_yaml(q)) == q
