"""The aiohttp server of `gradtrack serve`: Telegram webhook route, health checks and
Prometheus metrics (`/metrics`, see bot.metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from sqlalchemy import text
from telegram import Update

from bot import rawupdates
from bot.throttle import screen_updates
from storage.db import Database
from storage.types import utcnow

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


async def _webhook(request: web.Request) -> web.Response:
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), request.app[SECRET_KEY].encode()):
        return web.json_response({"ok": False, "error": "forbidden"}, status=403)
    if (request.content_length or 0) > MAX_UPDATE_BYTES:
        return web.json_response({"ok": False, "error": "update too large"}, status=413)
    try:
        payload = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"ok": False, "error": "body is not JSON"}, status=400)
    update_id = payload.get("update_id") if isinstance(payload, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
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


async def _health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    try:
        async with request.app[DB_KEY].engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return web.json_response({"status": "unavailable", "error": type(exc).__name__}, status=503)
    return web.json_response({"status": "ready"})


def build_web_app(
    application: Any, db: Database, secret: str | None, *, dashboard: bool = True
) -> web.Application:
    """The service's aiohttp app: the webhook route (when `secret` is given: webhook mode),
    health checks, Prometheus metrics (/metrics), and the dashboard."""
    from bot.runtime import RUNTIME_KEY, Runtime
    from bot.web.dashboard import MAX_UPLOAD, add_dashboard

    app = web.Application(client_max_size=MAX_UPLOAD + 64 * 1024)
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
        add_dashboard(app, rt, secure_cookie=rt.settings.base_url.startswith("https://"))
    return app
