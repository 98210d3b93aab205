"""Response counts, rates and the EQAVET indicators 5a, 5b, 6a and 6b1, with small-cell
suppression: plain functions over the rows of `storage/stats.py`, no database, no Telegram.

Definitions (docs/indicators.md sets each beside EQAVET's wording; decided where it is silent):

- Respondents of a wave: its completed responses (routing core answered). Partial and declined
  responses count in the response rates, not in the indicators.
- Completers of a wave: the roster's graduates (programme completers) whose plan has the wave
  (and, with a date, for whom it has opened). Every indicator is shown over respondents and
  over completers, with the response rate (respondents / completers) beside it. EQAVET
  defines the indicators over completers; a survey estimates them over the respondents,
  reported with the response rate (`EQAVET_DENOMINATOR`).
- 5a: respondents per destination group (conversations/indicators.yaml maps the activity
  question's codes to the groups) over respondents. Working and studying is its own group,
  counted as employed (5b) and in education.
- 5b: employed respondents (employed, self-employed, working and studying) over respondents.
- 6a: employed respondents whose work is completely or partly related to the training, over
  the employed respondents who answered that question ("perceived related"); and, beside it,
  "working in the occupation trained for": employed respondents whose ISCO-08 major group
  (the occupation question) is one their programme declares (Programme.isco_groups), over
  the employed respondents who answered it and whose programme declares groups.
- 6b1: respondents satisfied (4 or 5 of 5) with the skills and competences they acquired,
  over the respondents who answered that question (everyone who answered the core is asked).
- Use of skills (not an EQAVET indicator; 6b1 before it was satisfaction): employed
  respondents who use what they learnt a lot or a little, over the employed respondents who
  answered that question.
- Each indicator is reported from one wave of the plan, its designated point after
  completion (indicators.yaml `reported_at`: 5b "one year after", m12); the per-wave tables
  show every wave.
- Breakdowns: programme, EQF level, gender, age band, pathway (school-based / work-based)
  and IVET / CVET of the programme, and (for staff who see several schools) school and
  country; all from the roster and the programmes, each group suppressed as below.
- Suppression: a count of 1 to 4 people is never shown, nor a rate whose numerator or
  denominator is one; 0 is shown. In the 5a distribution (shares of respondents that add up
  to 100 %), where exactly one share is hidden the smallest other one is hidden too, so that
  no subtraction reveals it. The same holds for the reach categories (shares of the
  graduates that add up to 100 %). Counts of answering behaviour (the funnel, completed
  responses per channel) get the primary suppression only.
- Reach: graduates (not erased) per category of `storage.stats.REACH`, shares of them all.
- Response rate per channel: completed responses begun on the channel over the graduates
  invited to the wave (on any channel), so that the channels' rates add up to the wave's
  completion rate over the invited.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml

from conversations.programme_kinds import ISCO_MAJOR_GROUPS, isco_groups_of
from conversations.questionnaire import Questionnaire, QuestionType
from storage.stats import (
    REACH,
    ChannelRow,
    CompleterRow,
    DayRow,
    IndicatorQuestions,
    OutcomeRow,
    PopulationRow,
    ReachRow,
    WaveRow,
)

SUPPRESS_BELOW = 5
"""Cells of fewer people than this are suppressed (0 is shown)."""

DESTINATIONS = ("employed", "working_and_studying", "studying", "looking_for_work", "other")
"""EQAVET 5a destination groups, in display order."""

INDICATORS = ("5a", "5b", "6a", "6b1")
"""The EQAVET indicators, each reported from the wave `IndicatorSpec.reported_at` names."""

DENOMINATORS = ("respondents", "completers")
"""What an indicator's share is taken of: the completers who answered, or all completers."""

EQAVET_DENOMINATOR = "respondents"
"""The share EQAVET reporting uses from a survey: over the completers who answered (the
indicators are defined over completers; a tracking survey estimates them from those who
answered and reports the response rate beside them)."""

BREAKDOWNS = (
    "total",
    "programme",
    "eqf",
    "gender",
    "age_band",
    "pathway",
    "vet_kind",
    "school",
    "country",
)
SCHOOL_BREAKDOWNS = ("school", "country")
"""Breakdowns that only mean something to staff who see several schools (admins)."""

