"""The questionnaire as a chat, through the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from conversations.registry import QuestionnaireRegistry, VersionConflictError
from conversations.waves import parse_plans
from storage.db import Database
from storage.models import Answer, QuestionnaireDefinition, ResponseStatus, SurveyResponse
from tests.harness import Harness, eventually, tr

CHAT_DIR = Path(__file__).parent / "data" / "chat"
MINI_PLANS = parse_plans(
    """
default:
  waves:
    - {name: m2, questionnaire: mini, consent: survey, opens: 2m, closes: 4m,
       reminders: {count: 2, every: 2w}}
""",
    questionnaires={"mini"},
)


@pytest.fixture
async def mini(harness: Harness) -> Harness:
    """The harness with the small all-types questionnaire deployed."""
    harness.questionnaires = QuestionnaireRegistry(CHAT_DIR)
    harness.plans = MINI_PLANS
    await harness.restart_bot()
    return harness


async def _answers(h: Harness, response_id: int | None) -> dict[str, Any]:
    async with h.db.session() as session:
        rows = await session.exec(select(Answer).where(Answer.response_id == response_id))
        return {row.question: row.value for row in rows.all()}


async def _response(h: Harness, response_id: int | None) -> SurveyResponse:
    async with h.db.session() as session:
        response = await session.get(SurveyResponse, response_id)
        assert response is not None
        return response


async def test_every_question_type_with_back_errors_review_and_change(mini: Harness) -> None:
    h = mini
    graduate, user = await h.consenting_graduate("en")
    response = await h.open_survey(graduate, "mini")
    welcome, c0 = await h.send(user, "/survey", expect=2)
    assert welcome.text == "Let's continue where you left off."
    assert c0.content.startswith(
        "Question 1 · about 8 questions left\n\nMay we ask you a few questions?"
    )
    assert [b["text"] for b in c0.buttons] == ["Yes", "No"]

    (q1,) = await h.press(user, "Yes", message=c0)
    # The estimate counts the longest route from the start: it never grows as answers come.
    assert q1.content.startswith("Question 2 · about 7 questions left\n\nWhat do you do now?")
    (hours,) = await h.press(user, "Working", message=q1)
    assert hours.content.startswith(
        "Question 3 · about 6 questions left\n\nHow many hours a week do you work?"
    )
    assert hours.content.endswith("Type a number.")

    # Back to Q1: the answer is marked and can be kept with Next.
    (q1_again,) = await h.press(user, "◀ Back", message=hours)
    assert [b["text"] for b in q1_again.buttons[:2]] == ["✅ Working", "Studying"]
    (hours,) = await h.press(user, "Next ▶", message=q1_again)
    assert hours.content.startswith("Question 3 · about 6 questions left")

    (error,) = await h.send(user, "forty")
    assert error.text == "Please type a whole number, for example 12."
    (error,) = await h.send(user, "0")
    assert error.text == "Please type a number from 1 to 80."
    (how,) = await h.send(user, "40")
    assert how.content.startswith("Question 4 · about 5 questions left\n\nHow did you look for it?")

    # select_multiple: toggles edit the keyboard; a forbidden combination is refused.
    for option in ("Friends", "None"):
        await h.press(user, option, expect=0, message=how)
        await h.keyboard_shows(user, how, f"☑️ {option}")
    await h.press(user, "Done ✔", expect=0, message=how)
    await eventually(lambda: "“None” cannot be combined" in " ".join(h.callback_answers(user)))
    await h.press(user, "None", expect=0, message=how)
    await h.keyboard_shows(user, how, "⬜ None")
    await h.press(user, "Online", expect=0, message=how)
    await h.keyboard_shows(user, how, "☑️ Online")
    note, sat = await h.press(user, "Done ✔", expect=2, message=how)
    assert note.text == "Halfway there, thank you!"
    assert sat.content.startswith("Question 5 · about 4 questions left")
    assert [b["text"] for b in sat.buttons if b["text"].isdigit()] == ["1", "2", "3", "4", "5"]

    (_start,) = await h.press(user, "4", message=sat)
    (error,) = await h.send(user, "31-02-2026")
    assert error.text == "Please type a date as day-month-year, for example 30-06-2026."
    (_next_step,) = await h.send(user, "30-06-2026")
    (error,) = await h.send(user, "13-2026")
    assert error.text == "Please type a month as month-year, for example 06-2026."
    (_km,) = await h.send(user, "06-2026")
    (tips,) = await h.send(user, "2,5")
    assert [b["text"] for b in tips.buttons] == ["◀ Back", "Skip ▶"]
    (review,) = await h.press(user, "Skip ▶", message=tips)

    assert review.content.startswith("Please check your answers.")
    for shown in (
        "→ Yes",
        "→ Working",
        "→ 40",
        "→ Friends, Online",
        "→ 4",
        "→ Jun 30, 2026",
        "→ June 2026",
        "→ 2.5",
    ):
        assert shown in review.content, shown
    assert "Any tips for the school?\n    → —" in review.content
    stored = await _answers(h, response.id)
    assert stored == {
        "C0": "yes",
        "Q1": "working",
        "HOURS": 40,
        "HOW": ["friends", "online"],
        "SAT": 4,
        "START": "2026-06-30",
        "NEXT": "2026-06",
        "KM": 2.5,
    }

    # Change Q1 from the review: HOURS no longer applies; back to the review at once.
    (q1_edit,) = await h.press(user, "✏️ 2", message=review)
    (review2,) = await h.press(user, "Studying", message=q1_edit)
    assert review2.content.startswith("Please check your answers.")
    assert "How many hours" not in review2.content and "→ Studying" in review2.content
    (thanks,) = await h.press(user, "✅ Send my answers", message=review2)
    assert thanks.text == "Thank you! Your answers have been saved."

    final = await _response(h, response.id)
    assert final.status == ResponseStatus.SUBMITTED.value and final.complete
    assert (final.form_id, final.version) == ("mini", "1")
    assert await _answers(h, response.id) == {
        "C0": "yes",
        "Q1": "studying",
        "HOW": ["friends", "online"],
        "SAT": 4,
        "START": "2026-06-30",
        "NEXT": "2026-06",
        "KM": 2.5,
    }
    # Buttons of the finished questionnaire do no harm and say so (a typed question keeps
    # its Back button after the answer).
    await h.press(user, "◀ Back", expect=0, message=hours)
    await eventually(
        lambda: (
            h.callback_answers(user)[-1:] == ["This questionnaire is already finished. Thank you!"]
        )
    )


async def test_declining_ends_at_once_and_keeps_the_refusal(mini: Harness) -> None:
    graduate, user = await mini.consenting_graduate("nl")
    response = await mini.open_survey(graduate, "mini")
    _welcome, c0 = await mini.send(user, "/survey", expect=2)
    (thanks,) = await mini.press(user, "Nee", message=c0)
    assert thanks.text == tr("nl", "Thank you! Your answers have been saved.")
    final = await _response(mini, response.id)
    assert final.status == ResponseStatus.SUBMITTED.value
    assert await _answers(mini, response.id) == {"C0": "no"}


async def test_restart_mid_survey_resumes_exactly_there(mini: Harness) -> None:
    graduate, user = await mini.consenting_graduate("it")
    response = await mini.open_survey(graduate, "mini")
    _welcome, c0 = await mini.send(user, "/survey", expect=2)
    (q1,) = await mini.press(user, "Sì", message=c0)
    (_hours,) = await mini.press(user, "Lavoro", message=q1)
    # Partial: the routing core (C0, Q1 and, for workers, HOURS) is not answered yet.
    assert not (await _response(mini, response.id)).complete

    await mini.restart_bot()
    (how,) = await mini.send(user, "38")
    assert how.content.startswith("Domanda 4 · mancano circa 5 domande")
    assert await _answers(mini, response.id) == {"C0": "yes", "Q1": "working", "HOURS": 38}
    stored = await _response(mini, response.id)
    assert stored.current == "HOW" and stored.status == ResponseStatus.OPEN.value
    assert stored.complete  # complete once the core is answered, even before the end

    # Days later, /survey brings the same question back.
    welcome, again = await mini.send(user, "/survey", expect=2)
    assert welcome.text == tr("it", "Let's continue where you left off.")
    assert again.content == how.content


async def test_question_lost_in_a_crash_is_sent_after_restart(mini: Harness) -> None:
    graduate, user = await mini.consenting_graduate("en")
    response = await mini.open_survey(graduate, "mini")
    _welcome, c0 = await mini.send(user, "/survey", expect=2)
    mini.sandbox.faults.add(method="sendMessage", status=502, count=10)
    await mini.press(user, "Yes", expect=0, message=c0)

    async def answer_stored() -> bool:
        return (await _response(mini, response.id)).current == "Q1"

    await eventually(answer_stored)
    await eventually(lambda: any(c.status == 502 for c in mini.sandbox.calls("sendMessage")))
    mini.sandbox.faults.clear()
    await mini.age_chat_state(user.id)  # the crash was a while ago
    await mini.restart_bot()
    (q1,) = await mini.replies(user, 1)
    assert "What do you do now?" in q1.content


async def test_a_redelivered_answer_is_stored_once(mini: Harness) -> None:
    graduate, user = await mini.consenting_graduate("en")
    response = await mini.open_survey(graduate, "mini")
    _welcome, c0 = await mini.send(user, "/survey", expect=2)
    (q1,) = await mini.press(user, "Yes", message=c0)
    (_hours,) = await mini.press(user, "Working", message=q1)
    (_how,) = await mini.send(user, "40")
    typed = mini.sandbox.bot(mini.token).history[-1]["update_id"]
    mini.sandbox.redeliver(mini.token, typed)
    # Had it been taken again, "40" would be refused as an answer to HOW and said so.
    (review_or_help,) = await mini.send(user, "/help")
    assert review_or_help.content.startswith("This chat keeps you in touch")
    assert await _answers(mini, response.id) == {"C0": "yes", "Q1": "working", "HOURS": 40}
    assert (await _response(mini, response.id)).current == "HOW"


async def test_typing_on_a_button_question_repeats_it(mini: Harness) -> None:
    graduate, user = await mini.consenting_graduate("es")
    await mini.open_survey(graduate, "mini")
    _welcome, c0 = await mini.send(user, "/survey", expect=2)
    hint, again = await mini.send(user, "vale", expect=2)
    assert hint.text == tr("es", "Please answer with the buttons below the question.")
    assert again.content == c0.content and again.buttons == c0.buttons


async def test_a_stale_button_does_nothing_and_says_so(mini: Harness) -> None:
    graduate, user = await mini.consenting_graduate("en")
    response = await mini.open_survey(graduate, "mini")
    _welcome, c0 = await mini.send(user, "/survey", expect=2)
    # Typing repeats the question; the first copy keeps its buttons.
    _hint, c0_again = await mini.send(user, "ok", expect=2)
    (q1,) = await mini.press(user, "Yes", message=c0_again)
    await mini.press(user, "No", expect=0, message=c0)
    await eventually(
        lambda: mini.callback_answers(user)[-1:] == ["This question has already been answered."]
    )
    assert await _answers(mini, response.id) == {"C0": "yes"}
    assert (await _response(mini, response.id)).current == "Q1"
    assert q1.buttons


async def test_a_new_version_does_not_disturb_a_response_in_progress(
    mini: Harness, tmp_path: Path
) -> None:
    graduate, user = await mini.consenting_graduate("en")
    response = await mini.open_survey(graduate, "mini")
    _welcome, c0 = await mini.send(user, "/survey", expect=2)
    (q1,) = await mini.press(user, "Yes", message=c0)

    # Version 2 renames the hours question; version 1 stays stored in the database.
    source = (CHAT_DIR / "mini.yaml").read_text(encoding="utf-8")
    v2 = source.replace('version: "1"', 'version: "2"').replace(
        "How many hours a week do you work?", "Weekly working hours?"
    )
    (tmp_path / "mini.yaml").write_text(v2, encoding="utf-8")
    mini.questionnaires = QuestionnaireRegistry(tmp_path)
    await mini.restart_bot()

    (hours,) = await mini.press(user, "Working", message=q1)
    assert "How many hours a week do you work?" in hours.content
    assert (await _response(mini, response.id)).version == "1"


async def test_unchanged_version_with_changed_text_is_refused_once_used(
    mini: Harness, tmp_path: Path
) -> None:
    graduate, _user = await mini.consenting_graduate("en")
    await mini.open_survey(graduate, "mini")
    source = (CHAT_DIR / "mini.yaml").read_text(encoding="utf-8")
    (tmp_path / "mini.yaml").write_text(source.replace("Any tips", "Tips"), encoding="utf-8")
    with pytest.raises(
        VersionConflictError, match=r"give the changed file a new settings\.version"
    ):
        await QuestionnaireRegistry(tmp_path).sync(mini.db)


async def test_workers_starting_at_once_store_each_version_once(db: Database) -> None:
    """Several `serve` processes sync the deployed questionnaires at the same moment: none
    fails on the unique (form_id, version), and each version is stored once."""
    registries = [QuestionnaireRegistry() for _ in range(4)]
    await asyncio.gather(*(registry.sync(db) for registry in registries))
    async with db.session() as session:
        rows = (await session.exec(select(QuestionnaireDefinition))).all()
    stored = sorted((row.form_id, row.version) for row in rows)
    deployed = sorted((f, registries[0].deployed(f).version) for f in registries[0].form_ids)
    assert stored == deployed
