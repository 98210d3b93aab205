"""The programme report (issue 18): one page per programme for the programme team and
management, and the same report as a printable A4 PDF (bot/web/report_pdf.py).

What it shows, per wave: the response rate, the EQAVET indicators over respondents and over
completers, the distribution of every closed question (shares of choices, medians of numbers
and scales) beside the school's average (and, for admins, all schools'), and the free-text
answers without names, newest first. Then the trends: each figure per cohort, as a small
chart with the numbers and the change from the cohort before beside it. Every figure is
suppressed as elsewhere (docs/indicators.md, "Suppression"); a change that rests on fewer
than five people is not shown as a change (conversations/programme_report.py).

Routes (registered by `add_programme_report`, called where the dashboard's routes are):
``/dashboard/programmes/{programme}/report`` and ``…/report.pdf``. Access is the programme
page's: the session's scope (`dashboard.scope_of`), a programme of another school is 404.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from aiohttp import web
from babel.dates import format_date
from babel.numbers import format_decimal
from markupsafe import Markup

from bot import i18n
from bot.i18n import _
from bot.reporting import Report, build_report, wave_label
from bot.web import access as web_access
from bot.web import charts
from bot.web import dashboard as dash
from bot.web.feedback import may_read_comments
from conversations import access
from conversations.indicators import (
    DENOMINATORS,
    DESTINATIONS,
    RATES,
    Funnel,
    Indicators,
    IndicatorSpec,
    Rate,
    suppress,
)
from conversations.programme_kinds import isco_groups_of
from conversations.programme_report import (
    Distribution,
    change,
    closed_questions,
    distributions,
    empty_distribution,
    indicator_groups,
    text_questions,
)
from conversations.questionnaire import Questionnaire, QuestionType
from conversations.registry import QuestionnaireRegistry
from conversations.waves import Wave, WavePlans
from storage import programme_report as store
from storage.db import Database
from storage.models import Institution, Programme, Staff
from storage.schools import school_questionnaires
from storage.stats import Scope
from storage.types import row_id

COMMENT_LIMIT = 500
"""The newest free-text answers a report lists (per programme)."""

TREND_KEYS = ("response_rate", *RATES)
"""The figures followed across cohorts: the response rate, then 5b, 6a (both), 6b1 and the
use of skills (over respondents, as EQAVET reporting uses them)."""


# ---------------------------------------------------------------- the data


@dataclass
class Compared:
    """One figure for the programme, the school and (admins) all schools."""

    programme: Rate | None
    school: Rate | None
    all_schools: Rate | None = None


@dataclass
class ChoiceLine:
    label: str
    count: int | None
    share: Rate | None
    school: Rate | None
    all_schools: Rate | None


@dataclass
class QuestionTable:
    name: str
    label: str
    is_choice: bool
    multiple: bool
    answered: int | None
    lines: list[ChoiceLine]
    median: float | None
    school_median: float | None
    all_median: float | None


@dataclass
class Comment:
    wave: str
    when: date
    activity: str
    text: str


@dataclass
class CommentGroup:
    question: str
    label: str
    comments: list[Comment]


@dataclass
class WaveSection:
    wave: Wave
    title: str
    funnel: Funnel
    response_rate: Compared
    has_indicators: bool
    indicators: Indicators
    school_indicators: Indicators
    all_indicators: Indicators | None
    questions: list[QuestionTable]
    comments: list[CommentGroup]
    comments_hidden: bool
    """Fewer than five respondents in the wave: its free text is not shown."""
    unanswered: list[str] = field(default_factory=list)
    """The closed questions nobody of the programme answered in the wave (not tabled)."""

    @property
    def respondents(self) -> int | None:
        return suppress(self.indicators.respondents)

    def compared(self) -> list[tuple[str, str, Compared]]:
        """(key, label, figures) of the indicators, over respondents, for the comparison."""
        rows: list[tuple[str, str, Compared]] = [
            ("response_rate", _("Response rate"), self.response_rate)
        ]
        if not self.has_indicators:
            return rows
        mine = self.indicators.shares_5a()
        school = self.school_indicators.shares_5a()
        every = self.all_indicators.shares_5a() if self.all_indicators else None
        for key in DESTINATIONS:
            rows.append(
                (
                    f"5a_{key}",
                    f"5a · {dash.destination_label(key)}",
                    Compared(mine[key], school[key], every[key] if every else None),
                )
            )
        for key in RATES:
            rows.append(
                (
                    key,
                    rate_name(key),
                    Compared(
                        self.indicators.rates()[key],
                        self.school_indicators.rates()[key],
                        self.all_indicators.rates()[key] if self.all_indicators else None,
                    ),
                )
            )
        return rows


@dataclass
class TrendPoint:
    cohort: int
    rate: Rate
    change: float | None
    """Percentage points from the cohort before (None: not shown as a change)."""


@dataclass
class Trend:
    key: str
    label: str
    wave: str
    wave_title: str
    points: list[TrendPoint]


@dataclass
class ProgrammeReport:
    school: Institution
    programme: Programme
    scope: Scope
    cohorts: list[int]
    today: date
    with_all_schools: bool
    sections: list[WaveSection] = field(default_factory=list)
    trends: list[Trend] = field(default_factory=list)

    @property
    def period(self) -> str:
        """The graduates the report is of, in the current language."""
        if self.scope.cohort is not None:
            years = str(self.scope.cohort)
        elif not self.cohorts:
            return _("No graduates on the roster yet, as of {day}").format(
                day=dash.date_text(self.today)
            )
        elif len(self.cohorts) == 1:
            years = str(self.cohorts[0])
        else:
            years = f"{self.cohorts[0]}–{self.cohorts[-1]}"
        return _("Graduates of {years}, as of {day}").format(
            years=years, day=dash.date_text(self.today)
        )


def rate_name(key: str) -> str:
    """5b, 6a, 6b1 and the use of skills, with their EQAVET number."""
    if key == "response_rate":
        return _("Response rate")
    if key == "use":
        return _("Use of skills at work")
    number = "6a" if key == "6a_occupation" else key
    return f"{number} · {dash.indicator_name(key)}"


def wave_title(registry: QuestionnaireRegistry, wave: Wave) -> str:
    """The wave by its name in the current language, and its questionnaire's title."""
    label = wave_label(wave, wave.name)
    try:
        title = registry.deployed(wave.questionnaire).title_in(i18n.current_language())
    except KeyError:
        return label
    return f"{label} · {title}"


