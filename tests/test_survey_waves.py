"""Later waves build on earlier ones (issue 17): a graduate answers m2 in the sandbox, then m6
shows the earlier job and month in their language, keeps what cannot have changed without
asking, and stores those answers as carried answers of m6, which the indicators count."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import select

from bot.sandbox.state import SandboxUser, TranscriptEntry
from conversations import engine, rights, survey
from conversations.indicators import load_specs
from conversations.questionnaire import Question, Questionnaire
from storage import stats
from storage.models import Answer, Graduate, ResponseStatus, SurveyResponse
from storage.queries import get_chat_state, web_chat_id
from storage.stats import Scope
from tests.harness import Harness, tr
from tests.survey_walk import Walk, default_answer
from tests.test_survey_tracking import policy, tracking_harness
from tests.test_web_chat import WebWalk, newest_bot, onboard

__all__ = ["tracking_harness"]

#: When the m2 response was completed: the month the m6 questions name.
M2_DONE = datetime(2026, 8, 20, 9, 0, tzinfo=UTC)
#: The questions E1 and the job details: carried into m6 for the same job, without asking.
SAME_JOB_CARRIED = {"E1", "E4", "E4b", "E5", "E6", "E9", "E10", "E12"}
#: Asked once and carried into later waves: the judgement of the programme, the help offered.
ONCE_CARRIED = {"A2", "A3", "A7"}
#: Asked again in m6 for the same job: what may change.
SAME_JOB_ASKED = ["C0", "Q1", "E0", "E0a", "E2", "E3", "E13", "E7", "E11"]
#: The later-wave questions, never asked in a first wave.
LATER_ONLY = {"S0", "E0", "E0a", "E13", "U0"}


def chooser(q: Questionnaire, route: str, **fixed: Any) -> Any:
    """The tracking walk's policy, with some answers fixed (`E0="same"`)."""
    base = policy(q, route)

    def choose(question: Question) -> Any:
        if question.name in fixed:
            return fixed[question.name]
        return base(question)

    return choose


async def open_wave(h: Harness, graduate: Graduate, wave: str) -> SurveyResponse:
    """Open the wave's response on the tracking questionnaire (as its invitation does)."""
    async with h.db.session() as session:
        stored = await session.get(Graduate, graduate.id)
        assert stored is not None and stored.chat_id is not None
        state = await get_chat_state(session, stored.chat_id)
        return await survey.begin(h.runtime, session, stored, "tracking", state, wave=wave)


async def send_review(h: Harness, user: SandboxUser, lang: str, review: TranscriptEntry) -> None:
    assert review.content.startswith(
        tr(lang, "Please check your answers. Tap a number to change an answer, or send them.")
    ), review.content[:200]
    (thanks,) = await h.press(user, tr(lang, "✅ Send my answers"), message=review)
    assert thanks.content == tr(lang, "Thank you! Your answers have been saved.")


async def answer_m2(
    h: Harness, graduate: Graduate, user: SandboxUser, q: Questionnaire, lang: str, route: str
) -> tuple[SurveyResponse, dict[str, Any]]:
    """The graduate answers and sends m2 (completed in August); returns the response and its
    answers as m6 sees them (with ``_month``)."""
    response = await open_wave(h, graduate, "m2")
    _welcome, first = await h.send(user, "/survey", expect=2)
    walk = Walk(h, user, q, lang)
    await send_review(h, user, lang, await walk.run(first, policy(q, route)))
    assert not LATER_ONLY & set(walk.asked), walk.asked
    async with h.db.session() as session:
        stored = await session.get(SurveyResponse, response.id)
        assert stored is not None and stored.status == ResponseStatus.SUBMITTED.value
        stored.completed_at = stored.submitted_at = M2_DONE
        session.add(stored)
        rows = (await session.exec(select(Answer).where(Answer.response_id == response.id))).all()
    assert all(row.carried_from is None for row in rows)
    return stored, {row.question: row.value for row in rows} | {"_month": "2026-08"}


