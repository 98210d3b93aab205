"""Contact data in the roster (issue 16): e-mail addresses and mobile numbers, checked and
normalised, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.i18n import use_language
from conversations.contacts import ContactError, ContactProblem, normalise_email, normalise_mobile
from storage.contacts import set_email_status
from storage.db import Database
from storage.models import EmailStatus, Graduate
from storage.roster import ALIASES, Problem, contact_problem_text, header_key, import_roster
from storage.schools import upsert_programme, upsert_school

TODAY = date(2026, 5, 1)


async def seed(db: Database) -> None:
    for code, country in (("nl", "NL"), ("es", "ES"), ("ee", "EE"), ("it", "IT")):
        await upsert_school(db, code, name=f"School {code}", country=country)
        await upsert_programme(db, code, "P1", name="Programme", eqf_level=4)


def write(tmp_path: Path, text: str, name: str = "roster.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


async def contacts(db: Database) -> dict[str, tuple[str | None, str | None]]:
    async with db.session() as session:
        rows = (await session.exec(select(Graduate).order_by(col(Graduate.student_ref)))).all()
    return {g.student_ref: (g.email, g.mobile) for g in rows}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  anna.devries@Example.NL ", "anna.devries@example.nl"),
        ("Jüri.Tamm@Näide.EE", "Jüri.Tamm@xn--nide-loa.ee"),
        ("mailto:Lucia@Correo.ES", "Lucia@correo.es"),
        ("o'brien+roster@school.it.", "o'brien+roster@school.it"),
        ("José@ejemplo.es", "José@ejemplo.es"),
    ],
)
def test_email_addresses_are_normalised(text: str, expected: str) -> None:
    """Proves trimming, the lower-cased domain, IDNA to ASCII (no DNS is asked: the domains
    do not exist), a mailto: prefix and a final dot dropped, the local part kept."""
    assert normalise_email(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("anna.example.nl", ContactProblem.EMAIL_NO_AT),
        ("anna@@example.nl", ContactProblem.EMAIL_NO_AT),
        ("anna@example@nl", ContactProblem.EMAIL_NO_AT),
        ("anna de vries@example.nl", ContactProblem.EMAIL_SPACE),
        ("@example.nl", ContactProblem.EMAIL_LOCAL),
        (".anna@example.nl", ContactProblem.EMAIL_LOCAL),
        ("an..na@example.nl", ContactProblem.EMAIL_LOCAL),
        ("anna,b@example.nl", ContactProblem.EMAIL_LOCAL),
        ("a" * 65 + "@example.nl", ContactProblem.EMAIL_LOCAL),
        ("anna@localhost", ContactProblem.EMAIL_DOMAIN),
        ("anna@example..nl", ContactProblem.EMAIL_DOMAIN),
        ("anna@-example.nl", ContactProblem.EMAIL_DOMAIN),
        ("anna@exa_mple.nl", ContactProblem.EMAIL_DOMAIN),
        ("anna@example.123", ContactProblem.EMAIL_DOMAIN),
        ("anna@[192.0.2.1]", ContactProblem.EMAIL_DOMAIN),
        ("anna@", ContactProblem.EMAIL_DOMAIN),
        ("anna@" + "a" * 64 + ".nl", ContactProblem.EMAIL_DOMAIN),
        ("anna@" + ".".join(["abcdefghij" * 6] * 5) + ".nl", ContactProblem.EMAIL_DOMAIN),
    ],
)
def test_malformed_email_addresses_are_refused(text: str, problem: ContactProblem) -> None:
    with pytest.raises(ContactError) as refused:
        normalise_email(text)
    assert refused.value.problem == problem


@pytest.mark.parametrize(
    ("text", "country", "expected"),
    [
        ("06 1234 5678", "NL", "+31612345678"),
        ("06-12345678", "NL", "+31612345678"),
        ("0031 6 12345678", "NL", "+31612345678"),
        ("+31 (0)6 1234 5678", "ES", "+31612345678"),
        ("612 34 56 78", "ES", "+34612345678"),
        ("+34 612 345 678", "NL", "+34612345678"),
        ("5123 4567", "EE", "+37251234567"),
        ("+372 5123 4567", None, "+37251234567"),
        ("347 118 9064", "IT", "+393471189064"),
        ("0039 347 118 9064", "IT", "+393471189064"),
        ("31612345678", "NL", "+31612345678"),  # an Excel number cell lost its +
    ],
)
def test_mobile_numbers_become_e164(text: str, country: str | None, expected: str) -> None:
    """Proves E.164 normalisation: + and 00 numbers as they stand, national numbers in the
    school's country's plan (NL, ES, EE, IT)."""
    assert normalise_mobile(text, country) == expected


@pytest.mark.parametrize(
    ("text", "country", "problem"),
    [
        ("06 1234 567", "NL", ContactProblem.MOBILE_INVALID),  # a digit missing
        ("06 1234 56789", "NL", ContactProblem.MOBILE_INVALID),
        ("06 1234 5678", None, ContactProblem.MOBILE_INVALID),  # national, no country
        ("+99 1234 5678", "NL", ContactProblem.MOBILE_INVALID),
        ("call me", "NL", ContactProblem.MOBILE_NOT_A_NUMBER),
        ("06 1234 5678 ext. 3", "NL", ContactProblem.MOBILE_NOT_A_NUMBER),
    ],
)
def test_malformed_mobile_numbers_are_refused(
    text: str, country: str | None, problem: ContactProblem
) -> None:
    with pytest.raises(ContactError) as refused:
        normalise_mobile(text, country)
    assert refused.value.problem == problem


def test_contact_columns_have_aliases_in_the_five_languages() -> None:
    for alias in ("e_mail", "emailadres", "correo_electrónico", "e_post", "posta_elettronica"):
        assert ALIASES[header_key(alias)] == "email", alias
    for alias in ("mobile", "mobiel", "móvil", "mobiil", "cellulare", "telefoonnummer"):
        assert ALIASES[header_key(alias)] == "mobile", alias


async def test_roster_contacts_are_stored_normalised(db: Database, tmp_path: Path) -> None:
    """Proves a roster with e-mail and mobile columns under Dutch, Spanish, Estonian and
    Italian headers is imported with the addresses normalised and the numbers in E.164 in
    the plan of each row's school; an empty cell stores nothing."""
    await seed(db)
    header = "leerlingnummer;naam;school;opleiding;diplomadatum;E-mail;Mobiel"
    rows = [
        "N1;Anna de Vries;nl;P1;2026-06-30; Anna@Voorbeeld.NL ;06 1234 5678",
        "S1;Lucía García;es;P1;2026-06-30;lucia@Correo.es;612 34 56 78",
        "E1;Jüri Tamm;ee;P1;2026-06-30;juri@näide.ee;5123 4567",
        "I1;Giulia Rossi;it;P1;2026-06-30;;347 118 9064",
        "N2;Bram Jansen;nl;P1;2026-06-30;bram@voorbeeld.nl;",
    ]
    path = write(tmp_path, "\n".join([header.replace("diplomadatum", "date"), *rows]) + "\n")
    result = await import_roster(db, path, today=TODAY)
    assert result.problems == [] and result.created == 5 and result.written
    assert await contacts(db) == {
        "E1": ("juri@xn--nide-loa.ee", "+37251234567"),
        "I1": (None, "+393471189064"),
        "N1": ("Anna@voorbeeld.nl", "+31612345678"),
        "N2": ("bram@voorbeeld.nl", None),
        "S1": ("lucia@correo.es", "+34612345678"),
    }
    for header_cells in (
        "matricola,nome,school,programme,date,posta elettronica,cellulare",
        "ref,nombre,school,programme,date,correo electrónico,móvil",
        "ref,nimi,school,programme,date,e-post,mobiil",
    ):
        path = write(
            tmp_path, header_cells + "\nX9,Test,it,P1,2026-06-30,x9@scuola.it,3471189064\n"
        )
        again = await import_roster(db, path, today=TODAY, dry_run=True)
        assert again.problems == [] and again.ignored_columns == [], header_cells


