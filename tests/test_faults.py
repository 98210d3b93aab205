"""Faults, each with a test: the database unreachable for a while, the Bot API answering 5xx
or timing out, a full disk under SQLite. Nothing is mocked: a real PostgreSQL behind a TCP
proxy that the test cuts, the sandbox Bot API's fault injection, SQLite's own SQLITE_FULL.

Each test prints its figures (faults injected, updates during the fault, apologies, answers
lost, messages duplicated) on one `figures:` line, for docs/reliability.md."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, func, select

from bot.delivery import RateLimiter, dispatch_due
from bot.metrics import metrics_of
from bot.sandbox import Fault, SandboxServer
from bot.sandbox.state import SandboxUser, TranscriptEntry
from bot.settings import Settings
from conversations.prompting import resend_pending_prompts
from conversations.registry import QuestionnaireRegistry
from storage.db import Database
from storage.invitations import plan_invitations
from storage.models import (
    Answer,
    ChatState,
    Invitation,
    ProcessedUpdate,
    ResponseStatus,
    SurveyResponse,
)
from tests.databases import PostgresProvider, SqliteProvider, in_ci
from tests.faults import ImpatientHarness, SqliteFull, TcpProxy
from tests.harness import Harness, eventually, tr
from tests.test_survey import CHAT_DIR, MINI_PLANS

SORRY = "Sorry, something went wrong on our side. Please try again in a minute."
START_BUTTON = "Start the questionnaire"
NO_LIMIT = RateLimiter(0)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    zone = ZoneInfo("Europe/Amsterdam")
    return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)


def mini(h: Harness) -> Harness:
    """`h` with the small questionnaire of every type and its wave (m2 opens 2026-08-30)."""
    h.questionnaires = QuestionnaireRegistry(CHAT_DIR)
    h.plans = MINI_PLANS
    h.clock.set(datetime(2026, 6, 1, 9, 0, tzinfo=UTC))
    return h


async def snapshot(db: Database, chat_id: int, response_id: int | None) -> dict[str, Any]:
    """Everything an answer writes: the chat's state, the response, its answers, and the
    updates recorded as processed."""
    async with db.session() as session:
        state = await session.get(ChatState, chat_id)
        response = await session.get(SurveyResponse, response_id)
        assert state is not None and response is not None
        answers = await session.exec(select(Answer).where(Answer.response_id == response_id))
        processed = await session.exec(select(func.count()).select_from(ProcessedUpdate))
        return {
            "state": state.model_dump(),
            "response": response.model_dump(),
            "answers": sorted((a.question, repr(a.value), a.answered_at) for a in answers.all()),
            "processed": processed.one(),
        }


async def stored_answers(db: Database, response_id: int | None) -> list[tuple[str, Any]]:
    """(question, value) of every answer row, in the order stored: one stored twice shows
    twice."""
    async with db.session() as session:
        rows = await session.exec(
            select(Answer).where(Answer.response_id == response_id).order_by(col(Answer.id))
        )
        return [(row.question, row.value) for row in rows.all()]


def handled(h: Harness) -> float:
    """Updates the bot has finished with, failed ones included (its own metrics)."""
    assert h.app is not None
    return sum(
        sample.value
        for family in metrics_of(h.app).registry.collect()
        if family.name == "gradtrack_updates_handled"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


async def idle(h: Harness) -> None:
    """Wait until the bot is done with every update sent to it so far, failed ones too."""
    sent = len(h.sandbox.bot(h.token).history)
    await eventually(lambda: handled(h) >= sent)


def showing(h: Harness, user: SandboxUser, text: str) -> list[TranscriptEntry]:
    """The bot's messages in the chat whose text contains `text`."""
    return [m for m in h.sandbox.bot_messages(h.token, user.id) if text in m.content]


def apologies(h: Harness, user: SandboxUser, lang: str) -> int:
    """How many times the bot told the person something went wrong (alerts and messages)."""
    sorry = tr(lang, SORRY)
    return h.callback_answers(user).count(sorry) + len(showing(h, user, sorry))


