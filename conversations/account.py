"""A graduate's own settings from the chat: /language, /privacy, /help, and block/unblock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from telegram import ChatMember, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.dedupe import claim
from bot.i18n import _, language_name, set_language
from bot.runtime import runtime
from conversations import onboarding, survey
from conversations.prompting import has_open_question, restate, send_prompt, use_chat_language
from conversations.rules import LANGUAGES
from storage.models import ConsentKind, Graduate, Institution
from storage.queries import get_chat_state, graduate_by_chat, set_consent, touch_state
from storage.types import utcnow

log = logging.getLogger(__name__)

LANG_PREFIX = "lang:"
PRIVACY_PREFIX = "pv:"


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await use_chat_language(update, context)
    assert update.effective_message is not None
    await update.effective_message.reply_text(help_text())


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


async def language_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await use_chat_language(update, context)
    assert update.effective_message is not None
    await update.effective_message.reply_text(
        _("Which language do you prefer?"),
        reply_markup=onboarding.language_keyboard(LANG_PREFIX),
    )


async def on_language_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    query = update.callback_query
    assert query is not None and query.data is not None and update.effective_chat is not None
    chat_id = update.effective_chat.id
    code = query.data[len(LANG_PREFIX) :]
    if code not in LANGUAGES:
        await use_chat_language(update, context)
        await query.answer(_("Please choose one of the buttons."))
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
    await query.answer()
    try:
        await query.edit_message_text(
            _("Which language do you prefer?") + f"\n\n→ {language_name(code)}"
        )
    except BadRequest as exc:
        log.debug("language message not edited: %s", exc)
    await rt.bot.send_message(chat_id, _("From now on I will write to you in English."))
    await restate(rt, chat_id)


def _privacy_keyboard(graduate: Graduate) -> InlineKeyboardMarkup:
    def row(kind: ConsentKind, label: str) -> list[InlineKeyboardButton]:
        value = getattr(graduate, f"consent_{kind.value}")
        mark = "✅" if value else "⬜"
        return [InlineKeyboardButton(f"{mark} {label}", callback_data=PRIVACY_PREFIX + kind.value)]

    return InlineKeyboardMarkup(
        [
            row(ConsentKind.SURVEY, _("Questionnaire")),
            row(ConsentKind.FOLLOWUP, _("Follow-up questionnaires")),
            row(ConsentKind.NEWS, _("Alumni news")),
        ]
    )


def _privacy_status(graduate: Graduate) -> str:
    return _("Your current choices (tap to change):") + "\n" + onboarding.consent_summary(graduate)


async def privacy_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    graduate = await use_chat_language(update, context)
    message = update.effective_message
    assert message is not None
    if graduate is None:
        await message.reply_text(
            _(
                "You are not registered yet, so I store nothing about you. To begin, please "
                "open the personal link or scan the QR code your school gave you."
            )
        )
        return
    async with rt.db.session() as session:
        school = await session.get(Institution, graduate.institution_id)
    assert school is not None
    await message.reply_text(onboarding.privacy_notice(school, rt.settings.privacy_notice_version))
    await message.reply_text(_privacy_status(graduate), reply_markup=_privacy_keyboard(graduate))


async def on_privacy_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    query = update.callback_query
    assert query is not None and query.data is not None and update.effective_chat is not None
    await use_chat_language(update, context)
    kind_value = query.data[len(PRIVACY_PREFIX) :]
    try:
        kind = ConsentKind(kind_value)
    except ValueError:
        await query.answer(_("Please choose one of the buttons."))
        return
    async with rt.db.session() as session:
        await claim(session)
        graduate = await graduate_by_chat(session, update.effective_chat.id)
        if graduate is None:
            await query.answer(_("You are not registered yet."))
            return
        new_value = not getattr(graduate, f"consent_{kind.value}")
        set_consent(session, graduate, kind, new_value, rt.settings.privacy_notice_version)
    await query.answer(_("Saved."))
    try:
        await query.edit_message_text(
            _privacy_status(graduate), reply_markup=_privacy_keyboard(graduate)
        )
    except BadRequest as exc:
        log.debug("privacy message not edited: %s", exc)


async def stop_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stop: no more messages of any kind until the graduate sends /start again."""
    rt = runtime(context)
    graduate = await use_chat_language(update, context)
    assert update.effective_message is not None and update.effective_chat is not None
    if graduate is not None:
        async with rt.db.session() as session:
            await claim(session)
            stored = await graduate_by_chat(session, update.effective_chat.id)
            if stored is not None and stored.opted_out_at is None:
                stored.opted_out_at = utcnow()
                stored.updated_at = utcnow()
                session.add(stored)
    await update.effective_message.reply_text(
        _("Done: I will not send you any more messages. If you change your mind, send /start.")
    )


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any text: an open onboarding question takes it; otherwise point to /help."""
    if await onboarding.on_text(update, context) or await survey.on_text(update, context):
        return
    graduate = await use_chat_language(update, context)
    assert update.effective_message is not None
    if graduate is None:
        await update.effective_message.reply_text(onboarding.not_registered_text())
        return
    await update.effective_message.reply_text(
        _("Sorry, I did not understand that. /help lists what I can do.")
    )


#: Forwarded messages arriving within this many seconds of the one answered are one burst:
#: answered once (`on_forwarded`).
FORWARD_BURST_SECONDS = 10
_FORWARD_TOLD = "forward_told_at"


def unreadable_text() -> str:
    return _("I can only read text and buttons.")


def forwarded_text() -> str:
    return _("I do not read forwarded messages: please type your answer yourself.")


async def on_unreadable(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A message the bot cannot read (a photo, sticker, voice note, document, location,
    contact, dice …): say so in the person's language, then what to do now."""
    await _explain(update, context, unreadable_text)


