"""Every role is refused where it must be, in HTTP and in the chat (issue 18).

- ROUTE_RULES is who may open each route of the service's web app; the routes are listed from
  the application's router, so that a route added without a rule (bot/web/access.py), or
  with another one than this table's, fails here. For each role, every dashboard route is
  tried: an allowed one answers, a refused one is 403 with the dashboard's page in the staff
  member's language. A route without a rule is refused to everyone, admins too.
- CHAT_RULES is the same for the staff commands and buttons of conversations/routes.py; for
  each role every staff command is sent and every staff button forged in the sandbox.
- What each role sees: a programme team its programmes only, regional staff the aggregates
  of their schools only (with the suppression of groups under five), a researcher's export
  without names, contacts or free text and with a stable pseudonym per graduate.
Both databases."""

from __future__ import annotations

import csv
import hmac
import io
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import aiohttp
import openpyxl
import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlmodel import select

from bot.__main__ import build_parser, cmd_programme, cmd_school
from bot.settings import Settings
from bot.web import access
from bot.web.access import PUBLIC, rule_for
from bot.web.server import WebLimits, build_web_app, web_runner
from conversations import routes
from conversations.access import (
    ADMIN,
    OFFICER,
    PROGRAMME,
    REGIONAL,
    RESEARCHER,
    WRITERS,
    Roles,
)
from conversations.access import rule_of as chat_rule_of
from conversations.staff import cmd_staff
from storage.db import create_engine
from storage.migrate import downgrade, upgrade
from storage.models import (
    Answer,
    Broadcast,
    ChatState,
    Graduate,
    Institution,
    Programme,
    StaffRole,
    SurveyResponse,
)
from storage.staff import StaffError, add_staff, create_invite, list_staff
from tests.harness import Harness, eventually, tr
from tests.test_dashboard import client_session, log_in, seed_small
from tests.test_refusals import CHAT_RULES, ROUTE_RULES

D = "/dashboard"

#: A staff member of each role, and the language they use (every refusal is checked in it).
LANGUAGE = {OFFICER: "it", ADMIN: "en", PROGRAMME: "nl", RESEARCHER: "es", REGIONAL: "et"}


def _path(info: Mapping[str, Any]) -> str:
    """A route's path template, without the regular expressions of its parts."""
    raw = str(info.get("formatter") or info.get("path") or info.get("prefix") or "")
    if "prefix" in info and not raw.endswith("/"):
        raw += "/"
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", raw)


def app_routes(app: web.Application) -> dict[tuple[str, str], access.Rule | None]:
    """(method, path) -> the rule the app gives, for every route of `app` but HEAD (aiohttp
    adds one to each GET, with the GET's handler)."""
    found: dict[tuple[str, str], access.Rule | None] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        found[(route.method, _path(route.resource.get_info()))] = rule_for(route)
    return found


async def _serve(h: Harness, extra: dict[str, Any] | None = None) -> tuple[str, web.Application]:
    """The service's whole web app (with the webhook, and `extra` routes path -> handler),
    served on a free port for `h`'s bot; login links point there."""
    assert h.app is not None
    app = build_web_app(h.app, h.db, "webhook-secret", limits=WebLimits.of(h.settings))
    for path, handler in (extra or {}).items():
        app.router.add_get(path, handler)
    runner = web_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    h._web_runners.append(runner)
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    h.settings.host, h.settings.port = "127.0.0.1", int(port)
    return h.settings.base_url, app


async def test_every_route_has_the_rule_of_the_table(harness: Harness) -> None:
    """The app's routes, listed from its router, are exactly the table's, each with the
    table's rule: a route without a rule, or one missing from the table, fails here."""
    _url, app = await _serve(harness)
    assert app_routes(app) == ROUTE_RULES


async def _unruled(_request: web.Request) -> web.Response:
    return web.Response(text="secret figures")


