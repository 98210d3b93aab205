"""One statistics report for a scope: the counts from storage/stats.py run through the maths of
conversations/indicators.py. `/stats`, the dashboard, the exports and the benchmark use it."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from babel.numbers import format_decimal, format_percent

from bot import i18n
from bot.i18n import _, ngettext
from conversations.indicators import (
    BREAKDOWNS,
    ChannelCounts,
    DropOff,
    Funnel,
    Indicators,
    IndicatorSpec,
    Rate,
    Reach,
    add_completers,
    channel_counts,
    drop_off,
    funnels,
    indicators,
    reach,
    weekly,
)
from conversations.registry import QuestionnaireRegistry
from conversations.waves import Wave, WavePlans
from storage import stats, summaries
from storage.db import Database
from storage.models import Staff, StaffRole
from storage.stats import Names, Scope
from storage.types import utcnow


def count_text(n: int | None) -> str:
    if n is None:
        return "<5"
    return format_decimal(n, locale=i18n.current_language())


def rate_text(rate: Rate | None) -> str:
    if rate is None or rate.suppressed:
        return "<5"
    value = rate.value
    if value is None:
        return "–"
    return format_percent(value, format="#,##0.0%", locale=i18n.current_language())


KEPT_AT_MOST = timedelta(minutes=5)
"""Summary counts older than this (the scheduler leader stopped refreshing them) are not shown:
the report counts live instead."""


def as_of_text(report: Report) -> str | None:
    """When the report's counts were counted, if they were kept rather than counted for it."""
    if report.as_of is None:
        return None
    return _("Counts as of {time} UTC; they are brought up to date every minute.").format(
        time=i18n.format_datetime(report.as_of, "UTC")
    )


def wave_label(wave: Wave | None, name: str | None = None) -> str:
    """A wave as staff read it, in the current language: "Before graduation", "2 months after
    graduation". `name` is the stored code, for a wave no longer in the plans (shown as it is)."""
    if wave is None:
        return name if name else _("Without a wave")
    amount, unit = wave.opens.amount, wave.opens.unit
    if amount <= 0:
        return _("Before graduation")
    if unit == "m":
        text = ngettext("{count} month after graduation", "{count} months after graduation", amount)
    elif unit == "w":
        text = ngettext("{count} week after graduation", "{count} weeks after graduation", amount)
    else:
        text = ngettext("{count} day after graduation", "{count} days after graduation", amount)
    return text.format(count=amount)


def wave_labels(plans: WavePlans) -> dict[str, str]:
    """Every wave name of the plans and its label (the first plan naming a wave wins)."""
    labels: dict[str, str] = {}
    for plan in (plans.default, *plans.overrides.values()):
        for wave in plan.waves:
            labels.setdefault(wave.name, wave_label(wave))
    return labels


def staff_scope(staff: Staff, programme_id: int | None = None, cohort: int | None = None) -> Scope:
    """Staff of a school see that school only; staff without a school (admins, researchers)
    see all; a programme team its programmes only, regional staff their group of schools only
    (an empty list: nothing)."""
    programmes = schools = None
    if staff.role == StaffRole.PROGRAMME.value:
        programmes = tuple(staff.programme_ids or ())
    if staff.role == StaffRole.REGIONAL.value:
        schools = tuple(staff.school_ids or ())
    return Scope(
        institution_id=staff.institution_id,
        programme_id=programme_id,
        cohort=cohort,
        institution_ids=schools,
        programme_ids=programmes,
    )


