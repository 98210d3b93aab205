"""``${last-saved#NAME}`` and ``carry`` (issue 17, later waves build on earlier ones): the
expression, the loader's checks, the engine's carried questions and XLSForm import."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from openpyxl import Workbook

from conversations import engine
from conversations.expressions import ExpressionError, parse_expression, text_references
from conversations.questionnaire import Questionnaire, load_questionnaire, parse_questionnaire
from conversations.xlsform import import_xlsx, to_yaml
from tests.test_questionnaire_loader import assert_problem, form
from tests.test_survey_tracking import BLOCKS, ROUTES, policy

TRACKING = Path(__file__).parent.parent / "conversations" / "questionnaires" / "tracking.yaml"

# --- expressions ----------------------------------------------------------------------------


def test_last_saved_reads_the_earlier_answers_not_this_response() -> None:
    e = parse_expression("${last-saved#E4} != '' and ${E0} = 'same'")
    assert e.references() == {"E0"}
    assert e.earlier_references() == {"E4"}
    assert e.holds({"E0": "same"}, earlier={"E4": "cook"})
    # Absent: no earlier response, or no answer in it, is '' (as an unanswered question).
    assert not e.holds({"E0": "same"})
    assert not e.holds({"E0": "same"}, earlier={"Q1": "employed"})
    assert not e.holds({"E0": "same", "E4": "cook"})  # this response's E4 is not the earlier
    month = parse_expression("${last-saved#_month}")
    assert month.evaluate({}, earlier={"_month": "2026-06"}) == "2026-06"
    assert month.evaluate({}) == ""
    assert parse_expression("selected(${last-saved#E10}, 'agency')").holds(
        {}, earlier={"E10": ["school", "agency"]}
    )


def test_last_saved_canonical_text_reparses() -> None:
    e = parse_expression("${last-saved#E4}!=''  or ${last-saved#_month}=''")
    assert str(e) == "${last-saved#E4} != '' or ${last-saved#_month} = ''"
    assert parse_expression(str(e)) == e
    assert e != parse_expression("${E4} != '' or ${last-saved#_month} = ''")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("${last-saved#} = 1", "is not a valid question name in ${last-saved#...}"),
        ("${last-saved#4E} = 1", "'4E' is not a valid question name"),
        ("${last-saved#_week} = 1", "'_week' is not a valid question name"),
        ("${last_saved#E4} = 1", "'last_saved#' is not known"),
        ("${previous#E4} = 1", "only ${last-saved#name}"),
    ],
)
def test_bad_last_saved_references(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    assert fragment in caught.value.message


def test_text_references() -> None:
    text = "In ${last-saved#_month} you were ${last-saved#E4}; now ${E4}."
    assert text_references(text) == [(True, "_month"), (True, "E4"), (False, "E4")]


# --- loader ---------------------------------------------------------------------------------

ROWS = """\
- type: text
  name: E4
  label: {en: Job, nl: Baan}
