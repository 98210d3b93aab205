"""Properties of the questionnaire engine (conversations/engine.py) and of the chat that
stores its answers (conversations/survey.py).

A graduate is simulated with random sequences of actions: valid answers, invalid ones
(unknown codes, out-of-range numbers, impossible dates, hostile text, wrong types), buttons of
other questions, Back, Skip, Next, review edits and submission. On the deployed
questionnaires, the test ones and generated questionnaires:

- nothing raises but the documented AnswerError (refused answers);
- a refused answer is not stored, and every stored answer is valid for its question (a code of
  its list, a number within the constraint, a real date, ...);
- the graduate is only ever at a question whose relevance holds (or at the review);
- answering validly always reaches the review, in at most one answer per question.

The same is then checked against the real bot (through the sandbox, on SQLite and PostgreSQL)
with forged button data as well.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import select

from bot.sandbox.state import SandboxUser, TranscriptEntry
from conversations import engine, survey
from conversations.engine import MAX_TEXT_LENGTH, AnswerError, AnswerValue
from conversations.questionnaire import (
    Question,
    Questionnaire,
    QuestionType,
    load_questionnaire,
    parse_questionnaire,
)
from conversations.registry import QuestionnaireRegistry
from conversations.survey import REVIEW
from conversations.waves import parse_plans
from storage.models import Answer, Institution, ResponseStatus, SurveyResponse
from tests.harness import Harness, button_data
from tests.properties import (
    EXTREME_INTEGERS,
    FIXTURE_PROFILE,
    PROFILE,
    dump_yaml,
    extreme_numbers,
    hostile_text,
    questionnaire_documents,
)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "tracking": ROOT / "conversations" / "questionnaires" / "tracking.yaml",
    "pregrad": ROOT / "conversations" / "questionnaires" / "pregrad.yaml",
    "small": ROOT / "tests" / "data" / "questionnaires" / "small.yaml",
    "mini": ROOT / "tests" / "data" / "chat" / "mini.yaml",
}

WALK_EXAMPLES = 10  # per questionnaire file
GENERATED_WALK_EXAMPLES = 25
VALID_WALK_EXAMPLES = 15
TYPED_EXAMPLES = 100
BUTTON_EXAMPLES = 80
ROUTING_EXAMPLES = 60  # in all, spread over the files
LEAVE_EXAMPLES = 10  # per questionnaire file, and generated
ACTIONS_PER_WALK = 30
BOT_EXAMPLES = 4  # per database backend
BOT_ACTIONS = 20


@cache
def questionnaire(name: str) -> Questionnaire:
    return load_questionnaire(FILES[name])


# --- what a valid answer is ---------------------------------------------------------------

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ISO_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")


def type_problem(q: Questionnaire, question: Question, value: object) -> str | None:
    """Why `value` is not an answer `question` can have (None: it can), leaving its constraint
    aside. Written from the format's documentation, not from the engine's code."""
    kind = question.type
    if not question.answerable:
        return "a note has no answer"
    if kind == QuestionType.SELECT_ONE:
        ok = isinstance(value, str) and q.choice(question, value) is not None
    elif kind == QuestionType.SELECT_MULTIPLE:
        codes = [c.name for c in q.choices_for(question)]
        ok = isinstance(value, list) and bool(value) and value == [c for c in codes if c in value]
    elif kind == QuestionType.SCALE:
        ok = type(value) is int and value in question.scale_values
    elif kind == QuestionType.INTEGER:
        ok = type(value) is int and abs(value) < 10**15
    elif kind == QuestionType.DECIMAL:
        ok = type(value) is float and math.isfinite(value) and abs(value) < 10**15
    elif kind == QuestionType.TEXT:
        ok = (
            isinstance(value, str)
            and bool(value)
            and value == value.strip()
            and "\x00" not in value
            and len(value) <= MAX_TEXT_LENGTH
        )
    elif kind == QuestionType.DATE:
        ok = isinstance(value, str) and bool(ISO_DATE.fullmatch(value)) and _is_date(value)
    else:
        ok = (
            isinstance(value, str)
            and bool(ISO_MONTH.fullmatch(value))
            and int(value[:4]) >= 1
            and 1 <= int(value[5:]) <= 12
        )
    return None if ok else f"{value!r} is not a {question.type_text} answer"


def _is_date(text: str) -> bool:
    try:
        return date.fromisoformat(text).isoformat() == text and text[:4] != "0000"
    except ValueError:
        return False


def answer_problem(
    q: Questionnaire, question: Question, value: object, answers: engine.Answers
) -> str | None:
    """Why `value` may not be stored for `question` given the other answers (None: it may)."""
    problem = type_problem(q, question, value)
    if problem is None and not engine.check_constraint(
        q, question, cast(AnswerValue, value), answers
    ):
        problem = f"{value!r} fails the constraint of {question.name}"
    return problem


# --- a graduate answering, as conversations/survey.py handles it ----------------------------


@dataclass
class Chat:
    """One response: its answers and position, changed as survey.on_button and on_text do."""

    q: Questionnaire
    answers: dict[str, AnswerValue] = field(default_factory=dict)
    current: str = ""
    editing: bool = False
    submitted: bool = False
    declined: bool = False
    #: The select_multiple question whose ticks are being changed (stored at each tick, checked
    #: against the constraint at Done).
    ticking: str | None = None

    def __post_init__(self) -> None:
        self.current = survey.first_position(self.q)

    def loaded(self) -> survey.Loaded:
        response = SurveyResponse(id=1, graduate_id=1, form_id=self.q.form_id, version="1")
        return survey.Loaded(response, self.q, self.answers, self.q.default_language)

    def move_on(self, after: str) -> None:
        self.current = survey._next_position(self.loaded(), after, self.editing)
        if self.current == REVIEW:
            self.editing = False

    def submit(self, declined: bool = False) -> None:
        self.answers = engine.relevant_answers(self.q, self.answers)
        self.submitted, self.declined, self.current = True, declined, ""

    def press(self, kind: str, name: str, code: str) -> bool:
        """A button `kind:<response>:<name>:<code>`; False when the bot refuses it."""
        q = self.q
        if self.submitted:
            return False
        if kind == "ss":
            if self.current != REVIEW:
                return False
            self.submit()
            return True
        if kind == "se":
            items = {question.name for question, _ in engine.review_items(q, self.answers)}
            if self.current != REVIEW or name not in items:
                return False
            self.editing = True
            self.current = name
            return True
        if self.current != name or name not in q or not q.question(name).answerable:
            return False
        question = q.question(name)
        if kind == "sb":
            previous = engine.previous_question(q, self.answers, name)
            if previous is None or not self._may_leave(question):
                return False
            self.current = previous.name
        elif kind == "sk":
            if question.required:
                return False
            self.answers.pop(name, None)
            self.move_on(name)
        elif kind == "sn":
            if name not in self.answers or question.type == QuestionType.SELECT_MULTIPLE:
                return False
            self.move_on(name)
        elif kind == "st":
            if question.type != QuestionType.SELECT_MULTIPLE:
                return False
            current = self.answers.get(name) or []
            assert isinstance(current, list)
            try:
                chosen = engine.toggle_choice(q, question, list(current), code)
            except AnswerError:
                return False
            if chosen:
                self.answers[name] = chosen
            else:
                self.answers.pop(name, None)
        elif kind == "sd":
            if question.type != QuestionType.SELECT_MULTIPLE:
                return False
            if not self.answers.get(name) and question.required:
                return False
            if not self._may_leave(question):
                return False
            self.move_on(name)
        elif kind == "sv":
            if question.type not in (QuestionType.SELECT_ONE, QuestionType.SCALE):
                return False
            try:
                value = engine.check_choice(q, question, code)
            except AnswerError:
                return False
            if not engine.check_constraint(q, question, value, self.answers):
                return False
            self.answers[name] = value
            position = survey._next_position(self.loaded(), name, self.editing)
            if position == REVIEW and survey._only_the_first_answered(self.loaded()):
                self.submit(declined=True)
            else:
                self.move_on(name)
        else:
            return False
        return True

    def _may_leave(self, question: Question) -> bool:
        """Ticks that break the constraint keep the graduate at the question."""
        if question.type != QuestionType.SELECT_MULTIPLE:
            return True
        chosen = self.answers.get(question.name)
        return not chosen or engine.check_constraint(self.q, question, chosen, self.answers)

    def type(self, text: str) -> bool:
        """A typed message; False when refused."""
        q = self.q
        if self.submitted or self.current not in q:
            return False
        question = q.question(self.current)
        if question.is_select or question.type == QuestionType.SCALE:
            return False
        try:
            value = engine.parse_typed(question, text)
        except AnswerError:
            return False
        if not engine.check_constraint(q, question, value, self.answers):
            return False
        self.answers[question.name] = value
        self.move_on(question.name)
        return True

    # -- what must always hold --

    def check(self) -> None:
        q = self.q
        for name, value in self.answers.items():
            assert name in q, name
            question = q.question(name)
            if name == self.current and question.type == QuestionType.SELECT_MULTIPLE:
                problem = type_problem(q, question, value)  # ticks in progress
            else:
                problem = answer_problem(q, question, value, self.answers)
            assert problem is None, problem
        if self.submitted:
            assert self.answers == engine.relevant_answers(q, self.answers)
            return
        if self.current == REVIEW:
            for question, _ in engine.review_items(q, self.answers):
                assert engine.is_relevant(q, question, self.answers)
            return
        question = q.question(self.current)
        assert question.answerable, self.current
        assert engine.is_relevant(q, question, self.answers), self.current
        k, n = engine.progress(q, self.answers, self.current)
        assert 1 <= k <= n <= len(q.questions)
        previous = engine.previous_question(q, self.answers, self.current)
        if previous is not None:
            assert previous.answerable and q.index(previous.name) < q.index(self.current)
            assert engine.is_relevant(q, previous, self.answers)


# --- strategies -----------------------------------------------------------------------------

KINDS = survey.CALLBACK_KINDS


def typed_texts(kind: str) -> st.SearchStrategy[str]:
    """Typed answers shaped like the question's type: valid, nearly valid and wrong."""
    numbers = st.one_of(
        st.integers(-200, 200).map(str),
        st.sampled_from(EXTREME_INTEGERS).map(str),
        st.integers().map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.tuples(st.integers(-99, 999), st.integers(0, 99)).map(lambda p: f"{p[0]},{p[1]}"),
        st.sampled_from(
            ["+5", " 7 ", "1_000", "1,000", "٣", "²", "1e3", "0x1f", "-0", ".5", "5.", "1.2.3"]
        ),
        st.just("9" * 16),
    )
    dates = st.tuples(
        st.integers(0, 10000), st.integers(0, 13), st.integers(0, 32), st.sampled_from("-/.")
    ).flatmap(
        lambda p: st.sampled_from(
            [f"{p[0]:04d}-{p[1]:02d}-{p[2]:02d}", f"{p[2]:02d}{p[3]}{p[1]:02d}{p[3]}{p[0]:04d}"]
        )
    )
    months = st.tuples(st.integers(0, 10000), st.integers(0, 13), st.sampled_from("-/.")).flatmap(
        lambda p: st.sampled_from([f"{p[0]:04d}-{p[1]:02d}", f"{p[1]:02d}{p[2]}{p[0]:04d}"])
    )
    shaped = {"integer": numbers, "decimal": numbers, "date": dates, "month": months}
    return st.one_of(shaped.get(kind, hostile_text(40)), hostile_text(40), numbers, dates)


