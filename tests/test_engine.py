"""The engine on a small questionnaire: routing, back, progress, completeness, answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from conversations import engine
from conversations.engine import AnswerError, AnswerValue
from conversations.questionnaire import Questionnaire, load_questionnaire, parse_questionnaire

DATA = Path(__file__).parent / "data" / "questionnaires"


@pytest.fixture(scope="module")
def q() -> Questionnaire:
    return load_questionnaire(DATA / "small.yaml")


def route(q: Questionnaire, answers: dict[str, AnswerValue]) -> list[str]:
    """Every row the graduate meets, from the start, given these answers."""
    names: list[str] = []
    question = engine.next_question(q, answers, None)
    while question is not None:
        names.append(question.name)
        question = engine.next_question(q, answers, question.name)
    return names


WORKER: dict[str, AnswerValue] = {
    "consent": "yes",
    "activity": "employed",
    "hours": 40,
    "related": "yes",
    "channels": ["school"],
    "satisfaction": 4,
}


# --- routing ------------------------------------------------------------------------------


def test_routing_follows_relevance_and_groups(q: Questionnaire) -> None:
    assert route(q, {}) == ["consent", "bye"]
    assert route(q, {"consent": "no"}) == ["consent", "bye"]
    after_consent = ["consent", "intro", "activity"]
    rest = ["channels", "start", "since", "salary", "satisfaction", "comment", "bye"]
    assert route(q, {"consent": "yes"}) == after_consent + rest
    assert route(q, {"consent": "yes", "activity": "studying"}) == after_consent + rest
    assert route(q, {"consent": "yes", "activity": "both"}) == [*after_consent, "hours", *rest]
    assert route(q, WORKER) == [*after_consent, "hours", "related", *rest]
    assert route(q, {**WORKER, "hours": 8}) == [*after_consent, "hours", *rest]


def test_next_question_includes_notes(q: Questionnaire) -> None:
    first = engine.next_question(q, {}, None)
    assert first is not None and first.name == "consent"
    note = engine.next_question(q, {"consent": "yes"}, "consent")
    assert note is not None and note.name == "intro" and not note.answerable
    last = engine.next_question(q, {}, "consent")
    assert last is not None and last.name == "bye"
    assert engine.next_question(q, {}, "bye") is None


def test_next_question_from_an_irrelevant_question(q: Questionnaire) -> None:
    # The graduate was at `hours`, then went back and chose "studying": carry on after it.
    following = engine.next_question(q, {"consent": "yes", "activity": "studying"}, "hours")
    assert following is not None and following.name == "channels"


def test_previous_question_skips_notes_and_irrelevant_questions(q: Questionnaire) -> None:
    back = engine.previous_question(q, {"consent": "yes"}, "activity")
    assert back is not None and back.name == "consent"  # not the note `intro`
    back = engine.previous_question(q, {**WORKER, "hours": 8}, "channels")
    assert back is not None and back.name == "hours"  # `related` does not apply
    back = engine.previous_question(q, {"consent": "yes", "activity": "other"}, "channels")
    assert back is not None and back.name == "activity"
    assert engine.previous_question(q, {}, "consent") is None
    back = engine.previous_question(q, {"consent": "no"}, "bye")
    assert back is not None and back.name == "consent"


def test_unknown_names_are_key_errors(q: Questionnaire) -> None:
    with pytest.raises(KeyError):
        engine.next_question(q, {}, "nope")
    with pytest.raises(KeyError):
        engine.progress(q, {}, "nope")


def test_is_relevant(q: Questionnaire) -> None:
    hours = q.question("hours")
    assert not engine.is_relevant(q, hours, {})
    assert not engine.is_relevant(q, hours, {"activity": "employed"})  # outer group: consent
    assert engine.is_relevant(q, hours, {"consent": "yes", "activity": "employed"})
    assert engine.is_relevant(q, q.question("bye"), {})


def test_stale_answers_of_irrelevant_questions_do_not_steer(q: Questionnaire) -> None:
    # hours=40 was answered as a worker; now a student: `related` must not come back.
    answers: dict[str, AnswerValue] = {**WORKER, "activity": "studying"}
    assert not engine.is_relevant(q, q.question("related"), answers)
    assert "related" not in route(q, answers)


def test_first_unanswered(q: Questionnaire) -> None:
    first = engine.first_unanswered(q, {})
    assert first is not None and first.name == "consent"
    assert engine.first_unanswered(q, {"consent": "no"}) is None
    missing = engine.first_unanswered(q, {"consent": "yes"})
    assert missing is not None and missing.name == "activity"
    missing = engine.first_unanswered(q, {"consent": "yes", "activity": "employed"})
    assert missing is not None and missing.name == "hours"
    missing = engine.first_unanswered(q, {**WORKER, "related": ""})
    assert missing is not None and missing.name == "related"
    missing = engine.first_unanswered(q, {**WORKER, "channels": []})
    assert missing is not None and missing.name == "channels"
    assert engine.first_unanswered(q, WORKER) is None  # optional ones may stay empty


# --- progress -----------------------------------------------------------------------------


def test_progress_counts_only_questions_that_apply(q: Questionnaire) -> None:
    # At the start only `consent` is known to apply: the rest hangs on its answer.
    assert engine.progress(q, {}, "consent") == (1, 1)
    # Back at consent after saying yes: everything known counts.
    assert engine.progress(q, {"consent": "yes"}, "consent") == (1, 8)
    # consent, activity + the 6 questions of `main` that do not hang on `activity`.
    assert engine.progress(q, {"consent": "yes"}, "activity") == (2, 8)
    employed = {"consent": "yes", "activity": "employed"}
    assert engine.progress(q, employed, "hours") == (3, 9)  # `related` hangs on hours
    assert engine.progress(q, {**employed, "hours": 40}, "related") == (4, 10)
    assert engine.progress(q, {**employed, "hours": 40}, "channels") == (5, 10)
    assert engine.progress(q, {**employed, "hours": 8}, "channels") == (4, 9)
    student = {"consent": "yes", "activity": "studying"}
    assert engine.progress(q, student, "channels") == (3, 8)
    assert engine.progress(q, {**WORKER, "comment": "x"}, "comment") == (10, 10)


def test_progress_on_a_note_counts_the_question_after_it(q: Questionnaire) -> None:
    assert engine.progress(q, {"consent": "yes"}, "intro") == (2, 8)
    assert engine.progress(q, {"consent": "no"}, "bye") == (2, 2)


def test_progress_when_a_skipped_optional_question_is_referenced() -> None:
    text = """\