async def test_malformed_and_duplicate_emails_are_reported_with_their_lines(
    db: Database, tmp_path: Path
) -> None:
    """Proves each bad e-mail address or mobile number is reported at its line, a duplicate
    address (whatever the case of its letters) names the line of the first, and nothing is
    written."""
    await seed(db)
    text = (
        "student_ref,name,school,programme,graduation_date,email,mobile\n"
        "A1,Anna,nl,P1,2026-06-30,anna@example.nl,0612345678\n"
        "A2,Bram,nl,P1,2026-06-30,bram(at)example.nl,\n"
        "A3,Cees,nl,P1,2026-06-30,cees@example,06 1234 567\n"
        "A4,Dirk,nl,P1,2026-06-30,ANNA@Example.NL,\n"
        "A5,Eva,es,P1,2026-06-30,eva @example.es,call me\n"
        "A6,Fenna,nl,P1,2026-06-30,anna@example.nl,\n"
    )
    result = await import_roster(db, write(tmp_path, text), today=TODAY)
    assert result.problems == [
        Problem(3, "email 'bram(at)example.nl' must contain exactly one @"),
        Problem(4, "email 'cees@example' has a malformed domain after the @"),
        Problem(
            4,
            "mobile '06 1234 567' is not a valid phone number: write it with the country "
            "code (+31 …) or as a national number of NL",
        ),
        Problem(5, "duplicate email 'ANNA@Example.NL' (also on line 2)"),
        Problem(6, "email 'eva @example.es' contains a space"),
        Problem(
            6,
            "mobile 'call me' is not a valid phone number: write it with the country code "
            "(+34 …) or as a national number of ES",
        ),
        Problem(7, "duplicate email 'anna@example.nl' (also on line 2)"),
    ]
    assert not result.written and await contacts(db) == {}