def codes_for(q: Questionnaire, question: Question | None) -> st.SearchStrategy[str]:
    """Button codes: the question's own, other lists' codes, numbers and hostile text."""
    own: list[str] = []
    if question is not None:
        own = [c.name for c in q.choices_for(question)] + [str(v) for v in question.scale_values]
    everyone = sorted({c.name for items in q.choices.values() for c in items} | {"0", "99"})
    return st.one_of(
        *([st.sampled_from(own)] * 3 if own else []),
        st.sampled_from(everyone),
        st.sampled_from(EXTREME_INTEGERS).map(str),
        hostile_text(20),
    )


def act(data: st.DataObject, chat: Chat) -> None:
    """One random action of the graduate (or of someone forging button data)."""
    q = chat.q
    names = [question.name for question in q.questions]
    question = q.question(chat.current) if chat.current in q else None
    move = data.draw(
        st.sampled_from(
            ["answer", "answer", "answer", "answer", "navigate", "navigate", "forge", "type"]
        )
    )
    if move == "answer" and question is not None:
        if question.type == QuestionType.SELECT_MULTIPLE:
            if data.draw(st.integers(0, 3)) == 0:
                chat.press(data.draw(st.sampled_from(["sd", "sb", "sn", "sk"])), question.name, "")
            else:
                chat.press("st", question.name, data.draw(codes_for(q, question)))
        elif question.is_select or question.type == QuestionType.SCALE:
            chat.press("sv", question.name, data.draw(codes_for(q, question)))
        else:
            chat.type(data.draw(typed_texts(question.type)))
    elif move == "navigate":
        kind = data.draw(st.sampled_from(["sb", "sk", "sn", "se", "ss"]))
        if kind == "se":
            items = [item.name for item, _ in engine.review_items(q, chat.answers)]
            name = data.draw(st.sampled_from(items or names))
        else:
            name = chat.current
        chat.press(kind, name, "")
    elif move == "forge":
        chat.press(
            data.draw(st.sampled_from(KINDS) | hostile_text(3)),
            data.draw(st.sampled_from(names) | hostile_text(10) | st.just(REVIEW)),
            data.draw(codes_for(q, None)),
        )
    else:
        chat.type(data.draw(hostile_text(60)))
    chat.check()


