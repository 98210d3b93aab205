"""The programme report (bot/web/programme_report.py) as a printable PDF: A4, drawn on the
server with reportlab from the same data as the page, in the reader's language. Each page
carries the school's name, the programme and the period in its header, and its number.

Fonts: DejaVu Sans where the system has it (Debian's fonts-dejavu-core: every letter of the
five languages and more), else reportlab's own Vera; nothing is fetched."""

from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    CondPageBreak,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from bot.i18n import _
from bot.reporting import count_text
from bot.web import dashboard as dash
from bot.web.programme_report import (
    ProgrammeReport,
    QuestionTable,
    Trend,
    WaveSection,
    change_text,
    median_text,
    month_text,
    rate_name,
)
from conversations.indicators import DESTINATIONS, RATES, suppress

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
BLUE = colors.HexColor("#0072B2")
LINE = colors.HexColor("#CCCCCC")
MARGIN = 16 * mm


def _fonts() -> tuple[str, str]:
    """(regular, bold) font names, registered once."""
    if "GradtrackSans" in pdfmetrics.getRegisteredFontNames():
        return "GradtrackSans", "GradtrackSans-Bold"
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.exists() and bold.exists():
            pdfmetrics.registerFont(TTFont("GradtrackSans", str(regular)))
            pdfmetrics.registerFont(TTFont("GradtrackSans-Bold", str(bold)))
            return "GradtrackSans", "GradtrackSans-Bold"
    pdfmetrics.registerFont(TTFont("GradtrackSans", "Vera.ttf"))
    pdfmetrics.registerFont(TTFont("GradtrackSans-Bold", "VeraBd.ttf"))
    return "GradtrackSans", "GradtrackSans-Bold"


class _Styles:
    def __init__(self) -> None:
        regular, bold = _fonts()
        self.regular, self.bold = regular, bold
        self.title = ParagraphStyle("title", fontName=bold, fontSize=16, leading=20, spaceAfter=4)
        self.h2 = ParagraphStyle(
            "h2", fontName=bold, fontSize=13, leading=16, spaceBefore=10, spaceAfter=4
        )
        self.h3 = ParagraphStyle(
            "h3", fontName=bold, fontSize=10.5, leading=13, spaceBefore=6, spaceAfter=2
        )
        self.body = ParagraphStyle("body", fontName=regular, fontSize=9, leading=11.5)
        self.note = ParagraphStyle(
            "note", fontName=regular, fontSize=8, leading=10, textColor=colors.HexColor("#555555")
        )
        self.cell = ParagraphStyle("cell", fontName=regular, fontSize=8, leading=9.5)
        self.head = ParagraphStyle("head", fontName=bold, fontSize=7.5, leading=9)


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text), style)


def _table(
    s: _Styles, header: list[str], rows: list[list[str]], widths: list[float] | None = None
) -> Table:
    data = [[_p(h, s.head) for h in header]]
    data += [[_p(c, s.cell) for c in row] for row in rows]
    table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("LINEBELOW", (0, 0), (-1, -1), 0.4, LINE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ]
        )
    )
    return table


def _columns(report: ProgrammeReport) -> list[str]:
    cols = [_("This programme"), _("The school")]
    if report.with_all_schools:
        cols.append(_("All schools"))
    return cols


