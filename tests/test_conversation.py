"""The conversation as a newcomer meets it (issue 15), through the sandbox, on SQLite and
PostgreSQL: a progress line that does not jump, a language change in the middle of a question,
instructions said once, plural forms and dates in the person's language, and clear answers
after /stop and /delete and to an impossible birth year."""

from __future__ import annotations

import re
from datetime import date
from itertools import pairwise
from typing import Any

import pytest

from bot.i18n import language_name
from bot.sandbox.state import SandboxUser, TranscriptEntry
from conversations import engine
from conversations.questionnaire import Questionnaire
from conversations.registry import QuestionnaireRegistry
from storage.staff import add_staff
from tests.harness import Harness, tr
from tests.survey_walk import Walk, default_answer
from tests.test_last_saved import walk_engine
from tests.test_survey import CHAT_DIR, MINI_PLANS
from tests.test_survey_tracking import ROUTES, policy


@pytest.fixture
async def mini(harness: Harness) -> Harness:
    """The harness with the small all-types questionnaire deployed."""
    harness.questionnaires = QuestionnaireRegistry(CHAT_DIR)
    harness.plans = MINI_PLANS
    await harness.restart_bot()
    return harness


@pytest.fixture
async def tracking(harness: Harness) -> Harness:
    """The harness with the real questionnaires deployed (tracking among them)."""
    harness.questionnaires = QuestionnaireRegistry()
    await harness.restart_bot()
    return harness


def _form(h: Harness, form_id: str) -> Questionnaire:
    assert h.questionnaires is not None
    return h.questionnaires.deployed(form_id)


def _choice_label(q: Questionnaire, question: str, code: str, lang: str) -> str:
    choice = q.choice(q.question(question), code)
    assert choice is not None
    return str(choice.labels.get(lang) or choice.labels[q.default_language])


def _position(heading: str) -> tuple[int, int]:
    """(k, left) read back from a progress line such as "Vraag 3 · nog ongeveer 18 vragen"
    (the last question's line has no count after k: nothing is left)."""
    numbers = [int(n) for n in re.findall(r"[0-9]+", heading)]
    return numbers[0], numbers[1] if len(numbers) > 1 else 0


async def _buttons_gone(h: Harness, user: SandboxUser, message: TranscriptEntry) -> None:
    def gone(transcript: list[TranscriptEntry]) -> bool:
        entry = next(e for e in transcript if e.message_id == message.message_id)
        return not entry.buttons

    await h.sandbox.wait_until(h.token, user.id, gone)


# ---------------------------------------------------------------- 1 and 3: progress, hints


async def test_tracking_in_dutch_the_progress_never_jumps_and_hints_are_said_once(
    tracking: Harness,
) -> None:
    """The shown total (question number + questions left) is already about right at the first
    question and never grows, where it used to go 1 of 1, 2 of 9, 3 of 21. And a question
    whose hint says what to type is not followed by the general instruction again."""
    h = tracking
    q = _form(h, "tracking")
    graduate, user = await h.consenting_graduate("nl")
    await h.open_survey(graduate, "tracking")
    _welcome, first = await h.send(user, "/survey", expect=2)
    walk = Walk(h, user, q, "nl")
    review = await walk.run(first, policy(q, "employed"))
    assert review.content.startswith("Controleer je antwoorden.")

    positions = [_position(heading) for heading in walk.headings]
    totals = [k + left for k, left in positions]
    asked = len(walk.asked)
    # Numbered 1, 2, 3, … without gaps; the last says it is the last.
    assert [k for k, _left in positions] == list(range(1, asked + 1))
    assert walk.headings[-1] == f"Vraag {asked} · de laatste"
    # The property: the estimate of the whole route never grows as the graduate answers …
    assert all(later <= earlier for earlier, later in pairwise(totals)), totals
    # … and the very first question already shows the longest route the questionnaire allows
    # (working and studying, with "something else" as the sector to describe: one question
    # more than the walk's policy takes), not "1 of 1" and not more.
    assert totals[-1] == asked
    longest = max(len(walk_engine(q, route, None)[0]) for route in ROUTES) + 1
    assert asked < longest
    assert totals[0] == longest, (totals[0], longest)
    assert walk.headings[0].startswith("Vraag 1 · nog ongeveer ")

    # E3 (hours a week) has a hint "Typ een getal, bijvoorbeeld 32.": said once, not twice.
    e3_label = str(q.question("E3").labels["nl"])
    (e3,) = [
        m
        for m in h.sandbox.bot_messages(h.token, user.id)
        if m.content.startswith("Vraag ") and e3_label in m.content
    ]
    assert e3.content.count("Typ een getal") == 1, e3.content
    assert e3.content.endswith("Typ een getal, bijvoorbeeld 32.")