def valid_answer(data: st.DataObject, chat: Chat, question: Question) -> bool:
    """Answer `question` validly (typed as a graduate would type it); False if no candidate
    passes its constraint (then it must be optional and is skipped)."""
    q = chat.q
    kind = question.type
    codes = [c.name for c in q.choices_for(question)]
    if kind == QuestionType.SELECT_MULTIPLE:
        options = [[code] for code in codes] + [list(pair) for pair in itertools.pairwise(codes)]
        for ticks in rotated(data, options):
            if engine.check_constraint(q, question, [c for c in codes if c in ticks], chat.answers):
                ticked = chat.answers.get(question.name) or []
                assert isinstance(ticked, list)
                for code in ticked:  # untick what is there
                    chat.press("st", question.name, code)
                for code in ticks:
                    chat.press("st", question.name, code)
                return chat.press("sd", question.name, "")
        return False
    if question.is_select or kind == QuestionType.SCALE:
        buttons = codes + [str(value) for value in question.scale_values]
        return any(chat.press("sv", question.name, code) for code in rotated(data, buttons))
    texts = {
        QuestionType.INTEGER: [str(n) for n in range(-10, 200)],
        QuestionType.DECIMAL: [f"{n / 2:g}".replace(".", ",") for n in range(-20, 400)],
        QuestionType.TEXT: ["Kok", "a", "Werk in een restaurant"],
        QuestionType.DATE: ["30-06-2026", "2026-01-15", "1.1.2001"],
        QuestionType.MONTH: ["06-2026", "2026-1", "12/2029"],
    }[kind]
    return any(chat.type(text) for text in rotated(data, texts))


