"""Two pages of a programme beside its report (issue 18), and their export:

- /dashboard/programmes/<id>/expectations: the plans graduates gave before graduating against
  what they do at each tracking wave (conversations/feedback.py), one wave at a time, with the
  indicators' suppression; /dashboard/exports/expectations.csv|xlsx: every programme in scope.
- /dashboard/programmes/<id>/comments: the graduates' comments, newest first, without names,
  each with the answers that routed them (main activity, wave, cohort); staff tag comments
  with themes of their own (POST …/comments/tag and …/comments/untag, CSRF-checked by the
  session middleware like every dashboard form), see how many comments each theme has and
  show one theme's. A programme with fewer than COMMENTS_FROM respondents in the chosen wave
  and cohort shows no comments: in so small a group a comment and its routing answers could
  tell who wrote it.

Who may: the plans table is figures (every role); the comments are read by those who work on
programmes (officers, admins, programme teams: `access.TEAMS`) and tagged by officers and
admins (`access.WRITERS`); the routes' rules say so. The programme is checked against the
staff member's scope (`Scope.holds`: school, group of schools, a team's programmes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from bot import i18n
from bot.i18n import _
from bot.reporting import count_text, wave_label
from bot.web import access as web_access
from bot.web import exports
from bot.web.dashboard import (
    PREFIX,
    Dashboard,
    _download,
    _export_language,
    _query,
    _session,
    _wave_title,
    dashboard,
    destination_label,
    rate_cell,
    render,
    scope_of,
)
from conversations import access
from conversations.feedback import (
    NO_PLAN,
    PLAN_ROWS,
    TOTAL,
    FeedbackSpec,
    Grid,
    default_feedback,
    expectation_grids,
    programme_grids,
    theme_key,
    theme_name,
)
from conversations.indicators import DESTINATIONS, SUPPRESS_BELOW, IndicatorSpec, Rate
from conversations.waves import Wave
from storage import feedback
from storage.models import Institution, Programme, Staff
from storage.stats import Scope, names
from storage.types import row_id

COMMENTS_FROM = SUPPRESS_BELOW
"""The fewest respondents a programme (in the chosen wave and cohort) needs for its comments
to be shown."""


# ---------------------------------------------------------------- who may


def may_read_comments(staff: Staff) -> bool:
    """Whether `staff` may read graduates' comments (free text, never a name) of their scope:
    those who work on programmes (officers, admins, programme teams), as the privacy notice
    tells graduates; researchers and regional staff see no free text."""
    return access.permits(access.TEAMS, staff)


def may_tag_comments(staff: Staff) -> bool:
    """Whether `staff` may add and remove the themes of the comments they can read."""
    return access.permits(access.WRITERS, staff)


# ---------------------------------------------------------------- labels


def plan_label(key: str) -> str:
    return {
        "work": _("Planned to work"),
        "work_and_study": _("Planned to work and study"),
        "study": _("Planned to study"),
        "not_sure": _("Not sure yet"),
        "other": _("Other plans"),
        NO_PLAN: _("No plan on record"),
        TOTAL: _("All respondents"),
    }[key]


# ---------------------------------------------------------------- shared


def _specs(d: Dashboard) -> list[tuple[IndicatorSpec, FeedbackSpec]]:
    """The tracking questionnaires (with indicators) and their comments and plans."""
    found = default_feedback()
    return [(spec, found[form]) for form, spec in d.specs.items() if form in found]


async def _programme(request: web.Request) -> tuple[Programme, Institution, Scope]:
    """The programme of the URL if the staff member's scope holds it (else 404), its school,
    and the scope narrowed to it (with ?cohort=)."""
    d = dashboard(request)
    base = scope_of(request)
    programme_id = row_id(request.match_info["programme"])
    async with d.rt.db.session() as session:
        programme = await session.get(Programme, programme_id) if programme_id else None
        school = await session.get(Institution, programme.institution_id) if programme else None
    if (
        programme is None
        or school is None
        or not base.holds(programme.institution_id, programme.id)
    ):
        raise web.HTTPNotFound(reason=_("There is no such programme."))
    assert programme.id is not None
    return programme, school, Scope(programme.institution_id, programme.id, base.cohort)


def _waves(d: Dashboard, school: Institution, programme: Programme, form: str) -> list[Wave]:
    plan = d.rt.plans.for_graduate(school.code, programme.code)
    return [w for w in plan.waves if w.questionnaire == form]


def _chosen_wave(request: web.Request, waves: list[Wave]) -> Wave | None:
    name = request.query.get("wave", "")
    if not name:
        return None
    wave = next((w for w in waves if w.name == name), None)
    if wave is None:
        raise web.HTTPNotFound(reason=_("There is no such wave."))
    return wave


def _back_query(scope: Scope, request: web.Request) -> str:
    """?school= (admins) and ?cohort= of the page, for the links back."""
    return _query(Scope(scope_of(request).institution_id, None, scope.cohort))


# ---------------------------------------------------------------- expectations


@dataclass
class GridCell:
    count: int | None
    share: Rate | None


@dataclass
class GridLine:
    key: str
    label: str
    cells: list[GridCell]
    """One per destination (DESTINATIONS), then the total."""


def grid_lines(grid: Grid) -> list[GridLine]:
    """The table's rows: each plan group, then all respondents."""
    shown, shares = grid.shown(), grid.shares()
    return [
        GridLine(
            plan,
            plan_label(plan),
            [GridCell(shown[(plan, d)], shares[(plan, d)]) for d in (*DESTINATIONS, TOTAL)],
        )
        for plan in (*PLAN_ROWS, TOTAL)
    ]