@pytest.mark.parametrize("route", ROUTES)
def test_the_estimated_total_never_grows_on_any_tracking_route(route: str) -> None:
    """The engine's side of the property, on every route of the tracking questionnaire."""
    q = QuestionnaireRegistry().deployed("tracking")
    choose = policy(q, route)
    answers: dict[str, Any] = {}
    totals: list[int] = []
    question = engine.next_question(q, answers, None)
    while question is not None:
        if question.answerable:
            k, left = engine.remaining_estimate(q, answers, question.name)
            assert k == len(totals) + 1
            totals.append(k + left)
            value = choose(question)
            if value is not None:
                answers[question.name] = value
        question = engine.next_question(q, answers, question.name)
    assert all(later <= earlier for earlier, later in pairwise(totals)), totals
    assert totals[0] == max(totals) and totals[0] > 1


# ---------------------------------------------------------------- 2: /language mid-question


async def test_language_change_mid_survey_asks_the_question_again_in_the_new_language(
    mini: Harness,
) -> None:
    h = mini
    q = _form(h, "mini")
    graduate, user = await h.consenting_graduate("es")
    await h.open_survey(graduate, "mini")
    _welcome, c0 = await h.send(user, "/survey", expect=2)
    (q1,) = await h.press(user, _choice_label(q, "C0", "yes", "es"), message=c0)
    assert "¿Qué haces ahora?" in q1.content

    (ask,) = await h.send(user, "/language")
    assert ask.text == tr("es", "Which language do you prefer?")
    confirm, again = await h.press(user, language_name("it"), expect=2, message=ask)
    assert confirm.text == tr("it", "From now on I will write to you in English.")
    # The same question, all of it in Italian: text, choices and navigation.
    assert again.content.startswith("Domanda 2 · mancano circa 7 domande\n\nChe cosa fai adesso?")
    working = _choice_label(q, "Q1", "working", "it")
    assert working in [b["text"] for b in again.buttons]
    assert tr("it", "◀ Back") in [b["text"] for b in again.buttons]
    # The Spanish question above has lost its buttons: no Spanish text with live buttons.
    await _buttons_gone(h, user, q1)
    assert q1.content.startswith("Pregunta 2")

    (hours,) = await h.press(user, working, message=again)
    assert "Quante ore a settimana lavori?" in hours.content


async def test_language_change_during_onboarding_takes_the_old_buttons_away(
    harness: Harness,
) -> None:
    _school, _graduate, user = await harness.at_consents()
    consent = harness.last_keyboard_message(user)
    (ask,) = await harness.send(user, "/language")
    _confirm, _notice, again = await harness.press(user, "Eesti", expect=3, message=ask)
    assert again.buttons and [b["text"] for b in again.buttons] == [
        tr("et", "Yes"),
        tr("et", "No"),
    ]
    await _buttons_gone(harness, user, consent)


# ---------------------------------------------------------------- 4: plurals and dates


@pytest.mark.parametrize(
    ("lang", "two_left", "one_left", "month", "day"),
    [
        ("nl", "nog ongeveer 2 vragen", "nog ongeveer 1 vraag", "juni 2026", "30 jun 2026"),
        ("et", "jäänud umbes 2 küsimust", "jäänud umbes 1 küsimus", "juuni 2026", "30. juuni 2026"),
        ("it", "mancano circa 2 domande", "manca circa 1 domanda", "giugno 2026", "30 giu 2026"),
    ],
)
async def test_counts_take_their_plural_form_and_dates_the_persons_format(
    mini: Harness, lang: str, two_left: str, one_left: str, month: str, day: str
) -> None:
    h = mini
    q = _form(h, "mini")
    graduate, user = await h.consenting_graduate(lang)
    await h.open_survey(graduate, "mini")
    _welcome, first = await h.send(user, "/survey", expect=2)
    walk = Walk(h, user, q, lang)
    review = await walk.run(first, lambda question: default_answer(q, question))
    by_question = dict(zip(walk.asked, walk.headings, strict=True))
    assert by_question["NEXT"].endswith(two_left), by_question["NEXT"]
    assert by_question["KM"].endswith(one_left), by_question["KM"]
    # The review writes the answered date and month as the person's language does.
    assert f"→ {day}\n" in review.content, review.content
    assert f"→ {month}\n" in review.content, review.content


