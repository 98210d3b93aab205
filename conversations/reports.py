"""Staff commands for the numbers: `/stats` (the current waves' counts and rates, in the chat)
and `/dashboard` (a one-time login link to the web dashboard)."""

from __future__ import annotations

import logging

from bot.i18n import _, ngettext
from bot.reporting import (
    Report,
    as_of_text,
    build_report,
    count_text,
    current_waves,
    rate_text,
    staff_scope,
    wave_label,
)
from bot.runtime import Runtime
from bot.web import auth
from conversations import access
from conversations.channel import Button, Keyboard, Turn, keyboard
from conversations.indicators import Funnel, default_specs
from conversations.staff import staff_language, staff_only
from storage.models import Staff
from storage.processed import claim
from storage.stats import Scope

log = logging.getLogger(__name__)


def funnel_lines(title: str, funnel: Funnel) -> list[str]:
    shown = funnel.shown()
    return [
        title,
        _("Graduates {graduates} · reachable {reachable} · invited {invited}").format(
            graduates=count_text(shown["graduates"]),
            reachable=count_text(shown["reachable"]),
            invited=count_text(shown["invited"]),
        ),
        _(
            "Started {started} · completed {completed} · partial {partial} · declined {declined}"
        ).format(
            started=count_text(shown["started"]),
            completed=count_text(shown["completed"]),
            partial=count_text(shown["partial"]),
            declined=count_text(shown["declined"]),
        ),
        _("Response rate {rate} (of the reachable: {reachable_rate})").format(
            rate=rate_text(funnel.rate), reachable_rate=rate_text(funnel.rate_reachable)
        ),
    ]


def stats_text(report: Report, scope_name: str, current: list[tuple[str, int]]) -> str:
    lines = [_("📊 Responses · {scope}").format(scope=scope_name), ""]
    waves = {wave.name: wave for wave in report.waves}
    if current:
        for wave, cohort in current:
            funnel = report.by_wave_cohort.get((wave, cohort), Funnel())
            title = _("{wave} · cohort {cohort}").format(
                wave=wave_label(waves.get(wave), wave), cohort=cohort
            )
            lines += [*funnel_lines(title, funnel), ""]
    else:
        lines += [_("No wave is open right now. All waves so far:"), ""]
        for plan_wave in report.waves:
            so_far = report.by_wave.get(plan_wave.name)
            if so_far is not None and (so_far.invited or so_far.started):
                title = wave_label(plan_wave)
                lines += [*funnel_lines(title, so_far), ""]
        if len(lines) == 4:
            lines += [_("No invitations or responses yet."), ""]
    as_of = as_of_text(report)
    if as_of is not None:
        lines.append(as_of)
    lines.append(_("Cells with fewer than 5 people are shown as <5. More in /dashboard."))
    return "\n".join(lines)


@staff_only(roles=access.EVERYONE)
async def stats_command(rt: Runtime, turn: Turn, staff: Staff) -> None:
    scope = staff_scope(staff)
    now = rt.clock.now()
    report = await build_report(
        rt.db,
        rt.plans,
        default_specs(),
        scope,
        today=now.date(),
        now=now,
        kept=True,
        breakdowns=("total",),
    )
    current = await current_waves(rt.db, scope, rt.clock.now())
    await turn.say(stats_text(report, scope_title(report, scope), current))


def scope_title(report: Report, scope: Scope) -> str:
    """Whose figures: a school, a regional group's schools, a programme team's programmes
    (with their school), or all schools."""
    if scope.institution_ids is not None:
        names = sorted(school.name for school in report.names.schools.values())
        return ", ".join(names) or "–"
    if scope.institution_id is None:
        title = _("All schools")
    else:
        school = report.names.schools.get(scope.institution_id)
        title = school.name if school else "?"
    if scope.programme_ids is not None:
        codes = sorted(programme.code for programme in report.names.programmes.values())
        title = f"{title} · {', '.join(codes) or '–'}"
    return title


@staff_only(roles=access.EVERYONE)
async def dashboard_command(rt: Runtime, turn: Turn, staff: Staff) -> None:
    """A one-time login link, valid for a few minutes. Sent without a link preview, and the
    link only shows a page with a button: nothing spends it before the person presses it."""
    # The dashboard's route, from the dashboard (aiohttp): loaded when a link is asked for,
    # not with the flows.
    from bot.web.dashboard import login_url

    assert staff.id is not None
    async with rt.db.session() as session:
        await claim(session)
        token = auth.add_login(session, staff.id, rt.clock.now())
        if staff.language is None:
            # The dashboard speaks the staff member's language: the chat's, until they choose.
            staff.language = staff_language(staff, turn)
            session.add(staff)
    url = login_url(rt.settings.base_url, token)
    text = ngettext(
        "Your dashboard login link (it works once, for {minutes} minute):\n{url}\n\n"
        "Do not forward it: whoever opens it is logged in as you.",
        "Your dashboard login link (it works once, for {minutes} minutes):\n{url}\n\n"
        "Do not forward it: whoever opens it is logged in as you.",
        auth.LINK_MINUTES,
    ).format(minutes=auth.LINK_MINUTES, url=url)
    buttons: Keyboard = ()
    if url.startswith("https://"):
        buttons = keyboard([[Button(_("Open the dashboard"), url=url)]])
    await turn.say(text, buttons, link_preview=False)
