"""Message formatting: parse_mode parsing (HTML, MarkdownV2, Markdown) into plain text plus
MessageEntity dicts, and detection of the entities Telegram adds by itself (bot commands,
mentions, hashtags, URLs, e-mail addresses).

Offsets and lengths are in UTF-16 code units, like the Bot API's. Error wording follows the
Bot API server's, e.g. `Can't find end tag corresponding to start tag "b"`.
"""

from __future__ import annotations

import re
from typing import Any

Entity = dict[str, Any]


class ParseError(ValueError):
    """The text is not valid in its parse mode; the message follows Telegram's wording."""


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode("utf-8"))


class _Output:
    """Plain text being assembled, with its running UTF-16 length."""

    __slots__ = ("parts", "pos")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0

    def add(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.pos += utf16_len(text)

    def text(self) -> str:
        return "".join(self.parts)


def _close(entities: list[Entity], entity: Entity | None, start: int, end: int) -> None:
    if entity is not None and end > start:
        entity["offset"] = start
        entity["length"] = end - start
        entities.append(entity)


def _sorted(entities: list[Entity]) -> list[Entity]:
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


# ---------------------------------------------------------------------------------------
# HTML

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "tg-time": "date_time",
}
_HTML_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|lt|gt|amp|quot);")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _html_unescape(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in _HTML_NAMED:
        return _HTML_NAMED[name]
    code = int(name[2:], 16) if name[1:2] in ("x", "X") else int(name[1:])
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return match.group(0)
    return chr(code)


def _html_attrs(src: str, j: int, begin: int) -> tuple[dict[str, str], int]:
    """Attributes of a start tag from position `j`; returns them and the index after `>`."""
    n = len(src)
    attrs: dict[str, str] = {}
    while True:
        while j < n and src[j].isspace():
            j += 1
        if j >= n:
            raise ParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
        if src[j] == ">":
            return attrs, j + 1
        if src[j] == "/":
            j += 1
            continue
        k = j
        while j < n and not src[j].isspace() and src[j] not in "=>":
            j += 1
        name = src[k:j].lower()
        while j < n and src[j].isspace():
            j += 1
        if j >= n or src[j] != "=":
            attrs[name] = ""
            continue
        j += 1
        while j < n and src[j].isspace():
            j += 1
        if j < n and src[j] in "\"'":
            end = src.find(src[j], j + 1)
            if end < 0:
                raise ParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
            value = src[j + 1 : end]
            j = end + 1
        else:
            k = j
            while j < n and not src[j].isspace() and src[j] != ">":
                j += 1
            value = src[k:j]
        attrs[name] = _HTML_ENTITY_RE.sub(_html_unescape, value)


def _html_entity(
    tag: str, attrs: dict[str, str], stack: list[tuple[str, Entity | None, int]]
) -> Entity | None:
    kind = _HTML_TAGS[tag]
    if tag == "span" and attrs.get("class") != "tg-spoiler":
        raise ParseError('Tag "span" must have class "tg-spoiler"')
    if kind == "text_link":
        href = attrs.get("href", "").strip()
        if not href:
            return None
        user = re.fullmatch(r"tg://user\?id=(\d+)", href)
        if user:
            uid = int(user.group(1))
            return {"type": "text_mention", "user": {"id": uid, "is_bot": False, "first_name": ""}}
        return {"type": "text_link", "url": href}
    if kind == "code" and stack and stack[-1][0] == "pre":
        language = attrs.get("class", "")
        pre = stack[-1][1]
        if pre is not None and language.startswith("language-") and len(language) > 9:
            pre["language"] = language[9:]
        return None
    if kind == "custom_emoji":
        emoji_id = attrs.get("emoji-id", "")
        if not emoji_id.isdigit():
            raise ParseError("Custom emoji entity must contain a valid custom emoji identifier")
        return {"type": kind, "custom_emoji_id": emoji_id}
    if kind == "date_time":
        unix = attrs.get("unix", "")
        if not unix.lstrip("-").isdigit():
            raise ParseError('Tag "tg-time" must have a valid attribute "unix"')
        entity: Entity = {"type": kind, "unix_time": int(unix)}
        if attrs.get("format"):
            entity["date_time_format"] = attrs["format"]
        return entity
    if kind == "blockquote" and "expandable" in attrs:
        return {"type": "expandable_blockquote"}
    return {"type": kind}


