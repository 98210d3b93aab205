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

import zipfile
from pathlib import Path

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
