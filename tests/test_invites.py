"""Invitation sheets and link lists per class; revoking and renewing links. Both backends."""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

import pytest
import segno
from sqlmodel import select

from bot.__main__ import build_parser, cmd_invites
from bot.links import start_link
from bot.settings import Settings
from storage.cells import FORMULA_PREFIXES
from storage.db import Database
from storage.invite_sheets import QR_BORDER, QR_ERROR, write_invite_files
from storage.invites import (
    InviteClass,
    InviteEntry,
    InviteError,
    invite_classes,
    renew_invite,
    revoke_invite,
)
from storage.models import Graduate
from storage.queries import graduate_by_token
from storage.roster import import_roster
from storage.schools import upsert_programme, upsert_school
from storage.types import utcnow

BOT = "gradtrack_test_bot"
TODAY = date(2026, 5, 1)
EVIL = '<script>alert("x")</script> & <b>Zoë</b>'
ROSTER = f"""student_ref,name,school,programme,graduation_date
A1,Anna de Vries,demo-nl,ICT4,2026-06-30
A2,"{EVIL.replace('"', '""')}",demo-nl,ICT4,2026-07-01
A3,Connected Cas,demo-nl,ICT4,2026-06-30
A4,Revoked Rob,demo-nl,ICT4,2026-06-30
B1,Last Year Lou,demo-nl,ICT4,2025-06-30
C1,Cook Chris,demo-nl,CHEF3,2026-06-30
C2,=SUM(A1:A2),demo-nl,CHEF3,2026-06-30
X1,Other School,bcn,ADM,2026-06-30
"""


def link_for(token: str) -> str:
    return start_link(BOT, token)


async def seed(db: Database, tmp_path: Path) -> None:
    await upsert_school(db, "demo-nl", name="Demo & Co College", country="NL")
    await upsert_programme(db, "demo-nl", "ICT4", name="Software <developer>", eqf_level=4)
    await upsert_programme(db, "demo-nl", "CHEF3", name="Cook", eqf_level=3)
    await upsert_school(db, "bcn", name="Institut Barcelona", country="ES")
    await upsert_programme(db, "bcn", "ADM", name="Administració", eqf_level=5)
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8")
    result = await import_roster(db, path, today=TODAY)
    assert result.problems == [] and result.created == 8
    async with db.session() as session:
        cas = (await session.exec(select(Graduate).where(Graduate.student_ref == "A3"))).one()
        cas.chat_id, cas.linked_at = 4242, utcnow()
        session.add(cas)
    await revoke_invite(db, "A4")


async def tokens(db: Database) -> dict[str, str | None]:
    async with db.session() as session:
        return {g.student_ref: g.invite_token for g in (await session.exec(select(Graduate))).all()}


def svg_modules(svg: str) -> list[list[int]]:
    """Read the dark modules back out of segno's SVG path (scale 1): M x y, m dx dy, h n."""
    width = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg)[1])  # type: ignore[index]
    size = width - 2 * QR_BORDER
    grid = [[0] * size for _ in range(size)]
    path = re.search(r' d="([^"]+)"', svg)[1]  # type: ignore[index]
    x = y = 0.0
    for command, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?:\s(-?[\d.]+))?", path):
        if command == "M":
            x, y = float(a), float(b)
        elif command == "m":
            x, y = x + float(a), y + float(b)
        else:
            for step in range(int(a)):
                grid[int(y - 0.5) - QR_BORDER][int(x) + step - QR_BORDER] = 1
            x += float(a)
    return grid


def qr_modules(data: str) -> list[list[int]]:
    code = segno.make(data, error=QR_ERROR, micro=False, boost_error=False)
    return [[1 if module else 0 for module in row] for row in code.matrix]


def by_slug(classes: list[InviteClass]) -> dict[str, InviteClass]:
    return {c.slug: c for c in classes}


