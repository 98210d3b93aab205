"""The admin dashboard: aiohttp pages under /dashboard, rendered on the server (Jinja2 with
autoescaping, charts as inline SVG), in the staff member's language.

Access: a session from a one-time login link (bot/web/auth.py). Staff of a school see that
school only; staff without a school (admins of all schools) see all and may pick one. Every
POST checks the session's CSRF token. No page loads anything from another origin.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import tempfile
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import jinja2
from aiohttp import web
from babel import Locale
from babel.dates import format_date
from markupsafe import Markup
from sqlalchemy import func
from sqlmodel import col, select

from bot import i18n
from bot.i18n import _
from bot.reporting import (
    Report,
    as_of_text,
    build_report,
    count_text,
    question_drop_off,
    rate_text,
    staff_scope,
    wave_label,
    wave_labels,
)
from bot.runtime import Runtime
from bot.web import access, auth, charts, exports
from bot.web.server import TOO_LARGE_KEY
from conversations.access import ROWS, WRITERS, role_name
from conversations.indicators import (
    BREAKDOWNS,
    DENOMINATORS,
    DESTINATIONS,
    INDICATORS,
    RATES,
    SCHOOL_BREAKDOWNS,
    ChannelCounts,
    Funnel,
    Indicators,
    IndicatorSpec,
    Rate,
    Reach,
    default_specs,
    suppress,
)
from conversations.news_compose import (
    audience_description,
    can_cancel,
    delivery_status_name,
    status_name,
)
from conversations.rules import choose_language
from conversations.waves import Wave
from storage import contacts, stats
from storage.models import Broadcast, Delivery, Institution, Programme, Staff, StaffRole
from storage.news import cancel as cancel_broadcast
from storage.news import failure_reasons
from storage.roster import (
    column_guide,
    import_roster,
    more_problems_text,
    template_csv,
    template_xlsx,
)
from storage.schools import school_questionnaires
from storage.stats import CHANNELS, REACH, Scope
from storage.types import row_id

log = logging.getLogger(__name__)

PREFIX = "/dashboard"
EXPORT_BATCH = 1000
"""Responses per piece of a streamed CSV export."""
TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")

DASHBOARD_KEY = web.AppKey("gradtrack_dashboard", object)
SESSION_KEY = web.RequestKey("gradtrack_session", object)
STREAMING_KEY = web.RequestKey("gradtrack_streaming", bool)
"""Set once a handler has begun a streamed response: an error after that cannot be a page."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` with
    # the dashboard's own form posts, and the Origin check (same_origin) needs the real one
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


# ---------------------------------------------------------------- labels and formats


def destination_label(key: str) -> str:
    return {
        "employed": _("Employed"),
        "working_and_studying": _("Employed and in education or training"),
        "studying": _("In education or training"),
        "looking_for_work": _("Looking for work"),
        "other": _("Other"),
    }[key]


def indicator_name(key: str) -> str:
    """5b, 6a, 6b1 as staff read them (5a is one figure per destination)."""
    return {
        "5b": _("Employed"),
        "6a": _("Work related to the training"),
        "6a_occupation": _("Working in the occupation trained for"),
        "6b1": _("Satisfied with the skills acquired"),
    }[key]


def email_status_label(status: str) -> str:
    """What became of mail to an address, for the roster view."""
    return {
        "bounced": _("Bounced"),
        "unsubscribed": _("Unsubscribed"),
    }.get(status, status)


def breakdown_title(by: str) -> str:
    return {
        "total": _("All respondents"),
        "programme": _("Programme"),
        "eqf": _("EQF level"),
        "gender": _("Gender"),
        "age_band": _("Age at graduation"),
        "pathway": _("School-based or work-based"),
        "vet_kind": _("Initial or continuing VET"),
        "school": _("School"),
        "country": _("Country"),
    }[by]


def breakdowns_for(scope: Scope) -> list[str]:
    """The breakdowns shown for `scope` (besides the total): school and country only to
    staff who see several schools."""
    return [
        by
        for by in BREAKDOWNS
        if by != "total" and (scope.several_schools or by not in SCHOOL_BREAKDOWNS)
    ]


def pathway_label(code: str) -> str:
    return {
        "school_based": _("School-based (e.g. BOL)"),
        "work_based": _("Work-based (e.g. BBL, apprenticeship)"),
    }.get(code, _("Not declared"))


def vet_kind_label(code: str) -> str:
    return {
        "ivet": _("Initial VET (IVET)"),
        "cvet": _("Continuing VET (CVET)"),
    }.get(code, _("Not declared"))


def country_label(code: str) -> str:
    """A country (ISO 3166-1 alpha-2) by its name in the current language."""
    if code == "unknown":
        return _("Unknown")
    name = Locale.parse(i18n.current_language()).territories.get(code.upper())
    return name or code


def gender_label(code: str) -> str:
    return {
        "female": _("Female"),
        "male": _("Male"),
        "other": _("Other"),
    }.get(code, _("Unknown"))


def age_band_label(code: str) -> str:
    return {
        "under_20": _("Under 20"),
        "20_24": "20–24",
        "25_29": "25–29",
        "30_plus": _("30 and over"),
    }.get(code, _("Unknown"))


def reach_label(key: str) -> str:
    """A reach category (storage.stats.REACH) as staff read it."""
    return {
        "chat": _("In a Telegram chat"),
        "web": _("Web chat"),
        "email": _("E-mail only"),
        "bounced": _("E-mail bounced or unsubscribed"),
        "none": _("No way to reach"),
    }[key]


def channel_label(channel: str) -> str:
    """Where responses were begun (storage.stats.CHANNELS)."""
    return {
        "telegram": "Telegram",
        "web": _("Web chat"),
    }.get(channel, _("Channel unknown"))


def date_text(value: date | None) -> str:
    if value is None:
        return "–"
    return format_date(value, format="medium", locale=i18n.current_language())


def rate_cell(rate: Rate | None) -> str:
    """A percentage as the dashboard shows it: "–" (with the page's footnote "– fewer than 5
    people: not shown") where it is suppressed or undefined, never "<5", which would read as
    a percentage under 5."""
    if rate is None or rate.suppressed:
        return "–"
    return rate_text(rate)


def _percent(rate: Rate | None) -> float | None:
    if rate is None or rate.value is None:
        return None
    return rate.value * 100


# ---------------------------------------------------------------- context


@dataclass
class Dashboard:
    rt: Runtime
    cookies: auth.Cookies
    env: jinja2.Environment
    specs: dict[str, IndicatorSpec]
    secure_cookie: bool

    def respondent_key(self, graduate_id: int, *, research: bool = False) -> str:
        """A graduate's stable pseudonym in exports: an HMAC of their id under the app's
        secret. A researcher's (`research`) is another one, so that a research export cannot
        be joined row by row with an admin's, which has the free-text answers."""
        kind = "research" if research else "respondent"
        digest = hmac.new(self.rt.settings.key, f"{kind}:{graduate_id}".encode(), "sha256")
        return digest.hexdigest()[:16]


