"""`gradtrack serve` killed (SIGKILL) while graduates answer in the web chat: every answer a
graduate saw acknowledged (the post's page came back) is stored, nobody is left without their
next question, and a question is shown twice only where its post was in flight at the kill.

The service runs as a process (SQLite) with a sandbox of the test's own as its Telegram (a
real token); eight graduates answer the tracking questionnaire concurrently over HTTP, as a
browser without scripts does (tests/webchat.py)."""

from __future__ import annotations

import asyncio
import itertools
import signal
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from sqlmodel import col, select

from bot.sandbox import RateLimits, SandboxServer
from conversations import engine
from conversations.registry import QuestionnaireRegistry
from conversations.rules import new_invite_token
from conversations.waves import DEFAULT_PLAN_FILE, load_plans
from storage.db import Database
from storage.demo import open_wave_graduation
from storage.migrate import upgrade
from storage.models import (
    Graduate,
    Institution,
    ProcessedUpdate,
    Programme,
    ResponseStatus,
    SurveyResponse,
)
from tests.harness import eventually
from tests.test_cli import _free_port, _wait_for_line, gradtrack
from tests.test_survey_tracking import policy
from tests.test_web_chat import WebWalk
from tests.webchat import Page, WebGraduate

PEOPLE = 8
LONG = 60.0


async def _seed(db: Database) -> list[str]:
    """A school and PEOPLE graduates for whom the tracking wave is open now; their tokens."""
    plans = load_plans(DEFAULT_PLAN_FILE)
    found = open_wave_graduation(plans.default, datetime.now(UTC), "Europe/Amsterdam")
    assert found is not None
    graduation, _wave = found
    tokens = [new_invite_token() for _ in range(PEOPLE)]
    async with db.session() as session:
        school = Institution(code="kill", name="Kill College", country="NL", default_language="nl")
        session.add(school)
        await session.flush()
        assert school.id is not None
        programme = Programme(institution_id=school.id, code="ICT4", name="Software")
        session.add(programme)
        await session.flush()
        assert programme.id is not None
        for i, token in enumerate(tokens):
            session.add(
                Graduate(
                    institution_id=school.id,
                    programme_id=programme.id,
                    student_ref=f"K{i}",
                    graduation_date=graduation,
                    birth_year=graduation.year - 20,
                    invite_token=token,
                )
            )
    return tokens


async def _current(db: Database, token: str) -> tuple[str, int] | None:
    """The open response's current question and id, for the graduate of `token`."""
    async with db.session() as session:
        row = (
            await session.exec(
                select(SurveyResponse.current, SurveyResponse.id)
                .join(Graduate, col(Graduate.id) == SurveyResponse.graduate_id)
                .where(
                    Graduate.invite_token == token,
                    SurveyResponse.status == ResponseStatus.OPEN.value,
                )
            )
        ).first()
    return (row[0], int(row[1] or 0)) if row else None


async def test_sigkill_loses_no_acknowledged_web_answer(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'web.sqlite3'}"
    await upgrade(url)
    db = Database(url)
    tokens = await _seed(db)
    q = QuestionnaireRegistry().deployed("tracking")
    sandbox = SandboxServer(rate_limits=RateLimits(enabled=False), host="127.0.0.1", port=0)
    await sandbox.start()
    token = sandbox.create_bot(username="gradtrack_kill_bot", first_name="GradTrack")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": url,
        "TELEGRAM_BOT_TOKEN": token,
        "TELEGRAM_API_BASE_URL": f"{sandbox.url}/bot",
        "PUBLIC_URL": base,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SECRET_KEY": "test-secret-key-of-at-least-32-characters",
        "SANDBOX_PORT": str(_free_port()),
        "THROTTLE_PER_SECOND": "0",
    }
    people = [WebGraduate(base, t, "en") for t in tokens]
    walks = [WebWalk(g, q, "en") for g in people]
    acknowledged: set[int] = set()  # event ids whose page came back
    answered = 0
    choose = policy(q, "employed")

    async def answer_on(g: WebGraduate, walk: WebWalk) -> None:
        nonlocal answered
        page = await g.start()
        page = await g.press("English")
        for _ in range(3):
            page = await g.press("Yes")
        page = await g.press("Start now")  # the open wave, offered when onboarding ends
        while engine.next_question(q, walk.answers, walk.last) is not None:
            event = int(page.event)
            page = await walk.run(page, choose, limit=1)
            if page.status != 200:
                return
            acknowledged.add(-event)
            answered += 1

    try:
        async with gradtrack("serve", env, exit_code=-signal.SIGKILL) as (process, lines):
            await _wait_for_line(lines, f"gradtrack serving on 127.0.0.1:{port}")
            tasks = [
                asyncio.create_task(answer_on(g, w)) for g, w in zip(people, walks, strict=True)
            ]

            async def enough() -> bool:
                return answered >= 3 * PEOPLE

            await eventually(enough, timeout=LONG)
            process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(process.wait(), LONG)
            results = await asyncio.gather(*tasks, return_exceptions=True)
        broken = [r for r in results if isinstance(r, BaseException)]
        assert all(isinstance(r, aiohttp.ClientError | AssertionError) for r in broken), broken
        async with db.session() as session:
            processed = set(
                (
                    await session.exec(
                        select(ProcessedUpdate.update_id).where(col(ProcessedUpdate.update_id) < 0)
                    )
                ).all()
            )
        # Every answer whose page came back was stored before its page was sent.
        assert acknowledged and acknowledged <= processed, sorted(acknowledged - processed)

        # The next process: each graduate opens the link and finds their next question,
        # shown once (twice at most where a post was in flight at the kill), and goes on.
        doubled = 0
        async with gradtrack("serve", env) as (_process, more):
            await _wait_for_line(more, f"gradtrack serving on 127.0.0.1:{port}")
            for g, walk in zip(people, walks, strict=True):
                page: Page = await g.open()
                current = await _current(db, g.url.rsplit("/", 1)[1])
                assert current is not None
                name, _response = current
                question = q.question(name)
                shown = [m.text for m in page.messages if m.kind == "bot"]
                # The last thing the bot said is that question (its label is in it).
                assert str(question.labels["en"]) in shown[-1], (name, shown[-2:])
                doubled += sum(1 for a, b in itertools.pairwise(shown) if a == b)
                # Go on from there: the walk's answers are the stored ones.
                walk.answers = await _stored(db, current[1])
                walk.last = None
                page = await walk.run(page, choose, limit=2, at=question.name)
                assert page.status == 200
        assert doubled <= PEOPLE, doubled
        print(
            f"\nweb chat SIGKILL: {len(acknowledged)} acknowledged answers, all stored; "
            f"{doubled} question(s) shown twice after the restart"
        )
    finally:
        for g in people:
            await g.close()
        await sandbox.stop()
        await db.dispose()


async def _stored(db: Database, response_id: int) -> dict[str, object]:
    from storage.models import Answer

    async with db.session() as session:
        rows = (await session.exec(select(Answer).where(Answer.response_id == response_id))).all()
    return {row.question: row.value for row in rows}