async def on_forwarded(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A forwarded message, never taken as an answer or a command. A burst of forwards
    (several messages forwarded at once arrive as one update each) is answered once: the
    time of the answer is kept in the chat's state, so that it holds across restarts and
    `serve` workers (Telegram delivers one chat's updates one at a time)."""
    rt = runtime(context)
    assert update.effective_chat is not None
    chat_id = update.effective_chat.id
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
    await _explain(update, context, forwarded_text)


async def _explain(
    update: Update, context: ContextTypes.DEFAULT_TYPE, say: Callable[[], str]
) -> None:
    """`say()`, then what to do now: the open question again, or where to begin."""
    rt = runtime(context)
    message = update.effective_message
    assert message is not None and update.effective_chat is not None
    graduate = await use_chat_language(update, context)
    notice = say()  # in the chat's language, now that it is known
    if await has_open_question(rt, update.effective_chat.id):
        await message.reply_text(notice + " " + _("Here is the question again."))
        await send_prompt(rt, update.effective_chat.id, preface=False)
    elif graduate is None:
        await message.reply_text(notice + "\n\n" + onboarding.not_registered_text())
    else:
        await message.reply_text(notice + " " + _("/help lists what I can do."))


async def on_stale_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button whose data we do not know (an old message, or forged data)."""
    await use_chat_language(update, context)
    query = update.callback_query
    assert query is not None
    await query.answer(_("This button is no longer active."))


async def on_my_chat_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The graduate blocked (or unblocked) the bot."""
    rt = runtime(context)
    change = update.my_chat_member
    if change is None or change.chat.type != "private":
        return
    status = change.new_chat_member.status
    async with rt.db.session() as session:
        await claim(session)
        graduate = await graduate_by_chat(session, change.chat.id)
        if graduate is None:
            return
        if status in (ChatMember.BANNED, ChatMember.LEFT):
            graduate.unreachable_at = graduate.unreachable_at or utcnow()
            graduate.unreachable_reason = "blocked"
        elif status == ChatMember.MEMBER and graduate.unreachable_reason == "blocked":
            graduate.unreachable_at = None
            graduate.unreachable_reason = None
        session.add(graduate)


__all__ = [
    "LANGUAGES",
    "help_command",
    "language_command",
    "on_forwarded",
    "on_language_button",
    "on_my_chat_member",
    "on_privacy_button",
    "on_stale_button",
    "on_text",
    "on_unreadable",
    "privacy_command",
]