async def test_a_route_without_a_rule_is_refused_to_everyone(harness: Harness) -> None:
    """A route added without a rule, in the dashboard and outside it, is refused (403) even
    to an admin of all schools, and the table test above names it."""
    h = harness
    url, app = await _serve(h, {f"{D}/unruled": _unruled, "/unruled": _unruled})
    missing = set(app_routes(app)) - set(ROUTE_RULES)
    assert missing == {("GET", f"{D}/unruled"), ("GET", "/unruled")}
    assert app_routes(app)[("GET", f"{D}/unruled")] is None
    admin = h.user("nl")
    await add_staff(h.db, admin.id, "admin")
    async with client_session() as client:
        await log_in(h, client, admin)
        for path in (f"{D}/unruled", "/unruled"):
            async with client.get(f"{url}{path}") as response:
                assert response.status == 403, path
                assert "secret figures" not in await response.text()
        async with client.get(f"{url}{D}") as response:
            assert response.status == 200  # the session itself is fine


# ---------------------------------------------------------------- the seed


async def seed_roles(h: Harness) -> dict[str, int]:
    """seed_small (alfa: 6 graduates of P1 "Cook", 5 completed m2; beta: 3 of P3), plus:
    alfa's ICT4 ("Software developer") 5 completed m2; beta's P3 2 completed m2 (a group
    under five); gamma ("Gamma College", G1 "Gardener") 6 completed m2; a scheduled news
    item of alfa. alfa's graduates have e-mail addresses and phone numbers."""
    alfa_id, beta_id = await seed_small(h)
    gamma = await h.school(code="gamma", country="IT", language="it")
    assert gamma.id is not None
    async with h.db.session() as session:
        g1 = Programme(institution_id=gamma.id, code="G1", name="Gardener", eqf_level=4)
        session.add(g1)
        await session.flush()
        programmes = {
            (p.institution_id, p.code): p for p in (await session.exec(select(Programme))).all()
        }
        ict = programmes[(alfa_id, "ICT4")]
        for k, graduate in enumerate(
            (await session.exec(select(Graduate).where(Graduate.institution_id == alfa_id))).all()
        ):
            graduate.email = f"secret{k}@example.org"
            graduate.mobile = f"+3161234567{k}"
            session.add(graduate)
        for school_id, programme, n, ref in (
            (alfa_id, ict, 5, "i"),
            (beta_id, programmes[(beta_id, "P3")], 2, "bb"),
            (gamma.id, g1, 6, "g"),
        ):
            assert programme.id is not None
            for k in range(n):
                graduate = Graduate(
                    institution_id=school_id,
                    programme_id=programme.id,
                    student_ref=f"{ref}{k}",
                    name=f"Secret Name {ref}{k}",
                    graduation_date=date(2026, 6, 30),
                )
                session.add(graduate)
                await session.flush()
                assert graduate.id is not None
                response = SurveyResponse(
                    graduate_id=graduate.id,
                    form_id="tracking",
                    version="2026.1",
                    wave="m2",
                    status="submitted",
                    complete=True,
                    completed_at=datetime(2026, 9, 2, tzinfo=UTC),
                )
                session.add(response)
                await session.flush()
                assert response.id is not None
                session.add(Answer(response_id=response.id, question="C0", value="yes"))
                session.add(Answer(response_id=response.id, question="Q1", value="employed"))
        news = Broadcast(
            institution_id=alfa_id,
            texts={"nl": "Open dag"},
            status="scheduled",
            due_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
        )
        session.add(news)
        await session.flush()
        p1 = programmes[(alfa_id, "P1")]
        assert news.id is not None and p1.id is not None and ict.id is not None
    return {
        "alfa": alfa_id,
        "beta": beta_id,
        "gamma": gamma.id,
        "P1": p1.id,
        "ICT4": ict.id,
        "broadcast": news.id,
    }


async def staff_of_every_role(h: Harness) -> dict[StaffRole, Any]:
    """A Telegram user per role: alfa's officer and programme team (P1), an admin of all
    schools, a researcher of all schools, regional staff of alfa and beta."""
    users = {role: h.user(lang) for role, lang in LANGUAGE.items()}
    await add_staff(h.db, users[OFFICER].id, "officer", school_code="alfa")
    await add_staff(h.db, users[ADMIN].id, "admin")
    await add_staff(h.db, users[PROGRAMME].id, "programme", school_code="alfa", programmes="P1")
    await add_staff(h.db, users[RESEARCHER].id, "researcher")
    await add_staff(h.db, users[REGIONAL].id, "regional", schools=["alfa", "beta"])
    return users


