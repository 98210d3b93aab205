"""Webhook delivery: POST each pending update to the bot's webhook URL.

One task per bot with a webhook. Like Telegram, it keeps up to setWebhook's
`max_connections` (default 40) calls open at once; one chat's updates go one at a time, in
order, and the others' are not held up behind them (the chats without a call open take
turns). An update leaves the queue only when the webhook answers 2xx; otherwise the same
update is retried after a growing pause (its chat's order is kept), and the failure shows in
getWebhookInfo's `last_error_date` / `last_error_message`.

Like Telegram, a webhook may answer with a Bot API call as its JSON body
(`{"method": "sendMessage", ...}`); the sandbox carries it out via `on_reply`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
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
        queue = _ChatQueues()
        calls: dict[int | None, asyncio.Task[None]] = {}  # chat -> its open call
        try:
            while bot.webhook is not None and not self.state.closing:
                queue.take_new(bot)
                picked = None
                if len(calls) < bot.webhook.max_connections:
                    picked = queue.next(bot)
                if picked is None:
                    await bot.notifier.wait(None)  # a new update, or a call finished
                    continue
                chat, source, update = picked
                task = asyncio.get_running_loop().create_task(self._deliver(bot, source, update))
                calls[chat] = task

                def finished(_task: asyncio.Task[None], chat: int | None = chat) -> None:
                    calls.pop(chat, None)
                    queue.free(chat)
                    bot.notifier.notify()  # the dispatcher may open another call

                task.add_done_callback(finished)
        finally:
            for task in list(calls.values()):
                task.cancel()

    async def _deliver(
        self, bot: BotAccount, source: deque[dict[str, Any]], update: dict[str, Any]
    ) -> None:
        """POST `update` until the webhook takes it (or the webhook is removed)."""
        delay = self.retry_delay
        while (config := bot.webhook) is not None and not self.state.closing:
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
            with contextlib.suppress(ValueError):  # gone already: dropped as too many
                _remove(source, update)
            self.delivered += 1
            if isinstance(reply, dict) and "method" in reply and self.on_reply is not None:
                try:
                    await self.on_reply(bot, reply)
                except Exception:  # a bad reply must not stop delivery
                    log.exception("webhook reply of bot %s failed", bot.id)
            return


class _ChatQueues:
    """The bot's waiting updates by chat, for one delivery task: `take_new` indexes what
    arrived since (newest first from the end of `bot.updates`, whose ids only grow), `next`
    gives the oldest update of the chat that has waited longest without a call open.
    Updates stay in `bot.updates` (what getWebhookInfo counts) until delivered; one that left
    it otherwise (dropped as too many, or with drop_pending_updates) is skipped."""

    def __init__(self) -> None:
        self.waiting: dict[int | None, deque[dict[str, Any]]] = {}
        self.ready: dict[int | None, None] = {}  # chats with updates and no call, in turn
        self.busy: set[int | None] = set()
        self.last_id = 0

    def take_new(self, bot: BotAccount) -> None:
        fresh: list[dict[str, Any]] = []
        for update in reversed(bot.updates):
            if update["update_id"] <= self.last_id:
                break
            fresh.append(update)
        for update in reversed(fresh):
            self.last_id = update["update_id"]
            chat = _chat_of(update)
            self.waiting.setdefault(chat, deque()).append(update)
            if chat not in self.busy:
                self.ready.setdefault(chat, None)

    def next(
        self, bot: BotAccount
    ) -> tuple[int | None, deque[dict[str, Any]], dict[str, Any]] | None:
        for update in bot.redeliveries:  # few, and before everything else
            chat = _chat_of(update)
            if chat not in self.busy:
                self._take(chat)
                return chat, bot.redeliveries, update
        oldest = bot.updates[0]["update_id"] if bot.updates else self.last_id + 1
        while self.ready:
            chat = next(iter(self.ready))
            waiting = self.waiting[chat]
            while waiting and waiting[0]["update_id"] < oldest:
                waiting.popleft()  # no longer pending
            if not waiting:
                del self.ready[chat], self.waiting[chat]
                continue
            self._take(chat)
            return chat, bot.updates, waiting.popleft()
        return None

    def _take(self, chat: int | None) -> None:
        self.ready.pop(chat, None)
        self.busy.add(chat)

    def free(self, chat: int | None) -> None:
        self.busy.discard(chat)
        if self.waiting.get(chat):
            self.ready[chat] = None  # its turn comes after the chats already waiting
        else:
            self.waiting.pop(chat, None)


def _chat_of(update: dict[str, Any]) -> int | None:
    """The chat an update belongs to (else its sender; None: neither)."""
    for key, value in update.items():
        if key != "update_id" and isinstance(value, dict):
            chat = value.get("chat") or (value.get("message") or {}).get("chat")
            if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                return int(chat["id"])
            sender = value.get("from")
            if isinstance(sender, dict) and isinstance(sender.get("id"), int):
                return int(sender["id"])
    return None


def _remove(source: deque[dict[str, Any]], update: dict[str, Any]) -> None:
    """Take `update` itself (not an equal copy) out of `source`."""
    for i, waiting in enumerate(source):
        if waiting is update:
            del source[i]
            return
    raise ValueError("not waiting")