RATES = ("5b", "6a", "6a_occupation", "6b1", "use")
"""The keys of `Indicators.rates`, in display order: 6a_occupation is 6a's "working in the
occupation trained for", beside 6a's "perceived related"."""

DEFAULT_SPEC_FILE = Path(__file__).with_name("indicators.yaml")

K = TypeVar("K", bound=Hashable)


# ---------------------------------------------------------------- suppression


def hidden(n: int) -> bool:
    return 0 < n < SUPPRESS_BELOW


def suppress(n: int) -> int | None:
    """`n`, or None when it is a small cell."""
    return None if hidden(n) else n


def suppress_parts(parts: Sequence[int]) -> list[int | None]:
    """Suppress the small parts of a total, and one more when only one would be hidden."""
    shown: list[int | None] = [suppress(n) for n in parts]
    if sum(1 for value in shown if value is None) == 1:
        others = [(n, i) for i, n in enumerate(parts) if shown[i] is not None and n > 0]
        if others:
            shown[min(others)[1]] = None
    return shown


@dataclass(frozen=True)
class Rate:
    """numerator / denominator; `value` is None when suppressed or undefined (0 / 0)."""

    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        if self.denominator == 0 or hidden(self.numerator) or hidden(self.denominator):
            return None
        return self.numerator / self.denominator

    @property
    def suppressed(self) -> bool:
        return self.denominator > 0 and self.value is None


# ---------------------------------------------------------------- response counts


@dataclass
class Funnel:
    """Counts of graduates through one wave (or several added up)."""

    graduates: int = 0
    reachable: int = 0
    invited: int = 0
    started: int = 0
    completed: int = 0
    declined: int = 0

    @property
    def partial(self) -> int:
        return self.started - self.completed - self.declined

    def add(self, other: Funnel) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def rate(self) -> Rate:
        """Response rate over all graduates."""
        return Rate(self.completed, self.graduates)

    @property
    def rate_reachable(self) -> Rate:
        """Response rate over the graduates the bot can reach."""
        return Rate(self.completed, self.reachable)

    def shown(self) -> dict[str, int | None]:
        """Every count, small ones suppressed. These are counts of answering behaviour, not of
        outcomes: they get the primary suppression only (hiding the completed count whenever
        one partial response is hidden would hide the number that matters most)."""
        return {
            "graduates": suppress(self.graduates),
            "reachable": suppress(self.reachable),
            "invited": suppress(self.invited),
            "started": suppress(self.started),
            "completed": suppress(self.completed),
            "partial": suppress(self.partial),
            "declined": suppress(self.declined),
        }


@dataclass
class Reach:
    """Graduates (not erased) per reach category (`storage.stats.REACH`)."""

    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def shown(self) -> dict[str, int | None]:
        """Each category's count; small ones hidden, and one more where only one would be
        (the shares add up to 100 %: subtraction would reveal it)."""
        parts = suppress_parts([self.counts.get(key, 0) for key in REACH])
        return dict(zip(REACH, parts, strict=True))

    def shares(self) -> dict[str, Rate | None]:
        """Each category over all: None where the count is hidden."""
        shown = self.shown()
        return {
            key: Rate(self.counts.get(key, 0), self.total) if shown[key] is not None else None
            for key in REACH
        }


def reach(rows: Iterable[ReachRow], where: Callable[[ReachRow], bool] | None = None) -> Reach:
    """The reach of the rows (those `where` keeps)."""
    result = Reach()
    for row in rows:
        if where is None or where(row):
            result.counts[row.reach] = result.counts.get(row.reach, 0) + row.count
    return result


@dataclass
class ChannelCounts:
    """A wave's invited graduates and its completed responses per channel (CHANNELS)."""

    invited: int = 0
    completed: dict[str, int] = field(default_factory=dict)

    def shown(self, channel: str) -> int | None:
        return suppress(self.completed.get(channel, 0))

    def rate(self, channel: str) -> Rate:
        """Completed on `channel` over all invited."""
        return Rate(self.completed.get(channel, 0), self.invited)