async def test_classes_split_by_school_programme_and_year(db: Database, tmp_path: Path) -> None:
    await seed(db, tmp_path)
    classes = by_slug(await invite_classes(db))
    assert list(classes) == [
        "bcn_ADM_2026",
        "demo-nl_CHEF3_2026",
        "demo-nl_ICT4_2025",
        "demo-nl_ICT4_2026",
    ]
    ict = classes["demo-nl_ICT4_2026"]
    assert (ict.school_name, ict.programme_name, ict.eqf_level, ict.year) == (
        "Demo & Co College",
        "Software <developer>",
        4,
        2026,
    )
    # Revoked Rob is left out; Connected Cas has no link. Sorted by name.
    assert [(e.student_ref, e.connected, e.token is None) for e in ict.entries] == [
        ("A2", False, False),
        ("A1", False, False),
        ("A3", True, True),
    ]
    stored = await tokens(db)
    assert [e.token for e in ict.invited] == [stored["A2"], stored["A1"]]

    only = await invite_classes(db, school_code="demo-nl", programme_code="ICT4", cohort=2025)
    assert [c.slug for c in only] == ["demo-nl_ICT4_2025"]
    assert [c.slug for c in await invite_classes(db, programme_code="ADM")] == ["bcn_ADM_2026"]
    assert [c.slug for c in await invite_classes(db, school_code="bcn")] == ["bcn_ADM_2026"]
    assert await invite_classes(db, cohort=2030) == []
    with pytest.raises(InviteError, match="unknown school"):
        await invite_classes(db, school_code="nope")
    with pytest.raises(InviteError, match="unknown programme"):
        await invite_classes(db, school_code="bcn", programme_code="ICT4")


async def test_files_per_class(db: Database, tmp_path: Path) -> None:
    await seed(db, tmp_path)
    classes = await invite_classes(db, school_code="demo-nl")
    out = tmp_path / "out"
    written = write_invite_files(classes, out, link_for)
    assert sorted(p.name for p in written) == [
        "all-classes.html",
        "demo-nl_CHEF3_2026.csv",
        "demo-nl_CHEF3_2026.html",
        "demo-nl_ICT4_2025.csv",
        "demo-nl_ICT4_2025.html",
        "demo-nl_ICT4_2026.csv",
        "demo-nl_ICT4_2026.html",
    ]
    stored = await tokens(db)

    raw = (out / "demo-nl_ICT4_2026.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows == [
        ["student_ref", "name", "link", "status"],
        ["A2", EVIL, f"https://t.me/{BOT}?start={stored['A2']}", "invite"],
        ["A1", "Anna de Vries", f"https://t.me/{BOT}?start={stored['A1']}", "invite"],
        ["A3", "Connected Cas", "", "already connected"],
    ]
    chef = list(csv.reader((out / "demo-nl_CHEF3_2026.csv").read_text("utf-8-sig").splitlines()))
    # A spreadsheet would run a name starting with "=": the CSV neutralises it.
    assert [r[1] for r in chef[1:]] == ["'=SUM(A1:A2)", "Cook Chris"]

    html = (out / "demo-nl_ICT4_2026.html").read_text(encoding="utf-8")
    # Every name escaped; the raw markup never appears.
    assert "<script>" not in html and "<b>Zoë</b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;Zoë&lt;/b&gt;" in html
    assert "Software &lt;developer&gt;" in html and "Demo &amp; Co College" in html
    assert "Revoked Rob" not in html and str(stored["A4"]) not in html
    # Each card's QR is the code of its own link (modules read back from the SVG).
    cards = re.findall(r'<figure class="card">(<svg.*?</svg>).*?class="link">([^<]+)<', html)
    assert [link for _svg, link in cards] == [link_for(str(stored[r])) for r in ("A2", "A1")]
    for svg, link in cards:
        assert svg_modules(svg) == qr_modules(link)
    # The connected graduate is listed, without a code.
    connected = html[html.index('<div class="connected">') :]
    assert "Connected Cas" in connected and "<svg" not in connected
    assert html.count("<svg") == 2
    # Works offline: nothing is fetched.
    assert not re.search(r"(src|href)=|@import|url\(|<link|<script", html, re.IGNORECASE)
    assert "@page" in html and "A4" in html

    combined = (out / "all-classes.html").read_text(encoding="utf-8")
    sections = re.findall(r'<section class="class" id="([^"]+)"', combined)
    assert sections == ["demo-nl_CHEF3_2026", "demo-nl_ICT4_2025", "demo-nl_ICT4_2026"]
    assert ".class + .class { break-before: page; page-break-before: always; }" in combined
    assert combined.count("<svg") == 2 + 1 + 2


