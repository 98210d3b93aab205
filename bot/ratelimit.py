"""Telegram's flood limits for our own sends: replies first, bulk sends from what is left.

Telegram lets a bot send about 30 messages per second overall, about one per second into one
chat, and 20 per minute into a group. python-telegram-bot's `AIORateLimiter` keeps a bot under
those limits with one queue for every call, so on the scheduler leader a person's answer waited
behind the invitations, reminders and news already queued. `ReplyFirstRateLimiter` tells the
two apart:

- a *reply* (anything sent while handling a person's update, and every call not marked bulk)
  takes from the overall budget of 30 per second as soon as there is one token in it;
- a *bulk* send (an invitation, a reminder, a news message) also needs a token of its own
  budget (`BULK_SEND_PER_SECOND`, at most the overall 30), and takes from the overall budget
  only while `REPLY_RESERVE` tokens stay in it for replies. A reply waiting for a token is
  therefore always served before any bulk send; bulk sends get 30 minus what replies use;
- a bulk send also waits until its chat has had no message for a second (Telegram's one per
  second per chat); replies follow the person's own pace, as before. Group chats get 20 per
  minute, replies and bulk alike (as `AIORateLimiter`).

A call is bulk when it is made inside `bot.metrics.sending(kind)` (what the dispatchers in
`bot/delivery.py` and `bot/news.py` do already, to count messages by kind), or when it passes
`rate_limit_args="bulk"` to an `ExtBot` method. Calls without a chat (answerCallbackQuery,
getMe, setWebhook, ...) are not limited. A 429 holds every call for its `retry_after`, then
the call is tried again, up to `max_retries` times, then its `RetryAfter` is raised (the
dispatchers put the message back for later).

The budgets are per process: each `serve` process keeps its replies under 30 per second, and
only the scheduler leader sends bulk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot import metrics
from bot.delivery import retry_after
from bot.settings import TELEGRAM_PER_SECOND

log = logging.getLogger(__name__)

#: Telegram's overall limit for one bot: messages per second.
OVERALL_PER_SECOND = TELEGRAM_PER_SECOND
#: The highest bulk rate: what replies leave of the overall budget, at most all of it.
BULK_CEILING = OVERALL_PER_SECOND
#: Tokens of the overall budget bulk sends leave for replies (a reply finds them at once).
REPLY_RESERVE = 3
#: A bulk send waits until its private chat has had no message for this long.
CHAT_INTERVAL = 1.0
#: Group chats: at most this many messages per minute.
GROUP_PER_MINUTE = 20.0

BULK = "bulk"
REPLY = "reply"

Callback = Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]]


class Bucket:
    """`capacity` tokens, refilled at `rate` per second, on a monotonic clock."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self.tokens = self.capacity
        self.stamp = now

    def wait(self, now: float, keep: float = 0.0) -> float:
        """Seconds until one token can be taken with `keep` tokens left after it."""
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        missing = 1.0 + keep - self.tokens
        if missing <= 0:
            return 0.0
        return missing / self.rate if self.rate > 0 else math.inf

    def take(self) -> None:
        self.tokens -= 1.0


def is_bulk(rate_limit_args: object) -> bool:
    """Whether a call is a bulk send: marked so, or made inside `metrics.sending(kind)`."""
    if rate_limit_args is not None:
        return rate_limit_args == BULK
    return metrics.message_kind() != REPLY


class ReplyFirstRateLimiter(BaseRateLimiter[str]):
    """The bot's rate limiter: replies first, bulk sends capped at `bulk_per_second` and only
    from what replies leave of Telegram's 30 per second (see the module docstring)."""

    def __init__(
        self,
        bulk_per_second: float,
        *,
        overall_per_second: float = OVERALL_PER_SECOND,
        max_retries: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        now = clock()
        self.overall_per_second = overall_per_second
        # 0 (no bulk rate of its own, as bot.delivery.RateLimiter(0)): all that replies leave.
        if bulk_per_second <= 0:
            bulk_per_second = overall_per_second
        self.bulk_per_second = min(bulk_per_second, overall_per_second)
        self.max_retries = max_retries
        self._overall = Bucket(overall_per_second, overall_per_second, now)
        # Small bursts only, so that the bulk rate is even.
        self._bulk = Bucket(self.bulk_per_second, self.bulk_per_second / 10, now)
        self._groups: dict[int | str, Bucket] = {}
        self._last_sent: dict[int, float] = {}
        self._resume_at = 0.0
        #: Calls waiting for a token now, by kind (for tests and metrics).
        self.waiting = {REPLY: 0, BULK: 0}

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    def _group(self, chat: int | str, now: float) -> Bucket:
        if len(self._groups) > 512:
            for key, idle in list(self._groups.items()):
                if key != chat and idle.wait(now, idle.capacity - 1) == 0:
                    del self._groups[key]
        found = self._groups.get(chat)
        if found is None:
            found = self._groups[chat] = Bucket(GROUP_PER_MINUTE / 60, GROUP_PER_MINUTE, now)
        return found

    def _chat_wait(self, chat: int, now: float) -> float:
        last = self._last_sent.get(chat)
        return 0.0 if last is None else max(0.0, last + CHAT_INTERVAL - now)

    def _sent_to(self, chat: int, now: float) -> None:
        if len(self._last_sent) > 10_000:
            self._last_sent = {c: t for c, t in self._last_sent.items() if t + CHAT_INTERVAL > now}
        self._last_sent[chat] = now

    async def _acquire(self, chat: int | str, bulk: bool) -> None:
        kind = BULK if bulk else REPLY
        self.waiting[kind] += 1
        try:
            while True:
                now = self.clock()
                wait = self._resume_at - now
                group = self._group(chat, now) if isinstance(chat, str) or chat < 0 else None
                if group is not None:
                    wait = max(wait, group.wait(now))
                if bulk:
                    wait = max(
                        wait,
                        self._bulk.wait(now),
                        self._overall.wait(now, keep=REPLY_RESERVE),
                        self._chat_wait(chat, now) if isinstance(chat, int) else 0.0,
                    )
                else:
                    wait = max(wait, self._overall.wait(now))
                if wait <= 0:
                    self._overall.take()
                    if bulk:
                        self._bulk.take()
                    if group is not None:
                        group.take()
                    if isinstance(chat, int):
                        self._sent_to(chat, now)
                    return
                # Each waiter sleeps until its own budget allows it; a reply's comes first.
                await asyncio.sleep(min(wait, 1.0))
        finally:
            self.waiting[kind] -= 1

    async def process_request(
        self,
        callback: Callback,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: str | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        chat: int | str | None = data.get("chat_id")
        if isinstance(chat, str):
            with contextlib.suppress(ValueError):  # not an @channelusername
                chat = int(chat)
        bulk = is_bulk(rate_limit_args)
        for attempt in range(self.max_retries + 1):
            if chat is not None:
                await self._acquire(chat, bulk)
            else:
                await asyncio.sleep(max(0.0, self._resume_at - self.clock()))
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if attempt == self.max_retries:
                    log.warning("%s: rate limit hit after %d retries", endpoint, self.max_retries)
                    raise
                pause = retry_after(exc).total_seconds() + 0.1
                log.info("%s: rate limit hit, all calls wait %.1f s", endpoint, pause)
                self._resume_at = max(self._resume_at, self.clock() + pause)
        raise AssertionError("unreachable")  # pragma: no cover
