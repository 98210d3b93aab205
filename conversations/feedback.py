"""What graduates said beyond the indicators (issue 18): their comments on the programme and
their plans before graduation set against what they do after it. Plain functions over plain
rows (storage/feedback.py reads them), no database, no Telegram.

- Comments: the answers to the free-text questions `indicators.yaml` names under `comments`
  (the tracking questionnaire's A4, "what should your programme do better"), shown per
  programme without names; staff tag them with themes of their own (`theme_name`).
- Expectations against destinations: for each respondent of a tracking wave, the plan they
  gave in the pre-graduation questionnaire (`expectations`: its question and the plan
  groups) against their destination group now (the 5a groups of `destinations`). A table per
  wave: plan groups down, destination groups across, counts and shares of each plan group,
  with the indicators' suppression (`Grid.shown`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from conversations.indicators import (
    DEFAULT_SPEC_FILE,
    DESTINATIONS,
    IndicatorSpec,
    IndicatorSpecError,
    Rate,
    hidden,
    suppress_parts,
)
from conversations.questionnaire import Question, Questionnaire, QuestionType

PLANS = ("work", "work_and_study", "study", "not_sure", "other")
"""Plan groups before graduation, in display order (indicators.yaml `expectations.plans`)."""

NO_PLAN = "none"
"""Respondents without a plan on record (no completed pre-graduation response, or a plan code
in no group): a row of its own, so that the table adds up to all respondents."""

PLAN_ROWS = (*PLANS, NO_PLAN)

THEME_LENGTH = 60
"""The longest theme name (characters)."""


# ---------------------------------------------------------------- the spec


@dataclass(frozen=True)
class FeedbackSpec:
    """The comment questions and the plan question of one tracking questionnaire."""

    form_id: str
    comments: tuple[str, ...] = ()
    plan_form: str | None = None
    """The questionnaire that asks the plan (the pre-graduation one); None: no table."""
    plan_question: str | None = None
    plans: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Plan group (PLANS) -> the plan question's choice codes."""

    def plan_group(self, code: str | None) -> str:
        for group, codes in self.plans.items():
            if code in codes:
                return group
        return NO_PLAN


def parse_feedback(text: str, source: str = "indicators.yaml") -> dict[str, FeedbackSpec]:
    """The `comments` and `expectations` of each questionnaire in indicators.yaml (both
    optional)."""
    data = yaml.safe_load(text) or {}
    specs: dict[str, FeedbackSpec] = {}
    if not isinstance(data, dict):
        raise IndicatorSpecError(f"{source}: a mapping of questionnaire ids is expected")
    for form_id, raw in data.items():
        where = f"{source}: {form_id}"
        if not isinstance(raw, dict):
            continue
        comments = raw.get("comments") or []
        if not isinstance(comments, list) or not all(isinstance(c, str) for c in comments):
            raise IndicatorSpecError(f"{where}: comments must be a list of question names")
        plan_form = plan_question = None
        plans: dict[str, frozenset[str]] = {}
        expectations: Any = raw.get("expectations")
        if expectations is not None:
            if not isinstance(expectations, dict) or not isinstance(
                expectations.get("plans"), dict
            ):
                raise IndicatorSpecError(
                    f"{where}: expectations must name questionnaire, question and plans"
                )
            unknown = set(map(str, expectations["plans"])) - set(PLANS)
            if unknown:
                raise IndicatorSpecError(
                    f"{where}: unknown plan group {sorted(unknown)[0]!r} "
                    f"(known: {', '.join(PLANS)})"
                )
            for group, codes in expectations["plans"].items():
                if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                    raise IndicatorSpecError(f"{where}: expectations.plans.{group}: choice codes")
                plans[str(group)] = frozenset(codes)
            try:
                plan_form = str(expectations["questionnaire"])
                plan_question = str(expectations["question"])
            except KeyError as exc:
                raise IndicatorSpecError(f"{where}: expectations.{exc.args[0]} is missing") from exc
        specs[str(form_id)] = FeedbackSpec(
            str(form_id), tuple(comments), plan_form, plan_question, plans
        )
    return specs