def median_text(value: float | None) -> str:
    if value is None:
        return "–"
    return format_decimal(value, format="#,##0.#", locale=i18n.current_language())


def change_text(points: float | None) -> str:
    if points is None:
        return "–"
    number = format_decimal(abs(points), format="#,##0.0", locale=i18n.current_language())
    sign = "+" if points > 0 else ("−" if points < 0 else "±")
    return _("{sign}{points} points").format(sign=sign, points=number)


# ---------------------------------------------------------------- building it


async def build_programme_report(
    db: Database,
    plans: WavePlans,
    specs: dict[str, IndicatorSpec],
    registry: QuestionnaireRegistry,
    programme: Programme,
    *,
    cohort: int | None,
    all_schools: bool,
    now: datetime,
    with_comments: bool = True,
) -> ProgrammeReport:
    """The report of `programme` (of graduates of `cohort`, or all), beside its school's
    figures and, with `all_schools` (staff who see every school), all schools'; the comments
    only `with_comments` (for those who may read free text). Labels are in the current
    language; the choices as the programme's school shows them."""
    assert programme.id is not None
    today = now.date()
    scope = Scope(programme.institution_id, programme.id, cohort)
    school_scope = Scope(programme.institution_id, None, cohort)
    every_scope = Scope(None, None, cohort)

    async def report_of(sc: Scope) -> Report:
        return await build_report(db, plans, specs, sc, today=today, now=now, totals_only=True)

    async with db.session() as session:
        school = await session.get(Institution, programme.institution_id)
        assert school is not None
        shown_forms: dict[str, Questionnaire] = {}
        for form_id in registry.form_ids:
            deployed = registry.deployed(form_id)
            shown_forms[form_id] = (await school_questionnaires(session, deployed)).get(
                school.code, deployed
            )
    declared = isco_groups_of(programme.isco_groups)

    async def values_of(
        sc: Scope, form_id: str, q: Questionnaire
    ) -> dict[str | None, dict[str, Distribution]]:
        spec = specs.get(form_id)

        def published(name: str) -> tuple[frozenset[str], ...]:
            return indicator_groups(spec, name, declared)

        names = [question.name for question in closed_questions(q)]
        async with db.session() as session:
            rows = await store.answer_values(session, sc, form_id, names, now)
        return distributions(rows, q, published)

    async def comments_of(form_id: str, q: Questionnaire) -> list[store.CommentRow]:
        spec = specs.get(form_id)
        activity = spec.activity if spec else _routing_question(q)
        texts = [t.name for t in text_questions(q)] if with_comments else []
        if not texts:
            return []
        async with db.session() as session:
            return await store.comments(
                session, scope, form_id, texts, activity, now, COMMENT_LIMIT
            )

    # The parts are independent: run them side by side (each in its own session).
    per_scope = [scope, school_scope, *([every_scope] if all_schools else [])]
    forms = list(shown_forms.items())
    reports = asyncio.gather(*(report_of(sc) for sc in per_scope))
    distributed = asyncio.gather(*(values_of(sc, f, q) for f, q in forms for sc in per_scope))
    listed = asyncio.gather(*(comments_of(f, q) for f, q in forms))
    found_reports, found_values, found_texts = await asyncio.gather(reports, distributed, listed)
    mine, school_report, *rest = found_reports
    every_report = rest[0] if rest else None
    values = {
        f: found_values[i * len(per_scope) : (i + 1) * len(per_scope)]
        for i, (f, _q) in enumerate(forms)
    }
    texts = {f: found_texts[i] for i, (f, _q) in enumerate(forms)}
    trend_scope = Scope(programme.institution_id, programme.id, None)
    all_cohorts = mine if cohort is None else await report_of(trend_scope)
    cohort_reports = await asyncio.gather(
        *(report_of(Scope(programme.institution_id, programme.id, c)) for c in all_cohorts.cohorts)
    )
    by_cohort = dict(zip(all_cohorts.cohorts, cohort_reports, strict=True))

    result = ProgrammeReport(
        school=school,
        programme=programme,
        scope=scope,
        cohorts=mine.cohorts,
        today=today,
        with_all_schools=all_schools,
    )
    lang = i18n.current_language()
    for wave in mine.waves:
        funnel = mine.by_wave.get(wave.name)
        if funnel is None or not (funnel.graduates or funnel.started):
            continue  # not a wave of this programme's graduates (yet)
        shown_form = shown_forms.get(wave.questionnaire)
        total = mine.wave_indicators(wave.name).get("total", Indicators())
        school_total = school_report.wave_indicators(wave.name).get("total", Indicators())
        every_total = (
            every_report.wave_indicators(wave.name).get("total", Indicators())
            if every_report
            else None
        )
        tables: list[QuestionTable] = []
        groups: list[CommentGroup] = []
        unanswered: list[str] = []
        if shown_form is not None:
            q = shown_form
            dists = [d.get(wave.name, {}) for d in values[wave.questionnaire]]
            for question in closed_questions(q):
                table = _table(q, question.name, dists, lang)
                own = dists[0].get(question.name)
                if own is None or not own.answered:
                    unanswered.append(question.name)
                else:
                    tables.append(table)
            groups = _comments(q, texts[wave.questionnaire], wave.name, lang)
        respondents = funnel.completed
        result.sections.append(
            WaveSection(
                wave=wave,
                title=wave_title(registry, wave),
                funnel=funnel,
                response_rate=Compared(
                    funnel.rate,
                    school_report.by_wave.get(wave.name, Funnel()).rate,
                    every_report.by_wave.get(wave.name, Funnel()).rate if every_report else None,
                ),
                has_indicators=wave.questionnaire in mine.indicators,
                indicators=total,
                school_indicators=school_total,
                all_indicators=every_total,
                questions=tables,
                comments=groups if respondents >= 5 else [],
                comments_hidden=with_comments and 0 < respondents < 5,
                unanswered=unanswered,
            )
        )
    result.trends = _trends(registry, all_cohorts, by_cohort)
    return result


