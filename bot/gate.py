"""What reaches the handlers: updates of private chats with the bot, nothing else.

gradtrack talks to each graduate and staff member in their private chat. An update from
elsewhere is dropped before any handler, without a word (the bot must not chat in groups):
- a message or button press in a group, supergroup or channel the bot was added to (a
  `/start <invite>` there must not link a group to a graduate), or without a sender;
- a button press without its message (an inline message: gradtrack sends none), which is
  answered "no longer active" so that the person's button stops spinning;
- the bot added to a group: it leaves.
"""

from __future__ import annotations

import logging

from telegram import Chat, Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.i18n import _, use_language

log = logging.getLogger(__name__)

#: After flood control's first handler (bot.throttle.GROUP), before the metrics.
GROUP = -20


def admitted(update: Update) -> bool:
    """Whether the handlers should see `update`."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None or chat.type != Chat.PRIVATE:
        return False
    return not (update.callback_query is not None and update.callback_query.message is None)


async def admit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Drop an update that is not from a private chat with the bot (see the module)."""
    if admitted(update):
        return
    from bot.metrics import metrics_of

    metrics_of(context.application).updates_refused.inc()
    chat = update.effective_chat
    log.info("update %s refused: not from a private chat", update.update_id)
    try:
        query = update.callback_query
        if query is not None and query.message is None:
            user = update.effective_user
            with use_language(user.language_code if user is not None else None):
                await query.answer(_("This button is no longer active."))
        elif (
            update.my_chat_member is not None
            and chat is not None
            and chat.type != Chat.PRIVATE
            and update.my_chat_member.new_chat_member.status in ("member", "administrator")
        ):
            await context.bot.leave_chat(chat.id)
    except TelegramError:
        log.debug("could not answer a refused update", exc_info=True)
    raise ApplicationHandlerStop