def channel_counts(
    funnels: Mapping[K, Funnel],
    rows: Iterable[ChannelRow],
    key: Callable[[str | None, int, int, int], K],
) -> dict[K, ChannelCounts]:
    """Completed responses per channel grouped by `key(wave, institution, programme,
    cohort)`, beside the invited of `funnels` (grouped by the same key)."""
    result: dict[K, ChannelCounts] = {k: ChannelCounts(f.invited) for k, f in funnels.items()}
    for row in rows:
        k = key(row.wave, row.institution_id, row.programme_id, row.cohort)
        counts = result.setdefault(k, ChannelCounts())
        counts.completed[row.channel] = counts.completed.get(row.channel, 0) + row.completed
    return result


WavesOf = Callable[[int, int], Sequence[str]]
"""The wave names of the plan of (institution id, programme id)."""


def funnels(
    population: Iterable[PopulationRow],
    waves: Iterable[WaveRow],
    waves_of: WavesOf,
    key: Callable[[str | None, int, int, int], K],
    opened: Callable[[str, PopulationRow], bool] | None = None,
) -> dict[K, Funnel]:
    """Funnel counts grouped by `key(wave, institution, programme, cohort)`. A wave's graduates
    and reachable graduates are those whose plan has the wave (and, with `opened`, for whom
    the wave has opened); responses without a wave (a survey taken outside a wave) have no
    population."""
    result: dict[K, Funnel] = defaultdict(Funnel)
    for pop in population:
        for wave in waves_of(pop.institution_id, pop.programme_id):
            if opened is not None and not opened(wave, pop):
                continue
            k = key(wave, pop.institution_id, pop.programme_id, pop.cohort)
            result[k].add(Funnel(graduates=pop.graduates, reachable=pop.reachable))
    for row in waves:
        k = key(row.wave, row.institution_id, row.programme_id, row.cohort)
        result[k].add(
            Funnel(
                invited=row.invited,
                started=row.started,
                completed=row.completed,
                declined=row.declined,
            )
        )
    return dict(result)


def weekly(days: Iterable[DayRow], wave: str | None = None) -> list[tuple[date, int | None]]:
    """Completed responses per ISO week (Monday), gaps filled with 0, small weeks suppressed."""
    counts: dict[date, int] = defaultdict(int)
    for row in days:
        if wave is None or row.wave == wave:
            counts[row.day - timedelta(days=row.day.weekday())] += row.completed
    if not counts:
        return []
    week, last = min(counts), max(counts)
    series: list[tuple[date, int | None]] = []
    while week <= last:
        series.append((week, suppress(counts.get(week, 0))))
        week += timedelta(days=7)
    return series


# ---------------------------------------------------------------- drop-off


@dataclass(frozen=True)
class DropOff:
    question: str
    answered: int
    stopped: int

    @property
    def shown(self) -> int:
        return self.answered + self.stopped

    @property
    def rate(self) -> Rate:
        return Rate(self.stopped, self.shown)


def drop_off(rows: Iterable[Any], questionnaire: Questionnaire) -> list[DropOff]:
    """Per answerable question of `questionnaire`, in its order: those who answered it and
    those who stopped at it without answering. Shown = answered + stopped (an optional question
    that was skipped is not stored, so it does not count as shown)."""
    counts: dict[str, tuple[int, int]] = {}
    for row in rows:
        if row.form_id == questionnaire.form_id:
            answered, stopped = counts.get(row.question, (0, 0))
            counts[row.question] = (answered + row.answered, stopped + row.stopped)
    return [
        DropOff(q.name, *counts.get(q.name, (0, 0)))
        for q in questionnaire.questions
        if q.answerable and q.name in counts
    ]


# ---------------------------------------------------------------- EQAVET indicators


@dataclass(frozen=True)
class IndicatorSpec:
    """Which answers count for the indicators of one questionnaire (indicators.yaml)."""

    form_id: str
    activity: str
    destinations: Mapping[str, frozenset[str]]
    employed: frozenset[str]
    related: str
    related_yes: frozenset[str]
    use: str
    use_yes: frozenset[str]
    satisfied: str
    satisfied_yes: frozenset[str]
    reported_at: Mapping[str, str] = field(default_factory=dict)
    """Indicator (INDICATORS) -> the wave it is reported from."""
    occupation: str | None = None
    """The ISCO-08 major group question (6a: in the occupation trained for); None: none."""
    occupation_groups: Mapping[str, str] = field(default_factory=dict)
    """Choice code of `occupation` -> its ISCO-08 major group (a digit, as text)."""

    @property
    def questions(self) -> IndicatorQuestions:
        return IndicatorQuestions(
            self.form_id, self.activity, self.related, self.use, self.satisfied, self.occupation
        )

    def wave_of(self, indicator: str) -> str | None:
        """The wave `indicator` is reported from (None: not designated)."""
        return self.reported_at.get(indicator)

    def destination(self, code: str | None) -> str | None:
        for group, codes in self.destinations.items():
            if code in codes:
                return group
        return None