def rotated(data: st.DataObject, items: list[T]) -> list[T]:
    """`items` from a random starting point (far cheaper to draw than a permutation)."""
    start = data.draw(st.integers(0, max(len(items) - 1, 0)))
    return items[start:] + items[:start]


def walk_to_the_review(data: st.DataObject, chat: Chat) -> None:
    """Answer validly from wherever the chat is: the review (or the end) comes, in at most
    one answer per question, and the review sends."""
    for _ in range(len(chat.q.questions) + 1):
        if chat.submitted or chat.current == REVIEW:
            break
        question = chat.q.question(chat.current)
        if not valid_answer(data, chat, question):
            assert not question.required, f"no valid answer accepted for {question.name}"
            assert chat.press("sk", question.name, "")
        chat.check()
    else:
        raise AssertionError(f"no end after {len(chat.q.questions) + 1} answers: {chat.current}")
    if not chat.submitted:
        assert chat.press("ss", "", "")
    chat.check()
    assert chat.submitted


def random_walk(data: st.DataObject, q: Questionnaire) -> None:
    """Valid answers up to a random question (to get deep quickly), then random actions, then
    valid answers to the end."""
    chat = Chat(q)
    chat.check()
    for _ in range(data.draw(st.integers(0, len(q.questions)))):
        if chat.submitted or chat.current == REVIEW:
            break
        question = q.question(chat.current)
        if not valid_answer(data, chat, question):
            chat.press("sk", question.name, "")
        chat.check()
    for _ in range(data.draw(st.integers(0, ACTIONS_PER_WALK))):
        act(data, chat)
        if chat.submitted:
            break
    if not chat.submitted:
        walk_to_the_review(data, chat)


