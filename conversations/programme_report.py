"""The maths of the programme report (issue 18): the distribution of every closed question
(shares of choices, medians of numbers and scales) and the changes between cohorts, with the
suppression of conversations/indicators.py. Plain functions over the rows of
`storage/programme_report.py`: no database, no Telegram, no web.

- A closed question is a select_one, select_multiple, scale, integer or decimal question.
- Shares are of the completed responses that answered the question. For a select_one
  question the counts add up to those who answered (shown), so a count of 1 to 4 is hidden
  and, where exactly one would be, the next smallest too (as the 5a distribution); for a
  select_multiple question each choice is a count of its own (primary suppression only).
- Sums of codes are published elsewhere too: the EQAVET indicators count groups of the
  answers to their questions (5a's destinations and 5b's employed of the activity question,
  6a's "related" answers, 6b1's satisfied points …: `indicator_groups`). Within each such
  group, and its complement, a single hidden code could be had by subtraction, so one more
  is hidden there too, until no group has exactly one hidden code.
- A median (numbers and scales) is shown when at least five answered.
- A change between two figures (a later cohort against the one before) is shown only when
  both figures are shown and the change amounts to at least five people of the later group
  (|difference of the shares| x its denominator >= 5): a change that rests on fewer than
  five people is not shown as a change.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from conversations.feedback import comment_questions
from conversations.indicators import (
    SUPPRESS_BELOW,
    IndicatorSpec,
    Rate,
    hidden,
    suppress,
    suppress_parts,
)
from conversations.questionnaire import Question, Questionnaire, QuestionType
from storage.programme_report import ValueRow

CHOICE_TYPES = frozenset({QuestionType.SELECT_ONE, QuestionType.SELECT_MULTIPLE})
NUMBER_TYPES = frozenset({QuestionType.SCALE, QuestionType.INTEGER, QuestionType.DECIMAL})
CLOSED_TYPES = CHOICE_TYPES | NUMBER_TYPES


def closed_questions(questionnaire: Questionnaire) -> list[Question]:
    """The questions whose answers the report counts, in the questionnaire's order: every
    closed question but the opening consent question (every respondent said yes to it)."""
    first = next((q.name for q in questionnaire.questions if q.answerable), None)
    return [q for q in questionnaire.questions if q.type in CLOSED_TYPES and q.name != first]


def text_questions(questionnaire: Questionnaire) -> list[Question]:
    """The questions whose answers are comments on the programme (the report's comments):
    the free-text questions `comments:` of conversations/indicators.yaml names for this
    questionnaire (A4 "what should your programme do better"; a job title is no comment),
    as the comments page and the actions take them."""
    return comment_questions(questionnaire)


@dataclass
class Distribution:
    """The answers of one group of completed responses to one closed question."""

    question: Question
    codes: tuple[str, ...] = ()
    """The choice codes in display order (choice questions; scales: their points)."""
    answered: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    numbers: dict[float, int] = field(default_factory=dict)
    groups: tuple[frozenset[str], ...] = ()
    """Groups of codes whose sums are published elsewhere (`indicator_groups`)."""

    @property
    def multiple(self) -> bool:
        return self.question.type == QuestionType.SELECT_MULTIPLE

    @property
    def is_choice(self) -> bool:
        return self.question.type in CHOICE_TYPES

    def add(self, value: object, n: int) -> None:
        if self.is_choice:
            codes = value if isinstance(value, list) else [value]
            self.answered += n
            for code in codes:
                key = str(code)
                self.counts[key] = self.counts.get(key, 0) + n
            return
        number = _number(value)
        if number is None:
            return
        self.answered += n
        self.numbers[number] = self.numbers.get(number, 0) + n
        if self.question.type == QuestionType.SCALE:
            key = str(int(number)) if number.is_integer() else str(number)
            self.counts[key] = self.counts.get(key, 0) + n

    def shown_answered(self) -> int | None:
        return suppress(self.answered)

    def shown_counts(self) -> dict[str, int | None]:
        """Each code's count as shown: small counts hidden, and (single choice and scales,
        whose counts add up to those who answered) one more where only one would be."""
        codes = list(self.codes) + [c for c in self.counts if c not in self.codes]
        raw = [self.counts.get(c, 0) for c in codes]
        if self.multiple:
            return dict(zip(codes, [suppress(n) for n in raw], strict=True))
        shown = dict(zip(codes, suppress_parts(raw), strict=True))
        return suppress_within(self.counts, shown, self.groups)

    def shares(self) -> dict[str, Rate | None]:
        """Each code's share of those who answered; None where its count is hidden."""
        shown = self.shown_counts()
        return {
            code: (Rate(self.counts.get(code, 0), self.answered) if n is not None else None)
            for code, n in shown.items()
        }

    def median(self) -> float | None:
        """The median answer (numbers, scales), None when fewer than five answered."""
        total = sum(self.numbers.values())
        if total < SUPPRESS_BELOW:
            return None
        values: list[float] = []
        for number in sorted(self.numbers):
            values.extend([number] * self.numbers[number])
        return float(statistics.median(values))


