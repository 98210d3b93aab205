"""School staff (alumni officers, admins, programme teams, researchers and regional staff) and
their one-time invitation links."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, or_
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import Database
from storage.models import (
    Broadcast,
    DashboardLogin,
    Institution,
    Programme,
    Segment,
    Staff,
    StaffInvite,
    StaffRole,
)
from storage.queries import institution_by_code
from storage.types import utcnow

STAFF_INVITE_PREFIX = "t_"


class StaffError(ValueError):
    """A staff change that cannot be made."""


def new_staff_token() -> str:
    """'t_' + 190 random bits: 34 characters, a valid /start payload."""
    return STAFF_INVITE_PREFIX + secrets.token_urlsafe(24)


ROLE_NAMES = ", ".join(role.value for role in StaffRole)


def _role(value: str) -> StaffRole:
    try:
        return StaffRole(value.strip().lower())
    except ValueError:
        raise StaffError(f"role must be one of {ROLE_NAMES}, not {value!r}") from None


async def _school(session: AsyncSession, role: StaffRole, code: str | None) -> Institution | None:
    if not code:
        if role is StaffRole.OFFICER:
            raise StaffError("an officer needs a school (--school CODE)")
        if role is StaffRole.PROGRAMME:
            raise StaffError("a programme team needs a school (--school CODE)")
        return None
    if role is StaffRole.REGIONAL:
        raise StaffError("regional staff see a group of schools: give them with --schools A,B")
    school = await institution_by_code(session, code.strip())
    if school is None:
        raise StaffError(f"no school {code!r}")
    return school


@dataclass(frozen=True)
class Reach:
    """Where a staff member's access reaches: one school (or all), and a programme team's
    programmes or a regional staff member's schools."""

    institution_id: int | None
    programme_ids: list[int] | None
    school_ids: list[int] | None


def codes(values: Sequence[str] | str | None) -> list[str]:
    """Codes given as a list or as "A,B" (blanks dropped, order kept, no repeats)."""
    if values is None:
        return []
    items = values.split(",") if isinstance(values, str) else list(values)
    seen: list[str] = []
    for item in items:
        code = item.strip()
        if code and code not in seen:
            seen.append(code)
    return seen


async def _reach(
    session: AsyncSession,
    role: StaffRole,
    school_code: str | None,
    programmes: Sequence[str] | str | None,
    schools: Sequence[str] | str | None,
) -> Reach:
    school = await _school(session, role, school_code)
    programme_codes, school_codes = codes(programmes), codes(schools)
    if programme_codes and role is not StaffRole.PROGRAMME:
        raise StaffError("only a programme team has programmes (--programmes)")
    if school_codes and role is not StaffRole.REGIONAL:
        raise StaffError("only regional staff have a group of schools (--schools)")
    programme_ids: list[int] | None = None
    school_ids: list[int] | None = None
    if role is StaffRole.PROGRAMME:
        assert school is not None and school.id is not None
        if not programme_codes:
            raise StaffError("a programme team needs its programmes (--programmes P1,P2)")
        programme_ids = []
        for code in programme_codes:
            found = (
                await session.exec(
                    select(Programme).where(
                        Programme.institution_id == school.id, Programme.code == code
                    )
                )
            ).first()
            if found is None or found.id is None:
                raise StaffError(f"no programme {code!r} at school {school.code!r}")
            programme_ids.append(found.id)
    if role is StaffRole.REGIONAL:
        if not school_codes:
            raise StaffError("regional staff need their schools (--schools A,B)")
        school_ids = []
        for code in school_codes:
            found_school = await institution_by_code(session, code)
            if found_school is None or found_school.id is None:
                raise StaffError(f"no school {code!r}")
            school_ids.append(found_school.id)
    return Reach(school.id if school else None, programme_ids, school_ids)


async def staff_of(session: AsyncSession, telegram_user_id: int) -> Staff | None:
    """The staff member with this Telegram account, or None (removed staff are no one's)."""
    result = await session.exec(
        select(Staff).where(
            col(Staff.telegram_user_id) == telegram_user_id, col(Staff.removed_at).is_(None)
        )
    )
    return result.first()


async def add_staff(
    db: Database,
    telegram_user_id: int,
    role: str,
    school_code: str | None = None,
    name: str | None = None,
    *,
    programmes: Sequence[str] | str | None = None,
    schools: Sequence[str] | str | None = None,
) -> tuple[Staff, bool]:
    """Add a staff member, or update the one with this Telegram id; (staff, created). A
    programme team is given its school and programmes (codes), regional staff their schools."""
    staff_role = _role(role)
    async with db.session() as session:
        reach = await _reach(session, staff_role, school_code, programmes, schools)
        staff = await staff_of(session, telegram_user_id)
        created = staff is None
        if staff is None:
            staff = Staff(telegram_user_id=telegram_user_id)
        staff.role = staff_role.value
        staff.institution_id = reach.institution_id
        staff.programme_ids = reach.programme_ids
        staff.school_ids = reach.school_ids
        if name:
            staff.name = name
        session.add(staff)
        await session.flush()
    return staff, created


@dataclass(frozen=True)
class StaffRow:
    staff: Staff
    school_code: str | None
    programme_codes: tuple[str, ...] = ()
    school_codes: tuple[str, ...] = ()


