"""Flood control per chat: a chat that sends far faster than a person can is slowed down
before its updates cost anything, so that it cannot slow down everyone else.

Each chat has a token bucket: `burst` updates at once,
refilled at `per_second`. An update that finds the bucket empty is dropped by the first
handler, before the dedupe check, the database or any reply; the first one dropped tells the
person, once, in their language, to slow down (a button press gets the notice as its
answer, so its spinner stops). Later ones in the same flood are dropped silently: answering
each would let a flood make the bot send as much as it receives. Once the bucket has refilled
the person is heard again, and warned again at the next flood.

The buckets live in this process (several `serve` processes each keep their own), at most
`max_chats` of them, the least recently seen forgotten first: a full bucket and a forgotten
one behave alike.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.i18n import _, use_language
from bot.runtime import runtime
from storage.models import ChatState
from storage.queries import graduate_by_chat

log = logging.getLogger(__name__)

THROTTLE_KEY = "gradtrack_throttle"
#: After the private-chat gate (bot.gate.GROUP), before the metrics (bot.metrics.FIRST_GROUP).
GROUP = -15


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    warned: bool = False


class ChatThrottle:
    """Token buckets per chat: `allow(key)` says whether an update may go on, and whether the
    person should be told they are being slowed down (the first drop of a flood)."""

    def __init__(
        self,
        per_second: float,
        burst: int,
        *,
        max_chats: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.burst = max(1, burst)
        self.max_chats = max_chats
        self.clock = clock
        self.dropped = 0
        self._buckets: OrderedDict[int, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.per_second > 0

    def allow(self, key: int) -> tuple[bool, bool]:
        """(go on, tell the person) for one update of chat `key`."""
        if not self.enabled:
            return True, False
        now = self.clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        else:
            refill = (now - bucket.stamp) * self.per_second
            bucket.tokens = min(float(self.burst), bucket.tokens + refill)
            bucket.stamp = now
        self._buckets[key] = bucket  # most recently seen last
        while len(self._buckets) > self.max_chats:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            if bucket.tokens >= self.burst / 2:
                bucket.warned = False  # calm again: the next flood is told again
            return True, False
        self.dropped += 1
        notify = not bucket.warned
        bucket.warned = True
        return False, notify

    def __len__(self) -> int:
        return len(self._buckets)


def slow_down_text() -> str:
    return _(
        "You are sending messages faster than I can read them. "
        "Please wait a few seconds, then go on."
    )


async def check(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """First handler of every update: drop it if its chat is flooding."""
    throttle = context.application.bot_data.get(THROTTLE_KEY)
    if not isinstance(throttle, ChatThrottle) or not throttle.enabled:
        return
    chat, user = update.effective_chat, update.effective_user
    if chat is None:  # not let through by bot.gate, which runs first
        return
    key = chat.id
    allowed, notify = throttle.allow(key)
    if allowed:
        return
    from bot.metrics import metrics_of

    metrics_of(context.application).updates_throttled.inc()
    if notify:
        log.info("update %s dropped: its chat sends too fast", update.update_id)
        language = user.language_code if user is not None else None
        with use_language(await _chat_language(context, key) or language):
            text = slow_down_text()
        try:
            if update.callback_query is not None:
                await update.callback_query.answer(text, show_alert=True)
            else:
                await runtime(context).bot.send_message(chat.id, text)
        except TelegramError:
            log.debug("could not tell a flooding chat to slow down", exc_info=True)
    raise ApplicationHandlerStop


async def _chat_language(context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> str | None:
    """The chat's chosen language: one read, once per flood."""
    try:
        async with runtime(context).db.session() as session:
            state = await session.get(ChatState, chat_id)
            if state is not None and state.language:
                return state.language
            graduate = await graduate_by_chat(session, chat_id)
            return graduate.language if graduate is not None else None
    except Exception:  # the notice does not need the database
        log.debug("no language for the slow-down notice", exc_info=True)
        return None
