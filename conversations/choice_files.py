"""Choice lists in a CSV file shipped next to an XLSForm: ``select_one_from_file schools.csv``.

XLSForm lets a form take a long list (schools, municipalities) from a CSV file beside it, with
a ``name`` and a ``label`` column (or the columns the row's ``parameters`` name: ``value=code
label=title``). The import reads the file once and puts its choices into the questionnaire's
choice lists: the YAML holds them, and nothing reads the CSV file at run time. A
``label::English (en)`` column (named like the survey's) gives the label in a language; a bare
``label`` is the form's default language. A column a ``choice_filter`` reads (``region`` in
``region = ${region}``) is kept as the choices' ``columns``, as the choices sheet's are; other
columns are left out with a warning.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FROM_FILE_TYPES = frozenset({"select_one_from_file", "select_multiple_from_file"})
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_FILE_ROWS = 10_000
_DELIMITERS = (",", ";", "\t")


@dataclass
class ChoiceFile:
    list_name: str
    items: list[tuple[dict[str, Any], int]]
    """Each choice (name, label by language) and its line in the file."""
    warnings: list[str] = field(default_factory=list)


def list_name_for(filename: str) -> str:
    """The choice list a CSV file becomes: its name's stem as a list name, then ``_csv``
    (``Schools 2026.csv`` -> ``Schools_2026_csv``), which no list of the choices sheet
    is likely to be called."""
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", Path(filename).stem).strip("_") or "file"
    if not stem[0].isalpha():
        stem = "f_" + stem
    return stem[:28] + "_csv"


def read_choice_file(
    folder: Path,
    filename: str,
    default_language: str | None,
    columns: Mapping[str, str],
    language_code: Callable[[str], str | None],
    filtered: Collection[str] = (),
) -> ChoiceFile | str:
    """The choices in `folder`/`filename`, or why they cannot be read (a sentence).
    `columns`: ``value`` and ``label`` from the row's parameters, if given; `filtered`: the
    columns the form's choice_filters read (``region``), kept in each choice's ``columns``."""
    if "/" in filename or "\\" in filename or filename in (".", ".."):
        return f"the file {filename!r}: name the file alone; it must be next to the form"
    if Path(filename).suffix.lower() != ".csv":
        return (
            f"the file {filename!r} is not a CSV file: only CSV files next to the form are "
            "read (XML and GeoJSON files are not supported)"
        )
    path = folder / filename
    try:
        size = path.stat().st_size
    except OSError:
        return f"the file {filename} is not next to the form (looked for {path})"
    if size > MAX_FILE_BYTES:
        return f"the file {filename} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB"
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        return f"cannot read the file {filename}: {error.strerror or error}"
    except UnicodeDecodeError:
        return f"the file {filename} is not UTF-8 text: save it as 'CSV UTF-8'"
    first = text.split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=first.count)
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as error:
        return f"the file {filename} is not a readable CSV file: {error}"
    if not rows:
        return f"the file {filename} is empty"
    headers = [header.strip() for header in rows[0]]
    value_column = columns.get("value", "name").lower()
    label_column = columns.get("label", "label").lower()
    name_index: int | None = None
    labels: list[tuple[int, str]] = []
    others: list[str] = []
    kept: list[tuple[int, str]] = []  # (index, the name a choice_filter reads it by)
    wanted_columns = {column.lower(): column for column in filtered}
    unnamed = ""
    for index, header in enumerate(headers):
        base, _, suffix = header.partition("::" if "::" in header else ":")
        base = base.strip().lower()
        if base == value_column and not suffix:
            name_index = index
        elif base != label_column:
            if not suffix and base in wanted_columns:
                kept.append((index, wanted_columns.pop(base)))
            elif header:
                others.append(header)
        else:
            lang = language_code(suffix) if suffix else default_language
            if lang is None:
                named = f"column {header!r}" if suffix else f"the bare {header!r} column"
                unnamed = unnamed or (
                    f"the file {filename}: {named} names no language: name it like "
                    f"{label_column}::English (en), or set default_language in the settings"
                )
            else:
                labels.append((index, lang))
    if name_index is None or not (labels or unnamed):
        wanted = value_column if name_index is None else label_column
        return f"the file {filename} has no {wanted!r} column (its first row names the columns)"
    if unnamed:
        return unnamed
    if len(rows) - 1 > MAX_FILE_ROWS:
        return f"the file {filename} has more than {MAX_FILE_ROWS:,} rows"
    items: list[tuple[dict[str, Any], int]] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = [cell.strip() for cell in row]
        name = cells[name_index] if name_index < len(cells) else ""
        texts = {lang: cells[i] for i, lang in labels if i < len(cells) and cells[i]}
        item: dict[str, Any] = {"name": name} if name else {}
        if texts:
            item["label"] = texts
        extra = {column: cells[i] for i, column in kept if i < len(cells) and cells[i]}
        if extra:
            item["columns"] = extra
        items.append((item, line))
    if not items:
        return f"the file {filename} has no choices under its header"
    warnings = []
    if others:
        shown = ", ".join(repr(header) for header in others)
        warnings.append(
            f"{filename}: columns {shown} are not read (only the name, the labels and the "
            "columns a choice_filter reads)"
        )
    return ChoiceFile(list_name_for(filename), items, warnings)
