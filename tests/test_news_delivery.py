"""Delivering alumni news through the sandbox: segments, languages, 429 storms, blocked
graduates, cancelling, and a sender killed with SIGKILL mid-broadcast."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import select

from bot.delivery import RateLimiter
from bot.news import dispatch_news
from bot.sandbox import RateLimits
from storage import news
from storage.models import Broadcast, BroadcastStatus, Delivery, Graduate, Institution, Programme
from storage.types import utcnow
from tests.harness import Harness, eventually, tr

GRADTRACK = str(Path(sys.executable).with_name("gradtrack"))
NO_LIMIT = RateLimiter(0)


async def readers(
    h: Harness,
    school: Institution,
    count: int,
    *,
    lang: str = "en",
    programme: str = "ICT4",
    year: int = 2026,
    **extra: Any,
) -> list[Graduate]:
    """`count` graduates of `programme` who started the bot and want news."""
    user_ids = h.sandbox.create_started_users(h.token, count, language_code=lang)
    async with h.db.session() as session:
        programme_row = (
            await session.exec(
                select(Programme).where(
                    Programme.institution_id == school.id, Programme.code == programme
                )
            )
        ).one()
        rows = [
            Graduate(
                institution_id=school.id or 0,
                programme_id=programme_row.id or 0,
                student_ref=f"{programme}-{lang}-{user_id}",
                graduation_date=date(year, 6, 30),
                language=lang,
                chat_id=user_id,
                **{"consent_news": True, **extra},
            )
            for user_id in user_ids
        ]
        session.add_all(rows)
    return rows


async def broadcast(
    h: Harness, school: Institution, texts: dict[str, str], audience: news.Audience, **extra: Any
) -> Broadcast:
    async with h.db.session() as session:
        row = Broadcast(
            institution_id=school.id,
            texts=texts,
            default_language="en",
            filter=audience.to_filter(),
            **extra,
        )
        session.add(row)
        await session.flush()
        await news.schedule(session, row, h.clock.now())
    return row


def received(h: Harness, graduate: Graduate) -> list[str]:
    """The news the graduate got, each message's footer (the school's name and how to stop
    news, in the graduate's language) checked and taken off."""
    assert graduate.chat_id is not None
    stop = tr(graduate.language or "en", "/privacy to stop news")
    bodies = []
    for entry in h.sandbox.bot_messages(h.token, graduate.chat_id):
        body, _sep, footer = entry.content.rpartition("\n\n— ")
        assert footer.endswith(f" · {stop}"), entry.content
        bodies.append(body)
    return bodies


async def reload_broadcast(h: Harness, broadcast_id: int | None) -> Broadcast:
    async with h.db.session() as session:
        row = await session.get(Broadcast, broadcast_id)
        assert row is not None
        return row


async def test_news_reaches_its_segment_once_in_each_graduates_language(
    harness: Harness,
) -> None:
    h = harness
    school = await h.school()
    english = await readers(h, school, 3, lang="en")
    dutch = await readers(h, school, 2, lang="nl", programme="CHEF4", year=2025)
    declined = await readers(h, school, 1, consent_news=False)
    stopped = await readers(h, school, 1, opted_out_at=utcnow())
    erased = await readers(h, school, 1, erased_at=utcnow())
    blocked = await readers(h, school, 1, unreachable_at=utcnow(), unreachable_reason="blocked")
    officer = h.sandbox.create_started_users(h.token, 1)[0]

    async with h.db.session() as session:
        everyone = news.Audience(institution_ids=(school.id or 0,))
        assert await news.count_audience(session, everyone) == 5
        cooks = news.Audience(programme_ids=(dutch[0].programme_id,)).within(school.id)
        assert await news.count_audience(session, cooks) == 2
        assert await news.count_audience(session, news.Audience(graduation_years=(2025,))) == 2
        assert await news.count_audience(session, news.Audience(languages=("en",))) == 3
        other_school = news.Audience(institution_ids=(school.id or 0,)).within(-5)
        assert await news.count_audience(session, other_school) == 0

    sent = await broadcast(
        h,
        school,
        {"en": "<b>Open day</b> on 12 March", "nl": "<b>Open dag</b> op 12 maart"},
        everyone,
        report_chat_id=officer,
    )
    report = await dispatch_news(h.runtime, limiter=NO_LIMIT)
    assert (report.sent, report.blocked, report.failed) == (5, 0, 0)
    for graduate in english:
        assert received(h, graduate) == ["Open day on 12 March"]
        entry = h.sandbox.bot_messages(h.token, graduate.chat_id or 0)[0]
        assert entry.entities is not None
        assert entry.entities[0] == {"type": "bold", "offset": 0, "length": 8}
        # The rest is the footer's /privacy command.
        assert [e["type"] for e in entry.entities[1:]] == ["bot_command"]
    for graduate in dutch:
        assert received(h, graduate) == ["Open dag op 12 maart"]
    # Each message says who sends it and how to stop news, in the reader's language.
    dutch_news = h.sandbox.bot_messages(h.token, dutch[0].chat_id or 0)[0]
    assert dutch_news.content.endswith("\n\n— Alfa College · /privacy om het nieuws te stoppen")
    english_news = h.sandbox.bot_messages(h.token, english[0].chat_id or 0)[0]
    assert english_news.content.endswith("\n\n— Alfa College · /privacy to stop news")
    for graduate in (*declined, *stopped, *erased, *blocked):
        assert received(h, graduate) == []

    final = await reload_broadcast(h, sent.id)
    assert final.status == BroadcastStatus.DONE.value
    assert (final.total, final.sent, final.blocked, final.failed) == (5, 5, 0, 0)
    (progress,) = h.sandbox.bot_messages(h.token, officer)
    # The officer has no language of their own: the school's (Dutch) is used.
    assert progress.content.startswith(tr("nl", "News #{id} has been sent.").format(id=sent.id))
    assert tr("nl", "Sent: {n}").format(n=5) in progress.content
    assert tr("nl", "Pending: {n}").format(n=0) in progress.content
    # Nothing more to do: a second pass sends nothing.
    assert (await dispatch_news(h.runtime, limiter=NO_LIMIT)).sent == 0