@cache
def default_feedback() -> dict[str, FeedbackSpec]:
    """The deployed indicators.yaml's comments and expectations, read once per process."""
    return parse_feedback(DEFAULT_SPEC_FILE.read_text(encoding="utf-8"), DEFAULT_SPEC_FILE.name)


def comment_questions(questionnaire: Questionnaire) -> list[Question]:
    """The free-text questions of `questionnaire` whose answers are comments on the programme
    (`comments:` of the deployed indicators.yaml), in the questionnaire's order."""
    spec = default_feedback().get(questionnaire.form_id)
    names = set(spec.comments) if spec else set()
    return [q for q in questionnaire.questions if q.name in names and q.type == QuestionType.TEXT]


def load_feedback(path: Path) -> dict[str, FeedbackSpec]:
    return parse_feedback(path.read_text(encoding="utf-8"), path.name)


def check_comments(spec: FeedbackSpec, questionnaire: Questionnaire) -> list[str]:
    """Problems of `spec`'s comment questions against its questionnaire (empty: they fit)."""
    problems: list[str] = []
    for name in spec.comments:
        if name not in questionnaire:
            problems.append(f"{spec.form_id}: comments: no question {name}")
        elif questionnaire.question(name).type != QuestionType.TEXT:
            problems.append(f"{spec.form_id}: comments: {name} is not a text question")
    return problems


def check_plans(spec: FeedbackSpec, plan_questionnaire: Questionnaire) -> list[str]:
    """Problems of `spec`'s plan question and groups against the questionnaire that asks
    it (empty: they fit)."""
    if spec.plan_question is None:
        return []
    where = f"{spec.form_id}: expectations"
    if spec.plan_question not in plan_questionnaire:
        return [f"{where}: no question {spec.plan_question}"]
    question = plan_questionnaire.question(spec.plan_question)
    if question.type != QuestionType.SELECT_ONE:
        return [f"{where}: {question.name} is not select_one"]
    known = {c.name for c in plan_questionnaire.choices_for(question)}
    grouped = frozenset().union(*spec.plans.values()) if spec.plans else frozenset()
    return [
        f"{where}: {question.name} has no choice {code}" for code in sorted(grouped - known)
    ] + [
        f"{where}: {question.name} has choice {code} in no plan group"
        for code in sorted(known - grouped)
    ]


def check_feedback(
    spec: FeedbackSpec, questionnaire: Questionnaire, plan_questionnaire: Questionnaire | None
) -> list[str]:
    """Problems of `spec` against its questionnaire and the plan's (empty: it fits)."""
    problems = check_comments(spec, questionnaire)
    if spec.plan_question is not None and plan_questionnaire is None:
        return [*problems, f"{spec.form_id}: expectations: no questionnaire {spec.plan_form}"]
    if plan_questionnaire is not None:
        problems += check_plans(spec, plan_questionnaire)
    return problems


# ---------------------------------------------------------------- themes


def theme_name(text: object) -> str | None:
    """A theme as staff typed it, tidied (spaces collapsed, trimmed), or None when it is
    empty, longer than THEME_LENGTH or holds control characters."""
    if not isinstance(text, str):
        return None
    name = " ".join(text.split())
    if not name or len(name) > THEME_LENGTH:
        return None
    if any(unicodedata.category(c).startswith("C") for c in name):
        return None
    return name


def theme_key(name: str) -> str:
    """The theme compared without case and Unicode form ("Teachers" = "teachers")."""
    return unicodedata.normalize("NFKC", name).casefold()[:THEME_LENGTH]


# ---------------------------------------------------------------- expectations


@dataclass(frozen=True)
class PlanRow:
    """Completed responses of one tracking wave with the same destination answer and plan."""

    wave: str | None
    activity: str | None
    plan: str | None
    """The plan question's answer in the graduate's latest completed pre-graduation response
    (None: none)."""
    count: int
    programme_id: int = 0


TOTAL = "total"
"""The margin's key: all plan groups (a row) or all destinations (a column)."""


