"""A demo school, programmes and graduate, so `make run` has something to talk about."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import col, func, select

from conversations.rules import new_invite_token
from storage.db import Database
from storage.models import Graduate, Institution, Programme

DEMO_SCHOOL_CODE = "demo"

DEMO_PROGRAMMES: tuple[tuple[str, str, int, str], ...] = (
    ("CHEF4", "Cook (level 4)", 4, "Hotel, restaurants and catering"),
    ("ICT4", "Software developer (level 4)", 4, "Software and applications development"),
    ("NURSE4", "Nurse (level 4)", 4, "Nursing and midwifery"),
    ("MECH3", "Mechatronics technician (level 3)", 3, "Electronics and automation"),
)


@dataclass(frozen=True)
class DemoInfo:
    school_code: str
    invite_token: str
    graduate_name: str


async def ensure_demo(db: Database) -> DemoInfo:
    """Seed the demo school once; hand out a fresh, unused demo invite on every call."""
    async with db.session() as session:
        school = (
            await session.exec(select(Institution).where(Institution.code == DEMO_SCHOOL_CODE))
        ).first()
        if school is None:
            school = Institution(
                code=DEMO_SCHOOL_CODE,
                name="Demo Vocational College",
                country="NL",
                default_language="en",
                timezone="Europe/Amsterdam",
            )
            session.add(school)
            await session.flush()
            assert school.id is not None
            for code, name, level, field in DEMO_PROGRAMMES:
                session.add(
                    Programme(
                        institution_id=school.id, code=code, name=name, eqf_level=level, field=field
                    )
                )
            await session.flush()
        assert school.id is not None
        unused = (
            await session.exec(
                select(Graduate).where(
                    Graduate.institution_id == school.id,
                    col(Graduate.student_ref).startswith("demo-"),
                    col(Graduate.chat_id).is_(None),
                    col(Graduate.invite_revoked_at).is_(None),
                )
            )
        ).first()
        if unused is None:
            count = (
                await session.exec(
                    select(func.count())
                    .select_from(Graduate)
                    .where(Graduate.institution_id == school.id)
                )
            ).one()
            programme = (
                await session.exec(
                    select(Programme).where(Programme.institution_id == school.id).limit(1)
                )
            ).one()
            assert programme.id is not None
            unused = Graduate(
                institution_id=school.id,
                programme_id=programme.id,
                student_ref=f"demo-{count + 1}",
                name=f"Demo Graduate {count + 1}",
                graduation_date=date(date.today().year, 6, 30),
                birth_year=date.today().year - 19,
                invite_token=new_invite_token(),
            )
            session.add(unused)
        assert unused.invite_token is not None
        return DemoInfo(DEMO_SCHOOL_CODE, unused.invite_token, unused.name or "")
