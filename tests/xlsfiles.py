"""Old Excel 97-2003 (.xls) workbooks for the tests, written from scratch: a BIFF8 workbook
stream (text and number cells) in a minimal OLE2 compound file, as much as xlrd needs to read
it. No .xls writer is a dependency of the project; this one is ours and small."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

SECTOR = 512
END_OF_CHAIN = 0xFFFFFFFE
FREE = 0xFFFFFFFF
FAT_SECTOR = 0xFFFFFFFD


def _record(kind: int, data: bytes = b"") -> bytes:
    return struct.pack("<HH", kind, len(data)) + data


def _text(text: str, length_bytes: int = 2) -> bytes:
    size = struct.pack("<H" if length_bytes == 2 else "<B", len(text))
    return size + b"\x01" + text.encode("utf-16-le")  # 0x01: 16-bit characters


def _bof(kind: int) -> bytes:
    return _record(0x0809, struct.pack("<HHHHII", 0x0600, kind, 0, 0, 0, 0))


def _sheet(rows: Sequence[Sequence[object]]) -> bytes:
    body = _bof(0x0010)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, str):  # LABEL
                body += _record(0x0204, struct.pack("<HHH", r, c, 15) + _text(value))
            else:  # NUMBER
                body += _record(0x0203, struct.pack("<HHHd", r, c, 15, float(str(value))))
    return body + _record(0x000A)


def _workbook_stream(sheets: Mapping[str, Sequence[Sequence[object]]]) -> bytes:
    formats = b"".join(
        _record(
            0x00E0,
            struct.pack("<HHHBBBBIIH", 0, 0, 0xFFF5 if i < 15 else 1, 0x20, 0, 0, 0, 0, 0, 0x20C0),
        )
        for i in range(16)
    )

    def globals_part(offsets: Sequence[int]) -> bytes:
        part = _bof(0x0005) + _record(0x0042, struct.pack("<H", 1200)) + formats
        for name, offset in zip(sheets, offsets, strict=True):
            part += _record(0x0085, struct.pack("<IBB", offset, 0, 0) + _text(name, 1))
        return part + _record(0x000A)

    streams = [_sheet(rows) for rows in sheets.values()]
    position = len(globals_part([0] * len(streams)))
    offsets = []
    for stream in streams:
        offsets.append(position)
        position += len(stream)
    return globals_part(offsets) + b"".join(streams)


def _entry(name: str, kind: int, start: int, size: int, child: int = FREE) -> bytes:
    encoded = (name + "\x00").encode("utf-16-le")
    return (
        encoded.ljust(64, b"\x00")
        + struct.pack("<HBB", len(encoded), kind, 1)
        + struct.pack("<III", FREE, FREE, child)
        + bytes(16 + 4 + 16)
        + struct.pack("<IIH", start, size, 0)
        + bytes(2)
    )


def xls_bytes(sheets: Mapping[str, Sequence[Sequence[object]]]) -> bytes:
    """An .xls workbook with these sheets (text and numbers) as bytes."""
    stream = _workbook_stream(sheets)
    size = len(stream)
    stream += bytes(-len(stream) % SECTOR)
    count = len(stream) // SECTOR
    # sector 0: the allocation table, 1: the directory, 2...: the Workbook stream
    if count + 2 > SECTOR // 4:
        raise ValueError("too big for this small writer")
    table = [FAT_SECTOR, END_OF_CHAIN]
    table += [3 + i if i < count - 1 else END_OF_CHAIN for i in range(count)]
    table += [FREE] * (SECTOR // 4 - len(table))
    directory = _entry("Root Entry", 5, END_OF_CHAIN, 0, child=1)
    directory += _entry("Workbook", 2, 2, size) + bytes(2 * 128)
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16)
    header += struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + bytes(6)
    # directory sectors (0 in version 3), FAT sectors, directory start, transactions, mini
    # stream cutoff 0 (no mini stream), mini FAT start and count, DIFAT start and count
    header += struct.pack("<IIIIIIIII", 0, 1, 1, 0, 0, END_OF_CHAIN, 0, END_OF_CHAIN, 0)
    header += struct.pack("<109I", 0, *([FREE] * 108))  # the FAT is sector 0
    return header + struct.pack(f"<{SECTOR // 4}I", *table) + directory + stream


def write_xls(path: Path, sheets: Mapping[str, Sequence[Sequence[object]]]) -> Path:
    path.write_bytes(xls_bytes(sheets))
    return path
