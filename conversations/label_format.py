"""The formatting XLSForm allows in a label, as a chat shows it (issue 19).

ODK Collect reads a label's text as a little markdown: ``**bold**`` or ``__bold__``,
``*emphasis*`` or ``_emphasis_``, ``# heading`` lines, ``[text](https://…)`` links, line
breaks as written, and ``<span style=…>`` around words (its colours are not kept). Telegram
shows a message formatted with its HTML subset: :func:`label_html` writes a label in it, every
other character escaped, so a ``<`` or ``&`` in a label is shown as written and never read as
markup. What it writes is checked as Telegram would check it; text whose markers do not pair
up (``*a **b* c**``) is sent as written, escaped, rather than refused by Telegram. The web
chat shows the same message without the tags (bot/web_channel.py), so no marker shows there
either.
"""

from __future__ import annotations

import html
import re

from conversations.news_html import NewsHtmlError, check_news_html

_SPAN = re.compile(r"</?span\b[^<>]*>", re.IGNORECASE)
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_LINK = re.compile(r"\[([^\[\]\n]+)\]\((https?://[^\s()<>\"]+)\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])")
_UNDERSCORE = re.compile(r"(?<![\w])_(?=[^\s_])([^_\n]+?)(?<=[^\s_])_(?![\w])")


def _links(text: str) -> str:
    def link(match: re.Match[str]) -> str:
        url = html.unescape(match.group(2))
        return f'<a href="{html.escape(url, quote=True)}">{match.group(1)}</a>'

    return _LINK.sub(link, text)


def label_html(text: str) -> str:
    """`text` (a label as the form writes it) as Telegram HTML."""
    source = _BREAK.sub("\n", _SPAN.sub("", text))
    escaped = html.escape(source, quote=False)
    formatted = _links(escaped)
    formatted = _HEADING.sub(r"<b>\1</b>", formatted)
    formatted = _BOLD.sub(r"<b>\2</b>", formatted)
    formatted = _STAR.sub(r"<i>\1</i>", formatted)
    formatted = _UNDERSCORE.sub(r"<i>\1</i>", formatted)
    try:
        check_news_html(formatted)
    except NewsHtmlError:
        return escaped  # markers that do not pair up: shown as written
    return formatted


def label_plain(text: str) -> str:
    """`text` as it reads without formatting (for places that show plain text, such as the
    review of the answers): markers and span tags taken off."""
    return html.unescape(re.sub(r"<[^>]*>", "", label_html(text)))