def _routing_question(q: Questionnaire) -> str | None:
    """The first closed question after the opening one (the pre-graduation plan P1)."""
    closed = closed_questions(q)
    return closed[0].name if closed else None


def _label(q: Questionnaire, question: str, code: str, lang: str) -> str:
    item = q.question(question)
    if item.type == QuestionType.SCALE:
        return code
    choice = q.choice(item, code)
    return choice.label(lang) if choice else code


def _table(
    q: Questionnaire, name: str, dists: list[dict[str, Distribution]], lang: str
) -> QuestionTable:
    question = q.question(name)
    mine, school, *rest = (d.get(name) or empty_distribution(question, q) for d in dists)
    every = rest[0] if rest else None
    shares, counts = mine.shares(), mine.shown_counts()
    school_shares = school.shares()
    every_shares = every.shares() if every else {}
    lines = []
    if mine.is_choice or question.type == QuestionType.SCALE:
        for code in counts:
            lines.append(
                ChoiceLine(
                    _label(q, name, code, lang),
                    counts[code],
                    shares[code],
                    school_shares.get(code),
                    every_shares.get(code) if every else None,
                )
            )
    return QuestionTable(
        name=name,
        label=question.label(lang),
        is_choice=mine.is_choice,
        multiple=mine.multiple,
        answered=mine.shown_answered(),
        lines=lines,
        median=None if mine.is_choice else mine.median(),
        school_median=None if mine.is_choice else school.median(),
        all_median=None if (mine.is_choice or every is None) else every.median(),
    )