"""


def test_the_loader_accepts_last_saved_anywhere_and_carry() -> None:
    q = parse_questionnaire(
        form(
            """\
            - type: select_one yes_no
              name: E0
              relevant: ${last-saved#E4} != ''
              label:
                en: "In ${last-saved#_month} you were: ${last-saved#E4}. Still?"
                nl: "In ${last-saved#_month} was je: ${last-saved#E4}. Nog steeds?"
              hint: {en: "Later: ${last-saved#E5}", nl: "Later: ${last-saved#E5}"}
            - type: text
              name: E4
              carry: ${E0} = 'yes'
              label: {en: Job, nl: Baan}
            - type: text
              name: E5
              label: {en: Sector, nl: Sector}
            """
        )
    )
    assert q.question("E4").carry == parse_expression("${E0} = 'yes'")
    assert q.question("E0").carry is None
    # Exported and read back, with its carry.
    assert parse_questionnaire(to_yaml(q)) == q


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("relevant", "${last-saved#E9} != ''", "${last-saved#E9}, but E9 is not a question"),
        ("constraint", ". != ${last-saved#e4}", "did you mean 'E4'?"),
        ("carry", "${last-saved#X} = 'a'", "X is not a question of this questionnaire"),
        ("carry", "${last-saved#main} = 'a'", "a group; refer to a question"),
        ("carry", "${last-saved#N1} = 'a'", "a note, which has no answer"),
        ("carry", ". = 'a'", "carry: '.' (the answer being checked) can only be used"),
        ("carry", "${E5} = 'a'", "carry refers to E5, which comes later"),
    ],
)
def test_the_loader_rejects_bad_earlier_references(key: str, value: str, fragment: str) -> None:
    text = form(
        f"""\
        - type: begin_group
          name: main
        - type: note
          name: N1
          label: {{en: Hi, nl: Hoi}}
        - type: text
          name: E4
          label: {{en: Job, nl: Baan}}
          {key}: "{value}"
        - type: text
          name: E5
          label: {{en: Sector, nl: Sector}}
        - type: end_group
        """
    )
    assert_problem(text, 17 + 8, fragment)


def test_the_loader_checks_last_saved_in_labels_and_hints() -> None:
    text = form(
        """\
        - type: text
          name: E4
          label: {en: "Was ${last-saved#E44}", nl: "Was ${last-saved#E4}"}
          hint: {en: "${last-saved#bad name}", nl: "ok"}
        """
    )
    assert_problem(text, 17 + 2, "label in en refers to ${last-saved#E44}, but E44 is not a")
    assert_problem(text, 17 + 3, "hint in en: ${last-saved#bad name} names no question")


def test_carry_is_not_allowed_on_notes() -> None:
    text = form(
        """\
        - type: note
          name: N1
          label: {en: Hi, nl: Hoi}
          carry: ${C0} = 'yes'
        """
    )
    assert_problem(text, 17 + 3, "carry is not allowed on a note")


def test_xlsform_import_reads_odk_last_saved_and_carry(tmp_path: Path) -> None:
    workbook = Workbook()
    survey = workbook.active
    assert survey is not None
    survey.title = "survey"
    survey.append(["type", "name", "label::English (en)", "relevant", "carry"])
    survey.append(["text", "job", "Your job?", None, "${last-saved#job} != ''"])
    survey.append(
        [
            "select_one yes_no",
            "same",
            "In ${last-saved#_month}: ${last-saved#job}. Still?",
            "${last-saved#job} != ''",
            None,
        ]
    )
    choices = workbook.create_sheet("choices")
    choices.append(["list_name", "name", "label::English (en)"])
    choices.append(["yes_no", "yes", "Yes"])
    choices.append(["yes_no", "no", "No"])
    settings = workbook.create_sheet("settings")
    settings.append(["form_id", "version", "default_language", "form_title"])
    settings.append(["odk", "1", "en", "ODK"])
    path = tmp_path / "odk.xlsx"
    workbook.save(path)
    q = parse_questionnaire(import_xlsx(path))
    assert q.question("job").carry == parse_expression("${last-saved#job} != ''")
    relevant = q.question("same").relevant
    assert relevant is not None and relevant.earlier_references() == {"job"}
    assert "${last-saved#job}" in q.question("same").label("en")


# --- engine ---------------------------------------------------------------------------------

LATER = """\
settings:
  form_id: later
  version: "1"
  default_language: en
  languages: [en]
  title: {en: Later}
survey:
  - type: select_one same
    name: E0
    relevant: ${last-saved#E4} != ''
    label: {en: "In ${last-saved#_month} you were: ${last-saved#E4}. Still?"}
  - type: select_one first
    name: E1
    core: true
    carry: ${last-saved#E1} != ''
    label: {en: "First job?"}
  - type: integer
    name: E3
    carry: ${E0} = 'same'
    constraint: . >= 1 and . <= 80
    label: {en: "Hours?"}
  - type: text
    name: E4
    carry: ${E0} = 'same'
    label: {en: "Job?"}
  - type: select_one first
    name: E7
    relevant: ${E4} != ''
    label: {en: "Related?"}
choices:
  same:
    - {name: same, label: {en: Same}}
    - {name: new, label: {en: New}}
  first:
    - {name: early, label: {en: Early}}
    - {name: late, label: {en: Late}}
"""


@pytest.fixture
def later() -> Questionnaire:
    return parse_questionnaire(textwrap.dedent(LATER))


def asked(q: Questionnaire, answers: engine.Answers, earlier: engine.Answers | None) -> list[str]:
    names = []
    question = engine.next_question(q, answers, None, earlier)
    while question is not None:
        names.append(question.name)
        question = engine.next_question(q, answers, question.name, earlier)
    return names


EARLIER: dict[str, engine.AnswerValue] = {
    "E1": "early",
    "E3": 32,
    "E4": "cook",
    "_month": "2026-06",
}


def test_a_first_wave_asks_everything_and_carries_nothing(later: Questionnaire) -> None:
    assert asked(later, {}, None) == ["E1", "E3", "E4"]
    assert engine.carried(later, {"E1": "late", "E4": "x"}, None) == {}
    assert asked(later, {"E1": "late", "E4": "x"}, {}) == ["E1", "E3", "E4", "E7"]


def test_carried_questions_are_not_asked_and_keep_the_earlier_answer(
    later: Questionnaire,
) -> None:
    answers = {"E0": "same"}
    assert engine.carried(later, answers, EARLIER) == {"E1": "early", "E3": 32, "E4": "cook"}
    # E7 is relevant on the carried E4: carried answers steer routing as answers do.
    assert asked(later, answers, EARLIER) == ["E0", "E7"]
    assert engine.is_complete(later, answers, EARLIER)
    assert engine.relevant_answers(later, answers, EARLIER) == {
        "E0": "same",
        "E1": "early",
        "E3": 32,
        "E4": "cook",
    }
    assert engine.first_unanswered(later, answers, EARLIER) == later.question("E7")
    assert engine.previous_question(later, answers, "E7", EARLIER) == later.question("E0")
    # An answer given before the question was carried gives way to the earlier one.
    assert engine.relevant_answers(later, {**answers, "E4": "chef"}, EARLIER)["E4"] == "cook"
    # Progress: carried questions are not counted (E0 and E7 are the route).
    assert engine.remaining_estimate(later, answers, "E0", EARLIER) == (1, 1)
    assert engine.progress(later, answers, "E7", EARLIER) == (2, 2)


def test_a_new_job_asks_again_but_the_first_job_stays(later: Questionnaire) -> None:
    answers = {"E0": "new"}
    assert engine.carried(later, answers, EARLIER) == {"E1": "early"}
    assert asked(later, answers, EARLIER) == ["E0", "E3", "E4"]
    assert not engine.is_complete(later, {}, {"_month": "2026-06"})  # E1 has nothing to carry


def test_an_earlier_answer_this_version_refuses_is_asked_again(later: Questionnaire) -> None:
    earlier: dict[str, engine.AnswerValue] = {
        **EARLIER,
        "E1": "gone_code",
        "E3": 95,
    }  # no such choice; out of the 1-80 range
    assert engine.carried(later, {"E0": "same"}, earlier) == {"E4": "cook"}
    assert asked(later, {"E0": "same"}, earlier) == ["E0", "E1", "E3", "E7"]


def test_the_estimate_shows_the_longer_route_first(later: Questionnaire) -> None:
    """Before E0 is answered the longer route (a new job: E3 and E4 asked) is counted;
    "same" shortens it to E7 (carried E1, E3 and E4 are not counted)."""
    assert engine.remaining_estimate(later, {}, "E0", EARLIER) == (1, 2)
    assert engine.remaining_estimate(later, {"E0": "same"}, "E7", EARLIER) == (2, 0)


def walk_engine(
    q: Questionnaire, route: str, earlier: engine.Answers | None
) -> tuple[list[str], dict[str, engine.AnswerValue]]:
    """The questions the tracking walk's policy is asked on `route`, and its answers (engine
    only)."""
    choose = policy(q, route)
    answers: dict[str, engine.AnswerValue] = {}
    names: list[str] = []
    question = engine.next_question(q, answers, None, earlier)
    while question is not None:
        if question.answerable:
            names.append(question.name)
            value = choose(question)
            if value is not None:
                answers[question.name] = value
        question = engine.next_question(q, answers, question.name, earlier)
    return names, answers


def test_the_first_wave_route_of_the_tracking_questionnaire_is_unchanged() -> None:
    """Without an earlier response no later-wave question is asked and nothing is carried:
    the employed route is the one of version 2026.2 less the A1 statements and E8, with E4b."""
    q = load_questionnaire(TRACKING)
    for route in ROUTES:
        names, _answers = walk_engine(q, route, None)
        assert not {"S0", "E0", "E0a", "E13", "U0"} & set(names), (route, names)
        assert ("E1" in names) is ("E" in BLOCKS[route]), (route, names)
    names, answers = walk_engine(q, "employed", None)
    assert names == [
        *("C0", "Q1", "E1", "E2", "E3", "E4", "E4b", "E5", "E6", "E7", "E9", "E10", "E11"),
        *("E12", "A8", "A2", "A3", "A4", "A7"),
    ]
    # A later wave of the same graduate, same job: what cannot have changed is not asked.
    earlier = {**engine.relevant_answers(q, answers), "_month": "2026-06"}
    later, _answers = walk_engine(q, "employed", earlier)
    assert later[:4] == ["C0", "Q1", "E0", "E0a"]
    assert not {"E1", "E4", "E4b", "E5", "E6", "E9", "E10", "E12"} & set(later)


def test_learning_items_are_asked_once_in_the_second_answered_wave_and_carried_after() -> None:
    """Learning and skills (L1-L3) are not in a graduate's first answered wave (the employed
    route stays short there), are asked in the next, and are carried into the one after; the
    judgement of the programme (A2, A3) is asked once; A7 is asked again only of those who
    offered no help."""
    q = load_questionnaire(TRACKING)
    learning = {"L1", "L2", "L3"}
    first, answers1 = walk_engine(q, "employed", None)
    assert not learning & set(first)
    assert {"A2", "A3", "A7"} <= set(first)
    assert answers1["A7"] == ["guest_lecture"]  # the walk offers help (first choice)

    earlier1 = {**engine.relevant_answers(q, answers1), "_month": "2026-08"}
    second, answers2 = walk_engine(q, "employed", earlier1)
    assert learning <= set(second), second
    assert not {"A2", "A3", "A7"} & set(second), second
    kept2 = engine.relevant_answers(q, answers2, earlier1)  # asked + carried, as stored
    assert {name: kept2[name] for name in ("A2", "A3", "A7")} == {
        name: answers1[name] for name in ("A2", "A3", "A7")
    }

    earlier2 = {**kept2, "_month": "2027-02"}
    third, answers3 = walk_engine(q, "employed", earlier2)
    assert not learning & set(third), third
    carried3 = dict(engine.carried(q, answers3, earlier2))
    assert {name: carried3[name] for name in learning} == {
        name: answers2[name] for name in learning
    }

    # "No, thanks" before: asked again.
    no_help = {**earlier1, "A7": ["none"]}
    again, _answers = walk_engine(q, "employed", no_help)
    assert "A7" in again