async def walk_m6(
    h: Harness,
    graduate: Graduate,
    user: SandboxUser,
    q: Questionnaire,
    lang: str,
    earlier: dict[str, Any],
    choose: Any,
) -> tuple[SurveyResponse, Walk, dict[str, str], TranscriptEntry]:
    """m6 opened and answered up to the review with `choose`: the response, the walk, each
    question's message as it was shown (by name) and the review."""
    m6 = await open_wave(h, graduate, "m6")
    _welcome, first = await h.send(user, "/survey", expect=2)
    walk = Walk(h, user, q, lang, earlier=earlier)
    shown: dict[str, str] = {}

    def remember(question: Question) -> Any:
        shown[question.name] = h.last_keyboard_message(user).content
        return choose(question)

    review = await walk.run(first, remember)
    return m6, walk, shown, review


async def stored_answers(h: Harness, response_id: int | None) -> dict[str, Answer]:
    async with h.db.session() as session:
        rows = (await session.exec(select(Answer).where(Answer.response_id == response_id))).all()
    return {row.question: row for row in rows}


@pytest.mark.parametrize("tracking_harness", ["sqlite", "postgresql"], indirect=True)
async def test_m2_answers_are_shown_and_carried_into_m6(tracking_harness: Harness) -> None:
    h = tracking_harness
    assert h.questionnaires is not None
    q = h.questionnaires.deployed("tracking")
    lang = "nl"
    graduate, user = await h.consenting_graduate(lang)
    m2, earlier = await answer_m2(h, graduate, user, q, lang, "employed")
    assert earlier["E4"] == default_answer(q, q.question("E4")) == "Kok in een restaurant"

    m6, walk, shown, review = await walk_m6(
        h, graduate, user, q, lang, earlier, chooser(q, "employed", E0="same")
    )
    # The earlier job and the month it was given, in Dutch, in the question itself.
    assert (
        "In augustus werkte je als: Kok in een restaurant. Is dat nog steeds je baan?"
        in (shown["E0"])
    )
    assert "Wat is er sinds augustus veranderd?" in shown["E0a"]
    # Not asked again: the first job and the details of the same job. Asked: what may change.
    assert walk.asked[: len(SAME_JOB_ASKED)] == SAME_JOB_ASKED, walk.asked
    assert not SAME_JOB_CARRIED & set(walk.asked), walk.asked
    # The review shows the carried answers, marked, without a button to change them.
    carried_note = tr(lang, "as in {month}").format(month="augustus")
    assert f"→ Kok in een restaurant  ↩ {carried_note}" in review.content
    numbers = {
        int(match.group(1)): match.group(2)
        for match in re.finditer(r"^(\d+)\. (.*)$", review.content, re.MULTILINE)
    }
    job_title = next(n for n, text in numbers.items() if text.startswith("Wat is je functie"))
    edit_buttons = {str(b.get("text")) for b in review.buttons}
    assert f"✏️ {job_title}" not in edit_buttons
    assert "✏️ 1" in edit_buttons
    await send_review(h, user, lang, review)

    rows = await stored_answers(h, m6.id)
    carried = {name for name, row in rows.items() if row.carried_from is not None}
    assert carried == SAME_JOB_CARRIED | ONCE_CARRIED
    for name in SAME_JOB_CARRIED:
        assert rows[name].carried_from == m2.id and rows[name].value == earlier[name], name
    assert rows["E0"].value == "same" and rows["E0"].carried_from is None
    expected = engine.relevant_answers(q, walk.answers, earlier)
    assert {name: row.value for name, row in rows.items()} == expected
    async with h.db.session() as session:
        stored = await session.get(SurveyResponse, m6.id)
        assert stored is not None and stored.complete  # E1 and E6 are core: carried counts
        # The indicators of m6 count the carried E6 (6a) of a completed m6 response.
        outcomes = await stats.outcomes(session, Scope(), load_specs()["tracking"].questions)
        by_wave = {row.wave: row for row in outcomes}
        assert by_wave["m6"].related == earlier["E6"] and by_wave["m6"].count == 1
        assert by_wave["m6"].activity == "employed"
        # The drop-off per question counts the questions asked, not the carried ones.
        asked = {
            row.question: row.answered
            for row in await stats.question_counts(session, Scope(), "m6")
        }
        assert asked["E0"] == 1 and asked["E7"] == 1
        assert not (SAME_JOB_CARRIED | ONCE_CARRIED) & set(asked)
        # The export marks them; /mydata says which wave they come from.
        (row,) = [r async for r in stats.iter_responses(session, Scope(), "tracking", "m6")]
        assert (
            set(row.carried) == SAME_JOB_CARRIED | ONCE_CARRIED
            and row.answers["E4"] == earlier["E4"]
        )
        fresh = await session.get(Graduate, graduate.id)
        assert fresh is not None
        data = await rights.export_data(h.runtime, session, fresh, lang)
    (mine,) = [r for r in data["survey_responses"] if r["wave"] == "m6"]
    marks = {a["question"]: a["carried_from_wave"] for a in mine["answers"]}
    assert {name for name, wave in marks.items() if wave} == SAME_JOB_CARRIED | ONCE_CARRIED
    assert {marks[name] for name in SAME_JOB_CARRIED} == {"m2"}
    assert marks["E0"] is None