# --- properties -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FILES))
@settings(PROFILE, max_examples=WALK_EXAMPLES)
@given(data=st.data())
def test_random_graduates_on_the_questionnaires(name: str, data: st.DataObject) -> None:
    random_walk(data, questionnaire(name))


@settings(PROFILE, max_examples=GENERATED_WALK_EXAMPLES)
@given(document=questionnaire_documents(), data=st.data())
def test_random_graduates_on_generated_questionnaires(
    document: dict[str, Any], data: st.DataObject
) -> None:
    random_walk(data, parse_questionnaire(dump_yaml(document)))


def leave_after_ticking(data: st.DataObject, q: Questionnaire) -> None:
    """Valid answers up to a random select_multiple question, random ticks there, then every
    way of leaving it, in a random order."""
    multiple = [x.name for x in q.questions if x.type == QuestionType.SELECT_MULTIPLE]
    if not multiple:
        return
    target = data.draw(st.sampled_from(multiple))
    chat = Chat(q)
    for _ in range(len(q.questions)):
        if chat.submitted or chat.current in (REVIEW, target):
            break
        question = q.question(chat.current)
        if not valid_answer(data, chat, question):
            chat.press("sk", question.name, "")
    if chat.current != target:
        return  # not relevant after these answers
    question = q.question(target)
    codes = [c.name for c in q.choices_for(question)]
    for code in data.draw(st.lists(st.sampled_from(codes), min_size=1, max_size=6)):
        chat.press("st", target, code)
        chat.check()
    for kind in data.draw(st.permutations(["sb", "sn", "sd", "sk", "sv", "se", "ss"])):
        chat.press(kind, target, data.draw(st.sampled_from(codes)))
        chat.check()


@pytest.mark.parametrize("name", sorted(FILES))
@settings(PROFILE, max_examples=LEAVE_EXAMPLES)
@given(data=st.data())
def test_ticks_that_break_a_constraint_are_not_left_behind(name: str, data: st.DataObject) -> None:
    leave_after_ticking(data, questionnaire(name))


@settings(PROFILE, max_examples=LEAVE_EXAMPLES)
@given(document=questionnaire_documents(), data=st.data())
def test_ticks_that_break_a_constraint_are_not_left_behind_generated(
    document: dict[str, Any], data: st.DataObject
) -> None:
    leave_after_ticking(data, parse_questionnaire(dump_yaml(document)))


@settings(PROFILE, max_examples=VALID_WALK_EXAMPLES)
@given(document=questionnaire_documents(max_rows=15), data=st.data())
def test_valid_answers_always_reach_the_review(
    document: dict[str, Any], data: st.DataObject
) -> None:
    chat = Chat(parse_questionnaire(dump_yaml(document)))
    walk_to_the_review(data, chat)


def _questions(*kinds: QuestionType) -> list[tuple[str, str]]:
    return [
        (name, question.name)
        for name in sorted(FILES)
        for question in questionnaire(name).questions
        if question.type in kinds
    ]


ANSWER_ERRORS = ("empty", "not_integer", "not_number", "not_date", "not_month", "too_long")
TYPED = _questions(
    QuestionType.INTEGER,
    QuestionType.DECIMAL,
    QuestionType.TEXT,
    QuestionType.DATE,
    QuestionType.MONTH,
)
BUTTONS = _questions(QuestionType.SELECT_ONE, QuestionType.SCALE, QuestionType.SELECT_MULTIPLE)


@settings(PROFILE, max_examples=TYPED_EXAMPLES)
@given(data=st.data())
def test_typed_answers_are_valid_or_refused(data: st.DataObject) -> None:
    file, name = data.draw(st.sampled_from(TYPED))
    q = questionnaire(file)
    question = q.question(name)
    text = data.draw(typed_texts(question.type))
    try:
        value = engine.parse_typed(question, text)
    except AnswerError as error:
        assert error.kind in ANSWER_ERRORS
        return
    assert type_problem(q, question, value) is None, (text, value)


