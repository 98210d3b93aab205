"""Schools and their programmes: validated upserts and the listing `gradtrack school list` shows.

Each function opens its own transaction on the given Database; the CLI stays a thin shell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from conversations.programme_kinds import (
    PATHWAYS,
    VET_KINDS,
    ProgrammeKindError,
    isco_text,
    parse_isco_groups,
    parse_pathway,
    parse_vet_kind,
)
from conversations.questionnaire import (
    ChoiceLabelError,
    Questionnaire,
    check_choice_label,
)
from conversations.rules import LANGUAGES, school_payload
from storage.db import Database
from storage.models import Graduate, Institution, Programme, SchoolChoiceLabel
from storage.queries import SCHOOL_SEEN
from storage.types import utcnow

# Lower case only: the code goes into join links (`s_<code>`), which people type and read out.
SCHOOL_CODE_PATTERN = re.compile(r"^[a-z0-9-]{2,32}$")
# Programme codes are the school's own (CREBO numbers, "ICT4", ...): no spaces, fits the column.
PROGRAMME_CODE_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
COUNTRY_PATTERN = re.compile(r"^[A-Z]{2}$")
NAME_MAX = 200
#: A privacy contact or DPO contact: an e-mail address or a postal address on one line.
CONTACT_MAX = 300

# Defaults when a new school is added without --language / --timezone.
COUNTRY_DEFAULTS: dict[str, tuple[str, str]] = {
    "NL": ("nl", "Europe/Amsterdam"),
    "ES": ("es", "Europe/Madrid"),
    "EE": ("et", "Europe/Tallinn"),
    "IT": ("it", "Europe/Rome"),
}


class SchoolError(ValueError):
    """A school or programme that cannot be stored as given; the message says why."""


@dataclass(frozen=True)
class Upserted:
    """What an upsert did: `created` False means an existing row was updated (or unchanged)."""

    id: int
    code: str
    created: bool
    changed: tuple[str, ...]


@dataclass(frozen=True)
class ProgrammeListing:
    code: str
    name: str
    eqf_level: int | None
    field: str | None
    active: bool
    isco_groups: str | None = None
    pathway: str | None = None
    vet_kind: str | None = None


@dataclass(frozen=True)
class SchoolListing:
    code: str
    name: str
    country: str
    language: str
    timezone: str
    join_payload: str
    programmes: tuple[ProgrammeListing, ...]
    legal_name: str | None = None
    privacy_contact: str | None = None
    dpo_contact: str | None = None


def normalise_school_code(code: str) -> str:
    """A school code as stored: trimmed and lower case; SchoolError if it can't be one."""
    value = code.strip().lower()
    if not SCHOOL_CODE_PATTERN.match(value):
        raise SchoolError(
            f"school code {code!r}: use 2 to 32 characters a-z, 0-9 and '-' "
            "(it becomes the join link s_<code>)"
        )
    return value


def _check_name(name: str, what: str) -> str:
    value = " ".join(name.split())
    if not value:
        raise SchoolError(f"{what} name is empty")
    if len(value) > NAME_MAX:
        raise SchoolError(f"{what} name is longer than {NAME_MAX} characters")
    return value


def _check_country(country: str) -> str:
    value = country.strip().upper()
    if not COUNTRY_PATTERN.match(value):
        raise SchoolError(f"country {country!r}: use the ISO 3166-1 alpha-2 code, e.g. NL")
    return value


def _check_language(language: str) -> str:
    value = language.strip().lower()
    if value not in LANGUAGES:
        raise SchoolError(f"language {language!r}: use one of {', '.join(LANGUAGES)}")
    return value


def _check_timezone(timezone: str) -> str:
    value = timezone.strip()
    # ZoneInfo also accepts paths like "../x" on some systems; the list is the authority.
    if value not in available_timezones():
        raise SchoolError(f"time zone {timezone!r}: use an IANA name, e.g. Europe/Amsterdam")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise SchoolError(f"time zone {timezone!r}: {error}") from error
    return value


def _check_contact(text: str, what: str) -> str | None:
    """A contact as stored: whitespace folded to single spaces; empty clears it (None)."""
    value = " ".join(text.split())
    if len(value) > CONTACT_MAX:
        raise SchoolError(f"{what} is longer than {CONTACT_MAX} characters")
    return value or None


def _check_eqf(level: int) -> int:
    if not 1 <= level <= 8:
        raise SchoolError(f"EQF level {level}: use a level from 1 to 8")
    return level


def check_isco_groups(text: str) -> str | None:
    """ISCO-08 major groups as stored ('5,7'); empty clears them (None)."""
    try:
        return isco_text(parse_isco_groups(text))
    except ProgrammeKindError as error:
        raise SchoolError(
            f"ISCO groups {text!r}: {error.value!r} is not an ISCO-08 major group; "
            "use digits 0-9, e.g. '5' or '5,7' (a longer ISCO code counts as its first digit)"
        ) from None


