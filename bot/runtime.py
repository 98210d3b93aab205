"""What every handler needs, kept in the Application's bot_data: database, settings, bot."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from telegram import Bot
from telegram.error import Forbidden
from telegram.ext import Application, ContextTypes

from bot import logs
from bot.clock import Clock
from bot.mail import Mailer
from bot.settings import Settings
from conversations.registry import QuestionnaireRegistry
from conversations.waves import WavePlans
from storage.db import Database
from storage.queries import graduate_by_chat
from storage.types import utcnow

log = logging.getLogger(__name__)

RUNTIME_KEY = "gradtrack"


@dataclass
class Runtime:
    db: Database
    settings: Settings
    bot: Bot
    questionnaires: QuestionnaireRegistry
    plans: WavePlans
    clock: Clock
    #: Set by a graceful stop (bot.scheduler.LeaderScheduler.stop): dispatchers being
    #: cancelled finish the messages in flight and give back their claims (bot/claims.py),
    #: rather than being cut off as when this process stops leading.
    stopping: bool = False
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
    rt = Runtime(
        db=db,
        settings=settings,
        bot=application.bot,
        questionnaires=questionnaires,
        plans=plans,
        clock=clock,
    )
    application.bot_data[RUNTIME_KEY] = rt
    return rt


def runtime(context: ContextTypes.DEFAULT_TYPE) -> Runtime:
    rt = context.bot_data[RUNTIME_KEY]
    assert isinstance(rt, Runtime)
    return rt


def unreachable_reason(exc: Forbidden) -> str:
    text = exc.message.lower()
    if "deactivated" in text:
        return "deactivated"
    if "blocked" in text:
        return "blocked"
    return "forbidden"


async def mark_unreachable(rt: Runtime, chat_id: int, exc: Forbidden) -> None:
    """Telegram said 403 for this chat: never retry it, and count the graduate unreachable."""
    log.info("chat %s is unreachable: %s", logs.chat_ref(chat_id), exc.message)
    async with rt.db.session() as session:
        graduate = await graduate_by_chat(session, chat_id)
        if graduate is not None and graduate.unreachable_at is None:
            graduate.unreachable_at = utcnow()
            graduate.unreachable_reason = unreachable_reason(exc)
            session.add(graduate)
