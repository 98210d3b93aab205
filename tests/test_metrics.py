"""Metrics and logs as an operator sees them: `GET /metrics` in Prometheus' text format
(updates handled, handler latency, messages sent, Telegram's 429s and 403s, due work), JSON
log lines with the update's fields, and never a bot token in the logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from sqlmodel import col, update

from bot import logs
from bot.delivery import RateLimiter, dispatch_due
from bot.news import dispatch_news
from bot.settings import Settings
from conversations.registry import QuestionnaireRegistry
from storage.invitations import plan_invitations
from storage.models import (
    Broadcast,
    BroadcastStatus,
    Delivery,
    Graduate,
    Invitation,
    InvitationStatus,
    Programme,
)
from tests.harness import Harness, eventually
from tests.test_survey import CHAT_DIR, MINI_PLANS

NO_LIMIT = RateLimiter(0)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(base_url: str, headers: dict[str, str] | None = None) -> Samples:
    """GET /metrics, parsed the way Prometheus reads it."""
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{base_url}/metrics", headers=headers) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


# ---------------------------------------------------------------- updates, latency, replies


async def test_updates_are_counted_and_timed(harness: Harness, web: str) -> None:
    before = await scrape(web)
    assert value(before, "gradtrack_updates_handled_total", type="message") == 0
    assert value(before, "gradtrack_handler_seconds_count") == 0
    assert value(before, "gradtrack_invitations_due") == 0

    await harness.at_consents()  # a graduate's /start, then the "English" button

    async def counted() -> bool:
        after = await scrape(web)
        return value(after, "gradtrack_updates_handled_total", type="callback_query") >= 1

    await eventually(counted)
    after = await scrape(web)
    messages = value(after, "gradtrack_updates_handled_total", type="message")
    buttons = value(after, "gradtrack_updates_handled_total", type="callback_query")
    assert (messages, buttons) == (1, 1)
    # Every handled update was timed, and none took anywhere near the last bucket.
    assert value(after, "gradtrack_handler_seconds_count") == 2
    assert value(after, "gradtrack_handler_seconds_bucket", le="10.0") == 2
    assert 0 < value(after, "gradtrack_handler_seconds_sum") < 20
    # The bot's answers (language choice, notice, consent question) are replies.
    assert value(after, "gradtrack_messages_sent_total", kind="reply") >= 3
    assert value(after, "gradtrack_messages_sent_total", kind="invitation") == 0
    assert value(after, "gradtrack_telegram_errors_total", code="429") == 0
    assert "process_resident_memory_bytes" in {name for name, _labels in after}


async def test_metrics_token_is_required_when_set(harness: Harness, web: str) -> None:
    harness.settings.metrics_token = "scrape-me-please"
    async with aiohttp.ClientSession() as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with client.get(f"{web}/metrics", headers=headers) as response:
                assert response.status == 401
    samples = await scrape(web, {"Authorization": "Bearer scrape-me-please"})
    assert ("gradtrack_invitations_due", frozenset()) in samples


# ---------------------------------------------------------------- invitations and Telegram


@pytest.fixture
async def waves(harness: Harness) -> Harness:
    harness.questionnaires = QuestionnaireRegistry(CHAT_DIR)
    harness.plans = MINI_PLANS
    harness.clock.set(datetime(2026, 6, 1, 9, 0, tzinfo=UTC))
    await harness.restart_bot()
    return harness


async def test_invitations_sent_429_403_and_5xx_are_counted(waves: Harness) -> None:
    h = waves
    web = await h.start_web()
    graduate, user = await h.consenting_graduate("en")
    await plan_invitations(h.db, h.runtime.plans, now=h.clock.now())
    h.clock.set(datetime(2026, 8, 30, 8, 30, tzinfo=UTC))  # 10:30 in Amsterdam: m2 opens
    before = await scrape(web)
    assert value(before, "gradtrack_invitations_due") == 1
    # One 429: python-telegram-bot's rate limiter waits retry_after, and the message goes out.
    h.sandbox.faults.add("sendMessage", status=429, retry_after=1, count=1)
    assert (await dispatch_due(h.runtime, limiter=NO_LIMIT)).sent == 1
    after = await scrape(web)
    assert value(after, "gradtrack_messages_sent_total", kind="invitation") == 1
    assert value(after, "gradtrack_telegram_errors_total", code="429") == 1
    assert value(after, "gradtrack_invitations_due") == 0

    h.clock.set(datetime(2026, 9, 13, 8, 30, tzinfo=UTC))  # the first reminder is due
    h.sandbox.faults.add("sendMessage", status=502, count=1)
    assert (await dispatch_due(h.runtime, limiter=NO_LIMIT)).retried == 1
    samples = await scrape(web)
    assert value(samples, "gradtrack_telegram_errors_total", code="5xx") == 1
    assert value(samples, "gradtrack_invitations_due") == 0  # due again in a minute

    h.clock.advance(timedelta(minutes=5))
    assert value(await scrape(web), "gradtrack_invitations_due") == 1
    assert graduate.chat_id is not None
    h.sandbox.block(h.token, user.id)  # the graduate blocks the bot before the reminder

    async def unreachable() -> bool:
        return (await h.reload(graduate)).unreachable_at is not None

    await eventually(unreachable)  # heard of it (my_chat_member) ...
    async with h.db.engine.begin() as conn:  # ... but a sender may not know yet: 403
        await conn.execute(
            update(Graduate)
            .where(col(Graduate.id) == graduate.id)
            .values(unreachable_at=None, unreachable_reason=None)
        )
    report = await dispatch_due(h.runtime, limiter=NO_LIMIT)
    assert report.failed == 1
    samples = await scrape(web)
    assert value(samples, "gradtrack_telegram_errors_total", code="403") == 1
    assert value(samples, "gradtrack_messages_sent_total", kind="invitation") == 1
    assert value(samples, "gradtrack_updates_handled_total", type="my_chat_member") >= 1


async def test_due_invitations_and_pending_news_are_counted_at_scrape(
    harness: Harness, web: str
) -> None:
    h = harness
    school = await h.school()
    now = h.clock.now()
    graduates = [await h.graduate(school) for _ in range(4)]
    rows = [
        (InvitationStatus.PENDING, now - timedelta(hours=1)),
        (InvitationStatus.PENDING, now - timedelta(days=3)),
        (InvitationStatus.PENDING, now + timedelta(hours=1)),  # not due yet
        (InvitationStatus.SENT, now - timedelta(days=1)),
    ]
    async with h.db.session() as session:
        for graduate, (status, due_at) in zip(graduates, rows, strict=True):
            assert graduate.id is not None
            session.add(
                Invitation(
                    graduate_id=graduate.id,
                    wave="m2",
                    form_id="tracking",
                    due_at=due_at,
                    closes_at=now + timedelta(days=30),
                    status=status.value,
                )
            )
    # Two graduates who want news, and a broadcast being sent to them.
    user_ids = h.sandbox.create_started_users(h.token, 2, language_code="en")
    async with h.db.session() as session:
        programme = await session.get(Programme, graduates[0].programme_id)
        assert programme is not None and school.id is not None and programme.id is not None
        readers = [
            Graduate(
                institution_id=school.id,
                programme_id=programme.id,
                student_ref=f"news-{user_id}",
                graduation_date=date(2026, 6, 30),
                language="en",
                chat_id=user_id,
                consent_news=True,
            )
            for user_id in user_ids
        ]
        broadcast = Broadcast(
            institution_id=school.id,
            texts={"en": "Open day on Friday!"},
            status=BroadcastStatus.SENDING.value,
            total=2,
        )
        session.add_all([*readers, broadcast])
        await session.flush()
        assert broadcast.id is not None
        for reader in readers:
            assert reader.id is not None
            session.add(Delivery(broadcast_id=broadcast.id, graduate_id=reader.id, due_at=now))

    samples = await scrape(web)
    assert value(samples, "gradtrack_invitations_due") == 2
    assert value(samples, "gradtrack_news_pending") == 2

    report = await dispatch_news(h.runtime, limiter=NO_LIMIT)
    assert report.sent == 2
    samples = await scrape(web)
    assert value(samples, "gradtrack_news_pending") == 0
    assert value(samples, "gradtrack_messages_sent_total", kind="news") == 2
    h.clock.advance(timedelta(hours=2))
    assert value(await scrape(web), "gradtrack_invitations_due") == 3


# ---------------------------------------------------------------- logs


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG while the test runs, in `io`; logging restored afterwards."""
    root = logging.getLogger()
    level = root.level
    noisy = {name: logging.getLogger(name).level for name in logs.NOISY_LOGGERS}
    stream = io.StringIO()
    handler = logs.setup("DEBUG", "json", stream=stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)
    for name, old in noisy.items():
        logging.getLogger(name).setLevel(old)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_json_logs_carry_the_update_and_never_the_token(
    harness: Harness, captured_logs: io.StringIO
) -> None:
    h = harness
    _school, graduate, user = await h.at_consents()
    pressed = h.sandbox.bot(h.token).history[-1]["update_id"]  # the language button
    await h.send(user, "/help")
    # Delivered again: the bot logs it (INFO) while handling the update of this chat.
    h.sandbox.redeliver(h.token, pressed)
    # A careless log line with a request URL, and an exception mentioning the token.
    careless = logging.getLogger("tests.careless")
    careless.info("calling %s/bot%s/getMe", h.sandbox.url, h.token)
    try:
        raise RuntimeError(f"could not reach /bot{h.token}/sendMessage")
    except RuntimeError:
        careless.exception("request failed", extra={"attempt": 3, "url": f"/bot{h.token}/x"})

    chat = logs.chat_ref(user.id)  # never the chat id itself (bot/logs.py)

    async def logged_help() -> bool:
        return any(line.get("chat") == chat for line in json_lines(captured_logs))

    await eventually(logged_help)
    text = captured_logs.getvalue()
    assert h.token not in text
    assert h.token.split(":", 1)[1] not in text
    assert str(user.id) not in text
    lines = json_lines(captured_logs)  # every line is one JSON object
    # Not python-telegram-bot's DEBUG lines: they hold whole updates (bot/logs.py).
    assert not any(
        line["level"] == "DEBUG" and str(line["logger"]).startswith("telegram") for line in lines
    )
    for line in lines:
        assert {"time", "level", "logger", "message", "pid"} <= line.keys()
        assert str(line["time"]).endswith("Z")
        datetime.fromisoformat(str(line["time"]).replace("Z", "+00:00"))
    in_update = [line for line in lines if line.get("chat") == chat]
    assert in_update and all(isinstance(line["update_id"], int) for line in in_update)
    (url_line,) = [line for line in lines if str(line["message"]).startswith("calling ")]
    assert url_line["message"] == f"calling {h.sandbox.url}/bot<redacted>/getMe"
    (failure,) = [line for line in lines if line["message"] == "request failed"]
    assert failure["level"] == "ERROR" and failure["attempt"] == 3
    assert failure["url"] == "/bot<redacted>/x"
    assert "RuntimeError: could not reach /bot<redacted>/sendMessage" in str(failure["exception"])
    assert graduate.invite_token is not None


def test_text_logs_append_the_update_fields() -> None:
    stream = io.StringIO()
    handler = logs.setup("INFO", "text", stream=stream)
    try:
        with logs.bound(update_id=7, chat_id=42):  # written as its reference
            logging.getLogger("tests.text").info("hello 123456789:%s", "A" * 35)
        logging.getLogger("tests.text").info("outside")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = stream.getvalue().splitlines()
    assert first.endswith(
        f"INFO tests.text: hello <redacted> [update_id=7 chat={logs.chat_ref(42)}]"
    )
    assert second.endswith("INFO tests.text: outside")


def test_log_format_setting() -> None:
    assert Settings(_env_file=None).log_format == "text"
    assert Settings(_env_file=None, log_format="JSON").log_format == "json"
    with pytest.raises(ValidationError):
        Settings(_env_file=None, log_format="xml")
    assert Settings(_env_file=None).metrics_token == ""