def template_environment(**globals_: Any) -> jinja2.Environment:
    """The service's templates (bot/web/templates): escaped, strict, translated with the
    request's language (bot.i18n), with `globals_` for every template."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True
    )
    env.globals.update(globals_)
    return env


def _environment() -> jinja2.Environment:
    env = template_environment()
    env.globals.update(
        count=count_text,
        rate=rate_cell,
        day=date_text,
        destination_label=destination_label,
        reach_label=reach_label,
        channel_label=channel_label,
        wave_label=wave_label,
        breakdown_title=breakdown_title,
        pathway_label=pathway_label,
        vet_kind_label=vet_kind_label,
        language_name=i18n.language_name,
        LANGUAGES=i18n.LANGUAGES,
        DESTINATIONS=DESTINATIONS,
        WRITERS=sorted(role.value for role in WRITERS),
    )
    return env


def dashboard(request: web.Request) -> Dashboard:
    value = request.app[DASHBOARD_KEY]
    assert isinstance(value, Dashboard)
    return value


def accepted_language(header: str) -> str | None:
    """The reader's most wanted language that the dashboard speaks, from an Accept-Language
    header ("et-EE,et;q=0.9,en;q=0.8"): by quality, then by order; None if none is ours."""
    choices: list[tuple[float, int, str]] = []
    for order, part in enumerate(header.split(",")[:50]):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _eq, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        code = i18n.normalise_language(tag.strip())
        if code is not None and quality > 0:
            choices.append((-quality, order, code))
    return min(choices)[2] if choices else None


def _request_language(request: web.Request, staff: Staff | None) -> str:
    """The staff member's language, else the browser's (Accept-Language), else English."""
    accepted = accepted_language(request.headers.get("Accept-Language", ""))
    return choose_language(staff.language if staff else None, accepted, None)


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    d = dashboard(request)
    session = request.get(SESSION_KEY)
    values.setdefault("query", "")
    body = d.env.get_template(template).render(
        session=session,
        lang=i18n.current_language(),
        path=request.path_qs,
        **values,
    )
    return web.Response(text=body, content_type="text/html", status=status, charset="utf-8")


def message(
    request: web.Request, title: str, text: str, status: int, *, home: bool = False
) -> web.Response:
    """A page with a heading and a sentence (`home`: and a link to the dashboard)."""
    return render(request, "message.html", status=status, title=title, text=text, home=home)


# ---------------------------------------------------------------- middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(PREFIX):
        return await _outside_the_dashboard(request, handler)
    d = dashboard(request)
    session = await auth.load_session(
        d.rt.db, d.cookies, request.cookies.get(auth.COOKIE_NAME), d.rt.clock.now()
    )
    i18n.set_language(_request_language(request, session.staff if session else None))
    rule = access.request_rule(request)
    if access.matched(request):
        public = rule == access.PUBLIC
    else:  # no such page: after the login check, its 404 or 405 page
        public = request.path.startswith((f"{PREFIX}/login", f"{PREFIX}/static/"))
    if rule is None and access.matched(request):
        log.error(
            "no access rule for %s %s: refused (bot/web/access.py)", request.method, request.path
        )
    if session is None and not public:
        response: web.StreamResponse = message(
            request,
            _("Please log in"),
            _(
                "Your session has ended or you are not logged in. Send /dashboard to the bot "
                "in Telegram to get a new login link."
            ),
            401,
        )
    elif request.method == "POST" and not same_origin(request, d.rt.settings.base_url):
        response = message(
            request,
            _("Not allowed"),
            _("This form was sent from another website. Please use the dashboard's own pages."),
            403,
        )
    elif (
        session is not None
        and access.matched(request)
        and not access.permits(rule, session.staff.role)
    ):
        request[SESSION_KEY] = session
        response = message(request, _("Not allowed"), role_refusal(session.staff), 403, home=True)
    else:
        request[SESSION_KEY] = session
        if request.method == "POST" and session is not None and not public:
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge:
                response = too_large_page(request, request.client_max_size)
                _secure(response)
                return response
            if not auth.csrf_ok(session, form.get("csrf")):
                response = message(
                    request,
                    _("This form has expired"),
                    _("Please go back, reload the page and try again."),
                    403,
                )
                _secure(response)
                return response
        try:
            response = await handler(request)
        except web.HTTPRequestEntityTooLarge:
            response = too_large_page(request, request.client_max_size)
        except web.HTTPException as exc:
            if exc.status >= 400:
                response = error_page(request, exc)
            else:
                raise
        except Exception:
            if request.get(STREAMING_KEY):
                raise
            log.exception("%s %s failed", request.method, request.path)
            response = message(request, _("Something went wrong"), _error_text(500), 500, home=True)
    _secure(response)
    return response


def role_refusal(staff: Staff) -> str:
    """Why a staff member may not open a page: their role, and where to go instead."""
    return _(
        "This page is not open to your role ({role}). Please go back to the dashboard."
    ).format(role=role_name(staff.role))


async def _outside_the_dashboard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Routes of their own (webhook, health, metrics) answer as they do; an address with no
    route gets a page in the reader's language (Accept-Language) instead of bare text. A
    route without a rule (bot/web/access.py) is refused, as in the dashboard."""
    if access.matched(request) and access.request_rule(request) != access.PUBLIC:
        log.error(
            "no access rule for %s %s: refused (bot/web/access.py)", request.method, request.path
        )
        raise web.HTTPForbidden()
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        i18n.set_language(_request_language(request, None))
        response = error_page(request, exc)
        _secure(response)
        return response


def error_page(request: web.Request, exc: web.HTTPException) -> web.Response:
    """An HTTP error as a page in the reader's language: the handler's own (translated)
    reason, or, for aiohttp's English default ("Not Found"), a text of ours."""
    default = exc.reason == HTTPStatus(exc.status).phrase if exc.status in _STATUSES else True
    text = _error_text(exc.status) if default or not exc.reason else exc.reason
    return message(
        request, _error_title(exc.status), text, exc.status, home=exc.status in (404, 405)
    )


_STATUSES = {status.value for status in HTTPStatus}


@access.public
async def root(_request: web.Request) -> web.StreamResponse:
    """The site's address alone: the dashboard."""
    raise web.HTTPFound(PREFIX)


def same_origin(request: web.Request, base_url: str) -> bool:
    """Whether a POST comes from the dashboard's own pages: its Origin header (every browser
    sends one with a POST), else its Referer, names this service (PUBLIC_URL, or the address
    the request was sent to). A request with neither is refused too, as Django does over
    HTTPS: no browser sends such a POST, and a client that is not a browser has no session
    to abuse."""
    given = request.headers.get("Origin")
    if given is None or given == "null":
        referer = request.headers.get("Referer")
        if given is None and referer:
            parts = urlsplit(referer)
            given = f"{parts.scheme}://{parts.netloc}"
    if not given or given == "null":
        return False
    own = urlsplit(base_url)
    allowed = {f"{own.scheme}://{own.netloc}".lower(), f"{request.scheme}://{request.host}".lower()}
    return given.strip().lower() in allowed


def too_large_page(request: web.Request, limit: int) -> web.Response:
    """A body over `limit` bytes (see bot.web.server.WebLimits), in the reader's language."""
    if request.get(SESSION_KEY) is None:
        i18n.set_language(_request_language(request, None))
    response = message(
        request,
        _("Too large"),
        _("What you sent is larger than the {size} this page accepts.").format(
            size=size_text(limit)
        ),
        413,
    )
    _secure(response)
    return response


def _too_large_hook(request: web.Request, limit: int) -> web.StreamResponse | None:
    return too_large_page(request, limit) if request.path.startswith(PREFIX) else None