class IndicatorSpecError(ValueError):
    pass


def _codes(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise IndicatorSpecError(f"{where}: a list of choice codes is expected")
    return frozenset(value)


def _points(value: Any, where: str) -> frozenset[str]:
    """Points of a scale (integers), kept as text: answers are compared as text."""
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise IndicatorSpecError(f"{where}: a list of scale points (whole numbers) is expected")
    return frozenset(str(v) for v in value)


def _reported_at(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise IndicatorSpecError(f"{where}: reported_at must map indicators to wave names")
    unknown = set(map(str, value)) - set(INDICATORS)
    if unknown:
        raise IndicatorSpecError(
            f"{where}: unknown indicator {sorted(unknown)[0]!r} (known: {', '.join(INDICATORS)})"
        )
    return {str(k): v for k, v in value.items()}


def _occupation(value: Any, where: str) -> tuple[str | None, dict[str, str]]:
    """The occupation question and its choice codes' ISCO-08 major groups (optional)."""
    if value is None:
        return None, {}
    if not isinstance(value, dict):
        raise IndicatorSpecError(f"{where}: occupation must be a mapping (question, groups)")
    groups = value["groups"]
    if not isinstance(groups, dict) or not groups:
        raise IndicatorSpecError(
            f"{where}: occupation.groups must map choice codes to ISCO-08 major groups (0-9)"
        )
    mapped: dict[str, str] = {}
    for code, group in groups.items():
        if isinstance(group, bool) or str(group) not in ISCO_MAJOR_GROUPS:
            raise IndicatorSpecError(
                f"{where}: occupation.groups.{code}: {group!r} is not an ISCO-08 major group (0-9)"
            )
        mapped[str(code)] = str(group)
    return str(value["question"]), mapped


def parse_specs(text: str, source: str = "indicators.yaml") -> dict[str, IndicatorSpec]:
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise IndicatorSpecError(f"{source}: a mapping of questionnaire ids is expected")
    specs: dict[str, IndicatorSpec] = {}
    for form_id, raw in data.items():
        where = f"{source}: {form_id}"
        if not isinstance(raw, dict):
            raise IndicatorSpecError(f"{where}: a mapping is expected")
        try:
            destinations = raw["destinations"]
            if not isinstance(destinations, dict):
                raise IndicatorSpecError(f"{where}: destinations must be a mapping")
            unknown = set(destinations) - set(DESTINATIONS)
            if unknown:
                raise IndicatorSpecError(
                    f"{where}: unknown destination {sorted(unknown)[0]!r} "
                    f"(known: {', '.join(DESTINATIONS)})"
                )
            groups = {
                name: _codes(destinations[name], f"{where}: destinations.{name}")
                for name in DESTINATIONS
                if name in destinations
            }
            related, use = raw["related"], raw["use_of_skills"]
            satisfied = raw["satisfied"]
            occupation, occupation_groups = _occupation(raw.get("occupation"), where)
            for key, value in (
                ("related", related),
                ("use_of_skills", use),
                ("satisfied", satisfied),
            ):
                if not isinstance(value, dict):
                    raise IndicatorSpecError(f"{where}: {key} must be a mapping (question, yes)")
            spec = IndicatorSpec(
                form_id=str(form_id),
                activity=str(raw["activity"]),
                destinations=groups,
                employed=_codes(raw["employed"], f"{where}: employed"),
                related=str(related["question"]),
                related_yes=_codes(related["yes"], f"{where}: related.yes"),
                use=str(use["question"]),
                use_yes=_codes(use["yes"], f"{where}: use_of_skills.yes"),
                satisfied=str(satisfied["question"]),
                satisfied_yes=_points(satisfied["yes"], f"{where}: satisfied.yes"),
                reported_at=_reported_at(raw.get("reported_at"), where),
                occupation=occupation,
                occupation_groups=occupation_groups,
            )
        except (KeyError, TypeError) as exc:
            raise IndicatorSpecError(f"{where}: {exc} is missing") from exc
        seen: set[str] = set()
        for codes in groups.values():
            if codes & seen:
                raise IndicatorSpecError(f"{where}: {sorted(codes & seen)[0]} is in two groups")
            seen |= codes
        specs[spec.form_id] = spec
    return specs


def load_specs(path: Path = DEFAULT_SPEC_FILE) -> dict[str, IndicatorSpec]:
    return parse_specs(path.read_text(encoding="utf-8"), path.name)


@cache
def default_specs() -> dict[str, IndicatorSpec]:
    """The deployed indicators.yaml, read once per process."""
    return load_specs()


def check_spec(spec: IndicatorSpec, questionnaire: Questionnaire) -> list[str]:
    """Problems of `spec` against the questionnaire it is for (empty: it fits)."""
    problems: list[str] = []
    lists = [
        (spec.activity, spec.employed | frozenset().union(*spec.destinations.values())),
        (spec.related, spec.related_yes),
        (spec.use, spec.use_yes),
    ]
    if spec.satisfied not in questionnaire:
        problems.append(f"{spec.form_id}: the questionnaire has no question {spec.satisfied}")
    else:
        scale = questionnaire.question(spec.satisfied)
        if scale.type != QuestionType.SCALE:
            problems.append(f"{spec.form_id}: {spec.satisfied} must be a scale question")
        else:
            low, high = scale.scale_range
            for point in sorted(spec.satisfied_yes):
                if not low <= int(point) <= high:
                    problems.append(f"{spec.form_id}: {spec.satisfied} has no point {point}")
    if spec.occupation is not None:
        lists.append((spec.occupation, frozenset(spec.occupation_groups)))
    for name, codes in lists:
        if name not in questionnaire:
            problems.append(f"{spec.form_id}: the questionnaire has no question {name}")
            continue
        question = questionnaire.question(name)
        if question.type != QuestionType.SELECT_ONE:
            problems.append(f"{spec.form_id}: {name} must be a select_one question")
            continue
        known = {c.name for c in questionnaire.choices_for(question)}
        for code in sorted(codes - known):
            problems.append(f"{spec.form_id}: {name} has no choice {code}")
        if name == spec.activity:
            grouped = frozenset().union(*spec.destinations.values())
            for code in sorted(known - grouped):
                problems.append(f"{spec.form_id}: {name} has choice {code} in no destination group")
    return problems


@dataclass
class Indicators:
    """The counts behind the indicators for one group of respondents."""

    respondents: int = 0
    destinations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DESTINATIONS, 0))
    employed: int = 0
    related_yes: int = 0
    related_answered: int = 0
    use_yes: int = 0
    use_answered: int = 0
    satisfied_yes: int = 0
    satisfied_answered: int = 0
    occupation_yes: int = 0
    occupation_answered: int = 0
    completers: int = 0
    """The roster's graduates of the group (`add_completers`), answered or not."""

    def count(self, row: OutcomeRow, spec: IndicatorSpec) -> None:
        n = row.count
        self.respondents += n
        group = spec.destination(row.activity)
        if group is not None:
            self.destinations[group] += n
        if row.satisfied is not None:
            self.satisfied_answered += n
            self.satisfied_yes += n if row.satisfied in spec.satisfied_yes else 0
        if row.activity in spec.employed:
            self.employed += n
            if row.related is not None:
                self.related_answered += n
                self.related_yes += n if row.related in spec.related_yes else 0
            if row.relevant is not None:
                self.use_answered += n
                self.use_yes += n if row.relevant in spec.use_yes else 0
            declared = isco_groups_of(row.isco_groups)
            if row.occupation is not None and declared:
                self.occupation_answered += n
                group = spec.occupation_groups.get(row.occupation)
                self.occupation_yes += n if group in declared else 0

    def shares_5a(self, over: str = "respondents") -> dict[str, Rate | None]:
        """Share of respondents (or of completers) per destination; None where the count is
        suppressed together with another (secondary suppression: the counts add up to the
        respondents, which are shown)."""
        counts = [self.destinations[d] for d in DESTINATIONS]
        shown = suppress_parts(counts)
        return {
            d: (self.share(n, over) if s is not None else None)
            for d, n, s in zip(DESTINATIONS, counts, shown, strict=True)
        }

    def share(self, numerator: int, over: str = "respondents") -> Rate:
        """`numerator` over the respondents or over the completers (DENOMINATORS)."""
        if over == "completers":
            return Rate(numerator, self.completers)
        if over != "respondents":
            raise ValueError(f"unknown denominator {over!r}")
        return Rate(numerator, self.respondents)

    @property
    def response_rate(self) -> Rate:
        """Respondents over completers."""
        return Rate(self.respondents, self.completers)

    @property
    def i5b(self) -> Rate:
        return Rate(self.employed, self.respondents)

    @property
    def i6a(self) -> Rate:
        return Rate(self.related_yes, self.related_answered)

    @property
    def i6a_occupation(self) -> Rate:
        """Working in the occupation trained for: employed whose ISCO-08 major group is one
        their programme declares, over the employed who answered and whose programme
        declares groups (EQAVET 6a, beside the perceived `i6a`)."""
        return Rate(self.occupation_yes, self.occupation_answered)

    @property
    def i6b1(self) -> Rate:
        """Satisfied with the skills and competences acquired (EQAVET 6b1)."""
        return Rate(self.satisfied_yes, self.satisfied_answered)

    @property
    def use_of_skills(self) -> Rate:
        """Employed who use what they learnt (a lot or a little): not an EQAVET indicator."""
        return Rate(self.use_yes, self.use_answered)

    def rates(self, over: str = "respondents") -> dict[str, Rate]:
        """5b, 6a (perceived related, and in the occupation trained for), 6b1 and the use of
        skills (keys: RATES), over `over`: the respondents (each indicator over those it is
        asked of) or all completers (the numerator over the completers)."""
        if over == "respondents":
            return {
                "5b": self.i5b,
                "6a": self.i6a,
                "6a_occupation": self.i6a_occupation,
                "6b1": self.i6b1,
                "use": self.use_of_skills,
            }
        return {
            "5b": self.share(self.employed, over),
            "6a": self.share(self.related_yes, over),
            "6a_occupation": self.share(self.occupation_yes, over),
            "6b1": self.share(self.satisfied_yes, over),
            "use": self.share(self.use_yes, over),
        }