def _section(s: _Styles, report: ProgrammeReport, section: WaveSection) -> list[object]:
    width = A4[0] - 2 * MARGIN
    parts: list[object] = [CondPageBreak(60 * mm), _p(section.title, s.h2)]
    parts.append(_p(_("Compared with the school"), s.h3))
    rows = []
    for _key, label, figures in section.compared():
        row = [label, dash.rate_cell(figures.programme), dash.rate_cell(figures.school)]
        if report.with_all_schools:
            row.append(dash.rate_cell(figures.all_schools))
        rows.append(row)
    n = len(_columns(report))
    parts.append(
        _table(s, [_("Figure"), *_columns(report)], rows, [width - n * 28 * mm] + [28 * mm] * n)
    )
    if section.has_indicators:
        parts.append(_p(_("EQAVET indicators"), s.h3))
        c = section.indicators
        header = [_("Figure"), _("Respondents"), _("Over programme completers")]
        lines = [
            [_("Respondents"), count_text(suppress(c.respondents)), ""],
            [
                _("Completers"),
                "",
                count_text(suppress(c.completers)),
            ],
        ]
        shares = {over: c.shares_5a(over) for over in ("respondents", "completers")}
        for key in DESTINATIONS:
            lines.append(
                [
                    f"5a · {dash.destination_label(key)}",
                    dash.rate_cell(shares["respondents"][key]),
                    dash.rate_cell(shares["completers"][key]),
                ]
            )
        for key in RATES:
            lines.append(
                [
                    rate_name(key),
                    dash.rate_cell(c.rates("respondents")[key]),
                    dash.rate_cell(c.rates("completers")[key]),
                ]
            )
        parts.append(_table(s, header, lines, [width - 64 * mm, 32 * mm, 32 * mm]))
    parts.append(_p(_("Answers to the closed questions"), s.h3))
    for table in section.questions:
        parts.append(KeepTogether(_question(s, report, table, width)))
    if section.unanswered:
        text = _("Not answered by this programme's graduates in this wave: {questions}.")
        parts.append(_p(text.format(questions=", ".join(section.unanswered)), s.note))
    parts.append(_p(_("Comments"), s.h3))
    if section.comments_hidden:
        hidden = _("Fewer than 5 graduates answered this wave: their comments are not shown.")
        parts.append(_p(hidden, s.note))
    elif not section.comments:
        parts.append(_p(_("No comments yet."), s.note))
    for group in section.comments:
        parts.append(_p(f"{group.question} · {group.label}", s.body))
        for comment in group.comments:
            parts.append(
                _p(f"{month_text(comment.when)} · {comment.activity}: {comment.text}", s.cell)
            )
        parts.append(Spacer(1, 3))
    return parts


def _question(
    s: _Styles, report: ProgrammeReport, table: QuestionTable, width: float
) -> list[object]:
    parts: list[object] = [
        _p(f"{table.name} · {table.label}", s.body),
        _p(_("Answered: {count}").format(count=count_text(table.answered)), s.note),
    ]
    if not table.is_choice:
        text = f"{_('Median')}: {median_text(table.median)} · {_('the school')}: " + median_text(
            table.school_median
        )
        if report.with_all_schools:
            text += f" · {_('all schools')}: {median_text(table.all_median)}"
        parts.append(_p(text, s.note))
    if table.lines:
        header = [_("Answer"), _("Count"), _("Share"), _("The school")]
        if report.with_all_schools:
            header.append(_("All schools"))
        rows = []
        for line in table.lines:
            row = [
                line.label,
                "–" if line.count is None else count_text(line.count),
                dash.rate_cell(line.share),
                dash.rate_cell(line.school),
            ]
            if report.with_all_schools:
                row.append(dash.rate_cell(line.all_schools))
            rows.append(row)
        n = len(header) - 1
        parts.append(_table(s, header, rows, [width - n * 22 * mm] + [22 * mm] * n))
    parts.append(Spacer(1, 4))
    return parts