def size_text(n: int) -> str:
    """Bytes for people: "64 KB", "10 MB" (1 MB = 1024 KB)."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.3g} MB"
    return f"{max(1, round(n / 1024))} KB"


def _error_title(status: int) -> str:
    if status == 401:
        return _("Please log in")
    if status == 403:
        return _("Not allowed")
    if status == 404:
        return _("Not found")
    if status == 413:
        return _("Too large")
    if status >= 500:
        return _("Something went wrong")
    return _("Please check your request")


def _error_text(status: int) -> str:
    """What to say, and what to do next, for an error without a reason of ours."""
    if status == 404:
        return _("There is no page at this address. Please check the link, or go to the dashboard.")
    if status == 405:
        return _("This page cannot be opened this way. Please go to the dashboard.")
    if status == 403:
        return _("You are not allowed to open this page.")
    if status >= 500:
        return _(
            "The dashboard could not show this page. Please try again in a minute; if it "
            "happens again, tell your administrator."
        )
    return _("Please check the address and try again.")


def _secure(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _session(request: web.Request) -> auth.Session:
    session = request.get(SESSION_KEY)
    assert isinstance(session, auth.Session)
    return session


# ---------------------------------------------------------------- login and logout


@access.public
async def login_page(request: web.Request) -> web.Response:
    d = dashboard(request)
    token = request.match_info["token"]
    checked = await auth.check_login(d.rt.db, token, d.rt.clock.now())
    if isinstance(checked, auth.LoginProblem):
        return _login_problem(request, checked)
    _login, staff = checked
    i18n.set_language(_request_language(request, staff))
    return render(request, "login.html", token=token, name=staff.name or "")


def _login_problem(request: web.Request, problem: auth.LoginProblem) -> web.Response:
    texts = {
        auth.LoginProblem.UNKNOWN: _(
            "This login link is not valid. Send /dashboard to the bot to get a new one."
        ),
        auth.LoginProblem.USED: _(
            "This login link has already been used. Send /dashboard to the bot to get a new one."
        ),
        auth.LoginProblem.EXPIRED: _(
            "This login link has expired. Send /dashboard to the bot to get a new one."
        ),
    }
    return message(request, _("Cannot log in"), texts[problem], 403)


@access.public
async def login_submit(request: web.Request) -> web.StreamResponse:
    d = dashboard(request)
    form = await request.post()
    token = form.get("token")
    if not isinstance(token, str):
        return _login_problem(request, auth.LoginProblem.UNKNOWN)
    redeemed = await auth.redeem_login(d.rt.db, token, d.rt.clock.now())
    if isinstance(redeemed, auth.LoginProblem):
        return _login_problem(request, redeemed)
    login, _staff = redeemed
    assert login.id is not None
    response = web.Response(status=303, headers={"Location": PREFIX})
    response.set_cookie(
        auth.COOKIE_NAME,
        d.cookies.seal(login, auth.new_csrf()),
        max_age=auth.SESSION_HOURS * 3600,
        path=PREFIX,
        httponly=True,
        secure=d.secure_cookie,
        samesite="Lax",
    )
    return response


@access.allow(access.EVERYONE)
async def logout(request: web.Request) -> web.StreamResponse:
    d = dashboard(request)
    await auth.end_session(d.rt.db, _session(request).login_id, d.rt.clock.now())
    request[SESSION_KEY] = None
    response = message(
        request, _("Logged out"), _("You are logged out. You can close this page."), 200
    )
    response.del_cookie(auth.COOKIE_NAME, path=PREFIX)
    return response


@access.allow(access.EVERYONE)
async def set_language(request: web.Request) -> web.StreamResponse:
    d = dashboard(request)
    form = await request.post()
    lang = form.get("language")
    if not isinstance(lang, str) or lang not in i18n.LANGUAGES:
        raise web.HTTPBadRequest(reason=_("Unknown language"))
    staff_id = _session(request).staff.id
    async with d.rt.db.session() as session:
        staff = await session.get(Staff, staff_id)
        if staff is not None:
            staff.language = lang
            session.add(staff)
    return web.Response(status=303, headers={"Location": safe_next(form.get("next"))})


def safe_next(value: object) -> str:
    """Where to send the reader back to: `value` if it is a dashboard page of this site, else
    the dashboard's home. Refused: other sites (`//evil`, `http://…`, `/\\evil`), paths out of
    the dashboard (`/dashboard/..`), line breaks and other control characters, also
    percent-encoded (`%0d%0a`)."""
    if not isinstance(value, str) or len(value) > 2000:
        return PREFIX
    decoded = unquote(value)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value + decoded) or "\\" in decoded:
        return PREFIX
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith(PREFIX):
        return PREFIX
    if value[len(PREFIX) : len(PREFIX) + 1] not in ("", "/", "?"):
        return PREFIX  # /dashboardx is not a dashboard page
    if ".." in decoded.split("?")[0].split("/"):
        return PREFIX  # /dashboard/../elsewhere
    return value


# ---------------------------------------------------------------- scope


MAX_COHORT = 9999


def _int_param(request: web.Request, name: str, largest: int | None = None) -> int | None:
    """?name= as a row id (or, with `largest`, a number up to it): plain ASCII digits in
    range, else 400 (never "²", "-1", "1e3" or 10**30 to the database)."""
    value = request.query.get(name, "")
    if not value:
        return None
    if largest is None:
        number = row_id(value)
    elif len(value) <= len(str(largest)) and value.isascii() and value.isdigit():
        number = int(value) if int(value) <= largest else None
    else:
        number = None
    if number is None:
        raise web.HTTPBadRequest(reason=_("Please check the filter values."))
    return number


def scope_of(request: web.Request, programme_id: int | None = None) -> Scope:
    """The session's scope, narrowed by ?school= (admins of all schools) and ?cohort=."""
    staff = _session(request).staff
    own = staff_scope(staff)
    school = _int_param(request, "school")
    if staff.institution_id is not None:
        if school is not None and school != staff.institution_id:
            raise web.HTTPForbidden(reason=_("You can only see your own school."))
        school = staff.institution_id
    if own.institution_ids is not None and school is not None and school not in own.institution_ids:
        raise web.HTTPForbidden(reason=_("You can only see your own schools."))
    return Scope(
        institution_id=school,
        programme_id=programme_id,
        cohort=_int_param(request, "cohort", MAX_COHORT),
        institution_ids=own.institution_ids,
        programme_ids=own.programme_ids,
    )


def _query(scope: Scope, **extra: Any) -> str:
    params = {"school": scope.institution_id, "cohort": scope.cohort, **extra}
    kept = {k: v for k, v in params.items() if v is not None and v != ""}
    return "?" + urlencode(kept) if kept else ""


async def _report(
    request: web.Request,
    scope: Scope,
    *,
    kept: bool = False,
    wave: str | None = None,
    breakdowns: Sequence[str] = BREAKDOWNS,
) -> Report:
    """The report of `scope`; `kept`: from the summary counts when there are any (the page
    then says as of when, `as_of_text`), with `wave`'s question rows; the indicators by
    `breakdowns`."""
    d = dashboard(request)
    now = d.rt.clock.now()
    return await build_report(
        d.rt.db,
        d.rt.plans,
        d.specs,
        scope,
        today=now.date(),
        now=now,
        kept=kept,
        wave=wave,
        breakdowns=breakdowns,
    )


def _scope_name(report: Report, scope: Scope) -> str:
    if scope.institution_id is None and scope.institution_ids is not None:
        return ", ".join(sorted(school.name for school in report.names.schools.values())) or "–"
    if scope.institution_id is None:
        return _("All schools")
    school = report.names.schools.get(scope.institution_id)
    return school.name if school else "?"


