"""The web chat page (`GET /chat`) and the user-side JSON API under `/sandbox/api/`.

Every answer is `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}` (HTTP 400
for misuse, 404 for unknown bots/users). `{bot}` is a bot's username, id or token.

    GET    /chat[?bot=USERNAME&user=ID&start=PAYLOAD]       the chat page
    GET    /sandbox/api/bots                                 bots (no tokens)
    POST   /sandbox/api/bots         {username, first_name, token?} -> bot incl. token
    GET    /sandbox/api/users                                virtual users
    POST   /sandbox/api/users        {first_name, last_name?, username?, language_code?, id?}
    POST   /sandbox/api/bots/{bot}/started_users   {count, first_name?, language_code?}
           users whose chat with the bot is already started (for load tests)
    GET    /sandbox/api/users/{user_id}
    POST   /sandbox/api/users/{user_id}/deactivate
    GET    /sandbox/api/chats/{bot}/{user_id}[?since=REV&wait=SECONDS&limit=N]
           transcript; with `since`, waits (long poll, <= 60 s) until the chat changes
    POST   /sandbox/api/chats/{bot}/{user_id}/messages  {text} | {start: PAYLOAD|""} |
                                                        {contact: PHONE}
    POST   /sandbox/api/chats/{bot}/{user_id}/press     {message_id, callback_data | text}
    POST   /sandbox/api/chats/{bot}/{user_id}/block      (and /unblock)
    GET    /sandbox/api/files/{bot}/{file_id}            bytes of a file the bot sent
    GET    /sandbox/api/calls[?method=sendMessage&limit=100]   the Bot API call log
    GET    /sandbox/api/stats
    GET    /sandbox/api/rate_limits    PUT with any RateLimits fields to change them
    POST   /sandbox/api/faults         {method?, status?, count?, delay?, process?}
    DELETE /sandbox/api/faults
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import SandboxError, SandboxNotFound
from .ratelimit import RateLimits

if TYPE_CHECKING:
    from .server import SandboxServer

PAGE_FILE = Path(__file__).with_name("page.html")
API = "/sandbox/api"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@cache
def page_html() -> bytes:
    return PAGE_FILE.read_bytes()


def _ok(result: Any, status: int = 200) -> web.Response:
    return web.json_response({"ok": True, "result": result}, status=status)


def _fail(message: str, status: int = 400) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


def _guard(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SandboxNotFound as exc:
            return _fail(str(exc), 404)
        except SandboxError as exc:
            return _fail(str(exc), 400)
        except (KeyError, TypeError, ValueError) as exc:
            return _fail(f"bad request: {exc}")

    return wrapped


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def add_web_routes(app: web.Application, sandbox: SandboxServer) -> None:
    """Register `/chat` and `/sandbox/api/...` on `app`."""
    routes = _WebRoutes(sandbox)
    r = app.router
    r.add_get("/chat", routes.page)
    r.add_get(f"{API}/bots", _guard(routes.list_bots))
    r.add_post(f"{API}/bots", _guard(routes.create_bot))
    r.add_get(f"{API}/users", _guard(routes.list_users))
    r.add_post(f"{API}/users", _guard(routes.create_user))
    r.add_post(f"{API}/bots/{{bot}}/started_users", _guard(routes.create_started_users))
    r.add_get(f"{API}/users/{{user_id:\\d+}}", _guard(routes.get_user))
    r.add_post(f"{API}/users/{{user_id:\\d+}}/deactivate", _guard(routes.deactivate))
    chat = f"{API}/chats/{{bot}}/{{user_id:\\d+}}"
    r.add_get(chat, _guard(routes.transcript))
    r.add_post(f"{chat}/messages", _guard(routes.send))
    r.add_post(f"{chat}/press", _guard(routes.press))
    r.add_post(f"{chat}/block", _guard(routes.block))
    r.add_post(f"{chat}/unblock", _guard(routes.unblock))
    r.add_get(f"{API}/files/{{bot}}/{{file_id}}", _guard(routes.file))
    r.add_get(f"{API}/calls", _guard(routes.calls))
    r.add_get(f"{API}/stats", _guard(routes.stats))
    r.add_get(f"{API}/rate_limits", _guard(routes.get_rate_limits))
    r.add_put(f"{API}/rate_limits", _guard(routes.put_rate_limits))
    r.add_post(f"{API}/faults", _guard(routes.add_fault))
    r.add_delete(f"{API}/faults", _guard(routes.clear_faults))


class _WebRoutes:
    def __init__(self, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=page_html(),
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )

    # -- bots and users -------------------------------------------------------------------

    async def list_bots(self, request: web.Request) -> web.StreamResponse:
        return _ok([b.to_json() for b in self.sandbox.state.bots.values()])

    async def create_bot(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        token = self.sandbox.create_bot(
            str(body.get("username") or "sandbox_bot"),
            str(body.get("first_name") or "Sandbox Bot"),
            token=body.get("token"),
        )
        return _ok({**self.sandbox.bot(token).to_json(), "token": token}, 201)

    async def list_users(self, request: web.Request) -> web.StreamResponse:
        return _ok([u.to_json() for u in self.sandbox.users()])

    async def create_user(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        user = self.sandbox.create_user(
            None,
            str(body.get("first_name") or ""),
            last_name=body.get("last_name") or None,
            username=body.get("username") or None,
            language_code=body.get("language_code") or None,
            user_id=int(body["id"]) if body.get("id") else None,
        )
        return _ok(user.to_json(), 201)

    async def create_started_users(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        count = int(body.get("count", 1))
        if not 1 <= count <= 1_000_000:
            raise SandboxError("count must be from 1 to 1,000,000")
        ids = self.sandbox.create_started_users(
            request.match_info["bot"],
            count,
            first_name=str(body.get("first_name") or "Graduate"),
            language_code=body.get("language_code") or None,
        )
        return _ok({"first_id": ids[0], "last_id": ids[-1], "count": len(ids)}, 201)

    async def get_user(self, request: web.Request) -> web.StreamResponse:
        return _ok(self.sandbox.get_user(int(request.match_info["user_id"])).to_json())

    async def deactivate(self, request: web.Request) -> web.StreamResponse:
        self.sandbox.deactivate_user(int(request.match_info["user_id"]))
        return _ok(True)

    # -- chats ----------------------------------------------------------------------------

    def _chat_ref(self, request: web.Request) -> tuple[str, int]:
        return request.match_info["bot"], int(request.match_info["user_id"])

    async def transcript(self, request: web.Request) -> web.StreamResponse:
        bot_ref, user_id = self._chat_ref(request)
        bot = self.sandbox.bot(bot_ref)
        chat = self.sandbox.chat(bot.id, user_id)
        since = request.query.get("since")
        if since is not None:
            wait = min(float(request.query.get("wait", "25")), 60.0)
            asked_at = time.time()
            deadline = time.monotonic() + wait
            while (
                chat.revision <= int(since)
                and chat.last_action_at < asked_at
                and not self.sandbox.state.closing
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or request.transport is None or request.transport.is_closing():
                    break
                await chat.notifier.wait(min(remaining, 5.0))
        limit = int(request.query.get("limit", "200"))
        entries = list(chat.entries)[-limit:] if limit > 0 else []
        language = chat.user.language_code or ""
        commands = bot.commands.get(('{"type": "default"}', language)) or bot.commands.get(
            ('{"type": "default"}', ""), []
        )
        return _ok(
            {
                "revision": chat.revision,
                "bot": bot.to_json(),
                "user": chat.user.to_json(),
                "started": chat.started,
                "blocked": chat.blocked,
                "reply_keyboard": chat.reply_keyboard,
                "commands": commands,
                "action": chat.last_action if time.time() - chat.last_action_at < 5.0 else None,
                "entries": [e.to_json() for e in entries],
            }
        )

    async def send(self, request: web.Request) -> web.StreamResponse:
        bot, user_id = self._chat_ref(request)
        body = await _body(request)
        if "start" in body:
            entry = await self.sandbox.send_start(bot, user_id, str(body["start"] or "") or None)
        elif "contact" in body:
            entry = await self.sandbox.send_contact(bot, user_id, str(body["contact"]))
        else:
            entry = await self.sandbox.send_text(bot, user_id, str(body.get("text", "")))
        return _ok(entry.to_json())

    async def press(self, request: web.Request) -> web.StreamResponse:
        bot, user_id = self._chat_ref(request)
        body = await _body(request)
        query_id = await self.sandbox.press_button(
            bot,
            user_id,
            int(body["message_id"]),
            body.get("callback_data"),
            text=body.get("text"),
        )
        return _ok({"callback_query_id": query_id})

    async def block(self, request: web.Request) -> web.StreamResponse:
        bot, user_id = self._chat_ref(request)
        self.sandbox.block(bot, user_id)
        return _ok(True)

    async def unblock(self, request: web.Request) -> web.StreamResponse:
        bot, user_id = self._chat_ref(request)
        self.sandbox.unblock(bot, user_id)
        return _ok(True)

    async def file(self, request: web.Request) -> web.StreamResponse:
        bot = self.sandbox.bot(request.match_info["bot"])
        stored = bot.files.get(request.match_info["file_id"])
        if stored is None:
            return _fail("no such file", 404)
        headers = {}
        if stored.file_name:
            safe = stored.file_name.replace('"', "")
            headers["Content-Disposition"] = f'inline; filename="{safe}"'
        return web.Response(
            body=stored.data,
            content_type=stored.mime_type
            or ("image/jpeg" if stored.kind == "photo" else "application/octet-stream"),
            headers=headers,
        )

    # -- operations -----------------------------------------------------------------------

    async def calls(self, request: web.Request) -> web.StreamResponse:
        limit = int(request.query.get("limit", "100"))
        calls = self.sandbox.calls(request.query.get("method"))
        return _ok([c.to_json() for c in calls[-limit:]] if limit > 0 else [])

    async def stats(self, request: web.Request) -> web.StreamResponse:
        return _ok(self.sandbox.stats())

    async def get_rate_limits(self, request: web.Request) -> web.StreamResponse:
        return _ok(dataclasses.asdict(self.sandbox.rate_limits))

    async def put_rate_limits(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        current = dataclasses.asdict(self.sandbox.rate_limits)
        unknown = set(body) - set(current)
        if unknown:
            raise SandboxError(f"unknown rate limit fields: {sorted(unknown)}")
        self.sandbox.rate_limits = RateLimits(**(current | body))
        return _ok(dataclasses.asdict(self.sandbox.rate_limits))

    async def add_fault(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        fault = self.sandbox.faults.add(
            body.get("method"),
            status=body.get("status", 500),
            count=body.get("count", 1),
            delay=float(body.get("delay", 0.0)),
            process=bool(body.get("process", False)),
            description=body.get("description"),
            retry_after=body.get("retry_after"),
        )
        return _ok({"method": fault.method, "status": fault.status, "count": fault.count}, 201)

    async def clear_faults(self, request: web.Request) -> web.StreamResponse:
        self.sandbox.faults.clear()
        return _ok(True)