def check_pathway(text: str) -> str | None:
    """school_based or work_based (BOL, BBL, dual…); empty clears it (None)."""
    value = parse_pathway(text)
    if value is None:
        raise SchoolError(
            f"pathway {text!r}: use {' or '.join(PATHWAYS)} (BOL / BBL, FP / FP dual are "
            "understood)"
        )
    return value or None


def check_vet_kind(text: str) -> str | None:
    """ivet or cvet (initial, continuing…); empty clears it (None)."""
    value = parse_vet_kind(text)
    if value is None:
        raise SchoolError(f"VET kind {text!r}: use {' or '.join(VET_KINDS)} (initial, continuing)")
    return value or None


async def upsert_school(
    db: Database,
    code: str,
    *,
    name: str | None = None,
    country: str | None = None,
    language: str | None = None,
    timezone: str | None = None,
    legal_name: str | None = None,
    privacy_contact: str | None = None,
    dpo_contact: str | None = None,
    must_exist: bool = False,
) -> Upserted:
    """Add the school `code`, or update the fields given of the existing one (`must_exist`:
    only update, as `gradtrack school set` does).

    A new school needs a name and a country; language and time zone default from the country
    for NL, ES, EE and IT and are required otherwise. The privacy notice's details (legal
    name, privacy contact, DPO contact) are optional; an empty value clears one.
    """
    code = normalise_school_code(code)
    values: dict[str, str | None] = {}
    if name is not None:
        values["name"] = _check_name(name, "school")
    if country is not None:
        values["country"] = _check_country(country)
    if language is not None:
        values["default_language"] = _check_language(language)
    if timezone is not None:
        values["timezone"] = _check_timezone(timezone)
    if legal_name is not None:
        values["legal_name"] = _check_name(legal_name, "legal") if legal_name.strip() else None
    if privacy_contact is not None:
        values["privacy_contact"] = _check_contact(privacy_contact, "privacy contact")
    if dpo_contact is not None:
        values["dpo_contact"] = _check_contact(dpo_contact, "DPO contact")
    async with db.session() as session:
        school = (await session.exec(select(Institution).where(Institution.code == code))).first()
        if school is None and must_exist:
            raise SchoolError(f"unknown school {code!r}; add it with `gradtrack school add`")
        if school is None:
            missing = [
                opt
                for opt, key in (("--name", "name"), ("--country", "country"))
                if key not in values
            ]
            if missing:
                raise SchoolError(f"new school {code!r} needs {' and '.join(missing)}")
            defaults = COUNTRY_DEFAULTS.get(str(values["country"]))
            for key, index, option in (
                ("default_language", 0, "--language"),
                ("timezone", 1, "--timezone"),
            ):
                if key not in values:
                    if defaults is None:
                        raise SchoolError(
                            f"new school {code!r} in {values['country']} needs {option}"
                        )
                    values[key] = defaults[index]
            school = Institution.model_validate({"code": code, **values})
            session.add(school)
            await session.flush()
            assert school.id is not None
            return Upserted(school.id, code, True, tuple(sorted(values)))
        changed = tuple(sorted(k for k, v in values.items() if getattr(school, k) != v))
        for key in changed:
            setattr(school, key, values[key])
        session.add(school)
        assert school.id is not None
        return Upserted(school.id, code, False, changed)