def _wave_title(d: Dashboard, wave: Wave | None, name: str | None) -> str:
    """The wave by its name in the staff member's language, and its questionnaire's title."""
    label = wave_label(wave, name)
    if wave is None:
        return label
    try:
        title = d.rt.questionnaires.deployed(wave.questionnaire).title_in(i18n.current_language())
    except KeyError:
        return label
    return f"{label} · {title}"


# ---------------------------------------------------------------- tables for templates


@dataclass
class FunnelLine:
    label: str
    href: str | None
    funnel: Funnel

    def __post_init__(self) -> None:
        self.shown = self.funnel.shown()


@dataclass
class IndicatorLine:
    label: str
    counts: Indicators

    def __post_init__(self) -> None:
        self.respondents = suppress(self.counts.respondents)
        self.completers = suppress(self.counts.completers)
        self.shares = {over: self.counts.shares_5a(over) for over in DENOMINATORS}
        self.rates = {over: self.counts.rates(over) for over in DENOMINATORS}


@dataclass(frozen=True)
class EqavetRow:
    """One line of the EQAVET reporting table: an indicator (a 5a destination, 5b, 6a, 6b1)
    from the wave it is reported from."""

    key: str
    label: str
    wave: str
    of_respondents: Rate | None
    counted_over: int | None
    of_completers: Rate | None
    completers: int | None
    response_rate: Rate


def _eqavet_rows(d: Dashboard, report: Report) -> list[EqavetRow]:
    """The indicators of each questionnaire with a designated wave (indicators.yaml
    `reported_at`), in EQAVET's order; a 5a destination hidden by secondary suppression is
    hidden over the completers too."""
    rows: list[EqavetRow] = []
    for form_id in report.indicators:
        for indicator in INDICATORS:
            wave = report.reported(form_id, indicator)
            if wave is None:
                continue
            c = report.wave_indicators(wave.name).get("total", Indicators())
            title = _wave_title(d, wave, wave.name)
            if indicator == "5a":
                mine = c.shares_5a("respondents")
                theirs = c.shares_5a("completers")
                for key in DESTINATIONS:
                    rows.append(
                        EqavetRow(
                            f"5a_{key}",
                            f"5a · {destination_label(key)}",
                            title,
                            mine[key],
                            suppress(c.respondents),
                            theirs[key],
                            suppress(c.completers),
                            c.response_rate,
                        )
                    )
                continue
            # 6a is two figures: perceived related, and in the occupation trained for.
            keys = (indicator, "6a_occupation") if indicator == "6a" else (indicator,)
            for key in keys:
                rate = c.rates("respondents")[key]
                over = c.rates("completers")[key]
                rows.append(
                    EqavetRow(
                        key,
                        f"{indicator} · {indicator_name(key)}",
                        title,
                        rate,
                        suppress(rate.denominator),
                        over,
                        suppress(c.completers),
                        c.response_rate,
                    )
                )
    return rows


@dataclass
class ReachLine:
    key: str
    label: str
    count: int | None
    share: Rate | None


def _reach_lines(reach: Reach) -> tuple[list[ReachLine], int | None]:
    """The reach table's rows (REACH order) and its total, suppressed."""
    shown, shares = reach.shown(), reach.shares()
    lines = [ReachLine(key, reach_label(key), shown[key], shares[key]) for key in REACH]
    return lines, suppress(reach.total)


@dataclass
class ChannelLine:
    label: str
    href: str | None
    counts: ChannelCounts

    def __post_init__(self) -> None:
        self.invited = suppress(self.counts.invited)


def _channels_of(lines: list[ChannelLine]) -> list[str]:
    """The channels a channel table shows: Telegram and the web chat, and "unknown" where
    a response of its rows was begun before the channel was recorded."""
    unknown = any(line.counts.completed.get("unknown", 0) for line in lines)
    return [c for c in CHANNELS if c != "unknown" or unknown]


def _wave_channel_lines(d: Dashboard, report: Report) -> list[ChannelLine]:
    """Per wave (not linked: the responses table above links each wave)."""
    return [
        ChannelLine(
            _wave_title(d, wave, wave.name),
            None,
            report.by_wave_channel.get(wave.name, ChannelCounts()),
        )
        for wave in report.waves
    ]


def _wave_lines(d: Dashboard, report: Report, scope: Scope) -> list[FunnelLine]:
    lines = []
    for wave in report.waves:
        funnel = report.by_wave.get(wave.name, Funnel())
        href = f"{PREFIX}/waves/{wave.name}{_query(scope)}"
        lines.append(FunnelLine(_wave_title(d, wave, wave.name), href, funnel))
    if None in report.by_wave:
        lines.append(FunnelLine(_wave_title(d, None, None), None, report.by_wave[None]))
    return lines


def _breakdown_label(report: Report, by: str, key: Hashable) -> str:
    if by == "programme":
        programme = report.names.programmes.get(key) if isinstance(key, int) else None
        return f"{programme.code} · {programme.name}" if programme else str(key)
    if by == "eqf":
        return _("EQF {level}").format(level=key) if key is not None else _("Unknown")
    if by == "gender":
        return gender_label(str(key))
    if by == "age_band":
        return age_band_label(str(key))
    if by == "pathway":
        return pathway_label(str(key))
    if by == "vet_kind":
        return vet_kind_label(str(key))
    if by == "school":
        school = report.names.schools.get(key) if isinstance(key, int) else None
        return school.name if school else str(key)
    if by == "country":
        return country_label(str(key))
    return _("All respondents")


def _indicator_lines(report: Report, wave: str, by: str) -> list[IndicatorLine]:
    groups = report.wave_indicators(wave, by)
    lines = [IndicatorLine(_breakdown_label(report, by, k), v) for k, v in groups.items()]
    return sorted(lines, key=lambda line: line.label)


def _tracking_waves(report: Report) -> list[Wave]:
    return [w for w in report.waves if w.questionnaire in report.indicators]


# ---------------------------------------------------------------- charts


def _rate_chart(title: str, lines: list[FunnelLine]) -> Markup:
    bars = [
        charts.Bar(line.label, _percent(line.funnel.rate), rate_cell(line.funnel.rate), line.href)
        for line in lines
    ]
    return Markup(charts.bar_chart(title, bars, max_value=100, empty_text=_("No data yet")))


def _funnel_chart(title: str, funnel: Funnel) -> Markup:
    shown = funnel.shown()
    steps = [
        (_("Graduates"), "graduates"),
        (_("Reachable"), "reachable"),
        (_("Invited"), "invited"),
        (_("Started"), "started"),
        (_("Completed"), "completed"),
    ]
    bars = [charts.Bar(label, shown[key], count_text(shown[key])) for label, key in steps]
    return Markup(charts.bar_chart(title, bars, empty_text=_("No data yet")))


def _weekly_chart(title: str, series: list[tuple[date, int | None]]) -> Markup:
    points = [charts.Bar(date_text(week), n, count_text(n)) for week, n in series]
    return Markup(charts.column_chart(title, points, empty_text=_("No data yet")))


def _destinations_chart(title: str, rows: list[tuple[str, Indicators]]) -> Markup:
    stacked = []
    for label, counts in rows:
        shares = counts.shares_5a()
        segments = [
            charts.Bar(
                destination_label(key),
                _percent(shares[key]) if shares[key] is not None else None,
                rate_cell(shares[key]),
            )
            for key in DESTINATIONS
        ]
        stacked.append((label, segments))
    legend = [destination_label(key) for key in DESTINATIONS]
    return Markup(charts.stacked_bar(title, stacked, legend=legend, empty_text=_("No data yet")))


