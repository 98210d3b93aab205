"""The sandbox's in-memory world: bots, virtual users, the private chat of each (bot, user)
pair with its messages and transcript, the bot's pending updates and its stored files.

Nothing here speaks HTTP. Bot-side errors are raised as `ApiError` (they become Bot API
answers); misuse of the user side raises `SandboxError`.

Memory stays bounded: each chat keeps its last `max_messages_per_chat` transcript entries
(older messages can then no longer be edited or pressed), each bot its last
`max_pending_updates` unconfirmed updates.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import mimetypes
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import (
    ApiError,
    SandboxError,
    SandboxNotFound,
    SandboxTimeout,
    bad_request,
    forbidden,
)
from .formatting import detect_entities, utf16_len
from .spec import UploadedFile

#: Update kinds a bot does not get unless it asks for them in `allowed_updates`.
NOT_DELIVERED_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

MAX_TEXT_LENGTH = 4096
SNAPSHOT_VERSION = 1
MAX_CAPTION_LENGTH = 1024


class Notifier:
    """Lets coroutines wait for "something changed"; cheap when nobody waits."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def notify(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, timeout: float | None) -> bool:
        """True when notified, False when `timeout` seconds passed first."""
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True


@dataclass(slots=True, eq=False)
class SandboxUser:
    """A virtual Telegram user (a graduate, in gradtrack's terms)."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_premium: bool = False
    deactivated: bool = False

    def to_api(self) -> dict[str, Any]:
        """The Bot API `User` object."""
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        if self.is_premium:
            user["is_premium"] = True
        return user

    def chat_api(self) -> dict[str, Any]:
        """The Bot API `Chat` object of this user's private chat with a bot."""
        chat: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            chat["last_name"] = self.last_name
        if self.username:
            chat["username"] = self.username
        return chat

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True, eq=False)
class StoredFile:
    """A file the bot uploaded, kept so that tests and getFile can read it back."""

    file_id: str
    file_unique_id: str
    kind: str  # "document", "photo", ...
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0

    @property
    def file_size(self) -> int:
        return len(self.data)

    def document_api(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
        }
        if self.file_name:
            doc["file_name"] = self.file_name
        if self.mime_type:
            doc["mime_type"] = self.mime_type
        return doc

    def photo_api(self) -> list[dict[str, Any]]:
        return [
            {
                "file_id": self.file_id,
                "file_unique_id": self.file_unique_id,
                "file_size": self.file_size,
                "width": self.width,
                "height": self.height,
            }
        ]

    def file_api(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "file_path": self.file_path,
        }


@dataclass(slots=True, eq=False)
class TranscriptEntry:
    """One line of a chat's history, as the user would see it.

    kind: "message" (either side), "button_press" (user pressed an inline button:
    `message_id` is the message it was on, `text` its label), "callback_answer" (the bot's
    answerCallbackQuery: `text`, `show_alert`, `url`), or "event" (`text` is "blocked",
    "unblocked" or "deactivated").
    Message entries are live: edits update `text`, `reply_markup`, `edited`, `deleted`.
    """

    kind: str
    sender: str  # "user" | "bot"
    date: int
    message_id: int | None = None
    text: str | None = None
    entities: list[dict[str, Any]] | None = None
    caption: str | None = None
    caption_entities: list[dict[str, Any]] | None = None
    reply_markup: dict[str, Any] | None = None
    edited: bool = False
    edit_date: int | None = None
    deleted: bool = False
    document: dict[str, Any] | None = None
    photo: list[dict[str, Any]] | None = None
    #: Other content fields of the Message (contact, sticker, location, ...).
    media: dict[str, Any] | None = None
    reply_to_message_id: int | None = None
    callback_data: str | None = None
    callback_query_id: str | None = None
    show_alert: bool | None = None
    url: str | None = None
    #: Chat revision at which the entry was created / last changed.
    seq: int = 0
    updated: int = 0

    @property
    def content(self) -> str:
        """Text, or caption for media messages, or "" ."""
        return self.text if self.text is not None else self.caption or ""

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """All inline keyboard buttons of the message, row by row."""
        if not self.reply_markup:
            return []
        return [b for row in self.reply_markup.get("inline_keyboard", ()) for b in row]

    @property
    def callback_datas(self) -> list[str]:
        return [b["callback_data"] for b in self.buttons if "callback_data" in b]

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in data.items() if v is not None}


