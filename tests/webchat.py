"""A graduate in the web chat, over HTTP as a browser without scripts would: read the page,
press its buttons, type in its field (a real aiohttp client against the service's web app)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

import aiohttp


@dataclass
class PageMessage:
    id: int
    kind: str
    text: str
    buttons: list[tuple[str, str]] = field(default_factory=list)
    file: str | None = None


@dataclass
class Page:
    status: int
    title: str
    messages: list[PageMessage]
    csrf: str
    event: str
    started: bool
    autofocus: str | None
    html: str

    def bot_texts(self) -> list[str]:
        return [m.text for m in self.messages if m.kind in ("bot", "file")]

    def notices(self) -> list[str]:
        return [m.text for m in self.messages if m.kind == "notice"]

    def last_with_buttons(self) -> PageMessage:
        for message in reversed(self.messages):
            if message.buttons:
                return message
        raise AssertionError("no message with buttons on the page")


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[PageMessage] = []
        self.title = ""
        self.csrf = ""
        self.event = ""
        self.started = False
        self.autofocus: str | None = None
        self._in: str | None = None
        self._button: tuple[str, str] | None = None
        self._label = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "li" and "msg" in a.get("class", ""):
            kind = a["class"].split()[1]
            self.messages.append(PageMessage(int(a["id"][1:]), kind, ""))
            self.started = True
        elif tag == "p" and "text" in a.get("class", "").split() and self.messages:
            self._in = "text"
        elif tag == "title":
            self._in = "title"
        elif tag == "input" and a.get("name") == "csrf":
            self.csrf = a.get("value", "")
        elif tag == "input" and a.get("name") == "event":
            self.event = a.get("value", "")
        elif tag == "button" and a.get("name") == "data" and self.messages:
            self._button = ("", a.get("value", ""))
            self._label = ""
            if "autofocus" in a:
                self.autofocus = a.get("value", "")
        elif tag == "button" and "autofocus" in a:
            self.autofocus = a.get("id") or "button"
        elif tag == "input" and "autofocus" in a:
            self.autofocus = a.get("id") or "input"
        elif tag == "a" and "file" in a.get("class", "") and self.messages:
            self.messages[-1].file = a.get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "title"):
            self._in = None
        if tag == "button" and self._button is not None:
            self.messages[-1].buttons.append((self._label.strip(), self._button[1]))
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._label += data
        elif self._in == "text":
            self.messages[-1].text += data
        elif self._in == "title":
            self.title += data


def read_page(status: int, html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    return Page(
        status,
        reader.title.strip(),
        reader.messages,
        reader.csrf,
        reader.event,
        reader.started,
        reader.autofocus,
        html,
    )


class WebGraduate:
    """A browser on `base/c/<token>`: cookies kept, Origin sent as a browser sends it."""

    def __init__(self, base: str, token: str, language: str = "en") -> None:
        self.base = base.rstrip("/")
        self.url = f"{self.base}/c/{token}"
        self.language = language
        self.session = aiohttp.ClientSession(
            headers={"Accept-Language": language}, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        self.page: Page | None = None

    async def close(self) -> None:
        await self.session.close()

    async def open(self) -> Page:
        async with self.session.get(self.url) as response:
            self.page = read_page(response.status, await response.text())
        return self.page

    async def post(self, fields: dict[str, str], *, page: Page | None = None) -> Page:
        page = page or self.page or await self.open()
        form = {"csrf": page.csrf, "event": page.event, **fields}
        async with self.session.post(
            self.url, data=form, headers={"Origin": self.base}, allow_redirects=True
        ) as response:
            self.page = read_page(response.status, await response.text())
        return self.page

    async def start(self) -> Page:
        await self.open()
        return await self.post({"kind": "command", "command": "start"})

    async def press(self, label: str) -> Page:
        """Press the button labelled `label` (exactly, or ending with it) of the newest
        message with buttons."""
        assert self.page is not None
        message = self.page.last_with_buttons()
        data = next(
            (d for text, d in message.buttons if text == label or text.endswith(label)), None
        )
        assert data is not None, f"no button {label!r} in {message.buttons}"
        return await self.post({"kind": "button", "data": data})

    async def press_data(self, data: str) -> Page:
        return await self.post({"kind": "button", "data": data})

    async def type(self, text: str) -> Page:
        return await self.post({"kind": "text", "text": text})

    async def command(self, name: str) -> Page:
        return await self.post({"kind": "command", "command": name})
