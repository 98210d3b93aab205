"""What the property-based tests (tests/test_properties_*.py) share: the hypothesis profile and
strategies for hostile input.

Each property states how many inputs it tries in a module constant (``*_EXAMPLES``); the figures
are listed in docs/reliability.md. Failures are kept in .pytest_cache/hypothesis (ignored by
git), so a failing input is tried first on the next run; ``print_blob`` prints the
``@reproduce_failure`` line for a failure seen elsewhere (e.g. in CI).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

_DATABASE = DirectoryBasedExampleDatabase(
    str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "hypothesis")
)

PROFILE = settings(
    deadline=None,  # a 2-core CI machine must not turn a slow example into a failure
    print_blob=True,
    database=_DATABASE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""The shared profile: use as ``@settings(PROFILE, max_examples=N)``."""

FIXTURE_PROFILE = settings(
    PROFILE,
    # Shrinking would replay a bot conversation hundreds of times: report the failure as found.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    # The database and the bot are set up once per test; every example creates its own
    # graduates, schools and files inside them, so sharing the fixture is intended.
    suppress_health_check=[*PROFILE.suppress_health_check, HealthCheck.function_scoped_fixture],
)
"""For tests that take the function-scoped `db` or `harness` fixture (few examples each)."""


# --- text -----------------------------------------------------------------------------------

TRICKY_CHARACTERS = (
    "\x00",  # NUL: PostgreSQL refuses it in text
    "\x01\x07\x08\x1b\x7f\x9f",  # C0/C1 controls
    "\t",
    "\r",
    "\n",
    "\r\n",
    "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",  # line breaks only some parsers know
    "\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",  # bidi, ZW
    "\ufeff",  # BOM
    "\u00a0\u3000",  # unusual spaces
    "مرحبا",  # RTL
    "שלום",
    "١٢٣",  # Arabic-Indic digits: str.isdigit() and int() accept them
    "²³",  # superscripts: str.isdigit() accepts them, int() does not
    "𝟙𝟚",  # mathematical digits
    "Ⅻ",
    "½",
    "ß",
    "İ",  # lower() makes it longer
    "ﬀ",
    "e\u0301",  # combining accent (NFC changes the length)
    "\U0001f600\u200d\U0001f525",
    "'",
    '"',
    "‘’“”",
    "${",
    "}",
    "(",
    ")",
    ":",
    ";",
    ",",
    ".",
    "-",
    "+",
    "=",
    "@",
    "|",
    "\\",
    "<",
    ">",
    "!",
    "#",
    "&",
    "*",
    "%",
    "?",
    "[",
    "]",
    "{",
    "~",
    "0",
    "9",
    "-0",
    "1e999",
    "nan",
    "inf",
    "NaN",
    "true",
    "null",
    "yes",
    "no",
    " ",
)


