"""The questionnaire engine: which question comes next, what an answer means. Pure functions.

Answers map question names to values: ``str`` (a select_one code, text, an ISO date
``2026-06-30`` or month ``2026-06``), ``int``/``float`` (numbers, scale points) or ``list[str]``
(select_multiple codes). A question with no answer is simply absent (``''`` and ``[]`` count as
no answer too).

Relevance is decided in file order on the *effective* answers: an answer to a question that is
not relevant (any more) counts as no answer for the expressions after it, as in ODK. So a stale
answer left behind after the graduate went back and changed their mind never steers routing.

Calculations (``calculate`` rows) are worked out in file order with the answers that count
before them; their values are read by later expressions and texts as ``${name}`` but are not
answers (:func:`values` gives both). A select question with a ``choice_filter`` offers only the
choices for which it holds (:func:`choices_offered`); an answer the filter no longer offers
(the graduate went back and changed the region) counts as no answer, as in ODK.

Later waves: `earlier` is the graduate's previous response to the same questionnaire (its
answers, and ``_month``: when it was completed, ``YYYY-MM``), read by ``${last-saved#name}``.
A relevant question whose ``carry`` holds and that the previous response answered (with an
answer this version still accepts) is *carried*: it is not asked, and the earlier answer is its
answer, whatever this response holds for it. Carried questions are not counted in the progress
estimates; they are answered for completeness, the review and the stored answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from conversations.expressions import AnswerValue, Expression, to_text
from conversations.questionnaire import Calculation, Choice, Question, Questionnaire, QuestionType

__all__ = [
    "MAX_TEXT_LENGTH",
    "AnswerError",
    "AnswerValue",
    "Answers",
    "answer_label",
    "carried",
    "check_choice",
    "check_constraint",
    "choices_offered",
    "constraint_message",
    "first_unanswered",
    "has_answer",
    "is_complete",
    "is_relevant",
    "next_question",
    "parse_typed",
    "previous_question",
    "progress",
    "relevant_answers",
    "remaining_estimate",
    "review_items",
    "toggle_choice",
    "valid_answer",
    "values",
]

Answers = Mapping[str, AnswerValue]

MAX_TEXT_LENGTH = 1000
MAX_NUMBER_DIGITS = 15  # more is not a number anyone types on purpose (and floats lose digits)


class AnswerError(ValueError):
    """A typed answer or a button press that cannot be accepted.

    ``kind`` is one of ``empty``, ``not_integer``, ``not_number``, ``not_date``, ``not_month``,
    ``too_long`` (params ``max`` and ``length``), ``out_of_range`` (params ``min`` and ``max``,
    either may be None) and ``unknown_choice`` (param ``code``).
    """

    def __init__(self, kind: str, **params: object) -> None:
        super().__init__(kind, params)
        self.kind = kind
        self.params = params

    def __str__(self) -> str:
        details = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"{self.kind} ({details})" if details else self.kind


def has_answer(answers: Answers, name: str) -> bool:
    value = answers.get(name)
    return value is not None and value != "" and value != []


# --- relevance ----------------------------------------------------------------------------


def _effective(
    q: Questionnaire, answers: Answers, earlier: Answers | None = None
) -> tuple[dict[str, bool], dict[str, AnswerValue], set[str]]:
    """Relevance of every row, the answers that count and the carried questions, in one pass
    in file order."""
    relevant, kept, carried, _values = _walk(q, answers, earlier)
    return relevant, kept, carried


def _walk(
    q: Questionnaire, answers: Answers, earlier: Answers | None = None
) -> tuple[dict[str, bool], dict[str, AnswerValue], set[str], dict[str, AnswerValue]]:
    """:func:`_effective`, and the values expressions read: the answers that count and the
    calculations."""
    relevant: dict[str, bool] = {}
    kept: dict[str, AnswerValue] = {}
    carried: set[str] = set()
    values: dict[str, AnswerValue] = {}
    calculations = list(q.calculations)
    for index, question in enumerate(q.questions):
        while calculations and calculations[0].position <= index:
            _calculate(calculations.pop(0), values, earlier)
        ok = all(expression.holds(values, earlier=earlier) for expression in question.relevance)
        relevant[question.name] = ok
        if not ok or not question.answerable:
            continue
        value = _carried_value(q, question, values, earlier)
        if value is not None:
            kept[question.name] = values[question.name] = value
            carried.add(question.name)
        elif has_answer(answers, question.name):
            offered = _offered_part(q, question, answers[question.name], values, earlier)
            if offered is not None:
                kept[question.name] = values[question.name] = offered
    for calculation in calculations:
        _calculate(calculation, values, earlier)
    return relevant, kept, carried, values


def _calculate(
    calculation: Calculation, values: dict[str, AnswerValue], earlier: Answers | None
) -> None:
    if all(expression.holds(values, earlier=earlier) for expression in calculation.relevance):
        values[calculation.name] = calculation.calculation.evaluate(values, earlier=earlier)
    else:
        values[calculation.name] = ""


def _offered_part(
    q: Questionnaire,
    question: Question,
    value: AnswerValue,
    values: Answers,
    earlier: Answers | None,
) -> AnswerValue | None:
    """The part of an answer the choice_filter still offers (None: none of it)."""
    if question.choice_filter is None or not question.is_select:
        return value
    codes = {choice.name for choice in choices_offered(q, question, values, earlier)}
    if isinstance(value, list):
        left = [code for code in value if code in codes]
        return left or None
    return value if to_text(value) in codes else None


def choices_offered(
    q: Questionnaire, question: Question, values: Answers, earlier: Answers | None = None
) -> tuple[Choice, ...]:
    """The choices the question offers given `values` (from :func:`values`): its list, less
    those its choice_filter rules out."""
    items = q.choices_for(question)
    expression = question.choice_filter
    if expression is None:
        return items
    return tuple(
        choice
        for choice in items
        if (choice.name == "other" and question.or_other)
        or expression.holds(values, earlier=earlier, choice=choice.filter_values())
    )


def values(
    q: Questionnaire, answers: Answers, earlier: Answers | None = None
) -> dict[str, AnswerValue]:
    """What ``${name}`` reads: the answers that count (carried ones too) and the values of the
    calculations."""
    return _walk(q, answers, earlier)[3]


def _carried_value(
    q: Questionnaire, question: Question, kept: Answers, earlier: Answers | None
) -> AnswerValue | None:
    if question.carry is None or not earlier or not has_answer(earlier, question.name):
        return None
    if not question.carry.holds(kept, earlier=earlier):
        return None
    value = earlier[question.name]
    if not valid_answer(q, question, value, kept, earlier):
        return None  # the earlier version asked it differently: ask again
    return value


def valid_answer(
    q: Questionnaire,
    question: Question,
    value: AnswerValue,
    answers: Answers | None = None,
    earlier: Answers | None = None,
) -> bool:
    """Whether `value` is an answer `question` accepts (its type, choices and constraint)."""
    kind = question.type
    if isinstance(value, bool):
        return False
    if kind == QuestionType.SELECT_ONE:
        ok = isinstance(value, str) and q.choice(question, value) is not None
    elif kind == QuestionType.SELECT_MULTIPLE:
        ok = (
            isinstance(value, list)
            and bool(value)
            and all(isinstance(c, str) and q.choice(question, c) is not None for c in value)
        )
    elif kind == QuestionType.SCALE:
        ok = isinstance(value, int) and value in question.scale_values
    elif kind == QuestionType.INTEGER:
        ok = isinstance(value, int) and _within(question, value)
    elif kind == QuestionType.DECIMAL:
        ok = isinstance(value, int | float) and _within(question, value)
    elif kind == QuestionType.DATE:
        ok = isinstance(value, str) and _ISO_DATE_RE.fullmatch(value) is not None
    elif kind == QuestionType.MONTH:
        ok = isinstance(value, str) and _ISO_MONTH_RE.fullmatch(value) is not None
    elif kind == QuestionType.TEXT:
        ok = isinstance(value, str) and 0 < len(value) <= MAX_TEXT_LENGTH
    else:
        ok = False
    if ok and question.constraint is not None:
        ok = question.constraint.holds(answers or {}, value, earlier)
    return ok


def is_relevant(
    q: Questionnaire, question: Question, answers: Answers, earlier: Answers | None = None
) -> bool:
    """Whether `question` applies: its groups' relevants and its own hold (a carried question
    applies too; it is not asked)."""
    return _effective(q, answers, earlier)[0][question.name]


def carried(
    q: Questionnaire, answers: Answers, earlier: Answers | None = None
) -> dict[str, AnswerValue]:
    """The carried questions with the earlier answers they keep, in file order."""
    _, kept, names = _effective(q, answers, earlier)
    return {name: kept[name] for name in kept if name in names}


def next_question(
    q: Questionnaire, answers: Answers, after: str | None, earlier: Answers | None = None
) -> Question | None:
    """The first relevant row (question or note) after `after` in file order that is asked
    (not carried); None: the start."""
    relevant, _, skipped = _effective(q, answers, earlier)
    start = 0 if after is None else q.index(after) + 1
    for question in q.questions[start:]:
        if relevant[question.name] and question.name not in skipped:
            return question
    return None


def notes_before(
    q: Questionnaire, answers: Answers, index: int, earlier: Answers | None = None
) -> list[Question]:
    """The relevant notes said with the row at `index` (`len(q.questions)`: the end of the
    form), in file order: those after the closest question asked before it (relevant, not
    carried). A note before a question skipped by relevance is said with the next one
    asked, and the notes after the last question before the review, as ODK shows them."""
    relevant, _, skipped = _effective(q, answers, earlier)
    notes: list[Question] = []
    for row in reversed(q.questions[:index]):
        if not relevant[row.name]:
            continue
        if row.answerable:
            if row.name not in skipped:
                break
            continue
        notes.append(row)
    notes.reverse()
    return notes


def previous_question(
    q: Questionnaire, answers: Answers, before: str, earlier: Answers | None = None
) -> Question | None:
    """The closest relevant question (not a note, not carried) before `before`: where Back
    goes."""
    relevant, _, skipped = _effective(q, answers, earlier)
    for question in reversed(q.questions[: q.index(before)]):
        if question.answerable and relevant[question.name] and question.name not in skipped:
            return question
    return None


def first_unanswered(
    q: Questionnaire, answers: Answers, earlier: Answers | None = None
) -> Question | None:
    """The first relevant required question without an answer (None: nothing required left).
    A carried question has its earlier answer."""
    relevant, kept, _ = _effective(q, answers, earlier)
    for question in q.questions:
        if (
            question.answerable
            and question.required
            and relevant[question.name]
            and question.name not in kept
        ):
            return question
    return None


def relevant_answers(
    q: Questionnaire, answers: Answers, earlier: Answers | None = None
) -> dict[str, AnswerValue]:
    """The answers of relevant questions only, carried ones included (what is kept when the
    graduate submits)."""
    return _effective(q, answers, earlier)[1]


def is_complete(q: Questionnaire, answers: Answers, earlier: Answers | None = None) -> bool:
    """Every relevant core question is answered (or carried)."""
    relevant, kept, _ = _effective(q, answers, earlier)
    return all(
        question.name in kept
        for question in q.questions
        if question.core and relevant[question.name]
    )


def review_items(
    q: Questionnaire, answers: Answers, earlier: Answers | None = None
) -> list[tuple[Question, AnswerValue | None]]:
    """The relevant questions in order with their answers (None: not answered); carried
    questions with the earlier answer (`carried` names them)."""
    relevant, kept, _ = _effective(q, answers, earlier)
    return [
        (question, kept.get(question.name))
        for question in q.questions
        if question.answerable and relevant[question.name]
    ]


def progress(
    q: Questionnaire, answers: Answers, current: str, earlier: Answers | None = None
) -> tuple[int, int]:
    """(k, n): `current` is the k-th of the n questions that apply so far.

    A question applies when it is relevant given the answers so far (and is not carried); a
    question whose relevance depends on a question not answered yet (at or after `current`)
    does not count yet. For a note, k is the number of the question that follows it.
    """
    position = q.index(current)
    status: dict[str, bool | None] = {}  # True applies, False does not, None not known yet
    kept: dict[str, AnswerValue] = {}
    before = 0
    total = 0
    calculations = list(q.calculations)

    def is_known(expressions: tuple[Expression, ...]) -> bool:
        for expression in expressions:
            for name in expression.references():
                state = status.get(name)
                pending = (
                    state is True and name not in kept and name in q and q.index(name) >= position
                )
                if state is None or pending:
                    return False
        return True

    for index, question in enumerate(q.questions):
        while calculations and calculations[0].position <= index:
            calculation = calculations.pop(0)
            if is_known((calculation.calculation, *calculation.relevance)):
                _calculate(calculation, kept, earlier)
                status[calculation.name] = True
            else:
                status[calculation.name] = None
        known = is_known(question.relevance)
        applies: bool | None = None
        if known:
            applies = all(
                expression.holds(kept, earlier=earlier) for expression in question.relevance
            )
        if applies and question.answerable:
            value = _carried_value(q, question, kept, earlier)
            if value is not None:
                kept[question.name] = value
                status[question.name] = True
                continue
        status[question.name] = applies
        if applies and question.answerable:
            total += 1
            if index < position:
                before += 1
            if has_answer(answers, question.name):
                kept[question.name] = answers[question.name]
    k = before + 1
    return k, max(total, k)


def _routing_names(q: Questionnaire) -> set[str]:
    """The questions some relevance or carry expression reads: the ones that steer the
    route."""
    names = {
        name
        for question in q.questions
        for expression in (*question.relevance, *((question.carry,) if question.carry else ()))
        for name in expression.references()
    }
    for calculation in reversed(q.calculations):  # a calculation reads only earlier names
        if calculation.name in names:
            for expression in (calculation.calculation, *calculation.relevance):
                names |= expression.references()
    return names


def _candidates(q: Questionnaire, question: Question) -> list[AnswerValue]:
    """The answers worth trying when guessing where an unanswered routing question leads."""
    if question.type == QuestionType.SCALE:
        return list(question.scale_values)
    if question.type == QuestionType.SELECT_ONE:
        return [choice.name for choice in q.choices_for(question)]
    if question.type == QuestionType.SELECT_MULTIPLE:
        codes = [choice.name for choice in q.choices_for(question)]
        return [*([code] for code in codes), codes]
    return []  # typed answers: not guessed (counted as no answer)


def remaining_estimate(
    q: Questionnaire, answers: Answers, current: str, earlier: Answers | None = None
) -> tuple[int, int]:
    """(k, left): `current` is the k-th question asked, and about `left` questions follow it.

    `left` counts the questions after `current` on the longest route the answers so far still
    allow: every unanswered question that steers the route (from `current` on, in file order)
    is given, in turn, the answer that leaves the most questions to ask. Answering a question
    only narrows the routes, so k + left does not grow as the graduate goes forward; it
    shrinks when an answer leads to a shorter branch. (For the tracking questionnaire the
    first question already shows the length of its longest route, instead of "1 of 1".)
    The choice is made question by question, not over every combination: where the best
    answer to one routing question depends on the answer to a later one, the estimate can
    rise, by at most what that later answer opens up.
    """
    position = q.index(current)
    relevant, _kept, skipped = _effective(q, answers, earlier)
    k = 1 + sum(
        1
        for question in q.questions[:position]
        if question.answerable and relevant[question.name] and question.name not in skipped
    )

    def after(assumed: Answers) -> int:
        shown, _, carried_now = _effective(q, assumed, earlier)
        return sum(
            1
            for question in q.questions[position + 1 :]
            if question.answerable and shown[question.name] and question.name not in carried_now
        )

    routing = _routing_names(q)
    assumed: dict[str, AnswerValue] = dict(answers)
    for question in q.questions[position:]:
        if (
            question.name not in routing
            or not question.answerable
            or has_answer(answers, question.name)
            or not _effective(q, assumed, earlier)[0][question.name]
        ):
            continue
        best, best_value = after(assumed), None
        for value in _candidates(q, question):
            count = after({**assumed, question.name: value})
            if count > best:
                best, best_value = count, value
        if best_value is not None:
            assumed[question.name] = best_value
    return k, after(assumed)


# --- answers ------------------------------------------------------------------------------

_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)")
_ISO_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_DAY_FIRST_RE = re.compile(r"([0-9]{1,2})([-/.])([0-9]{1,2})\2([0-9]{4})")
_ISO_MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{1,2})")
_MONTH_FIRST_RE = re.compile(r"([0-9]{1,2})[-/.]([0-9]{4})")


def parse_typed(question: Question, text: str) -> AnswerValue:
    """A typed answer for an integer, decimal, text, date or month question (AnswerError)."""
    value = text.replace("\x00", "").strip()
    if not value:
        raise AnswerError("empty")
    kind = question.type
    if kind == QuestionType.TEXT:
        if len(value) > MAX_TEXT_LENGTH:
            raise AnswerError("too_long", max=MAX_TEXT_LENGTH, length=len(value))
        return value
    if kind == QuestionType.INTEGER:
        if not _INTEGER_RE.fullmatch(value) or len(value.lstrip("+-")) > MAX_NUMBER_DIGITS:
            raise AnswerError("not_integer")
        return _in_bounds(question, int(value))
    if kind == QuestionType.DECIMAL:
        digits = sum(c.isdigit() for c in value)
        if not _DECIMAL_RE.fullmatch(value) or digits > MAX_NUMBER_DIGITS:
            raise AnswerError("not_number")
        return _in_bounds(question, float(value.replace(",", ".")))
    if kind == QuestionType.DATE:
        return _parse_date(value)
    if kind == QuestionType.MONTH:
        return _parse_month(value)
    raise ValueError(f"{question.name} is a {kind} question: it is not answered by typing")


def _within(question: Question, value: float) -> bool:
    low, high = question.bounds
    return (low is None or value >= low) and (high is None or value <= high)


def _in_bounds(question: Question, value: int | float) -> int | float:
    """`value` if the question's min and max allow it (AnswerError out_of_range)."""
    if not _within(question, value):
        low, high = question.bounds
        raise AnswerError("out_of_range", min=low, max=high)
    return value