async def test_a_new_address_forgets_the_old_one_s_bounce(db: Database, tmp_path: Path) -> None:
    """Proves a re-import that changes a graduate's e-mail address clears the bounce recorded
    for the old one, keeps it when the address is unchanged, and an empty cell clears the
    address."""
    await seed(db)
    header = "student_ref,name,school,programme,graduation_date,email\n"
    first = header + "A1,Anna,nl,P1,2026-06-30,anna@example.nl\nB1,Bram,nl,P1,2026-06-30,b@x.nl\n"
    await import_roster(db, write(tmp_path, first), today=TODAY)
    bounced = datetime(2026, 9, 1, tzinfo=UTC)
    async with db.session() as session:
        for graduate in (await session.exec(select(Graduate))).all():
            graduate.email_status, graduate.email_status_at = EmailStatus.BOUNCED, bounced
            session.add(graduate)
    second = header + "A1,Anna,nl,P1,2026-06-30,anna@new.nl\nB1,Bram,nl,P1,2026-06-30,B@X.NL\n"
    result = await import_roster(db, write(tmp_path, second), today=TODAY)
    assert {c.student_ref: c.fields for c in result.changes} == {
        "A1": ("email",),
        "B1": ("email",),  # B@x.nl: the local part's case is kept as written
    }
    async with db.session() as session:
        rows = {g.student_ref: g for g in (await session.exec(select(Graduate))).all()}
    assert (rows["A1"].email, rows["A1"].email_status, rows["A1"].email_status_at) == (
        "anna@new.nl",
        None,
        None,
    )
    assert rows["B1"].email == "B@x.nl" and rows["B1"].email_status is None
    third = header + "A1,Anna,nl,P1,2026-06-30,anna@new.nl\nB1,Bram,nl,P1,2026-06-30,\n"
    result = await import_roster(db, write(tmp_path, third), today=TODAY)
    assert {c.student_ref: c.fields for c in result.changes} == {"B1": ("email",)}
    assert await contacts(db) == {"A1": ("anna@new.nl", None), "B1": (None, None)}


def test_contact_problems_are_worded_in_the_staff_members_language() -> None:
    """Proves the reasons a dashboard shows are translated (Estonian and Italian here)."""
    with use_language("et"):
        assert contact_problem_text(ContactProblem.EMAIL_NO_AT, "a.b", None) == (
            "email 'a.b' peab sisaldama täpselt ühte @-märki"
        )
    with use_language("it"):
        assert contact_problem_text(ContactProblem.MOBILE_INVALID, "347 11", "IT") == (
            "mobile '347 11' non è un numero di telefono valido: scrivilo con il prefisso "
            "internazionale (+39 …) o come numero nazionale di IT"
        )


async def test_a_bounce_is_recorded_only_for_the_address_it_was_for(
    db: Database, tmp_path: Path
) -> None:
    """Proves `set_email_status` marks the graduate's current address bounced, and a bounce
    that arrives for an address the roster has since replaced changes nothing."""
    await seed(db)
    header = "student_ref,name,school,programme,graduation_date,email\n"
    await import_roster(
        db, write(tmp_path, header + "A1,Anna,nl,P1,2026-06-30,anna@example.nl\n"), today=TODAY
    )
    async with db.session() as session:
        anna = (await session.exec(select(Graduate))).one()
        assert anna.id is not None
    at = datetime(2026, 9, 1, tzinfo=UTC)
    async with db.session() as session:
        assert not await set_email_status(
            session, anna.id, "old@example.nl", EmailStatus.BOUNCED, at
        )
        assert await set_email_status(session, anna.id, "anna@example.nl", EmailStatus.BOUNCED, at)
    async with db.session() as session:
        stored = await session.get(Graduate, anna.id)
        assert stored is not None
        assert (stored.email_status, stored.email_status_at) == ("bounced", at)