settings: {form_id: t, version: "1", default_language: en, languages: [en], title: {en: T}}
survey:
  - {type: integer, name: a, required: false, label: {en: a}}
  - {type: integer, name: b, label: {en: b}}
  - {type: text, name: c, relevant: "${a} = ''", label: {en: c}}
"""
    t = parse_questionnaire(text)
    assert engine.progress(t, {}, "a") == (1, 2)  # c hangs on a, not answered yet
    assert engine.progress(t, {}, "b") == (2, 3)  # a was skipped: c applies
    assert engine.progress(t, {"a": 1}, "b") == (2, 2)


def test_notes_are_said_with_the_next_question_asked_or_before_the_review() -> None:
    """As ODK shows them on the way: a note before a question skipped by relevance is said
    with the next question asked, a note that does not apply is not said, and the notes
    after the last question come before the review."""
    text = """\
settings: {form_id: t, version: "1", default_language: en, languages: [en], title: {en: T}}
survey:
  - {type: integer, name: age, label: {en: Age}}
  - {type: note, name: hello, label: {en: Hello}}
  - {type: text, name: job, relevant: "${age} >= 18", label: {en: Job}}
  - {type: note, name: minor, relevant: "${age} < 18", label: {en: Come back later}}
  - {type: text, name: town, label: {en: Town}}
  - {type: note, name: thanks, label: {en: Thanks}}