@pytest.mark.parametrize("tracking_harness", ["sqlite"], indirect=True)
async def test_a_new_job_is_asked_again_and_going_back_drops_the_carried(
    tracking_harness: Harness,
) -> None:
    """ "Same job", then Back and "new employer": the job details are asked again (the first
    job stays carried) and no answer of the same job is left carried."""
    h = tracking_harness
    assert h.questionnaires is not None
    q = h.questionnaires.deployed("tracking")
    lang = "en"
    graduate, user = await h.consenting_graduate(lang)
    m2, earlier = await answer_m2(h, graduate, user, q, lang, "employed")

    m6 = await open_wave(h, graduate, "m6")
    _welcome, first = await h.send(user, "/survey", expect=2)
    walk = Walk(h, user, q, lang, earlier=earlier)
    await walk.answer(first, q.question("C0"), "yes")
    message = await walk.next_message()
    await walk.answer(message, q.question("Q1"), "employed")
    e0 = await walk.next_message()
    assert "In August you were working as: Kok in een restaurant. Is that still your job?" in (
        e0.content
    )
    await walk.answer(e0, q.question("E0"), "same")
    e0a = await walk.next_message()
    assert "What has changed since August?" in e0a.content
    # Saying it is the same job stored the carried answers already (an unsent response counts
    # once its wave closes).
    so_far = await stored_answers(h, m6.id)
    assert {name for name, row in so_far.items() if row.carried_from} == (
        SAME_JOB_CARRIED | ONCE_CARRIED
    )
    await h.press(user, tr(lang, "◀ Back"), expect=0, message=e0a)
    again = await walk.next_message()
    assert "Is that still your job?" in again.content
    choose = chooser(q, "employed", E0="new_employer", E4="Chef at a hotel")
    review = await walk.run(again, choose, start="E0")
    asked = set(walk.asked)
    assert {"E4", "E5", "E6", "E9", "E10", "E12"} <= asked
    assert "E1" not in asked and "E0a" not in asked
    await send_review(h, user, lang, review)

    rows = await stored_answers(h, m6.id)
    assert {name for name, row in rows.items() if row.carried_from} == {"E1"} | ONCE_CARRIED
    assert rows["E1"].carried_from == m2.id
    assert rows["E4"].value == "Chef at a hotel"
    assert "E0a" not in rows


@pytest.mark.parametrize("tracking_harness", ["sqlite"], indirect=True)
async def test_still_in_the_same_course_carries_it(tracking_harness: Harness) -> None:
    """Studying at m2 and still in that course at m6: asked about it by name (in Spanish),
    its level, field, mode and reasons kept."""
    h = tracking_harness
    assert h.questionnaires is not None
    q = h.questionnaires.deployed("tracking")
    lang = "es"
    graduate, user = await h.consenting_graduate(lang)
    m2, earlier = await answer_m2(h, graduate, user, q, lang, "studying")
    # The harness's school is Dutch: the course is named as a Dutch school names it.
    dutch = q.for_school("NL")
    course = dutch.choice(dutch.question("S1"), earlier["S1"])
    assert course is not None

    m6, walk, shown, review = await walk_m6(
        h, graduate, user, q, lang, earlier, chooser(q, "studying", S0="still")
    )
    assert f"En agosto estabas estudiando: {course.label('es')}. ¿Sigues con ello?" in shown["S0"]
    assert not {"S1", "S2", "S3", "S4"} & set(walk.asked)
    assert "S5" in walk.asked
    await send_review(h, user, lang, review)
    rows = await stored_answers(h, m6.id)
    assert {name for name, row in rows.items() if row.carried_from == m2.id} == {
        *("S1", "S2", "S3", "S4"),
        *ONCE_CARRIED,
    }