def _parse_date(value: str) -> str:
    match = _ISO_DATE_RE.fullmatch(value)
    if match:
        year, month, day = (int(part) for part in match.groups())
    else:
        match = _DAY_FIRST_RE.fullmatch(value)
        if not match:
            raise AnswerError("not_date")
        day, month, year = int(match.group(1)), int(match.group(3)), int(match.group(4))
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        raise AnswerError("not_date") from None


def _parse_month(value: str) -> str:
    match = _ISO_MONTH_RE.fullmatch(value)
    if match:
        year, month = int(match.group(1)), int(match.group(2))
    else:
        match = _MONTH_FIRST_RE.fullmatch(value)
        if not match:
            raise AnswerError("not_month")
        month, year = int(match.group(1)), int(match.group(2))
    if not (1 <= month <= 12 and year >= 1):
        raise AnswerError("not_month")
    return f"{year:04d}-{month:02d}"


def check_choice(
    q: Questionnaire,
    question: Question,
    code: str,
    answers: Answers | None = None,
    earlier: Answers | None = None,
) -> AnswerValue:
    """The answer a button press means on a select_one (the code) or scale (an int) question.
    With `answers`, a choice the choice_filter does not offer is refused too."""
    if question.type == QuestionType.SCALE:
        if _INTEGER_RE.fullmatch(code) and len(code) <= 4:
            number = int(code)
            if number in question.scale_values:
                return number
        raise AnswerError("unknown_choice", code=code)
    if question.type == QuestionType.SELECT_ONE:
        if q.choice(question, code) is not None and _offers(q, question, code, answers, earlier):
            return code
        raise AnswerError("unknown_choice", code=code)
    raise ValueError(f"{question.name} is a {question.type} question, not select_one or scale")