def _indicator_chart(title: str, rows: list[tuple[str, Rate]]) -> Markup:
    bars = [charts.Bar(label, _percent(r), rate_cell(r)) for label, r in rows]
    return Markup(charts.bar_chart(title, bars, max_value=100, empty_text=_("No data yet")))


# ---------------------------------------------------------------- pages


@access.allow(access.EVERYONE)
async def overview(request: web.Request) -> web.Response:
    d = dashboard(request)
    scope = scope_of(request)
    # The overview shows the indicators' totals only (the drill-downs break them down).
    report = await _report(request, scope, kept=True, breakdowns=("total",))
    lines = _wave_lines(d, report, scope)
    focus = next((line for line in lines if line.funnel.started), lines[0] if lines else None)
    tracking = _tracking_waves(report)
    totals = [
        (_wave_title(d, w, w.name), report.wave_indicators(w.name).get("total", Indicators()))
        for w in tracking
    ]
    programme_rows = _programme_matrix(report, scope)
    schools = await _schools(d, _session(request).staff)
    reach_lines, reach_total = _reach_lines(report.reach())
    channel_lines = _wave_channel_lines(d, report)
    return render(
        request,
        "overview.html",
        as_of=as_of_text(report),
        reach_lines=reach_lines,
        reach_total=reach_total,
        channel_lines=channel_lines,
        channels=_channels_of(channel_lines),
        scope=scope,
        scope_name=_scope_name(report, scope),
        schools=schools,
        cohorts=report.cohorts,
        lines=lines,
        waves=report.waves,
        programme_rows=programme_rows,
        indicator_rows=[IndicatorLine(label, counts) for label, counts in totals],
        eqavet_rows=_eqavet_rows(d, report),
        rate_chart=_rate_chart(_("Response rate per wave"), lines),
        funnel_chart=(
            _funnel_chart(_("Status funnel: {wave}").format(wave=focus.label), focus.funnel)
            if focus
            else None
        ),
        weekly_chart=_weekly_chart(_("Completed responses per week"), report.weekly()),
        destinations_chart=_destinations_chart(_("EQAVET 5a: destinations"), totals),
        employed_chart=_indicator_chart(
            _("EQAVET 5b: employed"), [(label, c.i5b) for label, c in totals]
        ),
        related_chart=_indicator_chart(
            _("EQAVET 6a: work related to the training"), [(label, c.i6a) for label, c in totals]
        ),
        occupation_chart=_indicator_chart(
            _("EQAVET 6a: working in the occupation trained for"),
            [(label, c.i6a_occupation) for label, c in totals],
        ),
        relevant_chart=_indicator_chart(
            _("EQAVET 6b1: satisfied with the skills acquired"),
            [(label, c.i6b1) for label, c in totals],
        ),
        use_chart=_indicator_chart(
            _("Use of skills at work (employed)"),
            [(label, c.use_of_skills) for label, c in totals],
        ),
        query=_query(scope),
    )


@dataclass
class ProgrammeRow:
    label: str
    href: str
    cells: list[tuple[int | None, Rate]]


def _programme_matrix(report: Report, scope: Scope) -> list[ProgrammeRow]:
    rows = []
    for programme_id, programme in report.names.programmes.items():
        cells = []
        seen = False
        for wave in report.waves:
            funnel = report.by_wave_programme.get((wave.name, programme_id))
            if funnel is not None:
                seen = True
            funnel = funnel or Funnel()
            cells.append((funnel.shown()["completed"], funnel.rate))
        if seen:
            href = f"{PREFIX}/programmes/{programme_id}{_query(scope)}"
            rows.append(ProgrammeRow(f"{programme.code} · {programme.name}", href, cells))
    return rows


async def _schools(d: Dashboard, staff: Staff) -> list[Institution]:
    """The schools a staff member may choose between: all, a regional group, or none."""
    if staff.institution_id is not None:
        return []
    query = select(Institution).order_by(col(Institution.name))
    own = staff_scope(staff).institution_ids
    if own is not None:
        query = query.where(col(Institution.id).in_(own))
    async with d.rt.db.session() as session:
        return list((await session.exec(query)).all())


@access.allow(access.EVERYONE)
async def wave_page(request: web.Request) -> web.Response:
    d = dashboard(request)
    name = request.match_info["wave"]
    scope = scope_of(request)
    report = await _report(request, scope, kept=True, wave=name)
    wave = report.wave(name)
    if wave is None:
        raise web.HTTPNotFound(reason=_("There is no such wave."))
    funnel = report.by_wave.get(name, Funnel())
    by_programme = [
        FunnelLine(
            _breakdown_label(report, "programme", p),
            f"{PREFIX}/programmes/{p}{_query(scope)}",
            f,
        )
        for (w, p), f in sorted(report.by_wave_programme.items(), key=lambda kv: kv[0][1])
        if w == name
    ]
    by_cohort = [
        FunnelLine(str(c), f"{PREFIX}/waves/{name}{_query(scope, cohort=c)}", f)
        for (w, c), f in sorted(report.by_wave_cohort.items(), key=lambda kv: kv[0][1])
        if w == name
    ]
    by_school = [
        FunnelLine(
            report.names.schools[i].name if i in report.names.schools else str(i),
            f"{PREFIX}/waves/{name}{_query(Scope(i, None, scope.cohort))}",
            f,
        )
        for (w, i), f in sorted(report.by_wave_school.items(), key=lambda kv: kv[0][1])
        if w == name
    ]
    channel_lines = [
        ChannelLine(_("All programmes"), None, report.by_wave_channel.get(name, ChannelCounts()))
    ]
    # Not linked: the programmes table below links each programme.
    channel_lines += [
        ChannelLine(_breakdown_label(report, "programme", p), None, counts)
        for (w, p), counts in sorted(
            report.by_wave_programme_channel.items(), key=lambda kv: kv[0][1]
        )
        if w == name
    ]
    breakdowns = {by: _indicator_lines(report, name, by) for by in breakdowns_for(scope)}
    total = report.wave_indicators(name).get("total")
    drop = await question_drop_off(d.rt.db, d.rt.questionnaires, scope, wave, report)
    try:
        questionnaire = d.rt.questionnaires.deployed(wave.questionnaire)
        labels = {q.name: q.label(i18n.current_language()) for q in questionnaire.questions}
    except KeyError:
        labels = {}
    return render(
        request,
        "wave.html",
        as_of=as_of_text(report),
        scope=scope,
        scope_name=_scope_name(report, scope),
        title=_wave_title(d, wave, name),
        funnel=FunnelLine(name, None, funnel),
        funnel_chart=_funnel_chart(_("Status funnel"), funnel),
        channel_lines=channel_lines,
        channels=_channels_of(channel_lines),
        weekly_chart=_weekly_chart(_("Completed responses per week"), report.weekly(name)),
        by_programme=by_programme,
        by_cohort=by_cohort,
        by_school=by_school if scope.several_schools else [],
        has_indicators=wave.questionnaire in report.indicators,
        reported_here=", ".join(
            i for i in INDICATORS if report.reported(wave.questionnaire, i) == wave
        ),
        total=IndicatorLine(_("All respondents"), total) if total else None,
        breakdowns=breakdowns,
        drop_off=drop,
        question_labels=labels,
        suppress=suppress,
        query=_query(scope),
    )


