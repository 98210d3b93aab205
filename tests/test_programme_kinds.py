"""What a programme trains for and how (ISCO-08 major groups, pathway, IVET/CVET): read as
people type it, set with `gradtrack programme add` and by a roster's columns, and stored by
migration 0015 (on SQLite and PostgreSQL)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.__main__ import build_parser, cmd_import, cmd_programme, cmd_school
from bot.i18n import use_language
from bot.settings import Settings
from conversations.programme_kinds import (
    ProgrammeKindError,
    isco_groups_of,
    isco_text,
    parse_isco_groups,
    parse_pathway,
    parse_vet_kind,
)
from storage.db import Database, create_engine
from storage.migrate import downgrade, upgrade
from storage.models import Programme
from storage.roster import ALIASES, COLUMNS, HEADERS, import_roster, template_csv
from storage.schools import SchoolError, list_schools, upsert_programme, upsert_school


@pytest.mark.parametrize(
    ("text", "groups"),
    [
        ("5", ("5",)),
        ("5;7", ("5", "7")),
        ("5, 7", ("5", "7")),
        ("7 5 5", ("5", "7")),
        ("ISCO 5", ("5",)),
        ("isco5; ISCO 7", ("5", "7")),
        ("ISCO-08 5", ("5",)),
        ("5120", ("5",)),  # a unit group (cooks) stands for its major group
        ("0, 3", ("3", "0")),  # ISCO's order: armed forces last
        ("  ", ()),
    ],
)
def test_isco_groups_as_people_type_them(text: str, groups: tuple[str, ...]) -> None:
    assert parse_isco_groups(text) == groups


@pytest.mark.parametrize(
    ("text", "part"), [("cook", "cook"), ("5 and 7", "and"), ("12345", "12345")]
)
def test_isco_groups_not_understood_name_the_part(text: str, part: str) -> None:
    with pytest.raises(ProgrammeKindError) as error:
        parse_isco_groups(text)
    assert error.value.value == part


def test_isco_groups_are_stored_as_digits() -> None:
    assert isco_text(("7", "5")) == "5,7" and isco_text(()) is None
    assert isco_groups_of("5,7") == {"5", "7"} and isco_groups_of(None) == frozenset()


@pytest.mark.parametrize(
    ("text", "pathway"),
    [
        ("BOL", "school_based"),
        ("school-based", "school_based"),
        ("School based", "school_based"),
        ("bbl", "work_based"),
        ("work_based", "work_based"),
        ("FP dual", "work_based"),
        ("Töökohapõhine", "work_based"),
        ("apprendistato", "work_based"),
        ("", ""),
        ("evening", None),
    ],
)
def test_pathways(text: str, pathway: str | None) -> None:
    assert parse_pathway(text) == pathway


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("IVET", "ivet"),
        ("i-vet", "ivet"),
        ("Initial", "ivet"),
        ("CVET", "cvet"),
        ("C-VET", "cvet"),
        ("continuing VET", "cvet"),
        ("täiendõpe", "cvet"),
        ("", ""),
        ("adult", None),
    ],
)
def test_vet_kinds(text: str, kind: str | None) -> None:
    assert parse_vet_kind(text) == kind


# ---------------------------------------------------------------- storage and the CLI


async def test_programme_kinds_are_set_checked_and_cleared(db: Database) -> None:
    await upsert_school(db, "demo-nl", name="Demo", country="NL")
    added = await upsert_programme(
        db, "demo-nl", "CHEF3", name="Cook", eqf_level=3, isco_groups="ISCO 5", pathway="BBL"
    )
    assert added.created
    changed = await upsert_programme(
        db, "demo-nl", "CHEF3", isco_groups="5; 7", pathway="bbl", vet_kind="IVET"
    )
    assert changed.changed == ("isco_groups", "vet_kind")  # the pathway was already work-based
    (school,) = await list_schools(db)
    (chef,) = school.programmes
    assert (chef.isco_groups, chef.pathway, chef.vet_kind) == ("5,7", "work_based", "ivet")

    for options, message in (
        ({"isco_groups": "cook"}, "'cook' is not an ISCO-08 major group"),
        ({"pathway": "evening"}, "pathway 'evening': use school_based or work_based"),
        ({"vet_kind": "adult"}, "VET kind 'adult': use ivet or cvet"),
    ):
        with pytest.raises(SchoolError, match=message):
            await upsert_programme(db, "demo-nl", "CHEF3", **options)  # type: ignore[arg-type]
    cleared = await upsert_programme(db, "demo-nl", "CHEF3", isco_groups="", pathway="")
    assert cleared.changed == ("isco_groups", "pathway")
    (school,) = await list_schools(db)
    assert (school.programmes[0].isco_groups, school.programmes[0].pathway) == (None, None)
    assert school.programmes[0].vet_kind == "ivet"  # not given: unchanged


async def test_the_cli_sets_and_lists_a_programme_kind(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=database_url, _env_file=None)
    parser = build_parser()

    async def run(*words: str) -> int:
        args = parser.parse_args(list(words))
        assert isinstance(args, argparse.Namespace)
        command = {"school": cmd_school, "programme": cmd_programme}[words[0]]
        return await command(settings, args)

    assert await run("school", "add", "demo-nl", "--name", "Demo College", "--country", "NL") == 0
    assert (
        await run(
            "programme",
            "add",
            "demo-nl",
            "CHEF3",
            "--name",
            "Cook",
            "--eqf",
            "3",
            "--isco",
            "5, 7",
            "--pathway",
            "BOL",
            "--vet-kind",
            "C-VET",
        )
        == 0
    )
    assert "programme demo-nl/CHEF3 added" in capsys.readouterr().out
    assert await run("school", "list") == 0
    assert "CHEF3  Cook  (EQF 3, ISCO 5,7, school_based, cvet)" in capsys.readouterr().out
    assert await run("programme", "add", "demo-nl", "CHEF3", "--isco", "chef") == 1
    error = capsys.readouterr().err
    assert "error: ISCO groups 'chef': 'chef' is not an ISCO-08 major group" in error
    assert await run("programme", "add", "demo-nl", "CHEF3", "--pathway", "BBL") == 0
    assert "programme demo-nl/CHEF3 updated (pathway)" in capsys.readouterr().out


# ---------------------------------------------------------------- the roster


async def roster_seed(db: Database) -> None:
    await upsert_school(db, "demo-nl", name="Demo College", country="NL")
    await upsert_programme(db, "demo-nl", "ICT4", name="Software developer", eqf_level=4)
    await upsert_programme(
        db, "demo-nl", "CHEF3", name="Cook", eqf_level=3, isco_groups="5", pathway="BOL"
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8", newline="")
    return path


async def programmes(db: Database) -> dict[str, tuple[str | None, str | None, str | None]]:
    async with db.session() as session:
        rows = (await session.exec(select(Programme))).all()
    return {p.code: (p.isco_groups, p.pathway, p.vet_kind) for p in rows}


async def test_a_roster_sets_its_programmes_kinds_as_people_type_them(
    db: Database, tmp_path: Path
) -> None:
    """Dutch headers (leerweg), cells as typed: "ISCO 2; 3", "2,3", "bbl", "IVET"; an empty
    cell leaves the programme's value (CHEF3 keeps ISCO 5 and BOL)."""
    await roster_seed(db)
    path = write(
        tmp_path,
        "studentnummer;naam;school;opleiding;diplomadatum;ISCO-beroepsgroepen;leerweg;"
        "initieel of voortgezet\n"
        '1;Ana;demo-nl;ICT4;2026-06-30;"ISCO 2; 3";BBL;IVET\n'
        "2;Bo;demo-nl;ICT4;2026-06-30;2,3;bbl;\n"
        "3;Cas;demo-nl;CHEF3;2026-06-30;;;initial\n",
    )
    checked = await import_roster(db, path, dry_run=True)
    assert checked.ok, checked.problems
    assert [(c.school, c.code, c.fields) for c in checked.programmes] == [
        ("demo-nl", "ICT4", ("isco_groups", "pathway", "vet_kind")),
        ("demo-nl", "CHEF3", ("vet_kind",)),
    ]
    assert (await programmes(db))["ICT4"] == (None, None, None)  # a dry run writes nothing

    done = await import_roster(db, path)
    assert done.written and done.created == 3
    assert await programmes(db) == {
        "ICT4": ("2,3", "work_based", "ivet"),
        "CHEF3": ("5", "school_based", "ivet"),
    }
    again = await import_roster(db, path)
    assert again.programmes == [] and again.unchanged == 3