def still_running(h: Harness) -> bool:
    return h.app is not None and h.app.running and bool(h.app.updater and h.app.updater.running)


# ---------------------------------------------------------------- the database unreachable


@pytest.fixture
async def pg_url(postgres_provider: PostgresProvider | str) -> AsyncIterator[str]:
    """A fresh migrated PostgreSQL database: the production store."""
    if isinstance(postgres_provider, str):
        if in_ci():
            pytest.fail(f"CI needs PostgreSQL: {postgres_provider}")
        pytest.skip(f"PostgreSQL runs skipped: {postgres_provider}")
    url = await postgres_provider.fresh_database()
    yield url
    await postgres_provider.drop(url)


@pytest.fixture
async def proxy(pg_url: str) -> AsyncIterator[TcpProxy]:
    """A proxy in front of the PostgreSQL server, to cut it off."""
    parsed = make_url(pg_url)
    tcp = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    await tcp.start()
    yield tcp
    await tcp.close()


@pytest.fixture
async def cut_off(sandbox: SandboxServer, pg_url: str, proxy: TcpProxy) -> AsyncIterator[Harness]:
    """The bot on PostgreSQL through `proxy` (the production engine settings)."""
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    rendered = url.render_as_string(hide_password=False)
    db = Database(rendered)
    settings = Settings(
        database_url=rendered, telegram_bot_token="", throttle_per_second=0, _env_file=None
    )
    h = mini(Harness(sandbox, db, settings))
    await h.start_bot()
    yield h
    await h.stop_bot()
    await db.dispose()


async def test_database_outage_loses_nothing_and_catches_up(
    cut_off: Harness, proxy: TcpProxy
) -> None:
    """PostgreSQL unreachable for a while (connections reset, new ones refused): a typed
    answer and a button press are each answered once, in the graduate's language
    (Telegram's language_code: the chat's cannot be read), by "try again"; nothing is
    written, not even in part; the invitation dispatcher fails its tick without losing its
    row; the bot stays up. Once the database is back, the same typed answer and the same
    press are stored once and the next question comes, and the invitation that fell due
    goes out once. Pooled connections a cut broke are replaced before use
    (pool_pre_ping): after a cut nobody used the database through, nobody sees an error."""
    h = cut_off
    school = await h.school()
    daan_graduate, daan = await h.consenting_graduate("nl", school)
    # Planned when the chat was linked: nothing left for the planner.
    assert await plan_invitations(h.db, h.runtime.plans, now=h.clock.now()) == 0
    giulia, user = await h.consenting_graduate("it", school)
    response = await h.open_survey(giulia, "mini")
    _welcome, c0 = await h.send(user, "/survey", expect=2)
    (q1,) = await h.press(user, "Sì", message=c0)
    sorry = tr("it", SORRY)
    assert sorry != SORRY  # the apology is translated: its language is checked below

    # A cut while nobody uses the database: the pooled connections die unnoticed. The next
    # press must not fail on one of them.
    await idle(h)
    assert await proxy.cut() >= 1  # the pool held connections: all dead now
    await proxy.restore()
    accepted = proxy.accepted
    (hours,) = await h.press(user, "Lavoro", message=q1)
    assert "Quante ore a settimana lavori?" in hours.content
    assert proxy.accepted > accepted  # new connections replaced the dead ones
    assert sorry not in h.callback_answers(user)

    # Outage 1: a typed answer, and the dispatcher's tick when Daan's invitation is due.
    await idle(h)
    before = await snapshot(h.db, user.id, response.id)
    h.clock.set(local(date(2026, 8, 30), 10, 30))
    assert await proxy.cut() >= 1
    (apology,) = await h.send(user, "38")
    assert apology.text == sorry
    with pytest.raises((OSError, SQLAlchemyError)):
        await dispatch_due(h.runtime, limiter=NO_LIMIT)
    await idle(h)
    assert len(showing(h, user, sorry)) == 1  # once, though every handler group failed
    assert still_running(h)
    await proxy.restore()
    assert await snapshot(h.db, user.id, response.id) == before
    async with h.db.session() as session:
        invitation = (
            await session.exec(
                select(Invitation).where(
                    Invitation.seq == 0, Invitation.graduate_id == daan_graduate.id
                )
            )
        ).one()
    assert (invitation.status, invitation.attempts, invitation.claimed_by) == ("pending", 0, None)
    (how,) = await h.send(user, "38")
    assert how.content.startswith("Domanda 4 · mancano circa 5 domande")
    assert "Come hai cercato?" in how.content

    # Outage 2: a button press (a choice of the multiple-choice question).
    await idle(h)
    before = await snapshot(h.db, user.id, response.id)
    await proxy.cut()
    await h.press(user, "Amici", expect=0, message=how)
    await eventually(lambda: h.callback_answers(user)[-1:] == [sorry])
    await idle(h)
    assert still_running(h)
    await proxy.restore()
    assert await snapshot(h.db, user.id, response.id) == before
    await h.press(user, "Amici", expect=0, message=how)
    await h.keyboard_shows(user, how, "☑️ Amici")
    _half, sat = await h.press(user, tr("it", "Done ✔"), expect=2, message=how)
    assert "Quanto sei soddisfatto?" in sat.content

    # The invitations that fell due during the outage (Daan's, and Giulia's: planned when she
    # linked her chat) go out now, once.
    report = await dispatch_due(h.runtime, limiter=NO_LIMIT)
    assert (report.sent, report.failed, report.retried) == (2, 0, 0)
    assert (await dispatch_due(h.runtime, limiter=NO_LIMIT)).claimed == 0
    start = tr("nl", START_BUTTON)
    invites = [
        m
        for m in h.sandbox.bot_messages(h.token, daan.id)
        if any(b.get("text") == start for b in m.buttons)
    ]
    assert len(invites) == 1

    # Nothing lost, nothing twice; one apology per update sent during the outages.
    assert await stored_answers(h.db, response.id) == [
        ("C0", "yes"),
        ("Q1", "working"),
        ("HOURS", 38),
        ("HOW", ["friends"]),
    ]
    told = apologies(h, user, "it")
    assert told == 2
    for question in ("Quante ore a settimana lavori?", "Come hai cercato?", "Sei a metà"):
        assert len(showing(h, user, question)) == 1, question
    assert still_running(h)
    print(
        "figures: database outage:",
        {
            "cuts": 3,
            "connections_reset": proxy.killed,
            "updates_during_outage": 2,
            "dispatcher_ticks_during_outage": 1,
            "apologies": told,
            "answers_lost": 0,
            "answers_stored_twice": 0,
            "invitations_sent_after": len(invites),
        },
    )