@access.allow(access.EVERYONE)
async def programme_page(request: web.Request) -> web.Response:
    d = dashboard(request)
    programme_id = row_id(request.match_info["programme"])
    if programme_id is None:
        raise web.HTTPNotFound(reason=_("There is no such programme."))
    base = scope_of(request)
    async with d.rt.db.session() as session:
        programme = await session.get(Programme, programme_id)
    if programme is None or not base.holds(programme.institution_id, programme.id):
        raise web.HTTPNotFound(reason=_("There is no such programme."))
    scope = Scope(
        programme.institution_id,
        programme.id,
        base.cohort,
        institution_ids=base.institution_ids,
        programme_ids=base.programme_ids,
    )
    report = await _report(request, scope)
    lines = _wave_lines(d, report, base)
    by_cohort = [
        FunnelLine(f"{w} · {c}", None, f)
        for (w, c), f in sorted(
            report.by_wave_cohort.items(), key=lambda kv: (kv[0][1], kv[0][0] or "")
        )
    ]
    tracking = _tracking_waves(report)
    totals = [
        IndicatorLine(
            _wave_title(d, w, w.name), report.wave_indicators(w.name).get("total", Indicators())
        )
        for w in tracking
    ]
    reach_lines, reach_total = _reach_lines(report.reach(programme.id))
    channel_lines = _wave_channel_lines(d, report)
    return render(
        request,
        "programme.html",
        reach_lines=reach_lines,
        reach_total=reach_total,
        channel_lines=channel_lines,
        channels=_channels_of(channel_lines),
        scope=base,
        scope_name=_scope_name(report, base),
        programme=programme,
        lines=lines,
        by_cohort=by_cohort,
        indicator_rows=totals,
        rate_chart=_rate_chart(_("Response rate per wave"), lines),
        query=_query(base),
    )


@access.allow(access.WRITERS)
async def broadcasts_page(request: web.Request) -> web.Response:
    d = dashboard(request)
    staff = _session(request).staff
    async with d.rt.db.session() as session:
        query = (
            select(Broadcast, Staff)
            .join(Staff, col(Broadcast.created_by) == col(Staff.id), isouter=True)
            .where(Broadcast.status != "draft")
        )
        if staff.institution_id is not None:
            query = query.where(Broadcast.institution_id == staff.institution_id)
        rows = (await session.exec(query.order_by(col(Broadcast.id).desc()).limit(200))).all()
    broadcasts = [(broadcast, creator_label(creator)) for broadcast, creator in rows]
    return render(
        request, "broadcasts.html", broadcasts=broadcasts, status_name=status_name, query=""
    )


def creator_label(creator: Staff | None) -> str:
    """Who wrote a broadcast: a staff member's name, a removed staff member (whose row keeps
    nothing that identifies them), or the command line (no creator)."""
    if creator is None:
        return _("command line")
    if creator.removed_at is not None:
        return _("removed staff member")
    return creator.name or _("staff member")


async def _own_broadcast(request: web.Request, session: Any) -> Broadcast:
    """The broadcast of the URL, if the staff member's scope holds it (else 404)."""
    staff = _session(request).staff
    broadcast_id = row_id(request.match_info["broadcast"])
    broadcast = await session.get(Broadcast, broadcast_id) if broadcast_id else None
    if broadcast is None or (
        staff.institution_id is not None and broadcast.institution_id != staff.institution_id
    ):
        raise web.HTTPNotFound(reason=_("There is no such broadcast."))
    return broadcast


@access.allow(access.WRITERS)
async def broadcast_page(request: web.Request) -> web.Response:
    d = dashboard(request)
    staff = _session(request).staff
    async with d.rt.db.session() as session:
        broadcast = await _own_broadcast(request, session)
        assert broadcast.id is not None
        statuses = await stats_of_deliveries(session, broadcast.id)
        reasons = (await failure_reasons(session, [broadcast.id])).get(broadcast.id, [])
        audience = await audience_description(session, broadcast, wave_labels(d.rt.plans))
        creator = await session.get(Staff, broadcast.created_by) if broadcast.created_by else None
    return render(
        request,
        "broadcast.html",
        broadcast=broadcast,
        creator=creator_label(creator),
        statuses=sorted(statuses.items()),
        reasons=reasons,
        audience=audience,
        can_cancel=can_cancel(staff, broadcast),
        status_name=status_name,
        delivery_status_name=delivery_status_name,
        query="",
    )


@access.allow(access.WRITERS)
async def broadcast_cancel(request: web.Request) -> web.StreamResponse:
    """Stop a scheduled or sending broadcast (the form's CSRF token and Origin are checked
    by the session middleware, as for every dashboard form)."""
    d = dashboard(request)
    staff = _session(request).staff
    async with d.rt.db.session() as session:
        broadcast = await _own_broadcast(request, session)
    assert broadcast.id is not None
    if not can_cancel(staff, broadcast):
        return message(
            request,
            _("Not cancelled"),
            _("This broadcast has already finished or was cancelled."),
            409,
        )
    await cancel_broadcast(d.rt.db, broadcast.id, d.rt.clock.now())
    raise web.HTTPSeeOther(f"{PREFIX}/broadcasts/{broadcast.id}")


async def stats_of_deliveries(session: Any, broadcast_id: int) -> dict[str, int]:
    rows = await session.exec(
        select(Delivery.status, func.count())
        .where(Delivery.broadcast_id == broadcast_id)
        .group_by(col(Delivery.status))
    )
    return {status: int(n) for status, n in rows.all()}


async def _roster_page(
    request: web.Request, schools: list[Institution], status: int = 200, **values: Any
) -> web.Response:
    """The roster page: the columns a file may have (with a meaning and an example each, in
    the staff member's language), the templates to download, the form, and `values`."""
    d = dashboard(request)
    staff = _session(request).staff
    async with d.rt.db.session() as session:
        school = (
            await session.get(Institution, staff.institution_id)
            if staff.institution_id is not None
            else (schools[0] if schools else None)
        )
        programme = None
        if school is not None and school.id is not None:
            programme = (
                await session.exec(
                    select(Programme)
                    .where(Programme.institution_id == school.id)
                    .order_by(col(Programme.code))
                    .limit(1)
                )
            ).first()
        reach = await contacts.reach(session, staff.institution_id)
    guide = column_guide(
        school_given=staff.institution_id is not None,
        school=school.code if school else None,
        programme=programme.code if programme else None,
    )
    values.setdefault("result", None)
    return render(
        request,
        "roster.html",
        status=status,
        schools=schools,
        guide=guide,
        template_lang=i18n.current_language(),
        query="",
        reach=reach,
        email_status_label=email_status_label,
        **values,
    )


@access.allow(access.WRITERS)
async def roster_page(request: web.Request) -> web.Response:
    d = dashboard(request)
    schools = await _schools(d, _session(request).staff)
    return await _roster_page(request, schools)


@access.allow(access.WRITERS)
async def roster_template(request: web.Request) -> web.Response:
    """An empty roster to fill in, CSV or XLSX, with its header row in the staff member's
    language (or ?lang=), which the importer accepts."""
    lang = request.query.get("lang") or i18n.current_language()
    if lang not in i18n.LANGUAGES:
        raise web.HTTPBadRequest(reason=_("Unknown language"))
    kind = request.match_info["format"]
    if kind == "csv":
        body = await asyncio.to_thread(template_csv, lang)
        content_type, charset = "text/csv", "utf-8"
    else:
        body = await asyncio.to_thread(template_xlsx, lang)
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        charset = None
    return web.Response(
        body=body,
        content_type=content_type,
        charset=charset,
        headers={"Content-Disposition": attachment(f"roster-{lang}.{kind}")},
    )