def breakdown_key(row: OutcomeRow | CompleterRow, by: str) -> Hashable:
    """The group of a respondent's or a completer's row in breakdown `by`."""
    if by == "programme":
        return row.programme_id
    if by == "eqf":
        return row.eqf_level
    if by == "gender":
        return row.gender or "unknown"
    if by == "age_band":
        return row.age_band
    if by == "pathway":
        return row.pathway or "unknown"
    if by == "vet_kind":
        return row.vet_kind or "unknown"
    if by == "school":
        return row.institution_id
    if by == "country":
        return row.country or "unknown"
    return "total"


def add_completers(
    result: dict[str | None, dict[Hashable, Indicators]],
    rows: Iterable[CompleterRow],
    waves_of: WavesOf,
    by: str = "total",
    opened: Callable[[str, CompleterRow], bool] | None = None,
) -> dict[str | None, dict[Hashable, Indicators]]:
    """Add to `result` (of `indicators`) the completers of each wave and breakdown value: the
    graduates whose plan has the wave (`waves_of`: here only the waves of the questionnaire
    the result is of) and, with `opened`, for whom it has opened. A group with completers but
    no respondent gets its row (an indicator of 0 respondents is shown as such)."""
    for row in rows:
        for wave in waves_of(row.institution_id, row.programme_id):
            if opened is not None and not opened(wave, row):
                continue
            groups = result.setdefault(wave, {})
            key = breakdown_key(row, by)
            if key not in groups:
                groups[key] = Indicators()
            groups[key].completers += row.count
    return result


def indicators(
    rows: Iterable[OutcomeRow], spec: IndicatorSpec, by: str = "total"
) -> dict[str | None, dict[Hashable, Indicators]]:
    """Indicator counts per wave and breakdown value."""
    if by not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {by!r}")
    result: dict[str | None, dict[Hashable, Indicators]] = defaultdict(dict)
    for row in rows:
        groups = result[row.wave]
        key = breakdown_key(row, by)
        if key not in groups:
            groups[key] = Indicators()
        groups[key].count(row, spec)
    return dict(result)