@pytest.mark.parametrize("tracking_harness", ["sqlite"], indirect=True)
async def test_only_a_sent_earlier_response_is_built_on(tracking_harness: Harness) -> None:
    """Only a sent, not declined, earlier response of the same questionnaire is built on: a
    graduate whose m2 is still open (or declined) starts m6 as a first wave."""
    h = tracking_harness
    graduate, _user = await h.consenting_graduate("en")
    m2 = await open_wave(h, graduate, "m2")
    async with h.db.session() as session:
        session.add(Answer(response_id=m2.id or 0, question="E4", value="Cook"))
    m6 = await open_wave(h, graduate, "m6")
    async with h.db.session() as session:
        assert await survey.earlier_response(session, m6) == (None, {})
        declined = await session.get(SurveyResponse, m2.id)
        assert declined is not None
        declined.status, declined.declined = ResponseStatus.SUBMITTED.value, True
        session.add(declined)
    async with h.db.session() as session:
        assert await survey.earlier_response(session, m6) == (None, {})
        sent = await session.get(SurveyResponse, m2.id)
        assert sent is not None
        sent.declined, sent.completed_at = False, M2_DONE
        session.add(sent)
    async with h.db.session() as session:
        assert await survey.earlier_response(session, m6) == (
            m2.id,
            {"E4": "Cook", "_month": "2026-08"},
        )
        # m2 has no earlier response: m6 is not m2's.
        assert await survey.earlier_response(session, m2) == (None, {})


@pytest.mark.parametrize("tracking_harness", ["sqlite"], indirect=True)
async def test_the_web_chat_shows_and_carries_the_same(tracking_harness: Harness) -> None:
    """m2 and m6 in the web chat (Italian): the same question with the earlier job and month,
    the same carried answers."""
    h = tracking_harness
    assert h.questionnaires is not None
    q = h.questionnaires.deployed("tracking")
    lang = "it"
    base = await h.start_web()
    graduate, g, _page = await onboard(h, base, lang)

    async def open_web_wave(wave: str) -> SurveyResponse:
        assert graduate.id is not None
        async with h.db.session() as session:
            stored = await session.get(Graduate, graduate.id)
            assert stored is not None
            state = await get_chat_state(session, web_chat_id(graduate.id))
            return await survey.begin(h.runtime, session, stored, "tracking", state, wave=wave)

    try:
        m2 = await open_web_wave("m2")
        page = await g.command("survey")
        page = await WebWalk(g, q, lang).run(page, policy(q, "employed"))
        page = await g.press(tr(lang, "✅ Send my answers"))
        async with h.db.session() as session:
            stored = await session.get(SurveyResponse, m2.id)
            assert stored is not None and stored.status == ResponseStatus.SUBMITTED.value
            stored.completed_at = M2_DONE
            session.add(stored)
        earlier = {name: row.value for name, row in (await stored_answers(h, m2.id)).items()}
        earlier["_month"] = "2026-08"

        m6 = await open_web_wave("m6")
        page = await g.command("survey")
        walk = WebWalk(g, q, lang, earlier)
        page = await walk.run(page, chooser(q, "employed"), limit=2)
        question = newest_bot(page).text
        assert "In agosto lavoravi come: Kok in een restaurant. È ancora il tuo lavoro?" in question
        page = await walk.run(page, chooser(q, "employed", E0="same"))
        review = newest_bot(page).text
        assert "Kok in een restaurant  ↩ " + tr(lang, "as in {month}").format(month="agosto") in (
            review
        )
        page = await g.press(tr(lang, "✅ Send my answers"))
        assert newest_bot(page).text == tr(lang, "Thank you! Your answers have been saved.")
    finally:
        await g.close()
    assert not SAME_JOB_CARRIED & set(walk.asked), walk.asked
    rows = await stored_answers(h, m6.id)
    assert {
        name for name, row in rows.items() if row.carried_from == m2.id
    } == SAME_JOB_CARRIED | ONCE_CARRIED
