"""A graduate's own settings from the chat: /language, /privacy, /help, and block/unblock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.i18n import _, language_name, set_language
from bot.runtime import Runtime
from conversations import onboarding, survey
from conversations.channel import Button, Keyboard, Turn, keyboard
from conversations.notice import notice_messages, shown_version
from conversations.prompting import has_open_question, restate, send_prompt, use_chat_language
from conversations.rules import LANGUAGES
from storage.models import ConsentKind, Graduate, Institution
from storage.processed import claim
from storage.queries import get_chat_state, graduate_by_chat, set_consent, touch_state
from storage.types import utcnow

log = logging.getLogger(__name__)

LANG_PREFIX = "lang:"
PRIVACY_PREFIX = "pv:"


async def help_command(rt: Runtime, turn: Turn) -> None:
    await use_chat_language(rt, turn)
    await turn.say(help_text())


def help_text() -> str:
    return "\n".join(
        [
            _("This chat keeps you in touch with your school after your training."),
            "",
            _("/start – begin with the personal link from your school"),
            _("/survey – answer the questionnaire, or continue it"),
            _("/language – choose the language I speak"),
            _("/privacy – read the privacy notice and change your choices"),
            _("/mydata – get a copy of your data"),
            _("/delete – delete your data"),
            _("/stop – stop all messages from me"),
            _("/help – this list"),
        ]
    )


async def language_command(rt: Runtime, turn: Turn) -> None:
    await use_chat_language(rt, turn)
    await turn.say(
        _("Which language do you prefer?"),
        onboarding.language_keyboard(LANG_PREFIX),
    )


async def on_language_button(rt: Runtime, turn: Turn) -> None:
    chat_id = turn.chat_id
    code = turn.event.data[len(LANG_PREFIX) :]
    if code not in LANGUAGES:
        await use_chat_language(rt, turn)
        await turn.notice(_("Please choose one of the buttons."))
        return
    async with rt.db.session() as session:
        await claim(session)
        state = await get_chat_state(session, chat_id)
        state.language = code
        state.updated_at = utcnow()
        graduate = await graduate_by_chat(session, chat_id)
        if graduate is not None:
            graduate.language = code
            graduate.updated_at = utcnow()
            session.add(graduate)
        session.add(state)
    set_language(code)
    await turn.notice()
    await turn.edit(_("Which language do you prefer?") + f"\n\n→ {language_name(code)}")
    await turn.say(_("From now on I will write to you in English."))
    await restate(rt, chat_id)


def _privacy_keyboard(graduate: Graduate) -> Keyboard:
    def row(kind: ConsentKind, label: str) -> list[Button]:
        value = getattr(graduate, f"consent_{kind.value}")
        mark = "✅" if value else "⬜"
        return [Button(f"{mark} {label}", PRIVACY_PREFIX + kind.value)]

    return keyboard(
        [
            row(ConsentKind.SURVEY, _("Questionnaire")),
            row(ConsentKind.FOLLOWUP, _("Follow-up questionnaires")),
            row(ConsentKind.NEWS, _("Alumni news")),
        ]
    )


def _privacy_status(graduate: Graduate) -> str:
    return _("Your current choices (tap to change):") + "\n" + onboarding.consent_summary(graduate)


async def privacy_command(rt: Runtime, turn: Turn) -> None:
    graduate = await use_chat_language(rt, turn)
    if graduate is None:
        await turn.say(
            _(
                "You are not registered yet, so I store nothing about you. To begin, please "
                "open the personal link or scan the QR code your school gave you."
            )
        )
        return
    async with rt.db.session() as session:
        school = await session.get(Institution, graduate.institution_id)
    assert school is not None
    for text in notice_messages(rt.settings, school):
        await turn.say(text)
    await turn.say(_privacy_status(graduate), _privacy_keyboard(graduate))


async def on_privacy_button(rt: Runtime, turn: Turn) -> None:
    await use_chat_language(rt, turn)
    kind_value = turn.event.data[len(PRIVACY_PREFIX) :]
    try:
        kind = ConsentKind(kind_value)
    except ValueError:
        await turn.notice(_("Please choose one of the buttons."))
        return
    async with rt.db.session() as session:
        await claim(session)
        graduate = await graduate_by_chat(session, turn.chat_id)
        if graduate is None:
            await turn.notice(_("You are not registered yet."))
            return
        school = await session.get(Institution, graduate.institution_id)
        assert school is not None
        new_value = not getattr(graduate, f"consent_{kind.value}")
        set_consent(session, graduate, kind, new_value, shown_version(rt.settings, school))
    await turn.notice(_("Saved."))
    await turn.edit(_privacy_status(graduate), _privacy_keyboard(graduate))


async def stop_command(rt: Runtime, turn: Turn) -> None:
    """/stop: no more messages of any kind until the graduate sends /start again."""
    graduate = await use_chat_language(rt, turn)
    if graduate is not None:
        async with rt.db.session() as session:
            await claim(session)
            stored = await graduate_by_chat(session, turn.chat_id)
            if stored is not None and stored.opted_out_at is None:
                stored.opted_out_at = utcnow()
                stored.updated_at = utcnow()
                session.add(stored)
    await turn.say(
        _("Done: I will not send you any more messages. If you change your mind, send /start.")
    )


async def on_text(rt: Runtime, turn: Turn, flow: str | None = None) -> None:
    """Any text: an open onboarding question takes it; otherwise point to /help. `flow`: the
    chat's flow as the caller has just read it (the flows it rules out do not read the chat
    again only to find that the text is not theirs)."""
    if (flow is None or flow in onboarding.TEXT_FLOWS) and await onboarding.on_text(rt, turn):
        return
    if (flow is None or flow == survey.SURVEY) and await survey.on_text(rt, turn):
        return
    graduate = await use_chat_language(rt, turn)
    if graduate is None:
        await turn.say(onboarding.not_registered_text())
        return
    await turn.say(_("Sorry, I did not understand that. /help lists what I can do."))


#: Forwarded messages arriving within this many seconds of the one answered are one burst:
#: answered once (`on_forwarded`).
FORWARD_BURST_SECONDS = 10
_FORWARD_TOLD = "forward_told_at"


def unreadable_text() -> str:
    return _("I can only read text and buttons.")


def forwarded_text() -> str:
    return _("I do not read forwarded messages: please type your answer yourself.")


async def on_unreadable(rt: Runtime, turn: Turn) -> None:
    """A message the bot cannot read (a photo, sticker, voice note, document, location,
    contact, dice …): say so in the person's language, then what to do now."""
    await _explain(rt, turn, unreadable_text)