def suppress_within(
    counts: dict[str, int], shown: dict[str, int | None], groups: Iterable[frozenset[str]]
) -> dict[str, int | None]:
    """`shown` with one more code hidden in every group (and the group's complement among
    `shown`'s codes) that would otherwise have exactly one hidden code (of more than 0
    people), the smallest other one, until none has."""
    result = dict(shown)
    everything = frozenset(result)
    parts = [g & everything for g in groups]
    parts += [everything - g for g in parts]
    changed = True
    while changed:
        changed = False
        for part in parts:
            members = [c for c in result if c in part and counts.get(c, 0) > 0]
            hidden_here = [c for c in members if result[c] is None]
            visible = [c for c in members if result[c] is not None]
            if len(hidden_here) == 1 and visible:
                smallest = min(visible, key=lambda c: (counts.get(c, 0), c))
                result[smallest] = None
                changed = True
    return result


def indicator_groups(
    spec: IndicatorSpec | None, question: str, declared_isco: frozenset[str] = frozenset()
) -> tuple[frozenset[str], ...]:
    """The groups of `question`'s codes whose sums the indicators of `spec` publish: the 5a
    destinations and 5b's employed (activity), 6a's related answers, the use of skills,
    6b1's satisfied points, and the occupations in the programme's declared ISCO-08 major
    groups (`declared_isco`)."""
    if spec is None:
        return ()
    if question == spec.activity:
        return (*spec.destinations.values(), spec.employed)
    if question == spec.related:
        return (spec.related_yes,)
    if question == spec.use:
        return (spec.use_yes,)
    if question == spec.satisfied:
        return (spec.satisfied_yes,)
    if question == spec.occupation:
        mine = frozenset(c for c, g in spec.occupation_groups.items() if g in declared_isco)
        return (mine,)
    return ()


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def distributions(
    rows: Iterable[ValueRow],
    questionnaire: Questionnaire,
    groups: Callable[[str], tuple[frozenset[str], ...]] | None = None,
) -> dict[str | None, dict[str, Distribution]]:
    """Per wave, the distribution of each closed question of `questionnaire` (in its
    order) from the counted answers."""
    questions = closed_questions(questionnaire)
    known = {q.name: q for q in questions}
    result: dict[str | None, dict[str, Distribution]] = {}
    for row in rows:
        question = known.get(row.question)
        if question is None:
            continue
        per_wave = result.get(row.wave)
        if per_wave is None:
            per_wave = result[row.wave] = {
                q.name: _empty(q, questionnaire, groups) for q in questions
            }
        per_wave[row.question].add(row.value, row.count)
    return result


def _empty(
    question: Question,
    questionnaire: Questionnaire,
    groups: Callable[[str], tuple[frozenset[str], ...]] | None = None,
) -> Distribution:
    if question.type == QuestionType.SCALE:
        codes = tuple(str(v) for v in question.scale_values)
    else:
        codes = tuple(c.name for c in questionnaire.choices_for(question))
    return Distribution(question, codes, groups=groups(question.name) if groups else ())


def empty_distribution(question: Question, questionnaire: Questionnaire) -> Distribution:
    """A question nobody in a group answered."""
    return _empty(question, questionnaire)


def change(before: Rate | None, after: Rate | None) -> float | None:
    """`after` minus `before` in percentage points, or None when it is not shown as a change:
    either figure is hidden or undefined, or the change amounts to fewer than five people of
    the later group."""
    if before is None or after is None or before.value is None or after.value is None:
        return None
    if hidden(before.denominator) or hidden(after.denominator):
        return None
    difference = after.value - before.value
    if round(abs(difference) * after.denominator, 9) < SUPPRESS_BELOW:
        return None
    return difference * 100