@access.allow(access.WRITERS)
async def roster_upload(request: web.Request) -> web.Response:
    d = dashboard(request)
    staff = _session(request).staff
    form = await request.post()
    upload = form.get("file")
    schools = await _schools(d, staff)
    if not isinstance(upload, web.FileField):
        return await _roster_page(
            request, schools, status=400, error=_("Please choose a CSV or XLSX file.")
        )
    school_code: str | None = None
    async with d.rt.db.session() as session:
        if staff.institution_id is not None:
            own = await session.get(Institution, staff.institution_id)
            school_code = own.code if own else None
        else:
            chosen = form.get("school")
            if isinstance(chosen, str) and chosen:
                school_code = chosen
    suffix = Path(upload.filename or "roster.csv").suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        return await _roster_page(
            request, schools, status=400, error=_("Please choose a CSV or XLSX file.")
        )
    largest = d.rt.settings.roster_max_bytes
    data = upload.file.read(largest + 1)
    if len(data) > largest:
        return await _roster_page(
            request,
            schools,
            status=413,
            error=_("The file is larger than {size}.").format(size=size_text(largest)),
        )
    dry_run = form.get("mode") != "import"
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"roster{suffix}"
        path.write_bytes(data)
        result = await import_roster(
            d.rt.db,
            path,
            school_code=school_code,
            dry_run=dry_run,
            today=d.rt.clock.now().date(),
            ref_key=d.rt.settings.key,
            limits=d.rt.settings.roster_limits,
            plans=d.rt.plans,
            now=d.rt.clock.now(),
        )
    return await _roster_page(
        request,
        schools,
        status=200 if result.ok else 422,
        result=result,
        more=more_problems_text(result.more_problems) if result.more_problems else "",
        filename=upload.filename,
    )


# ---------------------------------------------------------------- exports


def may_download_rows(staff: Staff) -> bool:
    """Whether `staff` may download row-level data (one row per response, with programme,
    cohort and free text): admins, and researchers without the free text under a pseudonym
    of their own (`research_export`). Officers, programme teams and regional staff get the
    aggregate tables, where every group under five is suppressed, as the privacy notice
    promises."""
    return access.permits(ROWS, staff.role)


def research_export(staff: Staff) -> bool:
    """Whether `staff`'s response exports are the researcher's: no free text (it may name
    people or give contacts), and a pseudonym that is not the admins' respondent key."""
    return staff.role == StaffRole.RESEARCHER.value


def default_form(d: Dashboard) -> str:
    """The questionnaire every export picker starts on, and the one an export without
    ?form= gives: the first with EQAVET indicators (the tracking questionnaire), else the
    first deployed one."""
    forms = d.rt.questionnaires.form_ids
    tracked = [form for form in forms if form in d.specs]
    return (tracked or forms or ["tracking"])[0]


@access.allow(access.EVERYONE)
async def exports_page(request: web.Request) -> web.Response:
    d = dashboard(request)
    scope = scope_of(request)
    report = await _report(request, scope)
    return render(
        request,
        "exports.html",
        rows_allowed=may_download_rows(_session(request).staff),
        research=research_export(_session(request).staff),
        scope=scope,
        forms=d.rt.questionnaires.form_ids,
        default_form=default_form(d),
        waves=report.waves,
        query=_query(scope),
    )


def _export_language(request: web.Request) -> str:
    lang = request.query.get("lang") or i18n.current_language()
    if lang not in i18n.LANGUAGES:
        raise web.HTTPBadRequest(reason=_("Unknown language"))
    return lang


def _known_waves(d: Dashboard) -> set[str]:
    plans = [d.rt.plans.default, *d.rt.plans.overrides.values()]
    return {wave.name for plan in plans for wave in plan.waves}


