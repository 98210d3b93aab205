"""What a programme trains for and how: the ISCO-08 major groups of the occupations it
prepares for, its pathway (school-based or work-based: NL BOL / BBL, ES FP / FP dual, IT
scuola / apprendistato) and whether it is initial or continuing VET (IVET / CVET).

Plain parsing of what people type in a roster cell or on the command line; no database. The
indicators use the stored values (storage.models.Programme): 6a "working in the occupation
trained for" compares a graduate's ISCO major group with the programme's, and the indicators
are broken down by pathway and VET kind.
"""

from __future__ import annotations

import re
import unicodedata

ISCO_MAJOR_GROUPS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0")
"""The ten ISCO-08 major groups, as their digit (0: armed forces occupations), in ISCO's order."""

PATHWAYS = ("school_based", "work_based")
"""School-based (NL BOL, mostly at school with placements) or work-based (NL BBL, mostly at
work with an employer, apprenticeship)."""

VET_KINDS = ("ivet", "cvet")
"""Initial VET (a first qualification, mostly young people) or continuing VET (adults
retraining or upskilling)."""


class ProgrammeKindError(ValueError):
    """A value that is not understood; `value` is the part of the text at fault."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


def _plain(text: str) -> str:
    """Case, accents and separators (- _ . /) do not count: 'Töökohapõhine' -> 'tookohapohine'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[-_./]+", " ", plain).split())


_ISCO_SEPARATORS = re.compile(r"[;,|+&/\s]+")
_ISCO_CODE = re.compile(r"^(?:isco(?:\s*08)?\s*)?(\d{1,4})$")


def parse_isco_groups(text: str) -> tuple[str, ...]:
    """The ISCO-08 major groups in `text`, in ISCO order without repeats; () for an empty text.

    Accepts what people type: "5;7", "5, 7", "5 7", "ISCO 5", "isco5", "ISCO-08 5". A longer
    ISCO code (a sub-major, minor or unit group, e.g. 5120 cooks) stands for its major group,
    its first digit. Raises ProgrammeKindError with the first part not understood."""
    cleaned = _plain(text)
    # "ISCO 5" and "ISCO-08 5": the word belongs to the number after it.
    cleaned = re.sub(r"\bisco(?:\s*08)?\s+(?=\d)", "isco", cleaned)
    groups: set[str] = set()
    for part in _ISCO_SEPARATORS.split(cleaned):
        if not part:
            continue
        found = _ISCO_CODE.match(part)
        if found is None:
            raise ProgrammeKindError(part)
        groups.add(found[1][0])
    return tuple(g for g in ISCO_MAJOR_GROUPS if g in groups)


def isco_text(groups: tuple[str, ...] | list[str]) -> str | None:
    """Groups as stored (Programme.isco_groups): '5,7'; None for none."""
    ordered = [g for g in ISCO_MAJOR_GROUPS if g in set(groups)]
    return ",".join(ordered) or None


def isco_groups_of(stored: str | None) -> frozenset[str]:
    """The groups of a stored Programme.isco_groups ('5,7'); empty when none are declared."""
    if not stored:
        return frozenset()
    return frozenset(g for g in stored.split(",") if g in ISCO_MAJOR_GROUPS)


# The words people use, after _plain(), in the five languages and the usual abbreviations.
_PATHWAY_WORDS: dict[str, str] = {
    **dict.fromkeys(
        (
            "school based",
            "schoolbased",
            "school",
            "bol",
            "beroepsopleidende leerweg",
            "schoolgebonden",
            "presencial",
            "fp presencial",
            "escolar",
            "no dual",
            "koolipohine",
            "kooliopes",
            "scolastico",
            "scuola",
            "a scuola",
        ),
        "school_based",
    ),
    **dict.fromkeys(
        (
            "work based",
            "workbased",
            "work",
            "bbl",
            "beroepsbegeleidende leerweg",
            "apprenticeship",
            "apprentice",
            "dual",
            "fp dual",
            "dual vet",
            "tookohapohine",
            "tookohapohine ope",
            "opipoisiope",
            "apprendistato",
            "duale",
        ),
        "work_based",
    ),
}

_VET_KIND_WORDS: dict[str, str] = {
    **dict.fromkeys(
        (
            "ivet",
            "i vet",
            "initial",
            "initial vet",
            "initieel",
            "initieel beroepsonderwijs",
            "inicial",
            "fp inicial",
            "formacion inicial",
            "esmane",
            "esmaope",
            "iniziale",
            "formazione iniziale",
        ),
        "ivet",
    ),
    **dict.fromkeys(
        (
            "cvet",
            "c vet",
            "continuing",
            "continuing vet",
            "voortgezet",
            "voortgezet beroepsonderwijs",
            "bijscholing",
            "continua",
            "fp continua",
            "formacion continua",
            "taiendope",
            "taienduskoolitus",
            "formazione continua",
        ),
        "cvet",
    ),
}


def parse_pathway(text: str) -> str | None:
    """school_based or work_based from "BOL", "BBL", "school-based", "dual"…; '' for an empty
    text; None when not understood."""
    key = _plain(text)
    if not key:
        return ""
    return _PATHWAY_WORDS.get(key)


def parse_vet_kind(text: str) -> str | None:
    """ivet or cvet from "IVET", "C-VET", "initial", "continuing"…; '' for an empty text;
    None when not understood."""
    key = _plain(text)
    if not key:
        return ""
    return _VET_KIND_WORDS.get(key)