def _offers(
    q: Questionnaire,
    question: Question,
    code: str,
    answers: Answers | None,
    earlier: Answers | None,
) -> bool:
    if question.choice_filter is None or answers is None:
        return True
    offered = choices_offered(q, question, values(q, answers, earlier), earlier)
    return any(choice.name == code for choice in offered)


def toggle_choice(
    q: Questionnaire,
    question: Question,
    current: list[str],
    code: str,
    answers: Answers | None = None,
    earlier: Answers | None = None,
) -> list[str]:
    """Tick or untick `code` on a select_multiple question; the result is in display order.

    Codes in `current` that the list does not have are dropped. With `answers`, a choice the
    choice_filter does not offer is refused.
    """
    if question.type != QuestionType.SELECT_MULTIPLE:
        raise ValueError(f"{question.name} is a {question.type} question, not select_multiple")
    if q.choice(question, code) is None or not _offers(q, question, code, answers, earlier):
        raise AnswerError("unknown_choice", code=code)
    chosen = set(current) ^ {code}
    return [choice.name for choice in q.choices_for(question) if choice.name in chosen]


def check_constraint(
    q: Questionnaire,
    question: Question,
    value: AnswerValue,
    answers: Answers,
    earlier: Answers | None = None,
) -> bool:
    """Whether the question's constraint accepts `value` (no constraint: always)."""
    if question.constraint is None:
        return True
    return question.constraint.holds(values(q, answers, earlier), value, earlier)


def constraint_message(question: Question, lang: str) -> str | None:
    return question.constraint_messages.get(lang) or None


def answer_label(q: Questionnaire, question: Question, value: AnswerValue | None, lang: str) -> str:
    """Human text for an answer: choice labels (joined with ", "), numbers and ISO dates as is."""
    if value is None or value == "" or value == []:
        return ""
    if question.is_select:
        if isinstance(value, list):
            codes = value
        elif question.is_multiple:
            codes = to_text(value).split()
        else:
            codes = [to_text(value)]
        labels = []
        for code in codes:
            choice = q.choice(question, code)
            labels.append(choice.label(lang) if choice is not None else code)
        return ", ".join(labels)
    return to_text(value)
