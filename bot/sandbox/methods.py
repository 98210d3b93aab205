"""Bot API methods: what each call does to the sandbox's state and what it answers.

`BotApi.call` gets parameters already checked against the spec (`spec.py`). Methods with a
handler here (`_m_<lowercase name>`) behave like Telegram's, including its errors and
limits; any other method from the spec answers `true` when it returns a Boolean, posts a
placeholder message when it is a `send*` method returning a Message, and otherwise
answers `501 Not Implemented` (rather than a result the client could not parse).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import ApiError, bad_request, too_many_requests
from .formatting import ParseError, format_text, utf16_len
from .spec import MethodSpec, UploadedFile
from .state import (
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    BotAccount,
    ChatState,
    SandboxState,
    StoredFile,
    TranscriptEntry,
    WebhookConfig,
)

if TYPE_CHECKING:
    from .ratelimit import RateLimiter
    from .webhook import WebhookDelivery

Handler = Callable[[BotAccount, dict[str, Any]], Awaitable[Any]]

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_BUTTONS = 100
MAX_BUTTONS_PER_ROW = 8

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
WEBHOOK_CONFLICT = ApiError(
    409,
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first",
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_ACTION_FIELDS = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)
_BUTTON_URL_RE = re.compile(r"(https?|tg)://\S+", re.IGNORECASE)
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _inline_markup(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    return markup if markup is not None and "inline_keyboard" in markup else None


def check_inline_keyboard(markup: dict[str, Any]) -> None:
    """Telegram's limits on an InlineKeyboardMarkup (types are already checked)."""
    rows = markup["inline_keyboard"]
    if sum(len(row) for row in rows) > MAX_BUTTONS:
        raise bad_request("BUTTONS_TOO_MUCH")
    for row in rows:
        if len(row) > MAX_BUTTONS_PER_ROW:
            raise bad_request("BUTTON_ROWS_INVALID")
        for button in row:
            if not button["text"].strip():
                raise bad_request("BUTTON_TEXT_INVALID")
            actions = [k for k in button if k in _ACTION_FIELDS]
            if not actions:
                raise bad_request(
                    "can't parse inline keyboard button: "
                    "Text buttons are unallowed in the inline keyboard"
                )
            if len(actions) > 1:
                raise bad_request(
                    "can't parse inline keyboard button: exactly one of the optional fields "
                    f"must be used, got {', '.join(actions)}"
                )
            if "callback_data" in button:
                size = len(button["callback_data"].encode("utf-8"))
                if not 1 <= size <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
            if "url" in button and not _BUTTON_URL_RE.fullmatch(button["url"]):
                raise bad_request("BUTTON_URL_INVALID")
            if "style" in button and button["style"] not in ("danger", "success", "primary"):
                raise bad_request("BUTTON_STYLE_INVALID")


def check_reply_keyboard(markup: dict[str, Any]) -> None:
    for row in markup["keyboard"]:
        for button in row:
            if not button["text"].strip():
                raise bad_request("BUTTON_TEXT_INVALID")