async def upsert_programme(
    db: Database,
    school_code: str,
    code: str,
    *,
    name: str | None = None,
    eqf_level: int | None = None,
    field: str | None = None,
    active: bool | None = None,
    isco_groups: str | None = None,
    pathway: str | None = None,
    vet_kind: str | None = None,
) -> Upserted:
    """Add programme `code` to a school, or update the fields given of the existing one.
    A new programme needs a name and an EQF level. An empty `field`, `isco_groups`, `pathway`
    or `vet_kind` clears it. `isco_groups`, `pathway` and `vet_kind` are read as people type
    them (conversations/programme_kinds.py: "5;7", "ISCO 5", "BOL", "BBL", "IVET")."""
    school_code = normalise_school_code(school_code)
    code = code.strip()
    if not PROGRAMME_CODE_PATTERN.match(code):
        raise SchoolError(
            f"programme code {code!r}: use 1 to 64 characters A-Z, a-z, 0-9, '.', '_' and '-'"
        )
    values: dict[str, object] = {}
    if name is not None:
        values["name"] = _check_name(name, "programme")
    if eqf_level is not None:
        values["eqf_level"] = _check_eqf(eqf_level)
    if field is not None:
        cleaned = " ".join(field.split())
        if len(cleaned) > NAME_MAX:
            raise SchoolError(f"field is longer than {NAME_MAX} characters")
        values["field"] = cleaned or None
    if active is not None:
        values["active"] = active
    if isco_groups is not None:
        values["isco_groups"] = check_isco_groups(isco_groups)
    if pathway is not None:
        values["pathway"] = check_pathway(pathway)
    if vet_kind is not None:
        values["vet_kind"] = check_vet_kind(vet_kind)
    async with db.session() as session:
        school = (
            await session.exec(select(Institution).where(Institution.code == school_code))
        ).first()
        if school is None:
            raise SchoolError(f"unknown school {school_code!r}; add it with `gradtrack school add`")
        assert school.id is not None
        programme = (
            await session.exec(
                select(Programme).where(
                    Programme.institution_id == school.id, Programme.code == code
                )
            )
        ).first()
        if programme is None:
            missing = [
                opt
                for opt, key in (("--name", "name"), ("--eqf", "eqf_level"))
                if key not in values
            ]
            if missing:
                raise SchoolError(f"new programme {code!r} needs {' and '.join(missing)}")
            programme = Programme.model_validate(
                {"institution_id": school.id, "code": code, **values}
            )
            session.add(programme)
            await session.flush()
            assert programme.id is not None
            return Upserted(programme.id, code, True, tuple(sorted(values)))
        changed = tuple(sorted(k for k, v in values.items() if getattr(programme, k) != v))
        for key in changed:
            setattr(programme, key, values[key])
        session.add(programme)
        assert programme.id is not None
        return Upserted(programme.id, code, False, changed)


async def list_schools(db: Database) -> list[SchoolListing]:
    """Every school, by code, with its programmes by code."""
    async with db.session() as session:
        schools: Sequence[Institution] = (
            await session.exec(select(Institution).order_by(col(Institution.code)))
        ).all()
        programmes: Sequence[Programme] = (
            await session.exec(select(Programme).order_by(col(Programme.code)))
        ).all()
    by_school: dict[int, list[ProgrammeListing]] = {}
    for p in programmes:
        by_school.setdefault(p.institution_id, []).append(
            ProgrammeListing(
                p.code,
                p.name,
                p.eqf_level,
                p.field,
                p.active,
                p.isco_groups,
                p.pathway,
                p.vet_kind,
            )
        )
    return [
        SchoolListing(
            code=s.code,
            name=s.name,
            country=s.country,
            language=s.default_language,
            timezone=s.timezone,
            join_payload=school_payload(s.code),
            programmes=tuple(by_school.get(s.id or 0, ())),
            legal_name=s.legal_name,
            privacy_contact=s.privacy_contact,
            dpo_contact=s.dpo_contact,
        )
        for s in schools
    ]


async def get_school(db: Database, code: str) -> Institution:
    """One school by its code (as `gradtrack school show` prints it); SchoolError if unknown."""
    code = normalise_school_code(code)
    async with db.session() as session:
        school = (await session.exec(select(Institution).where(Institution.code == code))).first()
    if school is None:
        raise SchoolError(f"unknown school {code!r}; add it with `gradtrack school add`")
    return school


# --- a school's own choice labels -----------------------------------------------------------


@dataclass(frozen=True)
class OwnLabel:
    """A school's own label for a choice, as `gradtrack school labels` lists it."""

    list_name: str
    choice: str
    language: str
    label: str


async def _school_id(session: AsyncSession, code: str) -> int:
    code = normalise_school_code(code)
    school = (await session.exec(select(Institution).where(Institution.code == code))).first()
    if school is None or school.id is None:
        raise SchoolError(f"unknown school {code!r}; add it with `gradtrack school add`")
    return school.id


async def set_choice_label(
    db: Database,
    school_code: str,
    target: str,
    language: str,
    text: str,
    questionnaires: Sequence[Questionnaire],
) -> bool:
    """Give school `school_code` its own label for choice `target` (``LIST.CODE``) in
    `language`, checked against `questionnaires` (the deployed ones). True when the label is
    new or changed, False when it was already so. SchoolError with the reason otherwise."""
    try:
        list_name, choice, lang, label = check_choice_label(questionnaires, target, language, text)
    except ChoiceLabelError as error:
        raise SchoolError(str(error)) from None
    assert lang is not None and label is not None
    async with db.session() as session:
        school_id = await _school_id(session, school_code)
        row = (
            await session.exec(
                select(SchoolChoiceLabel).where(
                    SchoolChoiceLabel.institution_id == school_id,
                    SchoolChoiceLabel.list_name == list_name,
                    SchoolChoiceLabel.choice == choice,
                    SchoolChoiceLabel.language == lang,
                )
            )
        ).first()
        if row is not None and row.label == label:
            return False
        if row is None:
            row = SchoolChoiceLabel(
                institution_id=school_id,
                list_name=list_name,
                choice=choice,
                language=lang,
                label=label,
            )
        else:
            row.label = label
            row.updated_at = utcnow()
        session.add(row)
        return True