def _fill(template: str, ids: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), template)


def role_refusal(role: StaffRole) -> str:
    lang = LANGUAGE[role]
    return tr(
        lang, "This page is not open to your role ({role}). Please go back to the dashboard."
    ).format(role=tr(lang, ROLE_NAMES[role]))


ROLE_NAMES = {
    OFFICER: "alumni officer",
    ADMIN: "admin",
    PROGRAMME: "programme team",
    RESEARCHER: "researcher",
    REGIONAL: "regional staff",
}


# ---------------------------------------------------------------- HTTP, per role


@pytest.mark.parametrize("role", list(StaffRole))
async def test_every_dashboard_route_answers_or_refuses_each_role(
    harness: Harness, role: StaffRole
) -> None:
    """The role's staff member tries every dashboard route of the router (GET and POST, with
    the session's CSRF token): the table's allowed routes answer (no 401 or 403), every other
    one is 403 with the dashboard's refusal page in their language, and a refused POST
    changes nothing (alfa's news stays scheduled). Logging out is open to every role."""
    h = harness
    ids = await seed_roles(h)
    url, app = await _serve(h)
    user = (await staff_of_every_role(h))[role]
    fill = {
        "wave": "m2",
        "programme": ids["P1"],
        "broadcast": ids["broadcast"],
        "format": "csv",
        "table": "indicators",
        "token": "x",
        # No such action or listed graduate: an allowed role gets 404 (or a form error),
        # a refused one 403 before any lookup.
        "action": 999_999,
        "graduate": 999_999,
        "list": "work",
    }
    tried = 0
    async with client_session() as client:
        csrf = await log_in(h, client, user)
        for method, template in app_routes(app):
            rule = ROUTE_RULES.get((method, template))  # the table's, not the app's
            if not template.startswith(D) or rule == PUBLIC or template == f"{D}/logout":
                continue
            tried += 1
            path = _fill(template, fill)
            data = {"csrf": csrf, "language": LANGUAGE[role], "next": D}
            async with client.request(
                method,
                f"{url}{path}",
                data=data if method == "POST" else None,
                allow_redirects=False,
            ) as response:
                # (bytes: a PDF answers some routes)
                status = response.status
                body = (await response.read()).decode("utf-8", errors="replace")
            if access.permits(rule, role.value):
                assert status not in (401, 403), (role, method, template, status)
            else:
                assert status == 403, (role, method, template, status)
                assert role_refusal(role) in body.replace("&#39;", "'"), (role, template)
        assert (
            tried
            == len([k for k, r in ROUTE_RULES.items() if k[1].startswith(D) and r != PUBLIC]) - 1
        )
        async with h.db.session() as session:
            news = await session.get(Broadcast, ids["broadcast"])
        assert news is not None
        assert (news.status == "scheduled") == (role not in WRITERS)
        async with client.post(f"{url}{D}/logout", data={"csrf": csrf}) as response:
            assert response.status == 200
        async with client.get(f"{url}{D}") as response:
            assert response.status == 401


# ---------------------------------------------------------------- what each role sees


async def _csv(client: aiohttp.ClientSession, url: str) -> list[dict[str, str]]:
    async with client.get(url) as response:
        assert response.status == 200, (url, await response.text())
        text = (await response.read()).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


async def _page(client: aiohttp.ClientSession, url: str, status: int = 200) -> str:
    async with client.get(url) as response:
        assert response.status == status, url
        return await response.text()


