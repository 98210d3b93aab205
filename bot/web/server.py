"""The aiohttp server of `gradtrack serve`: Telegram webhook route, health checks and
Prometheus metrics (`/metrics`, see bot.metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import text
from telegram import Update

from bot import rawupdates
from bot.settings import Settings
from bot.throttle import screen_updates
from bot.web import access
from storage.db import Database
from storage.types import MAX_BIGINT, utcnow

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

APP_KEY = web.AppKey("gradtrack_application", object)
DB_KEY = web.AppKey("gradtrack_db", Database)
SECRET_KEY = web.AppKey("gradtrack_secret", str)


def webhook_secret(configured: str, bot_token: str) -> str:
    """The secret Telegram sends back with every webhook call: configured, or derived from the
    bot token so that every worker agrees without extra configuration."""
    if configured:
        return configured
    return hashlib.sha256(b"gradtrack-webhook:" + bot_token.encode()).hexdigest()[:48]


MAX_UPDATE_BYTES = 1024 * 1024
"""The largest webhook body read (Telegram's updates are a few kilobytes)."""
MAX_FORM_BYTES = 64 * 1024
"""The largest body of any other request: the login form, the dashboard's small forms."""
UPLOAD_OVERHEAD = 64 * 1024
"""What a roster upload's body may hold besides the file (the form's other fields)."""


@dataclass(frozen=True)
class WebLimits:
    """What one request and one connection may cost, for everyone, logged in or not.

    - bodies: MAX_UPDATE_BYTES for the webhook, `upload_bytes` (+ UPLOAD_OVERHEAD) for the
      roster upload, MAX_FORM_BYTES for everything else; a larger Content-Length is answered
      413 before anything is read, a larger body without one (chunked) once the limit is
      passed, so no more than the limit is ever held;
    - `header_timeout`: a connection must deliver a request's headers within this long of its
      opening or of the previous response (aiohttp's keep-alive timer, which also closes idle
      connections); a client trickling headers (slowloris) is disconnected;
    - `body_timeout`: a body must have arrived this long after its headers, else the
      connection is closed;
    - `max_connections`: more open connections are answered 503 and closed at once, so that
      no client can exhaust the process's file descriptors.
    """

    upload_bytes: int = 10 * 1024 * 1024
    header_timeout: float = 30.0
    body_timeout: float = 60.0
    max_connections: int = 256

    @classmethod
    def of(cls, settings: Settings) -> WebLimits:
        return cls(
            upload_bytes=settings.roster_max_bytes,
            header_timeout=settings.web_header_timeout,
            body_timeout=settings.web_body_timeout,
            max_connections=settings.web_max_connections,
        )

    def body_limit(self, request: web.BaseRequest) -> int:
        """The most bytes `request`'s body may have."""
        if request.path == WEBHOOK_PATH:
            return MAX_UPDATE_BYTES
        if request.path == ROSTER_PATH and request.method == "POST":
            return self.upload_bytes + UPLOAD_OVERHEAD
        return MAX_FORM_BYTES


ROSTER_PATH = "/dashboard/roster"  # bot.web.dashboard's upload (which imports this module)
LIMITS_KEY = web.AppKey("gradtrack_web_limits", WebLimits)
TooLargePage = Callable[[web.Request, int], web.StreamResponse | None]
TOO_LARGE_KEY: web.AppKey[TooLargePage] = web.AppKey("gradtrack_too_large_page")
"""A page for a body over the limit (the dashboard's, in the reader's language), or None."""


def _too_large(request: web.Request, limit: int) -> web.StreamResponse:
    page = request.app.get(TOO_LARGE_KEY)
    response = page(request, limit) if page is not None else None
    if response is None:
        response = web.json_response({"ok": False, "error": "request too large"}, status=413)
    response.force_close()  # the rest of the body is not read; the connection is not reused
    return response


@web.middleware
async def bounded_requests(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    """Every route's body limit and body timeout (see WebLimits). The outermost middleware."""
    limits = request.app[LIMITS_KEY]
    limit = limits.body_limit(request)
    if (request.content_length or 0) > limit:
        return _too_large(request, limit)
    watchdog = None
    if not request.content.is_eof():  # a body is still coming
        loop = asyncio.get_running_loop()
        watchdog = loop.call_later(limits.body_timeout, _cut_off_slow_body, request)
    try:
        bounded = request.clone(client_max_size=limit)
        try:
            response: web.StreamResponse = await handler(bounded)
        except web.HTTPRequestEntityTooLarge:  # a body without Content-Length, over the limit
            return _too_large(request, limit)
        return response
    finally:
        if watchdog is not None:
            watchdog.cancel()


def _cut_off_slow_body(request: web.Request) -> None:
    if request.content.is_eof():
        return
    log.warning(
        "%s %s: the body took too long to arrive; connection closed", request.method, request.path
    )
    request.protocol.force_close()


class _Refusal(asyncio.Protocol):
    """A connection over the cap: answered 503 and closed without reading it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n"
        )
        transport.close()


class CappedServer(web.Server):
    """aiohttp's connection factory, making at most `max_connections` connections at once."""

    def __init__(self, handler: Any, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections
        self.open = 0
        self.refused = 0

    def __call__(self) -> Any:
        if self.open >= self.max_connections:
            self.refused += 1
            if self.refused == 1 or self.refused % 100 == 0:
                log.warning(
                    "%s connections open (WEB_MAX_CONNECTIONS): refused %s so far",
                    self.open,
                    self.refused,
                )
            return _Refusal()
        self.open += 1  # counted from here: connection_made follows in the same loop turn
        return super().__call__()

    def connection_lost(self, handler: Any, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.open = max(0, self.open - 1)


class BoundedRunner(web.AppRunner):
    """AppRunner for the service's app: its WebLimits' header timeout and connection cap."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        limits = app[LIMITS_KEY]
        self._limits = limits
        self._handler_args: dict[str, Any] = {
            "keepalive_timeout": limits.header_timeout,
            "max_line_size": 8190,
            "max_field_size": 8190,
            "max_headers": 100,
        }
        super().__init__(app, **self._handler_args, **kwargs)

    @property
    def capped(self) -> CappedServer:
        server = self.server
        assert isinstance(server, CappedServer)
        return server

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # runs the app's startup and freezes it
        return CappedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            loop=asyncio.get_running_loop(),
            max_connections=self._limits.max_connections,
            **self._handler_args,
        )


def web_runner(app: web.Application, *, shutdown_timeout: float = 60.0) -> BoundedRunner:
    """The runner that serves `app` (from build_web_app) with its limits."""
    return BoundedRunner(app, shutdown_timeout=shutdown_timeout)


@access.public
async def _webhook(request: web.Request) -> web.Response:
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), request.app[SECRET_KEY].encode()):
        return web.json_response({"ok": False, "error": "forbidden"}, status=403)
    try:
        payload = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        # RecursionError: nested deeper than the parser goes ([[[[…), never an update
        return web.json_response({"ok": False, "error": "body is not JSON"}, status=400)
    update_id = payload.get("update_id") if isinstance(payload, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return web.json_response({"ok": False, "error": "not an update"}, status=400)
    if not 0 < update_id <= MAX_BIGINT:  # Telegram's are positive; the column is 64-bit
        return web.json_response({"ok": False, "error": "not an update"}, status=400)
    application: Any = request.app[APP_KEY]
    if not screen_updates(application, [payload], keep_offset=False):
        return web.json_response({"ok": True})  # a flooding chat's: dropped unparsed
    update = rawupdates.parse(payload, application.bot)
    if update is None:
        # Logged once (update_id only) and answered 200: on any other status Telegram would
        # deliver it again, forever, and no redelivery can make it readable.
        return web.json_response({"ok": True})
    # Processed before it is answered: a 200 means the update took effect (or its handler
    # failed and the person was told so), so no crash, not even SIGKILL, loses an update
    # Telegram considers delivered. Updates of one chat are processed in order; other chats'
    # run side by side (Telegram opens up to setWebhook's max_connections at once). Once the
    # bot is stopping, 503: Telegram delivers the update again, to this or another process.
    if not application.running:
        return _unavailable("stopping")
    async with request.app[LOCKS_KEY].hold(_chat_key(update)):
        await application.process_update(update)
    return web.json_response({"ok": True})


def _chat_key(update: Update) -> int | None:
    """The chat (or, without one, the user) whose updates must not overlap."""
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return None


class KeyedLocks:
    """One asyncio.Lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: int | None) -> AsyncIterator[None]:
        if key is None:
            yield
            return
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


LOCKS_KEY = web.AppKey("gradtrack_chat_locks", KeyedLocks)


def _unavailable(reason: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error": reason}, status=503, headers={"Retry-After": "1"}
    )


@access.public
async def _metrics(request: web.Request) -> web.Response:
    """Prometheus' scrape: this process's counters, and the due work counted in the database."""
    from bot.metrics import CONTENT_TYPE, metrics_of
    from bot.runtime import RUNTIME_KEY, Runtime

    application: Any = request.app[APP_KEY]
    rt = application.bot_data.get(RUNTIME_KEY)
    wanted = rt.settings.metrics_token if isinstance(rt, Runtime) else ""
    if wanted:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {wanted}".encode()):
            return web.Response(status=401, text="unauthorized\n")
    observed = metrics_of(application)
    now = rt.clock.now() if isinstance(rt, Runtime) else utcnow()
    await observed.refresh(request.app[DB_KEY], now)
    return web.Response(body=observed.exposition(), headers={"Content-Type": CONTENT_TYPE})


@access.public
async def _health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@access.public
async def _ready(request: web.Request) -> web.Response:
    try:
        async with request.app[DB_KEY].engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return web.json_response({"status": "unavailable", "error": type(exc).__name__}, status=503)
    return web.json_response({"status": "ready"})


def build_web_app(
    application: Any,
    db: Database,
    secret: str | None,
    *,
    dashboard: bool = True,
    limits: WebLimits | None = None,
) -> web.Application:
    """The service's aiohttp app: the webhook route (when `secret` is given: webhook mode),
    health checks, Prometheus metrics (/metrics), and the dashboard. Serve it with
    `web_runner` (its limits: `limits`, else the runtime's settings, else the defaults)."""
    from bot.runtime import RUNTIME_KEY, Runtime
    from bot.web.chat import add_web_chat
    from bot.web.dashboard import add_dashboard
    from bot.web.unsubscribe import add_unsubscribe

    if limits is None:
        rt_ = application.bot_data.get(RUNTIME_KEY)
        limits = WebLimits.of(rt_.settings) if isinstance(rt_, Runtime) else WebLimits()
    app = web.Application(client_max_size=MAX_FORM_BYTES, middlewares=[bounded_requests])
    app[LIMITS_KEY] = limits
    app[APP_KEY] = application
    app[DB_KEY] = db
    if secret is not None:
        app[SECRET_KEY] = secret
        app[LOCKS_KEY] = KeyedLocks()
        app.router.add_post(WEBHOOK_PATH, _webhook)
    app.router.add_get("/healthz", _health)
    app.router.add_get("/readyz", _ready)
    app.router.add_get("/metrics", _metrics)
    if dashboard:
        rt = application.bot_data[RUNTIME_KEY]
        assert isinstance(rt, Runtime)
        secure = rt.settings.base_url.startswith("https://")
        add_dashboard(app, rt, secure_cookie=secure)
        add_web_chat(app, rt, secure_cookie=secure)
        add_unsubscribe(app, rt)  # the e-mail unsubscribe page (issue 16)
    return app