async def test_a_roster_with_bad_or_disagreeing_programme_kinds_writes_nothing(
    db: Database, tmp_path: Path
) -> None:
    await roster_seed(db)
    path = write(
        tmp_path,
        "student_ref,name,school,programme,graduation_date,isco_groups,pathway,vet_kind\n"
        "1,Ana,demo-nl,ICT4,2026-06-30,cook,BOL,IVET\n"
        "2,Bo,demo-nl,ICT4,2026-06-30,2,evening,IVET\n"
        "3,Cas,demo-nl,ICT4,2026-06-30,2,BOL,CVET\n"
        "4,Dee,demo-nl,ICT4,2026-06-30,3,BOL,adult\n",
    )
    with use_language("en"):
        result = await import_roster(db, path)
    assert not result.written
    assert [(p.line, p.message) for p in result.problems] == [
        (
            2,
            "isco_groups 'cook': 'cook' is not an ISCO-08 major group; use the digits 0 to 9, "
            "e.g. 5 or 5;7",
        ),
        (3, "pathway 'evening' is not understood: use school-based (BOL) or work-based (BBL)"),
        (4, "vet_kind 'CVET' for programme 'ICT4' differs from line 2"),
        (5, "isco_groups '3' for programme 'ICT4' differs from line 3"),
        (5, "vet_kind 'adult' is not understood: use IVET or CVET"),
    ]
    assert (await programmes(db))["ICT4"] == (None, None, None)
    # In the staff member's language, by the file's own header.
    with use_language("nl"):
        dutch = await import_roster(db, path)
    assert dutch.problems[1].message == (
        "pathway 'evening' wordt niet herkend: gebruik BOL (schoolgebonden) of BBL (werkend leren)"
    )


