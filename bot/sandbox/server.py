"""`SandboxServer`: the sandbox's HTTP server and its Python API.

Routes (see the package docstring for the full list):

    GET|POST /bot{token}/{method}          the Bot API
    GET      /file/bot{token}/{file_path}  file downloads (after getFile)
    ...      /chat, /sandbox/api/...       web chat page and user-side API (web.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from .errors import (
    ApiError,
    SandboxError,
    SandboxNotFound,
    bad_request,
    not_found,
    unauthorized,
)
from .faults import FaultInjector
from .methods import BotApi
from .ratelimit import RateLimiter, RateLimits
from .spec import ApiSpec, UploadedFile, load_spec
from .state import BotAccount, ChatState, SandboxState, SandboxUser, TranscriptEntry
from .webhook import WebhookDelivery

log = logging.getLogger(__name__)
TOKEN_RE = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{1,200}")
MAX_REQUEST_BYTES = 60 * 1024 * 1024
_JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(slots=True)
class CallRecord:
    """One Bot API call the bot made."""

    time: float
    bot_id: int | None
    method: str
    params: dict[str, Any] | None
    status: int
    description: str | None = None
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == 200

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "bot_id": self.bot_id,
            "method": self.method,
            "params": self.params,
            "status": self.status,
            "description": self.description,
            "duration": round(self.duration, 6),
        }


def _summarize(params: Mapping[str, Any]) -> dict[str, Any]:
    """Params for the call log, with uploaded bytes replaced by a short description."""
    result = dict(params)
    for key, value in result.items():
        if isinstance(value, UploadedFile):
            result[key] = {
                "upload": value.filename,
                "size": len(value.data),
                "content_type": value.content_type,
            }
    return result


async def _read_params(
    request: web.Request,
) -> tuple[dict[str, str], dict[str, Any], dict[str, UploadedFile]]:
    """Query, form/multipart fields, JSON body and uploaded files of a Bot API request."""
    text: dict[str, str] = dict(request.query)
    data: dict[str, Any] = {}
    files: dict[str, UploadedFile] = {}
    if request.method != "POST" or not request.body_exists:
        return text, data, files
    ctype = request.content_type
    if ctype == "application/json":
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON object")
            data = body
    elif ctype == "application/x-www-form-urlencoded":
        form = await request.post()
        text.update({k: v for k, v in form.items() if isinstance(v, str)})
    elif ctype.startswith("multipart/"):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                continue
            if part.filename is not None:
                content = bytes(await part.read(decode=True))
                files[part.name] = UploadedFile(
                    content, part.filename, part.headers.get("Content-Type")
                )
            else:
                text[part.name] = await part.text()
    return text, data, files


class SandboxServer:
    """A local Telegram Bot API server with virtual users. See the package docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limits: RateLimits | None = None,
        call_log_size: int = 10_000,
        log_params: bool = True,
        max_messages_per_chat: int = 2000,
        max_pending_updates: int = 100_000,
        callback_query_timeout: float = 15.0,
        max_poll_timeout: float = 50.0,
        webhook_retry_delay: float = 0.2,
        allow_remote_webhooks: bool = False,
        spec: ApiSpec | None = None,
        state_file: str | Path | None = None,
        mailbox_dir: str | Path | None = None,
    ) -> None:
        self.host = host
        #: The local mailbox (bot.mail.LocalMailbox) the page /sandbox/mailbox shows; None:
        #: no mailbox page (mail goes to an SMTP server).
        self.mailbox_dir = Path(mailbox_dir) if mailbox_dir is not None else None
        #: Where the world (users, chats, update numbers) is kept across restarts; None: not.
        self.state_file = Path(state_file) if state_file is not None else None
        self._saver: asyncio.Task[None] | None = None
        self._saved: tuple[int, ...] | None = None
        self.port = port
        self.url = ""
        self.spec = spec or load_spec()
        self.state = SandboxState(
            max_messages_per_chat=max_messages_per_chat,
            max_pending_updates=max_pending_updates,
            callback_query_timeout=callback_query_timeout,
        )
        self.limiter = RateLimiter(rate_limits or RateLimits())
        self.faults = FaultInjector()
        self.call_log: deque[CallRecord] = deque(maxlen=max(call_log_size, 0))
        self.log_params = log_params
        self.webhooks = WebhookDelivery(
            self.state, retry_delay=webhook_retry_delay, on_reply=self._webhook_reply
        )
        self.api = BotApi(
            self.state,
            self.limiter,
            self.webhooks,
            allow_remote_webhooks=allow_remote_webhooks,
            max_poll_timeout=max_poll_timeout,
        )
        self.total_calls = 0
        #: Successful calls per method (e.g. "sendmessage": 100000), for load tests.
        self.ok_calls: Counter[str] = Counter()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # -- configuration --------------------------------------------------------------------

    @property
    def rate_limits(self) -> RateLimits:
        return self.limiter.limits

    @rate_limits.setter
    def rate_limits(self, limits: RateLimits) -> None:
        self.limiter.reset(limits)

    # -- lifecycle ------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """A new aiohttp application serving the sandbox (Bot API, files, web chat)."""
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        self.mount(app)
        return app

    def mount(self, app: web.Application) -> None:
        """Add the sandbox's routes to an existing application, and close the sandbox when
        that application shuts down. Set `sandbox.url` yourself if you need it."""
        from .web import add_web_routes

        app.router.add_route("*", "/bot{token}/{method}", self._handle_bot_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        add_web_routes(app, self)
        if self.mailbox_dir is not None:
            from .mailbox import add_mailbox_routes

            add_mailbox_routes(app, self.mailbox_dir)
        app.on_shutdown.append(self._on_app_shutdown)

    async def _on_app_shutdown(self, app: web.Application) -> None:
        await self.close()

    async def start(self) -> str:
        """Listen on host:port (port 0: any free port); returns and sets `self.url`."""
        if self._runner is not None:
            return self.url
        if self.state_file is not None and not self.state.bots and self.state_file.exists():
            self.state.restore(json.loads(self.state_file.read_text(encoding="utf-8")))
            self._saved = self.state.fingerprint()
        self.state.closing = False
        self._stopping.clear()
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        sockets = runner.addresses
        port = sockets[0][1] if sockets else self.port
        host = self.host if ":" not in self.host else f"[{self.host}]"
        if host in ("0.0.0.0", "[::]", ""):
            host = "127.0.0.1"
        self.port = port
        self.url = f"http://{host}:{port}"
        if self.state_file is not None:
            self._saver = asyncio.create_task(self._keep_saving())
        return self.url

    def save(self) -> bool:
        """Write the world to `state_file` if it changed since the last save (atomically: a
        new file renamed over the old one). True when written."""
        if self.state_file is None:
            return False
        fingerprint = self.state.fingerprint()
        if fingerprint == self._saved:
            return False
        text = json.dumps(self.state.snapshot(), separators=(",", ":"))
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_file.with_name(self.state_file.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, self.state_file)
        self._saved = fingerprint
        return True

    async def _keep_saving(self, every: float = 1.0) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), every)
            try:
                self.save()
            except OSError as error:
                log.warning("could not save the sandbox to %s: %s", self.state_file, error)

    async def close(self) -> None:
        """Wake long polls and hung calls, stop webhook delivery (the server keeps state)."""
        self.state.closing = True
        self._stopping.set()
        for bot in self.state.bots.values():
            bot.notifier.notify()
        for chat in self.state.iter_chats():
            chat.notifier.notify()
        await self.webhooks.close()

    async def stop(self) -> None:
        """Stop serving (after `start`); with a `state_file`, save the world to it."""
        await self.close()
        saver, self._saver = self._saver, None
        if saver is not None:
            await saver
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- bots and users -------------------------------------------------------------------

    def create_bot(
        self,
        username: str = "sandbox_bot",
        first_name: str = "Sandbox Bot",
        *,
        token: str | None = None,
    ) -> str:
        """Register a bot; returns its token (a given `token` is reused if known)."""
        if token is not None and not TOKEN_RE.fullmatch(token):
            raise SandboxError("a bot token looks like '123456:ABC-DEF...'")
        return self.state.create_bot(username, first_name, token).token

    def bot(self, bot: str | int | None = None) -> BotAccount:
        """A bot by token, username or id (or the only one)."""
        return self.state.resolve_bot(bot)

    def create_user(
        self,
        bot: str | int | None = None,
        first_name: str = "Test",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        user_id: int | None = None,
    ) -> SandboxUser:
        """A new virtual user (or the existing one with `user_id`). With `bot`, the user's
        chat with that bot exists (not started yet: the bot gets "chat not found")."""
        user = self.state.create_user(
            first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
            user_id=user_id,
        )
        if bot is not None:
            self.state.chat(self.state.resolve_bot(bot), user.id)
        return user

    def create_started_users(
        self,
        bot: str | int | None,
        count: int,
        *,
        first_name: str = "Graduate",
        language_code: str | None = "en",
    ) -> list[int]:
        """`count` new users whose chat with `bot` was started earlier (no updates queued):
        the audience of a load test."""
        account = self.bot(bot)
        ids = []
        for _ in range(count):
            user = self.state.create_user(first_name, language_code=language_code)
            self.state.chat(account, user.id).started = True
            ids.append(user.id)
        return ids

    def get_user(self, user_id: int) -> SandboxUser:
        return self.state.get_user(user_id)

    def users(self) -> list[SandboxUser]:
        return list(self.state.users.values())

    # -- what users do --------------------------------------------------------------------

    async def send_text(self, bot: str | int | None, user_id: int, text: str) -> TranscriptEntry:
        """The user sends `text` (a leading "/command" gets its bot_command entity)."""
        return self.state.user_message(self.bot(bot), user_id, text=text)

    async def send_start(
        self, bot: str | int | None, user_id: int, payload: str | None = None
    ) -> TranscriptEntry:
        """The user opens `t.me/<bot>?start=<payload>`: sends "/start payload"."""
        text = f"/start {payload}" if payload else "/start"
        return self.state.user_message(self.bot(bot), user_id, text=text)

    async def send_contact(
        self, bot: str | int | None, user_id: int, phone_number: str
    ) -> TranscriptEntry:
        """The user shares their own contact (e.g. a request_contact keyboard button)."""
        user = self.get_user(user_id)
        contact: dict[str, Any] = {
            "phone_number": phone_number,
            "first_name": user.first_name,
            "user_id": user.id,
        }
        if user.last_name:
            contact["last_name"] = user.last_name
        return self.state.user_message(self.bot(bot), user_id, media={"contact": contact})

    async def send_media(
        self,
        bot: str | int | None,
        user_id: int,
        media: dict[str, Any],
        text: str | None = None,
    ) -> TranscriptEntry:
        """The user sends a message with the Bot API `Message` fields in `media` (a photo,
        a sticker, a location …, or `forward_origin` with `text` for a forward)."""
        return self.state.user_message(self.bot(bot), user_id, text=text, media=media)

    async def press_button(
        self,
        bot: str | int | None,
        user_id: int,
        message_id: int | TranscriptEntry,
        callback_data: str | None = None,
        *,
        text: str | None = None,
        forged: bool = False,
    ) -> str:
        """The user presses the inline button with `callback_data` (or label `text`) on
        message `message_id` (or that entry); returns the callback query id.
        `SandboxError` if the message has no such button, unless `forged` (a modified client
        sending any callback data)."""
        if isinstance(message_id, TranscriptEntry):
            if message_id.message_id is None:
                raise SandboxError("that transcript entry is not a message")
            message_id = message_id.message_id
        return self.state.press_button(
            self.bot(bot), user_id, message_id, callback_data, text=text, forged=forged
        )

    def block(self, bot: str | int | None, user_id: int) -> None:
        """The user blocks the bot (the bot gets my_chat_member: member -> kicked)."""
        self.state.block(self.bot(bot), user_id)

    def unblock(self, bot: str | int | None, user_id: int) -> None:
        """The user unblocks the bot (my_chat_member: kicked -> member)."""
        self.state.unblock(self.bot(bot), user_id)

    def deactivate_user(self, user_id: int) -> None:
        """The user deletes their account; bots get 403 "user is deactivated"."""
        self.state.deactivate(user_id)

    # -- reading chats --------------------------------------------------------------------

    def chat(self, bot: str | int | None, user_id: int) -> ChatState:
        return self.state.chat(self.bot(bot), user_id)

    def transcript(self, bot: str | int | None, user_id: int) -> list[TranscriptEntry]:
        """The chat's history, oldest first (both sides, presses and callback answers)."""
        return list(self.chat(bot, user_id).entries)

    def bot_messages(self, bot: str | int | None, user_id: int) -> list[TranscriptEntry]:
        """The bot's messages still in the chat (not deleted), oldest first."""
        return [
            e
            for e in self.chat(bot, user_id).entries
            if e.kind == "message" and e.sender == "bot" and not e.deleted
        ]

    async def wait_for(
        self,
        bot: str | int | None,
        user_id: int,
        until: int | Callable[[TranscriptEntry], bool] = 1,
        *,
        timeout: float = 10.0,
        edits: bool = True,
    ) -> list[TranscriptEntry]:
        """What the bot did in the chat since the last wait: its new messages, and (with
        `edits`) messages it edited or deleted, in order. Returns once there are `until`
        of them, or once one satisfies `until(entry)`; `SandboxTimeout` after `timeout`."""
        chat = self.chat(bot, user_id)
        return await self.state.wait_for(chat, until, timeout=timeout, edits=edits)

    async def wait_for_bot_messages(
        self,
        bot: str | int | None,
        user_id: int,
        count: int = 1,
        *,
        timeout: float = 10.0,
    ) -> list[TranscriptEntry]:
        """The next `count` new bot messages since the last wait (edits are skipped)."""
        return await self.wait_for(bot, user_id, count, timeout=timeout, edits=False)

    async def wait_until(
        self,
        bot: str | int | None,
        user_id: int,
        condition: Callable[[list[TranscriptEntry]], bool],
        *,
        timeout: float = 10.0,
    ) -> list[TranscriptEntry]:
        """Wait until `condition(transcript)` is true; returns the transcript."""
        chat = self.chat(bot, user_id)
        return await self.state.wait_until(chat, condition, timeout=timeout)

    def skip(self, bot: str | int | None, user_id: int) -> None:
        """Make the next `wait_for` ignore everything the bot has done so far."""
        chat = self.chat(bot, user_id)
        chat.cursor = chat.revision

    # -- the bot's side -------------------------------------------------------------------

    def calls(self, method: str | None = None, *, bot: str | int | None = None) -> list[CallRecord]:
        """Logged Bot API calls (the last `call_log_size`), optionally of one method/bot."""
        bot_id = self.bot(bot).id if bot is not None else None
        name = method.lower() if method else None
        return [
            c
            for c in self.call_log
            if (name is None or c.method.lower() == name) and (bot_id is None or c.bot_id == bot_id)
        ]

    def clear_calls(self) -> None:
        self.call_log.clear()

    def file_bytes(self, bot: str | int | None, file_id: str) -> bytes:
        """Content of a file the bot sent (by file_id)."""
        stored = self.bot(bot).files.get(file_id)
        if stored is None:
            raise SandboxNotFound(f"no file {file_id!r}")
        return stored.data

    def pending_updates(self, bot: str | int | None = None) -> list[dict[str, Any]]:
        """Updates the bot has not confirmed yet."""
        return list(self.bot(bot).updates)

    def push_update(self, bot: str | int | None, kind: str, payload: dict[str, Any]) -> int | None:
        """Queue a raw update of any kind, e.g. ("chat_member", {...}); returns update_id."""
        return self.state.enqueue(self.bot(bot), kind, payload)

    def redeliver(self, bot: str | int | None, update_id: int) -> None:
        """Send a recent update to the bot again, same update_id (a duplicate delivery)."""
        self.state.redeliver(self.bot(bot), update_id)

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and the web page."""
        return {
            "bots": len(self.state.bots),
            "users": len(self.state.users),
            "chats": sum(len(b.chats) for b in self.state.bots.values()),
            "pending_updates": sum(len(b.updates) for b in self.state.bots.values()),
            "calls": self.total_calls,
            "ok_calls": dict(self.ok_calls),
            "webhook_deliveries": self.webhooks.delivered,
        }

    # -- HTTP: Bot API --------------------------------------------------------------------

    async def _handle_bot_api(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        token = request.match_info["token"]
        name = request.match_info["method"]
        bot = self.state.bot_by_token(token) if TOKEN_RE.fullmatch(token) else None
        method_name = name
        params: dict[str, Any] | None = None
        try:
            if bot is None or bot.logged_out:
                raise unauthorized()
            method = self.spec.method(name)
            if method is None:
                raise not_found()
            method_name = method.name
            try:
                text, data, files = await _read_params(request)
            except web.HTTPRequestEntityTooLarge:
                raise ApiError(413, "Request Entity Too Large") from None
            fault = self.faults.take(method.name, {**text, **data})
            if self.log_params or fault is not None:
                params = {**text, **data}
            if fault is not None and not fault.process:
                await self._hold(fault.delay)
                raise fault.error() or ApiError(504, "Gateway Timeout")
            params = self.spec.parse_params(method, text, data, files)
            if fault is None:
                result = await self.api.call(bot, method, params)
            else:  # carry the call out, then answer late and/or with the fault's error
                outcome: ApiError | None = None
                try:
                    result = await self.api.call(bot, method, params)
                except ApiError as exc:
                    outcome = exc
                await self._hold(fault.delay)
                outcome = fault.error() or outcome
                if outcome is not None:
                    raise outcome
            status, body = 200, {"ok": True, "result": result}
        except ApiError as exc:
            status, body = exc.status, exc.to_json()
        self.total_calls += 1
        if status == 200:
            self.ok_calls[method_name.lower()] += 1
        if self.call_log.maxlen:
            self.call_log.append(
                CallRecord(
                    time=time.time(),
                    bot_id=bot.id if bot else None,
                    method=method_name,
                    params=_summarize(params) if self.log_params and params else None,
                    status=status,
                    description=None if status == 200 else body.get("description"),
                    duration=time.monotonic() - started,
                )
            )
        return web.Response(
            body=json.dumps(body, ensure_ascii=False).encode(),
            status=status,
            headers=_JSON_HEADERS,
        )

    async def _hold(self, seconds: float) -> None:
        """Sleep (a hung call), but no longer than until the sandbox stops."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        bot = self.state.bot_by_token(token) if TOKEN_RE.fullmatch(token) else None
        if bot is None or bot.logged_out:
            return web.json_response(unauthorized().to_json(), status=401)
        stored = bot.file_paths.get(request.match_info["file_path"])
        if stored is None:
            return web.json_response(not_found().to_json(), status=404)
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )

    async def _webhook_reply(self, bot: BotAccount, reply: dict[str, Any]) -> None:
        """Carry out a Bot API call a webhook returned as its response body."""
        method = self.spec.method(str(reply.get("method", "")))
        if method is None:
            return
        data = {k: v for k, v in reply.items() if k != "method"}
        params = self.spec.parse_params(method, {}, data, {})
        await self.api.call(bot, method, params)


def create_app(sandbox: SandboxServer | None = None) -> web.Application:
    """An aiohttp application serving `sandbox` (a new default one if None)."""
    return (sandbox or SandboxServer()).make_app()


def mount_sandbox(app: web.Application, sandbox: SandboxServer | None = None) -> SandboxServer:
    """Add the sandbox's routes to `app`; returns the sandbox."""
    sandbox = sandbox or SandboxServer()
    sandbox.mount(app)
    return sandbox