"""
    t = parse_questionnaire(text)

    def said(answers: dict[str, AnswerValue], row: str | None) -> list[str]:
        index = len(t.questions) if row is None else t.index(row)
        return [note.name for note in engine.notes_before(t, answers, index)]

    assert said({"age": 30}, "job") == ["hello"]
    assert said({"age": 30}, "town") == []  # "minor" does not apply to an adult
    assert said({"age": 15}, "town") == ["hello", "minor"]  # job skipped: said with town
    assert said({"age": 15}, None) == ["thanks"]  # the closing note, before the review
    assert said({}, "age") == []


# --- what is kept -------------------------------------------------------------------------


def test_relevant_answers_drop_irrelevant_and_empty_ones(q: Questionnaire) -> None:
    answers: dict[str, AnswerValue] = {**WORKER, "activity": "studying", "comment": ""}
    kept = engine.relevant_answers(q, {**answers, "unknown": "x", "intro": "x"})
    assert kept == {
        "consent": "yes",
        "activity": "studying",
        "channels": ["school"],
        "satisfaction": 4,
    }
    assert engine.relevant_answers(q, {**WORKER, "consent": "no"}) == {"consent": "no"}


def test_complete_and_partial(q: Questionnaire) -> None:
    assert not engine.is_complete(q, {})
    assert engine.is_complete(q, {"consent": "no"})
    assert not engine.is_complete(q, {"consent": "yes"})
    assert engine.is_complete(q, {"consent": "yes", "activity": "studying"})
    # hours is not core; with no hours (or few) `related` does not apply: the core is answered.
    assert engine.is_complete(q, {"consent": "yes", "activity": "employed"})
    assert engine.is_complete(q, {"consent": "yes", "activity": "employed", "hours": 8})
    assert not engine.is_complete(q, {"consent": "yes", "activity": "employed", "hours": 40})
    assert engine.is_complete(q, WORKER)


def test_review_items(q: Questionnaire) -> None:
    items = engine.review_items(q, {"consent": "yes", "activity": "studying", "salary": 9.5})
    assert [(question.name, value) for question, value in items] == [
        ("consent", "yes"),
        ("activity", "studying"),
        ("channels", None),
        ("start", None),
        ("since", None),
        ("salary", 9.5),
        ("satisfaction", None),
        ("comment", None),
    ]


# --- buttons ------------------------------------------------------------------------------


def test_check_choice(q: Questionnaire) -> None:
    assert engine.check_choice(q, q.question("consent"), "yes") == "yes"
    with pytest.raises(AnswerError) as caught:
        engine.check_choice(q, q.question("consent"), "maybe")
    assert caught.value.kind == "unknown_choice"
    assert caught.value.params == {"code": "maybe"}
    assert engine.check_choice(q, q.question("satisfaction"), "3") == 3
    for code in ["0", "6", "x", "", "3.0", "٣", "1" * 50]:
        with pytest.raises(AnswerError, match="unknown_choice"):
            engine.check_choice(q, q.question("satisfaction"), code)
    with pytest.raises(ValueError, match="not select_one or scale"):
        engine.check_choice(q, q.question("channels"), "school")


def test_toggle_choice_keeps_display_order(q: Questionnaire) -> None:
    channels = q.question("channels")
    chosen = engine.toggle_choice(q, channels, [], "agency")
    assert chosen == ["agency"]
    chosen = engine.toggle_choice(q, channels, chosen, "school")
    assert chosen == ["school", "agency"]
    chosen = engine.toggle_choice(q, channels, chosen, "friends")
    assert chosen == ["school", "friends", "agency"]
    chosen = engine.toggle_choice(q, channels, chosen, "school")
    assert chosen == ["friends", "agency"]
    assert engine.toggle_choice(q, channels, ["agency", "gone"], "online") == ["online", "agency"]
    original = ["school"]
    engine.toggle_choice(q, channels, original, "online")
    assert original == ["school"]
    with pytest.raises(AnswerError, match="unknown_choice"):
        engine.toggle_choice(q, channels, [], "nope")
    with pytest.raises(ValueError, match="not select_multiple"):
        engine.toggle_choice(q, q.question("consent"), [], "yes")


# --- typed answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("hours", "40", 40),
        ("hours", " 7 ", 7),
        ("hours", "+3", 3),
        ("hours", "-2", -2),
        ("hours", "007", 7),
        ("salary", "12.5", 12.5),
        ("salary", "12,5", 12.5),
        ("salary", "12", 12.0),
        ("salary", ",5", 0.5),
        ("salary", "-1.25", -1.25),
        ("start", "2026-06-30", "2026-06-30"),
        ("start", "30-06-2026", "2026-06-30"),
        ("start", "30/06/2026", "2026-06-30"),
        ("start", "30.06.2026", "2026-06-30"),
        ("start", "1/6/2026", "2026-06-01"),
        ("start", "2024-02-29", "2024-02-29"),
        ("since", "2026-06", "2026-06"),
        ("since", "06/2026", "2026-06"),
        ("since", "6-2026", "2026-06"),
        ("since", "12.2025", "2025-12"),
        ("comment", "  hello  ", "hello"),
        ("comment", "a\x00b", "ab"),
        ("comment", "x" * 1000, "x" * 1000),
    ],
)
def test_parse_typed(q: Questionnaire, name: str, text: str, value: AnswerValue) -> None:
    parsed = engine.parse_typed(q.question(name), text)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("hours", "", "empty"),
        ("hours", "   ", "empty"),
        ("comment", "\n\t ", "empty"),
        ("hours", "4.5", "not_integer"),
        ("hours", "forty", "not_integer"),
        ("hours", "1 000", "not_integer"),
        ("hours", "٤٠", "not_integer"),
        ("hours", "４０", "not_integer"),
        ("hours", "1" * 16, "not_integer"),
        ("hours", "1e3", "not_integer"),
        ("salary", "1,000.5", "not_number"),
        ("salary", "1.2.3", "not_number"),
        ("salary", "nan", "not_number"),
        ("salary", "inf", "not_number"),
        ("salary", "1e5", "not_number"),
        ("salary", "١٢", "not_number"),
        ("salary", "9" * 16, "not_number"),
        ("salary", ".", "not_number"),
        ("start", "2026-02-30", "not_date"),
        ("start", "31/04/2026", "not_date"),
        ("start", "2026/06/30", "not_date"),
        ("start", "30-06-26", "not_date"),
        ("start", "30-06/2026", "not_date"),
        ("start", "tomorrow", "not_date"),
        ("start", "٣٠-٠٦-٢٠٢٦", "not_date"),
        ("since", "2026-13", "not_month"),
        ("since", "00/2026", "not_month"),
        ("since", "June 2026", "not_month"),
        ("since", "2026-06-01", "not_month"),
        ("comment", "x" * 1001, "too_long"),
    ],
)
def test_parse_typed_errors(q: Questionnaire, name: str, text: str, kind: str) -> None:
    with pytest.raises(AnswerError) as caught:
        engine.parse_typed(q.question(name), text)
    assert caught.value.kind == kind


def test_too_long_says_how_long(q: Questionnaire) -> None:
    with pytest.raises(AnswerError) as caught:
        engine.parse_typed(q.question("comment"), "x" * 1200)
    assert caught.value.params == {"max": 1000, "length": 1200}
    assert str(caught.value) == "too_long (max=1000, length=1200)"


def test_parse_typed_is_for_typed_questions_only(q: Questionnaire) -> None:
    for name in ("consent", "channels", "satisfaction", "intro"):
        with pytest.raises(ValueError, match="not answered by typing"):
            engine.parse_typed(q.question(name), "yes")


# --- constraints and labels ---------------------------------------------------------------


def test_check_constraint(q: Questionnaire) -> None:
    hours = q.question("hours")
    assert engine.check_constraint(q, hours, 40, {})
    assert not engine.check_constraint(q, hours, 0, {})
    assert not engine.check_constraint(q, hours, 81, {})
    channels = q.question("channels")
    assert engine.check_constraint(q, channels, ["school", "online"], {})
    assert not engine.check_constraint(q, channels, ["school", "online", "agency"], {})
    comment = q.question("comment")
    assert engine.check_constraint(q, comment, "short", {})
    assert not engine.check_constraint(q, comment, "x" * 21, {})
    assert engine.check_constraint(q, q.question("consent"), "anything", {})  # no constraint


def test_constraint_message(q: Questionnaire) -> None:
    assert engine.constraint_message(q.question("hours"), "nl") == "Typ 1 tot 80."
    assert engine.constraint_message(q.question("hours"), "en") == "Please type 1 to 80."
    assert engine.constraint_message(q.question("comment"), "en") is None


@pytest.mark.parametrize(
    ("name", "value", "lang", "label"),
    [
        ("consent", "yes", "nl", "Ja"),
        ("activity", "employed", "en", "Working"),
        ("channels", ["school", "agency"], "en", "Through school, An agency"),
        ("channels", ["school", "agency"], "nl", "Via school, Een bureau"),
        ("channels", "school online", "en", "Through school, Online"),
        ("consent", "gone", "en", "gone"),
        ("satisfaction", 4, "en", "4"),
        ("hours", 40, "en", "40"),
        ("salary", 12.5, "en", "12.5"),
        ("salary", 12.0, "en", "12"),
        ("start", "2026-06-30", "en", "2026-06-30"),
        ("since", "2026-06", "en", "2026-06"),
        ("comment", "hi", "en", "hi"),
        ("comment", None, "en", ""),
        ("channels", [], "en", ""),
    ],
)
def test_answer_label(
    q: Questionnaire, name: str, value: AnswerValue | None, lang: str, label: str
) -> None:
    assert engine.answer_label(q, q.question(name), value, lang) == label


def test_a_whole_walk_through_the_questionnaire(q: Questionnaire) -> None:
    """Answer as the chat would: typed and pressed answers, checked, until nothing is left."""
    answers: dict[str, AnswerValue] = {}
    replies = {
        "consent": "yes",
        "activity": "both",
        "hours": "38",
        "related": "no",
        "channels": ["online", "school"],
        "start": "1.9.2025",
        "since": "09/2025",
        "salary": "14,20",
        "satisfaction": "5",
        "comment": "Thanks",
    }
    question = engine.next_question(q, answers, None)
    seen = []
    while question is not None:
        seen.append(question.name)
        if question.answerable:
            reply = replies[question.name]
            value: AnswerValue
            if question.is_multiple:
                value = []
                assert isinstance(reply, list)
                for code in reply:
                    value = engine.toggle_choice(q, question, value, code)
            elif question.is_select or question.type == "scale":
                assert isinstance(reply, str)
                value = engine.check_choice(q, question, reply)
            else:
                assert isinstance(reply, str)
                value = engine.parse_typed(question, reply)
            assert engine.check_constraint(q, question, value, answers)
            answers[question.name] = value
            k, n = engine.progress(q, answers, question.name)
            assert 1 <= k <= n
        question = engine.next_question(q, answers, question.name)
    assert seen[-1] == "bye"
    assert engine.first_unanswered(q, answers) is None
    assert engine.is_complete(q, answers)
    assert answers["channels"] == ["school", "online"]
    assert answers["salary"] == 14.2
    assert answers["start"] == "2025-09-01"
    assert engine.relevant_answers(q, answers) == answers