async def list_staff(db: Database) -> list[StaffRow]:
    async with db.session() as session:
        rows = (
            await session.exec(
                select(Staff, Institution)
                .join(Institution, isouter=True)
                .where(col(Staff.removed_at).is_(None))
                .order_by(col(Staff.institution_id), col(Staff.id))
            )
        ).all()
        programmes = {p.id: p.code for p in (await session.exec(select(Programme))).all()}
        schools = {i.id: i.code for i in (await session.exec(select(Institution))).all()}
    return [
        StaffRow(
            staff,
            school.code if school else None,
            tuple(programmes.get(i, f"#{i}") for i in staff.programme_ids or ()),
            tuple(schools.get(i, f"#{i}") for i in staff.school_ids or ()),
        )
        for staff, school in rows
    ]


async def remove_staff(db: Database, telegram_user_id: int, now: datetime | None = None) -> bool:
    """End a staff member's access at once, keeping what they did.

    In one transaction: every dashboard login link and session of theirs is deleted (an open
    session's cookie is refused on its next request, an unused link is unknown), the delivery
    reports of their news stop going to their chat, and their row goes. If they wrote news or
    saved segments, the row stays as a tombstone without Telegram id, name or language
    (`removed_at` set), so that those keep a creator, shown as a removed staff member. False
    if there is no such staff member."""
    at = now or utcnow()
    async with db.session() as session:
        staff = (
            await session.exec(
                select(Staff)
                .where(
                    col(Staff.telegram_user_id) == telegram_user_id,
                    col(Staff.removed_at).is_(None),
                )
                .with_for_update()
            )
        ).first()
        if staff is None:
            return False
        await session.exec(delete(DashboardLogin).where(col(DashboardLogin.staff_id) == staff.id))
        await session.exec(
            update(Broadcast)
            .where(col(Broadcast.report_chat_id) == telegram_user_id)
            .values(report_chat_id=None, report_message_id=None)
        )
        wrote = (
            await session.exec(select(Broadcast.id).where(Broadcast.created_by == staff.id))
        ).first() is not None or (
            await session.exec(select(Segment.id).where(Segment.created_by == staff.id))
        ).first() is not None
        if not wrote:
            await session.delete(staff)
            return True
        staff.telegram_user_id = None
        staff.name = None
        staff.language = None
        staff.removed_at = at
        session.add(staff)
    return True


async def purge_logins(db: Database, now: datetime) -> int:
    """Delete the dashboard login rows that can no longer open or hold a session: links never
    used and expired, and sessions ended or expired. The number deleted."""
    async with db.session() as session:
        result = await session.exec(
            delete(DashboardLogin).where(
                or_(
                    and_(
                        col(DashboardLogin.used_at).is_(None),
                        col(DashboardLogin.expires_at) <= now,
                    ),
                    and_(
                        col(DashboardLogin.used_at).is_not(None),
                        or_(
                            col(DashboardLogin.ended_at).is_not(None),
                            col(DashboardLogin.session_expires_at).is_(None),
                            col(DashboardLogin.session_expires_at) <= now,
                        ),
                    ),
                )
            )
        )
    return int(result.rowcount or 0)


async def create_invite(
    db: Database,
    role: str,
    school_code: str | None,
    hours: float,
    now: datetime,
    *,
    programmes: Sequence[str] | str | None = None,
    schools: Sequence[str] | str | None = None,
) -> StaffInvite:
    if hours <= 0:
        raise StaffError("--hours must be more than 0")
    staff_role = _role(role)
    async with db.session() as session:
        reach = await _reach(session, staff_role, school_code, programmes, schools)
        invite = StaffInvite(
            token=new_staff_token(),
            role=staff_role.value,
            institution_id=reach.institution_id,
            programme_ids=reach.programme_ids,
            school_ids=reach.school_ids,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
        session.add(invite)
        await session.flush()
    return invite


class InviteResult(StrEnum):
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"


async def accept_invite(
    session: AsyncSession,
    token: str,
    telegram_user_id: int,
    *,
    name: str | None,
    language: str | None,
    now: datetime,
) -> tuple[InviteResult, Staff | None]:
    """Make whoever opened the link staff, once. A used, expired or unknown token changes
    nothing."""
    invite = (
        await session.exec(select(StaffInvite).where(StaffInvite.token == token).with_for_update())
    ).first()
    if invite is None:
        return InviteResult.UNKNOWN, None
    if invite.used_at is not None:
        return InviteResult.USED, None
    if invite.expires_at <= now:
        return InviteResult.EXPIRED, None
    staff = await staff_of(session, telegram_user_id)
    if staff is None:
        staff = Staff(telegram_user_id=telegram_user_id, name=name, language=language)
    staff.role = invite.role
    staff.institution_id = invite.institution_id
    staff.programme_ids = invite.programme_ids
    staff.school_ids = invite.school_ids
    staff.language = staff.language or language
    staff.name = staff.name or name
    invite.used_at = now
    invite.used_by = telegram_user_id
    session.add(staff)
    session.add(invite)
    await session.flush()
    return InviteResult.ACCEPTED, staff