async def test_sheets_speak_the_schools_language(db: Database, tmp_path: Path) -> None:
    """The sheet a teacher prints is in the school's language, counts with plural forms."""
    await seed(db, tmp_path)
    out = tmp_path / "out"
    write_invite_files(await invite_classes(db), out, link_for)
    dutch = (out / "demo-nl_ICT4_2026.html").read_text(encoding="utf-8")
    assert '<html lang="nl">' in dutch and "<title>Uitnodigingen demo-nl ICT4 2026</title>" in dutch
    assert "afstuderend in 2026 &middot; 2 uit te nodigen, 1 al verbonden" in dutch
    assert "<h2>Al verbonden</h2>" in dutch and "knip langs de stippellijnen" in dutch
    assert "graduating" not in dutch and "Already connected" not in dutch
    spanish = (out / "bcn_ADM_2026.html").read_text(encoding="utf-8")
    assert '<html lang="es">' in spanish and "promoción 2026" in spanish
    assert "recorta por las líneas discontinuas" in spanish
    # The file with every class: each section in its own school's language.
    combined = (out / "all-classes.html").read_text(encoding="utf-8")
    languages = re.findall(r'<section class="class" id="([^"]+)" lang="([a-z]+)"', combined)
    assert ("bcn_ADM_2026", "es") in languages and ("demo-nl_ICT4_2026", "nl") in languages


async def test_revoke_and_renew(db: Database, tmp_path: Path) -> None:
    await seed(db, tmp_path)
    before = await tokens(db)

    first = await revoke_invite(db, "A1", school_code="demo-nl")
    assert first.revoked_at is not None and first.token == before["A1"]
    again = await revoke_invite(db, "A1")
    assert again.revoked_at == first.revoked_at
    async with db.session() as session:
        anna = await graduate_by_token(session, before["A1"] or "")
        assert anna is not None and anna.invite_revoked_at == first.revoked_at
    assert "A1" not in {e.student_ref for c in await invite_classes(db) for e in c.entries}

    renewed = await renew_invite(db, "A1")
    assert renewed.revoked_at is None and renewed.token not in (None, before["A1"])
    async with db.session() as session:
        assert await graduate_by_token(session, before["A1"] or "") is None
        anna = await graduate_by_token(session, renewed.token or "")
        assert anna is not None and anna.invite_revoked_at is None
    ict = by_slug(await invite_classes(db))["demo-nl_ICT4_2026"]
    assert renewed.token in [e.token for e in ict.entries]
    assert (await tokens(db))["A2"] == before["A2"]

    with pytest.raises(InviteError, match="no graduate with student_ref 'Z9'"):
        await revoke_invite(db, "Z9")
    with pytest.raises(InviteError, match="at school 'bcn'"):
        await renew_invite(db, "A1", school_code="bcn")


async def test_ambiguous_refs_missing_tokens_and_erased(db: Database, tmp_path: Path) -> None:
    await seed(db, tmp_path)
    async with db.session() as session:
        other = (await session.exec(select(Graduate).where(Graduate.student_ref == "X1"))).one()
        other.student_ref = "A1"  # the same student number at another school
        session.add(other)
        lou = (await session.exec(select(Graduate).where(Graduate.student_ref == "B1"))).one()
        lou.invite_token = None  # made by other means than the import
        session.add(lou)
        chris = (await session.exec(select(Graduate).where(Graduate.student_ref == "C1"))).one()
        chris.invite_token, chris.opted_out_at = None, utcnow()  # erased: never invite again
        session.add(chris)
    with pytest.raises(InviteError, match="exists at 2 schools: give --school"):
        await revoke_invite(db, "A1")
    revoked = await revoke_invite(db, "A1", school_code="bcn")
    assert revoked.school_code == "bcn"

    classes = by_slug(await invite_classes(db))
    (lou_entry,) = classes["demo-nl_ICT4_2025"].entries
    assert lou_entry.token is not None and (await tokens(db))["B1"] == lou_entry.token
    assert [e.student_ref for e in classes["demo-nl_CHEF3_2026"].entries] == ["C2"]
    assert "bcn_ADM_2026" not in classes