class BotApi:
    """Carries out Bot API calls against a `SandboxState`."""

    def __init__(
        self,
        state: SandboxState,
        limiter: RateLimiter,
        webhooks: WebhookDelivery,
        *,
        allow_remote_webhooks: bool = False,
        max_poll_timeout: float = 50.0,
    ) -> None:
        self.state = state
        self.limiter = limiter
        self.webhooks = webhooks
        self.allow_remote_webhooks = allow_remote_webhooks
        self.max_poll_timeout = max_poll_timeout

    async def call(self, bot: BotAccount, method: MethodSpec, params: dict[str, Any]) -> Any:
        name = method.name.lower()
        handler: Handler | None = getattr(self, f"_m_{name}", None)
        if handler is not None:
            return await handler(bot, params)
        if name.startswith("send") and method.returns == ("Message",) and "chat_id" in params:
            return await self._placeholder_send(bot, method.name, params)
        if method.returns_boolean:
            return True
        raise ApiError(501, f"Not Implemented: the sandbox does not emulate {method.name} (yet)")

    # -- shared pieces --------------------------------------------------------------------

    def _flood(self, bot: BotAccount, chat: ChatState, *, edit: bool = False) -> None:
        if edit and not self.limiter.limits.count_edits:
            return
        retry_after = self.limiter.acquire(bot.id, chat.user.id)
        if retry_after:
            raise too_many_requests(retry_after)

    @staticmethod
    def _text(
        text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None
    ) -> tuple[str, list[dict[str, Any]] | None]:
        try:
            result, found = format_text(text, parse_mode, entities)
        except ParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
        except ValueError:
            raise bad_request("unsupported parse_mode") from None
        if not result:
            raise bad_request("message text is empty")
        if utf16_len(result) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        return result, found or None

    @staticmethod
    def _caption(
        params: dict[str, Any],
    ) -> tuple[str | None, list[dict[str, Any]] | None]:
        caption = params.get("caption")
        if caption is None:
            return None, None
        try:
            text, found = format_text(
                caption, params.get("parse_mode"), params.get("caption_entities")
            )
        except ParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
        except ValueError:
            raise bad_request("unsupported parse_mode") from None
        if utf16_len(text) > MAX_CAPTION_LENGTH:
            raise bad_request("message caption is too long")
        return (text or None), found or None

    @staticmethod
    def _markup(markup: dict[str, Any] | None) -> dict[str, Any] | None:
        if markup is None:
            return None
        if "inline_keyboard" in markup:
            check_inline_keyboard(markup)
        elif "keyboard" in markup:
            check_reply_keyboard(markup)
        return markup

    @staticmethod
    def _apply_reply_keyboard(chat: ChatState, markup: dict[str, Any] | None) -> None:
        if markup is None:
            return
        if "keyboard" in markup:
            chat.reply_keyboard = markup
        elif markup.get("remove_keyboard"):
            chat.reply_keyboard = None

    @staticmethod
    def _reply_to(chat: ChatState, reply: dict[str, Any] | None) -> int | None:
        if not reply:
            return None
        target = chat.messages.get(reply["message_id"])
        if target is None or target.deleted:
            if reply.get("allow_sending_without_reply"):
                return None
            raise bad_request("message to be replied not found")
        return target.message_id

    def _input_file(self, bot: BotAccount, value: Any, kind: str) -> StoredFile:
        if isinstance(value, UploadedFile):
            if not value.data:
                raise bad_request("file must be non-empty")
            if len(value.data) > MAX_UPLOAD_BYTES:
                raise ApiError(413, "Request Entity Too Large")
            if kind == "photo" and len(value.data) > MAX_PHOTO_BYTES:
                raise bad_request("PHOTO_INVALID_DIMENSIONS")
            return self.state.store_file(bot, value, kind)
        ref = str(value).strip()
        if re.match(r"https?://", ref, re.IGNORECASE):
            # The sandbox never fetches anything from the network.
            raise bad_request("failed to get HTTP URL content")
        stored = bot.files.get(ref)
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        if stored.kind != kind:
            raise bad_request(f"can't use file of type {stored.kind.title()} as {kind.title()}")
        return stored

    def _edit_target(self, bot: BotAccount, params: dict[str, Any]) -> tuple[ChatState, Any]:
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        if "chat_id" not in params:
            raise bad_request("chat_id is empty")
        if "message_id" not in params:
            raise bad_request("message identifier is not specified")
        chat = self.state.chat_for_bot(bot, params["chat_id"])
        entry = chat.messages.get(params["message_id"])
        if entry is None or entry.deleted:
            raise bad_request("message to edit not found")
        if entry.sender != "bot":
            raise bad_request("message can't be edited")
        return chat, entry

    def _message(self, bot: BotAccount, chat: ChatState, entry: TranscriptEntry) -> Any:
        return self.state.message_api(bot, chat, entry)

    # -- getting updates ------------------------------------------------------------------

    async def _m_getme(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        return bot.me_api()

    async def _m_getupdates(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        if bot.webhook is not None:
            raise WEBHOOK_CONFLICT
        limit = min(max(p.get("limit", 100), 1), 100)
        timeout = min(max(float(p.get("timeout", 0)), 0.0), self.max_poll_timeout)
        if "allowed_updates" in p:
            bot.allowed_updates = frozenset(p["allowed_updates"]) or None
        self.state.confirm_updates(bot, p.get("offset", 0))
        bot.poll_generation += 1
        generation = bot.poll_generation
        bot.notifier.notify()  # a poll still waiting is now superseded
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if bot.redeliveries or bot.updates:
                again = [bot.redeliveries.popleft() for _ in range(len(bot.redeliveries))]
                fresh = min(max(limit - len(again), 0), len(bot.updates))
                return again + [bot.updates[i] for i in range(fresh)]
            remaining = deadline - loop.time()
            if remaining <= 0 or self.state.closing:
                return []
            await bot.notifier.wait(remaining)
            if bot.poll_generation != generation:
                raise ApiError(409, POLL_CONFLICT)
            if bot.webhook is not None:
                return []

    async def _m_setwebhook(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        url = p["url"].strip()
        if not url:
            return await self._m_deletewebhook(bot, p)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        host = parts.hostname.lower()
        if not (self.allow_remote_webhooks or host in _LOOPBACK_HOSTS or host.startswith("127.")):
            raise bad_request(
                "bad webhook: the sandbox delivers webhooks to loopback addresses only"
            )
        secret = p.get("secret_token")
        if secret is not None and not _SECRET_RE.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        max_connections = p.get("max_connections", 40)
        if not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        if p.get("drop_pending_updates"):
            bot.updates.clear()
        if "allowed_updates" in p:
            bot.allowed_updates = frozenset(p["allowed_updates"]) or None
        if bot.webhook is None or bot.webhook.url != url:
            bot.webhook_error = None
        bot.webhook = WebhookConfig(
            url=url,
            secret_token=secret,
            max_connections=max_connections,
            ip_address=p.get("ip_address"),
            has_custom_certificate="certificate" in p,
        )
        bot.notifier.notify()
        self.webhooks.start(bot)
        return True

    async def _m_deletewebhook(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        if p.get("drop_pending_updates"):
            bot.updates.clear()
        bot.webhook = None
        bot.webhook_error = None
        bot.notifier.notify()
        self.webhooks.stop(bot)
        return True

    async def _m_getwebhookinfo(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": bot.webhook.url if bot.webhook else "",
            "has_custom_certificate": bool(bot.webhook and bot.webhook.has_custom_certificate),
            "pending_update_count": len(bot.updates),
        }
        if bot.webhook is not None:
            info["max_connections"] = bot.webhook.max_connections
            if bot.webhook.ip_address:
                info["ip_address"] = bot.webhook.ip_address
            if bot.allowed_updates is not None:
                info["allowed_updates"] = sorted(bot.allowed_updates)
            if bot.webhook_error is not None:
                info["last_error_date"], info["last_error_message"] = bot.webhook_error
        return info

    async def _m_logout(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        bot.logged_out = True
        return True

    async def _m_close(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        return True

    # -- sending --------------------------------------------------------------------------

    async def _m_sendmessage(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        chat = self.state.chat_for_bot(bot, p["chat_id"])
        text, entities = self._text(p["text"], p.get("parse_mode"), p.get("entities"))
        markup = self._markup(p.get("reply_markup"))
        reply_to = self._reply_to(chat, p.get("reply_parameters"))
        self._flood(bot, chat)
        self._apply_reply_keyboard(chat, markup)
        entry = self.state.add_bot_message(
            chat,
            text=text,
            entities=entities,
            reply_markup=_inline_markup(markup),
            reply_to_message_id=reply_to,
        )
        return self._message(bot, chat, entry)

    async def _send_file(self, bot: BotAccount, p: dict[str, Any], kind: str) -> Any:
        chat = self.state.chat_for_bot(bot, p["chat_id"])
        caption, caption_entities = self._caption(p)
        markup = self._markup(p.get("reply_markup"))
        reply_to = self._reply_to(chat, p.get("reply_parameters"))
        stored = self._input_file(bot, p[kind], kind)
        try:
            self._flood(bot, chat)
        except ApiError:
            if isinstance(p[kind], UploadedFile):  # forget the upload of a refused call
                bot.files.pop(stored.file_id, None)
                bot.file_paths.pop(stored.file_path, None)
            raise
        self._apply_reply_keyboard(chat, markup)
        content: dict[str, Any] = (
            {"photo": stored.photo_api()}
            if kind == "photo"
            else {"document": stored.document_api()}
        )
        entry = self.state.add_bot_message(
            chat,
            caption=caption,
            caption_entities=caption_entities,
            reply_markup=_inline_markup(markup),
            reply_to_message_id=reply_to,
            **content,
        )
        return self._message(bot, chat, entry)

    async def _m_senddocument(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        return await self._send_file(bot, p, "document")

    async def _m_sendphoto(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        return await self._send_file(bot, p, "photo")

    async def _placeholder_send(self, bot: BotAccount, name: str, p: dict[str, Any]) -> Any:
        """A send* method the sandbox does not model: a message saying which it was."""
        chat = self.state.chat_for_bot(bot, p["chat_id"])
        markup = self._markup(p.get("reply_markup"))
        self._flood(bot, chat)
        self._apply_reply_keyboard(chat, markup)
        media = None
        if name == "sendContact":
            contact_keys = ("phone_number", "first_name", "last_name", "vcard")
            media = {"contact": {k: p[k] for k in contact_keys if k in p}}
        elif name == "sendLocation":
            location_keys = ("latitude", "longitude", "horizontal_accuracy", "heading")
            media = {"location": {k: p[k] for k in location_keys if k in p}}
        caption = p.get("caption")
        entry = self.state.add_bot_message(
            chat,
            text=None if media or caption is not None else f"[{name}]",  # e.g. "[sendSticker]"
            caption=caption if not media else None,
            media=media,
            reply_markup=_inline_markup(markup),
        )
        return self._message(bot, chat, entry)

    async def _m_sendmediagroup(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        chat = self.state.chat_for_bot(bot, p["chat_id"])
        media = p["media"]
        if not 2 <= len(media) <= 10:
            raise bad_request("wrong number of media in the album: 2-10 are allowed")
        items: list[tuple[dict[str, Any], tuple[str | None, Any]]] = []
        for item in media:
            kind = item["type"]
            content: dict[str, Any] = {"text": f"[{kind}]"}  # video/audio: not modelled
            if kind == "photo":
                content = {"photo": self._input_file(bot, item["media"], kind).photo_api()}
            elif kind == "document":
                content = {"document": self._input_file(bot, item["media"], kind).document_api()}
            items.append((content, self._caption(item)))
        reply_to = self._reply_to(chat, p.get("reply_parameters"))
        self._flood(bot, chat)
        messages = []
        for content, (caption, caption_entities) in items:
            entry = self.state.add_bot_message(
                chat,
                caption=caption,
                caption_entities=caption_entities,
                reply_to_message_id=reply_to,
                **content,
            )
            messages.append(self._message(bot, chat, entry))
        return messages

    def _copy_source(self, bot: BotAccount, p: dict[str, Any]) -> TranscriptEntry:
        source_chat = self.state.chat_for_bot(bot, p["from_chat_id"])
        source = source_chat.messages.get(p["message_id"])
        if source is None or source.deleted or source.kind != "message":
            raise bad_request("message to copy not found")
        return source

    async def _m_copymessage(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        source = self._copy_source(bot, p)
        chat = self.state.chat_for_bot(bot, p["chat_id"])
        markup = self._markup(p.get("reply_markup"))
        caption, caption_entities = (source.caption, source.caption_entities)
        if "caption" in p:
            caption, caption_entities = self._caption(p)
        self._flood(bot, chat)
        entry = self.state.add_bot_message(
            chat,
            text=source.text,
            entities=source.entities,
            caption=caption if source.text is None else None,
            caption_entities=caption_entities if source.text is None else None,
            document=source.document,
            photo=source.photo,
            media=source.media,
            reply_markup=_inline_markup(markup),
        )
        return {"message_id": entry.message_id}

    async def _m_forwardmessage(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        source = self._copy_source(bot, p)
        source_chat = self.state.chat_for_bot(bot, p["from_chat_id"])
        chat = self.state.chat_for_bot(bot, p["chat_id"])
        self._flood(bot, chat)
        sender = bot.user_api() if source.sender == "bot" else source_chat.user.to_api()
        entry = self.state.add_bot_message(
            chat,
            text=source.text,
            entities=source.entities,
            caption=source.caption,
            caption_entities=source.caption_entities,
            document=source.document,
            photo=source.photo,
            media={
                **(source.media or {}),
                "forward_origin": {"type": "user", "sender_user": sender, "date": source.date},
            },
        )
        return self._message(bot, chat, entry)

    async def _m_getuserprofilephotos(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        return {"total_count": 0, "photos": []}

    async def _m_sendchataction(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        if p["action"] not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        chat = self.state.chat_for_bot(bot, p["chat_id"])
        chat.last_action = p["action"]
        chat.last_action_at = time.time()
        chat.notifier.notify()  # the web page shows "typing…"
        return True

    # -- editing --------------------------------------------------------------------------

    async def _m_editmessagetext(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        chat, entry = self._edit_target(bot, p)
        if "text" not in p:
            raise bad_request("message text is empty")
        if entry.text is None:
            raise bad_request("there is no text in the message to edit")
        text, entities = self._text(p["text"], p.get("parse_mode"), p.get("entities"))
        markup = self._markup(p.get("reply_markup"))
        if text == entry.text and entities == entry.entities and markup == entry.reply_markup:
            raise bad_request(NOT_MODIFIED)
        self._flood(bot, chat, edit=True)
        self.state.edit_message(chat, entry, text=text, entities=entities, reply_markup=markup)
        return self._message(bot, chat, entry)

    async def _m_editmessagecaption(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        chat, entry = self._edit_target(bot, p)
        if entry.text is not None:
            raise bad_request("there is no caption in the message to edit")
        caption, caption_entities = self._caption(p)
        markup = self._markup(p.get("reply_markup"))
        if (caption, caption_entities, markup) == (
            entry.caption,
            entry.caption_entities,
            entry.reply_markup,
        ):
            raise bad_request(NOT_MODIFIED)
        self._flood(bot, chat, edit=True)
        self.state.edit_message(
            chat, entry, caption=caption, caption_entities=caption_entities, reply_markup=markup
        )
        return self._message(bot, chat, entry)

    async def _m_editmessagereplymarkup(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        chat, entry = self._edit_target(bot, p)
        markup = self._markup(p.get("reply_markup"))
        if markup == entry.reply_markup:
            raise bad_request(NOT_MODIFIED)
        self._flood(bot, chat, edit=True)
        self.state.edit_message(chat, entry, reply_markup=markup)
        return self._message(bot, chat, entry)

    async def _m_deletemessage(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        chat = self.state.chat_for_bot(bot, p["chat_id"])
        entry = chat.messages.get(p["message_id"])
        if entry is None or entry.deleted:
            raise bad_request("message to delete not found")
        self.state.delete_message(chat, entry)
        return True

    async def _m_deletemessages(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        chat = self.state.chat_for_bot(bot, p["chat_id"])
        if not 1 <= len(p["message_ids"]) <= 100:
            raise bad_request("message_ids must contain 1-100 identifiers")
        for message_id in p["message_ids"]:
            entry = chat.messages.get(message_id)
            if entry is not None and not entry.deleted:
                self.state.delete_message(chat, entry)
        return True

    async def _m_answercallbackquery(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        text = p.get("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self.state.answer_callback(
            bot,
            p["callback_query_id"],
            text=text or None,
            show_alert=bool(p.get("show_alert", False)),
            url=p.get("url"),
        )
        return True

    # -- files ----------------------------------------------------------------------------

    async def _m_getfile(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        stored = bot.files.get(p["file_id"].strip())
        if stored is None:
            raise bad_request("invalid file_id")
        return stored.file_api()

    # -- chats ----------------------------------------------------------------------------

    async def _m_getchat(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        chat = self.state.chat_for_bot(bot, p["chat_id"])
        return {
            **chat.user.chat_api(),
            "accent_color_id": chat.user.id % 7,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }

    async def _m_getchatmember(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        chat = self.state.chat_for_bot(bot, p["chat_id"])
        if p["user_id"] == bot.id:
            return {"user": bot.user_api(), "status": "member"}
        if p["user_id"] != chat.user.id:
            raise bad_request("user not found")
        return {"user": chat.user.to_api(), "status": "member"}

    # -- commands and menu ----------------------------------------------------------------

    @staticmethod
    def _scope_key(p: dict[str, Any]) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), p.get("language_code", "")

    async def _m_setmycommands(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        commands = p["commands"]
        if len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not _COMMAND_RE.fullmatch(command["command"].lstrip("/")):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(command["description"].strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        language = p.get("language_code", "")
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise bad_request("LANG_CODE_INVALID")
        key = self._scope_key(p)
        if commands:
            bot.commands[key] = [
                {"command": c["command"].lstrip("/"), "description": c["description"]}
                for c in commands
            ]
        else:
            bot.commands.pop(key, None)
        return True

    async def _m_getmycommands(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        return bot.commands.get(self._scope_key(p), [])

    async def _m_deletemycommands(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        bot.commands.pop(self._scope_key(p), None)
        return True

    async def _m_setchatmenubutton(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        button = p.get("menu_button") or {"type": "default"}
        if "chat_id" in p:
            self.state.chat_for_bot(bot, p["chat_id"]).menu_button = button
        else:
            bot.menu_button = button
        return True

    async def _m_getchatmenubutton(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        if "chat_id" in p:
            chat = self.state.chat_for_bot(bot, p["chat_id"])
            if chat.menu_button is not None:
                return chat.menu_button
        return bot.menu_button or {"type": "default"}

    async def _bot_text(self, bot: BotAccount, p: dict[str, Any], key: str, limit: int) -> Any:
        value = p.get(key, "")
        if len(value) > limit:
            raise bad_request(f"{key} is too long")
        bot.settings[(key, p.get("language_code", ""))] = value
        return True

    async def _m_setmyname(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        return await self._bot_text(bot, p, "name", 64)

    async def _m_getmyname(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        name = bot.settings.get(("name", p.get("language_code", ""))) or bot.first_name
        return {"name": name}

    async def _m_setmydescription(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        return await self._bot_text(bot, p, "description", 512)

    async def _m_getmydescription(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        return {"description": bot.settings.get(("description", p.get("language_code", "")), "")}

    async def _m_setmyshortdescription(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        return await self._bot_text(bot, p, "short_description", 120)

    async def _m_getmyshortdescription(self, bot: BotAccount, p: dict[str, Any]) -> Any:
        key = ("short_description", p.get("language_code", ""))
        return {"short_description": bot.settings.get(key, "")}
