"""Stalls and duplicates under faults (issue 14): a question left unsent by a process that
died is sent when Telegram delivers the update again, not a minute later; a graceful stop
gives back the invitations and news it claimed but did not send; a claim does not run out
while its batch is being sent; and a second process on one SQLite file is refused.

Nothing is mocked: the real bot against the sandbox Bot API, real SQLite and PostgreSQL,
and `gradtrack run` / `serve` as processes where a signal or a second process is the point."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.clock import SystemClock
from bot.delivery import RateLimiter, dispatch_due
from bot.sandbox import RateLimits, SandboxServer
from bot.settings import Settings
from conversations.prompting import send_pending_question
from conversations.waves import parse_plans
from storage import news
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Delivery, Graduate, Institution, Invitation
from storage.types import utcnow
from tests.harness import Harness, eventually
from tests.test_cli import GRADTRACK, _free_port, _wait_for_line, gradtrack
from tests.test_news_delivery import broadcast, readers, received
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


# ---------------------------------------------------------------- a batch slower than its lease

#: The mini questionnaire's wave, with no quiet hours: the test sends whatever the hour.
ANY_HOUR = parse_plans(
    """
default:
  quiet_hours: {start: "00:00", end: "00:00"}
  waves:
    - {name: m2, questionnaire: mini, consent: survey, opens: 2m, closes: 4m}
""",
    questionnaires={"mini"},
)


async def due_invitations(h: Harness, count: int) -> list[Graduate]:
    """`count` consenting graduates in a chat with the bot, each with an invitation due now."""
    school = await h.school()
    group = await readers(h, school, count, consent_survey=True, consent_followup=True)
    now = utcnow()
    async with h.db.session() as session:
        for graduate in group:
            assert graduate.id is not None
            session.add(
                Invitation(
                    graduate_id=graduate.id,
                    wave="m2",
                    form_id="mini",
                    due_at=now - timedelta(minutes=1),
                    closes_at=now + timedelta(days=30),
                )
            )
    return group


@pytest.mark.parametrize(
    ("count", "rate", "start_after"),
    [(40, 5.0, 12), (10, 1.0, 3)],
    ids=["at-the-configured-rate", "slower-than-configured"],
)
async def test_a_batch_slower_than_its_lease_is_sent_once(
    harness: Harness, count: int, rate: float, start_after: int
) -> None:
    """A 2-second claim lease and a configured bulk rate of 5 messages a second; the
    dispatcher sends at `rate` (5 a second, or 1: a rate limiter shared with the news, or
    Telegram holding it back), so that `count` invitations take 8 or 10 seconds. A second
    dispatcher pass starts once the first has sent `start_after` (its first claim is older
    than the lease by then). Every invitation goes out exactly once: the first pass claims
    no more than the configured rate sends in half a lease, and renews its claim while it
    sends; the second takes only what nobody holds."""
    h = harness
    group = await due_invitations(h, count)
    settings = h.settings.model_copy(
        update={"claim_lease_seconds": 2.0, "bulk_send_per_second": 5.0}
    )
    rt = dataclasses.replace(h.runtime, clock=SystemClock(), plans=ANY_HOUR, settings=settings)

    def delivered() -> list[int]:
        # Invitations, not news: every message the graduate got counts.
        return [len(h.sandbox.bot_messages(h.token, g.chat_id or 0)) for g in group]

    first = asyncio.create_task(dispatch_due(rt, limiter=RateLimiter(rate), worker="first"))
    await eventually(lambda: sum(delivered()) >= start_after, timeout=60)
    second = await dispatch_due(rt, limiter=RateLimiter(rate), worker="second")
    report = await asyncio.wait_for(first, 60)
    counts = delivered()
    print(
        "figures: batch slower than its lease:",
        {
            "rate": rate,
            "invitations": len(group),
            "sent": sum(counts),
            "duplicates": sum(counts) - len(counts),
        },
    )
    assert counts == [1] * len(group), counts
    assert report.sent + second.sent == len(group)
    async with h.db.session() as session:
        rows = (await session.exec(select(Invitation))).all()
    assert {row.status for row in rows} == {"sent"}
    assert {row.attempts for row in rows} == {1}  # no claim ran out: none was taken over


# ---------------------------------------------------------------- processes on SQLite


@pytest.fixture
async def offline(tmp_path: Path) -> AsyncIterator[Harness]:
    """A sandbox and a migrated SQLite file for `gradtrack` processes to use; the harness
    (its bot not started) only writes the data and reads the transcripts."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'gradtrack.sqlite3'}"
    await upgrade(url)
    db = Database(url)
    sandbox = SandboxServer(rate_limits=RateLimits(enabled=False), host="127.0.0.1", port=0)
    await sandbox.start()
    settings = Settings(database_url=url, telegram_bot_token="", _env_file=None)
    try:
        yield Harness(sandbox, db, settings)
    finally:
        await sandbox.stop()
        await db.dispose()