async def test_a_programme_team_sees_its_programmes_only_and_posts_nothing(
    harness: Harness,
) -> None:
    """alfa's P1 team: the overview and the indicators export count P1's 5 respondents, not
    ICT4's (alfa's officer counts 10); ICT4's page is not found; the pages have no
    Broadcasts or Roster link; the responses export, the roster and the news are refused."""
    h = harness
    ids = await seed_roles(h)
    url, _app = await _serve(h)
    users = await staff_of_every_role(h)
    async with client_session() as client:
        await log_in(h, client, users[PROGRAMME])
        overview = await _page(client, f"{url}{D}")
        assert "Cook" in overview and "Software developer" not in overview
        assert f'href="{D}/broadcasts"' not in overview and f'href="{D}/roster"' not in overview
        await _page(client, f"{url}{D}/programmes/{ids['ICT4']}", 404)
        assert "Cook" in await _page(client, f"{url}{D}/programmes/{ids['P1']}")
        rows = await _csv(client, f"{url}{D}/exports/indicators.csv")
        total = [r for r in rows if r["wave"] == "m2" and r["breakdown"] == "total"]
        assert [r["respondents"] for r in total] == ["5"]
        programmes = {r["group"] for r in rows if r["breakdown"] == "programme"}
        assert programmes == {"P1 · Cook"}
        await _page(client, f"{url}{D}/exports/responses.csv", 403)
        await _page(client, f"{url}{D}/waves/m2?school={ids['beta']}", 403)
    async with client_session() as client:
        await log_in(h, client, users[OFFICER])
        rows = await _csv(client, f"{url}{D}/exports/indicators.csv")
        total = [r for r in rows if r["wave"] == "m2" and r["breakdown"] == "total"]
        assert [r["respondents"] for r in total] == ["10"]


async def test_regional_staff_see_their_schools_aggregates_only(harness: Harness) -> None:
    """Regional staff of alfa and beta: the indicators by school are alfa's 10 respondents and
    beta's 2 suppressed ("<5"), never gamma; by country NL and ES, not IT; the total is 12;
    the school picker offers alfa and beta, and asking for gamma is refused; nothing names a
    graduate; the responses export is refused."""
    h = harness
    ids = await seed_roles(h)
    url, _app = await _serve(h)
    users = await staff_of_every_role(h)
    async with client_session() as client:
        await log_in(h, client, users[REGIONAL])
        rows = await _csv(client, f"{url}{D}/exports/indicators.csv")
        m2 = [r for r in rows if r["wave"] == "m2"]
        by_school = {r["group"]: r["respondents"] for r in m2 if r["breakdown"] == "school"}
        assert by_school == {"Alfa College": "10", "Beta College": "<5"}
        countries = {r["group"] for r in m2 if r["breakdown"] == "country"}
        assert len(countries) == 2 and not [c for c in countries if "Ital" in c or "Itaal" in c]
        assert [r["respondents"] for r in m2 if r["breakdown"] == "total"] == ["12"]
        overview = await _page(client, f"{url}{D}")
        assert "Alfa College" in overview and "Beta College" in overview
        assert "Gamma College" not in overview and "Gardener" not in overview
        assert "Secret Name" not in overview
        wave = await _page(client, f"{url}{D}/waves/m2")
        assert "Gamma College" not in wave and "Secret Name" not in wave
        await _page(client, f"{url}{D}?school={ids['gamma']}", 403)
        assert "Gamma" not in await _page(client, f"{url}{D}?school={ids['beta']}")
        rates = await _csv(client, f"{url}{D}/exports/rates.csv")
        assert {r["school"] for r in rates} <= {"alfa", "beta"}
        await _page(client, f"{url}{D}/exports/responses.csv", 403)


