"""Stalls and duplicates under faults (issue 14): a question left unsent by a process that
died is sent when Telegram delivers the update again, not a minute later; a graceful stop
gives back the invitations and news it claimed but did not send; a claim does not run out
while its batch is being sent; and a second process on one SQLite file is refused.

Nothing is mocked: the real bot against the sandbox Bot API, real SQLite and PostgreSQL,
and `gradtrack run` / `serve` as processes where a signal or a second process is the point."""

from __future__ import annotations

import asyncio

from conversations.prompting import send_pending_question
from storage.models import Graduate, Institution
from tests.harness import Harness
from tests.test_onboarding import (
    FOLLOWUP_Q,
    NEWS_Q,
    _followups,
    _prompt_pending,
    _question_left_unsent,
)


async def _school_of(h: Harness, graduate: Graduate) -> Institution:
    async with h.db.session() as session:
        school = await session.get(Institution, graduate.institution_id)
    assert school is not None
    return school


def _last_press(h: Harness, user_id: int) -> int:
    for update in reversed(h.sandbox.bot(h.token).history):
        if "callback_query" in update and update["callback_query"]["from"]["id"] == user_id:
            return int(update["update_id"])
    raise AssertionError("no press")


# ---------------------------------------------------------------- no stall after a death


async def test_a_redelivered_update_sends_the_question_it_left_pending_at_once(
    harness: Harness,
) -> None:
    """The answer to the survey consent is stored (the press recorded as processed) and the
    next question decided, but not sent: the process died, or Telegram failed. Telegram
    delivers the press again, twice: the copies change nothing, and the first sends the
    pending question at once (no waiting PROMPT_RESEND_SECONDS, 60 s by default), exactly
    once; nothing is left pending."""
    graduate, user = await _question_left_unsent(harness)
    school = await _school_of(harness, graduate)
    assert await _followups(harness, user) == 0 and await _prompt_pending(harness, user)
    press = _last_press(harness, user.id)

    harness.sandbox.redeliver(harness.token, press)
    harness.sandbox.redeliver(harness.token, press)
    (followup,) = await harness.replies(user, 1)
    assert followup.text == FOLLOWUP_Q
    # Updates are handled in order: the answer to the next press shows both copies were.
    (news,) = await harness.press(user, "Yes", message=followup)
    assert news.text == NEWS_Q.format(school=school.name)
    asked = [m for m in harness.sandbox.bot_messages(harness.token, user.id) if m.text]
    assert sum(m.text.startswith(FOLLOWUP_Q) for m in asked if m.text) == 1
    assert (await harness.reload(graduate)).consent_followup is True
    assert not harness.sandbox.bot(harness.token).redeliveries


async def test_copies_seen_at_once_send_the_pending_question_once(harness: Harness) -> None:
    """Several workers handling copies of the update at the same moment: one of them sends
    the pending question (the compare-and-set claim), the others nothing."""
    _graduate, user = await _question_left_unsent(harness)
    rt = harness.runtime
    sent = await asyncio.gather(*(send_pending_question(rt, user.id) for _ in range(3)))
    assert sorted(sent) == [False, False, True]
    await harness.replies(user, 1)
    assert await _followups(harness, user) == 1
    assert not await _prompt_pending(harness, user)
    assert not await send_pending_question(rt, user.id)
