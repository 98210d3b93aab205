"""Staff commands, staff buttons and dashboard routes refuse graduates, strangers and other
schools' staff: one test per command, per button family and per route, with the lists
checked against what the bot and the dashboard actually register, so that a new command or
route without a refusal test fails here (both databases)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlmodel import select
from telegram.ext import CommandHandler

from bot.web import access
from bot.web.access import PUBLIC
from bot.web.dashboard import PREFIX
from bot.web.server import WEBHOOK_PATH
from conversations.access import EVERYONE, GRADUATES, ROWS, TEAMS, WRITERS, Roles
from storage.models import (
    Answer,
    Broadcast,
    ChatState,
    CommentTag,
    DashboardLogin,
    FollowupEntry,
    Graduate,
    Programme,
    ProgrammeAction,
    SurveyResponse,
)
from storage.staff import add_staff
from tests.harness import Harness, eventually, tr
from tests.test_dashboard import ROSTER_HEADER, client_session, log_in, seed_small

GRADUATE_COMMANDS = {
    "start",
    "help",
    "language",
    "privacy",
    "stop",
    "survey",
    "mydata",
    "delete",
    "cancel",
    "news",  # for a graduate: their alumni news choice; for staff: the composer (below)
}
STAFF_COMMANDS = ("broadcasts", "stats", "dashboard")
#: Staff buttons, as a graduate could forge them (any callback data of up to 64 bytes).
STAFF_BUTTONS = ("nc:aud:all", "nc:send", "bc:1", "bc:99999999999999999999")
REFUSED = "This command is for school staff."


def test_every_command_is_either_for_graduates_or_refused_to_them(harness: Harness) -> None:
    """The bot's commands are exactly the graduates' ones and STAFF_COMMANDS, each of which
    has a refusal test below."""
    assert harness.app is not None
    registered: set[str] = set()
    for handlers in harness.app.handlers.values():
        for handler in handlers:
            if isinstance(handler, CommandHandler):
                registered |= set(handler.commands)
    assert registered == GRADUATE_COMMANDS | set(STAFF_COMMANDS)


async def test_news_gives_graduates_their_choice_and_strangers_nothing(harness: Harness) -> None:
    """/news is the composer only for staff: a graduate gets their own news choice, someone
    the bot does not know is told they are not registered; no broadcast is begun."""
    _graduate, user = await harness.consenting_graduate("it")
    (choice,) = await harness.send(user, "/news")
    assert {b["callback_data"] for b in choice.buttons} <= {"nw:on", "nw:off"}
    stranger = harness.user("et")
    (reply,) = await harness.send(stranger, "/news")
    assert not reply.buttons and reply.content != choice.content
    await _nothing_created(harness)


async def _nothing_created(harness: Harness) -> None:
    async with harness.db.session() as session:
        assert not (await session.exec(select(Broadcast))).all()
        assert not (await session.exec(select(DashboardLogin))).all()
        flows = (await session.exec(select(ChatState.flow))).all()
    assert set(flows) <= {""}, flows


@pytest.mark.parametrize("command", STAFF_COMMANDS)
async def test_a_staff_command_is_refused_to_graduates_and_strangers(
    harness: Harness, command: str
) -> None:
    """A graduate (Spanish) and someone the bot does not know (Estonian Telegram) send the
    staff command: each is told, in their language, that it is for school staff; no
    broadcast, login link or staff conversation is created."""
    _graduate, graduate_user = await harness.consenting_graduate("es")
    stranger = harness.user("et")
    for user, lang in ((graduate_user, "es"), (stranger, "et")):
        (reply,) = await harness.send(user, f"/{command}")
        assert reply.content == tr(lang, REFUSED), (command, lang)
        assert "/dashboard/login/" not in reply.content
    await _nothing_created(harness)


@pytest.mark.parametrize("data", STAFF_BUTTONS)
async def test_a_staff_button_is_refused_to_graduates(harness: Harness, data: str) -> None:
    """A graduate's client sends a staff button's data on a message of their chat: the press
    is answered, in their language, that it is for school staff (a composer button: that it
    is no longer active, which tells nothing either), and nothing changes."""
    _graduate, user = await harness.consenting_graduate("nl")
    message = harness.sandbox.bot_messages(harness.token, user.id)[-1]
    await harness.sandbox.press_button(
        harness.token, user.id, message.message_id or 0, data, forged=True
    )

    refusals = {tr("nl", REFUSED), tr("nl", "This button is no longer active.")}

    def refused() -> bool:
        return bool(refusals & set(harness.callback_answers(user)))

    await eventually(refused)
    await _nothing_created(harness)


async def _schools_with_a_scheduled_broadcast(h: Harness) -> tuple[int, int, int]:
    """seed_small's two schools; alfa has a scheduled broadcast. (alfa, beta, broadcast)."""
    alfa_id, beta_id = await seed_small(h)
    async with h.db.session() as session:
        news = Broadcast(
            institution_id=alfa_id,
            texts={"nl": "Open dag"},
            status="scheduled",
            due_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
        )
        session.add(news)
        await session.flush()
        assert news.id is not None
        return alfa_id, beta_id, news.id


