"""The web chat's channel: a graduate's web chat keeps what the bot says as rows of
`web_message` (buttons included, changed in place as Telegram changes a message), which the
page (bot/web/chat.py) shows. Kept apart from the page so that any process (the scheduler's
resender, a `run` without the web server) can deliver to web chats."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import unescape
from typing import TYPE_CHECKING

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from conversations.channel import Keyboard, Refused
from storage.db import Database, after_sessions, session_open
from storage.models import WebMessage
from storage.types import utcnow

if TYPE_CHECKING:
    from bot.runtime import Runtime

#: A chat keeps at most this many messages: older ones are deleted as new ones come.
KEPT = 400


def _rows(buttons: Keyboard) -> list[list[list[str]]]:
    """The buttons a web chat's page shows (link buttons are written into the text)."""
    rows = ([[b.label, b.data] for b in row if b.url is None] for row in buttons)
    return [row for row in rows if row]


def _plain(text: str, html: bool, buttons: Keyboard) -> str:
    """What the page shows of a message: its text without Telegram's HTML formatting (the page
    shows text, escaped), and each link button as "label: address" under it."""
    if html:
        text = unescape(re.sub(r"<[^>]*>", "", text))
    links = [f"{b.label}: {b.url}" for row in buttons for b in row if b.url is not None]
    return "\n\n".join([text, *links]) if links else text


@dataclass
class _Edit:
    chat_id: int
    message_id: int
    text: str | None
    rows: list[list[list[str]]]


_last_id = 0


def next_id() -> int:
    """A new message id: milliseconds since 1970 in the high bits, 20 random bits below, and
    never below the last id this process gave (so a chat's messages keep their order)."""
    global _last_id
    candidate = (time.time_ns() // 1_000_000) << 20 | secrets.randbits(20)
    _last_id = max(candidate, _last_id + 1)
    return _last_id


class WebChannel:
    """Graduates' web chats: messages are rows of `web_message`, shown by the page.

    A flow may speak while its own session is open (its transaction not yet committed): what
    it says then is written right after that session ends (storage.db.after_sessions), in
    the order said, never inside the flow's transaction (on SQLite a second writer would
    wait for it) and never before it (a message must not show what was not stored). Said
    outside a session, it is written at once: so the question `send_prompt` sends is written
    before the chat's state says it was sent, as for Telegram. Ids are given here, so a
    message has its id (to edit it later) before it is written."""

    name = "web"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _do(self, items: list[WebMessage | _Edit]) -> None:
        if session_open():

            async def later() -> None:
                await _write(self._db, items)

            after_sessions(later)
        else:
            await _write(self._db, items)

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
        """A message for the page. A photo (a Telegram file id) is not shown: the text is."""
        message = WebMessage(
            id=next_id(),
            chat_id=chat_id,
            kind="bot",
            text=_plain(text, html, buttons),
            buttons=_rows(buttons),
        )
        await self._do([message])
        return message.id

    async def edit(
        self, chat_id: int, message_id: int, text: str | None, buttons: Keyboard = ()
    ) -> None:
        edit = _Edit(chat_id, message_id, text, _rows(buttons))
        if session_open():
            await self._do([edit])  # unknown or unchanged: nothing happens, as in Telegram
            return
        async with self._db.session() as session:
            if not await _apply(session, edit):
                raise Refused("not_found", "message to edit not found or not modified")

    async def send_file(self, chat_id: int, filename: str, data: bytes, caption: str) -> None:
        await self._do(
            [
                WebMessage(
                    id=next_id(),
                    chat_id=chat_id,
                    kind="file",
                    text=caption,
                    file_name=filename,
                    file_data=data,
                )
            ]
        )

    async def note(self, chat_id: int, kind: str, text: str) -> None:
        """What the person did ("me"), or a notice answering a button ("notice")."""
        await self._do([WebMessage(id=next_id(), chat_id=chat_id, kind=kind, text=text)])


async def _write(db: Database, items: list[WebMessage | _Edit]) -> None:
    async with db.session() as session:
        chats: set[int] = set()
        for item in items:
            if isinstance(item, WebMessage):
                session.add(item)
                chats.add(item.chat_id)
            else:
                await session.flush()
                await _apply(session, item)
        await session.flush()
        for chat_id in chats:
            if secrets.randbelow(20) == 0:  # now and then: keep the newest KEPT of a chat
                await _prune(session, chat_id)


async def _apply(session: AsyncSession, edit: _Edit) -> bool:
    message = await session.get(WebMessage, edit.message_id)
    if message is None or message.chat_id != edit.chat_id or message.kind != "bot":
        return False
    if (edit.text is None or edit.text == message.text) and edit.rows == message.buttons:
        return False
    if edit.text is not None:
        message.text = edit.text
    message.buttons = edit.rows
    session.add(message)
    return True


async def _prune(session: AsyncSession, chat_id: int) -> None:
    ids = (
        await session.exec(
            select(WebMessage.id)
            .where(col(WebMessage.chat_id) == chat_id)
            .order_by(col(WebMessage.id).desc())
            .offset(KEPT)
            .limit(1)
        )
    ).all()
    if ids:
        await session.exec(
            delete(WebMessage).where(
                col(WebMessage.chat_id) == chat_id, col(WebMessage.id) <= ids[0]
            )
        )


async def delete_old_files(
    db: Database, older_than_hours: float = 24.0, now: datetime | None = None
) -> int:
    """Drop the files (/mydata copies) of web chats made more than `older_than_hours` ago:
    the copy was for downloading then, not for keeping. Returns how many."""
    cutoff = (now or utcnow()) - timedelta(hours=older_than_hours)
    async with db.session() as session:
        rows = (
            await session.exec(
                select(WebMessage).where(
                    col(WebMessage.kind) == "file",
                    col(WebMessage.file_data).is_not(None),
                    col(WebMessage.created_at) < cutoff,
                )
            )
        ).all()
        for row in rows:
            row.file_data = None
            session.add(row)
    return len(rows)


def web_channel(rt: Runtime) -> WebChannel:
    """The web chats' channel of `rt` (bot.runtime.install sets it)."""
    channel = rt.web
    assert isinstance(channel, WebChannel)
    return channel


async def has_web_chat(db: Database, graduate_id: int) -> bool:
    """Whether the graduate has opened their web chat (it has a state)."""
    from storage.models import ChatState
    from storage.queries import web_chat_id

    async with db.session() as session:
        return await session.get(ChatState, web_chat_id(graduate_id)) is not None