def service_env(h: Harness, **extra: str) -> dict[str, str]:
    """`gradtrack serve` against the harness's sandbox, as against Telegram."""
    port = _free_port()
    return {
        "DATABASE_URL": h.settings.database_url,
        "TELEGRAM_BOT_TOKEN": h.token,
        "TELEGRAM_API_BASE_URL": f"{h.sandbox.url}/bot",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SECRET_KEY": "test-secret-key-of-at-least-32-characters",
        "SANDBOX_PORT": str(_free_port()),  # unused: a token is given
        **extra,
    }


async def run_gradtrack(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `gradtrack ARGS` to its end; its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        GRADTRACK,
        *args,
        env={k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"} | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def trouble(lines: list[str]) -> list[str]:
    """Log lines a person on call would look at: errors and tracebacks."""
    return [line for line in lines if "ERROR" in line or "Traceback" in line]


async def test_sigterm_gives_back_the_news_it_claimed_but_did_not_send(offline: Harness) -> None:
    """`gradtrack serve` sends a broadcast to 30 graduates at 2 messages a second (all 30
    claimed in one batch) and gets SIGTERM after a few: it exits with 0 and logs no error;
    every delivery it did not send is pending again, unclaimed, its attempt not counted
    (not claimed until the 5-minute lease runs out), so a dispatcher right after sends them
    at once: every graduate gets the news exactly once."""
    h = offline
    school = await h.school()
    group = await readers(h, school, 30)
    sent = await broadcast(h, school, {"en": "Reunion"}, news.Audience())
    env = service_env(h, BULK_SEND_PER_SECOND="2")

    def delivered() -> int:
        return sum(len(received(h, g)) for g in group)

    async with gradtrack("serve", env) as (process, lines):
        await _wait_for_line(lines, "gradtrack serving on")
        await eventually(lambda: delivered() >= 3, timeout=60)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    assert not trouble(lines), "\n".join(lines[-40:])

    async with h.db.session() as session:
        rows = (await session.exec(select(Delivery).where(Delivery.broadcast_id == sent.id))).all()
    by_status = {
        status: [r for r in rows if r.status == status] for status in {r.status for r in rows}
    }
    assert set(by_status) == {"sent", "pending"}, {k: len(v) for k, v in by_status.items()}
    assert len(by_status["sent"]) == delivered()
    assert all(r.claimed_at is None and r.attempts == 0 for r in by_status["pending"])
    given_back = len(by_status["pending"])
    assert given_back > 0

    code, output = await run_gradtrack(env | {"BULK_SEND_PER_SECOND": "0"}, "news", "dispatch")
    assert code == 0, output
    counts = [len(received(h, g)) for g in group]
    assert counts == [1] * 30, counts
    print(
        "figures: sigterm mid-broadcast:",
        {"sent_before": 30 - given_back, "given_back": given_back},
    )


async def test_sigterm_stops_news_dispatch_and_gives_back_the_rest(offline: Harness) -> None:
    """`gradtrack news dispatch` sending 20 messages at 2 a second gets SIGTERM after a few:
    it says so and exits with 1, no error logged; what it did not send is pending again,
    unclaimed, and the next dispatch sends it at once: each graduate once."""
    h = offline
    school = await h.school()
    group = await readers(h, school, 20)
    sent = await broadcast(h, school, {"en": "Reunion"}, news.Audience())
    env = service_env(h, BULK_SEND_PER_SECOND="2")

    def delivered() -> int:
        return sum(len(received(h, g)) for g in group)

    process = await asyncio.create_subprocess_exec(
        GRADTRACK,
        "news",
        "dispatch",
        env={k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"} | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    await eventually(lambda: delivered() >= 3, timeout=60)
    process.send_signal(signal.SIGTERM)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = output.decode(errors="replace")
    assert process.returncode == 1 and "the news not sent yet is pending again" in text, text
    assert not trouble(text.splitlines()), text

    async with h.db.session() as session:
        rows = (await session.exec(select(Delivery).where(Delivery.broadcast_id == sent.id))).all()
    pending = [r for r in rows if r.status == "pending"]
    assert len(pending) + delivered() == 20 and pending, [r.status for r in rows]
    assert all(r.claimed_at is None and r.attempts == 0 for r in pending)
    code, more = await run_gradtrack(env | {"BULK_SEND_PER_SECOND": "0"}, "news", "dispatch")
    assert code == 0, more
    assert [len(received(h, g)) for g in group] == [1] * 20


async def test_two_news_dispatchers_with_a_short_lease_send_each_message_once(
    offline: Harness,
) -> None:
    """Two `gradtrack news dispatch` processes on one broadcast to 60 graduates, with a
    2-second claim lease and 5 messages a second each (12 seconds for one alone); the second
    starts once the first has sent 12, when its first claim is older than the lease. No
    process is killed: every graduate gets the news exactly once, and no delivery was
    claimed twice."""
    h = offline
    school = await h.school()
    group = await readers(h, school, 60)
    sent = await broadcast(h, school, {"en": "Reunion"}, news.Audience())
    env = service_env(h, BULK_SEND_PER_SECOND="5", CLAIM_LEASE_SECONDS="2", LOG_LEVEL="WARNING")

    def delivered() -> list[int]:
        return [len(received(h, g)) for g in group]

    first = asyncio.create_task(run_gradtrack(env, "news", "dispatch", "--concurrency", "2"))
    await eventually(lambda: sum(delivered()) >= 12, timeout=60)
    second = await run_gradtrack(env, "news", "dispatch", "--concurrency", "2")
    results = [await first, second]
    counts = delivered()
    print(
        "figures: two news dispatchers, 2 s lease:",
        {"recipients": len(group), "sent": sum(counts), "duplicates": sum(counts) - len(counts)},
    )
    for code, output in results:
        assert code == 0 and not trouble(output.splitlines()), output
    assert counts == [1] * len(group), counts
    async with h.db.session() as session:
        rows = (await session.exec(select(Delivery).where(Delivery.broadcast_id == sent.id))).all()
    assert {row.status for row in rows} == {"sent"}
    assert {row.attempts for row in rows} == {1}


async def test_a_second_bot_process_on_one_sqlite_file_is_refused(offline: Harness) -> None:
    """SQLite is one process: while `gradtrack serve` runs on a file, a second `serve` and a
    `run` on the same file stop at once with a message saying why and what to do, exit code
    1, and the first keeps running; `migrate` still runs. Once the first has stopped, the
    next `serve` starts."""
    env = service_env(offline)
    async with gradtrack("serve", env) as (first, lines):
        await _wait_for_line(lines, "gradtrack serving on")
        for command in ("serve", "run"):
            code, output = await run_gradtrack(service_env(offline), command)
            assert code == 1, output
            assert "SQLite is one process" in output and f"pid {first.pid}" in output, output
            assert "gradtrack serving on" not in output
        code, output = await run_gradtrack(env, "migrate")
        assert code == 0 and output.strip().endswith("database is up to date"), output
        assert first.returncode is None
    assert not trouble(lines), "\n".join(lines[-40:])
    async with gradtrack("serve", service_env(offline)) as (_next, next_lines):
        await _wait_for_line(next_lines, "gradtrack serving on")


@pytest.mark.parametrize("carried_out", [False, True], ids=["not-delivered", "delivered"])
async def test_sigkill_before_the_next_question_is_sent_it_comes_on_redelivery(
    offline: Harness, carried_out: bool
) -> None:
    """`gradtrack serve`: a graduate opens their invite and presses their language; the
    answer is stored, and the process is killed (SIGKILL) while the next message is with
    Telegram (held by the sandbox: not delivered, or delivered with the answer lost).
    Telegram delivers the press again to the next process, which sends what was left
    pending at once: the graduate gets the questions without waiting for the prompts job
    (PROMPT_RESEND_SECONDS is an hour here, so nothing else could send them). Delivered
    before the kill, the message the process was sending comes twice: the one duplicate
    this fault can cause (it would come again a minute later without this)."""
    h = offline
    h.sandbox.webhooks.max_retry_delay = 0.5  # the next process gets the redelivery soon
    school = await h.school()
    graduate = await h.graduate(school)
    user = h.user("en")
    env = service_env(h, PROMPT_RESEND_SECONDS="3600", THROTTLE_PER_SECOND="0")
    loop = asyncio.get_running_loop()

    async with gradtrack("serve", env, exit_code=-signal.SIGKILL) as (process, lines):
        await _wait_for_line(lines, "gradtrack serving on")
        await h.send(user, f"/start {graduate.invite_token}")
        held = h.sandbox.faults.hang("sendMessage", seconds=60, process=carried_out)
        await h.press(user, "English", expect=0)
        await eventually(lambda: held.hits >= 1, timeout=60)
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 60)
        killed_at = loop.time()
    h.sandbox.faults.clear()
    assert (await h.reload(graduate)).chat_id == user.id  # the /start took effect
    before = len(h.sandbox.bot_messages(h.token, user.id))
    assert before == 1 + int(carried_out)  # the language question (+ the held message)

    async with gradtrack("serve", env) as (_next, next_lines):
        await _wait_for_line(next_lines, "gradtrack serving on")
        started_after = loop.time() - killed_at
        # The consent question: with its buttons, after the privacy notice.
        await eventually(
            lambda: len(h.sandbox.bot_messages(h.token, user.id)) >= before + 2, timeout=60
        )
        stall = loop.time() - killed_at
        await asyncio.sleep(1.0)  # anything more would come now
    texts = [m.text or "" for m in h.sandbox.bot_messages(h.token, user.id)]
    assert len(texts) == before + 2, texts
    assert h.sandbox.bot_messages(h.token, user.id)[-1].buttons
    duplicates = len(texts) - 3
    assert duplicates == int(carried_out)
    assert not trouble(next_lines), "\n".join(next_lines[-40:])
    print(
        "figures: sigkill before the next question:",
        {
            "delivered_before_kill": carried_out,
            "duplicates": duplicates,
            "next_process_up_after_s": round(started_after, 1),
            "question_after_s": round(stall, 1),
        },
    )