@web_access.allow(access.EVERYONE)
async def expectations_page(request: web.Request) -> web.Response:
    d = dashboard(request)
    programme, school, scope = await _programme(request)
    # The (first) tracking questionnaire whose plans are asked before graduation.
    pair = next(((i, f) for i, f in _specs(d) if f.plan_question is not None), None)
    tables: list[tuple[str, list[GridLine], int | None]] = []
    waves: list[Wave] = []
    chosen: Wave | None = None
    if pair is not None:
        indicator_spec, spec = pair
        waves = _waves(d, school, programme, spec.form_id)
        chosen = _chosen_wave(request, waves)
        async with d.rt.db.session() as session:
            rows = await feedback.plan_rows(
                session, scope, spec, indicator_spec.activity, d.rt.clock.now()
            )
        grids = expectation_grids(rows, spec, indicator_spec)
        if chosen is None:
            # The wave 5a is reported from if it has respondents, else the latest that has.
            answered = [w for w in waves if w.name in grids and grids[w.name].respondents]
            reported = indicator_spec.wave_of("5a")
            chosen = next((w for w in answered if w.name == reported), None) or (
                answered[-1] if answered else (waves[-1] if waves else None)
            )
        if chosen is not None:
            grid = grids.get(chosen.name, Grid())
            title = _wave_title(d, chosen, chosen.name)
            tables.append((title, grid_lines(grid), grid.shown()[(TOTAL, TOTAL)]))
    back = _back_query(scope, request)
    async with d.rt.db.session() as session:
        years = await feedback.cohorts(session, programme.id or 0)
    return render(
        request,
        "expectations.html",
        cohorts=years,
        programme=programme,
        school=school,
        back=back,
        waves=[(w, _wave_title(d, w, w.name)) for w in waves],
        chosen=chosen,
        cohort=scope.cohort,
        school_param=scope_of(request).institution_id,
        tables=tables,
        destinations=DESTINATIONS,
        destination_label=destination_label,
        cell_count=count_text,
        cell_rate=rate_cell,
        query=back,
    )


@web_access.allow(access.EVERYONE)
async def export_expectations(request: web.Request) -> web.Response:
    """The expectations table of every programme in scope and every wave, one line per
    programme, wave and plan group: counts and shares of the plan group, suppressed as on
    the page ("<5")."""
    d = dashboard(request)
    scope = scope_of(request)
    lang = _export_language(request)
    lines: list[list[object]] = []
    async with d.rt.db.session() as session:
        known = await names(session, scope.institution_id)
        found = []
        for indicator_spec, spec in _specs(d):
            if spec.plan_question is not None:
                rows = await feedback.plan_rows(
                    session, scope, spec, indicator_spec.activity, d.rt.clock.now()
                )
                found.append((spec, programme_grids(rows, spec, indicator_spec)))
    with i18n.use_language(lang):
        for spec, grids in found:
            for (programme_id, wave), grid in sorted(
                grids.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
            ):
                programme = known.programmes.get(programme_id)
                school = known.schools.get(programme.institution_id) if programme else None
                shown, shares = grid.shown(), grid.shares()
                for plan in (*PLAN_ROWS, TOTAL):
                    lines.append(
                        [
                            spec.form_id,
                            wave or "",
                            school.code if school else "",
                            programme.code if programme else "",
                            plan,
                            plan_label(plan),
                            _count(shown[(plan, TOTAL)]),
                            *(_count(shown[(plan, dest)]) for dest in DESTINATIONS),
                            *(_pct(shares[(plan, dest)]) for dest in DESTINATIONS),
                        ]
                    )
    sheet = exports.Sheet(
        "expectations",
        [
            "questionnaire",
            "wave",
            "school",
            "programme",
            "plan",
            "plan_label",
            "respondents",
            *(f"{dest}" for dest in DESTINATIONS),
            *(f"{dest}_pct" for dest in DESTINATIONS),
        ],
        lines,
    )
    return _download(request, "expectations", [sheet])