@settings(PROFILE, max_examples=BUTTON_EXAMPLES)
@given(data=st.data())
def test_button_codes_are_valid_or_refused(data: st.DataObject) -> None:
    file, name = data.draw(st.sampled_from(BUTTONS))
    q = questionnaire(file)
    question = q.question(name)
    code = data.draw(codes_for(q, question))
    ticked = data.draw(st.lists(codes_for(q, None), max_size=4))
    if question.type == QuestionType.SELECT_MULTIPLE:
        try:
            chosen = engine.toggle_choice(q, question, ticked, code)
        except AnswerError as error:
            assert error.kind == "unknown_choice" and q.choice(question, code) is None
            return
        assert not chosen or type_problem(q, question, chosen) is None
        assert (code in chosen) != (code in ticked)
        with pytest.raises(ValueError):
            engine.check_choice(q, question, code)  # documented: not a select_one or scale
        return
    try:
        value = engine.check_choice(q, question, code)
    except AnswerError as error:
        assert error.kind == "unknown_choice"
        return
    assert type_problem(q, question, value) is None, (code, value)
    with pytest.raises(ValueError):
        engine.toggle_choice(q, question, ticked, code)


answer_values = st.one_of(
    hostile_text(20),
    extreme_numbers(),
    st.lists(st.text(max_size=8)),
    st.sampled_from(["yes", "no", "employed", "studying", "2026-06-30", "2026-06", "", "40"]),
)