async def test_database_lost_after_the_answer_is_committed(
    cut_off: Harness, proxy: TcpProxy
) -> None:
    """The database goes away after an answer was committed, while Telegram is delivering
    the next question: the bot cannot record that the question went out. The answer is
    stored once; the question stays marked pending and the prompts job sends it again once
    the database is back: the one duplicate this fault can cause (at least once, never
    lost). The person is not told to try again: their press was answered already."""
    h = cut_off
    giulia, user = await h.consenting_graduate("it")
    response = await h.open_survey(giulia, "mini")
    _welcome, c0 = await h.send(user, "/survey", expect=2)
    sorry = tr("it", SORRY)

    # Telegram delivers the next question at once and answers 3 s later (the bot waits 5 s):
    # meanwhile the database is cut.
    held = h.sandbox.faults.add("sendMessage", status=None, delay=3.0, process=True)
    (q1,) = await h.press(user, "Sì", message=c0)
    await proxy.cut()
    await idle(h)
    assert held.hits == 1
    await proxy.restore()

    assert await stored_answers(h.db, response.id) == [("C0", "yes")]
    async with h.db.session() as session:
        state = await session.get(ChatState, user.id)
        stored = await session.get(SurveyResponse, response.id)
    assert state is not None and state.prompt_pending
    assert stored is not None and stored.current == "Q1"
    assert await resend_pending_prompts(h.runtime, timedelta(0)) == 1
    (again,) = await h.replies(user, 1)
    assert again.content == q1.content
    (hours,) = await h.press(user, "Lavoro", message=again)
    assert "Quante ore a settimana lavori?" in hours.content
    assert await stored_answers(h.db, response.id) == [("C0", "yes"), ("Q1", "working")]
    assert sorry not in h.callback_answers(user) and not showing(h, user, sorry)
    duplicates = len(showing(h, user, "Che cosa fai adesso?")) - 1
    assert duplicates == 1
    print(
        "figures: database lost after commit:",
        {"answers_lost": 0, "answers_stored_twice": 0, "questions_duplicated": duplicates},
    )


