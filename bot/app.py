"""The one place the python-telegram-bot Application is wired: handlers, rate limiter,
commands, error handling. The same code runs against Telegram and against the sandbox."""

from __future__ import annotations

import functools
import logging
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from telegram import BotCommand, Update
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    BaseRateLimiter,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import dedupe, gate, metrics, telegram_channel, throttle
from bot.clock import Clock, SystemClock
from bot.i18n import LANGUAGES, _, use_language
from bot.ratelimit import ReplyFirstRateLimiter
from bot.runtime import Runtime, install, mark_unreachable, runtime
from bot.settings import Settings
from conversations import account, prompting, routes
from conversations.channel import DeliveryError, Unreachable
from conversations.registry import QuestionnaireRegistry
from conversations.rules import choose_language
from conversations.waves import DEFAULT_PLAN_FILE, WavePlans, load_plans
from storage.db import Database
from storage.queries import get_chat_state, graduate_by_chat

log = logging.getLogger(__name__)

GradtrackApp = Application[Any, Any, Any, Any, Any, Any]

ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.MY_CHAT_MEMBER]


def bot_commands() -> list[BotCommand]:
    """The command menu, in the current language."""
    return [
        BotCommand("start", _("Begin or continue")),
        BotCommand("survey", _("Answer the questionnaire")),
        BotCommand("language", _("Choose the language")),
        BotCommand("privacy", _("Privacy notice and your choices")),
        BotCommand("mydata", _("A copy of your data")),
        BotCommand("delete", _("Delete your data")),
        BotCommand("stop", _("Stop all messages")),
        BotCommand("help", _("What I can do")),
    ]


async def on_startup(application: GradtrackApp) -> None:
    """Once the application is started: publish the command menu in every language, and send
    the questions a crash or restart left unsent."""
    rt: Runtime = application.bot_data["gradtrack"]
    await rt.questionnaires.sync(rt.db)
    with use_language("en"):
        await application.bot.set_my_commands(bot_commands())
    for lang in LANGUAGES:
        with use_language(lang):
            await application.bot.set_my_commands(bot_commands(), language_code=lang)
    resent = await prompting.resend_pending_prompts(rt)
    if resent:
        log.info("re-sent %d questions that were pending at the last stop", resent)