async def test_the_cli_reports_the_programmes_a_roster_changes(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Database(database_url)
    try:
        await roster_seed(db)
    finally:
        await db.dispose()
    path = write(
        tmp_path,
        "student_ref,name,school,programme,graduation_date,pathway\n"
        "1,Ana,demo-nl,ICT4,2026-06-30,work-based\n",
    )
    settings = Settings(database_url=database_url, _env_file=None)
    args = build_parser().parse_args(["import", str(path), "--dry-run"])
    assert await cmd_import(settings, args) == 0
    assert "programme demo-nl/ICT4 would be updated (pathway)" in capsys.readouterr().out
    args = build_parser().parse_args(["import", str(path)])
    assert await cmd_import(settings, args) == 0
    assert "programme demo-nl/ICT4 updated (pathway)" in capsys.readouterr().out


def test_every_new_column_has_a_header_in_each_language_and_no_alias_is_shared() -> None:
    for column in ("isco_groups", "pathway", "vet_kind"):
        assert column in COLUMNS
        for lang, headers in HEADERS.items():
            assert headers[column], (lang, column)
    # Every header of the five templates reads back as its own column.
    from storage.roster import header_key

    for headers in HEADERS.values():
        for column, title in headers.items():
            assert ALIASES[header_key(title)] == column, (column, title)
    assert "leerweg" in template_csv("nl").decode("utf-8-sig")


# ---------------------------------------------------------------- the migration


async def _programme_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(
                await conn.run_sync(
                    lambda c: {col["name"] for col in sa.inspect(c).get_columns("programme")}
                )
            )
    finally:
        await engine.dispose()


async def test_migration_0015_adds_and_removes_the_programme_kinds(
    empty_database_url: str,
) -> None:
    """Up to 0014, a programme; 0015 adds its kinds (NULL: not declared), keeping the row;
    down again drops them and keeps the programme."""
    url = empty_database_url
    await upgrade(url, "0014_privacy_notice")
    kinds = {"isco_groups", "pathway", "vet_kind"}
    assert not kinds & await _programme_columns(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO institution (code, name, country, default_language, timezone, "
                    "created_at) VALUES ('demo', 'Demo', 'NL', 'nl', 'Europe/Amsterdam', "
                    "CURRENT_TIMESTAMP)"
                )
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO programme (institution_id, code, name, eqf_level, active) "
                    "SELECT id, 'CHEF3', 'Cook', 3, true FROM institution"
                )
            )
        await upgrade(url, "0015_programme_isco")
        assert kinds <= await _programme_columns(url)
        async with engine.begin() as conn:
            row = (
                await conn.execute(sa.text("SELECT code, isco_groups, pathway FROM programme"))
            ).one()
            assert tuple(row) == ("CHEF3", None, None)
            await conn.execute(sa.text("UPDATE programme SET isco_groups = '5', pathway = 'x'"))
        await downgrade(url, "0014_privacy_notice")
        assert not kinds & await _programme_columns(url)
        async with engine.connect() as conn:
            codes = (await conn.execute(sa.text("SELECT code FROM programme"))).scalars().all()
        assert list(codes) == ["CHEF3"]
    finally:
        await engine.dispose()
    await upgrade(url)
    assert kinds <= await _programme_columns(url)