# ---------------------------------------------------------------- Bot API 5xx and timeouts


@pytest.fixture
async def impatient(
    sandbox: SandboxServer, db: Database, settings: Settings
) -> AsyncIterator[Harness]:
    """A bot that waits 2 s for a Bot API answer, on each backend."""
    h = mini(ImpatientHarness(sandbox, db, settings))
    await h.start_bot()
    yield h
    await h.stop_bot()


def http_error(method: str, status: int, count: int = 1) -> dict[str, Any]:
    """Telegram answers `status` and does nothing."""
    return {"method": method, "status": status, "count": count}


def timeout(method: str, *, carried_out: bool) -> dict[str, Any]:
    """Telegram answers after the bot gave up (3 s > its 2 s), having done the call or not."""
    if carried_out:
        return {"method": method, "status": None, "delay": 3.0, "process": True}
    return {"method": method, "status": 504, "delay": 3.0}


@dataclass
class Step:
    """The graduate answers `question` (a text it contains) with the button `answer`, or by
    typing it; `fault` is set on the Bot API for the call(s) the bot makes next."""

    question: str
    answer: str
    typed: bool = False
    fault: dict[str, Any] | None = None


NL_REVIEW = "Please check your answers. Tap a number to change an answer, or send them."
NL_STEPS = [
    Step(
        "Mogen we je een paar vragen stellen?", "Ja", fault=http_error("answerCallbackQuery", 500)
    ),
    Step("Wat doe je nu?", "Werken", fault=http_error("editMessageText", 502)),
    Step("Hoeveel uur per week werk je?", "38", typed=True, fault=http_error("sendMessage", 503)),
    Step(
        "Hoe heb je gezocht?",
        "Vrienden",
        fault=timeout("answerCallbackQuery", carried_out=False),
    ),
    Step(
        "Hoe heb je gezocht?",
        tr("nl", "Done ✔"),
        fault=timeout("sendMessage", carried_out=False),
    ),
    Step("Hoe tevreden ben je?", "4", fault=timeout("sendMessage", carried_out=True)),
    Step(
        "Wanneer ben je begonnen?",
        "30-06-2026",
        typed=True,
        fault=http_error("sendMessage", 502, count=2),
    ),
    Step("Wanneer is je volgende stap?", "06-2026", typed=True),
    Step(
        "Hoeveel kilometer reis je ernaartoe?",
        "2,5",
        typed=True,
        fault=http_error("sendMessage", 500),
    ),
    Step(
        "Heb je tips voor de school?",
        tr("nl", "Skip ▶"),
        fault=timeout("answerCallbackQuery", carried_out=True),
    ),
    Step(tr("nl", NL_REVIEW), tr("nl", "✅ Send my answers")),
]
NL_QUESTIONS = [
    "Mogen we je een paar vragen stellen?",
    "Wat doe je nu?",
    "Hoeveel uur per week werk je?",
    "Hoe heb je gezocht?",
    "Je bent halverwege, dank je!",
    "Hoe tevreden ben je?",
    "Wanneer ben je begonnen?",
    "Wanneer is je volgende stap?",
    "Hoeveel kilometer reis je ernaartoe?",
    "Heb je tips voor de school?",
    tr("nl", NL_REVIEW),
]


async def prompts_job(h: Harness, chat_id: int) -> int:
    """The scheduler leader's `prompts` job, run until the chat has no question pending
    (as if PROMPT_RESEND_SECONDS had passed each time); returns how many it sent."""
    sent = 0
    for _ in range(5):
        async with h.db.session() as session:
            state = await session.get(ChatState, chat_id)
        assert state is not None
        if not state.prompt_pending:
            return sent
        sent += await resend_pending_prompts(h.runtime, timedelta(0))
    raise AssertionError("the question is still pending")