@dataclass
class Report:
    scope: Scope
    names: Names
    waves: list[Wave]
    """Every wave of the plans in scope, in plan order (first plan first)."""
    by_wave: dict[str | None, Funnel]
    by_wave_programme: dict[tuple[str | None, int], Funnel]
    by_wave_cohort: dict[tuple[str | None, int], Funnel]
    by_wave_school: dict[tuple[str | None, int], Funnel]
    days: list[stats.DayRow]
    indicators: dict[str, dict[str, dict[str | None, dict[Hashable, Indicators]]]] = field(
        default_factory=dict
    )
    """form id -> breakdown -> wave -> breakdown value -> counts (with the completers)."""
    specs: dict[str, IndicatorSpec] = field(default_factory=dict)
    cohorts: list[int] = field(default_factory=list)
    by_wave_programme_cohort: dict[tuple[str | None, int, int], Funnel] = field(
        default_factory=dict
    )
    """Per wave, programme and cohort (graduation year): the finest cells (the rates export)."""
    reach_rows: list[stats.ReachRow] = field(default_factory=list)
    by_wave_channel: dict[str | None, ChannelCounts] = field(default_factory=dict)
    by_wave_programme_channel: dict[tuple[str | None, int], ChannelCounts] = field(
        default_factory=dict
    )
    by_wave_programme_cohort_channel: dict[tuple[str | None, int, int], ChannelCounts] = field(
        default_factory=dict
    )
    """Completed responses per channel beside the invited, keyed as the funnels."""
    as_of: datetime | None = None
    """When the counts were counted (storage/summaries.py); None: counted for this report."""
    question_rows: list[stats.QuestionRow] | None = None
    """Kept with the counts: the question rows of the wave asked for (the drill-down)."""

    def reach(self, programme_id: int | None = None) -> Reach:
        """The graduates in scope (of `programme_id`) per reach category."""
        if programme_id is None:
            return reach(self.reach_rows)
        return reach(self.reach_rows, lambda row: row.programme_id == programme_id)

    def wave(self, name: str) -> Wave | None:
        return next((w for w in self.waves if w.name == name), None)

    def weekly(self, wave: str | None = None) -> list[tuple[date, int | None]]:
        return weekly(self.days, wave)

    def wave_indicators(self, wave: str, by: str = "total") -> dict[Hashable, Indicators]:
        w = self.wave(wave)
        if w is None:
            return {}
        return self.indicators.get(w.questionnaire, {}).get(by, {}).get(wave, {})

    def reported(self, form_id: str, indicator: str) -> Wave | None:
        """The wave of the plans in scope that `indicator` of `form_id` is reported from
        (indicators.yaml `reported_at`), None when it names no such wave."""
        spec = self.specs.get(form_id)
        name = spec.wave_of(indicator) if spec else None
        wave = self.wave(name) if name else None
        return wave if wave is not None and wave.questionnaire == form_id else None


