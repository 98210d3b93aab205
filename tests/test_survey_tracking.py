"""Every route of the real tracking questionnaire, walked through the sandbox in every language.

All routes run in all five languages on SQLite; on PostgreSQL every route runs once, the
languages taking turns, so that both stores see every route and every language.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlmodel import select

from bot.i18n import LANGUAGES
from bot.sandbox import SandboxServer
from bot.settings import Settings
from conversations import engine
from conversations.questionnaire import Question
from conversations.registry import QuestionnaireRegistry
from storage.db import Database
from storage.models import Answer, ResponseStatus, SurveyResponse
from tests.conftest import backend_provider
from tests.databases import PostgresProvider, SqliteProvider
from tests.harness import Harness, tr
from tests.survey_walk import Walk, default_answer

ROUTES = [
    "declined",
    "employed",
    "self_employed",
    "studying",
    "working_and_studying",
    "unemployed_looking",
    "not_available",
    "other",
]
#: The blocks of questions each route asks (the letters of the question names).
BLOCKS = {
    "declined": {"C"},
    "employed": {"C", "Q", "E", "A"},
    "self_employed": {"C", "Q", "E", "SE", "A"},
    "studying": {"C", "Q", "S", "A"},
    "working_and_studying": {"C", "Q", "E", "S", "A"},
    "unemployed_looking": {"C", "Q", "U", "A"},
    "not_available": {"C", "Q", "O", "A"},
    "other": {"C", "Q", "O", "A"},
}
CASES = [("sqlite", route, lang) for route in ROUTES for lang in LANGUAGES] + [
    ("postgresql", route, LANGUAGES[i % len(LANGUAGES)]) for i, route in enumerate(ROUTES)
]


@pytest.fixture
async def tracking_harness(
    request: pytest.FixtureRequest,
    sandbox: SandboxServer,
    sqlite_provider: SqliteProvider,
    postgres_provider: PostgresProvider | str,
) -> AsyncIterator[Harness]:
    provider = backend_provider(request, sqlite_provider, postgres_provider)
    url = await provider.fresh_database()
    db = Database(url)
    settings = Settings(  # flood control off: the walk answers at machine speed
        database_url=url, telegram_bot_token="", throttle_per_second=0, _env_file=None
    )
    harness = Harness(sandbox, db, settings)
    harness.questionnaires = QuestionnaireRegistry()
    await harness.start_bot()
    yield harness
    await harness.stop_bot()
    await db.dispose()
    if isinstance(provider, PostgresProvider):
        await provider.drop(url)


def policy(q: Any, route: str) -> Any:
    def choose(question: Question) -> Any:
        if question.name == "C0":
            return "no" if route == "declined" else "yes"
        if question.name == "Q1":
            return route
        if question.name == "E4b":
            # The occupation (ISCO-08 major group): a long label from the middle of the list.
            return "isco5"
        if not question.required:
            return None  # skip the optional questions
        if question.type == "select_multiple":
            # One choice: lists may hold an exclusive "none of these".
            return [q.choices_for(question)[0].name]
        return default_answer(q, question)

    return choose


@pytest.mark.parametrize(
    ("tracking_harness", "route", "lang"),
    CASES,
    indirect=["tracking_harness"],
    ids=[f"{b}-{r}-{lang}" for b, r, lang in CASES],
)
async def test_tracking_route(tracking_harness: Harness, route: str, lang: str) -> None:
    h = tracking_harness
    q = h.questionnaires.deployed("tracking") if h.questionnaires else None
    assert q is not None
    graduate, user = await h.consenting_graduate(lang)
    response = await h.open_survey(graduate, "tracking")
    _welcome, first = await h.send(user, "/survey", expect=2)

    walk = Walk(h, user, q, lang)
    last = await walk.run(first, policy(q, route))
    if route == "declined":
        assert last.content == tr(lang, "Thank you! Your answers have been saved.")
    else:
        assert last.content.startswith(
            tr(lang, "Please check your answers. Tap a number to change an answer, or send them.")
        )
        (thanks,) = await h.press(user, tr(lang, "✅ Send my answers"), message=last)
        assert thanks.content == tr(lang, "Thank you! Your answers have been saved.")

    async with h.db.session() as session:
        stored = await session.get(SurveyResponse, response.id)
        rows = (await session.exec(select(Answer).where(Answer.response_id == response.id))).all()
    assert stored is not None and stored.status == ResponseStatus.SUBMITTED.value
    # A decline is no response: the statistics count it apart from complete responses.
    assert stored.declined is (route == "declined")
    assert stored.complete is (route != "declined")
    assert (stored.completed_at is not None) is stored.complete
    answers = {row.question: row.value for row in rows}
    assert answers == engine.relevant_answers(q, walk.answers)
    # Routing: the blocks asked are exactly those the route leads to.
    blocks = {re.match(r"[A-Z]+", name).group() for name in walk.asked}  # type: ignore[union-attr]
    expected = BLOCKS[route]
    assert blocks == expected, walk.asked
    # A first wave (no earlier response): none of the later waves' questions, nothing carried.
    assert not {"S0", "E0", "E0a", "E13"} & set(walk.asked), walk.asked
    assert all(row.carried_from is None for row in rows)
    # The self-employed are not asked about a contract or how they found "this job".
    # Everyone in block E says which ISCO-08 major group their work is in (EQAVET 6a).
    assert ("E4b" in walk.asked) is ("E" in expected), walk.asked
    assert answers.get("E4b") == ("isco5" if "E" in expected else None)
    employee_only = {"E2", "E10"} & set(walk.asked)
    assert employee_only == (
        set() if route == "self_employed" else {"E2", "E10"} if "E" in expected else set()
    ), walk.asked
