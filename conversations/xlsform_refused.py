"""What an XLSForm may hold that a chat questionnaire cannot ask, and why (issue 19).

An imported survey row is checked here before anything else is read from it: a row this module
refuses gets exactly one problem (its sheet, row, name and the feature), and nothing else is
said about it (a question marked ``read_only`` too: ODK shows it, unanswerable). Metadata
rows (``start``, ``end``, ``deviceid`` …), which ODK fills in by itself and never asks, are
left out with a warning instead.

The table in docs/questionnaire-format.md lists the same types and features with the reasons.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Question types a chat cannot ask: the type as XLSForm writes it (lowercase) -> why.
REFUSED_TYPES: dict[str, str] = {
    "geopoint": "a location from the phone's GPS cannot be sent as a chat answer",
    "geotrace": "a line drawn on a map cannot be sent as a chat answer",
    "geoshape": "a shape drawn on a map cannot be sent as a chat answer",
    "start-geopoint": "a location from the phone's GPS cannot be sent as a chat answer",
    "image": "the chat takes typed answers and buttons, not photos or drawings",
    "audio": "the chat takes typed answers and buttons, not recordings",
    "background-audio": "the chat cannot record in the background",
    "video": "the chat takes typed answers and buttons, not videos",
    "background-video": "the chat cannot record in the background",
    "file": "the chat takes typed answers and buttons, not files",
    "barcode": "scanning a barcode needs the phone's camera in a form app",
    "time": "a chat asks no time of day; ask a date, a month or a number",
    "datetime": "a chat asks no time of day; ask a date or a month",
    "rank": "ranking choices by dragging is not possible in a chat; ask select_multiple",
    "acknowledge": "use a note, or a select_one with one choice",
    "trigger": "use a note, or a select_one with one choice",
    "hidden": "a chat has no hidden fields; use calculate",
    "xml-external": "a chat reads no external data files",
    "csv-external": "a chat reads no external data files; use select_one_from_file",
    "begin_repeat": "a chat asks each question once; ask for the number or a list instead",
    "select_one_external": "the external_choices sheet is not read; use "
    "select_one_from_file with a CSV file, or the choices sheet",
    "select_multiple_external": "the external_choices sheet is not read; use "
    "select_multiple_from_file with a CSV file, or the choices sheet",
}

#: Metadata ODK records by itself: never asked, so left out (with a warning).
METADATA_TYPES = frozenset(
    {
        "start",
        "end",
        "today",
        "deviceid",
        "subscriberid",
        "simserial",
        "phonenumber",
        "username",
        "email",
        "audit",
    }
)

#: The end of a refused repeat: left out with it (its begin row is the one refused).
END_REPEAT = "end_repeat"

#: Functions of ODK's expression language that read data a chat does not have.
REFUSED_FUNCTIONS: dict[str, str] = {
    "pulldata": "pulldata() is not supported: it reads an external CSV file in ODK Collect",
    "instance": "instance() is not supported: it reads external data (a secondary instance)",
}

#: ``read_only`` values that leave a question answerable, and the rows never answered anyway.
_NOT_READ_ONLY = frozenset({"no", "n", "false", "0", "false()"})
_NOT_ANSWERED = frozenset({"note", "calculate", "begin_group", "end_group"})
_FUNCTION_RE = re.compile(r"\b(pulldata|instance)\s*\(", re.IGNORECASE)
#: Appearances that fetch data or start another app on the phone.
_SEARCH_RE = re.compile(r"\bsearch\s*\(", re.IGNORECASE)
_EXTERNAL_APP_RE = re.compile(r"(?:^|\s)(ex|printer):", re.IGNORECASE)


def type_word(type_text: str) -> str:
    """The first word of a row's type as XLSForm means it: ``begin repeat`` and
    ``begin_repeat``, ``dateTime`` and ``datetime`` are the same."""
    words = type_text.strip().lower().split()
    if len(words) > 1 and words[0] in ("begin", "end"):
        return f"{words[0]}_{words[1]}"
    return words[0] if words else ""


def refusal(type_text: str, cells: Mapping[str, str]) -> str | None:
    """Why a survey row cannot be imported (naming the feature), or None. `cells` are the
    row's values by lowercase header (``appearance``, ``relevant``, ``calculation`` …)."""
    word = type_word(type_text)
    if word in REFUSED_TYPES:
        feature = "a repeat (begin_repeat)" if word == "begin_repeat" else f"type {word}"
        appearance = cells.get("appearance", "").strip()
        if word == "image" and appearance:
            feature = f"type image (appearance {appearance})"
        return f"{feature} is not supported: {REFUSED_TYPES[word]}"
    appearance = cells.get("appearance", "")
    if _SEARCH_RE.search(appearance):
        return (
            "the search() appearance is not supported: it looks choices up in an external "
            "CSV file; use select_one_from_file with the CSV file"
        )
    app = _EXTERNAL_APP_RE.search(appearance)
    if app:
        return (
            f"the appearance {appearance.strip()!r} is not supported: it starts another app "
            "on the phone"
        )
    read_only = cells.get("read_only", "").strip().lower()
    if read_only and read_only not in _NOT_READ_ONLY and word not in _NOT_ANSWERED:
        return (
            f"read_only {cells['read_only'].strip()!r} is not supported: ODK shows such a "
            "question without letting it be answered, a chat would ask it; use a note (a "
            "value shows in its label as ${name})"
        )
    for header, value in cells.items():
        match = _FUNCTION_RE.search(value)
        if match:
            name = match.group(1).lower()
            return f"{header}: {REFUSED_FUNCTIONS[name]}"
    return None


