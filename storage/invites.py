"""Personal invitations: who gets which deep link, per class; revoking and renewing links.

A class is one school + programme + graduation year. Revoked invitations are left out, and so
are graduates who opted out without a linked chat (erased ones among them); graduates who
already linked their chat are listed as connected, without a link. The printed
sheets and CSV files are made from these lists by `storage.invite_sheets`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from conversations.rules import new_invite_token
from storage.db import Database
from storage.models import Graduate, Institution, Programme
from storage.queries import retire_link
from storage.types import utcnow


class InviteError(ValueError):
    """An invitation request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class InviteEntry:
    student_ref: str
    name: str
    graduation_date: date
    token: str | None  # None when connected
    connected: bool


@dataclass(frozen=True)
class InviteClass:
    school_code: str
    school_name: str
    programme_code: str
    programme_name: str
    eqf_level: int | None
    year: int
    entries: tuple[InviteEntry, ...]
    #: The school's language: the printed sheet speaks it.
    language: str = "en"

    @property
    def slug(self) -> str:
        """A file name stem: school_programme_year, safe on every file system."""
        raw = f"{self.school_code}_{self.programme_code}_{self.year}"
        return re.sub(r"[^A-Za-z0-9_-]+", "-", raw)

    @property
    def invited(self) -> tuple[InviteEntry, ...]:
        return tuple(e for e in self.entries if not e.connected)

    @property
    def connected(self) -> tuple[InviteEntry, ...]:
        return tuple(e for e in self.entries if e.connected)


@dataclass(frozen=True)
class InviteState:
    """One graduate's invitation after a revoke or renew."""

    school_code: str
    student_ref: str
    name: str
    token: str | None
    revoked_at: datetime | None
    connected: bool


async def _school(session: AsyncSession, code: str) -> Institution:
    school = (
        await session.exec(select(Institution).where(Institution.code == code.strip().lower()))
    ).first()
    if school is None:
        raise InviteError(f"unknown school {code!r}")
    return school


async def invite_classes(
    db: Database,
    *,
    school_code: str | None = None,
    programme_code: str | None = None,
    cohort: int | None = None,
) -> list[InviteClass]:
    """The classes to print, by school, programme and year; each graduate by name.

    Graduates without a token who have not linked a chat (rows made by other means than the
    roster import) are given one here, so that everybody listed has a working link.
    """
    async with db.session() as session:
        query = (
            select(Graduate, Programme, Institution)
            .join(Programme, col(Programme.id) == col(Graduate.programme_id))
            .join(Institution, col(Institution.id) == col(Graduate.institution_id))
            .where(col(Graduate.invite_revoked_at).is_(None))
            # Opted out with no chat: erased, or never to be contacted again. Not invited.
            .where(or_(col(Graduate.opted_out_at).is_(None), col(Graduate.chat_id).is_not(None)))
        )
        if school_code is not None:
            selected = await _school(session, school_code)
            query = query.where(Graduate.institution_id == selected.id)
        if programme_code is not None:
            matches = (
                await session.exec(select(Programme).where(Programme.code == programme_code))
            ).all()
            if school_code is not None:
                matches = [p for p in matches if p.institution_id == selected.id]
            if not matches:
                raise InviteError(f"unknown programme {programme_code!r}")
            query = query.where(col(Graduate.programme_id).in_([p.id for p in matches]))
        rows = (await session.exec(query)).all()
        now = utcnow()
        grouped: dict[tuple[str, str, int], list[InviteEntry]] = {}
        info: dict[tuple[str, str, int], tuple[Institution, Programme]] = {}
        for graduate, programme, school in rows:
            year = graduate.graduation_date.year
            if cohort is not None and year != cohort:
                continue
            connected = graduate.chat_id is not None
            if not connected and graduate.invite_token is None:
                graduate.invite_token = new_invite_token()
                graduate.updated_at = now
                session.add(graduate)
            key = (school.code, programme.code, year)
            info[key] = (school, programme)
            grouped.setdefault(key, []).append(
                InviteEntry(
                    student_ref=graduate.student_ref,
                    name=graduate.name or "",
                    graduation_date=graduate.graduation_date,
                    token=None if connected else graduate.invite_token,
                    connected=connected,
                )
            )
    classes = []
    for key in sorted(grouped):
        school, programme = info[key]
        entries = sorted(grouped[key], key=lambda e: (e.name.casefold(), e.student_ref))
        classes.append(
            InviteClass(
                school_code=school.code,
                school_name=school.name,
                programme_code=programme.code,
                programme_name=programme.name,
                eqf_level=programme.eqf_level,
                year=key[2],
                entries=tuple(entries),
                language=school.default_language,
            )
        )
    return classes


async def _graduate(session: AsyncSession, student_ref: str, school_code: str | None) -> Graduate:
    query = select(Graduate).where(Graduate.student_ref == student_ref.strip())
    if school_code is not None:
        school = await _school(session, school_code)
        query = query.where(Graduate.institution_id == school.id)
    found = (await session.exec(query)).all()
    if not found:
        where = f" at school {school_code!r}" if school_code else ""
        raise InviteError(f"no graduate with student_ref {student_ref!r}{where}")
    if len(found) > 1:
        raise InviteError(
            f"student_ref {student_ref!r} exists at {len(found)} schools: give --school"
        )
    return found[0]


async def _state(session: AsyncSession, graduate: Graduate) -> InviteState:
    school = await session.get(Institution, graduate.institution_id)
    assert school is not None
    return InviteState(
        school_code=school.code,
        student_ref=graduate.student_ref,
        name=graduate.name or "",
        token=graduate.invite_token,
        revoked_at=graduate.invite_revoked_at,
        connected=graduate.chat_id is not None,
    )


async def revoke_invite(
    db: Database, student_ref: str, *, school_code: str | None = None
) -> InviteState:
    """The graduate's link stops working (a chat already linked stays linked). Revoking twice
    keeps the first time."""
    async with db.session() as session:
        graduate = await _graduate(session, student_ref, school_code)
        if graduate.invite_revoked_at is None:
            graduate.invite_revoked_at = utcnow()
            graduate.updated_at = graduate.invite_revoked_at
            session.add(graduate)
        return await _state(session, graduate)


async def renew_invite(
    db: Database, student_ref: str, *, school_code: str | None = None
) -> InviteState:
    """A new link for the graduate; the old one stops working and a revocation is lifted."""
    async with db.session() as session:
        graduate = await _graduate(session, student_ref, school_code)
        if graduate.invite_token:
            await retire_link(session, graduate.invite_token, "replaced", utcnow())
        graduate.invite_token = new_invite_token()
        graduate.invite_revoked_at = None
        graduate.updated_at = utcnow()
        session.add(graduate)
        return await _state(session, graduate)
