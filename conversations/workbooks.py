"""What an uploaded .xlsx may cost before it is opened.

An .xlsx is a zip of XML files. A file of a few hundred kilobytes can unpack to gigabytes (a
"zip bomb"), and openpyxl reads the styles and shared strings whole even in read-only mode,
so the unpacked size is checked before openpyxl sees the file. The sizes checked are the ones
the zip declares: Python's zipfile never inflates an entry beyond its declared size (an entry
that holds more ends in a CRC error), so a lying declaration cannot make it unpack more.

The declared used range of a sheet (its `dimension`) can lie too: readers ignore it and count
the rows as they come (storage/roster.py, conversations/xlsform.py).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import xlrd
from openpyxl.reader.excel import ExcelReader
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

MEGABYTE = 1024 * 1024


def unpacked_size(path: str | Path) -> int | None:
    """The bytes the workbook's zip entries unpack to, as declared; None: not a zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(max(entry.file_size, 0) for entry in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None


def megabytes(size: int) -> int:
    """A size in whole megabytes, rounded up (a file 1 byte over 50 MB is "51 MB")."""
    return -(-size // MEGABYTE)


class _LazySheet(ReadOnlyWorksheet):
    """A read-only sheet that never looks for its declared used range: that range may lie,
    and openpyxl looks for it through the whole sheet when the file has none (a file written
    by openpyxl itself, or by hand), which would read every row once before the first."""

    def _get_size(self) -> None:
        return None


class _Reader(ExcelReader):
    """openpyxl's read-only workbook reader with lazy sheets (the first one only, or all)."""

    def __init__(self, path: str | Path | BinaryIO, *, first_only: bool) -> None:
        super().__init__(path, read_only=True, data_only=True)
        self.first_only = first_only

    def read_worksheets(self) -> None:
        for sheet, rel in self.parser.find_sheets():
            if rel.target not in self.valid_files or "chartsheet" in rel.Type:
                continue
            worksheet = _LazySheet(self.wb, sheet.name, rel.target, self.shared_strings)
            worksheet.sheet_state = sheet.state or "visible"
            self.wb._sheets.append(worksheet)  # type: ignore[attr-defined]
            if self.first_only:
                return


def open_workbook(path: str | Path, *, first_only: bool = False) -> Workbook:
    """The workbook at `path`, read-only, values rather than formulas, its sheets' rows read
    as they are iterated and as they really are (close() it after use). Check its
    unpacked_size() first."""
    source: str | Path | BinaryIO = path
    if Path(path).suffix.lower() not in (".xlsx", ".xlsm", ".xltx", ".xltm"):
        # openpyxl goes by the name: an .xlsx named otherwise is handed over as its bytes
        source = io.BytesIO(Path(path).read_bytes())
    reader = _Reader(source, first_only=first_only)
    reader.read()
    return reader.wb


XLSX_MAGIC = b"PK\x03\x04"
"""An .xlsx is a zip file."""
XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
"""An old .xls is an OLE2 compound file."""


def workbook_kind(path: str | Path) -> str | None:
    """ "xlsx" or "xls" by the file's first bytes, whatever its name; None: neither (or the
    file cannot be read)."""
    try:
        with open(path, "rb") as file:
            head = file.read(8)
    except OSError:
        return None
    if head.startswith(XLSX_MAGIC):
        return "xlsx"
    if head == XLS_MAGIC:
        return "xls"
    return None


def is_workbook(path: str | Path) -> bool:
    """Is `path` a spreadsheet: by its content (an .xlsx named .yaml), else by its name (an
    .xlsx that is not one is a spreadsheet that cannot be read)?"""
    if workbook_kind(path) is not None:
        return True
    return Path(path).suffix.lower() in (".xlsx", ".xls", ".xlsm")


class XlsSheet:
    """A sheet of an old .xls workbook (read with xlrd), iterated like an openpyxl sheet:
    values only, dates as datetimes, booleans as bools, empty cells as None."""

    def __init__(self, book: Any, sheet: Any) -> None:
        self.book = book
        self.sheet = sheet
        self.title: str = sheet.name

    def iter_rows(self, values_only: bool = True) -> Iterator[tuple[object, ...]]:
        for index in range(self.sheet.nrows):
            yield tuple(self._value(cell) for cell in self.sheet.row(index))

    def _value(self, cell: Any) -> object:
        if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
            return None
        if cell.ctype == xlrd.XL_CELL_BOOLEAN:
            return bool(cell.value)
        if cell.ctype == xlrd.XL_CELL_DATE:
            try:
                return xlrd.xldate_as_datetime(cell.value, self.book.datemode)
            except (ValueError, OverflowError, xlrd.XLDateError):
                return cell.value
        return cell.value


def open_xls(path: str | Path) -> list[XlsSheet]:
    """The sheets of the old Excel 97-2003 workbook at `path` (xlrd; raises on a bad file)."""
    book = xlrd.open_workbook(file_contents=Path(path).read_bytes(), on_demand=False)
    return [XlsSheet(book, sheet) for sheet in book.sheets()]