async def test_a_researchers_export_has_stable_pseudonyms_and_no_names_or_contacts(
    harness: Harness,
) -> None:
    """A researcher downloads the responses twice: no name, student number, chat id, e-mail,
    phone or free-text answer (E4) anywhere, no E4 column; one pseudonym per graduate, the
    same in both downloads and across CSV and XLSX, an HMAC of the graduate's id under the
    app's secret, and not the admin's respondent key for the same graduate."""
    h = harness
    await seed_roles(h)
    url, _app = await _serve(h)
    users = await staff_of_every_role(h)
    async with h.db.session() as session:
        graduates = (await session.exec(select(Graduate))).all()
    async with client_session() as client:
        await log_in(h, client, users[RESEARCHER])
        first = await _csv(client, f"{url}{D}/exports/responses.csv?form=tracking")
        again = await _csv(client, f"{url}{D}/exports/responses.csv?form=tracking")
        async with client.get(f"{url}{D}/exports/responses.csv?form=tracking") as response:
            raw = (await response.read()).decode("utf-8-sig")
        exports_page = await _page(client, f"{url}{D}/exports")
        async with client.get(f"{url}{D}/exports/responses.xlsx?form=tracking") as response:
            assert response.status == 200
            book = openpyxl.load_workbook(io.BytesIO(await response.read()), read_only=True)
    sheet = [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]
    assert "E4" not in sheet[0]
    cells = {str(cell) for row in sheet for cell in row if cell is not None}
    assert not [c for c in cells if "Secret" in c or "example.org" in c or c == "Chef"]
    assert len(first) == 6 + 5 + 2 + 6
    assert first == again
    assert "E4" not in first[0] and "Chef" not in raw and "HYPERLINK" not in raw
    for graduate in graduates:
        secrets = [graduate.name, graduate.email, graduate.mobile, graduate.student_ref]
        secrets += [str(graduate.chat_id)] if graduate.chat_id else []
        for secret in filter(None, secrets):
            assert f",{secret}," not in raw and f"{secret}@" not in raw, secret
    assert "Secret Name" not in raw and "example.org" not in raw and "+3161" not in raw
    key = h.settings.key
    expected = {
        hmac.new(key, f"research:{g.id}".encode(), "sha256").hexdigest()[:16] for g in graduates
    }
    pseudonyms = [row["respondent"] for row in first]
    assert len(set(pseudonyms)) == len(pseudonyms)  # one response each
    assert set(pseudonyms) <= expected
    assert {row[0] for row in sheet[1:]} == set(pseudonyms)  # the same in the XLSX
    async with client_session() as client:
        await log_in(h, client, users[ADMIN])
        admins = await _csv(client, f"{url}{D}/exports/responses.csv?form=tracking")
    assert "E4" in admins[0]
    assert not set(pseudonyms) & {row["respondent"] for row in admins}
    lang = LANGUAGE[RESEARCHER]
    note = tr(
        lang,
        "Your export has a pseudonym per graduate of its own and leaves out the answers "
        "written in the graduate's own words.",
    )
    assert note in exports_page.replace("&#39;", "'")


# ---------------------------------------------------------------- the chat


def test_every_staff_command_and_button_has_the_rule_of_the_table() -> None:
    """conversations/routes.py's staff commands and buttons are exactly CHAT_RULES's, each
    with its rule: a command or button added without a rule fails here."""
    found: dict[str, Roles | None] = {}
    for name, flow in routes.STAFF_COMMANDS.items():
        found[f"/{name}"] = chat_rule_of(flow)
    for pattern, flow in routes.STAFF_BUTTONS:
        prefix = re.match(r"\^(\w+:)", pattern)
        assert prefix, pattern
        found[prefix.group(1)] = chat_rule_of(flow)
    assert found == CHAT_RULES


@pytest.mark.parametrize("role", list(StaffRole))
async def test_every_staff_command_answers_or_refuses_each_role(
    harness: Harness, role: StaffRole
) -> None:
    """The role's staff member sends every staff command: the allowed ones answer as staff
    (/stats with figures, /dashboard with a login link, /news the composer …), the refused
    ones are told, in their language, that it is not open to their role, and begin
    nothing. Forged composer and cancel buttons are refused the same way."""
    h = harness
    ids = await seed_roles(h)
    user = (await staff_of_every_role(h))[role]
    lang = LANGUAGE[role]
    refusal = tr(lang, "This is not open to your role ({role}).").format(
        role=tr(lang, ROLE_NAMES[role])
    )
    for command in routes.STAFF_COMMANDS:
        replies = await h.send(user, f"/{command}", expect=1)
        text = replies[0].content
        if role in CHAT_RULES[f"/{command}"]:
            assert text != refusal, (role, command)
            assert text != tr(lang, "This command is for school staff."), (role, command)
        else:
            assert text == refusal, (role, command, text)
        if command == "news" and role in WRITERS:
            await h.send(user, "/cancel")
    async with h.db.session() as session:
        flows = (await session.exec(select(ChatState.flow))).all()
        news = await session.get(Broadcast, ids["broadcast"])
    assert news is not None and news.status == "scheduled"
    if role not in WRITERS:
        assert set(flows) <= {""}, flows
        message = h.sandbox.bot_messages(h.token, user.id)[-1]
        for data in (f"bc:{ids['broadcast']}", f"nc:{ids['broadcast']}:aud:all"):
            await h.sandbox.press_button(
                h.token, user.id, message.message_id or 0, data, forged=True
            )

        def both_refused() -> bool:
            return h.callback_answers(user).count(refusal) == 2

        await eventually(both_refused)
        async with h.db.session() as session:
            news = await session.get(Broadcast, ids["broadcast"])
        assert news is not None and news.status == "scheduled"


