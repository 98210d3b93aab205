"""Replies and bulk sends share Telegram's 30 messages per second: a person's answer is not
queued behind the invitations, reminders and news a broadcast has queued (issue 14)."""

from __future__ import annotations

import asyncio

from bot.delivery import RateLimiter
from bot.news import dispatch_news
from bot.ratelimit import BULK_CEILING
from bot.settings import Settings
from storage import news
from tests.harness import Harness, eventually
from tests.test_news_delivery import broadcast, readers

RECIPIENTS = 200
#: Senders of the broadcast: many more than Telegram's 30 per second lets through at once, so
#: that bulk sends wait in the bot's rate limiter (as they do whenever a dispatcher sends at
#: the limit).
SENDERS = 100
#: The bulk budget of this test, per second: a person's reply may see at most this many bulk
#: sends pass in each second it takes to handle their message.
BULK_PER_SECOND = 2.0


def _chat(call_params: dict[str, object] | None) -> str:
    return str((call_params or {}).get("chat_id"))


async def test_a_reply_is_not_queued_behind_a_broadcast(harness: Harness) -> None:
    h = harness
    h.settings.bulk_send_per_second = BULK_PER_SECOND
    await h.restart_bot()
    school = await h.school()
    graduates = await readers(h, school, RECIPIENTS)
    recipients = {str(g.chat_id) for g in graduates}
    person = h.user()
    await broadcast(h, school, {"en": "Open day"}, news.Audience(institution_ids=(school.id or 0,)))

    def bulk_sent() -> int:
        return sum(1 for c in h.sandbox.calls("sendMessage") if _chat(c.params) in recipients)

    # The dispatcher's own pacing is off: its senders all wait in the bot's rate limiter.
    task = asyncio.create_task(
        dispatch_news(h.runtime, limiter=RateLimiter(0), concurrency=SENDERS, batch=RECIPIENTS)
    )
    try:
        await eventually(lambda: bulk_sent() >= 1)
        before = len(h.sandbox.calls("sendMessage"))
        await h.send(person, "/help")
        calls = h.sandbox.calls("sendMessage")
        reply = next(i for i, c in enumerate(calls) if _chat(c.params) == str(person.id))
        overtaken = sum(1 for c in calls[before:reply] if _chat(c.params) in recipients)
        # Before: python-telegram-bot's AIORateLimiter, one queue for both, sent the 30-50 bulk
        # messages queued earlier first (at 30/s, whatever BULK_SEND_PER_SECOND said).
        assert overtaken <= 5, f"{overtaken} bulk sends went out before the reply"
        assert bulk_sent() < RECIPIENTS  # the broadcast was still going on
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_bulk_rate_is_clamped_to_telegrams_limit() -> None:
    settings = Settings(bulk_send_per_second=100, _env_file=None)
    assert settings.bulk_send_per_second == BULK_CEILING == 30
    assert Settings(bulk_send_per_second=12, _env_file=None).bulk_send_per_second == 12