@dataclass
class Grid:
    """One wave's respondents by plan group (PLAN_ROWS) and destination (DESTINATIONS)."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, plan: str, destination: str, n: int) -> None:
        self.counts[(plan, destination)] = self.counts.get((plan, destination), 0) + n

    def cell(self, plan: str, destination: str) -> int:
        """A count; TOTAL for either gives the margin."""
        plans = PLAN_ROWS if plan == TOTAL else (plan,)
        destinations = DESTINATIONS if destination == TOTAL else (destination,)
        return sum(self.counts.get((p, d), 0) for p in plans for d in destinations)

    @property
    def respondents(self) -> int:
        return self.cell(TOTAL, TOTAL)

    def shown(self) -> dict[tuple[str, str], int | None]:
        """Every cell and margin (TOTAL), None where hidden.

        The totals row (all respondents per destination) holds the 5a counts, which the
        programme's indicators show: it is hidden exactly as 5a is (`suppress_parts`) and
        nothing else of it can be. Elsewhere counts of 1 to 4 are hidden; then each row and
        each column, with its total, is one sum, and in a sum where exactly one number is
        hidden subtraction would give it away, so one more is hidden: the smallest other
        count above 0 that may be hidden (a plan group's total too), or, with none, a 0 of
        that column in a plan group that has respondents. Repeated until no sum has a
        single hidden number."""
        columns = (*DESTINATIONS, TOTAL)
        value = {(p, d): self.cell(p, d) for p in (*PLAN_ROWS, TOTAL) for d in columns}
        public = {(TOTAL, d) for d in columns}
        destinations = suppress_parts([value[(TOTAL, d)] for d in DESTINATIONS])
        gone = {(TOTAL, d) for d, n in zip(DESTINATIONS, destinations, strict=True) if n is None}
        gone |= {key for key, n in value.items() if hidden(n)}
        lines: list[list[tuple[str, str]]] = [[(p, d) for d in columns] for p in PLAN_ROWS]
        lines += [[(p, d) for p in (*PLAN_ROWS, TOTAL)] for d in columns]
        changed = True
        while changed:
            changed = False
            for line in lines:
                if sum(1 for k in line if k in gone) != 1:
                    continue
                free = [k for k in line if k not in gone and k not in public]
                above = [(value[k], k) for k in free if value[k] > 0]
                zeros = [k for k in free if value[k] == 0 and value[(k[0], TOTAL)] > 0]
                if above or zeros:
                    gone.add(min(above)[1] if above else zeros[0])
                    changed = True
        return {key: (None if key in gone else n) for key, n in value.items()}

    def shares(self) -> dict[tuple[str, str], Rate | None]:
        """Each cell over its plan group's total (what those who planned to work do now);
        the total column over all respondents. None where the count or its base is hidden."""
        shown = self.shown()
        result: dict[tuple[str, str], Rate | None] = {}
        for p in (*PLAN_ROWS, TOTAL):
            for d in (*DESTINATIONS, TOTAL):
                base = (TOTAL, TOTAL) if d == TOTAL else (p, TOTAL)
                if shown[(p, d)] is None or shown[base] is None:
                    result[(p, d)] = None
                else:
                    result[(p, d)] = Rate(self.cell(p, d), self.cell(*base))
        return result


def expectation_grids(
    rows: Iterable[PlanRow], spec: FeedbackSpec, indicators: IndicatorSpec
) -> dict[str | None, Grid]:
    """A grid per wave; a response whose activity is in no destination group is left out
    (as in 5a)."""
    grids: dict[str | None, Grid] = {}
    for row in rows:
        destination = indicators.destination(row.activity)
        if destination is None:
            continue
        grids.setdefault(row.wave, Grid()).add(spec.plan_group(row.plan), destination, row.count)
    return grids


def programme_grids(
    rows: Iterable[PlanRow], spec: FeedbackSpec, indicators: IndicatorSpec
) -> dict[tuple[int, str | None], Grid]:
    """A grid per programme and wave."""
    by_programme: dict[int, list[PlanRow]] = {}
    for row in rows:
        by_programme.setdefault(row.programme_id, []).append(row)
    return {
        (programme, wave): grid
        for programme, mine in by_programme.items()
        for wave, grid in expectation_grids(mine, spec, indicators).items()
    }


def waves_with(grids: Mapping[str | None, Grid], order: Sequence[str]) -> list[str]:
    """The waves of `order` that have respondents."""
    return [w for w in order if w in grids and grids[w].respondents]
