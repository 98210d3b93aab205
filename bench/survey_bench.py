"""Benchmark: what the tracking questionnaire costs a graduate, and what it costs us.

1. Taps and messages: an employed graduate completes the real tracking questionnaire through
   the sandbox (the bot polling over HTTP, SQLite), answering every required question; we count
   their taps and typed messages and the bot's messages and edits, and time each answer from
   the tap to the next question on screen. Then the later waves: the same graduate answers m6
   in the same job (what cannot have changed is carried), and a second graduate answers m6
   with a new employer (the job's details are asked again).
2. The engine's time per answer: the same answers replayed through the pure engine (choice or
   typed-answer check, constraint, next question, progress, completeness), many times.

Both run in one process, side by side, so the ratio of the engine's time to the whole
round trip is meaningful on a noisy machine.

    .venv/bin/python bench/survey_bench.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import select

from bot.sandbox import RateLimits, SandboxServer
from bot.settings import Settings
from conversations import engine
from conversations.questionnaire import Question, Questionnaire
from conversations.registry import QuestionnaireRegistry
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Answer, SurveyResponse
from tests.harness import Harness, tr
from tests.survey_walk import Walk, default_answer


def employed(q: Questionnaire, job: str = "same") -> Any:
    """Answers of an employed graduate; in a later wave `job` is their answer to E0 (is it
    still the same job?)."""

    def choose(question: Question) -> Any:
        if question.name == "C0":
            return "yes"
        if question.name == "Q1":
            return "employed"
        if question.name == "E0":
            return job
        if not question.required:
            return None
        if question.type == "select_multiple":
            return [q.choices_for(question)[0].name]
        return default_answer(q, question)

    return choose


async def earlier_of(h: Harness, response_id: int | None) -> dict[str, Any]:
    """A sent response's answers as the next wave sees them (with ``_month``)."""
    async with h.db.session() as session:
        response = await session.get(SurveyResponse, response_id)
        assert response is not None and response.completed_at is not None
        rows = (await session.exec(select(Answer).where(Answer.response_id == response_id))).all()
    month = response.completed_at.strftime("%Y-%m")
    return {row.question: row.value for row in rows} | {"_month": month}


async def walk_once(
    h: Harness,
    sandbox: SandboxServer,
    user: Any,
    q: Questionnaire,
    choose: Any,
    earlier: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Answer the open response to the end and send it; what it cost the graduate."""
    before = len(sandbox.transcript(h.token, user.id))
    _welcome, first = await h.send(user, "/survey", expect=2)
    walk = Walk(h, user, q, "en", earlier=earlier or {})
    review = await walk.run(first, choose)
    await h.press(user, tr("en", "✅ Send my answers"), message=review)
    entries = sandbox.transcript(h.token, user.id)[before:]
    return {
        "questions": len(walk.asked),
        "taps": sum(e.kind == "button_press" for e in entries),
        "typed": sum(e.kind == "message" and e.sender == "user" for e in entries) - 1,
        "bot_messages": sum(e.kind == "message" and e.sender == "bot" for e in entries),
        "edited": sum(e.kind == "message" and e.sender == "bot" and e.edited for e in entries),
        "answer_ms": [t * 1000 for t in walk.timings],
        "answers": walk.answers,
    }


async def walk_in_chat() -> dict[str, dict[str, Any]]:
    """The first wave, then m6 in the same job and (another graduate) with a new employer."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
        await upgrade(url)
        db = Database(url)
        sandbox = SandboxServer(rate_limits=RateLimits(enabled=False))
        await sandbox.start()
        # Flood control off, as in the tests: the walk taps faster than any person (more
        # than 3 a second after the burst of 20), and it measures the round trip, not that.
        settings = Settings(
            database_url=url, telegram_bot_token="", throttle_per_second=0, _env_file=None
        )
        h = Harness(sandbox, db, settings)
        h.questionnaires = QuestionnaireRegistry()
        await h.start_bot()
        walks: dict[str, dict[str, Any]] = {}
        try:
            q = h.questionnaires.deployed("tracking")
            school = await h.school()
            for job in ("same", "new_employer"):
                graduate, user = await h.consenting_graduate("en", school)
                m2 = await h.open_survey(graduate, "tracking", wave="m2")
                first = await walk_once(h, sandbox, user, q, employed(q))
                walks.setdefault("first wave", first)
                earlier = await earlier_of(h, m2.id)
                await h.open_survey(graduate, "tracking", wave="m6")
                later = await walk_once(h, sandbox, user, q, employed(q, job), earlier)
                walks["m6, same job" if job == "same" else "m6, new employer"] = later
        finally:
            await h.stop_bot()
            await sandbox.stop()
            await db.dispose()
    return walks


def engine_per_answer(q: Questionnaire, answers: dict[str, Any], repeat: int) -> float:
    """Seconds of engine work per answer, replaying the walk `repeat` times."""
    order = [question for question in q.questions if question.name in answers]
    started = time.perf_counter()
    for _ in range(repeat):
        given: dict[str, Any] = {}
        for question in order:
            value = answers[question.name]
            if question.type == "select_one":
                value = engine.check_choice(q, question, value)
            elif question.type == "scale":
                value = engine.check_choice(q, question, str(value))
            elif question.type == "select_multiple":
                chosen: list[str] = []
                for code in value:
                    chosen = engine.toggle_choice(q, question, chosen, code)
                value = chosen
            else:
                value = engine.parse_typed(question, str(value))
            assert engine.check_constraint(q, question, value, given)
            given[question.name] = value
            engine.next_question(q, given, question.name)
            engine.progress(q, given, question.name)
            engine.is_complete(q, engine.relevant_answers(q, given))
    return (time.perf_counter() - started) / (repeat * len(order))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    walks = asyncio.run(walk_in_chat())
    chat = walks["first wave"]
    q = QuestionnaireRegistry().deployed("tracking")
    per_answer = engine_per_answer(q, chat["answers"], args.repeat)
    median_ms = statistics.median(chat["answer_ms"])
    python = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {python}")
    print("employed graduate, tracking questionnaire (en), optional questions skipped:")
    print(f"  questions answered:      {chat['questions']}")
    print(f"  taps (buttons):          {chat['taps']}")
    print(f"  typed messages:          {chat['typed']}")
    print(f"  bot messages:            {chat['bot_messages']} (+ {chat['edited']} edited in place)")
    print(
        f"  tap to next question:    median {median_ms:.1f} ms, "
        f"max {max(chat['answer_ms']):.1f} ms (sandbox over loopback, SQLite)"
    )
    print(f"  engine per answer:       {per_answer * 1e6:.1f} µs ({args.repeat} replays)")
    print(f"  engine share of a round trip: {per_answer * 1000 / median_ms:.2%}")
    for name, walk in walks.items():
        if name == "first wave":
            continue
        print(f"employed graduate, {name}, optional questions skipped:")
        print(f"  questions answered:      {walk['questions']}")
        print(f"  taps (buttons):          {walk['taps']}")
        print(f"  typed messages:          {walk['typed']}")


if __name__ == "__main__":
    main()
