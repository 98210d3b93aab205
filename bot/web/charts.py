"""Server-side inline SVG charts for the admin dashboard.

Pure functions from data to one `<svg>` element as a string: no JavaScript, no external
references, no I/O. Every chart carries a `<title>` and a `<desc>` listing each label with
its display text (screen readers, tests), each bar or segment has its own `<title>` tooltip,
and every piece of text and every link is escaped. Values that are suppressed for privacy
(`Bar.value is None`, e.g. fewer than 5 people) are never drawn with a length that could
reveal them: they become a hatched placeholder of fixed size showing their display text.

Elements carry CSS classes (`bar`, `suppressed`, `segment`, `gridline`, `track`, `value`,
`label`, `tick`, `x-label`, `swatch`, `legend`, `chart-title`, `empty`) so the page can
restyle them; colours are presentation attributes, which any CSS rule overrides.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# Okabe-Ito palette (colour-blind safe), in the order segments use it.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
BAR_COLOR = OKABE_ITO[0]
TEXT_COLOR = "#222222"
MUTED_COLOR = "#666666"
GRID_COLOR = "#DDDDDD"
TRACK_COLOR = "#F2F2F2"
SUPPRESSED_STROKE = "#888888"
HATCH_COLOR = "#BBBBBB"

WIDTH = 320.0
"""The drawing's width in CSS pixels: drawn 1:1 (never scaled up, only down where the page is
narrower), so that its 12 px text is 12 px on a phone of 360 px as on a desktop."""
FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
FONT_SIZE = 12
CHAR_WIDTH = 6.8  # rough average advance of one character at FONT_SIZE
TITLE_HEIGHT = 32.0
TITLE_LINE = 16.0  # each further line of a title that wraps
TITLE_LINES = 3
PAD = 8.0

# Horizontal bars, each with its label on a line of its own above it (the whole width is
# left for the label and the bar: readable on a phone)
LABEL_LINE = 16.0
BAR_ROW = 42.0
BAR_HEIGHT = 18.0
VALUE_WIDTH = 56.0
SUPPRESSED_WIDTH = 36.0  # fixed: a suppressed bar never shows a proportional length

# Columns
COLUMN_PLOT_HEIGHT = 180.0
COLUMN_BOTTOM = 30.0
COLUMN_GAP = 0.3  # share of each slot left empty between columns
SUPPRESSED_COLUMN_HEIGHT = 12.0
MAX_X_LABELS = 12
TARGET_TICKS = 4

# Stacked bars (labels above, as the bars)
STACK_ROW = 44.0
STACK_HEIGHT = 20.0
SWATCH = 12.0
LEGEND_ROW = 20.0

EMPTY_HEIGHT = 80.0

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


@dataclass(frozen=True)
class Bar:
    label: str  # category label, shown as text
    value: float | None  # None = suppressed (fewer than 5 people) or not available
    display: str  # the text printed at the bar end, e.g. "42%", "1,234", "<5"
    href: str | None = None  # optional drill-down link


# ---------------------------------------------------------------------------- helpers


def _clean(text: str) -> str:
    """Text without characters XML cannot hold, whitespace collapsed."""
    return " ".join(_XML_INVALID.sub("", str(text)).split())


def _esc(text: str) -> str:
    return html.escape(_clean(text), quote=True)


def _n(x: float) -> str:
    """A coordinate rounded to one decimal, without a trailing ".0" or a "-0"."""
    r = round(x, 1)
    if r == 0:
        return "0"
    s = f"{r:.1f}"
    return s[:-2] if s.endswith(".0") else s


def _value(v: float | None) -> float:
    """A drawable value: None, negative and non-finite values count as 0."""
    if v is None:
        return 0.0
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    if not math.isfinite(f) or f < 0:
        return 0.0
    return f


def _text_width(text: str) -> float:
    return len(_clean(text)) * CHAR_WIDTH


def _fit(text: str, max_px: float) -> str:
    """`text` truncated with "…" so it fits in about `max_px`."""
    text = _clean(text)
    max_chars = int(max_px // CHAR_WIDTH)
    if len(text) <= max_chars:
        return text
    if max_chars <= 1:
        return "…" if max_chars == 1 else ""
    return text[: max_chars - 1].rstrip() + "…"


def safe_href(href: str | None) -> str | None:
    """`href` if it is a relative URL or an http(s) URL, else None."""
    if href is None:
        return None
    href = str(href)
    if not href or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in href):
        return None
    if "\\" in href:
        return None
    match = _SCHEME.match(href)
    if match and match.group(1).lower() not in ("http", "https"):
        return None
    return href


def _chart_id(kind: str, *parts: object) -> str:
    digest = hashlib.sha256(repr((kind, *parts)).encode("utf-8", "replace")).hexdigest()
    return f"gt-{kind}-{digest[:10]}"


def _wrap(text: str, max_px: float, max_lines: int) -> list[str]:
    """`text` in lines of about `max_px` each, at most `max_lines` (the last one truncated
    with "…" if need be)."""
    words = _clean(text).split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if current and _text_width(candidate) > max_px:
            lines.append(current)
            current = word
        else:
            current = candidate
    lines.append(current)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], _fit(" ".join(lines[max_lines - 1 :]), max_px)]
    return [_fit(line, max_px) for line in lines]


def _title_lines(title: str) -> list[str]:
    # bold text runs about a tenth wider than CHAR_WIDTH estimates
    return _wrap(title, (WIDTH - 2 * PAD) * 0.88, TITLE_LINES)


def _head(title: str) -> float:
    """The height the title takes at the top of a chart."""
    return TITLE_HEIGHT + (len(_title_lines(title)) - 1) * TITLE_LINE


def _contrast_text(color: str) -> str:
    """Black or white, whichever reads better on `color` (#RRGGBB)."""

    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    lum = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#FFFFFF"


def _title(text: str) -> str:
    return f"<title>{_esc(text)}</title>"


def _text(
    x: float,
    y: float,
    content: str,
    *,
    cls: str,
    anchor: str = "start",
    fill: str = TEXT_COLOR,
    extra: str = "",
) -> str:
    return (
        f'<text class="{cls}" x="{_n(x)}" y="{_n(y)}" dy="0.35em" text-anchor="{anchor}"'
        f' fill="{fill}"{extra}>{_esc(content)}</text>'
    )


def _link(inner: str, href: str | None) -> str:
    safe = safe_href(href)
    if safe is None:
        return inner
    return f'<a href="{html.escape(safe, quote=True)}">{inner}</a>'


def _hatch_defs(chart_id: str) -> str:
    return (
        f'<defs><pattern id="{chart_id}-hatch" width="6" height="6"'
        ' patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{HATCH_COLOR}" stroke-width="2"/>'
        "</pattern></defs>"
    )


def _suppressed_rect(chart_id: str, x: float, y: float, w: float, h: float, tip: str) -> str:
    return (
        f'<rect class="suppressed" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}"'
        f' fill="url(#{chart_id}-hatch)" stroke="{SUPPRESSED_STROKE}" stroke-dasharray="3 2">'
        f"{_title(tip)}</rect>"
    )


def _svg(kind: str, chart_id: str, title: str, desc: str, height: float, body: str) -> str:
    heading = "".join(
        _text(
            PAD,
            TITLE_HEIGHT / 2 + i * TITLE_LINE,
            line,
            cls="chart-title",
            extra=' font-weight="bold"',
        )
        for i, line in enumerate(_title_lines(title))
    )
    # An image holds no links (axe: nested-interactive): a chart with drill-down links is a
    # group, whose links a keyboard or a screen reader reaches.
    role = "group" if "<a href=" in body else "img"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}"'
        f' viewBox="0 0 {_n(WIDTH)} {_n(height)}" width="{_n(WIDTH)}" height="{_n(height)}"'
        f' role="{role}" aria-labelledby="{chart_id}-title" aria-describedby="{chart_id}-desc"'
        f' font-family="{html.escape(FONT_FAMILY, quote=True)}" font-size="{FONT_SIZE}">'
        f'<title id="{chart_id}-title">{_esc(title)}</title>'
        f'<desc id="{chart_id}-desc">{_esc(desc)}</desc>' + heading + body + "</svg>"
    )


