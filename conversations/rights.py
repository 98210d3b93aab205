"""A graduate's data-protection rights, served from the chat: /mydata and /delete.

- `/mydata`: everything stored about the graduate, as a pretty-printed UTF-8 JSON file
  (`gradtrack-my-data.json`), with answers labelled in the graduate's language. Only the
  graduate's own data: no internal ids, no invite token (it is a credential, not information
  about the person).
- `/delete`: asks for confirmation with two buttons; "yes" erases the graduate's personal data
  (storage/erasure.py) in the same transaction as the update's `claim`, "no" keeps it.

The buttons carry the graduate they were asked for and when (`del:<yes|no>:<graduate>:<time>`,
base 36), so that a button of an older registration, an expired one, or one pressed again
after the data is gone changes nothing and says so.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import _, format_date, set_language
from bot.runtime import Runtime
from conversations import engine
from conversations.channel import Button, Turn, keyboard
from conversations.onboarding import not_registered_text
from conversations.prompting import close_question
from conversations.questionnaire import Question, Questionnaire, QuestionType
from conversations.rules import choose_language
from conversations.survey import decode_id, encode_id
from storage.erasure import REASON_REQUEST, erase_graduate
from storage.models import (
    Answer,
    ChatState,
    ConsentEvent,
    ConsentKind,
    FollowupEntry,
    Graduate,
    Institution,
    Invitation,
    Programme,
    SurveyResponse,
)
from storage.processed import claim
from storage.queries import graduate_by_chat, is_web_chat
from storage.schools import for_graduate

log = logging.getLogger(__name__)

DELETE_PREFIX = "del"
DELETE_PATTERN = r"^del:"
YES, NO = "yes", "no"
CONFIRM_TTL = timedelta(hours=1)
"""How long the buttons of a /delete question stay active."""
FILE_NAME = "gradtrack-my-data.json"


# ---------------------------------------------------------------- helpers


def _use_language(turn: Turn, state: ChatState | None, graduate: Graduate | None) -> str:
    """Speak the chat's language for the rest of this turn; returns it."""
    tg_language = turn.event.language
    language = choose_language(
        (state.language if state else None) or (graduate.language if graduate else None),
        tg_language,
        None,
    )
    set_language(language)
    return language


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


# ---------------------------------------------------------------- /mydata


def _answer_label(q: Questionnaire, question: Question, value: Any, lang: str) -> str:
    if question.type == QuestionType.DATE and isinstance(value, str):
        try:
            return format_date(date.fromisoformat(value), "long")
        except ValueError:
            return value
    return engine.answer_label(q, question, value, lang)


async def _response_export(
    rt: Runtime,
    session: AsyncSession,
    response: SurveyResponse,
    lang: str,
    waves: dict[int | None, str | None],
) -> dict[str, Any]:
    """One response with its answers. An answer carried from an earlier response (not asked
    again in this wave) names that response's wave in `carried_from_wave`."""
    rows = (
        await session.exec(
            select(Answer).where(Answer.response_id == response.id).order_by(col(Answer.id))
        )
    ).all()
    questionnaire: Questionnaire | None
    try:
        questionnaire = await rt.questionnaires.get(rt.db, response.form_id, response.version)
    except KeyError:
        log.warning("questionnaire %s %s unknown for an export", response.form_id, response.version)
        questionnaire = None
    if questionnaire is not None:  # choices as the graduate's school shows them
        graduate = await session.get(Graduate, response.graduate_id)
        questionnaire = await for_graduate(session, questionnaire, graduate)
    label_lang = lang
    if questionnaire is not None and lang not in questionnaire.languages:
        label_lang = questionnaire.default_language

    def question_of(answer: Answer) -> Question | None:
        if questionnaire is None or answer.question not in questionnaire:
            return None
        return questionnaire.question(answer.question)

    def position(answer: Answer) -> int:
        question = question_of(answer)
        if questionnaire is None or question is None:
            return 1 << 30
        return questionnaire.index(question.name)

    answers = []
    for answer in sorted(rows, key=position):
        question = question_of(answer)
        value_label = None
        if questionnaire is not None and question is not None:
            value_label = _answer_label(questionnaire, question, answer.value, label_lang)
        answers.append(
            {
                "question": answer.question,
                "question_label": question.label(label_lang) if question else None,
                "value": answer.value,
                "value_label": value_label,
                "answered_at": _iso(answer.answered_at),
                "carried_from_wave": (
                    waves.get(answer.carried_from) or "" if answer.carried_from else None
                ),
            }
        )
    return {
        "questionnaire": response.form_id,
        "questionnaire_title": questionnaire.title_in(label_lang) if questionnaire else None,
        "version": response.version,
        "wave": response.wave,
        "language": response.language,
        "status": response.status,
        "started_at": _iso(response.started_at),
        "submitted_at": _iso(response.submitted_at),
        "complete": response.complete,
        "answers": answers,
    }