def _trend(s: _Styles, trend: Trend, width: float) -> Table:
    """A small column chart of the figure per cohort, with the numbers beside it."""
    drawing = Drawing(70 * mm, 38 * mm)
    values = [(p.rate.value * 100 if p.rate.value is not None else 0.0) for p in trend.points]
    chart = VerticalBarChart()
    chart.x, chart.y = 8 * mm, 6 * mm
    chart.width, chart.height = 58 * mm, 28 * mm
    chart.data = [values]
    chart.valueAxis.valueMin, chart.valueAxis.valueMax = 0, 100
    chart.valueAxis.valueStep = 25
    chart.valueAxis.labels.fontName = s.regular
    chart.valueAxis.labels.fontSize = 6
    chart.categoryAxis.categoryNames = [str(p.cohort) for p in trend.points]
    chart.categoryAxis.labels.fontName = s.regular
    chart.categoryAxis.labels.fontSize = 6.5
    chart.bars[0].fillColor = BLUE
    chart.bars[0].strokeColor = None
    drawing.add(chart)
    for i, p in enumerate(trend.points):
        if p.rate.value is None:
            step = chart.width / max(len(trend.points), 1)
            drawing.add(
                String(
                    chart.x + step * (i + 0.5),
                    chart.y + 2,
                    dash.rate_cell(p.rate),
                    fontName=s.regular,
                    fontSize=6,
                    textAnchor="middle",
                )
            )
    rows = [
        [str(p.cohort), dash.rate_cell(p.rate), "" if i == 0 else change_text(p.change)]
        for i, p in enumerate(trend.points)
    ]
    numbers = _table(s, [_("Cohort"), _("Share"), _("Change")], rows, [16 * mm, 18 * mm, 24 * mm])
    title = _p(f"{trend.label} · {trend.wave_title}", s.body)
    outer = Table([[title, ""], [drawing, numbers]], colWidths=[72 * mm, width - 72 * mm])
    outer.setStyle(
        TableStyle(
            [
                ("SPAN", (0, 0), (1, 0)),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    return outer


def render_pdf(report: ProgrammeReport) -> bytes:
    """The report as PDF bytes (A4 portrait), in the current language."""
    s = _Styles()
    width = A4[0] - 2 * MARGIN
    programme = f"{report.programme.code} · {report.programme.name}"
    heading = f"{report.school.name} · {programme} · {report.period}"
    buffer = io.BytesIO()

    def on_page(canvas: object, doc: object) -> None:
        c = canvas  # reportlab's Canvas
        c.saveState()  # type: ignore[attr-defined]
        c.setFont(s.regular, 7.5)  # type: ignore[attr-defined]
        c.setFillColor(colors.HexColor("#555555"))  # type: ignore[attr-defined]
        c.drawString(MARGIN, A4[1] - 10 * mm, heading[:140])  # type: ignore[attr-defined]
        page = _("Page {number}").format(number=c.getPageNumber())  # type: ignore[attr-defined]
        c.drawRightString(A4[0] - MARGIN, 10 * mm, page)  # type: ignore[attr-defined]
        c.restoreState()  # type: ignore[attr-defined]

    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN + 2 * mm,
        bottomMargin=MARGIN,
        title=f"{_('Programme report')}: {programme}",
        author=report.school.name,
        subject=report.period,
        creator="gradtrack",
    )
    story: list[object] = [
        _p(f"{_('Programme report')}: {programme}", s.title),
        _p(report.school.name, s.h3),
        _p(report.period, s.body),
        _p(_("Counts of fewer than 5 people are shown as {mark}.").format(mark="<5"), s.note),
        _p("– " + _("fewer than 5 people: not shown"), s.note),
        _p(_("Responses per wave"), s.h2),
    ]
    rows = []
    for section in report.sections:
        shown = section.funnel.shown()
        rows.append(
            [
                section.title,
                count_text(shown["graduates"]),
                count_text(shown["completed"]),
                dash.rate_cell(section.funnel.rate),
            ]
        )
    story.append(
        _table(
            s,
            [_("Wave"), _("Graduates"), _("Completed"), _("Response rate")],
            rows,
            [width - 66 * mm, 22 * mm, 22 * mm, 22 * mm],
        )
    )
    for section in report.sections:
        story.extend(_section(s, report, section))
    if report.trends:
        story.append(CondPageBreak(60 * mm))
        story.append(_p(_("Trends across cohorts"), s.h2))
        story.append(
            _p(
                _(
                    "Each figure per graduation year. A change from the year before that rests "
                    "on fewer than 5 people is not shown as a change (–)."
                ),
                s.note,
            )
        )
        for trend in report.trends:
            story.append(KeepTogether([_trend(s, trend, width), Spacer(1, 4)]))
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()