def _empty(kind: str, title: str, empty_text: str) -> str:
    chart_id = _chart_id(kind, title, empty_text, "empty")
    head = _head(title)
    message = _text(
        WIDTH / 2,
        head + (EMPTY_HEIGHT - TITLE_HEIGHT) / 2,
        _fit(empty_text, WIDTH - 2 * PAD),
        cls="empty",
        anchor="middle",
        fill=MUTED_COLOR,
    )
    return _svg(kind, chart_id, title, empty_text, head + EMPTY_HEIGHT - TITLE_HEIGHT, message)


def _describe(bars: Sequence[Bar]) -> str:
    return "; ".join(f"{_clean(b.label)}: {_clean(b.display)}" for b in bars)


# ---------------------------------------------------------------------------- bar chart


def bar_chart(
    title: str,
    bars: Sequence[Bar],
    *,
    max_value: float | None = None,
    empty_text: str = "No data yet",
) -> str:
    """Horizontal bar chart, each bar under its label. Bar length proportional to value /
    max_value (max_value defaults to the largest value, or 1 when all are None/0). Suppressed
    bars (value None) are drawn as a hatched placeholder of fixed width with their display
    text (e.g. "<5")."""
    bars = list(bars)
    if not bars:
        return _empty("bar-chart", title, empty_text)
    chart_id = _chart_id("bar-chart", title, bars, max_value)

    scale = _value(max_value)
    if scale <= 0:
        scale = max((_value(b.value) for b in bars), default=0.0)
    if scale <= 0:
        scale = 1.0

    head = _head(title)
    x0 = PAD
    track = WIDTH - 2 * PAD - VALUE_WIDTH
    parts: list[str] = []
    if any(b.value is None for b in bars):
        parts.append(_hatch_defs(chart_id))

    for i, bar in enumerate(bars):
        top = head + i * BAR_ROW
        y = top + LABEL_LINE
        mid = y + BAR_HEIGHT / 2
        tip = f"{_clean(bar.label)}: {_clean(bar.display)}"
        label = _text(x0, top + LABEL_LINE / 2, _fit(bar.label, WIDTH - 2 * PAD), cls="label")
        if bar.value is None:
            shape = _suppressed_rect(chart_id, x0, y, SUPPRESSED_WIDTH, BAR_HEIGHT, tip)
            end = x0 + SUPPRESSED_WIDTH
            value_cls = "value suppressed-value"
        else:
            w = round(track * min(_value(bar.value), scale) / scale, 1)
            shape = (
                f'<rect class="bar" x="{_n(x0)}" y="{_n(y)}" width="{_n(w)}"'
                f' height="{_n(BAR_HEIGHT)}" fill="{BAR_COLOR}">{_title(tip)}</rect>'
            )
            end = x0 + w
            value_cls = "value"
        value = _text(
            end + PAD / 2,
            mid,
            _fit(bar.display, WIDTH - end - PAD),
            cls=value_cls,
        )
        parts.append(_link(f'<g class="bar-row">{label}{shape}{value}</g>', bar.href))

    height = head + len(bars) * BAR_ROW + PAD
    return _svg("bar-chart", chart_id, title, _describe(bars), height, "".join(parts))