def _count(n: int | None) -> object:
    return "<5" if n is None else n


def _pct(rate: Rate | None) -> object:
    if rate is None or rate.value is None:
        return "<5" if rate is None or rate.suppressed else None
    return round(rate.value * 100, 1)


# ---------------------------------------------------------------- comments


@dataclass
class CommentView:
    comment: feedback.Comment
    anchor: str
    wave: str
    activity: str


def _destination_text(spec: IndicatorSpec | None, code: str | None) -> str:
    """The routing answer Q1 as its 5a destination group, as the indicators name it."""
    group = spec.destination(code) if spec is not None else None
    return destination_label(group) if group else "–"


def _comments_url(programme: Programme, **params: Any) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{PREFIX}/programmes/{programme.id}/comments" + ("?" + urlencode(kept) if kept else "")


@web_access.allow(access.TEAMS)
async def comments_page(request: web.Request, status: int = 200, **problem: Any) -> web.Response:
    """The comments page; after a refused tag, with `problem` (error, at, typed) and
    `status`."""
    d = dashboard(request)
    staff = _session(request).staff
    programme, school, scope = await _programme(request)
    specs = [(i, f) for i, f in _specs(d) if f.comments]
    indicator_spec, spec = specs[0] if specs else (None, None)
    waves = _waves(d, school, programme, spec.form_id) if spec else []
    chosen = _chosen_wave(request, waves)
    theme = request.query.get("theme", "")
    found: list[feedback.Comment] = []
    respondents = 0
    themes: list[str] = []
    if spec is not None and indicator_spec is not None:
        async with d.rt.db.session() as session:
            respondents = await feedback.respondents(
                session, scope, spec.form_id, chosen.name if chosen else None, d.rt.clock.now()
            )
            if respondents >= COMMENTS_FROM:
                found = await feedback.comments(
                    session,
                    scope,
                    spec,
                    indicator_spec.activity,
                    chosen.name if chosen else None,
                    d.rt.clock.now(),
                )
            themes = await feedback.school_themes(session, programme.institution_id)
    async with d.rt.db.session() as session:
        years = await feedback.cohorts(session, programme.id or 0)
    labels: dict[str, str] = {}
    if spec is not None and len(spec.comments) > 1:  # say which question each answers
        try:
            questionnaire = d.rt.questionnaires.deployed(spec.form_id)
            lang = i18n.current_language()
            labels = {
                name: questionnaire.question(name).label(lang)
                for name in spec.comments
                if name in questionnaire
            }
        except KeyError:
            labels = {}
    counts: dict[str, list[Any]] = {}
    for comment in found:
        for tag in comment.tags:
            counts.setdefault(tag.theme_key, [tag.theme, 0])[1] += 1
    theme_counts = sorted(
        ((key, name, n) for key, (name, n) in counts.items()), key=lambda t: (-t[2], t[0])
    )
    shown = [c for c in found if not theme or any(t.theme_key == theme for t in c.tags)]
    wave_names = {w.name: w for w in waves}
    views = [
        CommentView(
            c,
            f"c{c.response_id}-{c.question}",
            wave_label(wave_names.get(c.wave or ""), c.wave),
            _destination_text(indicator_spec, c.activity),
        )
        for c in shown
    ]
    school_param = scope_of(request).institution_id
    filters = {
        "school": school_param,
        "cohort": scope.cohort,
        "wave": chosen.name if chosen else None,
        "theme": theme,
    }
    kept = urlencode({k: v for k, v in filters.items() if v not in (None, "")})
    forms = f"{PREFIX}/programmes/{programme.id}/comments"
    back = _back_query(scope, request)
    problem.setdefault("error", None)
    problem.setdefault("at", None)
    problem.setdefault("typed", "")
    return render(
        request,
        "comments.html",
        status=status,
        cohorts=years,
        question_labels=labels,
        programme=programme,
        back=back,
        waves=[(w, _wave_title(d, w, w.name)) for w in waves],
        chosen=chosen,
        cohort=scope.cohort,
        school_param=school_param,
        hidden=respondents < COMMENTS_FROM,
        fewest=COMMENTS_FROM,
        comments=views,
        total=len(found),
        theme=theme,
        theme_name_of={key: name for key, name, _n in theme_counts},
        theme_counts=theme_counts,
        themes=themes,
        can_tag=may_tag_comments(staff),
        tag_url=f"{forms}/tag" + (f"?{kept}" if kept else ""),
        untag_url=f"{forms}/untag" + (f"?{kept}" if kept else ""),
        link=lambda **p: _comments_url(
            programme,
            school=school_param,
            cohort=scope.cohort,
            wave=chosen.name if chosen else None,
            **p,
        ),
        query=back,
        **problem,
    )