async def take(h: Harness, user: SandboxUser, step: Step) -> Fault | None:
    """The graduate takes `step` with its fault in force; returns once the bot is done with
    the update and the prompts job has sent what was left pending."""
    on_screen = showing(h, user, step.question)
    assert on_screen, f"not shown: {step.question}"
    fault = h.sandbox.faults.add(**step.fault) if step.fault else None
    if step.typed:
        await h.sandbox.send_text(h.token, user.id, step.answer)
    else:
        (message,) = [m for m in on_screen if m.buttons][-1:]
        await h.press(user, step.answer, expect=0, message=message)
    await idle(h)
    h.sandbox.faults.clear()
    await prompts_job(h, user.id)
    return fault


async def test_bot_api_5xx_and_timeouts_lose_no_answer(impatient: Harness) -> None:
    """A graduate answers the whole questionnaire while the Bot API answers a share of
    sendMessage, editMessageText and answerCallbackQuery calls with 500, 502 or 503, or too
    late (after the bot's read timeout), having carried the call out or not. Every answer is
    stored once, every question reaches the graduate (those left pending through the
    prompts job, run after each step as if the graduate had waited), the bot stays up. A
    question is shown twice only where Telegram carried out a call the bot saw time out;
    a 5xx (not carried out) never duplicates anything."""
    h = impatient
    graduate, user = await h.consenting_graduate("nl")
    response = await h.open_survey(graduate, "mini")
    await h.send(user, "/survey", expect=2)

    faults: list[Fault] = []
    apologised: list[str] = []
    for step in NL_STEPS:
        told = apologies(h, user, "nl")
        fault = await take(h, user, step)
        if fault is not None:
            faults.append(fault)
        if apologies(h, user, "nl") > told:
            apologised.append(step.answer)
    assert showing(h, user, tr("nl", "Thank you! Your answers have been saved."))
    assert all(fault.hits >= 1 for fault in faults)  # each fault met the call it was for

    async with h.db.session() as session:
        stored = await session.get(SurveyResponse, response.id)
    assert stored is not None and stored.status == ResponseStatus.SUBMITTED.value
    assert await stored_answers(h.db, response.id) == [
        ("C0", "yes"),
        ("Q1", "working"),
        ("HOURS", 38),
        ("HOW", ["friends"]),
        ("SAT", 4),
        ("START", "2026-06-30"),
        ("NEXT", "2026-06"),
        ("KM", 2.5),
    ]

    # Every question reached the graduate; one twice: START, whose sendMessage Telegram
    # carried out after the bot had given up (the SAT step), so it stayed pending and the
    # prompts job sent it again. The answerCallbackQuery carried out late shows nothing
    # twice, and no 5xx duplicates anything.
    review = tr("nl", NL_REVIEW)
    shown = {
        q: sum(q == review or not m.content.startswith(review) for m in showing(h, user, q))
        for q in NL_QUESTIONS
    }
    assert all(n >= 1 for n in shown.values()), shown
    duplicated = {q: n - 1 for q, n in shown.items() if n > 1}
    assert duplicated == {"Wanneer ben je begonnen?": 1}
    assert still_running(h)
    # "Try again" only where trying again is needed: not after an answer that was stored
    # with its next question pending (typed again, it would answer that question). The
    # toggle of a multiple-choice answer is stored but moves nowhere: it cannot tell.
    assert apologised == ["Vrienden"]

    print(
        "figures: Bot API faults:",
        {
            "updates": len(NL_STEPS),
            "5xx_calls": sum(f.hits for f in faults if f.status is not None and f.delay == 0),
            "timeouts": sum(f.hits for f in faults if f.delay > 0),
            "timeouts_carried_out": sum(f.hits for f in faults if f.process),
            "apologies": len(apologised),
            "answers_lost": 0,
            "answers_stored_twice": 0,
            "questions_duplicated": sum(duplicated.values()),
        },
    )


