"""The web chat: a graduate's conversation in any browser, at `PUBLIC_URL/c/<token>`.

The second channel adapter (the first is bot/telegram_channel.py): a form post becomes a turn
(conversations/channel.py) routed by the same table as Telegram's updates
(conversations/routes.py), so the questionnaire, the consents, /privacy, /mydata, /delete and
/stop are the very flows a Telegram chat runs, on the same rows: a graduate can begin on one
channel and go on on the other. What the bot says is kept as the chat's messages
(`web_message`), buttons included and changed in place as Telegram changes a message, and the
page shows them; it needs no script and no asset from another origin.

The link's token is the graduate's personal invite token (the one in their Telegram link and
QR code): whoever holds the link is the graduate, as with LimeSurvey's tokens. So:
- GET never changes anything (a mail scanner opening the link starts nothing, and does not
  undo a /stop): the first visit shows a "Start" button;
- every POST checks its Origin (same_origin) and a CSRF token (a cookie of this browser,
  repeated in the form: double submit), is throttled per chat like Telegram updates
  (bot.throttle.ChatThrottle), and carries an event id made when the page was shown, stored
  with the event's effect (storage/processed.py): a form sent twice takes effect once;
- one chat's posts take turns (a lock per chat), as Telegram delivers one chat's updates;
- a revoked, replaced, erased or unknown link says so, in the reader's language (the
  browser's Accept-Language), with no personal data;
- nothing personal is logged (chats appear as bot.logs.chat_ref).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from sqlalchemy import BigInteger, literal
from sqlalchemy.orm import defer
from sqlmodel import col, select

from bot import i18n
from bot.i18n import _
from bot.logs import chat_ref
from bot.runtime import Runtime
from bot.throttle import ChatThrottle, slow_down_text
from bot.web import access
from bot.web.dashboard import SECURITY_HEADERS as DASHBOARD_HEADERS
from bot.web.dashboard import accepted_language, same_origin, template_environment
from bot.web_channel import web_channel
from conversations import routes
from conversations.channel import MAX_BUTTON_DATA, Event, Turn
from conversations.prompting import send_pending_question
from conversations.rules import choose_language
from storage.db import Database
from storage.models import ChatState, Graduate, Institution, WebMessage
from storage.processed import claim, handling, pending, seen
from storage.queries import WEB_CHAT_BASE, retired_link, web_chat_id

log = logging.getLogger(__name__)

PREFIX = "/c"
STATIC = Path(__file__).parent / "static"
CSRF_COOKIE = "gt_chat"
#: The messages a page shows (the newest); older ones stay until the graduate is erased.
SHOWN = 60
#: A chat keeps at most this many messages: older ones are deleted as new ones come.
KEPT = 400
MAX_TEXT = 4096
#: Web chat events have negative ids (Telegram's update ids are positive): -1 .. -2**62.
MAX_EVENT = 2**62

#: The dashboard's headers (its Referrer-Policy `same-origin` matters more here: the token is
#: in the address and must never be sent to another site), and no search engine.
SECURITY_HEADERS = {**DASHBOARD_HEADERS, "X-Robots-Tag": "noindex, nofollow"}

#: The commands the page offers as buttons under the conversation, with their labels.
MENU = ("survey", "language", "privacy", "mydata", "delete", "stop", "help")


def _menu_label(command: str) -> str:
    """The menu button of `command`, in the current language (the command, for another)."""
    return {
        "survey": _("Questionnaire"),
        "language": _("Language"),
        "privacy": _("Privacy"),
        "mydata": _("My data"),
        "delete": _("Delete my data"),
        "stop": _("Stop messages"),
        "help": _("Help"),
    }.get(command, f"/{command}")


# ---------------------------------------------------------------- the app's state


@dataclass
class WebChat:
    rt: Runtime
    env: jinja2.Environment
    throttle: ChatThrottle
    secure_cookie: bool
    locks: OrderedDict[int, asyncio.Lock] = field(default_factory=OrderedDict)

    @asynccontextmanager
    async def turn_of(self, chat_id: int) -> AsyncIterator[None]:
        """One event of a chat at a time (as Telegram delivers a chat's updates)."""
        lock = self.locks.get(chat_id)
        if lock is None:
            lock = self.locks[chat_id] = asyncio.Lock()
            while len(self.locks) > 10_000:
                oldest, old = next(iter(self.locks.items()))
                if old.locked():
                    break
                del self.locks[oldest]
        async with lock:
            yield


WEB_CHAT_KEY = web.AppKey("web_chat", WebChat)


def _environment() -> jinja2.Environment:
    return template_environment(menu_label=_menu_label, MENU=MENU)


def _browser_language(request: web.Request) -> str | None:
    return accepted_language(request.headers.get("Accept-Language", ""))


def _page(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    chat = request.app[WEB_CHAT_KEY]
    body = chat.env.get_template(template).render(lang=i18n.current_language(), **values)
    response = web.Response(text=body, content_type="text/html", status=status, charset="utf-8")
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def _notice_page(request: web.Request, title: str, text: str, status: int) -> web.Response:
    return _page(request, "chat_notice.html", status=status, title=title, text=text)


# ---------------------------------------------------------------- the link


@dataclass
class Link:
    graduate: Graduate
    school: Institution
    chat_id: int
    language: str


async def _link(request: web.Request) -> Link | web.Response:
    """The graduate of the link, or the page saying why the link does not work."""
    chat = request.app[WEB_CHAT_KEY]
    token = request.match_info["token"]
    i18n.set_language(choose_language(None, _browser_language(request), None))
    graduate: Graduate | None = None
    school: Institution | None = None
    retired = None
    state: ChatState | None = None
    if 8 <= len(token) <= 64:
        async with chat.rt.db.session() as session:
            # One statement for the graduate, their school and their web chat's state.
            found = (
                await session.exec(
                    select(Graduate, Institution, ChatState)
                    .join(Institution, col(Institution.id) == Graduate.institution_id)
                    .outerjoin(
                        ChatState,
                        col(ChatState.chat_id)
                        == literal(-WEB_CHAT_BASE, BigInteger) - col(Graduate.id),
                    )
                    .where(col(Graduate.invite_token) == token)
                )
            ).first()
            if found is None:
                retired = await retired_link(session, token)
            else:
                graduate, school, state = found
    if graduate is None or school is None:
        if retired is not None and retired.reason == "erased":
            return _notice_page(
                request,
                _("Your data has been deleted"),
                _(
                    "The data of this link was deleted, as you asked, and the link no longer "
                    "works. If you want to take part again, please ask your school for a new "
                    "link."
                ),
                410,
            )
        if retired is not None:
            return _notice_page(
                request,
                _("This link has been replaced"),
                _(
                    "Your school has sent you a newer link. Please use the link in its latest "
                    "message, or ask your school for it."
                ),
                410,
            )
        return _notice_page(
            request,
            _("Link not recognised"),
            _(
                "I don't recognise this link. Please check that you opened the whole link, "
                "or ask your school for your personal link."
            ),
            404,
        )
    language = choose_language(
        (state.language if state else None) or graduate.language,
        _browser_language(request),
        school.default_language,
    )
    i18n.set_language(language)
    if graduate.invite_revoked_at is not None:
        return _notice_page(
            request,
            _("This link no longer works"),
            _("This link is no longer valid. Please ask your school for a new one."),
            410,
        )
    assert graduate.id is not None
    return Link(graduate, school, web_chat_id(graduate.id), language)


def _csrf(request: web.Request) -> tuple[str, bool]:
    """This browser's CSRF token, and whether it is new (to be set as a cookie)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(value) <= 64 and value.isascii():
        return value, False
    return secrets.token_urlsafe(24), True


def _set_csrf(request: web.Request, response: web.Response, value: str) -> None:
    chat = request.app[WEB_CHAT_KEY]
    response.set_cookie(
        CSRF_COOKIE,
        value,
        path=f"{PREFIX}/",
        httponly=True,
        samesite="Strict",
        secure=chat.secure_cookie,
        max_age=180 * 24 * 3600,
    )


# ---------------------------------------------------------------- pages


@dataclass
class Shown:
    """A message as the page shows it."""

    id: int
    kind: str
    text: str
    buttons: list[list[list[str]]]
    file_name: str | None
    has_file: bool


async def transcript(db: Database, chat_id: int, limit: int = SHOWN) -> list[Shown]:
    """The newest `limit` messages of a web chat, oldest first. Every page and every post
    reads it: a file's bytes (a /mydata copy, kept a day) are not read, only whether there is
    one."""
    async with db.session() as session:
        rows = (
            await session.exec(
                select(WebMessage, col(WebMessage.file_data).is_not(None))
                .options(defer(WebMessage.file_data))  # type: ignore[arg-type]
                .where(col(WebMessage.chat_id) == chat_id)
                .order_by(col(WebMessage.id).desc())
                .limit(limit)
            )
        ).all()
    shown = [
        Shown(m.id or 0, m.kind, m.text, m.buttons or [], m.file_name, bool(has_file))
        for m, has_file in rows
    ]
    shown.reverse()
    # A notice answers what the person did last; once they do something else it is old.
    last_action = max((m.id for m in shown if m.kind == "me"), default=0)
    return [m for m in shown if m.kind != "notice" or m.id > last_action]


@access.public
async def chat_page(request: web.Request) -> web.StreamResponse:
    """The conversation: its messages, the open question's buttons, a text field, the menu."""
    link = await _link(request)
    if isinstance(link, web.Response):
        return link
    chat = request.app[WEB_CHAT_KEY]
    async with chat.turn_of(link.chat_id):
        # A question decided but never shown (the process handling the last post died
        # between its commit and its messages): shown now, claimed so that it is shown once
        # (conversations/prompting.py), rather than after the resender's delay.
        try:
            await send_pending_question(chat.rt, link.chat_id)
        except Exception:  # the page shows what there is; the resender sends it later
            log.warning("could not send a pending web chat question", exc_info=True)
    messages = await transcript(chat.rt.db, link.chat_id)
    csrf, new = _csrf(request)
    # The question to answer now: the newest message with buttons (its first button gets the
    # focus), or the text field when the newest message asks for a typed answer.
    focus: str | None = None
    for message in reversed(messages):
        if message.kind == "bot" and message.buttons:
            focus = message.buttons[0][0][1]
            focus_message: int | None = message.id
            break
        if message.kind in ("bot", "file"):
            break
    else:
        focus_message = None
    if focus is None:
        focus_message = None
    response = _page(
        request,
        "chat.html",
        school=link.school.name,
        messages=messages,
        focus=focus,
        focus_message=focus_message,
        csrf=csrf,
        event=secrets.randbelow(MAX_EVENT) + 1,
        action=request.path,
        started=bool(messages),
    )
    if new:
        _set_csrf(request, response, csrf)
    return response


@access.public
async def file_download(request: web.Request) -> web.StreamResponse:
    """A file of the chat (the /mydata copy), as an attachment."""
    link = await _link(request)
    if isinstance(link, web.Response):
        return link
    chat = request.app[WEB_CHAT_KEY]
    try:
        message_id = int(request.match_info["file"])
    except ValueError:
        raise web.HTTPNotFound() from None
    async with chat.rt.db.session() as session:
        message = await session.get(WebMessage, message_id)
    if message is None or message.chat_id != link.chat_id or message.file_data is None:
        return _notice_page(
            request,
            _("This file is no longer here"),
            _("Files are kept for a day. Ask for a new copy with the “My data” button."),
            404,
        )
    response = web.Response(body=message.file_data, content_type="application/json")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{message.file_name or "my-data.json"}"'
    )
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


# ---------------------------------------------------------------- posts


def _event_of(form: Any, label_of: dict[str, tuple[int, str, str]]) -> tuple[Event, str] | None:
    """The event a form post stands for, and what the transcript shows the person did;
    None for a post no page of ours makes."""
    kind = form.get("kind")
    if kind == "button":
        data = str(form.get("data", ""))
        if not data or len(data.encode()) > MAX_BUTTON_DATA:
            return None
        found = label_of.get(data)
        message_id, label, text = found if found else (None, "", None)
        return Event("button", data=data, message_id=message_id, message_text=text), label
    if kind == "command":
        name = str(form.get("command", ""))
        if name not in routes.COMMANDS:
            return None
        shown = _("Start") if name == "start" else _menu_label(name)
        return Event("command", name=name, text=f"/{name}"), shown
    if kind == "text":
        text = str(form.get("text", "")).strip()
        if not text:
            return None
        text = text[:MAX_TEXT]
        if text.startswith("/"):
            parts = text[1:].split()
            name = parts[0].lower() if parts else ""
            return Event("command", name=name, args=tuple(parts[1:]), text=text), text
        return Event("text", text=text), text
    return None


@access.public
async def chat_post(request: web.Request) -> web.StreamResponse:
    """One thing the person did: a button, a typed answer, a command of the menu."""
    link = await _link(request)
    if isinstance(link, web.Response):
        return link
    chat = request.app[WEB_CHAT_KEY]
    rt = chat.rt
    if not same_origin(request, rt.settings.base_url):
        return _notice_page(
            request,
            _("Not allowed"),
            _("This form was sent from another website. Please use the chat's own page."),
            403,
        )
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        return _notice_page(
            request, _("Too long"), _("That message is too long. Please keep it shorter."), 413
        )
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = str(form.get("csrf", ""))
    if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
        return _notice_page(
            request,
            _("This page has expired"),
            _("Please open your link again and repeat what you did."),
            403,
        )
    try:
        event_id = -int(str(form.get("event", "")))
    except ValueError:
        event_id = 0
    if not -MAX_EVENT <= event_id <= -1:
        raise web.HTTPBadRequest(reason=_("Please open your link again."))
    back = web.HTTPSeeOther(f"{request.path}#end")
    allowed, tell = chat.throttle.allow(link.chat_id)
    if not allowed:
        if tell:
            await web_channel(rt).note(link.chat_id, "notice", slow_down_text())
        raise back
    async with chat.turn_of(link.chat_id):
        async with rt.db.session() as session:
            done = await seen(session, event_id)
        if done:  # the same form sent again: it took effect once
            raise back
        label_of = await _labels(rt.db, link.chat_id)
        read = _event_of(form, label_of)
        if read is None:
            raise web.HTTPBadRequest(reason=_("Please use the buttons and the text field."))
        event, shown = read
        event = Event(
            event.kind,
            name=event.name,
            args=event.args,
            text=event.text,
            data=event.data,
            message_id=event.message_id,
            message_text=event.message_text,
            language=_browser_language(request),
        )
        await _handle(rt, link.chat_id, event, shown, event_id)
    raise back


async def _labels(db: Database, chat_id: int) -> dict[str, tuple[int, str, str]]:
    """Button data of the chat's messages -> (message, label, message text): the newest
    message carrying it."""
    found: dict[str, tuple[int, str, str]] = {}
    for message in await transcript(db, chat_id):
        for row in message.buttons:
            for label, data in row:
                found[data] = (message.id, label, message.text)
    return found


async def _handle(rt: Runtime, chat_id: int, event: Event, shown: str, event_id: int) -> None:
    channel = web_channel(rt)

    async def acknowledge(text: str | None, alert: bool) -> None:
        if text:
            await channel.note(chat_id, "notice", text)

    if shown:
        await channel.note(chat_id, "me", shown)
    turn = Turn(chat_id, event, channel, acknowledge)
    handling(event_id)
    failed = False
    try:
        await routes.dispatch(rt, turn)
        if pending() is not None:  # a flow that wrote nothing: recorded all the same
            async with rt.db.session() as session:
                await claim(session)
    except Exception:
        handling(None)
        failed = True
        log.exception("error while handling a web chat event of chat %s", chat_ref(chat_id))
    if failed:
        await channel.note(
            chat_id,
            "notice",
            _("Sorry, something went wrong on our side. Please try again in a minute."),
        )


def add_web_chat(app: web.Application, rt: Runtime, *, secure_cookie: bool) -> None:
    """Mount the web chat on `app` (the service's aiohttp app)."""
    app[WEB_CHAT_KEY] = WebChat(
        rt=rt,
        env=_environment(),
        throttle=ChatThrottle(rt.settings.throttle_per_second, rt.settings.throttle_burst),
        secure_cookie=secure_cookie,
    )
    r = app.router
    r.add_static(f"{PREFIX}/static/", STATIC)
    r.add_get(f"{PREFIX}/{{token}}", chat_page)
    r.add_post(f"{PREFIX}/{{token}}", chat_post)
    r.add_get(f"{PREFIX}/{{token}}/files/{{file}}", file_download)
