"""Unsubscribing from e-mail: the link at the bottom of every invitation e-mail and the
List-Unsubscribe header (RFC 8058 one-click) point to `/u/<token>`.

- `GET /u/<token>` shows a small page in the graduate's language with a button to confirm
  (a GET changes nothing: mail scanners and link previews open links);
- `POST /u/<token>` records the opt-out: Graduate.email_status "unsubscribed". A mail
  client's one-click POST (body `List-Unsubscribe=One-Click`) comes from no page of ours and
  carries no cookie or CSRF token: the token in the URL is the credential (an HMAC of the
  graduate's id with SECRET_KEY, bot.links.unsubscribe_token), so any POST to a valid link
  unsubscribes, and doing it twice changes nothing.

It stops e-mail only: a graduate who also chats with the bot goes on there (/stop in the chat
stops everything). A forged or mistyped token gets a page that says so, with 404.
"""

from __future__ import annotations

from aiohttp import web

from bot import i18n
from bot.i18n import _
from bot.links import UNSUBSCRIBE_PATH, unsubscribed_graduate
from bot.runtime import Runtime
from bot.web import access
from conversations.rules import choose_language
from storage.contacts import set_email_status
from storage.models import EmailStatus, Graduate, Institution

RUNTIME_KEY = web.AppKey("gradtrack_unsubscribe_runtime", Runtime)
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}


def _page(request: web.Request, status: int = 200, **values: object) -> web.Response:
    from bot.web.dashboard import dashboard

    values.setdefault("confirm", None)
    values.setdefault("note", None)
    values.setdefault("action", request.path)
    body = (
        dashboard(request)
        .env.get_template("unsubscribe.html")
        .render(lang=i18n.current_language(), **values)
    )
    return web.Response(
        text=body, content_type="text/html", charset="utf-8", status=status, headers=HEADERS
    )


async def _find(
    request: web.Request,
) -> tuple[Runtime, Graduate, Institution] | web.Response:
    """The graduate and school of the link, speaking their language; or the 404 page."""
    from bot.web.dashboard import accepted_language

    rt = request.app[RUNTIME_KEY]
    graduate_id = unsubscribed_graduate(rt.settings.key, request.match_info["token"])
    found = None
    if graduate_id is not None:
        async with rt.db.session() as session:
            graduate = await session.get(Graduate, graduate_id)
            school = await session.get(Institution, graduate.institution_id) if graduate else None
            if graduate is not None and school is not None:
                found = (rt, graduate, school)
    browser = accepted_language(request.headers.get("Accept-Language", ""))
    if found is None:
        i18n.set_language(choose_language(None, browser, None))
        return _page(
            request,
            404,
            title=_("This link is not valid"),
            text=_(
                "Please check that you opened the whole link from the e-mail. If it still does "
                "not work, ask the school to stop the e-mails."
            ),
        )
    _rt, graduate, school = found
    i18n.set_language(choose_language(graduate.language, browser, school.default_language))
    return found


def _done(request: web.Request, school: Institution) -> web.Response:
    return _page(
        request,
        title=_("You are unsubscribed"),
        text=_("{school} will send you no more e-mails.").format(school=school.name),
        note=_(
            "If you also chat with the school's bot in Telegram, that goes on: send /stop there "
            "to stop its messages too."
        ),
    )


@access.public
async def unsubscribe_page(request: web.Request) -> web.Response:
    found = await _find(request)
    if isinstance(found, web.Response):
        return found
    _rt, graduate, school = found
    if (
        graduate.erased_at is not None
        or not graduate.email
        or graduate.email_status == EmailStatus.UNSUBSCRIBED.value
    ):
        return _done(request, school)
    return _page(
        request,
        title=_("No more e-mails from {school}?").format(school=school.name),
        text=_(
            "Press the button and {school} will send you no more e-mails about its questionnaires."
        ).format(school=school.name),
        confirm=_("Unsubscribe"),
    )


@access.public
async def unsubscribe(request: web.Request) -> web.Response:
    found = await _find(request)
    if isinstance(found, web.Response):
        return found
    rt, graduate, school = found
    if graduate.email and graduate.erased_at is None and graduate.id is not None:
        async with rt.db.session() as session:
            await set_email_status(
                session, graduate.id, graduate.email, EmailStatus.UNSUBSCRIBED, rt.clock.now()
            )
    return _done(request, school)


def add_unsubscribe(app: web.Application, rt: Runtime) -> None:
    """Mount `/u/<token>` on the service's app (next to the dashboard, whose templates and
    stylesheet it uses)."""
    app[RUNTIME_KEY] = rt
    app.router.add_get(UNSUBSCRIBE_PATH + "{token}", unsubscribe_page)
    app.router.add_post(UNSUBSCRIBE_PATH + "{token}", unsubscribe)


__all__ = ["add_unsubscribe", "unsubscribe", "unsubscribe_page"]