async def export_data(
    rt: Runtime, session: AsyncSession, graduate: Graduate, lang: str
) -> dict[str, Any]:
    """Everything stored about `graduate` (their own data only), ready for JSON."""
    assert graduate.id is not None
    school = await session.get(Institution, graduate.institution_id)
    programme = await session.get(Programme, graduate.programme_id)
    events = (
        await session.exec(
            select(ConsentEvent)
            .where(ConsentEvent.graduate_id == graduate.id)
            .order_by(col(ConsentEvent.at), col(ConsentEvent.id))
        )
    ).all()
    responses = (
        await session.exec(
            select(SurveyResponse)
            .where(SurveyResponse.graduate_id == graduate.id)
            .order_by(col(SurveyResponse.started_at), col(SurveyResponse.id))
        )
    ).all()
    waves: dict[int | None, str | None] = {response.id: response.wave for response in responses}
    invitations = (
        await session.exec(
            select(Invitation)
            .where(Invitation.graduate_id == graduate.id)
            .order_by(col(Invitation.due_at), col(Invitation.id))
        )
    ).all()

    follow_up = (  # the school's handling on its follow-up lists (storage/followups.py)
        await session.exec(
            select(FollowupEntry)
            .where(FollowupEntry.graduate_id == graduate.id)
            .order_by(col(FollowupEntry.id))
        )
    ).all()

    def consent(kind: ConsentKind) -> dict[str, Any]:
        return {
            "given": getattr(graduate, f"consent_{kind.value}"),
            "at": _iso(getattr(graduate, f"consent_{kind.value}_at")),
            "notice_version": getattr(graduate, f"consent_{kind.value}_notice"),
        }

    return {
        "exported_at": _iso(rt.clock.now()),
        "school": {
            "name": school.name if school else None,
            "country": school.country if school else None,
        },
        "programme": {
            "code": programme.code if programme else None,
            "name": programme.name if programme else None,
            "eqf_level": programme.eqf_level if programme else None,
            "field": programme.field if programme else None,
        },
        "name": graduate.name,
        "student_number": graduate.student_ref,
        "self_registered": graduate.self_registered,
        "graduation_date": _iso(graduate.graduation_date),
        "language": graduate.language,
        "gender": graduate.gender,
        "birth_year": graduate.birth_year,
        "email": {
            "address": graduate.email,
            "status": graduate.email_status,
            "status_at": _iso(graduate.email_status_at),
        },
        "mobile": graduate.mobile,
        "telegram_chat": {"chat_id": graduate.chat_id, "linked_at": _iso(graduate.linked_at)},
        "guardian_consent_at": _iso(graduate.guardian_consent_at),
        "consents": {kind.value: consent(kind) for kind in ConsentKind},
        "consent_history": [
            {
                "kind": event.kind,
                "given": event.granted,
                "at": _iso(event.at),
                "notice_version": event.notice_version,
                "source": event.source,
            }
            for event in events
        ],
        "status": {
            "opted_out": graduate.opted_out_at is not None,
            "opted_out_at": _iso(graduate.opted_out_at),
            "unreachable": graduate.unreachable_at is not None,
            "unreachable_at": _iso(graduate.unreachable_at),
            "unreachable_reason": graduate.unreachable_reason,
        },
        "survey_responses": [
            await _response_export(rt, session, response, lang, waves) for response in responses
        ],
        "messages_from_school": [
            {
                "wave": invitation.wave,
                "questionnaire": invitation.form_id,
                "kind": "invitation" if invitation.seq == 0 else "reminder",
                "due_at": _iso(invitation.due_at),
                "status": invitation.status,
                "sent_at": _iso(invitation.sent_at),
            }
            for invitation in invitations
        ],
        "follow_up_by_the_school": [
            {
                "list": entry.list_name,
                "handled_at": _iso(entry.handled_at),
                "note": entry.note,
                "messaged_at": _iso(entry.contacted_at),
            }
            for entry in follow_up
        ],
        "record_created_at": _iso(graduate.created_at),
        "record_updated_at": _iso(graduate.updated_at),
    }


