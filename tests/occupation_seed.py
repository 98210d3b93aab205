"""A small data set for 6a "working in the occupation trained for" and the breakdowns by
pathway, VET kind, school and country (tests/test_occupation.py, counted by hand there).

Three schools, five programmes declared as a school types them (through `upsert_programme`,
as `gradtrack programme add` does), 28 graduates of 2025-06-30; 26 answered the 12-month wave
(m12: complete, submitted responses with C0, Q1 and the occupation question E4b).

    school country programme  pathway        VET kind  ISCO groups
    alfa   NL      COOK       "BOL"          "IVET"    "5"
    alfa   NL      COOKBBL    "BBL"          "initial" "ISCO 5"
    beta   ES      ADM        "school-based" "CVET"    "4"
    beta   ES      GEN        -              -         -        (nothing declared)
    gamma  NL      ELEC       "bbl"          "ivet"    "7, 8"
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from storage.db import Database
from storage.models import Graduate
from storage.schools import upsert_programme, upsert_school
from tests.stats_seed import add_completed

GRADUATION = date(2025, 6, 30)
ANSWERED = datetime(2026, 7, 6, 10, 0, tzinfo=UTC)

SCHOOLS = {
    # code: name, country
    "alfa": ("Alfa College", "NL"),
    "beta": ("Institut Beta", "ES"),
    "gamma": ("Gamma ROC", "NL"),
}
PROGRAMMES = {
    # code: school, EQF, ISCO groups, pathway, VET kind (as typed; None: not declared)
    "COOK": ("alfa", 3, "5", "BOL", "IVET"),
    "COOKBBL": ("alfa", 3, "ISCO 5", "BBL", "initial"),
    "ADM": ("beta", 5, "4", "school-based", "CVET"),
    "GEN": ("beta", 4, None, None, None),
    "ELEC": ("gamma", 3, "7, 8", "bbl", "ivet"),
}
ROWS: tuple[tuple[str, str, str | None, str | None], ...] = (
    # ref, programme, Q1 (None: no response), E4b (None: not answered)
    ("K01", "COOK", "employed", "isco5"),
    ("K02", "COOK", "employed", "isco5"),
    ("K03", "COOK", "employed", "isco5"),
    ("K04", "COOK", "employed", "isco9"),
    ("K05", "COOK", "self_employed", "isco5"),
    ("K06", "COOK", "employed", None),  # answered before E4b was asked
    ("K07", "COOK", "studying", None),
    ("K08", "COOK", "unemployed_looking", None),
    ("K09", "COOK", None, None),
    ("K10", "COOK", None, None),
    ("W01", "COOKBBL", "employed", "isco5"),
    ("W02", "COOKBBL", "employed", "isco5"),
    ("W03", "COOKBBL", "employed", "isco5"),
    ("W04", "COOKBBL", "employed", "isco4"),
    ("W05", "COOKBBL", "working_and_studying", "isco5"),
    ("D01", "ADM", "employed", "isco4"),
    ("D02", "ADM", "employed", "isco4"),
    ("D03", "ADM", "employed", "isco5"),
    ("D04", "ADM", "self_employed", "isco1"),
    ("D05", "ADM", "studying", None),
    ("D06", "ADM", "studying", None),
    ("G01", "GEN", "employed", "isco2"),
    ("G02", "GEN", "employed", "isco3"),
    ("G03", "GEN", "studying", None),
    ("E01", "ELEC", "employed", "isco7"),
    ("E02", "ELEC", "employed", "isco8"),
    ("E03", "ELEC", "employed", "isco9"),
    ("E04", "ELEC", "other", None),
)


@dataclass(frozen=True)
class Seeded:
    schools: dict[str, int]
    programmes: dict[str, int]


async def seed(db: Database) -> Seeded:
    """Write the data set of the module docstring."""
    schools = {
        code: (await upsert_school(db, code, name=name, country=country)).id
        for code, (name, country) in SCHOOLS.items()
    }
    programmes: dict[str, int] = {}
    for code, (school, eqf, isco, pathway, kind) in PROGRAMMES.items():
        done = await upsert_programme(
            db,
            school,
            code,
            name=f"Programme {code}",
            eqf_level=eqf,
            isco_groups=isco,
            pathway=pathway,
            vet_kind=kind,
        )
        programmes[code] = done.id
    async with db.session() as session:
        for number, (ref, programme, activity, occupation) in enumerate(ROWS):
            school = PROGRAMMES[programme][0]
            graduate = Graduate(
                institution_id=schools[school],
                programme_id=programmes[programme],
                student_ref=ref,
                name=f"Graduate {ref}",
                graduation_date=GRADUATION,
                gender="female" if number % 2 else "male",
                birth_year=2005,
            )
            session.add(graduate)
            await session.flush()
            assert graduate.id is not None
            if activity is None:
                continue
            when = ANSWERED + timedelta(minutes=number)
            answers: dict[str, Any] = {"C0": "yes", "Q1": activity}
            if occupation is not None:
                answers["E4b"] = occupation
            await add_completed(session, graduate.id, "m12", when, answers)
    return Seeded(schools, programmes)