#: XLSForm's range parameters when a form leaves them out (as pyxform fills them in).
RANGE_DEFAULTS = {"start": 1, "end": 10, "step": 1}


@dataclass(frozen=True)
class RangePlan:
    """How a `range` row is asked: as a scale of buttons (`parameters` min, max, step), or,
    with more points than buttons fit, as a typed whole number from min to max (`note` says
    so in a warning)."""

    type: str
    parameters: dict[str, int] = field(default_factory=dict)
    note: str = ""


def _number(text: str) -> int | float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return int(value) if value.is_integer() else value


def range_plan(parameters: str, max_buttons: int) -> RangePlan | str:
    """How to ask a range with these parameters (``start=0 end=10 step=1``), or why it cannot
    be asked (a sentence naming the feature)."""
    values: dict[str, int | float] = dict(RANGE_DEFAULTS)
    for part in re.split(r"[\s,;]+", parameters.strip()):
        if not part:
            continue
        key, _, text = part.partition("=")
        key = key.strip().lower()
        if key not in RANGE_DEFAULTS:
            continue
        number = _number(text.strip())
        if number is None:
            return f"range parameter {part!r} is not a number: write them like start=0 end=10"
        values[key] = number
    start, end, step = values["start"], values["end"], values["step"]
    shown = f"a range from {start} to {end} in steps of {step}"
    if not all(isinstance(v, int) for v in (start, end, step)):
        return f"{shown} is not supported: a chat asks ranges of whole numbers only"
    assert isinstance(start, int) and isinstance(end, int) and isinstance(step, int)
    if step <= 0 or start >= end:
        return f"{shown} is not supported: start must be below end, and step above 0"
    count = len(range(start, end + 1, step))
    if count <= max_buttons:
        parameters_ = {"min": start, "max": end}
        if step != 1:
            parameters_["step"] = step
        return RangePlan("scale", parameters_)
    if step == 1:
        return RangePlan(
            "integer",
            {"min": start, "max": end},
            note=(
                f"the range from {start} to {end} has {count} points, more than {max_buttons} "
                "buttons: it is asked as a typed whole number in that range"
            ),
        )
    return (
        f"{shown} is not supported: its {count} points are more than {max_buttons} buttons, "
        "and a typed number cannot keep the steps; use step=1 or fewer points"
    )
