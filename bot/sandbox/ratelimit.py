"""Telegram's flood limits as token buckets on a monotonic clock.

Telegram lets a bot send about one message per second into one chat (with short bursts)
and about 30 messages per second overall. A call over either limit is refused with
`429 Too Many Requests: retry after N` and does not use up any allowance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class RateLimits:
    """Flood limits of the sandbox; `enabled=False` switches them off (benchmarks)."""

    per_chat_per_second: float = 1.0
    per_chat_burst: int = 3
    global_per_second: float = 30.0
    global_burst: int = 30
    enabled: bool = True
    #: Count editMessageText/editMessageReplyMarkup/... against the limits too.
    count_edits: bool = False


class TokenBucket:
    """`capacity` tokens, refilled at `rate` tokens per second."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self.tokens = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0 when one is available now)."""
        self.refill(now)
        if self.tokens >= 1.0:
            return 0.0
        if self.rate <= 0:
            return math.inf
        return (1.0 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1.0

    def is_full(self, now: float) -> bool:
        self.refill(now)
        return self.tokens >= self.capacity


class RateLimiter:
    """Per-chat and per-bot buckets for the sending methods."""

    #: Above this many per-chat buckets, full (idle) ones are dropped to bound memory.
    PRUNE_ABOVE = 50_000

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._global: dict[Hashable, TokenBucket] = {}
        self._chats: dict[Hashable, TokenBucket] = {}

    def reset(self, limits: RateLimits | None = None) -> None:
        """Forget all usage (and switch to new `limits` if given)."""
        if limits is not None:
            self.limits = limits
        self._global.clear()
        self._chats.clear()

    def acquire(self, bot_key: Hashable, chat_key: Hashable) -> int:
        """0 if the call may go ahead (and counts it), else the `retry_after` seconds (>= 1)."""
        limits = self.limits
        if not limits.enabled:
            return 0
        now = self.clock()
        glob = self._global.get(bot_key)
        if glob is None:
            glob = self._global[bot_key] = TokenBucket(
                limits.global_per_second, limits.global_burst, now
            )
        chat = self._chats.get((bot_key, chat_key))
        if chat is None:
            if len(self._chats) > self.PRUNE_ABOVE:
                self._prune(now)
            chat = self._chats[(bot_key, chat_key)] = TokenBucket(
                limits.per_chat_per_second, limits.per_chat_burst, now
            )
        wait = max(glob.wait_time(now), chat.wait_time(now))
        if wait > 0:
            return max(1, math.ceil(wait)) if math.isfinite(wait) else 3600
        glob.take()
        chat.take()
        return 0

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._chats.items() if b.is_full(now)]:
            del self._chats[key]