#: The update whose sender was last told that something went wrong.
_told: ContextVar[int | None] = ContextVar("gradtrack_error_told", default=None)


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Report the failure (`_report_error`). When it was the duplicate check that failed, the
    update goes no further: handled without the check, a redelivered copy could take effect
    twice, and its effect would not be recorded as processed."""
    await _report_error(update, context)
    if isinstance(update, Update) and dedupe.check_failed(update.update_id):
        await metrics.update_finished(update, context)  # the last group will not run
        raise ApplicationHandlerStop


async def _report_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the failure and tell the person, in their language, to try again: once per
    update, however many of its handler groups fail (with the database down, all do), and
    not when Telegram failed after their answer was stored (the next question comes)."""
    log.error("error while handling an update", exc_info=context.error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    rt = runtime(context)
    chat_id = update.effective_chat.id
    if isinstance(context.error, Forbidden | Unreachable):
        await mark_unreachable(rt, chat_id, _error_text(context.error))
        return
    if _told.get() == update.update_id:
        return
    _told.set(update.update_id)
    language = None
    pending = False
    try:
        async with rt.db.session() as session:
            state = await get_chat_state(session, chat_id)
            graduate = await graduate_by_chat(session, chat_id)
            language = state.language or (graduate.language if graduate else None)
            pending = state.prompt_pending
            session.expunge(state)
    except Exception:  # the database may be what failed: Telegram's language_code will do
        log.debug("no language for the error message", exc_info=True)
    if (
        pending
        and isinstance(context.error, NetworkError)
        and not isinstance(context.error, BadRequest)  # a 400: sending again will not help
    ):
        # Telegram failed (5xx, timeout) after the answer was stored with the next question
        # pending: that question is sent again (prompting.resend_pending_prompts). "Try
        # again" would make the person type this answer again, as the next question's.
        return
    user = update.effective_user
    with use_language(choose_language(language, user.language_code if user else None, None)):
        text = _("Sorry, something went wrong on our side. Please try again in a minute.")
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(text, show_alert=True)
        else:
            await rt.bot.send_message(chat_id, text)
    except TelegramError:
        log.debug("could not tell the user about the error", exc_info=True)


def _error_text(error: BaseException) -> str:
    if isinstance(error, TelegramError):
        return error.message
    if isinstance(error, DeliveryError):
        return error.detail
    return str(error)


def build_application(
    settings: Settings,
    db: Database,
    *,
    token: str | None = None,
    base_url: str | None = None,
    rate_limiter: bool | BaseRateLimiter[Any] = True,
    questionnaires: QuestionnaireRegistry | None = None,
    plans: WavePlans | None = None,
    clock: Clock | None = None,
    observed: metrics.Metrics | None = None,
) -> GradtrackApp:
    """The bot, wired to `db` and to the Bot API at `base_url` (Telegram by default).
    Its metrics are `observed` (new ones by default: see bot.metrics)."""
    observed = observed or metrics.Metrics()
    builder = Application.builder().token(token or settings.telegram_bot_token)
    api = (base_url or settings.telegram_api_base_url).rstrip("/")
    builder = builder.base_url(api).base_file_url(api.replace("/bot", "/file/bot", 1))
    # python-telegram-bot's default transports (pool sizes as its builder's), counting answers.
    builder = builder.request(metrics.InstrumentedRequest(observed, connection_pool_size=256))
    updates_request = throttle.UpdatesRequest(observed, connection_pool_size=1)
    builder = builder.get_updates_request(updates_request)
    if rate_limiter is not False:
        # Replies first; bulk sends at BULK_SEND_PER_SECOND from what replies leave (an
        # instance given here instead: the benchmarks compare with AIORateLimiter).
        limiter: Any = (
            ReplyFirstRateLimiter(settings.bulk_send_per_second, max_retries=3)
            if rate_limiter is True
            else rate_limiter
        )
        builder = builder.rate_limiter(limiter)
    application = builder.build()
    registry = questionnaires or QuestionnaireRegistry()
    if plans is None:
        path = Path(settings.waves_file) if settings.waves_file else DEFAULT_PLAN_FILE
        plans = load_plans(path, set(registry.form_ids))
    install(application, db, settings, registry, plans, clock or SystemClock())
    application.bot_data[metrics.METRICS_KEY] = observed

    application.bot_data[throttle.THROTTLE_KEY] = throttle.ChatThrottle(
        settings.throttle_per_second, settings.throttle_burst
    )
    updates_request.screen = functools.partial(
        throttle.screen_updates, application, keep_offset=True
    )
    application.add_handler(TypeHandler(Update, throttle.check), group=throttle.GROUP)
    application.add_handler(TypeHandler(Update, gate.admit), group=gate.GROUP)
    application.add_handler(TypeHandler(Update, metrics.update_started), group=metrics.FIRST_GROUP)
    application.add_handler(TypeHandler(Update, dedupe.skip_processed), group=-1)
    application.add_handler(TypeHandler(Update, dedupe.claim_leftover), group=100)
    application.add_handler(TypeHandler(Update, metrics.update_finished), group=metrics.LAST_GROUP)
    # A forwarded message is never a command nor an answer (a forwarded "/start <invite>"
    # is someone else's link); news being written may be a forward.
    private_message = filters.ChatType.PRIVATE & ~filters.StatusUpdate.ALL
    on_message = telegram_channel.handler(routes.STAFF_MESSAGE)
    application.add_handler(MessageHandler(private_message & filters.FORWARDED, on_message))
    # The graduates' flows, as every channel routes them, then the staff's, which Telegram
    # alone routes (conversations/routes.py).
    for name, flow in (routes.COMMANDS | routes.STAFF_COMMANDS).items():
        application.add_handler(CommandHandler(name, telegram_channel.handler(flow)))
    for pattern, flow in routes.BUTTONS + routes.STAFF_BUTTONS:
        application.add_handler(
            CallbackQueryHandler(telegram_channel.handler(flow), pattern=pattern)
        )
    application.add_handler(MessageHandler(private_message & ~filters.COMMAND, on_message))
    application.add_handler(CallbackQueryHandler(telegram_channel.handler(account.on_stale_button)))
    application.add_handler(
        MessageHandler(
            filters.ChatType.PRIVATE & filters.TEXT & ~filters.COMMAND,
            telegram_channel.handler(account.on_text),
        )
    )
    application.add_handler(
        MessageHandler(
            filters.ChatType.PRIVATE & filters.COMMAND,
            telegram_channel.handler(account.help_command),
        )
    )
    application.add_handler(
        ChatMemberHandler(telegram_channel.on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER)
    )
    application.add_error_handler(_on_error)
    return application
