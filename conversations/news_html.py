"""Checking staff-written news HTML against what Telegram accepts (parse_mode HTML).

A pure function: `check_news_html(text)` returns the text as graduates will read it (tags
taken off, entities decoded), or raises `NewsHtmlError` naming the problem and where it is
(line and column), before anything is saved. Telegram's subset: b/strong, i/em, u/ins,
s/strike/del, span class="tg-spoiler", tg-spoiler, a href, code, pre (optionally with one
code class="language-x" inside), blockquote (optionally expandable), tg-emoji emoji-id; the
named entities &lt; &gt; &amp; &quot; and numeric ones; every tag closed, innermost first.
A lone ">" is accepted, as Telegram accepts it.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from bot.i18n import _

SIMPLE = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "tg-spoiler"}
TAGS = SIMPLE | {"span", "a", "code", "pre", "blockquote", "tg-emoji"}
NAMED_ENTITIES = {"lt", "gt", "amp", "quot"}

_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[^<>]*?)?)\s*(/?)>", re.DOTALL)
_ATTR = re.compile(
    r"""\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""",
    re.DOTALL,
)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]*);")


@dataclass
class NewsHtmlError(ValueError):
    """What is wrong and where (1-based line and column of the offending character)."""

    problem: str
    line: int
    column: int

    def __str__(self) -> str:
        return _("line {line}, column {column}: {problem}").format(
            line=self.line, column=self.column, problem=self.problem
        )


def _where(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _attributes(raw: str) -> dict[str, str | None] | None:
    found: dict[str, str | None] = {}
    position = 0
    raw = raw.rstrip()
    while position < len(raw):
        match = _ATTR.match(raw, position)
        if match is None or match.end() == position:
            return None
        name = match.group(1).lower()
        value = next((g for g in match.group(2, 3, 4) if g is not None), None)
        found[name] = html.unescape(value) if value is not None else None
        position = match.end()
    return found


def _allowed_attributes(
    name: str, attributes: dict[str, str | None], parent: str | None
) -> str | None:
    """None if the attributes fit the tag, else the problem."""
    allowed: dict[str, set[str]] = {
        "a": {"href"},
        "span": {"class"},
        "code": {"class"},
        "blockquote": {"expandable"},
        "tg-emoji": {"emoji-id"},
    }
    extra = sorted(set(attributes) - allowed.get(name, set()))
    if extra:
        return _("<{tag}> cannot have the attribute {attribute}").format(
            tag=name, attribute=extra[0]
        )
    if name == "a" and not attributes.get("href"):
        return _('<a> needs a link: <a href="https://…">')
    if name == "span" and attributes.get("class") != "tg-spoiler":
        return _('<span> is only accepted as <span class="tg-spoiler">')
    if name == "tg-emoji" and not (attributes.get("emoji-id") or "").isdigit():
        return _('<tg-emoji> needs a number: <tg-emoji emoji-id="…">')
    if name == "code" and "class" in attributes:
        value = attributes.get("class") or ""
        if parent != "pre" or not re.fullmatch(r"language-[A-Za-z0-9_+#.-]+", value):
            return _('class="language-…" is only accepted on <code> directly inside <pre>')
    return None


def check_news_html(text: str) -> str:
    """The text as readers see it, or NewsHtmlError for the first problem Telegram would
    refuse (or, for a stray "<" or "&", misread)."""
    open_tags: list[tuple[str, int]] = []
    plain: list[str] = []
    position = 0

    def fail(problem: str, offset: int) -> NewsHtmlError:
        line, column = _where(text, offset)
        return NewsHtmlError(problem, line, column)

    while position < len(text):
        char = text[position]
        if char == "<":
            match = _TAG.match(text, position)
            if match is None:
                raise fail(_('a "<" that starts no tag: write &lt; for the sign itself'), position)
            closing, name, raw, self_closing = match.group(1, 2, 3, 4)
            name = name.lower()
            if name not in TAGS:
                raise fail(
                    _(
                        "<{tag}> is not a tag Telegram accepts (b, i, u, s, a, code, pre, "
                        "blockquote, tg-spoiler, tg-emoji)"
                    ).format(tag=name),
                    position,
                )
            if closing:
                if raw.strip():
                    raise fail(_("</{tag}> cannot have attributes").format(tag=name), position)
                if not open_tags:
                    raise fail(
                        _("</{tag}> closes a tag that is not open").format(tag=name), position
                    )
                innermost, _start = open_tags[-1]
                if innermost != name:
                    raise fail(
                        _("</{tag}> comes before </{inner}>: close tags innermost first").format(
                            tag=name, inner=innermost
                        ),
                        position,
                    )
                open_tags.pop()
            else:
                if self_closing:
                    raise fail(
                        _("<{tag}/> must be written as a pair: <{tag}>…</{tag}>").format(tag=name),
                        position,
                    )
                attributes = _attributes(raw)
                if attributes is None:
                    raise fail(
                        _("the attributes of <{tag}> cannot be read").format(tag=name), position
                    )
                parent = open_tags[-1][0] if open_tags else None
                problem = _allowed_attributes(name, attributes, parent)
                if problem:
                    raise fail(problem, position)
                inside = {tag for tag, _start in open_tags}
                if "code" in inside or (
                    "pre" in inside and not (name == "code" and parent == "pre")
                ):
                    raise fail(
                        _("<{tag}> cannot be inside <code> or <pre>").format(tag=name), position
                    )
                if name in inside and name in {"a", "blockquote", "pre", "code"}:
                    raise fail(
                        _("<{tag}> cannot be inside another <{tag}>").format(tag=name), position
                    )
                open_tags.append((name, position))
            position = match.end()
            continue
        if char == "&":
            match = _ENTITY.match(text, position)
            if match is None:
                raise fail(
                    _('an "&" that starts no entity: write &amp; for the sign itself'), position
                )
            entity = match.group(0)
            if not entity.startswith("&#") and entity[1:-1] not in NAMED_ENTITIES:
                raise fail(
                    _("{entity} is not accepted: use &lt; &gt; &amp; &quot; or a number").format(
                        entity=entity
                    ),
                    position,
                )
            if entity.startswith("&#"):
                number = int(entity[3:-1], 16) if entity[2] in "xX" else int(entity[2:-1])
                if number > 0x10FFFF or 0xD800 <= number <= 0xDFFF or number == 0:
                    raise fail(_("{entity} is not a character").format(entity=entity), position)
            plain.append(html.unescape(entity))
            position = match.end()
            continue
        plain.append(char)
        position += 1
    if open_tags:
        name, start = open_tags[-1]
        raise fail(_("<{tag}> is never closed").format(tag=name), start)
    return "".join(plain)