@dataclass(slots=True)
class WebhookConfig:
    url: str
    secret_token: str | None = None
    max_connections: int = 40
    ip_address: str | None = None
    has_custom_certificate: bool = False
    set_at: float = field(default_factory=time.time)


@dataclass(slots=True)
class PendingCallback:
    user_id: int
    message_id: int
    created: float  # monotonic


class ChatState:
    """The private chat between one bot and one user."""

    def __init__(self, bot_id: int, user: SandboxUser, max_entries: int) -> None:
        self.bot_id = bot_id
        self.user = user
        self.started = False
        self.blocked = False
        self.next_message_id = 1
        self.max_entries = max(1, max_entries)
        self.entries: deque[TranscriptEntry] = deque()
        self.messages: dict[int, TranscriptEntry] = {}
        #: Bot-side changes in order: (revision, entry, "new" | "edit" | "delete").
        self.bot_events: deque[tuple[int, TranscriptEntry, str]] = deque(maxlen=self.max_entries)
        self.revision = 0
        self.cursor = 0
        self.notifier = Notifier()
        #: The custom reply keyboard currently shown (ReplyKeyboardMarkup), if any.
        self.reply_keyboard: dict[str, Any] | None = None
        self.menu_button: dict[str, Any] | None = None
        self.last_action: str | None = None
        self.last_action_at = 0.0

    def bump(self) -> int:
        self.revision += 1
        self.notifier.notify()
        return self.revision

    def add(self, entry: TranscriptEntry) -> TranscriptEntry:
        entry.seq = entry.updated = self.bump()
        self.entries.append(entry)
        if entry.kind == "message" and entry.message_id is not None:
            self.messages[entry.message_id] = entry
            if entry.sender == "bot":
                self.bot_events.append((entry.seq, entry, "new"))
        while len(self.entries) > self.max_entries:
            old = self.entries.popleft()
            if old.kind == "message" and old.message_id is not None:
                self.messages.pop(old.message_id, None)
        return entry

    def changed(self, entry: TranscriptEntry, change: str) -> None:
        entry.updated = self.bump()
        if entry.sender == "bot":
            self.bot_events.append((entry.updated, entry, change))

    def new_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


class BotAccount:
    """A bot registered with the sandbox, and everything the Bot API keeps for it."""

    def __init__(
        self, bot_id: int, token: str, username: str, first_name: str, max_pending: int
    ) -> None:
        self.id = bot_id
        self.token = token
        self.username = username
        self.first_name = first_name
        self.logged_out = False
        self.updates: deque[dict[str, Any]] = deque()
        #: Recent updates, for `redeliver` (Telegram sending an update again).
        self.history: deque[dict[str, Any]] = deque(maxlen=1000)
        #: Updates to deliver again, whatever the offset: they go out before `updates`.
        self.redeliveries: deque[dict[str, Any]] = deque()
        self.max_pending = max(1, max_pending)
        self.dropped_updates = 0
        self.next_update_id = 100_000_001
        self.allowed_updates: frozenset[str] | None = None
        self.webhook: WebhookConfig | None = None
        self.webhook_error: tuple[int, str] | None = None
        self.notifier = Notifier()
        self.poll_generation = 0
        self.chats: dict[int, ChatState] = {}
        self.files: dict[str, StoredFile] = {}
        self.file_paths: dict[str, StoredFile] = {}
        self.callbacks: dict[str, PendingCallback] = {}
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.menu_button: dict[str, Any] | None = None
        self.settings: dict[tuple[str, str], Any] = {}
        self._user_api: dict[str, Any] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username,
        }

    def user_api(self) -> dict[str, Any]:
        """The bot as a Bot API `User` (the `from` of its messages)."""
        return self._user_api

    def me_api(self) -> dict[str, Any]:
        """The answer to getMe."""
        return {
            **self._user_api,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "first_name": self.first_name}

    def wants(self, kind: str) -> bool:
        if self.allowed_updates is None:
            return kind not in NOT_DELIVERED_BY_DEFAULT
        return kind in self.allowed_updates