async def test_cli(database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = Database(database_url)
    try:
        await seed(db, tmp_path)
    finally:
        await db.dispose()
    parser = build_parser()
    out = tmp_path / "sheets"
    args = parser.parse_args(
        ["invites", "--school", "demo-nl", "--cohort", "2026", "--out", str(out)]
    )

    token = "123456:real-token"
    no_name = Settings(
        database_url=database_url, telegram_bot_token=token, bot_username="", _env_file=None
    )
    assert await cmd_invites(no_name, args) == 1
    assert "BOT_USERNAME is not set" in capsys.readouterr().err
    assert not out.exists()

    # No token: the sandbox that `gradtrack run` starts; its web chat opens the links.
    sandbox = Settings(
        database_url=database_url, bot_username="", sandbox_port=8099, _env_file=None
    )
    sandbox_out = tmp_path / "sandbox-sheets"
    sandbox_args = parser.parse_args(["invites", "--school", "demo-nl", "--out", str(sandbox_out)])
    assert await cmd_invites(sandbox, sandbox_args) == 0
    capsys.readouterr()
    sandbox_csv = (sandbox_out / "demo-nl_ICT4_2026.csv").read_text("utf-8-sig")
    assert "http://127.0.0.1:8099/chat?bot=gradtrack_demo_bot&start=i_" in sandbox_csv

    settings = Settings(
        database_url=database_url, telegram_bot_token=token, bot_username="@" + BOT, _env_file=None
    )
    assert await cmd_invites(settings, args) == 0
    printed = capsys.readouterr().out
    assert "demo-nl ICT4 2026: 2 invitations, 1 already connected" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "all-classes.html",
        "demo-nl_CHEF3_2026.csv",
        "demo-nl_CHEF3_2026.html",
        "demo-nl_ICT4_2026.csv",
        "demo-nl_ICT4_2026.html",
    ]
    assert f"https://t.me/{BOT}?start=i_" in (out / "demo-nl_ICT4_2026.csv").read_text("utf-8-sig")

    renew = parser.parse_args(["invites", "--renew", "A1"])
    assert await cmd_invites(settings, renew) == 0
    assert f"new link for demo-nl/A1 Anna de Vries: https://t.me/{BOT}?start=i_" in (
        capsys.readouterr().out
    )
    revoke = parser.parse_args(["invites", "--revoke", "nobody"])
    assert await cmd_invites(settings, revoke) == 1
    assert "no graduate with student_ref 'nobody'" in capsys.readouterr().err


@pytest.mark.parametrize("prefix", [p for p in FORMULA_PREFIXES if p != "\0"] + ["  ="])
def test_qr_sheet_csv_cells_get_the_exports_formula_guard(tmp_path: Path, prefix: str) -> None:
    """A roster's name or student number that a spreadsheet would run as a formula (each of
    the exports' prefixes, full-width ＝＋－＠ and a leading tab or line break among them, and
    one after spaces) is written to the class's CSV with an apostrophe in front, for an
    invited graduate and a connected one alike; the rest of the text is as it came."""
    name, ref = f'{prefix}HYPERLINK("http://evil","x")', f"{prefix}42"
    group = InviteClass(
        "demo-nl",
        "Demo",
        "ICT4",
        "Software",
        4,
        2026,
        (
            InviteEntry(ref, name, date(2026, 6, 30), "tok", False),
            InviteEntry(ref + "c", name + "c", date(2026, 6, 30), None, True),
        ),
    )
    (csv_path,) = [p for p in write_invite_files([group], tmp_path, link_for) if p.suffix == ".csv"]
    with csv_path.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.reader(file))
    assert [row[:2] for row in rows[1:]] == [
        ["'" + ref, "'" + name],
        ["'" + ref + "c", "'" + name + "c"],
    ]