async def test_stats_in_the_chat_shows_each_role_its_own_scope(harness: Harness) -> None:
    """/stats: the programme team's is headed by alfa and P1 alone; regional staff's by
    Alfa College and Beta College, without Gamma."""
    h = harness
    await seed_roles(h)
    users = await staff_of_every_role(h)
    (team,) = await h.send(users[PROGRAMME], "/stats")
    head = team.content.splitlines()[0]
    assert "Alfa College" in head and "P1" in head and "ICT4" not in head
    (regional,) = await h.send(users[REGIONAL], "/stats")
    head = regional.content.splitlines()[0]
    assert "Alfa College" in head and "Beta College" in head and "Gamma" not in head


# ---------------------------------------------------------------- storage and invites


async def test_roles_are_stored_with_their_programmes_and_schools(harness: Harness) -> None:
    """add_staff and staff invitations keep a programme team's programmes and regional
    staff's schools; a role without what it needs, or with what another role has, is
    refused with a clear message; an accepted invitation gives its opener the role."""
    h = harness
    ids = await seed_roles(h)
    team, _ = await add_staff(h.db, 501, "programme", school_code="alfa", programmes="P1,ICT4")
    assert team.programme_ids == [ids["P1"], ids["ICT4"]] and team.institution_id == ids["alfa"]
    regional, _ = await add_staff(h.db, 502, "regional", schools="alfa, beta")
    assert regional.school_ids == [ids["alfa"], ids["beta"]] and regional.institution_id is None
    listed = {row.staff.telegram_user_id: row for row in await list_staff(h.db)}
    assert listed[501].programme_codes == ("P1", "ICT4")
    assert listed[502].school_codes == ("alfa", "beta")
    for role, kwargs, problem in (
        ("programme", {"school_code": "alfa"}, "--programmes"),
        ("programme", {"programmes": "P1"}, "--school"),
        ("programme", {"school_code": "alfa", "programmes": "P3"}, "no programme 'P3'"),
        ("regional", {}, "--schools"),
        ("regional", {"school_code": "alfa"}, "--schools"),
        ("regional", {"schools": "alfa,nowhere"}, "no school 'nowhere'"),
        ("officer", {"school_code": "alfa", "programmes": "P1"}, "only a programme team"),
        ("researcher", {"schools": "alfa"}, "only regional"),
        ("boss", {}, "researcher"),
    ):
        with pytest.raises(StaffError, match=re.escape(problem)):
            await add_staff(h.db, 503, role, **kwargs)
    now = h.clock.now()
    invite = await create_invite(h.db, "regional", None, 1, now, schools=["beta", "alfa"])
    opener = h.user("et")
    (welcome,) = await h.send(opener, f"/start {invite.token}")
    assert "/stats" in welcome.content and "/news" not in welcome.content
    async with h.db.session() as session:
        schools = (await session.exec(select(Institution))).all()
    assert len(schools) == 3
    (stats,) = await h.send(opener, "/stats")
    assert "Beta College" in stats.content and "Gamma" not in stats.content


def test_the_command_line_offers_every_role() -> None:
    from bot.__main__ import STAFF_ROLES

    assert tuple(role.value for role in StaffRole) == STAFF_ROLES