def attachment(filename: str) -> str:
    """A Content-Disposition header naming `filename`, with any character other than ASCII
    letters, digits, ".", "-" and "_" replaced by "_" (nothing from a request can end up in
    the header as anything else)."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename)
    return f'attachment; filename="{safe}"'


def _download(request: web.Request, name: str, sheets: list[exports.Sheet]) -> web.Response:
    kind = request.match_info["format"]
    if kind == "csv":
        body = exports.to_csv(sheets[0])
        content_type = "text/csv"
    else:
        body = exports.to_xlsx(sheets)
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return web.Response(
        body=body,
        content_type=content_type,
        charset="utf-8" if kind == "csv" else None,
        headers={"Content-Disposition": attachment(f"{name}.{kind}")},
    )


def _form(request: web.Request) -> Any:
    d = dashboard(request)
    form_id = request.query.get("form") or default_form(d)
    try:
        return d.rt.questionnaires.deployed(form_id)
    except KeyError:
        raise web.HTTPNotFound(reason=_("There is no such questionnaire.")) from None


def _record(
    d: Dashboard, row: stats.ResponseRow, *, research: bool = False
) -> exports.ResponseRecord:
    r = row.response
    return exports.ResponseRecord(
        respondent=d.respondent_key(r.graduate_id, research=research),
        school=row.school,
        programme=row.programme,
        cohort=row.cohort,
        wave=r.wave,
        form_id=r.form_id,
        version=r.version,
        status=r.status,
        outcome=row.outcome,
        started=r.started_at.date(),
        completed=r.completed_at.date() if r.completed_at and row.completed else None,
        answers=row.answers,
        language=r.language,
        carried=row.carried,
    )


@access.allow(access.ROWS)
async def export_responses(request: web.Request) -> web.StreamResponse:
    """Every response in scope with codes and labels. CSV streams batch by batch (any size in
    little memory); XLSX is built whole (openpyxl writes the zip at the end). Admins only
    (`may_download_rows`)."""
    if not may_download_rows(_session(request).staff):
        raise web.HTTPForbidden(
            reason=_(
                "Only administrators can download the responses row by row. The indicator and "
                "response-rate tables are open to you."
            )
        )
    d = dashboard(request)
    scope = scope_of(request)
    research = research_export(_session(request).staff)
    lang = _export_language(request)
    questionnaire = _form(request)
    wave = request.query.get("wave") or None
    if wave is not None and wave not in _known_waves(d):
        raise web.HTTPNotFound(reason=_("There is no such wave."))
    name = f"responses-{questionnaire.form_id}" + (f"-{wave}" if wave else "")
    name += "-research" if research else ""
    async with d.rt.db.session() as session:  # choice labels as each school shows them
        schools = await school_questionnaires(session, questionnaire)
    if request.match_info["format"] == "xlsx":
        async with d.rt.db.session() as session:
            records = [
                _record(d, row, research=research)
                async for row in stats.iter_responses(
                    session, scope, questionnaire.form_id, wave, now=d.rt.clock.now()
                )
            ]
        sheet = exports.response_sheet(
            questionnaire, records, lang, schools=schools, free_text=not research
        )
        return _download(request, name, [sheet])
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": attachment(f"{name}.csv"),
        }
    )
    _secure(response)
    request[STREAMING_KEY] = True
    await response.prepare(request)
    batch: list[exports.ResponseRecord] = []
    first = True

    async def flush() -> None:
        nonlocal first
        pieces = exports.iter_csv(
            exports.response_sheet(
                questionnaire, batch, lang, schools=schools, free_text=not research
            )
        )
        if not first:
            next(pieces), next(pieces)  # the byte order mark and the header: written once
        await response.write(b"".join(pieces))
        first = False
        batch.clear()

    async with d.rt.db.session() as session:
        async for row in stats.iter_responses(
            session, scope, questionnaire.form_id, wave, now=d.rt.clock.now()
        ):
            batch.append(_record(d, row, research=research))
            if len(batch) >= EXPORT_BATCH:
                await flush()
    if batch or first:
        await flush()
    await response.write_eof()
    return response


@access.allow(access.EVERYONE)
async def export_codebook(request: web.Request) -> web.Response:
    lang = _export_language(request)
    questionnaire = _form(request)
    sheet = exports.codebook_sheet(questionnaire, lang)
    return _download(request, f"codebook-{questionnaire.form_id}-{questionnaire.version}", [sheet])


def _rate_cell(rate: Rate | None) -> object:
    if rate is None or rate.suppressed:
        return "<5"
    return round(rate.value * 100, 1) if rate.value is not None else None


def _count_cell(n: int | None) -> object:
    return "<5" if n is None else n


@access.allow(access.EVERYONE)
async def export_indicators(request: web.Request) -> web.Response:
    d = dashboard(request)
    scope = scope_of(request)
    lang = _export_language(request)
    report = await _report(request, scope)
    with i18n.use_language(lang):
        indicator_rows = list(_indicator_export_rows(d, report))
        rate_rows = list(_rate_export_rows(report))
    indicators_sheet = exports.Sheet(
        "indicators",
        [
            "wave",
            "breakdown",
            "group",
            "respondents",
            *(f"5a_{key}_pct" for key in DESTINATIONS),
            "5b_employed_pct",
            "6a_related_pct",
            "6a_occupation_pct",
            "6b1_satisfied_pct",
            "use_of_skills_pct",
            "completers",
            "response_rate_pct",
            *(f"5a_{key}_of_completers_pct" for key in DESTINATIONS),
            "5b_employed_of_completers_pct",
            "6a_related_of_completers_pct",
            "6a_occupation_of_completers_pct",
            "6b1_satisfied_of_completers_pct",
            "use_of_skills_of_completers_pct",
        ],
        indicator_rows,
    )
    rates_sheet = exports.Sheet(
        "response_rates",
        [
            "wave",
            "school",
            "programme",
            "cohort",
            "graduates",
            "reachable",
            "invited",
            "started",
            "completed",
            "partial",
            "declined",
            "rate_pct",
            "rate_reachable_pct",
            *(f"completed_{channel}" for channel in CHANNELS),
            *(f"rate_{channel}_pct" for channel in CHANNELS),
        ],
        rate_rows,
    )
    if request.match_info["table"] == "rates":
        return _download(request, "response-rates", [rates_sheet])
    return _download(request, "indicators", [indicators_sheet, rates_sheet])


def _indicator_export_rows(d: Dashboard, report: Report) -> Iterator[list[object]]:
    for wave in _tracking_waves(report):
        for by in ("total", *breakdowns_for(report.scope)):
            for line in _indicator_lines(report, wave.name, by):
                c = line.counts
                yield [
                    wave.name,
                    by,
                    line.label,
                    _count_cell(line.respondents),
                    *(_rate_cell(line.shares["respondents"][key]) for key in DESTINATIONS),
                    *(_rate_cell(line.rates["respondents"][key]) for key in RATES),
                    _count_cell(line.completers),
                    _rate_cell(c.response_rate),
                    *(_rate_cell(line.shares["completers"][key]) for key in DESTINATIONS),
                    *(_rate_cell(line.rates["completers"][key]) for key in RATES),
                ]


def _rate_export_rows(report: Report) -> Iterator[list[object]]:
    # Per wave x school x programme x cohort: the finest cells the report holds. The rates
    # per channel are over the invited, as on the wave page.
    for wave in report.waves:
        for (w, programme_id, cohort), funnel in sorted(
            report.by_wave_programme_cohort.items(), key=lambda kv: kv[0][1:]
        ):
            if w != wave.name:
                continue
            programme = report.names.programmes.get(programme_id)
            school = report.names.schools.get(programme.institution_id) if programme else None
            shown = funnel.shown()
            channels = report.by_wave_programme_cohort_channel.get(
                (w, programme_id, cohort), ChannelCounts()
            )
            yield [
                wave.name,
                school.code if school else "",
                programme.code if programme else "",
                cohort,
                *(_count_cell(shown[k]) for k in ("graduates", "reachable", "invited", "started")),
                *(_count_cell(shown[k]) for k in ("completed", "partial", "declined")),
                _rate_cell(funnel.rate),
                _rate_cell(funnel.rate_reachable),
                *(_count_cell(channels.shown(channel)) for channel in CHANNELS),
                *(_rate_cell(channels.rate(channel)) for channel in CHANNELS),
            ]


# ---------------------------------------------------------------- wiring


def static_path() -> Path:
    return STATIC


def add_dashboard(app: web.Application, rt: Runtime, *, secure_cookie: bool) -> None:
    """Mount the dashboard on `app` (the same aiohttp app as the webhook)."""
    app[DASHBOARD_KEY] = Dashboard(
        rt=rt,
        cookies=auth.Cookies(rt.settings.key),
        env=_environment(),
        specs=default_specs(),
        secure_cookie=secure_cookie,
    )
    app.middlewares.append(session_middleware)
    app[TOO_LARGE_KEY] = _too_large_hook
    r = app.router
    r.add_get("/", root)
    r.add_get(f"{PREFIX}/login/{{token}}", login_page)
    r.add_post(f"{PREFIX}/login", login_submit)
    r.add_post(f"{PREFIX}/logout", logout)
    r.add_post(f"{PREFIX}/language", set_language)
    r.add_get(PREFIX, overview)
    r.add_get(f"{PREFIX}/waves/{{wave}}", wave_page)
    r.add_get(f"{PREFIX}/programmes/{{programme}}", programme_page)
    r.add_get(f"{PREFIX}/broadcasts", broadcasts_page)
    r.add_get(f"{PREFIX}/broadcasts/{{broadcast}}", broadcast_page)
    r.add_post(f"{PREFIX}/broadcasts/{{broadcast}}/cancel", broadcast_cancel)
    r.add_get(f"{PREFIX}/roster", roster_page)
    r.add_post(f"{PREFIX}/roster", roster_upload)
    r.add_get(f"{PREFIX}/roster/template.{{format:csv|xlsx}}", roster_template)
    r.add_get(f"{PREFIX}/exports", exports_page)
    r.add_get(f"{PREFIX}/exports/responses.{{format:csv|xlsx}}", export_responses)
    r.add_get(f"{PREFIX}/exports/codebook.{{format:csv|xlsx}}", export_codebook)
    r.add_get(f"{PREFIX}/exports/{{table:indicators|rates}}.{{format:csv|xlsx}}", export_indicators)
    from bot.web.actions import add_actions

    add_actions(app)  # actions and follow-up lists (issue 18)
    from bot.web import feedback  # it builds on this module

    feedback.add_routes(r)
    r.add_static(f"{PREFIX}/static/", STATIC)
    from bot.web.programme_report import add_programme_report  # it imports this module

    add_programme_report(app)


def login_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{PREFIX}/login/{token}"