def parse_html(src: str) -> tuple[str, list[Entity]]:
    """Plain text and entities of an HTML-formatted message."""
    out = _Output()
    entities: list[Entity] = []
    stack: list[tuple[str, Entity | None, int]] = []
    i, n = 0, len(src)
    while i < n:
        lt, amp = src.find("<", i), src.find("&", i)
        stop = min(x for x in (lt, amp, n) if x >= 0)
        if stop > i:
            out.add(src[i:stop])
            i = stop
            continue
        if src[i] == "&":
            match = _HTML_ENTITY_RE.match(src, i)
            if match:
                out.add(_html_unescape(match))
                i = match.end()
            else:
                out.add("&")
                i += 1
            continue
        begin = i
        if src.startswith("</", i):
            end = src.find(">", i)
            if end < 0:
                raise ParseError(f"Unclosed end tag at byte offset {_byte_offset(src, begin)}")
            name = src[i + 2 : end].strip().lower()
            if not stack:
                raise ParseError(f"Unexpected end tag at byte offset {_byte_offset(src, begin)}")
            tag, entity, start = stack.pop()
            if name and name != tag:
                raise ParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(src, begin)}, "
                    f'expected "</{tag}>", found "</{name}>"'
                )
            _close(entities, entity, start, out.pos)
            i = end + 1
            continue
        j = i + 1
        while j < n and not src[j].isspace() and src[j] not in "/>":
            j += 1
        tag = src[i + 1 : j].lower()
        if tag not in _HTML_TAGS:
            raise ParseError(
                f'Unsupported start tag "{tag}" at byte offset {_byte_offset(src, begin)}'
            )
        attrs, i = _html_attrs(src, j, begin)
        stack.append((tag, _html_entity(tag, attrs, stack), out.pos))
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.text(), _sorted(entities)


# ---------------------------------------------------------------------------------------
# MarkdownV2

_V2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_V2_MARKERS = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}
_V2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
}


def _v2_scan(src: str, i: int, closer: str, name: str, begin: int) -> tuple[str, int]:
    """Unescaped content from `i` up to the unescaped `closer`; returns it and the index after."""
    parts: list[str] = []
    n = len(src)
    while i < n:
        if src[i] == "\\" and i + 1 < n:
            parts.append(src[i + 1])
            i += 2
            continue
        if src.startswith(closer, i):
            return "".join(parts), i + len(closer)
        parts.append(src[i])
        i += 1
    raise ParseError(f"Can't find end of {name} entity at byte offset {_byte_offset(src, begin)}")


def _link_entity(url: str) -> Entity:
    user = re.fullmatch(r"tg://user\?id=(\d+)", url)
    if user:
        return {
            "type": "text_mention",
            "user": {"id": int(user.group(1)), "is_bot": False, "first_name": ""},
        }
    return {"type": "text_link", "url": url}


def parse_markdown_v2(src: str) -> tuple[str, list[Entity]]:
    """Plain text and entities of a MarkdownV2-formatted message."""
    out = _Output()
    entities: list[Entity] = []
    stack: list[tuple[str, int, int]] = []  # (kind, utf16 start, source index)
    quote_start: int | None = None
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        at_line_start = i == 0 or src[i - 1] == "\n"
        if c == "\\":
            if i + 1 < n and 0 < ord(src[i + 1]) <= 126:
                out.add(src[i + 1])
                i += 2
            else:
                out.add(c)
                i += 1
            continue
        if c == ">" and at_line_start:
            if quote_start is None:
                quote_start = out.pos
            i += 1
            continue
        if c == "\n":
            if quote_start is not None and not src.startswith(">", i + 1):
                _close(entities, {"type": "blockquote"}, quote_start, out.pos)
                quote_start = None
            out.add(c)
            i += 1
            continue
        if c == "`":
            start = out.pos
            if src.startswith("```", i):
                body, i = _v2_scan(src, i + 3, "```", "Pre", i)
                entity: Entity = {"type": "pre"}
                first, sep, rest = body.partition("\n")
                if sep and first and not any(ch.isspace() for ch in first):
                    entity["language"] = first
                    body = rest
                out.add(body)
            else:
                body, i = _v2_scan(src, i + 1, "`", "Code", i)
                entity = {"type": "code"}
                out.add(body)
            _close(entities, entity, start, out.pos)
            continue
        if c == "[":
            stack.append(("text_link", out.pos, i))
            i += 1
            continue
        if c == "]" and stack and stack[-1][0] == "text_link":
            _, start, _begin = stack.pop()
            if not src.startswith("(", i + 1):
                raise ParseError(
                    f"Can't find end of TextUrl entity at byte offset {_byte_offset(src, _begin)}"
                )
            url, i = _v2_scan(src, i + 2, ")", "TextUrl", _begin)
            _close(entities, _link_entity(url), start, out.pos)
            continue
        marker = "__" if src.startswith("__", i) else "||" if src.startswith("||", i) else c
        kind = _V2_MARKERS.get(marker)
        if kind is not None:
            open_at = next((k for k in range(len(stack) - 1, -1, -1) if stack[k][0] == kind), -1)
            if open_at >= 0:
                _, start, _begin = stack.pop(open_at)
                _close(entities, {"type": kind}, start, out.pos)
            else:
                stack.append((kind, out.pos, i))
            i += len(marker)
            continue
        if c in _V2_RESERVED:
            raise ParseError(
                f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
            )
        out.add(c)
        i += 1
    if stack:
        kind, _start, begin = stack[-1]
        raise ParseError(
            f"Can't find end of {_V2_NAMES[kind]} entity at byte offset {_byte_offset(src, begin)}"
        )
    if quote_start is not None:
        _close(entities, {"type": "blockquote"}, quote_start, out.pos)
    return out.text(), _sorted(entities)


