"""Roster and XLSForm files as people (and attackers) make them, for the upload-limit tests."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from pathlib import Path

from openpyxl import Workbook

HUGE_ROWS = 300_000
ROSTER_HEADER = ["student_ref", "name", "programme", "graduation_date"]
SHEET_START = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
)


def huge_bad_roster(path: Path, rows: int = HUGE_ROWS) -> Path:
    """An .xlsx as Excel or a script makes it: the header, then `rows` rows with only a name
    filled in (no student number, programme or date: every row is bad). About 1.5 MB."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("roster")
    sheet.append(ROSTER_HEADER)
    for _ in range(rows):
        sheet.append([None, "x"])
    workbook.save(path)
    return path


def inline_row(number: int, *values: str) -> bytes:
    cells = "".join(
        f'<c r="{chr(65 + index)}{number}" t="inlineStr"><is><t>{value}</t></is></c>'
        for index, value in enumerate(values)
    )
    return f'<row r="{number}">{cells}</row>'.encode()


def raw_xlsx(
    path: Path,
    rows: Iterable[bytes],
    *,
    dimension: str | None = "A1:B2",
    sheet_title: str = "roster",
    other_sheets: Iterable[str] = (),
) -> Path:
    """An .xlsx whose first sheet's XML is written by hand, streamed into the zip: `rows` are
    `<row>` elements; `dimension` is what the sheet claims its used range is (it may lie). The
    other parts (workbook, styles, content types) are openpyxl's own."""
    template = Workbook()
    template.active.title = sheet_title  # type: ignore[union-attr]
    for title in other_sheets:
        template.create_sheet(title)
    buffer = io.BytesIO()
    template.save(buffer)
    with (
        zipfile.ZipFile(buffer) as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for entry in source.infolist():
            if entry.filename == "xl/worksheets/sheet1.xml":
                continue
            target.writestr(entry, source.read(entry))
        with target.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(SHEET_START)
            if dimension is not None:
                sheet.write(f'<dimension ref="{dimension}"/>'.encode())
            sheet.write(b"<sheetData>")
            chunk: list[bytes] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= 10_000:
                    sheet.write(b"".join(chunk))
                    chunk.clear()
            sheet.write(b"".join(chunk))
            sheet.write(b"</sheetData></worksheet>")
    return path


def bomb_rows(megabytes: int) -> Iterable[bytes]:
    """Rows of a sheet that unpacks to about `megabytes` MB and compresses to a few hundred
    kilobytes: the same row again and again (rows and cells without a reference are numbered
    by their place, as the format allows)."""
    row = b'<row><c t="inlineStr"><is><t>' + b"x" * 900 + b"</t></is></c></row>"
    yield inline_row(1, *ROSTER_HEADER)
    for _ in range(megabytes * 1024 * 1024 // len(row) + 1):
        yield row
