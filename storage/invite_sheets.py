"""Invitation files per class: a CSV of links and a printable A4 sheet of QR codes.

The HTML needs nothing from the network: the QR codes are inline SVG (segno, pure Python),
the fonts the reader's own. Every text that came from a roster is escaped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from functools import lru_cache
from html import escape
from pathlib import Path

import segno

from bot.i18n import _, ngettext, use_language
from storage.cells import formula_safe
from storage.invites import InviteClass

QR_ERROR = "m"  # error correction level M: survives a crease or a smudge on paper
QR_BORDER = 4  # the quiet zone the QR standard asks for, in modules
CSV_HEADER = ("student_ref", "name", "link", "status")
STATUS_INVITE = "invite"
STATUS_CONNECTED = "already connected"
COMBINED_NAME = "all-classes.html"

LinkFor = Callable[[str], str]


@lru_cache(maxsize=8192)  # each code is drawn twice: in its class's sheet and in all-classes
def qr_svg(data: str) -> str:
    """The QR code of `data` as an inline <svg>, sized by CSS (viewBox, no width/height)."""
    code = segno.make(data, error=QR_ERROR, micro=False, boost_error=False)
    return code.svg_inline(scale=1, border=QR_BORDER, omitsize=True, svgclass="qr")


def _csv_cell(value: str) -> str:
    """Neutralise text a spreadsheet would run as a formula (names come from a file): the
    exports' guard (storage.cells)."""
    return formula_safe(value)


def class_csv(group: InviteClass, link_for: LinkFor) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for entry in group.entries:
        if entry.connected or entry.token is None:
            writer.writerow(
                (_csv_cell(entry.student_ref), _csv_cell(entry.name), "", STATUS_CONNECTED)
            )
        else:
            writer.writerow(
                (
                    _csv_cell(entry.student_ref),
                    _csv_cell(entry.name),
                    link_for(entry.token),
                    STATUS_INVITE,
                )
            )
    return out.getvalue()


STYLE = """
@page { size: A4 portrait; margin: 8mm; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
       color: #111; margin: 0; }
@media screen { body { max-width: 210mm; margin: 0 auto; padding: 10mm; background: #eee; }
                .class { background: #fff; padding: 8mm; margin-bottom: 10mm; } }
.class + .class { break-before: page; page-break-before: always; }
.class > header h1 { font-size: 14pt; margin: 0 0 1mm; }
.class > header p { margin: 0 0 1mm; font-size: 9pt; }
.class > header .how { color: #444; font-size: 8pt; margin-bottom: 3mm; }
.cards { display: grid; grid-template-columns: repeat(3, 1fr); gap: 3mm; }
.card { break-inside: avoid; page-break-inside: avoid; margin: 0; height: 60mm;
        border: 0.3mm dashed #999; padding: 2.5mm; text-align: center;
        display: flex; flex-direction: column; align-items: center; }
.card svg.qr { width: 38mm; height: 38mm; flex: none; }
.card figcaption { margin-top: 1mm; width: 100%; }
.card .name { display: block; font-weight: 700; font-size: 10pt; overflow-wrap: anywhere; }
.card .programme { display: block; font-size: 7.5pt; color: #333; }
.card .link { display: block; font: 6pt/1.2 ui-monospace, Menlo, Consolas, monospace;
              word-break: break-all; margin-top: 0.8mm; }
.card .ref { display: block; font-size: 6pt; color: #666; }
.connected { break-inside: avoid; page-break-inside: avoid; margin-top: 5mm; font-size: 9pt; }
.connected h2 { font-size: 10pt; margin: 0 0 1mm; }
.connected ul { columns: 3; margin: 0; padding-left: 4mm; }
"""


def _class_section(group: InviteClass, link_for: LinkFor) -> str:
    """One class's pages, in its school's language."""
    with use_language(group.language):
        return _class_section_text(group, link_for)


def _class_section_text(group: InviteClass, link_for: LinkFor) -> str:
    programme = escape(group.programme_name)
    level = f" (EQF {group.eqf_level})" if group.eqf_level else ""
    to_invite = ngettext("{count} to invite", "{count} to invite", len(group.invited)).format(
        count=len(group.invited)
    )
    connected = ngettext(
        "{count} already connected", "{count} already connected", len(group.connected)
    ).format(count=len(group.connected))
    graduating = _("graduating {year}").format(year=group.year)
    how = _(
        "Each graduate scans their own code with the phone camera: it opens the graduate chat. "
        "The codes are personal; cut along the dashed lines."
    )
    parts = [
        f'<section class="class" id="{escape(group.slug)}" lang="{escape(group.language)}">',
        "<header>",
        f"<h1>{escape(group.school_name)}</h1>",
        f"<p>{programme}{level} &middot; {escape(graduating)} &middot; "
        f"{escape(to_invite)}, {escape(connected)}</p>",
        f'<p class="how">{escape(how)}</p>',
        "</header>",
    ]
    if group.invited:
        parts.append('<div class="cards">')
        for entry in group.invited:
            assert entry.token is not None
            link = link_for(entry.token)
            parts.append(
                '<figure class="card">'
                + qr_svg(link)
                + "<figcaption>"
                + f'<span class="name">{escape(entry.name)}</span>'
                + f'<span class="programme">{programme}</span>'
                + f'<span class="link">{escape(link)}</span>'
                + f'<span class="ref">{escape(entry.student_ref)}</span>'
                + "</figcaption></figure>"
            )
        parts.append("</div>")
    if group.connected:
        heading = _("Already connected")
        parts.append(f'<div class="connected"><h2>{escape(heading)}</h2><ul>')
        parts.extend(
            f"<li>{escape(entry.name)} <small>({escape(entry.student_ref)})</small></li>"
            for entry in group.connected
        )
        parts.append("</ul></div>")
    parts.append("</section>")
    return "\n".join(parts)


def sheet_html(groups: Sequence[InviteClass], link_for: LinkFor, title: str) -> str:
    """A printable page: one section per class, each starting on a new A4 page and in its
    school's language."""
    body = "\n".join(_class_section(group, link_for) for group in groups)
    languages = {group.language for group in groups}
    lang = languages.pop() if len(languages) == 1 else "en"
    return (
        f'<!doctype html>\n<html lang="{escape(lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def write_invite_files(
    groups: Sequence[InviteClass], out_dir: str | Path, link_for: LinkFor
) -> list[Path]:
    """Per class `<school>_<programme>_<year>.csv` and `.html`, and `all-classes.html` with
    every class (each on its own pages). Returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    used: set[str] = set()
    for group in groups:
        stem = group.slug
        number = 2
        while stem in used:
            stem, number = f"{group.slug}-{number}", number + 1
        used.add(stem)
        csv_path = out / f"{stem}.csv"
        # UTF-8 with BOM: Excel opens it with the right accents.
        csv_path.write_text(class_csv(group, link_for), encoding="utf-8-sig", newline="")
        html_path = out / f"{stem}.html"
        with use_language(group.language):
            title = _("Invitations {school} {programme} {year}").format(
                school=group.school_code, programme=group.programme_code, year=group.year
            )
        html_path.write_text(sheet_html([group], link_for, title), encoding="utf-8")
        written += [csv_path, html_path]
    if groups:
        combined = out / COMBINED_NAME
        with use_language(groups[0].language):
            title = _("Invitations")
        combined.write_text(sheet_html(groups, link_for, title), encoding="utf-8")
        written.append(combined)
    return written