# ---------------------------------------------------------------- 5: clear answers


async def test_an_impossible_birth_year_is_called_that(harness: Harness) -> None:
    await harness.school(code="alfa", country="NL", language="nl")
    user = harness.user(language_code="nl")
    await harness.send(user, "/start s_alfa")
    await harness.press(user, "Nederlands")
    await harness.press(user, "Cook")
    this_year = date.today().year
    await harness.press(user, str(this_year))
    await harness.press(user, "Juni")
    (error,) = await harness.send(user, "1850")
    assert error.text == (
        f"1850 kan niet je geboortejaar zijn. Typ een jaar tussen {this_year - 100} "
        f"en {this_year - 10}."
    )
    (error,) = await harness.send(user, "vorig jaar")
    assert error.text == tr(
        "nl", "Please type your year of birth as four digits, for example 2006."
    )


async def test_after_delete_mydata_says_nothing_is_kept(harness: Harness) -> None:
    _graduate, user = await harness.consenting_graduate("es")
    await harness.send(user, "/delete")
    await harness.press(user, tr("es", "Yes, delete my data"), expect=1)
    (reply,) = await harness.send(user, "/mydata")
    assert reply.content.startswith("No guardo ningún dato sobre ti")
    assert not reply.document


async def test_after_stop_survey_says_contact_is_stopped_and_start_turns_it_back_on(
    mini: Harness,
) -> None:
    h = mini
    graduate, user = await h.consenting_graduate("it")
    await h.open_survey(graduate, "mini")
    await h.send(user, "/stop")
    (reply,) = await h.send(user, "/survey")
    assert reply.text == (
        "Hai interrotto ogni contatto con /stop, quindi non ti mando questionari. "
        "Per riattivare il contatto, invia /start."
    )
    welcome, _question = await h.send(user, "/start", expect=2)
    assert welcome.content.startswith(
        "Il contatto è di nuovo attivo: ti scriverò di nuovo, come hai scelto in /privacy."
    )
    assert (await h.reload(graduate)).opted_out_at is None


@pytest.mark.parametrize(
    ("lang", "recipients", "when", "expected"),
    [
        (
            "nl",
            1,
            "now",
            "Wordt nu verstuurd naar 1 afgestudeerde. Ik houd je hier op de hoogte van de "
            "voortgang.",
        ),
        (
            "es",
            2,
            "now",
            "Enviando ahora a 2 exalumnos. Te iré informando del progreso aquí.",
        ),
        (
            "it",
            1,
            "later",
            "Programmata: la notizia andrà a 1 ex studente il 1 dic 2026, 10:00 "
            "(Europe/Amsterdam).",
        ),
        (
            "et",
            2,
            "later",
            "Ajastatud: uudis läheb 2 vilistlasele 1. dets 2026 10:00 (Europe/Amsterdam).",
        ),
    ],
)
async def test_news_confirmations_count_graduates_and_date_in_the_officers_language(
    harness: Harness, lang: str, recipients: int, when: str, expected: str
) -> None:
    """ "1 afgestudeerde", never "1 afgestudeerden"; the date on the school's clock, written
    the way the officer's language writes it."""
    school = await harness.school("alfa", language=lang)
    for n in range(recipients):
        await harness.graduate(school, language=lang, chat_id=9_500_000 + n, consent_news=True)
    officer = harness.user(lang)
    await add_staff(harness.db, officer.id, "officer", school_code="alfa")
    await harness.send(officer, "/news")
    (which,) = await harness.send(officer, "Open dag")
    await harness.press(officer, which.buttons[0]["text"], message=which)  # the school's
    await harness.press(officer, tr(lang, "Done"))
    _header, _preview, prompt = await harness.press(officer, tr(lang, "Continue"), expect=3)
    if when == "now":
        (done,) = await harness.press(officer, tr(lang, "Send now"), message=prompt)
    else:
        await harness.press(officer, tr(lang, "Schedule"), message=prompt)
        (done,) = await harness.send(officer, "01-12-2026 10:00")
    assert done.text == expected
