"""Inline SVG charts of the admin dashboard (bot/web/charts.py)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

from bot.web.charts import (
    MAX_X_LABELS,
    OKABE_ITO,
    SUPPRESSED_WIDTH,
    Bar,
    bar_chart,
    column_chart,
    nice_ticks,
    safe_href,
    stacked_bar,
)

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def classes(el: ET.Element) -> set[str]:
    return set((el.get("class") or "").split())


def by_class(root: ET.Element, cls: str, tag: str | None = None) -> list[ET.Element]:
    return [
        el for el in root.iter() if cls in classes(el) and (tag is None or el.tag == f"{NS}{tag}")
    ]


def texts(root: ET.Element, cls: str) -> list[str]:
    return [el.text or "" for el in by_class(root, cls, "text")]


def desc(root: ET.Element) -> str:
    el = root.find(f"{NS}desc")
    assert el is not None
    return el.text or ""


def tooltip(el: ET.Element) -> str:
    t = el.find(f"{NS}title")
    assert t is not None
    return t.text or ""


def all_text(root: ET.Element) -> str:
    return " ".join(t for el in root.iter() for t in (el.text, el.tail) if t)


# ---------------------------------------------------------------------------- common


def test_svg_root_is_accessible_and_drawn_at_a_phone_s_width() -> None:
    svg = bar_chart("Response rate", [Bar("ICT", 42.0, "42%"), Bar("Care", 17.0, "17%")])
    root = parse(svg)
    assert root.get("role") == "img"
    # Drawn at its own size in CSS pixels (the page's CSS lets it shrink, never grow):
    # its 12 px text is 12 px wherever it fits (tests/test_dashboard_glance.py measures).
    viewbox = (root.get("viewBox") or "").split()
    assert len(viewbox) == 4 and float(viewbox[2]) > 0 and float(viewbox[3]) > 0
    assert root.get("width") == viewbox[2] and root.get("height") == viewbox[3]
    assert float(viewbox[2]) <= 320  # fits a phone of 360 px
    title = root.find(f"{NS}title")
    assert title is not None and title.text == "Response rate"
    assert root.get("aria-labelledby") == title.get("id")
    assert "ICT: 42%" in desc(root) and "Care: 17%" in desc(root)


def test_output_is_deterministic_and_self_contained() -> None:
    bars = [Bar("A", 1.0, "1", href="/a"), Bar("B", None, "<5"), Bar("C", 3.3333, "3")]
    assert bar_chart("T", bars) == bar_chart("T", bars)
    points = [Bar(f"W{i}", float(i % 7), str(i % 7)) for i in range(30)]
    assert column_chart("T", points) == column_chart("T", points)
    for svg in (
        bar_chart("T", bars),
        column_chart("T", points),
        stacked_bar("T", [("r", [Bar("x", 1.0, "1"), Bar("y", None, "<5")])], legend=["x", "y"]),
    ):
        root = parse(svg)
        lowered = svg.lower()
        assert "<script" not in lowered and "foreignobject" not in lowered
        assert "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
        for el in root.iter():
            assert not any(name.lower().startswith("on") for name in el.attrib)
            for value in el.attrib.values():
                assert "url(" not in value or value.startswith("url(#")


def test_coordinates_rounded_to_one_decimal() -> None:
    svg = bar_chart("T", [Bar("a", 1.0, "1"), Bar("b", 3.0, "3"), Bar("c", 7.0, "7")])
    root = parse(svg)
    for el in root.iter():
        for name in ("x", "y", "width", "height", "x1", "x2", "y1", "y2"):
            value = el.get(name)
            if value is not None:
                assert len(value.partition(".")[2]) <= 1, (name, value)


def test_desc_lists_every_label_and_display() -> None:
    bars = [Bar("Working", 61.5, "61.5%"), Bar("Studying", 20.0, "20%"), Bar("NEET", None, "<5")]
    root = parse(bar_chart("Destinations", bars))
    for bar in bars:
        assert f"{bar.label}: {bar.display}" in desc(root)
    points = [Bar(f"2024-W{i:02d}", float(i), f"{i:,}") for i in range(1, 53)]
    d = desc(parse(column_chart("Weekly", points)))
    for p in points:
        assert f"{p.label}: {p.display}" in d
    rows = [
        ("2023", [Bar("Working", 60.0, "60%"), Bar("Studying", 40.0, "40%")]),
        ("2024", [Bar("Working", 70.0, "70%"), Bar("Studying", 30.0, "30%")]),
    ]
    d = desc(parse(stacked_bar("5a", rows, legend=["Working", "Studying"])))
    for row, segments in rows:
        assert row in d
        for seg in segments:
            assert seg.display in d and seg.label in d


# ---------------------------------------------------------------------------- bar chart


def test_bar_widths_are_proportional() -> None:
    root = parse(bar_chart("T", [Bar("a", 10.0, "10"), Bar("b", 40.0, "40")]))
    rects = by_class(root, "bar", "rect")
    assert len(rects) == 2
    w10, w40 = (float(r.get("width") or 0) for r in rects)
    assert w10 > 0
    assert abs(w40 / w10 - 4) < 0.02
    assert [tooltip(r) for r in rects] == ["a: 10", "b: 40"]
    assert texts(root, "value") == ["10", "40"]


def test_max_value_sets_the_scale() -> None:
    root = parse(bar_chart("T", [Bar("a", 50.0, "50%")], max_value=100.0))
    half = float(by_class(root, "bar", "rect")[0].get("width") or 0)
    root = parse(bar_chart("T", [Bar("a", 100.0, "100%")], max_value=100.0))
    full = float(by_class(root, "bar", "rect")[0].get("width") or 0)
    assert abs(full / half - 2) < 0.01
    # values above max_value are clipped to the full track; negatives count as 0
    root = parse(bar_chart("T", [Bar("a", 250.0, "250"), Bar("b", -5.0, "-5")], max_value=100.0))
    over, negative = (float(r.get("width") or 0) for r in by_class(root, "bar", "rect"))
    assert over == full
    assert negative == 0


def test_suppressed_bar_is_a_fixed_placeholder() -> None:
    for other in (1.0, 10.0, 1000.0):
        root = parse(bar_chart("T", [Bar("big", other, str(other)), Bar("tiny", None, "<5")]))
        suppressed = by_class(root, "suppressed", "rect")
        assert len(suppressed) == 1
        assert "bar" not in classes(suppressed[0])
        assert float(suppressed[0].get("width") or 0) == SUPPRESSED_WIDTH
        assert tooltip(suppressed[0]) == "tiny: <5"
        assert "<5" in texts(root, "value")
        assert len(by_class(root, "bar", "rect")) == 1
    # all suppressed: still a chart (placeholders), not the empty message
    root = parse(bar_chart("T", [Bar("a", None, "<5"), Bar("b", None, "<5")]))
    assert len(by_class(root, "suppressed", "rect")) == 2
    assert not by_class(root, "empty")


def test_hostile_labels_are_escaped() -> None:
    hostile = "<script>alert(1)</script> \"&' x"
    svg = bar_chart(hostile, [Bar(hostile, 3.0, "<b>3</b>"), Bar("ok", None, "<5")])
    assert "<script>" not in svg
    assert "<b>" not in svg
    assert "&lt;script&gt;" in svg
    root = parse(svg)
    assert tooltip(root) == hostile
    assert f"{hostile}: <b>3</b>" in desc(root)
    assert tooltip(by_class(root, "bar", "rect")[0]) == f"{hostile}: <b>3</b>"
    assert [el.tag for el in root.iter() if el.tag.endswith("script")] == []
    # control characters XML cannot hold are dropped instead of breaking the document
    parse(bar_chart("T\x00\x07", [Bar("a\x0b", 1.0, "1\x1f")]))
    parse(stacked_bar(hostile, [(hostile, [Bar(hostile, 1.0, hostile)])], legend=[hostile]))
    parse(column_chart(hostile, [Bar(hostile, 1.0, hostile, href="/x?a=1&b='2'")]))


def test_links_only_relative_or_http() -> None:
    assert safe_href("/admin/programme/3?year=2024&wave=2") is not None
    assert safe_href("programme/3") is not None
    assert safe_href("https://example.org/x") is not None
    assert safe_href("HTTP://example.org/x") is not None
    for bad in (
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:x",
        "",
    ):
        assert safe_href(bad) is None, bad

    svg = bar_chart(
        "T",
        [
            Bar("good", 1.0, "1", href="/drill?a=1&b=2"),
            Bar("evil", 2.0, "2", href="javascript:alert(1)"),
        ],
    )
    root = parse(svg)
    links = list(root.iter(f"{NS}a"))
    assert [a.get("href") for a in links] == ["/drill?a=1&b=2"]
    assert "&amp;b=2" in svg
    assert "javascript" not in svg.lower()
    # the bar with the dropped link is still drawn
    assert [tooltip(r) for r in by_class(root, "bar", "rect")] == ["good: 1", "evil: 2"]


def test_long_labels_are_truncated_but_kept_in_title() -> None:
    long = "Mechatronics and industrial automation technician, level 4, part-time " * 3
    root = parse(bar_chart("T", [Bar(long, 5.0, "5")]))
    (shown,) = texts(root, "label")
    assert shown.endswith("…") and len(shown) < len(long.strip())
    assert tooltip(by_class(root, "bar", "rect")[0]) == f"{long.strip()}: 5"
    assert long.strip() in desc(root)


def test_height_grows_with_number_of_bars() -> None:
    def height(n: int) -> float:
        root = parse(bar_chart("T", [Bar(str(i), float(i), str(i)) for i in range(n)]))
        return float((root.get("viewBox") or "").split()[3])

    assert height(1) < height(5) < height(20)


def test_empty_inputs_show_the_empty_text() -> None:
    for svg in (
        bar_chart("T", [], empty_text="Nothing yet"),
        column_chart("T", [], empty_text="Nothing yet"),
        column_chart("T", [Bar("a", 0.0, "0"), Bar("b", None, "<5")], empty_text="Nothing yet"),
        stacked_bar("T", [], legend=["a"], empty_text="Nothing yet"),
    ):
        root = parse(svg)
        assert texts(root, "empty") == ["Nothing yet"]
        assert not by_class(root, "bar") and not by_class(root, "segment")
        assert root.get("role") == "img"
    assert texts(parse(bar_chart("T", [])), "empty") == ["No data yet"]


# ---------------------------------------------------------------------------- column chart


def test_nice_ticks_are_round() -> None:
    assert nice_ticks(10) == [0, 5, 10]
    assert nice_ticks(37) == [0, 10, 20, 30, 40]
    assert nice_ticks(0.3) == [0, 0.1, 0.2, 0.3]
    assert nice_ticks(3, integer=True) == [0, 1, 2, 3]
    assert nice_ticks(1234) == [0, 500, 1000, 1500]


def is_round(value: float) -> bool:
    """1, 2 or 5 × 10^k (or 0)."""
    if value == 0:
        return True
    mantissa = f"{value:e}".split("e")[0].rstrip("0").rstrip(".")
    return mantissa in ("1", "2", "5")


def test_column_chart_ticks_and_thinned_labels() -> None:
    points = [Bar(f"2024-W{i:02d}", float((i * 37) % 83), str((i * 37) % 83)) for i in range(52)]
    root = parse(column_chart("Responses per week", points))
    ticks = [float(t) for t in texts(root, "tick")]
    assert ticks[0] == 0 and len(ticks) >= 3
    step = ticks[1] - ticks[0]
    assert is_round(step), step
    assert all(abs((b - a) - step) < 1e-9 for a, b in itertools.pairwise(ticks))
    assert ticks[-1] >= max(p.value or 0 for p in points)
    assert len(by_class(root, "gridline", "line")) == len(ticks) - 1

    columns = by_class(root, "bar", "rect")
    assert len(columns) == 52
    assert [tooltip(c) for c in columns] == [f"{p.label}: {p.display}" for p in points]
    heights = [float(c.get("height") or 0) for c in columns]
    biggest = max(range(52), key=lambda i: points[i].value or 0)
    assert heights[biggest] == max(heights)

    labels = by_class(root, "x-label", "text")
    assert 2 <= len(labels) <= MAX_X_LABELS
    xs = [float(el.get("x") or 0) for el in labels]
    gaps = [b - a for a, b in itertools.pairwise(xs)]
    assert min(gaps) > 6.8 * len("2024-W00")  # wide enough not to overlap
    assert all(el.text in {p.label for p in points} for el in labels)


def test_short_labels_are_thinned_to_at_most_twelve() -> None:
    points = [Bar(str(i), float(i), str(i)) for i in range(1, 53)]
    labels = texts(parse(column_chart("T", points)), "x-label")
    assert 8 <= len(labels) <= MAX_X_LABELS
    assert labels[0] == "1"
    step = int(labels[1]) - int(labels[0])
    assert labels == [str(i) for i in range(1, 53, step)]


def test_few_columns_show_every_label() -> None:
    points = [Bar(m, float(v), str(v)) for m, v in (("Jan", 3), ("Feb", 0), ("Mar", 7))]
    root = parse(column_chart("T", points))
    assert texts(root, "x-label") == ["Jan", "Feb", "Mar"]
    assert [float(t) for t in texts(root, "tick")] == [0, 2, 4, 6, 8]


def test_column_chart_suppressed_points() -> None:
    points = [Bar("W1", 20.0, "20"), Bar("W2", None, "<5"), Bar("W3", 10.0, "10")]
    root = parse(column_chart("T", points))
    (placeholder,) = by_class(root, "suppressed", "rect")
    assert tooltip(placeholder) == "W2: <5"
    bars = by_class(root, "bar", "rect")
    h20, h10 = (float(b.get("height") or 0) for b in bars)
    assert abs(h20 / h10 - 2) < 0.02
    assert "W2: <5" in desc(root)


# ---------------------------------------------------------------------------- stacked bars


def test_stacked_rows_fill_the_full_width() -> None:
    legend = ["Working", "Studying", "Both", "Neither"]
    rows = [
        (
            "Wave 1",
            [Bar(n, v, f"{v}%") for n, v in zip(legend, (33.3, 33.3, 33.4, 0.0), strict=True)],
        ),
        ("Wave 2", [Bar(n, v, str(v)) for n, v in zip(legend, (7.0, 3.0, 1.0, 2.0), strict=True)]),
    ]
    root = parse(stacked_bar("5a", rows, legend=legend))
    segments = by_class(root, "segment", "rect")
    assert len(segments) == 8
    widths = []
    for r in range(2):
        row = segments[r * 4 : r * 4 + 4]
        xs = [float(s.get("x") or 0) for s in row]
        ws = [float(s.get("width") or 0) for s in row]
        for i in range(3):  # segments abut
            assert abs(xs[i] + ws[i] - xs[i + 1]) < 0.051
        widths.append(round(sum(ws), 1))
        # proportional to the row total
        assert (
            abs(ws[0] / ws[1] - float(rows[r][1][0].value or 0) / float(rows[r][1][1].value or 1))
            < 0.02
        )
        # colours follow the legend order
        assert [s.get("fill") for s in row] == list(OKABE_ITO[:4])
    assert widths[0] == widths[1] > 300
    assert tooltip(segments[4]) == "Wave 2, Working: 7.0"

    swatches = by_class(root, "swatch", "rect")
    assert [s.get("fill") for s in swatches] == list(OKABE_ITO[:4])
    assert texts(root, "legend-label") == legend


def test_stacked_row_with_suppressed_segment_is_one_placeholder() -> None:
    legend = ["Working", "Studying", "Neither"]
    rows = [
        (
            "2023",
            [Bar("Working", 80.0, "80%"), Bar("Studying", 20.0, "20%"), Bar("Neither", 0.0, "0%")],
        ),
        (
            "2024",
            [Bar("Working", 31.0, "31"), Bar("Studying", None, "<5"), Bar("Neither", 9.0, "9")],
        ),
    ]
    root = parse(stacked_bar("Destinations", rows, legend=legend))
    segments = by_class(root, "segment", "rect")
    assert len(segments) == 3
    assert all(tooltip(s).startswith("2023") for s in segments)
    (placeholder,) = by_class(root, "suppressed", "rect")
    assert tooltip(placeholder) == "2024: <5"
    assert "<5" in texts(root, "value")
    full = round(sum(float(s.get("width") or 0) for s in segments), 1)
    assert float(placeholder.get("width") or 0) == full
    # nothing of the suppressed row's visible part leaks into text, tooltips or desc
    assert "31" not in all_text(root)
    assert "2024: <5" in desc(root)


def test_long_titles_wrap_instead_of_being_cut() -> None:
    title = "EQAVET 6b1: opleiding relevant voor het werk, per golf en per opleiding"
    root = parse(bar_chart(title, [Bar("a", 1.0, "1")]))
    lines = texts(root, "chart-title")
    assert len(lines) == 2
    assert " ".join(lines) == title


def test_a_chart_with_links_is_a_group_not_an_image() -> None:
    """An image's content is hidden from assistive technology: links inside one cannot be
    reached (axe: nested-interactive)."""
    linked = parse(bar_chart("T", [Bar("a", 1.0, "1", href="/dashboard/waves/m2")]))
    assert linked.get("role") == "group"
    assert linked.get("aria-labelledby") == linked.find(f"{NS}title").get("id")  # type: ignore[union-attr]
    assert parse(bar_chart("T", [Bar("a", 1.0, "1")])).get("role") == "img"