async def test_the_cli_adds_lists_and_invites_every_role(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gradtrack staff add/list/invite` with --programmes and --schools; a missing option is
    an error that says which one."""
    settings = Settings(database_url=database_url, bot_username="gradtrack_bot", _env_file=None)
    parser = build_parser()

    async def run(*words: str) -> int:
        args = parser.parse_args(list(words))
        command = {"school": cmd_school, "programme": cmd_programme, "staff": cmd_staff}[words[0]]
        return int(await command(settings, args))

    for code in ("alfa", "beta"):
        assert await run("school", "add", code, "--name", code.title(), "--country", "NL") == 0
    assert await run("programme", "add", "alfa", "P1", "--name", "Cook", "--eqf", "4") == 0
    capsys.readouterr()
    add = ("staff", "add", "--telegram-id")
    assert (
        await run(*add, "7", "--role", "programme", "--school", "alfa", "--programmes", "P1") == 0
    )
    assert "staff 7 added: programme of alfa programmes P1" in capsys.readouterr().out
    assert await run(*add, "8", "--role", "regional", "--schools", "alfa,beta") == 0
    assert "staff 8 added: regional of schools alfa,beta" in capsys.readouterr().out
    assert await run(*add, "9", "--role", "researcher") == 0
    assert await run("staff", "list") == 0
    listing = capsys.readouterr().out
    assert "7  programme  alfa programmes P1" in listing
    assert "8  regional  schools alfa,beta" in listing
    assert "9  researcher  all schools" in listing
    assert await run(*add, "10", "--role", "programme", "--school", "alfa") == 1
    assert "--programmes" in capsys.readouterr().err
    invite = ("staff", "invite", "--role", "regional", "--schools", "beta")
    assert await run(*invite) == 0
    assert "one-time link for a new regional" in capsys.readouterr().out


async def _staff_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(
                await conn.run_sync(
                    lambda c: {col["name"] for col in sa.inspect(c).get_columns("staff")}
                )
            )
    finally:
        await engine.dispose()


async def test_migration_0021_adds_the_scopes_and_down_again_ends_the_new_roles(
    empty_database_url: str,
) -> None:
    """Up: an officer keeps their row, with no programmes or schools; a researcher can be
    stored. Down: the columns go, the officer stays, the researcher loses access (no Telegram
    id, removed) and their login goes; up again works."""
    url = empty_database_url
    await upgrade(url, "0017_choice_labels")
    assert not {"programme_ids", "school_ids"} & await _staff_columns(url)
    engine = create_engine(url)
    insert = (
        "INSERT INTO staff (telegram_user_id, role, created_at) "
        "VALUES (:tid, :role, CURRENT_TIMESTAMP)"
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(insert), {"tid": 1, "role": "officer"})
        await upgrade(url, "0021_roles")
        assert {"programme_ids", "school_ids"} <= await _staff_columns(url)
        async with engine.begin() as conn:
            row = (await conn.execute(sa.text("SELECT role, programme_ids FROM staff"))).one()
            assert tuple(row) == ("officer", None)
            await conn.execute(sa.text(insert), {"tid": 2, "role": "researcher"})
            await conn.execute(
                sa.text(
                    "INSERT INTO dashboard_login (token_hash, staff_id, created_at, expires_at) "
                    "SELECT 'h', id, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM staff "
                    "WHERE role = 'researcher'"
                )
            )
        await downgrade(url, "0017_choice_labels")
        assert not {"programme_ids", "school_ids"} & await _staff_columns(url)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text(
                        "SELECT role, telegram_user_id, removed_at IS NULL FROM staff ORDER BY id"
                    )
                )
            ).all()
            logins = (await conn.execute(sa.text("SELECT count(*) FROM dashboard_login"))).scalar()
        assert [tuple(r) for r in rows] == [("officer", 1, True), ("researcher", None, False)]
        assert logins == 0
    finally:
        await engine.dispose()
    await upgrade(url)
    assert {"programme_ids", "school_ids"} <= await _staff_columns(url)