async def _tag_request(
    request: web.Request,
) -> tuple[Programme, FeedbackSpec, int, str, Any]:
    """The programme, spec, response and question of a tag form, checked: the staff member
    may tag, and the comment is a shown comment of this programme in their scope (else 404)."""
    d = dashboard(request)
    programme, _school, _scope = await _programme(request)
    form = await request.post()
    specs = [f for _i, f in _specs(d) if f.comments]
    response_id = row_id(str(form.get("response", "")))
    question = str(form.get("question", ""))
    place = None
    if specs and response_id is not None:
        async with d.rt.db.session() as session:
            place = await feedback.comment_place(
                session, response_id, question, specs[0], d.rt.clock.now()
            )
    if place is None or not place.shown or place.programme_id != programme.id:
        raise web.HTTPNotFound(reason=_("There is no such comment."))
    assert response_id is not None
    return programme, specs[0], response_id, question, form


def _after(request: web.Request, programme: Programme, anchor: str) -> str:
    """Back to the comments page as it was (the form's address holds its filters)."""
    kept = {k: request.query.get(k) for k in ("school", "cohort", "wave", "theme")}
    return _comments_url(programme, **kept) + f"#{anchor}"


@web_access.allow(access.WRITERS)
async def tag_comment(request: web.Request) -> web.StreamResponse:
    d = dashboard(request)
    programme, _spec, response_id, question, form = await _tag_request(request)
    name = theme_name(form.get("theme"))
    if name is None:
        typed = form.get("theme")
        return await comments_page(
            request,
            400,
            error=_("Please give the theme a name of 1 to 60 characters, e.g. “work placement”."),
            at=(response_id, question),
            typed=typed if isinstance(typed, str) else "",
        )
    try:
        async with d.rt.db.session() as session:
            await feedback.add_tag(
                session, programme.institution_id, response_id, question, name, d.rt.clock.now()
            )
    except IntegrityError:
        pass  # the same tag, added at the same moment from another page: it is there
    raise web.HTTPSeeOther(_after(request, programme, f"c{response_id}-{question}"))


@web_access.allow(access.WRITERS)
async def untag_comment(request: web.Request) -> web.StreamResponse:
    d = dashboard(request)
    programme, _spec, response_id, question, form = await _tag_request(request)
    key = form.get("theme")
    if not isinstance(key, str) or not key:
        raise web.HTTPBadRequest(reason=_("Please choose the theme to remove."))
    async with d.rt.db.session() as session:
        await feedback.remove_tag(session, response_id, question, theme_key(key))
    raise web.HTTPSeeOther(_after(request, programme, f"c{response_id}-{question}"))


# ---------------------------------------------------------------- wiring


def add_routes(router: web.UrlDispatcher) -> None:
    programme = f"{PREFIX}/programmes/{{programme}}"
    router.add_get(f"{programme}/expectations", expectations_page)
    router.add_get(f"{programme}/comments", comments_page)
    router.add_post(f"{programme}/comments/tag", tag_comment)
    router.add_post(f"{programme}/comments/untag", untag_comment)
    router.add_get(f"{PREFIX}/exports/expectations.{{format:csv|xlsx}}", export_expectations)