# ---------------------------------------------------------------------------- column chart


def nice_ticks(maximum: float, *, integer: bool = False) -> list[float]:
    """Round tick values 0, s, 2s, … covering `maximum`, the step s being 1, 2 or 5 × 10^k."""
    if not math.isfinite(maximum) or maximum <= 0:
        return [0.0, 1.0]
    raw = maximum / TARGET_TICKS
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    if integer:
        step = max(step, 1.0)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    count = math.ceil(maximum / step - 1e-9)
    return [round(i * step, decimals) for i in range(count + 1)]


def _tick_text(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return f"{value:.10f}".rstrip("0").rstrip(".")


def column_chart(title: str, points: Sequence[Bar], *, empty_text: str = "No data yet") -> str:
    """Vertical columns for a time series. At most MAX_X_LABELS labels on the x axis, round
    gridlines, suppressed points (value None) as a small fixed hatched placeholder."""
    points = list(points)
    values = [_value(p.value) for p in points]
    if not points or max(values) <= 0:
        return _empty("column-chart", title, empty_text)
    chart_id = _chart_id("column-chart", title, points)

    integer = all(v == int(v) for v in values)
    ticks = nice_ticks(max(values), integer=integer)
    top_value = ticks[-1]
    tick_texts = [_tick_text(t) for t in ticks]
    left = max(_text_width(t) for t in tick_texts) + 2 * PAD
    right = PAD * 1.5
    plot_w = WIDTH - left - right
    plot_top = _head(title) + PAD
    base = plot_top + COLUMN_PLOT_HEIGHT
    n = len(points)
    pitch = plot_w / n
    col_w = pitch * (1 - COLUMN_GAP)

    parts: list[str] = []
    if any(p.value is None for p in points):
        parts.append(_hatch_defs(chart_id))

    for tick, text in zip(ticks, tick_texts, strict=True):
        y = base - COLUMN_PLOT_HEIGHT * tick / top_value
        cls = "axis" if tick == 0 else "gridline"
        color = MUTED_COLOR if tick == 0 else GRID_COLOR
        parts.append(
            f'<line class="{cls}" x1="{_n(left)}" y1="{_n(y)}" x2="{_n(WIDTH - right)}"'
            f' y2="{_n(y)}" stroke="{color}" stroke-width="1"/>'
        )
        parts.append(_text(left - PAD / 2, y, text, cls="tick", anchor="end", fill=MUTED_COLOR))

    longest = min(120.0, max(_text_width(p.label) for p in points))
    every = max(math.ceil(n / MAX_X_LABELS), math.ceil((longest + PAD) / pitch), 1)
    show_values = max(_text_width(p.display) for p in points) + 2 <= pitch

    for i, (point, v) in enumerate(zip(points, values, strict=True)):
        cx = left + (i + 0.5) * pitch
        x = cx - col_w / 2
        tip = f"{_clean(point.label)}: {_clean(point.display)}"
        if point.value is None:
            h = SUPPRESSED_COLUMN_HEIGHT
            shape = _suppressed_rect(chart_id, x, base - h, col_w, h, tip)
        else:
            h = round(COLUMN_PLOT_HEIGHT * v / top_value, 1)
            shape = (
                f'<rect class="bar" x="{_n(x)}" y="{_n(base - h)}" width="{_n(col_w)}"'
                f' height="{_n(h)}" fill="{BAR_COLOR}">{_title(tip)}</rect>'
            )
        if show_values:
            shape += _text(cx, base - h - PAD, point.display, cls="value", anchor="middle")
        parts.append(_link(f'<g class="column">{shape}</g>', point.href))
        if i % every == 0:
            parts.append(
                _text(
                    cx,
                    base + PAD * 1.5,
                    _fit(point.label, every * pitch - 4),
                    cls="x-label",
                    anchor="middle",
                    fill=MUTED_COLOR,
                )
            )

    height = base + COLUMN_BOTTOM
    return _svg("column-chart", chart_id, title, _describe(points), height, "".join(parts))


# ---------------------------------------------------------------------------- stacked bars


def stacked_bar(
    title: str,
    rows: Sequence[tuple[str, Sequence[Bar]]],
    *,
    legend: Sequence[str],
    empty_text: str = "No data yet",
) -> str:
    """One 100%-stacked horizontal bar per row. Segments are scaled to the row's total; a row
    with any suppressed segment (value None) is drawn as a single hatched placeholder with that
    segment's display text, so the visible part cannot reveal the hidden one."""
    frozen = [(str(label), list(segments)) for label, segments in rows]
    legend = [str(name) for name in legend]
    if not frozen or not any(segments for _, segments in frozen):
        return _empty("stacked-bar", title, empty_text)
    chart_id = _chart_id("stacked-bar", title, frozen, legend)

    head = _head(title)
    x0 = PAD
    track = WIDTH - 2 * PAD
    parts: list[str] = []
    descs: list[str] = []
    if any(b.value is None for _, segments in frozen for b in segments):
        parts.append(_hatch_defs(chart_id))

    for r, (row_label, segments) in enumerate(frozen):
        top = head + r * STACK_ROW
        y = top + LABEL_LINE
        mid = y + STACK_HEIGHT / 2
        inner = [_text(x0, top + LABEL_LINE / 2, _fit(row_label, WIDTH - 2 * PAD), cls="label")]
        hidden = next((b for b in segments if b.value is None), None)
        if hidden is not None:
            tip = f"{_clean(row_label)}: {_clean(hidden.display)}"
            descs.append(tip)
            inner.append(_suppressed_rect(chart_id, x0, y, track, STACK_HEIGHT, tip))
            inner.append(
                _text(
                    x0 + track / 2,
                    mid,
                    _fit(hidden.display, track),
                    cls="value suppressed-value",
                    anchor="middle",
                )
            )
            parts.append(f'<g class="stack-row">{"".join(inner)}</g>')
            continue

        names = [
            _clean(b.label) or (_clean(legend[i]) if i < len(legend) else "")
            for i, b in enumerate(segments)
        ]
        shares = [f"{name} {_clean(b.display)}" for name, b in zip(names, segments, strict=True)]
        descs.append(f"{_clean(row_label)}: " + ", ".join(shares))
        values = [_value(b.value) for b in segments]
        total = sum(values)
        if total <= 0:
            inner.append(
                f'<rect class="track" x="{_n(x0)}" y="{_n(y)}" width="{_n(track)}"'
                f' height="{_n(STACK_HEIGHT)}" fill="{TRACK_COLOR}"/>'
            )
            parts.append(f'<g class="stack-row">{"".join(inner)}</g>')
            continue
        edge = round(x0, 1)
        running = 0.0
        for i, (seg, v, name) in enumerate(zip(segments, values, names, strict=True)):
            running += v
            next_edge = round(x0 + track * running / total, 1)
            w = round(next_edge - edge, 1)
            color = OKABE_ITO[i % len(OKABE_ITO)]
            tip = f"{_clean(row_label)}, {name}: {_clean(seg.display)}"
            shape = (
                f'<rect class="segment segment-{i}" x="{_n(edge)}" y="{_n(y)}" width="{_n(w)}"'
                f' height="{_n(STACK_HEIGHT)}" fill="{color}">{_title(tip)}</rect>'
            )
            if _text_width(seg.display) + PAD <= w:
                shape += _text(
                    edge + w / 2,
                    mid,
                    seg.display,
                    cls="segment-value",
                    anchor="middle",
                    fill=_contrast_text(color),
                )
            inner.append(_link(shape, seg.href))
            edge = next_edge
        parts.append(f'<g class="stack-row">{"".join(inner)}</g>')

    # Legend, wrapped over as many lines as needed.
    legend_top = head + len(frozen) * STACK_ROW + PAD
    x, line = PAD, 0
    items: list[str] = []
    for i, name in enumerate(legend):
        text = _fit(name, WIDTH - 2 * PAD - SWATCH - PAD)
        item_w = SWATCH + PAD / 2 + _text_width(text) + 2 * PAD
        if x > PAD and x + item_w > WIDTH - PAD:
            x, line = PAD, line + 1
        ly = legend_top + line * LEGEND_ROW + LEGEND_ROW / 2
        items.append(
            f'<rect class="swatch swatch-{i}" x="{_n(x)}" y="{_n(ly - SWATCH / 2)}"'
            f' width="{_n(SWATCH)}" height="{_n(SWATCH)}" fill="{OKABE_ITO[i % len(OKABE_ITO)]}"/>'
            + _text(x + SWATCH + PAD / 2, ly, text, cls="legend-label")
        )
        x += item_w
    lines = line + 1 if legend else 0
    parts.append(f'<g class="legend">{"".join(items)}</g>')

    height = legend_top + lines * LEGEND_ROW + PAD
    return _svg("stacked-bar", chart_id, title, "; ".join(descs), height, "".join(parts))
