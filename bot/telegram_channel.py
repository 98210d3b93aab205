"""The Telegram adapter: updates become turns (conversations/channel.py), messages become Bot
API calls. The only place, with bot/app.py's wiring and the bulk senders, that knows
python-telegram-bot.

- `TelegramChannel` sends, edits and sends files through the bot (`Runtime.bot`, talking to
  Telegram or to the sandbox through `base_url`); a 403 becomes `Unreachable`, a 400
  `Refused`; network errors, 5xx and 429 are raised as python-telegram-bot raises them (the
  error handler in bot/app.py and the resender deal with them).
- `turn_of(update)` reads what the person did; `handler(flow)` makes a flow
  (`async def flow(rt, turn)`) a python-telegram-bot callback.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from telegram import (
    ChatMember,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden
from telegram.ext import ContextTypes

from conversations.channel import Button, Event, Keyboard, Refused, Turn, Unreachable
from storage.processed import AlreadyProcessed, claim
from storage.queries import graduate_by_chat
from storage.types import utcnow

if TYPE_CHECKING:
    from telegram import Bot

    from bot.runtime import Runtime

Flow = Callable[["Runtime", Turn], Awaitable[object]]


def _inline(button: Button) -> InlineKeyboardButton:
    if button.url is not None:
        return InlineKeyboardButton(button.label, url=button.url)
    return InlineKeyboardButton(button.label, callback_data=button.data)


def markup(buttons: Keyboard) -> InlineKeyboardMarkup | None:
    """Inline keyboard of `buttons` (link buttons for those with a url); None for none."""
    if not buttons:
        return None
    return InlineKeyboardMarkup([[_inline(b) for b in row] for row in buttons])


async def send_message(
    bot: Bot,
    chat_id: int,
    text: str,
    buttons: Keyboard = (),
    *,
    html: bool = False,
    photo: str | None = None,
    link_preview: bool = True,
) -> Message:
    """One message as the Bot API takes it: a text, or a photo with `text` as its caption;
    Telegram's errors raised as python-telegram-bot raises them (the bulk senders classify
    them: bot/delivery.py)."""
    parse_mode = ParseMode.HTML if html else None
    if photo:
        return await bot.send_photo(
            chat_id, photo, caption=text, parse_mode=parse_mode, reply_markup=markup(buttons)
        )
    if link_preview:
        return await bot.send_message(
            chat_id, text, parse_mode=parse_mode, reply_markup=markup(buttons)
        )
    return await bot.send_message(
        chat_id,
        text,
        parse_mode=parse_mode,
        reply_markup=markup(buttons),
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )


@contextlib.contextmanager
def _channel_errors() -> Iterator[None]:
    """Telegram's 403 as `Unreachable`, its 400 (too long, not modified, too old, deleted)
    as `Refused`; anything else as python-telegram-bot raises it."""
    try:
        yield
    except Forbidden as exc:
        raise Unreachable("forbidden", exc.message) from exc
    except BadRequest as exc:
        raise Refused("bad_request", exc.message) from exc


class TelegramChannel:
    """Telegram chats, through the Bot API client of `rt`."""

    name = "telegram"

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def send(
        self,
        chat_id: int,
        text: str,
        buttons: Keyboard = (),
        *,
        html: bool = False,
        photo: str | None = None,
        link_preview: bool = True,
    ) -> int | None:
        with _channel_errors():
            message = await send_message(
                self._rt.bot,
                chat_id,
                text,
                buttons,
                html=html,
                photo=photo,
                link_preview=link_preview,
            )
        return message.message_id

    async def edit(
        self, chat_id: int, message_id: int, text: str | None, buttons: Keyboard = ()
    ) -> None:
        with _channel_errors():
            if text is None:
                await self._rt.bot.edit_message_reply_markup(
                    chat_id, message_id, reply_markup=markup(buttons)
                )
            else:
                await self._rt.bot.edit_message_text(
                    text, chat_id, message_id, reply_markup=markup(buttons)
                )

    async def send_file(self, chat_id: int, filename: str, data: bytes, caption: str) -> None:
        with _channel_errors():
            await self._rt.bot.send_document(
                chat_id, InputFile(data, filename=filename), caption=caption
            )


def event_of(update: Update, args: list[str] | None = None) -> Event:
    """What the person did, from a Telegram update (a private chat's: bot/gate.py)."""
    user = update.effective_user
    language = user.language_code if user is not None else None
    sender_id = user.id if user is not None else None
    sender_name = (user.full_name or None) if user is not None else None
    query = update.callback_query
    if query is not None:
        pressed = query.message
        return Event(
            "button",
            sender_id=sender_id,
            sender_name=sender_name,
            data=query.data or "",
            message_id=pressed.message_id if pressed is not None else None,
            message_text=getattr(pressed, "text", None),
            language=language,
        )
    message = update.effective_message
    if message is None:
        return Event("other", language=language, sender_id=sender_id, sender_name=sender_name)
    forwarded = message.forward_origin is not None
    text = message.text
    if text is None:
        caption = message.caption
        return Event(
            "other",
            language=language,
            forwarded=forwarded,
            sender_id=sender_id,
            sender_name=sender_name,
            html=message.caption_html if caption is not None else None,
            caption=caption,
            photo=message.photo[-1].file_id if message.photo else None,
        )
    if text.startswith("/") and not forwarded:
        parts = text[1:].split()
        name = parts[0].split("@", 1)[0].lower() if parts else ""
        return Event(
            "command",
            name=name,
            args=tuple(args if args is not None else parts[1:]),
            text=text,
            language=language,
            sender_id=sender_id,
            sender_name=sender_name,
        )
    return Event(
        "text",
        text=text,
        language=language,
        forwarded=forwarded,
        sender_id=sender_id,
        sender_name=sender_name,
        html=message.text_html,
    )


def turn_of(rt: Runtime, update: Update, context: ContextTypes.DEFAULT_TYPE) -> Turn:
    """The turn of `update`: its chat, what the person did, and how to answer."""
    assert update.effective_chat is not None
    query = update.callback_query

    async def acknowledge(text: str | None, alert: bool) -> None:
        if query is not None:
            # Too old to answer (the person waited): there is no spinner left to stop.
            with contextlib.suppress(BadRequest):
                await query.answer(text, show_alert=alert)

    channel = rt.channel_for(update.effective_chat.id)
    return Turn(
        update.effective_chat.id,
        event_of(update, list(context.args) if context.args is not None else None),
        channel,
        acknowledge,
    )


def handler(
    flow: Flow,
) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]:
    """A python-telegram-bot callback running `flow` on the update's turn."""
    from bot.dedupe import drop_copy
    from bot.runtime import runtime

    # Named as the flow (module included): logs and tests see which flow a handler runs.
    @functools.wraps(flow)
    async def callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        rt = runtime(context)
        try:
            await flow(rt, turn_of(rt, update, context))
        except AlreadyProcessed:  # its claim found a copy (bot/dedupe.py)
            await drop_copy(rt, update)

    return callback


async def on_my_chat_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The graduate blocked (or unblocked) the bot: Telegram's own event, with no turn."""
    from bot.runtime import runtime

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