def _sniff_image(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF, JPEG or WebP image, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            width = int.from_bytes(data[24:27], "little") + 1
            return width, int.from_bytes(data[27:30], "little") + 1
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(
                data[28:30], "little"
            ) & 0x3FFF
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(
                    data[i + 5 : i + 7], "big"
                )
            i += 2 + length
    return None


class SandboxState:
    """All bots, users and chats of one sandbox."""

    def __init__(
        self,
        *,
        max_messages_per_chat: int = 2000,
        max_pending_updates: int = 100_000,
        callback_query_timeout: float = 60.0,
    ) -> None:
        self.max_messages_per_chat = max_messages_per_chat
        self.max_pending_updates = max_pending_updates
        self.callback_query_timeout = callback_query_timeout
        self.bots: dict[int, BotAccount] = {}
        self.tokens: dict[str, BotAccount] = {}
        self.users: dict[int, SandboxUser] = {}
        self.closing = False
        self._bot_ids = itertools.count(7_000_000_001)
        self._user_ids = itertools.count(100_000_001)
        self._file_numbers = itertools.count(1)
        self._callback_ids = itertools.count(secrets.randbelow(10**9) * 10**9)
        self._shared: dict[str, Any] = {}

    # -- bots and users -------------------------------------------------------------------

    def create_bot(self, username: str, first_name: str, token: str | None = None) -> BotAccount:
        if token is not None and token in self.tokens:
            return self.tokens[token]
        if token is not None:
            head, _, _rest = token.partition(":")
            if not head.isdigit():
                raise SandboxError("a bot token looks like '123456:ABC-DEF...'")
            bot_id = int(head)
        else:
            bot_id = next(self._bot_ids)
            while bot_id in self.bots:
                bot_id = next(self._bot_ids)
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
            token = f"{bot_id}:AA" + "".join(secrets.choice(alphabet) for _ in range(33))
        if bot_id in self.bots:
            raise SandboxError(f"a bot with id {bot_id} already exists")
        if any(b.username.lower() == username.lower() for b in self.bots.values()):
            raise SandboxError(f"a bot called @{username} already exists")
        bot = BotAccount(bot_id, token, username, first_name, self.max_pending_updates)
        self.bots[bot_id] = bot
        self.tokens[token] = bot
        return bot

    def bot_by_token(self, token: str) -> BotAccount | None:
        return self.tokens.get(token)

    def resolve_bot(self, ref: str | int | BotAccount | None) -> BotAccount:
        """A bot by token, @username/username, id, or the only bot when `ref` is None."""
        if isinstance(ref, BotAccount):
            return ref
        if ref is None:
            if len(self.bots) == 1:
                return next(iter(self.bots.values()))
            raise SandboxError("say which bot: there is not exactly one")
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            bot = self.bots.get(int(ref))
        elif ":" in ref:
            bot = self.tokens.get(ref)
        else:
            name = ref.lstrip("@").lower()
            bot = next((b for b in self.bots.values() if b.username.lower() == name), None)
        if bot is None:
            raise SandboxNotFound(f"no bot {ref!r} in the sandbox")
        return bot

    def create_user(
        self,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        user_id: int | None = None,
    ) -> SandboxUser:
        if user_id is not None and user_id in self.users:
            return self.users[user_id]
        if not first_name.strip():
            raise SandboxError("first_name must not be empty")
        if user_id is None:
            user_id = next(self._user_ids)
            while user_id in self.users:
                user_id = next(self._user_ids)
        user = SandboxUser(
            id=user_id,
            first_name=first_name,
            last_name=last_name or None,
            username=(username or "").lstrip("@") or None,
            language_code=language_code or None,
        )
        self.users[user_id] = user
        return user

    def get_user(self, user_id: int) -> SandboxUser:
        user = self.users.get(int(user_id))
        if user is None:
            raise SandboxNotFound(f"no user {user_id} in the sandbox")
        return user

    def chat(self, bot: BotAccount, user_id: int, create: bool = True) -> ChatState:
        chat = bot.chats.get(user_id)
        if chat is None:
            user = self.get_user(user_id)
            if not create:
                raise SandboxNotFound(f"user {user_id} has no chat with @{bot.username}")
            chat = bot.chats[user_id] = ChatState(bot.id, user, self.max_messages_per_chat)
        return chat

    # -- updates --------------------------------------------------------------------------

    def enqueue(self, bot: BotAccount, kind: str, payload: dict[str, Any]) -> int | None:
        """Queue an update for the bot; None if the bot's allowed_updates exclude it."""
        if not bot.wants(kind):
            return None
        update_id = bot.next_update_id
        bot.next_update_id += 1
        update = {"update_id": update_id, kind: payload}
        bot.updates.append(update)
        bot.history.append(update)
        while len(bot.updates) > bot.max_pending:
            bot.updates.popleft()
            bot.dropped_updates += 1
        bot.notifier.notify()
        return update_id

    def redeliver(self, bot: BotAccount, update_id: int) -> None:
        """Deliver a recent update again, with its update_id, as Telegram does when it did
        not get (or the bot did not confirm) the first delivery."""
        update = next((u for u in bot.history if u["update_id"] == update_id), None)
        if update is None:
            raise SandboxNotFound(f"update {update_id} is not among the recent updates")
        bot.redeliveries.append(update)
        bot.notifier.notify()

    def confirm_updates(self, bot: BotAccount, offset: int) -> None:
        """Forget updates before `offset` (negative: keep only the last -offset)."""
        if offset > 0:
            while bot.updates and bot.updates[0]["update_id"] < offset:
                bot.updates.popleft()
        elif offset < 0:
            while len(bot.updates) > -offset:
                bot.updates.popleft()

    # -- the Bot API's view of messages ---------------------------------------------------

    def message_api(
        self, bot: BotAccount, chat: ChatState, entry: TranscriptEntry, *, nested: bool = False
    ) -> dict[str, Any]:
        """The Bot API `Message` object of a message entry."""
        message: dict[str, Any] = {
            "message_id": entry.message_id,
            "from": bot.user_api() if entry.sender == "bot" else chat.user.to_api(),
            "chat": chat.user.chat_api(),
            "date": entry.date,
        }
        if entry.edit_date is not None:
            message["edit_date"] = entry.edit_date
        if entry.reply_to_message_id is not None and not nested:
            replied = chat.messages.get(entry.reply_to_message_id)
            if replied is not None:
                message["reply_to_message"] = self.message_api(bot, chat, replied, nested=True)
        if entry.text is not None:
            message["text"] = entry.text
            if entry.entities:
                message["entities"] = entry.entities
        if entry.document is not None:
            message["document"] = entry.document
        if entry.photo is not None:
            message["photo"] = entry.photo
        if entry.media:
            message.update(entry.media)
        if entry.caption is not None:
            message["caption"] = entry.caption
            if entry.caption_entities:
                message["caption_entities"] = entry.caption_entities
        if entry.reply_markup is not None:
            message["reply_markup"] = entry.reply_markup
        return message

    def chat_for_bot(self, bot: BotAccount, chat_id: Any) -> ChatState:
        """The chat a bot addresses by `chat_id`, or the Bot API error Telegram gives."""
        if isinstance(chat_id, str):
            stripped = chat_id.strip()
            if not stripped:
                raise bad_request("chat_id is empty")
            if not stripped.lstrip("-").isdigit():
                raise bad_request("chat not found")
            chat_id = int(stripped)
        chat = bot.chats.get(chat_id)
        if chat is None or not chat.started:
            raise bad_request("chat not found")
        if chat.user.deactivated:
            raise forbidden("user is deactivated")
        if chat.blocked:
            raise forbidden("bot was blocked by the user")
        return chat

    # -- bot side -------------------------------------------------------------------------

    def share(self, value: Any) -> Any:
        """An equal object already stored, if any (keyboards and entity lists repeat a lot,
        and sharing them keeps 100k messages small). Stored values are never mutated."""
        if not value:
            return value
        key = json.dumps(value, sort_keys=True, separators=(",", ":"))
        shared = self._shared.get(key)
        if shared is None:
            if len(self._shared) >= 4096:
                self._shared.clear()
            self._shared[key] = shared = value
        return shared

    def add_bot_message(self, chat: ChatState, **content: Any) -> TranscriptEntry:
        for name in ("reply_markup", "entities", "caption_entities"):
            if content.get(name):
                content[name] = self.share(content[name])
        entry = TranscriptEntry(
            kind="message",
            sender="bot",
            date=int(time.time()),
            message_id=chat.new_message_id(),
            **content,
        )
        return chat.add(entry)

    def edit_message(self, chat: ChatState, entry: TranscriptEntry, **changes: Any) -> None:
        for name, value in changes.items():
            if name in ("reply_markup", "entities", "caption_entities"):
                value = self.share(value)
            setattr(entry, name, value)
        entry.edited = True
        entry.edit_date = int(time.time())
        chat.changed(entry, "edit")

    def delete_message(self, chat: ChatState, entry: TranscriptEntry) -> None:
        entry.deleted = True
        chat.changed(entry, "delete")

    def answer_callback(
        self,
        bot: BotAccount,
        query_id: str,
        *,
        text: str | None,
        show_alert: bool,
        url: str | None,
    ) -> TranscriptEntry:
        pending = bot.callbacks.pop(query_id, None)
        if pending is None or time.monotonic() - pending.created > self.callback_query_timeout:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        chat = self.chat(bot, pending.user_id)
        entry = TranscriptEntry(
            kind="callback_answer",
            sender="bot",
            date=int(time.time()),
            message_id=pending.message_id,
            text=text,
            show_alert=show_alert,
            url=url,
            callback_query_id=query_id,
        )
        return chat.add(entry)

    def store_file(self, bot: BotAccount, upload: UploadedFile, kind: str) -> StoredFile:
        number = next(self._file_numbers)
        name = upload.filename or None
        mime = upload.content_type
        if not mime or mime == "application/octet-stream":
            mime = (mimetypes.guess_type(name)[0] if name else None) or mime
        width = height = 0
        if kind == "photo":
            size = _sniff_image(upload.data)
            if size is None:
                raise bad_request("IMAGE_PROCESS_FAILED")
            width, height = size
            ext, name, mime = "jpg", None, None
        else:
            ext = name.rsplit(".", 1)[-1] if name and "." in name else "dat"
        prefix = {"photo": "AgACAgIAAxkDAAI", "document": "BQACAgIAAxkDAAI"}.get(
            kind, "CAACAgIAAxkDAAI"
        )
        stored = StoredFile(
            file_id=prefix + secrets.token_urlsafe(36),
            file_unique_id="AgAD" + secrets.token_urlsafe(9),
            kind=kind,
            data=upload.data,
            file_path=f"{kind}s/file_{number}.{ext}",
            file_name=name,
            mime_type=mime,
            width=width,
            height=height,
        )
        bot.files[stored.file_id] = stored
        bot.file_paths[stored.file_path] = stored
        return stored

    # -- user side ------------------------------------------------------------------------

    def _user_chat(self, bot: BotAccount, user_id: int, *, need_started: bool) -> ChatState:
        chat = self.chat(bot, user_id)
        if chat.user.deactivated:
            raise SandboxError(f"user {user_id} is deactivated")
        if chat.blocked:
            raise SandboxError(f"user {user_id} has blocked @{bot.username}; unblock first")
        if need_started and not chat.started:
            raise SandboxError(f"user {user_id} has not started @{bot.username}")
        return chat

    def user_message(
        self,
        bot: BotAccount,
        user_id: int,
        *,
        text: str | None = None,
        media: dict[str, Any] | None = None,
    ) -> TranscriptEntry:
        """The user sends a message (text, or other content in `media`) to the bot."""
        chat = self._user_chat(bot, user_id, need_started=False)
        entities = None
        if text is not None:
            if not text.strip():
                raise SandboxError("a message needs some text")
            if utf16_len(text) > MAX_TEXT_LENGTH:
                raise SandboxError("message is too long (4096 characters at most)")
            entities = detect_entities(text, []) or None
        chat.started = True
        entry = TranscriptEntry(
            kind="message",
            sender="user",
            date=int(time.time()),
            message_id=chat.new_message_id(),
            text=text,
            entities=entities,
            media=media,
        )
        chat.add(entry)
        self.enqueue(bot, "message", self.message_api(bot, chat, entry))
        return entry

    def press_button(
        self,
        bot: BotAccount,
        user_id: int,
        message_id: int,
        callback_data: str | None = None,
        *,
        text: str | None = None,
        forged: bool = False,
    ) -> str:
        """The user presses a callback button; returns the callback query id. `forged`: a
        modified client sends `callback_data` from message `message_id` whatever its buttons
        say (Telegram passes any callback data of up to 64 bytes on to the bot)."""
        if callback_data is None and text is None:
            raise SandboxError("give the button's callback_data or its text")
        chat = self._user_chat(bot, user_id, need_started=True)
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise SandboxError(f"message {message_id} is not in the chat")
        if forged and (callback_data is None or len(callback_data.encode()) > 64):
            raise SandboxError("forged callback data must be 1-64 bytes")
        button: dict[str, Any] | None = (
            {"text": "(forged)", "callback_data": callback_data}
            if forged
            else next(
                (
                    b
                    for b in message.buttons
                    if (callback_data is None or b.get("callback_data") == callback_data)
                    and (text is None or b.get("text") == text)
                ),
                None,
            )
        )
        if button is None:
            shown = [(b.get("text"), b.get("callback_data")) for b in message.buttons]
            wanted = callback_data if callback_data is not None else text
            raise SandboxError(
                f"no inline button {wanted!r} on message {message_id}; its buttons: {shown}"
            )
        data = button.get("callback_data")
        if data is None:
            raise SandboxError(f"button {button.get('text')!r} is not a callback button")
        query_id = str(next(self._callback_ids))
        now = time.monotonic()
        if len(bot.callbacks) > 10_000:
            limit = self.callback_query_timeout
            for key in [k for k, p in bot.callbacks.items() if now - p.created > limit]:
                del bot.callbacks[key]
        bot.callbacks[query_id] = PendingCallback(user_id, message_id, now)
        chat.add(
            TranscriptEntry(
                kind="button_press",
                sender="user",
                date=int(time.time()),
                message_id=message_id,
                text=button.get("text"),
                callback_data=data,
                callback_query_id=query_id,
            )
        )
        self.enqueue(
            bot,
            "callback_query",
            {
                "id": query_id,
                "from": chat.user.to_api(),
                "message": self.message_api(bot, chat, message),
                "chat_instance": str((bot.id << 24) ^ user_id),
                "data": data,
            },
        )
        return query_id

    def _member_update(self, bot: BotAccount, chat: ChatState, old: str, new: str) -> None:
        def member(status: str) -> dict[str, Any]:
            result: dict[str, Any] = {"user": bot.user_api(), "status": status}
            if status == "kicked":
                result["until_date"] = 0
            return result

        self.enqueue(
            bot,
            "my_chat_member",
            {
                "chat": chat.user.chat_api(),
                "from": chat.user.to_api(),
                "date": int(time.time()),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            },
        )

    def _event(self, chat: ChatState, what: str) -> None:
        chat.add(TranscriptEntry(kind="event", sender="user", date=int(time.time()), text=what))

    def block(self, bot: BotAccount, user_id: int) -> None:
        chat = self.chat(bot, user_id)
        if chat.blocked:
            return
        if not chat.started:
            raise SandboxError(f"user {user_id} never started @{bot.username}")
        chat.blocked = True
        self._event(chat, "blocked")
        self._member_update(bot, chat, "member", "kicked")

    def unblock(self, bot: BotAccount, user_id: int) -> None:
        chat = self.chat(bot, user_id)
        if not chat.blocked:
            return
        chat.blocked = False
        self._event(chat, "unblocked")
        self._member_update(bot, chat, "kicked", "member")

    def deactivate(self, user_id: int) -> None:
        user = self.get_user(user_id)
        if user.deactivated:
            return
        user.deactivated = True
        for bot in self.bots.values():
            chat = bot.chats.get(user.id)
            if chat is not None:
                self._event(chat, "deactivated")

    # -- waiting --------------------------------------------------------------------------

    async def wait_for(
        self,
        chat: ChatState,
        until: int | Callable[[TranscriptEntry], bool],
        *,
        timeout: float,
        edits: bool,
    ) -> list[TranscriptEntry]:
        """Bot messages (and, with `edits`, edited/deleted ones again) since the chat's
        cursor, up to the `until`-th one or the first one `until(entry)` accepts.
        Moves the cursor past what it returns."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            picked: list[tuple[int, TranscriptEntry]] = []
            done = False
            for revision, entry, change in chat.bot_events:
                if revision <= chat.cursor or (change != "new" and not edits):
                    continue
                picked.append((revision, entry))
                done = len(picked) >= until if isinstance(until, int) else until(entry)
                if done:
                    break
            if done and picked:
                chat.cursor = picked[-1][0]
                return [entry for _, entry in picked]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise SandboxTimeout(
                    f"gave up after {timeout:g}s waiting for {until!r} from the bot in chat "
                    f"{chat.user.id}; new so far: {[e.content for _, e in picked]}; "
                    f"transcript tail: {describe(list(chat.entries)[-6:])}"
                )
            await chat.notifier.wait(remaining)

    async def wait_until(
        self,
        chat: ChatState,
        condition: Callable[[list[TranscriptEntry]], bool],
        *,
        timeout: float,
    ) -> list[TranscriptEntry]:
        """Wait until `condition(transcript)` holds; returns the transcript."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            transcript = list(chat.entries)
            if condition(transcript):
                return transcript
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise SandboxTimeout(
                    f"gave up after {timeout:g}s; transcript tail: {describe(transcript[-6:])}"
                )
            await chat.notifier.wait(remaining)

    def iter_chats(self) -> Iterator[ChatState]:
        for bot in self.bots.values():
            yield from bot.chats.values()

    # -- keeping the world across restarts ------------------------------------------------

    def fingerprint(self) -> tuple[int, ...]:
        """Changes whenever something `snapshot` keeps changes (cheap enough to poll)."""
        return (
            len(self.users),
            sum(user.deactivated for user in self.users.values()),
            *(bot.next_update_id for bot in self.bots.values()),
            *(len(bot.chats) for bot in self.bots.values()),
            sum(chat.revision + chat.blocked for chat in self.iter_chats()),
        )

    def snapshot(self) -> dict[str, Any]:
        """The world as plain JSON data: users, bots with their update counters, pending
        updates and commands, and every chat with its transcript (files are not kept: a
        document sent before a restart can no longer be downloaded)."""
        next_user = next(self._user_ids)
        self._user_ids = itertools.count(next_user)
        return {
            "version": SNAPSHOT_VERSION,
            "next_user_id": next_user,
            "users": [user.to_json() for user in self.users.values()],
            "bots": [
                {
                    "id": bot.id,
                    "token": bot.token,
                    "username": bot.username,
                    "first_name": bot.first_name,
                    "next_update_id": bot.next_update_id,
                    "updates": list(bot.updates),
                    "commands": [
                        [scope, language, commands]
                        for (scope, language), commands in bot.commands.items()
                    ],
                    "menu_button": bot.menu_button,
                    "chats": [
                        {
                            "user_id": chat.user.id,
                            "started": chat.started,
                            "blocked": chat.blocked,
                            "next_message_id": chat.next_message_id,
                            "revision": chat.revision,
                            "reply_keyboard": chat.reply_keyboard,
                            "menu_button": chat.menu_button,
                            "entries": [entry.to_json() for entry in chat.entries],
                        }
                        for chat in bot.chats.values()
                    ],
                }
                for bot in self.bots.values()
            ],
        }

    def restore(self, data: dict[str, Any], *, margin: int = 1000) -> None:
        """Load a `snapshot` into an empty sandbox. Update and user numbers go on `margin`
        above what was saved, so that whatever happened after the last save (a process that
        was killed) is never numbered twice: a bot drops an update whose id it has seen, and a
        user id is a chat in the bot's database."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise SandboxError(f"unknown sandbox snapshot version {data.get('version')!r}")
        if self.bots or self.users:
            raise SandboxError("restore needs an empty sandbox")
        names = {f.name for f in fields(SandboxUser)}
        for raw in data["users"]:
            user = SandboxUser(**{k: v for k, v in raw.items() if k in names})
            self.users[user.id] = user
        highest = max(self.users, default=0)
        self._user_ids = itertools.count(max(int(data["next_user_id"]), highest + 1) + margin)
        entry_names = {f.name for f in fields(TranscriptEntry)}
        for raw_bot in data["bots"]:
            bot = self.create_bot(raw_bot["username"], raw_bot["first_name"], raw_bot["token"])
            bot.next_update_id = int(raw_bot["next_update_id"]) + margin
            bot.updates.extend(raw_bot.get("updates") or ())
            bot.history.extend(raw_bot.get("updates") or ())
            for scope, language, commands in raw_bot.get("commands") or ():
                bot.commands[(scope, language)] = commands
            bot.menu_button = raw_bot.get("menu_button")
            for raw_chat in raw_bot["chats"]:
                chat = self.chat(bot, int(raw_chat["user_id"]))
                chat.started = bool(raw_chat["started"])
                chat.blocked = bool(raw_chat["blocked"])
                chat.next_message_id = int(raw_chat["next_message_id"])
                chat.reply_keyboard = raw_chat.get("reply_keyboard")
                chat.menu_button = raw_chat.get("menu_button")
                for raw_entry in raw_chat["entries"]:
                    entry = TranscriptEntry(
                        **{k: v for k, v in raw_entry.items() if k in entry_names}
                    )
                    chat.entries.append(entry)
                    if entry.kind == "message" and entry.message_id is not None:
                        chat.messages[entry.message_id] = entry
                        if entry.sender == "bot":
                            chat.bot_events.append((entry.updated, entry, "new"))
                chat.revision = chat.cursor = int(raw_chat["revision"])


def describe(entries: list[TranscriptEntry]) -> list[str]:
    """Short human-readable lines for error messages."""
    lines = []
    for e in entries:
        if e.kind == "message":
            flags = " (edited)" if e.edited else ""
            flags += " (deleted)" if e.deleted else ""
            buttons = f" {e.callback_datas}" if e.reply_markup else ""
            lines.append(f"{e.sender} #{e.message_id}: {e.content[:80]!r}{buttons}{flags}")
        else:
            lines.append(f"{e.sender} {e.kind}: {e.text or e.callback_data!r}")
    return lines


__all__ = [
    "MAX_CAPTION_LENGTH",
    "MAX_TEXT_LENGTH",
    "ApiError",
    "BotAccount",
    "ChatState",
    "Notifier",
    "SandboxState",
    "SandboxUser",
    "StoredFile",
    "TranscriptEntry",
    "WebhookConfig",
]