async def mydata_command(rt: Runtime, turn: Turn) -> None:
    """/mydata: the graduate's data as a JSON file."""
    chat_id = turn.chat_id
    async with rt.db.session() as session:
        graduate = await graduate_by_chat(session, chat_id)
        state = await session.get(ChatState, chat_id)
        language = _use_language(turn, state, graduate)
        if graduate is None:
            await turn.say(nothing_kept_text())
            return
        data = await export_data(rt, session, graduate, graduate.language or language)
    payload = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
    await turn.send_file(
        FILE_NAME,
        payload,
        _(
            "Here is a copy of all the data this chat stores about you. "
            "To have it deleted, send /delete."
        ),
    )


def nothing_kept_text() -> str:
    """/mydata in a chat linked to no one: never registered, or deleted with /delete."""
    return _(
        "I keep no data about you: this chat is not linked to anyone (if you deleted your "
        "data, it is gone). To register, please open the personal link or scan the QR code "
        "your school gave you."
    )


# ---------------------------------------------------------------- /delete


def _cb(choice: str, graduate_id: int, asked_at: datetime) -> str:
    return (
        f"{DELETE_PREFIX}:{choice}:{encode_id(graduate_id)}:{encode_id(int(asked_at.timestamp()))}"
    )


def confirmation_text() -> str:
    return _(
        "Do you want me to delete your data?\n\n"
        "I will delete your personal details (name, student number, e-mail address, mobile "
        "number, gender, year of birth), "
        "your privacy choices and everything you wrote in your own words, and unlink this "
        "chat. I will not write to you again. Your other answers (options and numbers) stay, "
        "without your name, only for your school's statistics. This cannot be undone.\n\n"
        "Want a copy first? Send /mydata."
    )


async def delete_command(rt: Runtime, turn: Turn) -> None:
    """/delete: ask before erasing anything."""
    chat_id = turn.chat_id
    async with rt.db.session() as session:
        graduate = await graduate_by_chat(session, chat_id)
        state = await session.get(ChatState, chat_id)
    _use_language(turn, state, graduate)
    if graduate is None or graduate.id is None:
        await turn.say(not_registered_text())
        return
    now = rt.clock.now()
    await turn.say(
        confirmation_text(),
        keyboard(
            [
                [Button(_("Yes, delete my data"), _cb(YES, graduate.id, now))],
                [Button(_("No, keep my data"), _cb(NO, graduate.id, now))],
            ]
        ),
    )


async def on_delete_button(rt: Runtime, turn: Turn) -> None:
    """A button of the /delete question: `del:<yes|no>:<graduate>:<asked at>`."""
    chat_id = turn.chat_id
    parts = turn.event.data.split(":")
    choice = parts[1] if len(parts) == 4 else ""
    graduate_id = decode_id(parts[2]) if len(parts) == 4 else None
    # A time, not a row id: past 2038-01-19 it is beyond MAX_ROW_ID.
    asked = decode_id(parts[3], maximum=36**8 - 1) if len(parts) == 4 else None
    now = rt.clock.now()
    outcome = ""
    async with rt.db.session() as session:
        await claim(session)
        graduate = await graduate_by_chat(session, chat_id)
        state = await session.get(ChatState, chat_id)
        _use_language(turn, state, graduate)
        if choice not in (YES, NO) or graduate_id is None or asked is None:
            outcome = "stale"
        elif graduate is None:
            outcome = "gone"
        elif graduate.id != graduate_id:
            outcome = "stale"
        elif now - datetime.fromtimestamp(asked, tz=now.tzinfo) > CONFIRM_TTL:
            outcome = "expired"
        elif choice == NO:
            outcome = "kept"
        else:
            await erase_graduate(
                session, graduate, now=now, reason=REASON_REQUEST, ref_key=rt.settings.key
            )
            outcome = "erased"
    if outcome == "gone":
        await turn.notice(_("Your data has already been deleted."))
        await close_question(turn, None)
    elif outcome == "stale":
        await turn.notice(_("This button is no longer active."))
        await close_question(turn, None)
    elif outcome == "expired":
        await turn.notice(_("This button is no longer active. Send /delete again."))
        await close_question(turn, None)
    elif outcome == "kept":
        await turn.notice()
        await close_question(turn, _("No, keep my data"))
        await turn.say(_("OK, I have not deleted anything."))
    else:
        await turn.notice()
        await close_question(turn, _("Yes, delete my data"))
        await turn.say(
            _(
                "Done: your data has been deleted and this conversation is no longer linked "
                "to you. I will not write to you again."
            )
            if is_web_chat(chat_id)
            else _(
                "Done: your data has been deleted and this chat is no longer linked to you. "
                "I will not write to you again. You can also delete this chat in Telegram."
            )
        )


__all__ = [
    "DELETE_PATTERN",
    "confirmation_text",
    "delete_command",
    "export_data",
    "mydata_command",
    "on_delete_button",
]