# ---------------------------------------------------------------------------------------
# Markdown (legacy)


def parse_markdown(src: str) -> tuple[str, list[Entity]]:
    """Plain text and entities of a legacy Markdown-formatted message."""
    out = _Output()
    entities: list[Entity] = []
    i, n = 0, len(src)

    def missing_end(begin: int) -> ParseError:
        return ParseError(
            f"Can't find end of the entity starting at byte offset {_byte_offset(src, begin)}"
        )

    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n and src[i + 1] in "_*`[":
            out.add(src[i + 1])
            i += 2
            continue
        start = out.pos
        if c in "_*":
            end = src.find(c, i + 1)
            if end < 0:
                raise missing_end(i)
            out.add(src[i + 1 : end])
            _close(entities, {"type": "bold" if c == "*" else "italic"}, start, out.pos)
            i = end + 1
        elif c == "`":
            if src.startswith("```", i):
                end = src.find("```", i + 3)
                if end < 0:
                    raise missing_end(i)
                body = src[i + 3 : end]
                entity: Entity = {"type": "pre"}
                first, sep, rest = body.partition("\n")
                if sep and first and not any(ch.isspace() for ch in first):
                    entity["language"] = first
                    body = rest
                out.add(body)
                _close(entities, entity, start, out.pos)
                i = end + 3
            else:
                end = src.find("`", i + 1)
                if end < 0:
                    raise missing_end(i)
                out.add(src[i + 1 : end])
                _close(entities, {"type": "code"}, start, out.pos)
                i = end + 1
        elif c == "[":
            end = src.find("]", i + 1)
            if end < 0:
                raise missing_end(i)
            out.add(src[i + 1 : end])
            if src.startswith("(", end + 1):
                close = src.find(")", end + 2)
                if close < 0:
                    raise missing_end(i)
                _close(entities, _link_entity(src[end + 2 : close]), start, out.pos)
                i = close + 1
            else:
                i = end + 1
        else:
            out.add(c)
            i += 1
    return out.text(), _sorted(entities)


# ---------------------------------------------------------------------------------------
# Entities Telegram detects by itself

_AUTO_RE = re.compile(
    r"""
    (?P<bot_command>(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z][A-Za-z0-9_]{2,31})?(?![\w/]))
  | (?P<email>(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*
        \.[A-Za-z]{2,}(?![\w@]))
  | (?P<url>\bhttps?://[^\s<>"']+)
  | (?P<mention>(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}(?![\w@]))
  | (?P<hashtag>(?<![\w\#])\#\w*[^\W\d_]\w*)
    """,
    re.VERBOSE,
)
_URL_TRAILING = ".,;:!?)]}'\""


def detect_entities(text: str, existing: list[Entity]) -> list[Entity]:
    """`existing` plus the bot commands, mentions, hashtags, URLs and e-mails Telegram adds."""
    if "/" not in text and "@" not in text and "#" not in text:
        return existing
    spans = [(e["offset"], e["offset"] + e["length"]) for e in existing]
    found: list[Entity] = []
    ascii_text = text.isascii()
    for match in _AUTO_RE.finditer(text):
        kind = match.lastgroup or ""
        start, end = match.span()
        if kind == "url":
            while end > start and text[end - 1] in _URL_TRAILING:
                end -= 1
        if ascii_text:
            offset, length = start, end - start
        else:
            offset, length = utf16_len(text[:start]), utf16_len(text[start:end])
        if any(offset < b and a < offset + length for a, b in spans):
            continue
        found.append({"type": kind, "offset": offset, "length": length})
    if not found:
        return existing
    return _sorted(existing + found)


# ---------------------------------------------------------------------------------------


def strip_text(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Text without leading/trailing whitespace, entities moved and clipped to match."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = utf16_len(text[: len(text) - len(text.lstrip())])
    limit = utf16_len(stripped)
    result: list[Entity] = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, limit)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    return stripped, result


def format_text(
    text: str, parse_mode: str | None, entities: list[Entity] | None
) -> tuple[str, list[Entity]]:
    """The text as Telegram stores it, and its entities (explicit, parsed and detected).

    Raises `ParseError` for malformed markup and `ValueError("unsupported parse_mode")`.
    """
    if entities is not None:
        result = [dict(e) for e in entities]
    elif parse_mode:
        mode = parse_mode.lower()
        if mode == "html":
            text, result = parse_html(text)
        elif mode == "markdownv2":
            text, result = parse_markdown_v2(text)
        elif mode == "markdown":
            text, result = parse_markdown(text)
        else:
            raise ValueError("unsupported parse_mode")
    else:
        result = []
    text, result = strip_text(text, result)
    return text, detect_entities(text, result)