async def build_report(
    db: Database,
    plans: WavePlans,
    specs: dict[str, IndicatorSpec],
    scope: Scope,
    today: date | None = None,
    now: datetime | None = None,
    *,
    totals_only: bool = False,
    kept: bool = False,
    wave: str | None = None,
    breakdowns: Sequence[str] = BREAKDOWNS,
) -> Report:
    """The report of `scope`. With `today`, a wave's graduates are only those it has opened
    for by then (graduation date + the wave's opening offset), so that a cohort a wave has
    not reached yet does not lower its response rate. `now` (default: the time it is) decides
    which unsent responses count as completed: those whose wave has closed by then.
    `totals_only`: the funnels and the indicators' totals, without breakdowns, reach,
    channels and days (the programme report's comparisons and trends). `kept`: the counts
    the scheduler leader keeps (storage/summaries.py, as of `Report.as_of`) when there are
    any, instead of counting; `now` is then their time; with `wave`, that wave's question rows
    too (`question_drop_off`). `breakdowns`: those of the indicators to work out (the
    overview shows only the total)."""
    async with db.session() as session:
        names = await stats.names(session, scope)
        counts = (
            await summaries.read(
                session,
                scope,
                [spec.questions for spec in specs.values()],
                wave,
                totals=totals_only or tuple(breakdowns) == ("total",),
            )
            if kept
            else None
        )
        if counts is not None and counts.as_of < (now or utcnow()) - KEPT_AT_MOST:
            counts = None  # the leader has not counted for a while: count now
        if counts is not None:
            population = counts.population
            wave_rows = counts.waves
            channel_rows = [] if totals_only else counts.channels
            reach_rows = [] if totals_only else counts.reach
            days = [] if totals_only else counts.days
            outcomes = dict(counts.outcomes)
            completer_rows = counts.completers
        else:
            population = await stats.population(session, scope)
            wave_rows = await stats.wave_counts(session, scope, now)
            channel_rows = (
                [] if totals_only else await stats.completed_by_channel(session, scope, now)
            )
            reach_rows = [] if totals_only else await stats.reach_counts(session, scope)
            days = [] if totals_only else await stats.completions_per_day(session, scope, now)
            outcomes = {
                form_id: await stats.outcomes(session, scope, spec.questions, now)
                for form_id, spec in specs.items()
            }
            completer_rows = await stats.completers(session, scope) if specs else []

    plan_waves: dict[tuple[int, int], tuple[Wave, ...]] = {}

    def plan_of(institution_id: int, programme_id: int) -> tuple[Wave, ...]:
        key = (institution_id, programme_id)
        if key not in plan_waves:
            school = names.schools.get(institution_id)
            programme = names.programmes.get(programme_id)
            plan = plans.for_graduate(
                school.code if school else "", programme.code if programme else None
            )
            plan_waves[key] = plan.waves
        return plan_waves[key]

    def waves_of(institution_id: int, programme_id: int) -> list[str]:
        return [w.name for w in plan_of(institution_id, programme_id)]

    known: dict[tuple[str, int, int, date | None], bool] = {}

    def has_opened(
        wave_name: str, institution_id: int, programme_id: int, graduated: date | None
    ) -> bool:
        key = (wave_name, institution_id, programme_id, graduated)
        if key not in known:
            wave = next(
                (w for w in plan_of(institution_id, programme_id) if w.name == wave_name), None
            )
            known[key] = (
                wave is None
                or graduated is None
                or today is None
                or wave.opens.apply(graduated) <= today
            )
        return known[key]

    def opened(wave_name: str, pop: stats.PopulationRow) -> bool:
        return has_opened(wave_name, pop.institution_id, pop.programme_id, pop.graduation_date)

    when = opened if today is not None else None

    def completer_opened(wave_name: str, row: stats.CompleterRow) -> bool:
        return has_opened(wave_name, row.institution_id, row.programme_id, row.graduation_date)

    # The waves of the plans in scope only (a school with a plan of its own does not see the
    # default's), the default plan first when it is one of them or nobody is in scope.
    in_scope = [
        plan_of(pop.institution_id, pop.programme_id)
        for pop in sorted(population, key=lambda p: (p.institution_id, p.programme_id, p.cohort))
    ]
    if not in_scope or plans.default.waves in in_scope:
        in_scope.insert(0, plans.default.waves)
    ordered: dict[str, Wave] = {}
    for waves in in_scope:
        for w in waves:
            ordered.setdefault(w.name, w)

    report = Report(
        scope=scope,
        names=names,
        waves=list(ordered.values()),
        by_wave=funnels(population, wave_rows, waves_of, lambda w, i, p, c: w, when),
        by_wave_programme=funnels(population, wave_rows, waves_of, lambda w, i, p, c: (w, p), when),
        by_wave_cohort=funnels(population, wave_rows, waves_of, lambda w, i, p, c: (w, c), when),
        by_wave_school=funnels(population, wave_rows, waves_of, lambda w, i, p, c: (w, i), when),
        days=days,
        cohorts=sorted({pop.cohort for pop in population}),
        by_wave_programme_cohort=funnels(
            population, wave_rows, waves_of, lambda w, i, p, c: (w, p, c), when
        ),
    )
    report.reach_rows = reach_rows
    report.as_of = counts.as_of if counts is not None else None
    report.question_rows = counts.questions if counts is not None else None
    report.by_wave_channel = channel_counts(report.by_wave, channel_rows, lambda w, i, p, c: w)
    report.by_wave_programme_channel = channel_counts(
        report.by_wave_programme, channel_rows, lambda w, i, p, c: (w, p)
    )
    report.by_wave_programme_cohort_channel = channel_counts(
        report.by_wave_programme_cohort, channel_rows, lambda w, i, p, c: (w, p, c)
    )
    report.specs = dict(specs)
    for form_id, rows in outcomes.items():
        spec = specs[form_id]

        def form_waves(institution_id: int, programme_id: int, form: str = form_id) -> list[str]:
            waves = plan_of(institution_id, programme_id)
            return [w.name for w in waves if w.questionnaire == form]

        report.indicators[form_id] = {
            by: add_completers(
                indicators(rows, spec, by),
                completer_rows,
                form_waves,
                by,
                completer_opened if today is not None else None,
            )
            for by in (("total",) if totals_only else breakdowns)
        }
    return report


async def question_drop_off(
    db: Database,
    registry: QuestionnaireRegistry,
    scope: Scope,
    wave: Wave,
    report: Report | None = None,
) -> list[DropOff]:
    """Answered and stopped per question of `wave`: kept with `report`'s counts when it was
    built with them for this wave, else counted now."""
    if report is not None and report.question_rows is not None:
        rows = report.question_rows
    else:
        async with db.session() as session:
            rows = await stats.question_counts(session, scope, wave.name)
    try:
        questionnaire = registry.deployed(wave.questionnaire)
    except KeyError:
        return []
    return drop_off(rows, questionnaire)


async def current_waves(db: Database, scope: Scope, now: datetime) -> list[tuple[str, int]]:
    """(wave, cohort) pairs with an invitation out and not closed yet at `now`."""
    async with db.session() as session:
        return await stats.open_waves(session, scope, now)