async def remove_choice_label(
    db: Database,
    school_code: str,
    target: str,
    language: str | None,
    questionnaires: Sequence[Questionnaire],
) -> int:
    """Remove the school's own labels for choice `target` (in `language`, or in every
    language when None); the questionnaire's label shows again. The number removed."""
    try:
        list_name, choice, language, _ = check_choice_label(questionnaires, target, language)
    except ChoiceLabelError as error:
        raise SchoolError(str(error)) from None
    async with db.session() as session:
        school_id = await _school_id(session, school_code)
        query = select(SchoolChoiceLabel).where(
            SchoolChoiceLabel.institution_id == school_id,
            SchoolChoiceLabel.list_name == list_name,
            SchoolChoiceLabel.choice == choice,
        )
        if language is not None:
            query = query.where(SchoolChoiceLabel.language == language)
        rows = (await session.exec(query)).all()
        for row in rows:
            await session.delete(row)
        return len(rows)


async def list_choice_labels(db: Database, school_code: str) -> list[OwnLabel]:
    """The school's own choice labels, by list, choice and language."""
    async with db.session() as session:
        school_id = await _school_id(session, school_code)
        rows = (
            await session.exec(
                select(SchoolChoiceLabel)
                .where(SchoolChoiceLabel.institution_id == school_id)
                .order_by(
                    col(SchoolChoiceLabel.list_name),
                    col(SchoolChoiceLabel.choice),
                    col(SchoolChoiceLabel.language),
                )
            )
        ).all()
    return [OwnLabel(r.list_name, r.choice, r.language, r.label) for r in rows]


async def for_graduate(
    session: AsyncSession, questionnaire: Questionnaire, graduate: Graduate | None
) -> Questionnaire:
    """`questionnaire` as `graduate` sees it: choices in the variant of the country of their
    programme's school, with that school's own labels (Questionnaire.for_school)."""
    if graduate is None:
        return questionnaire
    seen = session.info.get(SCHOOL_SEEN, {}).get(graduate.id)
    database = str(session.bind.sync_engine.url) if session.bind is not None else ""
    key = (database, seen.institution_id if seen is not None else 0)
    if seen is not None:
        cached = _labels_seen.get(key)
        if cached is not None and cached[0] == seen.stamp:
            return questionnaire.for_school(seen.country, cached[1])
    # One round trip (this runs on every answer): the school's country and its own labels.
    rows = (
        await session.exec(
            select(Institution.country, SchoolChoiceLabel)
            .select_from(Programme)
            .join(Institution, col(Institution.id) == col(Programme.institution_id))
            .outerjoin(
                SchoolChoiceLabel,
                col(SchoolChoiceLabel.institution_id) == col(Institution.id),
            )
            .where(Programme.id == graduate.programme_id)
        )
    ).all()
    if not rows:
        return questionnaire
    own: dict[tuple[str, str], dict[str, str]] = {}
    labels = [row for _country, row in rows if row is not None]
    for row in labels:
        own.setdefault((row.list_name, row.choice), {})[row.language] = row.label
    if seen is not None:
        # Kept under the stamp of the labels read here (as `chat_context` reads it).
        stamp = (
            len(labels),
            max((row.id for row in labels if row.id is not None), default=None),
            max((row.updated_at for row in labels), default=None),
        )
        _labels_seen[key] = (stamp, own)
    return questionnaire.for_school(rows[0][0], own)


#: The schools' own choice labels as last read by this process, by database and school:
#: (their stamp, the labels). Used only while the stamp a transaction reads
#: (storage.queries.SchoolSeen) is the same, so a label changed in any process is shown from
#: the next answer on.
_OwnLabels = dict[tuple[str, str], dict[str, str]]
_labels_seen: dict[tuple[str, int], tuple[tuple[Any, ...], _OwnLabels]] = {}


async def school_questionnaires(
    session: AsyncSession, questionnaire: Questionnaire
) -> dict[str, Questionnaire]:
    """`questionnaire` as each school shows it, by school code (for exports)."""
    schools = (await session.exec(select(Institution))).all()
    rows = (await session.exec(select(SchoolChoiceLabel))).all()
    own: dict[int, dict[tuple[str, str], dict[str, str]]] = {}
    for row in rows:
        own.setdefault(row.institution_id, {}).setdefault((row.list_name, row.choice), {})[
            row.language
        ] = row.label
    return {
        school.code: questionnaire.for_school(school.country, own.get(school.id or 0))
        for school in schools
    }
