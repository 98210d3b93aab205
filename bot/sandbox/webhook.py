"""Webhook delivery: POST each pending update, in order, to the bot's webhook URL.

One task per bot with a webhook. An update leaves the queue only when the webhook answers
2xx; otherwise the same update is retried after a growing pause (order is kept), and the
failure shows in getWebhookInfo's `last_error_date` / `last_error_message`.

Like Telegram, a webhook may answer with a Bot API call as its JSON body
(`{"method": "sendMessage", ...}`); the sandbox carries it out via `on_reply`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from .state import BotAccount, SandboxState

log = logging.getLogger(__name__)

ReplyHandler = Callable[[BotAccount, dict[str, Any]], Awaitable[None]]


class WebhookDelivery:
    """Delivers updates of bots that have a webhook set."""

    def __init__(
        self,
        state: SandboxState,
        *,
        retry_delay: float = 0.2,
        max_retry_delay: float = 10.0,
        request_timeout: float = 10.0,
        on_reply: ReplyHandler | None = None,
    ) -> None:
        self.state = state
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.request_timeout = request_timeout
        self.on_reply = on_reply
        self.delivered = 0
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    def start(self, bot: BotAccount) -> None:
        task = self._tasks.get(bot.id)
        if task is None or task.done():
            self._tasks[bot.id] = asyncio.get_running_loop().create_task(
                self._run(bot), name=f"sandbox-webhook-{bot.id}"
            )

    def stop(self, bot: BotAccount) -> None:
        task = self._tasks.pop(bot.id, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                connector=aiohttp.TCPConnector(ssl=False, limit=100),
            )
        return self._session

    async def _run(self, bot: BotAccount) -> None:
        delay = self.retry_delay
        while bot.webhook is not None and not self.state.closing:
            source = bot.redeliveries if bot.redeliveries else bot.updates
            if not source:
                await bot.notifier.wait(None)
                continue
            update = source[0]
            config = bot.webhook
            headers = {"Content-Type": "application/json"}
            if config.secret_token:
                headers["X-Telegram-Bot-Api-Secret-Token"] = config.secret_token
            error: str | None = None
            reply: Any = None
            try:
                body = json.dumps(update, ensure_ascii=False).encode()
                async with self._client().post(config.url, data=body, headers=headers) as resp:
                    payload = await resp.read()
                    if not 200 <= resp.status < 300:
                        error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
                    elif payload and resp.content_type == "application/json":
                        with contextlib.suppress(ValueError):
                            reply = json.loads(payload)
            except (aiohttp.ClientError, OSError) as exc:
                error = f"Connection failed: {exc.__class__.__name__}"
            except TimeoutError:
                error = "Read timeout expired"
            if error is not None:
                bot.webhook_error = (int(time.time()), error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                continue
            delay = self.retry_delay
            if source and source[0] is update:
                source.popleft()
            self.delivered += 1
            if isinstance(reply, dict) and "method" in reply and self.on_reply is not None:
                try:
                    await self.on_reply(bot, reply)
                except Exception:  # a bad reply must not stop delivery
                    log.exception("webhook reply of bot %s failed", bot.id)