async def test_invitations_under_bot_api_5xx_and_timeouts(impatient: Harness) -> None:
    """Invitations due for four graduates while the Bot API answers one sendMessage with
    503, lets one time out unsent and one time out after delivering it: the dispatcher
    puts those three back with a delay and sends them on a later tick. Each graduate gets
    the invitation once, except the one whose delivery Telegram carried out but the bot
    saw time out: twice (at least once, the documented window of bot/delivery.py). 429 and
    502 are covered by tests/test_waves.py (test_telegram_429_and_5xx_are_retried_later),
    a crash mid-dispatch by test_a_crash_between_claim_and_send_loses_and_duplicates_nothing
    and, for news, tests/test_news_delivery.py."""
    h = impatient
    school = await h.school()
    users = [(await h.consenting_graduate("en", school))[1] for _ in range(4)]
    # Planned when each chat was linked: nothing left for the planner.
    assert await plan_invitations(h.db, h.runtime.plans, now=h.clock.now()) == 0
    h.clock.set(local(date(2026, 8, 30), 10, 30))

    faults = [
        h.sandbox.faults.add("sendMessage", status=503),
        h.sandbox.faults.add(**timeout("sendMessage", carried_out=False)),
        h.sandbox.faults.add(**timeout("sendMessage", carried_out=True)),
    ]
    first = await dispatch_due(h.runtime, limiter=NO_LIMIT)
    assert (first.sent, first.retried, first.failed) == (1, 3, 0)
    assert [f.hits for f in faults] == [1, 1, 1]
    assert (await dispatch_due(h.runtime, limiter=NO_LIMIT)).claimed == 0  # not yet
    h.clock.set(h.clock.now() + timedelta(minutes=1))  # past the retry delay (30 s)
    second = await dispatch_due(h.runtime, limiter=NO_LIMIT)
    assert (second.sent, second.retried, second.failed) == (3, 0, 0)

    def invitations(user: SandboxUser) -> int:
        return sum(
            any(b.get("text") == START_BUTTON for b in m.buttons)
            for m in h.sandbox.bot_messages(h.token, user.id)
        )

    received = sorted(invitations(user) for user in users)
    assert received == [1, 1, 1, 2]
    async with h.db.session() as session:
        rows = (await session.exec(select(Invitation).where(Invitation.seq == 0))).all()
    assert sorted((r.status, r.attempts) for r in rows) == [("sent", 1)] + [("sent", 2)] * 3
    assert still_running(h)
    print(
        "figures: invitations under Bot API faults:",
        {
            "invitations": 4,
            "5xx_calls": 1,
            "timeouts": 2,
            "timeouts_carried_out": 1,
            "lost": 0,
            "duplicated": sum(received) - len(users),
        },
    )


# ---------------------------------------------------------------- a full disk under SQLite


@pytest.fixture
async def full_disk(
    sandbox: SandboxServer, sqlite_provider: SqliteProvider
) -> AsyncIterator[tuple[Harness, SqliteFull]]:
    """The bot on a SQLite file whose disk the test can fill, with the dashboard served."""
    url = await sqlite_provider.fresh_database()
    db = Database(url)
    disk = SqliteFull(db)
    settings = Settings(
        database_url=url, telegram_bot_token="", throttle_per_second=0, _env_file=None
    )
    h = mini(Harness(sandbox, db, settings))
    await h.start_bot()
    yield h, disk
    await h.stop_bot()
    await db.dispose()


async def fill_disk(h: Harness, disk: SqliteFull) -> int:
    """Fill the disk as far as the next update's write is concerned (see SqliteFull.fill):
    Telegram's next update ids jump above the filler rows (update ids are not contiguous
    on Telegram either)."""
    await idle(h)
    account = h.sandbox.bot(h.token)
    first = account.next_update_id
    account.next_update_id += 100_000
    return await disk.fill(first, 100_000)


async def ready(base_url: str) -> int:
    async with aiohttp.ClientSession() as client, client.get(f"{base_url}/readyz") as answer:
        return answer.status


