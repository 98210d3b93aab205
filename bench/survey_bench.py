"""Benchmark: what the tracking questionnaire costs a graduate, and what it costs us.

1. Taps and messages: an employed graduate completes the real tracking questionnaire through
   the sandbox (the bot polling over HTTP, SQLite), answering every required question; we count
   their taps and typed messages and the bot's messages and edits, and time each answer from
   the tap to the next question on screen.
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

from bot.sandbox import RateLimits, SandboxServer
from bot.settings import Settings
from conversations import engine
from conversations.questionnaire import Question, Questionnaire
from conversations.registry import QuestionnaireRegistry
from storage.db import Database
from storage.migrate import upgrade
from tests.harness import Harness, tr
from tests.survey_walk import Walk, default_answer


def employed(q: Questionnaire) -> Any:
    def choose(question: Question) -> Any:
        if question.name == "C0":
            return "yes"
        if question.name == "Q1":
            return "employed"
        if not question.required:
            return None
        if question.type == "select_multiple":
            return [q.choices_for(question)[0].name]
        return default_answer(q, question)

    return choose


async def walk_in_chat() -> dict[str, Any]:
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
        try:
            graduate, user = await h.consenting_graduate("en")
            await h.open_survey(graduate, "tracking")
            before = len(sandbox.transcript(h.token, user.id))
            _welcome, first = await h.send(user, "/survey", expect=2)
            q = h.questionnaires.deployed("tracking")
            walk = Walk(h, user, q, "en")
            review = await walk.run(first, employed(q))
            await h.press(user, tr("en", "✅ Send my answers"), message=review)
            entries = sandbox.transcript(h.token, user.id)[before:]
        finally:
            await h.stop_bot()
            await sandbox.stop()
            await db.dispose()
    return {
        "questions": len(walk.asked),
        "taps": sum(e.kind == "button_press" for e in entries),
        "typed": sum(e.kind == "message" and e.sender == "user" for e in entries) - 1,
        "bot_messages": sum(e.kind == "message" and e.sender == "bot" for e in entries),
        "edited": sum(e.kind == "message" and e.sender == "bot" and e.edited for e in entries),
        "answer_ms": [t * 1000 for t in walk.timings],
        "answers": walk.answers,
    }


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
    chat = asyncio.run(walk_in_chat())
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


if __name__ == "__main__":
    main()