def hostile_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Any unicode text (no lone surrogates: they cannot arrive as UTF-8), weighted towards
    characters that break parsers, sometimes very long."""
    pieces = st.lists(
        st.sampled_from(TRICKY_CHARACTERS) | st.text(max_size=4),
        max_size=max(1, max_size // 3),
    ).map("".join)
    long = st.tuples(st.text(min_size=1, max_size=3), st.integers(500, 5000)).map(
        lambda pair: pair[0] * pair[1]
    )
    return st.one_of(st.text(max_size=max_size), pieces, long)


def hostile_bytes(max_size: int = 400) -> st.SearchStrategy[bytes]:
    """Random bytes, and text in encodings other than UTF-8, with or without a BOM."""
    encoded = st.tuples(
        hostile_text(max_size // 4),
        st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "utf-32"]),
    ).map(lambda pair: pair[0].encode(pair[1], errors="replace"))
    return st.one_of(st.binary(max_size=max_size), encoded)


# --- numbers --------------------------------------------------------------------------------

EXTREME_INTEGERS = (
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    -(2**31),
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    10**30,
    -(10**30),
    10**400,
)
EXTREME_FLOATS = (
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    5e-324,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1e15,
    0.1,
)


def extreme_numbers() -> st.SearchStrategy[int | float]:
    return st.one_of(
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(EXTREME_INTEGERS),
        st.sampled_from(EXTREME_FLOATS),
    )


# --- questionnaires -------------------------------------------------------------------------

LANGUAGES = ("nl", "es", "et", "it", "en")
CHOICE_CODES = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
# Any text but the C0 controls a spreadsheet cannot hold (the loader refuses them).
LABELS = (
    st.text(min_size=1, max_size=20)
    .map(lambda text: re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f]", "", text))
    .filter(lambda text: bool(text.strip()))
)
TYPES = (
    "select_one",
    "select_multiple",
    "integer",
    "decimal",
    "text",
    "date",
    "month",
    "scale",
    "note",
)


@dataclass(frozen=True)
class _Asked:
    """An earlier question that later expressions may refer to."""

    name: str
    type: str
    codes: tuple[str, ...] = ()


def _condition(draw: st.DrawFn, asked: _Asked) -> str:
    """A relevance condition on an earlier answer, as a questionnaire author writes them."""
    ref = f"${{{asked.name}}}"
    k = draw(st.integers(-3, 60))
    if asked.type == "select_one":
        code = draw(st.sampled_from(asked.codes))
        return draw(
            st.sampled_from(
                [f"{ref} = '{code}'", f"selected({ref}, '{code}')", f"{ref} != '{code}'"]
            )
        )
    if asked.type == "select_multiple":
        code = draw(st.sampled_from(asked.codes))
        return draw(
            st.sampled_from([f"selected({ref}, '{code}')", f"count-selected({ref}) >= {k % 4}"])
        )
    if asked.type in ("integer", "decimal", "scale"):
        return draw(st.sampled_from([f"{ref} > {k}", f"{ref} <= {k}", f"{ref} = {k}"]))
    if asked.type == "text":
        return draw(st.sampled_from([f"string-length({ref}) > {k % 10}", f"{ref} != ''"]))
    if asked.type == "date":
        return f"{ref} >= '20{k % 40:02d}-01-01'"
    return f"{ref} < '20{k % 40:02d}-06'"


def _relevance(draw: st.DrawFn, asked: list[_Asked]) -> str:
    parts = [_condition(draw, draw(st.sampled_from(asked))) for _ in range(draw(st.integers(1, 3)))]
    text = draw(st.sampled_from([" and ", " or "])).join(f"({part})" for part in parts)
    return f"not({text})" if draw(st.integers(0, 4)) == 0 else text


def _constraint(draw: st.DrawFn, kind: str, codes: tuple[str, ...], scale: tuple[int, int]) -> str:
    low = draw(st.integers(-5, 50))
    if kind in ("integer", "decimal"):
        return f". >= {low} and . <= {low + draw(st.integers(0, 100))}"
    if kind == "text":
        return f"string-length(.) <= {draw(st.integers(1, 30))}"
    if kind == "select_multiple":
        return draw(
            st.sampled_from(
                [
                    f"count-selected(.) <= {draw(st.integers(1, 3))}",
                    f"not(selected(., '{codes[0]}')) or count-selected(.) = 1",
                ]
            )
        )
    if kind == "select_one":
        return f". != '{codes[-1]}'"
    if kind == "scale":
        return f". >= {draw(st.integers(scale[0], scale[1]))}"
    if kind == "date":
        return ". >= '2000-01-01'"
    return ". <= '2030-12'"


@st.composite
def questionnaire_documents(draw: st.DrawFn, max_rows: int = 9) -> dict[str, Any]:
    """A valid questionnaire as the YAML document an author would write: every type, groups
    (nested), relevance on earlier answers, constraints, optional questions, translations."""
    languages = draw(st.lists(st.sampled_from(LANGUAGES), min_size=1, max_size=3, unique=True))

    def texts() -> dict[str, str]:
        return {lang: draw(LABELS) for lang in languages}

    rows: list[dict[str, Any]] = []
    choices: dict[str, list[dict[str, Any]]] = {}
    asked: list[_Asked] = []
    open_groups = 0
    for i in range(draw(st.integers(1, max_rows))):
        if draw(st.integers(0, 5)) == 0:
            group: dict[str, Any] = {"type": "begin_group", "name": f"g{i}"}
            if asked and draw(st.booleans()) is True:
                group["relevant"] = _relevance(draw, asked)
            rows.append(group)
            open_groups += 1
        kind = draw(st.sampled_from(TYPES))
        name = f"q{i}"
        row: dict[str, Any] = {"type": kind, "name": name, "label": texts()}
        codes: tuple[str, ...] = ()
        scale = (1, 5)
        if kind in ("select_one", "select_multiple"):
            codes = tuple(draw(st.lists(CHOICE_CODES, min_size=1, max_size=5, unique=True)))
            row["type"] = f"{kind} l{i}"
            choices[f"l{i}"] = [{"name": code, "label": texts()} for code in codes]
        if kind == "scale" and draw(st.booleans()):
            low = draw(st.integers(-5, 5))
            scale = (low, low + draw(st.integers(1, 9)))
            row["parameters"] = {"min": scale[0], "max": scale[1]}
        if draw(st.integers(0, 3)) == 0:
            row["hint"] = texts()
        if kind != "note":
            required = draw(st.booleans())
            if not required:
                row["required"] = False
            elif draw(st.integers(0, 3)) == 0:
                row["core"] = True
            # (a select_one with one choice and a constraint against it could not be answered)
            if draw(st.booleans()) and not (kind == "select_one" and len(codes) < 2):
                row["constraint"] = _constraint(draw, kind, codes, scale)
        if asked and draw(st.booleans()) is True:
            row["relevant"] = _relevance(draw, asked)
        rows.append(row)
        if kind != "note":
            asked.append(_Asked(name, kind, codes))
        if open_groups and draw(st.integers(0, 2)) == 0:
            rows.append({"type": "end_group"})
            open_groups -= 1
    rows.extend({"type": "end_group"} for _ in range(open_groups))
    document: dict[str, Any] = {
        "settings": {
            "form_id": draw(st.from_regex(r"[a-z0-9_]{1,24}", fullmatch=True)),
            "version": draw(st.from_regex(r"[!-~]{1,32}", fullmatch=True)),
            "default_language": draw(st.sampled_from(languages)),
            "languages": languages,
            "title": texts(),
        },
        "survey": rows,
    }
    if choices:
        document["choices"] = choices
    return document


class _Dumper(yaml.SafeDumper):
    """PyYAML writes U+0085, U+2028 and U+2029 raw, and reads them back as line breaks:
    strings holding them are double-quoted, where they are escaped."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = '"' if any(c in data for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(document: object) -> str:
    """`document` as YAML text (unicode as is), as an author's file would hold it."""
    return yaml.dump(document, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1_000_000)