async def test_full_disk_under_sqlite(
    full_disk: tuple[Harness, SqliteFull], caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite says "database or disk is full" (SQLITE_FULL, as on a full disk): a button
    press and a typed answer are each answered once by "try again" in the graduate's
    language, and nothing of them is written; /readyz still answers (reads work) and the
    bot stays up. Once there is room again, the same press and the same typed answer are
    stored once and the next question comes."""
    h, disk = full_disk
    base_url = await h.start_web()
    graduate, user = await h.consenting_graduate("nl")
    response = await h.open_survey(graduate, "mini")
    _welcome, c0 = await h.send(user, "/survey", expect=2)
    (q1,) = await h.press(user, "Ja", message=c0)
    sorry = tr("nl", SORRY)

    # Full: a button press.
    fillers = await fill_disk(h, disk)
    before = await snapshot(h.db, user.id, response.id)
    await h.press(user, "Werken", expect=0, message=q1)
    await eventually(lambda: h.callback_answers(user)[-1:] == [sorry])
    await idle(h)
    assert await ready(base_url) == 200
    assert await snapshot(h.db, user.id, response.id) == before
    await disk.make_room()
    (hours,) = await h.press(user, "Werken", message=q1)
    assert "Hoeveel uur per week werk je?" in hours.content

    # Full again: a typed answer.
    fillers += await fill_disk(h, disk)
    before = await snapshot(h.db, user.id, response.id)
    (apology,) = await h.send(user, "38")
    assert apology.text == sorry
    await idle(h)
    assert await ready(base_url) == 200
    assert await snapshot(h.db, user.id, response.id) == before
    await disk.make_room()
    (how,) = await h.send(user, "38")
    assert "Hoe heb je gezocht?" in how.content

    assert await stored_answers(h.db, response.id) == [
        ("C0", "yes"),
        ("Q1", "working"),
        ("HOURS", 38),
    ]
    full = [
        r
        for r in caplog.records
        if r.name == "bot.app" and r.exc_info and "database or disk is full" in str(r.exc_info[1])
    ]
    assert full  # the failures were SQLITE_FULL, nothing else
    told = apologies(h, user, "nl")
    assert told == 2
    assert still_running(h)
    print(
        "figures: full disk (SQLite):",
        {
            "filler_rows": fillers,
            "updates_while_full": 2,
            "apologies": told,
            "answers_lost": 0,
            "answers_stored_twice": 0,
        },
    )


async def test_an_update_whose_duplicate_check_fails_goes_no_further(harness: Harness) -> None:
    """The duplicate check of an update fails (here: its table is gone for a moment, a real
    database error) while the rest of the database works. The person is told once, in their
    language, to try again, and the update is not handled without the check: no reply to
    it, nothing recorded. Once the table is back, the same update (redelivered) is handled
    once."""
    user = harness.user("es")
    await harness.send(user, "/help")
    first = harness.sandbox.bot(harness.token).history[-1]["update_id"]

    async def recorded() -> bool:  # after the reply: the record comes last
        async with harness.db.session() as session:
            return await session.get(ProcessedUpdate, first) is not None

    await eventually(recorded)
    async with harness.db.session() as session:
        connection = await session.connection()
        await connection.execute(
            text("ALTER TABLE processed_update RENAME TO processed_update_away")
        )
    try:
        (apology,) = await harness.send(user, "/help")
        assert apology.content == tr(
            "es", "Sorry, something went wrong on our side. Please try again in a minute."
        )
        update_id = harness.sandbox.bot(harness.token).history[-1]["update_id"]
    finally:
        async with harness.db.session() as session:
            connection = await session.connection()
            await connection.execute(
                text("ALTER TABLE processed_update_away RENAME TO processed_update")
            )
    harness.sandbox.redeliver(harness.token, update_id)

    async def redelivered_recorded() -> bool:  # after its reply
        async with harness.db.session() as session:
            return await session.get(ProcessedUpdate, update_id) is not None

    await eventually(redelivered_recorded)
    texts = [m.content for m in harness.sandbox.bot_messages(harness.token, user.id)]
    assert texts == [texts[0], apology.content, texts[0]]  # /help, sorry, the copy's /help
