"""What every flow needs: database, settings, clock, questionnaires, wave plans, and the
channels that deliver messages (kept in the Application's bot_data for the Telegram
handlers; the web chat holds the same object).

Nothing here imports python-telegram-bot: flows reach a chat through `Runtime.channel_for`,
and only the Telegram adapter (bot/telegram_channel.py) knows the Bot API."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot import logs
from bot.clock import Clock
from bot.mail import Mailer
from bot.settings import Settings
from conversations.channel import Channel
from conversations.registry import QuestionnaireRegistry
from conversations.waves import WavePlans
from storage.db import Database
from storage.queries import graduate_by_chat, is_web_chat
from storage.types import utcnow

if TYPE_CHECKING:
    from telegram import Bot
    from telegram.ext import Application, ContextTypes

log = logging.getLogger(__name__)

RUNTIME_KEY = "gradtrack"


@dataclass
class Runtime:
    db: Database
    settings: Settings
    #: The Telegram Bot API client, for the Telegram adapter and bulk sending (bot/); flows
    #: never use it: they go through `channel_for`.
    bot: Bot
    questionnaires: QuestionnaireRegistry
    plans: WavePlans
    clock: Clock
    #: Set by a graceful stop (bot.scheduler.LeaderScheduler.stop): dispatchers being
    #: cancelled finish the messages in flight and give back their claims (bot/claims.py),
    #: rather than being cut off as when this process stops leading.
    stopping: bool = False
    #: Telegram chats (set by `install`).
    telegram: Channel | None = None
    #: Graduates' web chats (bot/web/chat.py), where the web chat is served.
    web: Channel | None = field(default=None)

    def channel_for(self, chat_id: int) -> Channel:
        """The channel of chat `chat_id`: a web chat, or Telegram."""
        channel = self.web if is_web_chat(chat_id) else self.telegram
        if channel is None:
            kind = "web" if is_web_chat(chat_id) else "Telegram"
            raise RuntimeError(f"no {kind} channel in this process")
        return channel

    #: Sends e-mail (bot.mail.make_mailer): made once at startup by `gradtrack run`/`serve`,
    #: else on first use (bot.email_delivery.mailer_of).
    mailer: Mailer | None = None


def install(
    application: Application[Any, Any, Any, Any, Any, Any],
    db: Database,
    settings: Settings,
    questionnaires: QuestionnaireRegistry,
    plans: WavePlans,
    clock: Clock,
) -> Runtime:
    from bot.telegram_channel import TelegramChannel
    from bot.web_channel import WebChannel

    rt = Runtime(
        db=db,
        settings=settings,
        bot=application.bot,
        questionnaires=questionnaires,
        plans=plans,
        clock=clock,
    )
    rt.telegram = TelegramChannel(rt)
    rt.web = WebChannel(db)
    application.bot_data[RUNTIME_KEY] = rt
    return rt


def runtime(context: ContextTypes.DEFAULT_TYPE) -> Runtime:
    rt = context.bot_data[RUNTIME_KEY]
    assert isinstance(rt, Runtime)
    return rt


def unreachable_reason(message: str) -> str:
    """ "blocked", "deactivated" or "forbidden", from Telegram's 403 description."""
    text = message.lower()
    if "deactivated" in text:
        return "deactivated"
    if "blocked" in text:
        return "blocked"
    return "forbidden"


async def mark_unreachable(rt: Runtime, chat_id: int, message: str) -> None:
    """The channel said this chat cannot be reached (Telegram's 403, with its `message`):
    never retry it, and count the graduate unreachable."""
    log.info("chat %s is unreachable: %s", logs.chat_ref(chat_id), message)
    async with rt.db.session() as session:
        graduate = await graduate_by_chat(session, chat_id)
        if graduate is not None and graduate.unreachable_at is None:
            graduate.unreachable_at = utcnow()
            graduate.unreachable_reason = unreachable_reason(message)
            session.add(graduate)