async def on_forwarded(rt: Runtime, turn: Turn) -> None:
    """A forwarded message, never taken as an answer or a command. A burst of forwards
    (several messages forwarded at once arrive as one update each) is answered once: the
    time of the answer is kept in the chat's state, so that it holds across restarts and
    `serve` workers (Telegram delivers one chat's updates one at a time)."""
    chat_id = turn.chat_id
    now = rt.clock.now()
    async with rt.db.session() as session:
        await claim(session)
        state = await get_chat_state(session, chat_id)
        told = state.data.get(_FORWARD_TOLD)
        try:
            last = datetime.fromisoformat(told) if isinstance(told, str) else None
        except ValueError:
            last = None
        if last is not None and abs((now - last).total_seconds()) < FORWARD_BURST_SECONDS:
            return  # the burst was answered
        state.data[_FORWARD_TOLD] = now.isoformat()
        touch_state(state)
        session.add(state)
    await _explain(rt, turn, forwarded_text)


async def _explain(rt: Runtime, turn: Turn, say: Callable[[], str]) -> None:
    """`say()`, then what to do now: the open question again, or where to begin."""
    graduate = await use_chat_language(rt, turn)
    notice = say()  # in the chat's language, now that it is known
    if await has_open_question(rt, turn.chat_id):
        await turn.say(notice + " " + _("Here is the question again."))
        await send_prompt(rt, turn.chat_id, preface=False)
    elif graduate is None:
        await turn.say(notice + "\n\n" + onboarding.not_registered_text())
    else:
        await turn.say(notice + " " + _("/help lists what I can do."))


async def on_stale_button(rt: Runtime, turn: Turn) -> None:
    """A button whose data we do not know (an old message, or forged data)."""
    await use_chat_language(rt, turn)
    await turn.notice(_("This button is no longer active."))


__all__ = [
    "LANGUAGES",
    "help_command",
    "language_command",
    "on_forwarded",
    "on_language_button",
    "on_privacy_button",
    "on_stale_button",
    "on_text",
    "on_unreadable",
    "privacy_command",
]