async def test_another_schools_officer_cannot_see_or_cancel_its_news(harness: Harness) -> None:
    """An officer of beta: /broadcasts lists none of alfa's news, and a forged press of
    alfa's cancel button (and of one that cannot exist) is answered "no longer active" in
    their language and cancels nothing; /stats shows nothing of alfa."""
    _alfa, _beta, news_id = await _schools_with_a_scheduled_broadcast(harness)
    officer = harness.user("es")
    await add_staff(harness.db, officer.id, "officer", school_code="beta")
    (listing,) = await harness.send(officer, "/broadcasts")
    assert "Open dag" not in listing.content and f"bc:{news_id}" not in str(listing.buttons)
    for data in (f"bc:{news_id}", "bc:99999999999999999999"):
        await harness.sandbox.press_button(
            harness.token, officer.id, listing.message_id or 0, data, forged=True
        )
    inactive = tr("es", "This button is no longer active.")

    async def both_answered() -> bool:
        return harness.callback_answers(officer).count(inactive) == 2

    await eventually(both_answered)
    async with harness.db.session() as session:
        news = await session.get(Broadcast, news_id)
    assert news is not None and news.status == "scheduled"
    (stats,) = await harness.send(officer, "/stats")
    assert "Alfa" not in stats.content and "Cook" not in stats.content


