"""What a conversation says and hears, whatever the channel it happens on.

The flows in `conversations/` (onboarding, consents, the questionnaire, the graduate's rights,
staff commands) are written against this module, never against python-telegram-bot: an
`Event` is what the person did (a command, a text, a button press), a `Turn` is one event on
one chat with the means to answer it, and a `Channel` delivers messages to a chat. The
Telegram adapter (bot/telegram_channel.py) turns updates into turns and messages into Bot
API calls; the web chat (bot/web/chat.py) turns form posts into turns and keeps the messages
for the page. A message is data: a text (plain, or Telegram HTML for the staff's news), maybe a
photo, and, optionally, rows of buttons whose data the flows encode themselves (at most 64
bytes, as Telegram allows) or that open a link.

A chat is a number. Telegram's chats are Telegram's ids (private chats: positive, below
2**52); a graduate's web chat is `storage.queries.web_chat_id(graduate_id)`, a negative
number below -2**53 that no Telegram chat can have.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

#: Telegram's limit on a button's data, kept on every channel so that a flow's buttons work
#: everywhere.
MAX_BUTTON_DATA = 64


@dataclass(frozen=True)
class Button:
    """A button under a message; pressing it sends `data` back as a button event. A button
    with a `url` (and no data) opens that address instead (alumni news' link, the dashboard
    login): Telegram shows it as a link button, the web chat as a link."""

    label: str
    data: str = ""
    url: str | None = None


Keyboard = tuple[tuple[Button, ...], ...]


def keyboard(rows: Iterable[Iterable[Button]]) -> Keyboard:
    """Rows of buttons (empty rows dropped)."""
    return tuple(row for row in (tuple(r) for r in rows) if row)


class DeliveryError(Exception):
    """A channel could not deliver a message."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason


class Unreachable(DeliveryError):
    """The person cannot be reached on this channel any more (Telegram's 403: blocked the
    bot, deleted the account): never retried."""


class Refused(DeliveryError):
    """The channel refused this message as it is (Telegram's 400: a text too long, a message
    already edited or too old to edit); sending it again would be refused again."""


class Channel(Protocol):
    """Delivers messages to chats of one kind."""

    name: str

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
        """Send a message; returns its id where the channel has one.

        `html`: `text` is formatted as Telegram HTML (bold, italic, links …: what staff wrote
        in alumni news), not plain text. `photo`: the channel's reference of a photo to send
        with `text` as its caption (a Telegram file id; a channel that cannot show it sends
        the text alone). `link_preview`: False keeps the channel from fetching a link in the
        text (a one-time login link must not be opened by anyone but the person)."""

    async def edit(
        self, chat_id: int, message_id: int, text: str | None, buttons: Keyboard = ()
    ) -> None:
        """Change a message sent before: its text (None: keep it) and its buttons (empty:
        none). Raises Refused when the message cannot be changed (unchanged, too old)."""

    async def send_file(self, chat_id: int, filename: str, data: bytes, caption: str) -> None:
        """Send a file (the graduate's data, as /mydata gives it)."""


EventKind = Literal["command", "text", "button", "other"]


@dataclass(frozen=True)
class Event:
    """What the person did.

    - `command`: `name` (without the slash) and `args` (`/start abc` -> "start", ["abc"]);
    - `text`: a typed message, in `text`;
    - `button`: a button press, its data in `data`; `message_id` and `message_text` are the
      message the button was under (where the channel knows them);
    - `other`: anything else (a photo, a sticker …), never an answer.
    `language` is the language the person's device or app says they use, if any;
    `sender_id` and `sender_name` the person's account on the channel where it has one (a
    Telegram user: what staff accounts are tied to). `forwarded`: the message is someone
    else's, passed on. For the staff's news: `html`, the text (or a photo's caption) with its
    formatting, as Telegram HTML; `caption`, the plain text under a photo or file; `photo`,
    the channel's reference of the message's photo (its largest size), if any.
    """

    kind: EventKind
    name: str = ""
    args: tuple[str, ...] = ()
    text: str = ""
    data: str = ""
    message_id: int | None = None
    message_text: str | None = None
    language: str | None = None
    forwarded: bool = False
    sender_id: int | None = None
    sender_name: str | None = None
    html: str | None = None
    caption: str | None = None
    photo: str | None = None


Acknowledge = Callable[[str | None, bool], Awaitable[None]]


async def _no_acknowledgement(text: str | None, alert: bool) -> None:
    return None


@dataclass
class Turn:
    """One event on one chat, and the means to answer it on the channel it came from."""

    chat_id: int
    event: Event
    channel: Channel
    #: Answers a button press: a short notice (None: just stop the button's spinner), as an
    #: alert the person must close when `alert`. Telegram needs exactly one answer to each
    #: press; the web chat shows the notice above the conversation.
    acknowledge: Acknowledge = _no_acknowledgement
    acknowledged: bool = field(default=False, init=False)

    async def say(
        self, text: str, buttons: Keyboard = (), *, link_preview: bool = True
    ) -> int | None:
        """A message to the person, on this turn's channel."""
        return await self.channel.send(self.chat_id, text, buttons, link_preview=link_preview)

    async def notice(self, text: str | None = None, *, alert: bool = False) -> None:
        """Answer the button press (once; later calls do nothing)."""
        if self.acknowledged:
            return
        self.acknowledged = True
        await self.acknowledge(text, alert)

    async def edit(self, text: str | None, buttons: Keyboard = ()) -> bool:
        """Change the message whose button was pressed; False where it cannot be changed
        (no such message, unchanged, too old), which callers may ignore."""
        if self.event.message_id is None:
            return False
        try:
            await self.channel.edit(self.chat_id, self.event.message_id, text, buttons)
        except Refused:
            return False
        return True

    async def send_file(self, filename: str, data: bytes, caption: str) -> None:
        await self.channel.send_file(self.chat_id, filename, data, caption)


def button_rows(rows: Sequence[Sequence[tuple[str, str]]]) -> Keyboard:
    """A keyboard from (label, data) pairs, row by row."""
    return keyboard([Button(label, data) for label, data in row] for row in rows)
