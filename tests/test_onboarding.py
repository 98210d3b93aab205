"""Onboarding through the sandbox: the bot talks real HTTP; the database is real."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from sqlmodel import select

from bot.i18n import LANGUAGES, language_name, use_language
from bot.sandbox.state import SandboxUser
from bot.scheduler import start_scheduler
from conversations.notice import notice_messages, shown_version
from conversations.prompting import resend_pending_prompts
from storage.models import ChatState, Graduate
from storage.queries import get_chat_state
from storage.types import utcnow
from tests.harness import Harness, eventually, tr

SURVEY_Q = (
    "May we ask you about your work and studies after your training? It takes about five minutes."
)
FOLLOWUP_Q = "May we ask you again in a few months, to see how things are going?"
NEWS_Q = "Would you like to receive alumni news from {school}: events, jobs and courses?"
LANGUAGE_Q = "Hello! This is the graduate chat of {school}. Which language do you prefer?"


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_invite_to_stored_consents_in_each_language(harness: Harness, lang: str) -> None:
    school = await harness.school(country="NL", language="nl")
    graduate = await harness.graduate(school)
    user = harness.user(language_code=lang)

    (question,) = await harness.send(user, f"/start {graduate.invite_token}")
    # No roster language: Telegram's language_code decides the first message.
    assert question.text == tr(lang, LANGUAGE_Q).format(school=school.name)
    assert [b["text"] for b in question.buttons] == [language_name(c) for c in LANGUAGES]

    notice, survey = await harness.press(user, language_name(lang), expect=2)
    with use_language(lang):
        assert [notice.text] == notice_messages(harness.settings, school)
    assert survey.text == tr(lang, SURVEY_Q)
    # The answered question shows the answer and loses its buttons.
    answered = harness.sandbox.transcript(harness.token, user.id)
    first = next(e for e in answered if e.message_id == question.message_id)
    assert first.buttons == [] and first.content.endswith(language_name(lang))

    (followup,) = await harness.press(user, tr(lang, "Yes"))
    assert followup.text == tr(lang, FOLLOWUP_Q)
    (news,) = await harness.press(user, tr(lang, "Yes"))
    assert news.text == tr(lang, NEWS_Q).format(school=school.name)
    (done,) = await harness.press(user, tr(lang, "No"))
    assert done.content.startswith(tr(lang, "Thank you! Your choices are saved:"))

    stored = await harness.reload(graduate)
    assert stored.chat_id == user.id and stored.linked_at is not None
    assert stored.language == lang
    assert (stored.consent_survey, stored.consent_followup, stored.consent_news) == (
        True,
        True,
        False,
    )
    version = shown_version(harness.settings, school)
    assert stored.consent_survey_notice == stored.consent_news_notice == version
    assert stored.consent_survey_at is not None and stored.consent_news_at is not None
    assert stored.consent_survey_at <= stored.consent_news_at <= utcnow()
    events = await harness.consent_events(graduate)
    assert [(e.kind, e.granted, e.notice_version) for e in events] == [
        ("survey", True, version),
        ("followup", True, version),
        ("news", False, version),
    ]


async def test_roster_language_wins_over_telegram(harness: Harness) -> None:
    school = await harness.school(language="nl")
    graduate = await harness.graduate(school, language="et")
    user = harness.user(language_code="es")
    (question,) = await harness.send(user, f"/start {graduate.invite_token}")
    assert question.text == tr("et", LANGUAGE_Q).format(school=school.name)


async def test_school_language_when_telegram_language_is_unsupported(harness: Harness) -> None:
    school = await harness.school(language="it")
    graduate = await harness.graduate(school)
    user = harness.user(language_code="pt-br")
    (question,) = await harness.send(user, f"/start {graduate.invite_token}")
    assert question.text == tr("it", LANGUAGE_Q).format(school=school.name)


async def test_declining_the_survey_skips_follow_up_and_stores_only_refusals(
    harness: Harness,
) -> None:
    school, graduate, user = await harness.at_consents()
    (news,) = await harness.press(user, "No")
    assert news.text == NEWS_Q.format(school=school.name)
    await harness.press(user, "No")
    stored = await harness.reload(graduate)
    assert (stored.consent_survey, stored.consent_followup, stored.consent_news) == (
        False,
        None,
        False,
    )


async def test_self_registration_by_school_link(harness: Harness) -> None:
    school = await harness.school(code="alfa", country="ES", language="es")
    user = harness.user(language_code="it")
    (question,) = await harness.send(user, "/start s_alfa")
    assert question.text == tr("it", LANGUAGE_Q).format(school=school.name)
    (programmes,) = await harness.press(user, "Italiano")
    assert [b["text"] for b in programmes.buttons] == ["Cook", "Software developer"]
    (years,) = await harness.press(user, "Cook")
    this_year = date.today().year
    assert [b["text"] for b in years.buttons] == [
        str(y) for y in range(this_year - 2, this_year + 2)
    ]
    (months,) = await harness.press(user, str(this_year))
    assert months.buttons[5]["text"] == "Giugno"
    (birth,) = await harness.press(user, "Giugno")
    assert birth.text == tr("it", "In which year were you born? Please type it, for example 2006.")
    (error,) = await harness.send(user, "last year")
    assert error.text == tr(
        "it", "Please type your year of birth as four digits, for example 2006."
    )
    _notice, survey = await harness.send(user, "2004", expect=2)
    assert survey.text == tr("it", SURVEY_Q)
    await harness.press(user, tr("it", "Yes"))
    await harness.press(user, tr("it", "Yes"))
    await harness.press(user, tr("it", "Yes"))

    async with harness.db.session() as session:
        graduate = (await session.exec(select(Graduate).where(Graduate.chat_id == user.id))).one()
    assert graduate.institution_id == school.id
    assert graduate.self_registered and graduate.birth_year == 2004
    assert graduate.graduation_date == date(this_year, 6, 30)
    assert graduate.language == "it"
    assert graduate.consent_survey and graduate.consent_followup and graduate.consent_news


async def test_too_young_needs_a_guardian_and_stores_no_consent(harness: Harness) -> None:
    school = await harness.school(country="IT", language="it")  # 14 in Italy
    graduate = await harness.graduate(school, birth_year=date.today().year - 12)
    user = harness.user("en")
    await harness.send(user, f"/start {graduate.invite_token}")
    (guardian,) = await harness.press(user, "English")
    assert "younger than 14" in guardian.content
    assert guardian.buttons == []
    stored = await harness.reload(graduate)
    assert stored.consent_survey is None and await harness.consent_events(graduate) == []

    # The school records a guardian's agreement; /start continues to the consents.
    async with harness.db.session() as session:
        row = await session.get(Graduate, graduate.id)
        assert row is not None
        row.guardian_consent_at = utcnow()
        session.add(row)
    _welcome, _notice, survey = await harness.send(user, "/start", expect=3)
    assert survey.text == SURVEY_Q


async def test_unknown_age_is_asked(harness: Harness) -> None:
    school = await harness.school(country="NL")
    graduate = await harness.graduate(school, birth_year=None)
    user = harness.user("nl")
    await harness.send(user, f"/start {graduate.invite_token}")
    (age,) = await harness.press(user, "Nederlands")
    assert age.text == "Ben je 16 jaar of ouder?"
    (guardian,) = await harness.press(user, tr("nl", "No"))
    assert "16" in guardian.content and guardian.buttons == []


async def test_bad_links(harness: Harness) -> None:
    school = await harness.school()
    used = await harness.graduate(school)
    revoked = await harness.graduate(school, invite_revoked_at=utcnow())
    first, second = harness.user("en"), harness.user("es")

    (reply,) = await harness.send(first, "/start i_doesnotexist000000000000")
    assert reply.content.startswith("I don't recognise this link.")
    (reply,) = await harness.send(first, "/start <script>")
    assert reply.content.startswith("I don't recognise this link.")
    (reply,) = await harness.send(first, "/start s_nosuchschool")
    assert reply.text == (
        "I don't recognise this school link. Please ask your school for the right one."
    )
    (reply,) = await harness.send(first, f"/start {revoked.invite_token}")
    assert reply.text == "This link is no longer valid. Please ask your school for a new one."

    await harness.send(first, f"/start {used.invite_token}")
    (reply,) = await harness.send(second, f"/start {used.invite_token}")
    assert reply.text == tr(
        "es",
        "This link has already been used from another Telegram account. "
        "If that was not you, please contact your school.",
    )
    assert (await harness.reload(used)).chat_id == first.id
    assert (await harness.reload(revoked)).chat_id is None


async def test_restart_in_the_middle_resumes(harness: Harness) -> None:
    school, graduate, user = await harness.at_consents()
    await harness.press(user, "Yes")  # survey yes; the follow-up question is open

    await harness.restart_bot()
    (news,) = await harness.press(user, "Yes")
    assert news.text == NEWS_Q.format(school=school.name)
    await harness.press(user, "Yes")
    stored = await harness.reload(graduate)
    assert (stored.consent_survey, stored.consent_followup, stored.consent_news) == (
        True,
        True,
        True,
    )


async def _question_left_unsent(harness: Harness) -> tuple[Graduate, SandboxUser]:
    """The answer to the survey consent is committed, then sending the next question fails
    (Telegram answers 502): the follow-up question stays pending. Telegram is back after."""
    _school, graduate, user = await harness.at_consents()
    harness.sandbox.faults.add(method="sendMessage", status=502, count=10)
    await harness.press(user, "Yes", expect=0)

    async def answer_stored_question_unsent() -> bool:
        async with harness.db.session() as session:
            state = await get_chat_state(session, user.id)
            return state.step == "c_followup" and state.prompt_pending

    await eventually(answer_stored_question_unsent)
    await eventually(lambda: any(c.status == 502 for c in harness.sandbox.calls("sendMessage")))
    harness.sandbox.faults.clear()
    return graduate, user


async def _followups(harness: Harness, user: SandboxUser) -> int:
    return sum(m.text == FOLLOWUP_Q for m in harness.sandbox.bot_messages(harness.token, user.id))


async def _prompt_pending(harness: Harness, user: SandboxUser) -> bool:
    async with harness.db.session() as session:
        state = await session.get(ChatState, user.id)
        assert state is not None
        return state.prompt_pending


async def test_question_lost_in_a_crash_is_sent_after_restart(harness: Harness) -> None:
    """A question left unsent a while ago (longer than PROMPT_RESEND_SECONDS) is sent when
    the bot starts again, and marked sent; the answer before it was kept."""
    graduate, user = await _question_left_unsent(harness)
    await harness.age_chat_state(user.id)

    await harness.restart_bot()
    (followup,) = await harness.replies(user, 1)
    assert followup.text == FOLLOWUP_Q
    assert not await _prompt_pending(harness, user)
    assert (await harness.reload(graduate)).consent_survey is True


async def test_processes_resending_at_once_send_a_lost_question_once(harness: Harness) -> None:
    """Several processes starting at once each resend the questions left unsent: a question
    whose chat was written just now is left alone (a live handler may be about to send it);
    once it is older than PROMPT_RESEND_SECONDS, three resends racing send it exactly once."""
    rt = harness.runtime
    _graduate, user = await _question_left_unsent(harness)

    assert await resend_pending_prompts(rt) == 0  # written moments ago: not ours to send
    assert await _prompt_pending(harness, user) and await _followups(harness, user) == 0

    await harness.age_chat_state(user.id)
    sent = await asyncio.gather(*(resend_pending_prompts(rt) for _ in range(3)))
    assert sorted(sent) == [0, 0, 1]
    await harness.replies(user, 1)
    assert await _followups(harness, user) == 1
    assert not await _prompt_pending(harness, user)
    assert await resend_pending_prompts(rt, timedelta(0)) == 0  # nothing left pending


async def test_the_scheduler_sends_a_lost_question_once_telegram_is_back(
    harness: Harness,
) -> None:
    """Without any restart and without the graduate writing again, the scheduler leader's
    `prompts` job sends the question Telegram failed to take, once."""
    rt = harness.runtime
    _graduate, user = await _question_left_unsent(harness)
    await harness.age_chat_state(user.id)
    rt.settings.dispatch_interval_seconds = 0.2
    scheduler = start_scheduler(rt)
    try:
        (followup,) = await harness.replies(user, 1)
        assert followup.text == FOLLOWUP_Q
        await eventually(lambda: scheduler.running_work == 0)
        await asyncio.sleep(0.5)  # more ticks: nothing more to send
    finally:
        scheduler.shutdown(wait=False)
    assert await _followups(harness, user) == 1
    assert not await _prompt_pending(harness, user)


async def test_stale_and_repeated_buttons_change_nothing(harness: Harness) -> None:
    school = await harness.school()
    graduate = await harness.graduate(school)
    user = harness.user("en")
    (old_language_q,) = await harness.send(user, f"/start {graduate.invite_token}")
    # Typing instead of tapping repeats the question; the first copy keeps its buttons.
    _hint, language_q = await harness.send(user, "hi", expect=2)
    await harness.press(user, "English", expect=2, message=language_q)
    await harness.press(user, "Yes")
    await harness.press(user, "Italiano", expect=0, message=old_language_q)
    await harness.sandbox.wait_until(
        harness.token,
        user.id,
        lambda t: sum(e.kind == "callback_answer" for e in t) >= 3,
        timeout=10,
    )
    assert harness.callback_answers(user)[-1] == "This question has already been answered."
    stored = await harness.reload(graduate)
    assert stored.language == "en" and stored.consent_survey is True
    assert len(await harness.consent_events(graduate)) == 1


async def test_typing_instead_of_pressing_repeats_the_question(harness: Harness) -> None:
    school = await harness.school()
    graduate = await harness.graduate(school)
    user = harness.user("en")
    await harness.send(user, f"/start {graduate.invite_token}")
    hint, again = await harness.send(user, "yes please", expect=2)
    assert hint.text == "Please answer with the buttons below the question."
    assert again.text == LANGUAGE_Q.format(school=school.name) and again.buttons


async def test_privacy_shows_choices_and_changes_them(harness: Harness) -> None:
    school, graduate, user = await harness.at_consents()
    await harness.press(user, "Yes")
    await harness.press(user, "Yes")
    await harness.press(user, "No")

    notice, choices = await harness.send(user, "/privacy", expect=2)
    assert [notice.text] == notice_messages(harness.settings, school)
    assert [b["text"] for b in choices.buttons] == [
        "✅ Questionnaire",
        "✅ Follow-up questionnaires",
        "⬜ Alumni news",
    ]
    await harness.press(user, "Alumni news", expect=0, message=choices)
    edited = await harness.sandbox.wait_until(
        harness.token,
        user.id,
        lambda t: any(
            e.message_id == choices.message_id and "✅ Alumni news" in str(e.reply_markup)
            for e in t
        ),
        timeout=10,
    )
    assert edited
    stored = await harness.reload(graduate)
    assert stored.consent_news is True
    events = await harness.consent_events(graduate)
    assert (events[-1].kind, events[-1].granted) == ("news", True)


async def test_language_command_switches_everything_after_it(harness: Harness) -> None:
    _school, graduate, user = await harness.at_consents()
    await harness.send(user, "/language")
    confirm, _notice, survey_again = await harness.press(user, "Eesti", expect=3)
    assert confirm.text == tr("et", "From now on I will write to you in English.")
    assert survey_again.text == tr("et", SURVEY_Q)
    assert (await harness.reload(graduate)).language == "et"
    (help_text,) = await harness.send(user, "/help")
    assert help_text.content.startswith(
        tr("et", "This chat keeps you in touch with your school after your training.")
    )


async def test_stop_and_start_again(harness: Harness) -> None:
    _school, graduate, user = await harness.at_consents()
    (reply,) = await harness.send(user, "/stop")
    assert reply.content.startswith("Done: I will not send you any more messages.")
    assert (await harness.reload(graduate)).opted_out_at is not None
    await harness.send(user, "/start", expect=3)
    assert (await harness.reload(graduate)).opted_out_at is None


async def test_blocking_marks_unreachable_and_unblocking_restores(harness: Harness) -> None:
    school = await harness.school()
    graduate = await harness.graduate(school)
    user = harness.user("en")
    await harness.send(user, f"/start {graduate.invite_token}")
    harness.sandbox.block(harness.token, user.id)

    async def blocked() -> bool:
        return (await harness.reload(graduate)).unreachable_reason == "blocked"

    async def reachable() -> bool:
        return (await harness.reload(graduate)).unreachable_at is None

    await eventually(blocked)
    harness.sandbox.unblock(harness.token, user.id)
    await eventually(reachable)


async def test_unregistered_chat_is_told_how_to_begin(harness: Harness) -> None:
    user = harness.user("es")
    (reply,) = await harness.send(user, "/start")
    assert reply.text == tr(
        "es",
        "Hello! This is your school's graduate chat. To begin, please open the personal "
        "link or scan the QR code your school gave you.",
    )
    (reply,) = await harness.send(user, "hola")
    assert reply.text == tr(
        "es",
        "Hello! This is your school's graduate chat. To begin, please open the personal "
        "link or scan the QR code your school gave you.",
    )


async def test_a_redelivered_update_takes_effect_once(harness: Harness) -> None:
    _school, graduate, user = await harness.at_consents()
    await harness.press(user, "Yes")  # consents to the survey; the follow-up question is open
    history = harness.sandbox.bot(harness.token).history
    press_id = history[-1]["update_id"]
    (help_reply,) = await harness.send(user, "/help")
    help_id = history[-1]["update_id"]
    # Telegram sends both again (a webhook timeout, an unconfirmed poll).
    harness.sandbox.redeliver(harness.token, press_id)
    harness.sandbox.redeliver(harness.token, help_id)
    # Updates are handled in order: once /privacy is answered, the duplicates were handled.
    notice, _choices = await harness.send(user, "/privacy", expect=2)
    assert notice.content.startswith("Privacy notice")
    texts = [e.content for e in harness.sandbox.bot_messages(harness.token, user.id)]
    assert texts.count(help_reply.content) == 1
    assert texts.count(FOLLOWUP_Q) == 1
    assert [e.kind for e in await harness.consent_events(graduate)] == ["survey"]


ROW_LEVEL_WHO = {
    "en": "Only the school's administrators, and researchers it appoints (under a code, "
    "without what you wrote in your own words), can download the answers one response per row",
    "nl": "Alleen de beheerders van de school, en onderzoekers die de school aanwijst (onder een "
    "code, zonder wat je in je eigen woorden schreef), kunnen de antwoorden downloaden",
    "es": "Solo los administradores del centro, y los investigadores que designe (con un código, "
    "sin lo que escribiste con tus propias palabras), pueden descargar las respuestas",
    "et": "Ainult kooli administraatorid ja kooli määratud uurijad (koodi all, ilma sinu oma "
    "sõnadega kirjutatuta) saavad vastuseid analüüsimiseks alla laadida",
    "it": "Solo gli amministratori della scuola, e i ricercatori che la scuola incarica (con un "
    "codice, senza quello che hai scritto con parole tue), possono scaricare le risposte",
}
"""What the dashboard enforces about row-level data (the responses export: admins, and
researchers under a pseudonym without free text), as the graduate reads it."""


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_the_privacy_notice_says_who_sees_row_level_data(harness: Harness, lang: str) -> None:
    """What the dashboard enforces (only admins, and researchers under a code without free
    text, download responses row by row; staff see totals without groups under five) is what
    the graduate reads, in their language."""
    school = await harness.school(country="NL", language="nl")
    graduate = await harness.graduate(school)
    user = harness.user(language_code=lang)
    await harness.send(user, f"/start {graduate.invite_token}")
    notice, _survey = await harness.press(user, language_name(lang), expect=2)
    assert ROW_LEVEL_WHO[lang] in notice.content