def _dashboard_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every dashboard route but the login pages and static
    files."""
    routes = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = str(info.get("formatter") or info.get("path") or "")
        if route.method == "HEAD" or not path.startswith(PREFIX):
            continue
        if path.startswith((f"{PREFIX}/login", f"{PREFIX}/static")) or "prefix" in info:
            continue
        routes.append((route.method, path))
    return routes


def _fill(template: str, ids: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: str(ids[m.group(1)]), template)


D = PREFIX

#: Who may open each route of the service's web app: (method, path as the router has it) ->
#: the staff roles allowed, or PUBLIC (no staff session; the route checks its own secret, if
#: any). tests/test_roles.py lists the routes from the app's router and tries every one with
#: every role, so that a route without a line here, or without its rule in the app, fails.
#: A new route: one line here, and its rule on the handler (bot/web/access.py:
#: `@access.allow(roles)` or `@access.public`).
ROUTE_RULES: dict[tuple[str, str], access.Rule] = {
    ("GET", "/"): PUBLIC,
    ("POST", WEBHOOK_PATH): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", f"{D}/login/{{token}}"): PUBLIC,
    ("POST", f"{D}/login"): PUBLIC,
    ("POST", f"{D}/logout"): EVERYONE,
    ("POST", f"{D}/language"): EVERYONE,
    ("GET", D): EVERYONE,
    ("GET", f"{D}/waves/{{wave}}"): EVERYONE,
    ("GET", f"{D}/programmes/{{programme}}"): EVERYONE,
    ("GET", f"{D}/broadcasts"): WRITERS,
    ("GET", f"{D}/broadcasts/{{broadcast}}"): WRITERS,
    ("POST", f"{D}/broadcasts/{{broadcast}}/cancel"): WRITERS,
    ("GET", f"{D}/roster"): WRITERS,
    ("POST", f"{D}/roster"): WRITERS,
    ("GET", f"{D}/roster/template.{{format}}"): WRITERS,
    ("GET", f"{D}/programmes/{{programme}}/actions"): TEAMS,
    ("POST", f"{D}/programmes/{{programme}}/actions"): WRITERS,
    ("GET", f"{D}/actions/{{action}}"): TEAMS,
    ("POST", f"{D}/actions/{{action}}/status"): WRITERS,
    ("POST", f"{D}/actions/{{action}}/close"): WRITERS,
    ("POST", f"{D}/actions/{{action}}/news"): WRITERS,
    ("GET", f"{D}/followups"): WRITERS,
    ("POST", f"{D}/followups/news"): WRITERS,
    ("POST", f"{D}/followups/{{graduate}}/message"): WRITERS,
    ("POST", f"{D}/followups/{{graduate}}/{{list}}"): WRITERS,
    ("GET", f"{D}/programmes/{{programme}}/expectations"): EVERYONE,
    ("GET", f"{D}/programmes/{{programme}}/comments"): TEAMS,
    ("POST", f"{D}/programmes/{{programme}}/comments/tag"): WRITERS,
    ("POST", f"{D}/programmes/{{programme}}/comments/untag"): WRITERS,
    ("GET", f"{D}/exports/expectations.{{format}}"): EVERYONE,
    ("GET", f"{D}/programmes/{{programme}}/report"): EVERYONE,
    ("GET", f"{D}/programmes/{{programme}}/report.pdf"): EVERYONE,
    ("GET", f"{D}/exports"): EVERYONE,
    ("GET", f"{D}/exports/responses.{{format}}"): ROWS,
    ("GET", f"{D}/exports/codebook.{{format}}"): EVERYONE,
    ("GET", f"{D}/exports/{{table}}.{{format}}"): EVERYONE,
    ("GET", f"{D}/static/"): PUBLIC,
    ("GET", "/c/static/"): PUBLIC,
    ("GET", "/c/{token}"): PUBLIC,
    ("POST", "/c/{token}"): PUBLIC,
    ("GET", "/c/{token}/files/{file}"): PUBLIC,
    ("GET", "/u/{token}"): PUBLIC,
    ("POST", "/u/{token}"): PUBLIC,
}

#: The staff commands and buttons (conversations/routes.py) -> the roles they are for.
CHAT_RULES: dict[str, Roles] = {
    "/news": WRITERS,
    "/cancel": WRITERS,
    "/broadcasts": WRITERS,
    "/stats": EVERYONE,
    "/dashboard": EVERYONE,
    "nw:": GRADUATES,  # a graduate's own alumni news choice
    "nc:": WRITERS,  # the news composer
    "bc:": WRITERS,  # cancelling a broadcast
}

#: The dashboard's routes that need a session (all but the login pages and static files).
ROUTES_CHECKED = len(
    [
        key
        for key, rule in ROUTE_RULES.items()
        if key[1].startswith(f"{PREFIX}/") or key[1] == PREFIX
        if rule != PUBLIC
    ]
)


async def test_every_dashboard_route_refuses_without_a_session_and_scopes_other_schools(
    harness: Harness, web: str
) -> None:
    """Every dashboard route (listed from the web app's router), filled with alfa's wave,
    programme and broadcast and asked for alfa (?school=):
    - without a session: 401, for GET and POST alike;
    - for beta's officer: asking for alfa is refused (403, or 404 for one of alfa's things)
      or answered with beta's page (the news list, which has no school choice); without
      ?school=, a page of one of alfa's things is 404 and every other page and export shows
      beta only (alfa's name, programme, graduates and news appear nowhere); a roster upload
      naming alfa imports nothing into alfa."""
    h = harness
    alfa_id, _beta, news_id = await _schools_with_a_scheduled_broadcast(h)
    async with h.db.session() as session:
        cook = (
            await session.exec(
                select(Programme).where(Programme.institution_id == alfa_id, Programme.code == "P1")
            )
        ).one()
        alfa_graduate = (
            await session.exec(select(Graduate).where(Graduate.institution_id == alfa_id))
        ).first()
        assert alfa_graduate is not None and cook.id is not None
        # alfa's graduate on the follow-up list (U4 yes, consent to be contacted)
        alfa_graduate.consent_followup = True
        session.add(alfa_graduate)
        answered = (
            await session.exec(
                select(SurveyResponse).where(SurveyResponse.graduate_id == alfa_graduate.id)
            )
        ).first()
        assert answered is not None and answered.id is not None
        session.add(Answer(response_id=answered.id, question="U4", value="yes"))
        action = ProgrammeAction(
            institution_id=alfa_id, programme_id=cook.id, what="Secret Name plan", status="done"
        )
        session.add(action)
        await session.flush()
    async with h.db.session() as session:  # a comment of one of alfa's cooks
        cooks = (await session.exec(select(SurveyResponse).limit(1))).one()
        assert cooks.id is not None
        session.add(Answer(response_id=cooks.id, question="A4", value="More practice"))
    comment_id = cooks.id
    ids = {
        "wave": "m2",
        "programme": cook.id,
        "broadcast": news_id,
        "format": "csv",
        "table": "indicators",
        "action": action.id,
        "graduate": alfa_graduate.id,
        "list": "work",
    }
    assert h.app is not None and h._web_runners
    routes = _dashboard_routes(h._web_runners[-1].app)
    assert len(routes) == ROUTES_CHECKED, routes

    async with client_session() as stranger:
        for method, template in routes:
            url = f"{web}{_fill(template, ids)}?school={alfa_id}"
            async with stranger.request(method, url, data={"csrf": "x"}) as response:
                assert response.status == 401, (method, template)

    officer = h.user("en")
    await add_staff(h.db, officer.id, "officer", school_code="beta")
    alfa_things = ("Alfa College", "Secret Name", ">Cook<", "Open dag", "HYPERLINK")
    async with client_session() as client:
        csrf = await log_in(h, client, officer)
        for method, template in routes:
            if method == "POST":
                continue  # below, one by one
            path = _fill(template, ids)
            async with client.get(f"{web}{path}?school={alfa_id}") as response:
                asked_for_alfa, body = response.status, await response.read()
            assert asked_for_alfa in (200, 403, 404), template  # 200: beta's page
            assert not [t for t in alfa_things if t.encode() in body], template
            async with client.get(f"{web}{path}") as response:
                status, body = response.status, await response.read()
            if "{programme}" in template or "{broadcast}" in template or "{action}" in template:
                assert status == 404, template
                continue
            if "/exports/responses." in template:
                assert status == 403, template  # row-level data: admins only
                continue
            assert status == 200, template
            text = body.decode("utf-8", errors="replace")
            assert not [t for t in alfa_things if t in text], template
        form = aiohttp.FormData()
        form.add_field("csrf", csrf)
        form.add_field("mode", "import")
        form.add_field("school", "alfa")
        roster = f"{ROSTER_HEADER}\nZ1,Zed,P1,2026-06-30,F,2007\n"
        form.add_field("file", roster.encode(), filename="alfa.csv", content_type="text/csv")
        async with client.post(f"{web}{PREFIX}/roster", data=form) as response:
            assert "Alfa College" not in await response.text()
        async with h.db.session() as session:
            refs = (await session.exec(select(Graduate.student_ref, Graduate.institution_id))).all()
        assert ("Z1", alfa_id) not in refs
        posts = {path for method, path in routes if method == "POST"}
        assert posts == {
            f"{PREFIX}/roster",
            f"{PREFIX}/language",
            f"{PREFIX}/logout",
            f"{PREFIX}/broadcasts/{{broadcast}}/cancel",
            f"{PREFIX}/programmes/{{programme}}/actions",
            f"{PREFIX}/actions/{{action}}/status",
            f"{PREFIX}/actions/{{action}}/close",
            f"{PREFIX}/actions/{{action}}/news",
            f"{PREFIX}/followups/news",
            f"{PREFIX}/followups/{{graduate}}/message",
            f"{PREFIX}/followups/{{graduate}}/{{list}}",
            f"{PREFIX}/programmes/{{programme}}/comments/tag",
            f"{PREFIX}/programmes/{{programme}}/comments/untag",
        }
        # alfa's programme, action and listed graduate from beta: not found, nothing changes
        # (officers and admins may act: beta's officer may, but not on alfa's things).
        refused = {
            f"/programmes/{cook.id}/actions": {"what": "x"},
            f"/actions/{action.id}/status": {"status": "open"},
            f"/actions/{action.id}/close": {"result": "x"},
            f"/actions/{action.id}/news": {"lang": "nl", "text": "x"},
            f"/followups/{alfa_graduate.id}/message": {"list": "work", "text": "x"},
            f"/followups/{alfa_graduate.id}/work": {"handled": "1", "note": "x"},
        }
        for path, fields in refused.items():
            async with client.post(
                f"{web}{PREFIX}{path}", data={"csrf": csrf, **fields}
            ) as response:
                assert response.status == 404, path
                assert "Secret Name" not in await response.text(), path
        async with h.db.session() as session:
            assert (await session.exec(select(ProgrammeAction))).one().what == "Secret Name plan"
            assert not (await session.exec(select(FollowupEntry))).all()
            assert not (
                await session.exec(select(ChatState.flow).where(ChatState.flow == "news"))
            ).all()
        # News to a list from beta: beta's graduates only (the draft's audience is beta's).
        async with client.post(
            f"{web}{PREFIX}/followups/news", data={"csrf": csrf, "list": "work"}
        ) as response:
            assert response.status == 200
        async with h.db.session() as session:
            draft = (await session.exec(select(Broadcast).where(Broadcast.status == "draft"))).one()
        assert draft.institution_id == _beta and draft.filter["institution_ids"] == [_beta]
        # Tagging alfa's comment from beta: not found, and no tag is stored.
        for verb in ("tag", "untag"):
            async with client.post(
                f"{web}{PREFIX}/programmes/{cook.id}/comments/{verb}",
                data={"csrf": csrf, "response": comment_id, "question": "A4", "theme": "x"},
            ) as response:
                assert response.status == 404, verb
        async with h.db.session() as session:
            assert not (await session.exec(select(CommentTag))).all()
        # Cancelling alfa's news from beta: not found, and it stays scheduled.
        async with client.post(
            f"{web}{PREFIX}/broadcasts/{news_id}/cancel", data={"csrf": csrf}
        ) as response:
            assert response.status == 404
        async with h.db.session() as session:
            kept = await session.get(Broadcast, news_id)
        assert kept is not None and kept.status == "scheduled"
