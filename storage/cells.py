"""Text cells that spreadsheets will not run as formulas: one guard for every CSV and XLSX file
gradtrack writes (dashboard exports, `gradtrack invites` sheets).

A cell starting with ``=``, ``+``, ``-`` or ``@`` is a formula to Excel, LibreOffice Calc and
Google Sheets; a leading tab, line break or NUL can hide such a character, and East Asian input
methods type the full-width forms ``＝ ＋ － ＠``, which some spreadsheets accept too. Such a
cell, also after leading whitespace, gets an apostrophe in front (OWASP CSV Injection)."""

from __future__ import annotations

FORMULA_PREFIXES: tuple[str, ...] = (
    "=",
    "+",
    "-",
    "@",
    "\t",
    "\r",
    "\n",
    "\0",
    "\uff1d",  # ＝ full-width equals sign
    "\uff0b",  # ＋ full-width plus sign
    "\uff0d",  # － full-width hyphen-minus
    "\uff20",  # ＠ full-width commercial at
)
"""A text cell starting with one of these (also after leading whitespace) gets a leading ``'``."""


def formula_safe(text: str) -> str:
    """`text` with an apostrophe in front when a spreadsheet would run it as a formula;
    applying it twice changes nothing more."""
    if text.startswith(FORMULA_PREFIXES) or text.lstrip().startswith(FORMULA_PREFIXES):
        return "'" + text
    return text
