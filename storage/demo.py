"""A demo school, programmes and graduate, so `make run` has something to talk about.

Whatever the day, the demo works end to end: the graduate handed out with each demo invite
graduated just so long ago that a tracking wave of the demo school's plan is open today (with
its invitation row), and the school has finished responses in several programmes (more than
five each, with varied answers), so that the dashboard and /stats show real numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import col, func, select

from conversations import engine
from conversations.questionnaire import load_questionnaire
from conversations.registry import QUESTIONNAIRES_DIR
from conversations.rules import new_invite_token
from conversations.waves import DEFAULT_PLAN_FILE, Plan, WavePlans, load_plans, schedule
from storage.db import Database
from storage.invitations import plan_invitations
from storage.models import (
    Answer,
    Graduate,
    Institution,
    Invitation,
    InvitationStatus,
    Programme,
    ResponseChannel,
    ResponseStatus,
    SurveyResponse,
)
from storage.types import utcnow

DEMO_SCHOOL_CODE = "demo"
DEMO_TIMEZONE = "Europe/Amsterdam"
SEED_PREFIX = "seed-"
"""Student refs of the graduates with finished responses (never handed out as invites)."""

DEMO_PROGRAMMES: tuple[tuple[str, str, int, str], ...] = (
    ("CHEF4", "Cook (level 4)", 4, "Hotel, restaurants and catering"),
    ("ICT4", "Software developer (level 4)", 4, "Software and applications development"),
    ("NURSE4", "Nurse (level 4)", 4, "Nursing and midwifery"),
    ("MECH3", "Mechatronics technician (level 3)", 3, "Electronics and automation"),
)

# What each programme trains for and how (ISCO-08 major groups, pathway, VET kind), so the
# demo shows 6a "in the occupation trained for" and the pathway breakdown.
DEMO_KINDS: dict[str, tuple[str, str, str]] = {
    "CHEF4": ("5", "school_based", "ivet"),
    "ICT4": ("2,3", "school_based", "ivet"),
    "NURSE4": ("2,3", "work_based", "ivet"),
    "MECH3": ("3,7", "work_based", "ivet"),
}

EMPLOYED = ("employed", "self_employed", "working_and_studying")
STUDYING = ("studying", "working_and_studying")

# Per seeded programme: the finished responses (activity, E6 related, E7 relevant), and one
# response left halfway. Different mixes per programme, so the breakdowns differ.
_C, _P, _N = "completely", "partly", "not_at_all"
_LOT, _LITTLE = "a_lot", "a_little"
SEEDED: dict[str, tuple[tuple[str, str | None, str | None], ...]] = {
    "CHEF4": (
        ("employed", _C, _LOT),
        ("employed", _C, _LOT),
        ("employed", _P, _LITTLE),
        ("employed", _N, _N),
        ("self_employed", _C, _LOT),
        ("working_and_studying", _P, _LOT),
        ("studying", None, None),
        ("unemployed_looking", None, None),
    ),
    "ICT4": (
        ("employed", _C, _LOT),
        ("employed", _C, _LITTLE),
        ("employed", _C, _LOT),
        ("working_and_studying", _C, _LOT),
        ("working_and_studying", _P, _LITTLE),
        ("studying", None, None),
        ("studying", None, None),
    ),
    "NURSE4": (
        ("employed", _C, _LOT),
        ("employed", _C, _LOT),
        ("employed", _C, _LOT),
        ("employed", _P, _LOT),
        ("employed", _C, _LITTLE),
        ("working_and_studying", _C, _LOT),
        ("other", None, None),
    ),
}

# Answers to A4 ("what should your programme do better"), given by every other seeded
# graduate, so that each programme's comments page has some to read and tag (issue 18).
DEMO_COMMENTS = (
    "More time in a real workplace, less theory in class.",
    "The work placement was too short.",
    "Teachers should know the newest equipment.",
    "Help with finding a job in the last year.",
)


@dataclass(frozen=True)
class DemoInfo:
    school_code: str
    invite_token: str
    graduate_name: str
    graduation_date: date | None = None
    wave: str | None = None
    """The wave open today for the demo graduate."""


def open_wave_graduation(plan: Plan, now: datetime, timezone: str) -> tuple[date, str] | None:
    """A graduation date for which a wave of `plan` is open at `now`, as far from its opening
    and its closing as can be (so that it stays open for the demo's whole day and more), and
    that wave. Tracking waves that need only the survey consent come first."""
    best: tuple[tuple[bool, bool, timedelta], date, str] | None = None
    wanted = {w.name: w for w in plan.waves}
    today = now.date()
    for days in range(-400, 800, 1):
        graduation = today - timedelta(days=days)
        for item in schedule(plan, graduation, timezone):
            if item.seq != 0 or not item.due_at < now < item.closes_at:
                continue
            wave = wanted[item.wave]
            margin = min(now - item.due_at, item.closes_at - now)
            key = (wave.questionnaire == "tracking", wave.consent == "survey", margin)
            if best is None or key > best[0]:
                best = (key, graduation, item.wave)
    return (best[1], best[2]) if best else None


def _answers(
    activity: str, related: str | None, relevant: str | None, programme: str = ""
) -> dict[str, Any]:
    answers: dict[str, Any] = {"C0": "yes", "Q1": activity}
    if activity in EMPLOYED:
        answers |= {"E1": "under_1_month", "E2": "permanent", "E6": related, "E7": relevant}
        # The occupation (E4b) in a group the programme trains for, unless the work is not
        # related to the training at all (then elementary work).
        trained = DEMO_KINDS.get(programme, ("9", "", ""))[0].split(",")[0]
        answers["E4b"] = f"isco{trained if related != 'not_at_all' else '9'}"
    if activity in STUDYING:
        answers["S1"] = "higher_vet"
    if activity == "unemployed_looking":
        answers["U1"] = 3
    if activity == "other":
        answers["O1"] = "caring"
    # A8, satisfaction with the skills acquired (EQAVET 6b1), is asked of everyone: the demo
    # ties it to the use of skills where there is one, so the figures tell one story.
    answers["A8"] = {_LOT: 5, _LITTLE: 4, _N: 2}.get(relevant or "", 3)
    return answers


async def _seed_responses(
    db: Database, school: Institution, plan: Plan, graduation: date, wave: str, now: datetime
) -> int:
    """Finished responses in several programmes, once (later calls find them and stop).
    Returns how many responses were written."""
    assert school.id is not None
    opens_at, closes_at = next(
        (item.due_at, item.closes_at)
        for item in schedule(plan, graduation, school.timezone)
        if item.wave == wave and item.seq == 0
    )
    tracking = load_questionnaire(QUESTIONNAIRES_DIR / "tracking.yaml")
    written = 0
    async with db.session() as session:
        seeded = (
            await session.exec(
                select(func.count())
                .select_from(Graduate)
                .where(
                    Graduate.institution_id == school.id,
                    col(Graduate.student_ref).startswith(SEED_PREFIX),
                )
            )
        ).one()
        if seeded:
            return 0
        programmes = {
            p.code: p
            for p in (
                await session.exec(select(Programme).where(Programme.institution_id == school.id))
            ).all()
        }
        for code, rows in SEEDED.items():
            programme = programmes.get(code)
            if programme is None or programme.id is None:
                continue
            for k, (activity, related, relevant) in enumerate([*rows, ("", None, None)]):
                graduate = Graduate(
                    institution_id=school.id,
                    programme_id=programme.id,
                    student_ref=f"{SEED_PREFIX}{code.lower()}-{k + 1}",
                    name=f"{code} graduate {k + 1}",
                    graduation_date=graduation,
                    gender=("female", "male")[k % 2],
                    birth_year=graduation.year - 19 - k % 4,
                )
                session.add(graduate)
                await session.flush()
                assert graduate.id is not None
                # Answered after the invitation went out, a day or more apart.
                when = max(now - timedelta(days=1 + k, hours=k), opens_at + timedelta(hours=k + 1))
                session.add(
                    Invitation(
                        graduate_id=graduate.id,
                        wave=wave,
                        form_id=tracking.form_id,
                        due_at=opens_at,
                        closes_at=closes_at,
                        status=InvitationStatus.SENT.value,
                        sent_at=opens_at,
                    )
                )
                halfway = not activity
                answers = (
                    {"C0": "yes", "Q1": "employed"}
                    if halfway
                    else _answers(activity, related, relevant, code)
                )
                complete = not halfway and engine.is_complete(
                    tracking, engine.relevant_answers(tracking, answers)
                )
                response = SurveyResponse(
                    graduate_id=graduate.id,
                    form_id=tracking.form_id,
                    version=tracking.version,
                    wave=wave,
                    language=school.default_language,
                    # They have no Telegram chat: answered through their web link.
                    channel=ResponseChannel.WEB.value,
                    status=ResponseStatus.OPEN.value if halfway else ResponseStatus.SUBMITTED.value,
                    current="E1" if halfway else "",
                    complete=complete,
                    started_at=when - timedelta(minutes=5),
                    updated_at=when,
                    completed_at=when if complete else None,
                    submitted_at=None if halfway else when,
                )
                session.add(response)
                await session.flush()
                assert response.id is not None
                if not halfway and k % 2 == 0:
                    answers["A4"] = DEMO_COMMENTS[k // 2 % len(DEMO_COMMENTS)]
                for question, value in answers.items():
                    session.add(Answer(response_id=response.id, question=question, value=value))
                written += 1
    return written


async def ensure_demo(
    db: Database,
    plans: WavePlans | None = None,
    now: datetime | None = None,
    *,
    email: bool = False,
) -> DemoInfo:
    """Seed the demo school once; hand out a fresh, unused demo invite on every call, whose
    graduate has a wave open `now` (with its invitation rows planned). With `email` (what
    `gradtrack run` does in the sandbox), the graduate has an e-mail address
    (`demo-N@example.org`): not being in a chat, they get the wave's invitation by e-mail,
    which the sandbox's local mailbox shows."""
    now = now or utcnow()
    plans = plans or load_plans(DEFAULT_PLAN_FILE)
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
                timezone=DEMO_TIMEZONE,
                privacy_contact="privacy@demo-college.example",
            )
            session.add(school)
            await session.flush()
            assert school.id is not None
            for code, name, level, field in DEMO_PROGRAMMES:
                isco, pathway, kind = DEMO_KINDS[code]
                session.add(
                    Programme(
                        institution_id=school.id,
                        code=code,
                        name=name,
                        eqf_level=level,
                        field=field,
                        isco_groups=isco,
                        pathway=pathway,
                        vet_kind=kind,
                    )
                )
            await session.flush()
        assert school.id is not None
        programme = (
            await session.exec(
                select(Programme)
                .where(Programme.institution_id == school.id)
                .order_by(col(Programme.id))
                .limit(1)
            )
        ).one()
        assert programme.id is not None
        plan = plans.for_graduate(school.code, programme.code)
        found = open_wave_graduation(plan, now, school.timezone)
        graduation, wave = found if found else (date(now.year, 6, 30), None)
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
            refs = set(
                (
                    await session.exec(
                        select(Graduate.student_ref).where(
                            Graduate.institution_id == school.id,
                            col(Graduate.student_ref).startswith("demo-"),
                        )
                    )
                ).all()
            )
            number = len(refs) + 1
            while f"demo-{number}" in refs:
                number += 1
            unused = Graduate(
                institution_id=school.id,
                programme_id=programme.id,
                student_ref=f"demo-{number}",
                name=f"Demo Graduate {number}",
                graduation_date=graduation,
                birth_year=graduation.year - 19,
                invite_token=new_invite_token(),
                email=f"demo-{number}@example.org" if email else None,
            )
        elif unused.graduation_date != graduation:
            # Handed out on another day: graduated just long enough ago for today.
            stale = await session.exec(
                select(Invitation).where(Invitation.graduate_id == unused.id)
            )
            for invitation in stale.all():
                await session.delete(invitation)
            unused.graduation_date = graduation
        if email and unused.email is None:
            unused.email = f"{unused.student_ref}@example.org"
        session.add(unused)
        await session.flush()
        assert unused.id is not None and unused.invite_token is not None
        info = DemoInfo(DEMO_SCHOOL_CODE, unused.invite_token, unused.name or "", graduation, wave)
        demo_id = unused.id
    if wave is not None:
        await _seed_responses(db, school, plan, graduation, wave, now)
    await plan_invitations(db, plans, now=now, graduate_ids=[demo_id])
    return info