def _comments(
    q: Questionnaire, rows: list[store.CommentRow], wave: str, lang: str
) -> list[CommentGroup]:
    groups: list[CommentGroup] = []
    for question in text_questions(q):
        mine = [r for r in rows if r.wave == wave and r.question == question.name]
        if not mine:
            continue
        routing = _routing_question(q)
        comments = [
            Comment(
                wave=wave,
                when=r.answered_at.date(),
                activity=(_label(q, routing, r.activity, lang) if routing and r.activity else "–"),
                text=r.text,
            )
            for r in mine
        ]
        groups.append(CommentGroup(question.name, question.label(lang), comments))
    return groups


def _trends(
    registry: QuestionnaireRegistry, report: Report, by_cohort: dict[int, Report]
) -> list[Trend]:
    trends: list[Trend] = []
    cohorts = sorted(by_cohort)
    for wave in report.waves:
        funnel = report.by_wave.get(wave.name)
        if funnel is None or not (funnel.graduates or funnel.started):
            continue
        keys = TREND_KEYS if wave.questionnaire in report.indicators else ("response_rate",)
        for key in keys:
            points: list[TrendPoint] = []
            before: Rate | None = None
            for c in cohorts:
                r = by_cohort[c]
                if wave.name not in r.by_wave:
                    continue
                if key == "response_rate":
                    rate = r.by_wave[wave.name].rate
                else:
                    total = r.wave_indicators(wave.name).get("total", Indicators())
                    rate = total.rates()[key]
                points.append(TrendPoint(c, rate, change(before, rate) if points else None))
                before = rate
            if any(p.rate.denominator for p in points):  # not a figure nobody was asked for
                trends.append(
                    Trend(key, rate_name(key), wave.name, wave_title(registry, wave), points)
                )
    return trends


