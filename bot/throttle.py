"""Flood control per chat: a chat that sends far faster than a person can is slowed down
before its updates cost anything, so that it cannot slow down everyone else.

Each private chat has a token bucket: `burst` updates at once, refilled at `per_second`. The
updates are judged as they arrive, still raw JSON, before python-telegram-bot parses them:
in polling by the getUpdates transport (`UpdatesRequest`), behind a webhook by the route
(bot.web.server). An update that finds its chat's bucket empty is dropped there, unparsed:
no handler, no database, no reply. The first one dropped tells the person, once, in their
language, to slow down: that one is let through to the first handler (`check`), which sends
the notice (a button press gets it as its answer, so its spinner stops) and stops it there.
Later ones in the same flood are dropped silently: answering each would let a flood make the
bot send as much as it receives. A forward is never the one that tells: a burst of forwards
is answered once by its handler (conversations.account.on_forwarded), even beyond the burst.
Once the bucket has refilled the person is heard again, and warned again at the next flood.

In polling, python-telegram-bot confirms a batch of updates by the id of its last update: when
that one is dropped, a bare stand-in (`{"update_id": ...}`) takes its place in the batch and
`check` stops it before the private-chat gate.

Updates of other chats (groups, a button press without its message) are not judged here: the
private-chat gate (bot.gate) drops them. The buckets live in this process (several `serve`
processes each keep their own), at most `max_chats` of them, the least recently seen
forgotten first: a full bucket and a forgotten one behave alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot import rawupdates
from bot.i18n import _, use_language
from bot.metrics import InstrumentedRequest, metrics_of
from bot.runtime import runtime
from storage.models import ChatState
from storage.queries import graduate_by_chat

log = logging.getLogger(__name__)

THROTTLE_KEY = "gradtrack_throttle"
#: First of all: before the private-chat gate (bot.gate.GROUP), which would refuse a stand-in.
GROUP = -25
#: Dropped updates let through to `check` (the notices and stand-ins) are remembered by id, at
#: most this many: one that never reaches `check` (the process stopped first) is forgotten.
MAX_HELD = 10_000
#: Seconds between two getUpdates requests while a flood is being dropped (`UpdatesRequest`).
FLOOD_POLL_PAUSE = 0.05
#: The most updates one getUpdates answer holds (the Bot API's limit, python-telegram-bot's
#: default).
MAX_BATCH = 100


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
        #: Of those, dropped before they were parsed.
        self.unparsed = 0
        self._buckets: OrderedDict[int, _Bucket] = OrderedDict()
        #: update id -> tell the person: dropped updates `check` still sees (see the module).
        self._held: OrderedDict[int, bool] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.per_second > 0

    def allow(self, key: int, *, quiet: bool = False) -> tuple[bool, bool]:
        """(go on, tell the person) for one update of chat `key`; a `quiet` one (a forward:
        a burst of forwards is answered once, see conversations.account) is never the one
        that tells."""
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
        if quiet:
            return False, False
        notify = not bucket.warned
        bucket.warned = True
        return False, notify

    def screen(self, updates: list[Any], *, keep_offset: bool) -> list[Any]:
        """The raw updates (JSON objects as the Bot API sends them) that go on to be parsed
        and handled; the others are dropped. With `keep_offset` (a getUpdates batch) a dropped
        last update leaves a bare stand-in, so that the batch is confirmed whole."""
        if not self.enabled:
            return updates
        kept: list[Any] = []
        for raw in updates:
            key = raw_private_chat(raw)
            update_id = raw.get("update_id") if key is not None else None
            if key is None or not isinstance(update_id, int) or isinstance(update_id, bool):
                kept.append(raw)  # not a private chat's update: the gate judges it
                continue
            allowed, notify = self.allow(key, quiet=_forwarded(raw))
            if allowed:
                kept.append(raw)
            elif notify:
                self._hold(update_id, True)
                kept.append(raw)
            else:
                self.unparsed += 1
        if keep_offset and updates and (not kept or kept[-1] is not updates[-1]):
            last = updates[-1]["update_id"]
            self._hold(last, False)
            kept.append({"update_id": last})
        return kept

    def _hold(self, update_id: int, notify: bool) -> None:
        self._held[update_id] = notify
        while len(self._held) > MAX_HELD:
            self._held.popitem(last=False)

    def held(self, update_id: int) -> bool | None:
        """For an update `screen` dropped but let through: whether to tell the person (and
        forget it). None: the update was not dropped."""
        return self._held.pop(update_id, None)

    def __len__(self) -> int:
        return len(self._buckets)


def raw_private_chat(update: Any) -> int | None:
    """The private chat a raw update comes from: a message's or a button press's (through its
    message). None for anything else, malformed included."""
    try:
        if "message" in update:
            chat = update["message"]["chat"]
        elif "edited_message" in update:
            chat = update["edited_message"]["chat"]
        elif "callback_query" in update:
            chat = update["callback_query"]["message"]["chat"]
        else:
            return None
        chat_id = chat["id"]
        if chat["type"] != "private" or not isinstance(chat_id, int) or isinstance(chat_id, bool):
            return None
        return chat_id
    except (KeyError, TypeError):
        return None


def _forwarded(update: Any) -> bool:
    message = update.get("message")
    return isinstance(message, dict) and "forward_origin" in message


def screen_updates(application: Any, updates: list[Any], *, keep_offset: bool) -> list[Any]:
    """`ChatThrottle.screen` with the application's flood control, counting what it drops in
    the metrics."""
    throttle = application.bot_data.get(THROTTLE_KEY)
    if not isinstance(throttle, ChatThrottle) or not throttle.enabled:
        return updates
    before = throttle.dropped
    kept = throttle.screen(updates, keep_offset=keep_offset)
    if throttle.dropped > before:
        metrics_of(application).updates_throttled.inc(throttle.dropped - before)
    return kept


class UpdatesRequest(InstrumentedRequest):
    """The getUpdates transport: the batch Telegram answers goes through `screen` (set once
    the application exists) before python-telegram-bot parses it.

    Telegram answers getUpdates as soon as one update is waiting, so a flood would be fetched
    an update or two per request, each request costing more than the updates it brings. After
    a batch from which updates were dropped, the next request waits until `FLOOD_POLL_PAUSE`
    after the last (unless the batch was full: more are waiting): during a flood, updates come
    in batches, everyone's a few hundredths of a second later at most; in quiet times nobody
    waits."""

    screen: Callable[[list[Any]], list[Any]] | None = None
    _pause_until: float = 0.0

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        delay = self._pause_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return await super().do_request(*args, **kwargs)

    def parse_json_payload(self, payload: bytes) -> dict[str, Any]:  # type: ignore[override]
        data = super().parse_json_payload(payload)
        result = data.get("result")
        if self.screen is not None and isinstance(result, list) and result:
            kept = self.screen(result)
            thinned = not kept or len(kept) < len(result) or kept[-1] is not result[-1]
            more = len(result) >= MAX_BATCH  # more are waiting: fetch them at once
            pause = thinned and not more
            self._pause_until = time.monotonic() + FLOOD_POLL_PAUSE if pause else 0.0
            data["result"] = kept
        if isinstance(data.get("result"), list) and data["result"]:
            # What python-telegram-bot cannot read must not block the batch (bot.rawupdates).
            data["result"] = rawupdates.screen(data["result"])
        return data


def slow_down_text() -> str:
    return _(
        "You are sending messages faster than I can read them. "
        "Please wait a few seconds, then go on."
    )


async def check(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """First handler of every update: stop one that flood control dropped but let through,
    telling the person to slow down when it is the first of their flood; stop a bare
    stand-in (of an unreadable update, bot.rawupdates) silently."""
    throttle = context.application.bot_data.get(THROTTLE_KEY)
    notify = throttle.held(update.update_id) if isinstance(throttle, ChatThrottle) else None
    if notify is None:
        if rawupdates.is_bare(update):
            raise ApplicationHandlerStop
        return
    chat, user = update.effective_chat, update.effective_user
    if notify and chat is not None:
        log.info("update %s dropped: its chat sends too fast", update.update_id)
        language = user.language_code if user is not None else None
        with use_language(await _chat_language(context, chat.id) or language):
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