async def test_scheduled_news_waits_for_its_time(harness: Harness) -> None:
    h = harness
    school = await h.school()
    (reader,) = await readers(h, school, 1)
    async with h.db.session() as session:
        row = Broadcast(institution_id=school.id, texts={"en": "Later"}, default_language="en")
        session.add(row)
        await session.flush()
        await news.schedule(session, row, h.clock.now() + timedelta(hours=2))
    assert (await dispatch_news(h.runtime, limiter=NO_LIMIT)).sent == 0
    h.clock.advance(timedelta(hours=2))
    assert (await dispatch_news(h.runtime, limiter=NO_LIMIT)).sent == 1
    assert received(h, reader) == ["Later"]


async def test_a_429_storm_is_waited_out_and_nobody_gets_it_twice(harness: Harness) -> None:
    h = harness
    school = await h.school()
    group = await readers(h, school, 12)
    h.sandbox.rate_limits = RateLimits(global_per_second=6.0, global_burst=3)
    await broadcast(h, school, {"en": "Storm"}, news.Audience())
    report = await dispatch_news(h.runtime, limiter=NO_LIMIT, concurrency=4)
    h.sandbox.rate_limits = RateLimits(enabled=False)
    assert report.sent == 12
    assert any(c.status == 429 for c in h.sandbox.calls("sendMessage"))
    assert all(received(h, g) == ["Storm"] for g in group)


async def test_deleted_accounts_count_as_blocked_and_become_unreachable(
    harness: Harness,
) -> None:
    h = harness
    school = await h.school()
    group = await readers(h, school, 4)
    for graduate in group[:2]:
        h.sandbox.deactivate_user(graduate.chat_id or 0)
    sent = await broadcast(h, school, {"en": "Hi"}, news.Audience())
    report = await dispatch_news(h.runtime, limiter=NO_LIMIT)
    assert (report.sent, report.blocked) == (2, 2)
    final = await reload_broadcast(h, sent.id)
    assert (final.sent, final.blocked, final.status) == (2, 2, "done")
    assert (await h.reload(group[0])).unreachable_reason == "deactivated"
    # Unreachable graduates are no longer in any audience.
    async with h.db.session() as session:
        assert await news.count_audience(session, news.Audience()) == 2


async def test_cancelling_stops_a_running_broadcast(harness: Harness) -> None:
    h = harness
    school = await h.school()
    group = await readers(h, school, 30)
    sent = await broadcast(h, school, {"en": "Maybe"}, news.Audience())
    task = asyncio.create_task(dispatch_news(h.runtime, limiter=RateLimiter(20), concurrency=1))
    await eventually(lambda: len(h.sandbox.calls("sendMessage")) >= 5)
    cancelled = await news.cancel(h.db, sent.id or 0, h.clock.now())
    assert cancelled.status == BroadcastStatus.CANCELLED.value
    report = await asyncio.wait_for(task, 10)
    final = await reload_broadcast(h, sent.id)
    got = [len(received(h, g)) for g in group]
    assert max(got) == 1 and 5 <= sum(got) < 30
    assert final.sent == sum(got) == report.sent
    assert final.sent + final.cancelled == 30 and final.status == "cancelled"


async def test_a_sender_killed_mid_broadcast_resumes_with_no_duplicate_and_no_gap(
    harness: Harness,
) -> None:
    """`gradtrack news dispatch` runs as its own process against the sandbox; it is killed
    with SIGKILL while a message is in flight (held by the sandbox, not delivered); a new
    process sends the rest once the dead one's claims expire."""
    h = harness
    school = await h.school()
    group = await readers(h, school, 40)
    sent = await broadcast(h, school, {"en": "Reunion"}, news.Audience())
    env = {
        **os.environ,
        "DATABASE_URL": h.settings.database_url,
        "TELEGRAM_BOT_TOKEN": h.token,
        "TELEGRAM_API_BASE_URL": f"{h.sandbox.url}/bot",
        "SECRET_KEY": "news-test-secret-key-of-at-least-32-characters",
        "BULK_SEND_PER_SECOND": "40",
        "CLAIM_LEASE_SECONDS": "2",
        "LOG_LEVEL": "WARNING",
    }

    async def sender() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            GRADTRACK,
            "news",
            "dispatch",
            "--concurrency",
            "1",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    def delivered() -> int:
        return sum(len(received(h, g)) for g in group)

    first = await sender()
    await eventually(lambda: delivered() >= 12, timeout=30)
    h.sandbox.faults.hang("sendMessage", seconds=30)  # the next message stays in flight
    await asyncio.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    h.sandbox.faults.clear()
    before = delivered()
    assert 12 <= before < 40

    await asyncio.sleep(2.5)  # the dead sender's claim expires
    second = await sender()
    output, _ = await asyncio.wait_for(second.communicate(), 60)
    assert second.returncode == 0, output.decode()
    counts = [len(received(h, g)) for g in group]
    assert counts == [1] * 40, counts  # no duplicate, no gap: every transcript has it once
    final = await reload_broadcast(h, sent.id)
    assert (final.status, final.sent) == ("done", 40)
    async with h.db.session() as session:
        statuses = {d.status for d in (await session.exec(select(Delivery))).all()}
    assert statuses == {"sent"}