# ---------------------------------------------------------------- the page and the PDF


def trend_chart(trend: Trend) -> Markup:
    bars = [
        charts.Bar(str(p.cohort), dash._percent(p.rate), dash.rate_cell(p.rate))
        for p in trend.points
    ]
    title = f"{trend.label} · {trend.wave_title}"
    return Markup(charts.column_chart(title, bars, empty_text=_("No data yet")))


async def _programme(request: web.Request) -> tuple[Programme, Scope]:
    """The programme of the URL if the session's scope holds it (else 404), and the scope."""
    d = dash.dashboard(request)
    programme_id = row_id(request.match_info["programme"])
    if programme_id is None:
        raise web.HTTPNotFound(reason=_("There is no such programme."))
    base = dash.scope_of(request)
    async with d.rt.db.session() as session:
        programme = await session.get(Programme, programme_id)
    if programme is None or not base.holds(programme.institution_id, programme.id):
        raise web.HTTPNotFound(reason=_("There is no such programme."))
    return programme, base


def sees_all_schools(staff: Staff) -> bool:
    """Whether the comparison has an "all schools" column: staff who see every school (an
    admin or a researcher of all schools; regional staff see their own group only)."""
    return staff.institution_id is None and access.permits(access.ROWS, staff)


async def _build(request: web.Request) -> tuple[ProgrammeReport, Scope]:
    d = dash.dashboard(request)
    programme, base = await _programme(request)
    staff = dash._session(request).staff
    report = await build_programme_report(
        d.rt.db,
        d.rt.plans,
        d.specs,
        d.rt.questionnaires,
        programme,
        cohort=base.cohort,
        all_schools=sees_all_schools(staff),
        now=d.rt.clock.now(),
        with_comments=may_read_comments(staff),
    )
    return report, base


def page_values(report: ProgrammeReport, query: str) -> dict[str, Any]:
    """What programme_report.html is rendered with (besides the dashboard's globals)."""
    return {
        "report": report,
        "programme": report.programme,
        "funnel_lines": [
            dash.FunnelLine(section.title, None, section.funnel) for section in report.sections
        ],
        "indicator_line": dash.IndicatorLine,
        "query": query,
        "rate_name": rate_name,
        "median_text": median_text,
        "change_text": change_text,
        "trend_chart": trend_chart,
        "DENOMINATORS": DENOMINATORS,
        "month": month_text,
    }


@web_access.allow(access.EVERYONE)
async def report_page(request: web.Request) -> web.Response:
    report, base = await _build(request)
    return dash.render(request, "programme_report.html", **page_values(report, dash._query(base)))


def month_text(day: date) -> str:
    return format_date(day, format="MMM y", locale=i18n.current_language())


@web_access.allow(access.EVERYONE)
async def report_pdf(request: web.Request) -> web.Response:
    from bot.web.report_pdf import render_pdf

    report, _base = await _build(request)
    lang = i18n.current_language()

    def draw() -> bytes:
        with i18n.use_language(lang):
            return render_pdf(report)

    body = await asyncio.to_thread(draw)
    name = f"report-{report.programme.code}" + (
        f"-{report.scope.cohort}" if report.scope.cohort else ""
    )
    return web.Response(
        body=body,
        content_type="application/pdf",
        headers={"Content-Disposition": dash.attachment(f"{name}.pdf")},
    )


def add_programme_report(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{dash.PREFIX}/programmes/{{programme}}/report", report_page)
    r.add_get(f"{dash.PREFIX}/programmes/{{programme}}/report.pdf", report_pdf)