@pytest.mark.parametrize("name", sorted(FILES))
@settings(PROFILE, max_examples=ROUTING_EXAMPLES // len(FILES))
@given(data=st.data())
def test_routing_on_any_stored_answers(name: str, data: st.DataObject) -> None:
    """Whatever the stored answers hold (old versions, hand-edited rows), routing, progress,
    the review and labels never raise, and only ever point at relevant questions."""
    q = questionnaire(name)
    names = [question.name for question in q.questions]
    answers = data.draw(
        st.dictionaries(st.sampled_from(names) | hostile_text(8), answer_values, max_size=12)
    )
    lang = data.draw(st.sampled_from(q.languages))
    kept = engine.relevant_answers(q, answers)
    assert set(kept) <= set(answers)
    question = engine.next_question(q, answers, None)
    seen = 0
    while question is not None:
        assert engine.is_relevant(q, question, answers)
        k, n = engine.progress(q, answers, question.name)
        assert 1 <= k <= n
        engine.answer_label(q, question, answers.get(question.name), lang)
        previous = engine.previous_question(q, answers, question.name)
        assert previous is None or q.index(previous.name) < q.index(question.name)
        question = engine.next_question(q, answers, question.name)
        seen += 1
        assert seen <= len(q.questions)
    missing = engine.first_unanswered(q, answers)
    assert missing is None or (missing.required and missing.name not in kept)
    assert isinstance(engine.is_complete(q, answers), bool)
    for item, value in engine.review_items(q, answers):
        assert item.answerable and value is kept.get(item.name)
        engine.answer_label(q, item, value, lang)


# --- the real bot -----------------------------------------------------------------------------

CHAT_DIR = ROOT / "tests" / "data" / "chat"
SORRY = "Sorry, something went wrong on our side. Please try again in a minute."
MAX_CALLBACK_BYTES = 64


@dataclass
class Deployed:
    harness: Harness
    school: Institution


@pytest.fixture
async def mini_bot(harness: Harness) -> Deployed:
    """The bot with the small all-types questionnaire deployed, and a school."""
    harness.questionnaires = QuestionnaireRegistry(CHAT_DIR)
    harness.plans = parse_plans(
        """
default:
  waves:
    - {name: m2, questionnaire: mini, consent: survey, opens: 2m, closes: 4m,
       reminders: {count: 2, every: 2w}}
""",
        questionnaires={"mini"},
    )
    await harness.restart_bot()
    return Deployed(harness, await harness.school())


def fit_callback(data: str) -> str:
    """Cut to the 64 bytes Telegram carries (at a character boundary)."""
    return data.encode()[:MAX_CALLBACK_BYTES].decode(errors="ignore") or "x"


def forged_survey_data(q: Questionnaire, response_id: int, current: str) -> st.SearchStrategy[str]:
    """Survey button data as a modified client could send it: every kind, for the question on
    screen or any other name, this response or another or an id beyond any column, any code."""
    names = [question.name for question in q.questions]
    ids = st.one_of(
        st.just(response_id),
        st.just(response_id),
        st.integers(0, 36**8 - 1),
        st.sampled_from([0, 2**31 - 1, 2**31, 36**8 - 1]),
    )
    question_names = st.one_of(
        st.just(current), st.just(current), st.sampled_from(names), hostile_text(8)
    )
    return st.builds(
        lambda kind, rid, name, code: fit_callback(f"{kind}:{survey.encode_id(rid)}:{name}:{code}"),
        st.sampled_from(KINDS),
        ids,
        question_names,
        codes_for(q, q.question(current) if current in q else None),
    ) | st.builds(
        lambda kind, rest: fit_callback(f"{kind}:{rest}"), st.sampled_from(KINDS), hostile_text(60)
    )


typed_messages = (
    st.one_of(*(typed_texts(kind) for kind in ("integer", "decimal", "date", "month", "text")))
    .map(lambda text: text[:2000])  # at most 4096 UTF-16 units, as Telegram allows
    .filter(lambda text: bool(text.strip()) and not text.startswith("/"))
)


async def stored(h: Harness, response_id: int) -> tuple[SurveyResponse, dict[str, Any]]:
    async with h.db.session() as session:
        response = await session.get(SurveyResponse, response_id)
        assert response is not None
        rows = await session.exec(select(Answer).where(Answer.response_id == response_id))
        return response, {row.question: row.value for row in rows.all()}


def check_stored(q: Questionnaire, response: SurveyResponse, answers: dict[str, Any]) -> None:
    """What the database holds for a response is always consistent."""
    open_ = response.status == ResponseStatus.OPEN.value
    for name, value in answers.items():
        assert name in q, name
        question = q.question(name)
        ticking = open_ and name == response.current and question.is_multiple
        problem = (
            type_problem(q, question, value)
            if ticking
            else answer_problem(q, question, value, answers)
        )
        assert problem is None, problem
    if not open_:
        assert answers == engine.relevant_answers(q, answers)
        return
    if response.current != REVIEW:
        assert response.current in q, response.current
        question = q.question(response.current)
        assert question.answerable and engine.is_relevant(q, question, answers)


async def press_and_wait(
    h: Harness, user: SandboxUser, message: TranscriptEntry, data: str
) -> None:
    """Press a button with `data` on `message` (any data, as a modified client may send) and
    wait until the bot has handled the press completely."""
    query = await h.sandbox.press_button(h.token, user.id, message, data, forged=True)

    def answered(transcript: list[TranscriptEntry]) -> bool:
        return any(e.kind == "callback_answer" and e.callback_query_id == query for e in transcript)

    await h.sandbox.wait_until(h.token, user.id, answered)
    await settle(h, user)


async def type_and_wait(h: Harness, user: SandboxUser, text: str) -> None:
    """Send `text` and wait until the bot has handled it completely."""
    await h.sandbox.send_text(h.token, user.id, text)
    await settle(h, user)


async def settle(h: Harness, user: SandboxUser) -> None:
    """Wait until the bot has finished with everything the user sent: it handles updates one
    after the other, so once a harmless button press sent last is answered, all is done."""
    message = h.sandbox.bot_messages(h.token, user.id)[-1]
    query = await h.sandbox.press_button(h.token, user.id, message, "sv:0", forged=True)

    def answered(transcript: list[TranscriptEntry]) -> bool:
        return any(e.kind == "callback_answer" and e.callback_query_id == query for e in transcript)

    await h.sandbox.wait_until(h.token, user.id, answered)


@settings(FIXTURE_PROFILE, max_examples=BOT_EXAMPLES)
@given(data=st.data())
async def test_random_graduates_against_the_bot(mini_bot: Deployed, data: st.DataObject) -> None:
    """Buttons of the question, old buttons, forged button data and typed text, through the
    real bot: it never fails, and the database only ever holds valid answers."""
    h = mini_bot.harness
    sandbox, token = h.sandbox, h.token
    q = questionnaire("mini")
    graduate, user = await h.consenting_graduate("en", school=mini_bot.school)
    response = await h.open_survey(graduate, "mini")
    assert response.id is not None
    await h.send(user, "/survey", expect=2)
    for _ in range(data.draw(st.integers(1, BOT_ACTIONS))):
        move = data.draw(st.sampled_from(["button", "button", "old", "forge", "forge", "type"]))
        if move == "type":
            await type_and_wait(h, user, data.draw(typed_messages))
        else:
            messages = sandbox.bot_messages(token, user.id)
            with_buttons = [m for m in messages if m.callback_datas]
            if move == "old" and with_buttons:
                target = data.draw(st.sampled_from(with_buttons))
            elif move == "button" and with_buttons and with_buttons[-1] is messages[-1]:
                target = messages[-1]
            else:
                target, move = messages[-1], "forge"
            if move == "forge":
                now, _answers = await stored(h, response.id)
                callback = data.draw(forged_survey_data(q, response.id, now.current))
            else:
                callback = data.draw(st.sampled_from(target.callback_datas))
            await press_and_wait(h, user, target, callback)
        said = [e.text for e in sandbox.transcript(token, user.id) if e.sender == "bot"]
        assert SORRY not in said, "the bot failed (see the log)"
        check_stored(q, *await stored(h, response.id))


# --- regressions found by these properties --------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # as on PostgreSQL
async def test_regression_survey_buttons(mini_bot: Deployed) -> None:
    """Found by test_random_graduates_against_the_bot: ticks are stored as they are tapped,
    and Back left "Friends" + "None" behind (which Done refuses); edited from the review, the
    answers were then sent with it. Found while writing its forged data (reading on_button):

    - `sv` data on a typed question made check_choice raise ValueError;
    - `sd` data on a question with a number answer made list(40) raise TypeError;
    - `sn` on a select_multiple question went on without Done's constraint check.
    """
    h = mini_bot.harness
    graduate, user = await h.consenting_graduate("en", school=mini_bot.school)
    response = await h.open_survey(graduate, "mini")
    assert response.id is not None
    rid, code = response.id, survey.encode_id(response.id)
    await h.send(user, "/survey", expect=2)
    await h.press(user, "Yes")
    (hours,) = await h.press(user, "Working")
    for data in (f"sv:{code}:HOURS:40", f"sv:{code}:HOURS:yes"):
        await press_and_wait(h, user, hours, data)
    (how,) = await h.send(user, "40")
    (hours,) = await h.press(user, "◀ Back", message=how)
    await press_and_wait(h, user, hours, f"sd:{code}:HOURS")
    stored_response, answers = await stored(h, rid)
    assert (stored_response.current, answers["HOURS"]) == ("HOURS", 40)
    (how,) = await h.press(user, "Next ▶", message=hours)
    for option in ("Friends", "None"):
        await h.press(user, option, expect=0, message=how)
        await h.keyboard_shows(user, how, f"☑️ {option}")
    await press_and_wait(h, user, how, f"sn:{code}:HOW")
    said = [e.text for e in h.sandbox.transcript(h.token, user.id) if e.sender == "bot"]
    assert SORRY not in said
    assert said.count("This question has already been answered.") == 4

    await press_and_wait(h, user, how, button_data(how, "◀ Back"))
    alerts = [e for e in h.sandbox.transcript(h.token, user.id) if e.show_alert]
    assert alerts[-1].text == "“None” cannot be combined with other answers."
    stored_response, answers = await stored(h, rid)
    assert (stored_response.current, answers["HOW"]) == ("HOW", ["friends", "none"])
    await h.press(user, "None", expect=0, message=how)
    await h.keyboard_shows(user, how, "⬜ None")
    (hours,) = await h.press(user, "◀ Back", message=how)
    assert hours.content.startswith("Question 3 · about ")
    stored_response, answers = await stored(h, rid)
    assert (stored_response.current, answers["HOW"]) == ("HOURS", ["friends"])


def test_regression_a_questionnaire_may_start_with_a_note() -> None:
    """Caught by the invariants of test_random_graduates_on_generated_questionnaires (only
    ever at an answerable question): a response started at a first row that is a note, which
    has no buttons, and typing made parse_typed raise ValueError."""
    q = parse_questionnaire(
        """
settings: {form_id: t, version: "1", default_language: en, languages: [en], title: {en: T}}
survey:
  - {type: note, name: hello, label: {en: Hello}}
  - {type: integer, name: age, label: {en: Age}}
"""
    )
    assert survey.first_position(q) == "age"
    chat = Chat(q)
    assert chat.type("20") and chat.current == REVIEW
