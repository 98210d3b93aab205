"""Invitation and reminder rows: planning them from the wave plans, claiming the due ones.

Claiming is one UPDATE ... RETURNING of rows that are due (or whose claim is older than the
lease: the dispatcher that claimed them died), so two dispatchers never send the same row.
On PostgreSQL the candidates are selected FOR UPDATE SKIP LOCKED, so dispatchers do not wait
for each other.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from conversations.waves import WavePlans, schedule
from storage.db import Database
from storage.models import (
    Graduate,
    Institution,
    Invitation,
    InvitationStatus,
    Programme,
    ResponseStatus,
    SurveyResponse,
)

CLAIM_LEASE = timedelta(minutes=5)


async def plan_invitations(
    db: Database,
    plans: WavePlans,
    *,
    now: datetime,
    batch: int = 2000,
    graduate_ids: Collection[int] | None = None,
    institution_ids: Collection[int] | None = None,
) -> int:
    """Create the invitation and reminder rows every contactable graduate (or those of
    `graduate_ids`, or of the schools of `institution_ids`: the ones just imported,
    registered or linked, so that they can answer
    at once rather than after the next planning run) is owed and does not have yet. Waves
    already closed are left out, and so are reminders already past. Returns how many rows
    were created."""
    created = 0
    last_id = 0
    only = [col(Graduate.id).in_(list(graduate_ids))] if graduate_ids is not None else []
    if institution_ids is not None:
        only.append(col(Graduate.institution_id).in_(list(institution_ids)))
    if (graduate_ids is not None and not graduate_ids) or (
        institution_ids is not None and not institution_ids
    ):
        return 0
    while True:
        async with db.session() as session:
            rows = (
                await session.exec(
                    select(Graduate, Institution, Programme)
                    .join(Institution, col(Institution.id) == Graduate.institution_id)
                    .join(Programme, col(Programme.id) == Graduate.programme_id)
                    .where(
                        col(Graduate.id) > last_id,
                        *only,
                        col(Graduate.erased_at).is_(None),
                        col(Graduate.opted_out_at).is_(None),
                    )
                    .order_by(col(Graduate.id))
                    .limit(batch)
                )
            ).all()
            if not rows:
                return created
            last_id = rows[-1][0].id or last_id
            ids = [graduate.id for graduate, _school, _programme in rows]
            existing = {
                (graduate_id, wave, seq)
                for graduate_id, wave, seq in (
                    await session.exec(
                        select(Invitation.graduate_id, Invitation.wave, Invitation.seq).where(
                            col(Invitation.graduate_id).in_(ids)
                        )
                    )
                ).all()
            }
            for graduate, school, programme in rows:
                plan = plans.for_graduate(school.code, programme.code)
                for item in schedule(plan, graduate.graduation_date, school.timezone):
                    if item.closes_at <= now or (item.seq > 0 and item.due_at <= now):
                        continue
                    if (graduate.id, item.wave, item.seq) in existing:
                        continue
                    assert graduate.id is not None
                    session.add(
                        Invitation(
                            graduate_id=graduate.id,
                            wave=item.wave,
                            form_id=item.questionnaire,
                            seq=item.seq,
                            due_at=item.due_at,
                            closes_at=item.closes_at,
                        )
                    )
                    created += 1


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime,
    worker: str,
    limit: int,
    lease: timedelta = CLAIM_LEASE,
) -> list[int]:
    """Claim up to `limit` due rows for `worker`; returns their ids, oldest due first."""
    due = or_(
        and_(
            col(Invitation.status) == InvitationStatus.PENDING.value, col(Invitation.due_at) <= now
        ),
        and_(
            col(Invitation.status) == InvitationStatus.CLAIMED.value,
            col(Invitation.claimed_at) < now - lease,
        ),
    )
    candidates = select(Invitation.id).where(due).order_by(col(Invitation.due_at)).limit(limit)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list((await session.exec(candidates)).all())
    if not ids:
        return []
    claimed = await session.exec(
        update(Invitation)
        .where(col(Invitation.id).in_(ids), due)
        .values(
            status=InvitationStatus.CLAIMED.value,
            claimed_at=now,
            claimed_by=worker,
            attempts=col(Invitation.attempts) + 1,
        )
        .returning(col(Invitation.id))
    )
    return sorted(claimed.scalars().all(), key=ids.index)


async def load_claimed(
    session: AsyncSession, ids: Sequence[int]
) -> list[tuple[Invitation, Graduate, Institution, Programme]]:
    rows = (
        await session.exec(
            select(Invitation, Graduate, Institution, Programme)
            .join(Graduate, col(Graduate.id) == Invitation.graduate_id)
            .join(Institution, col(Institution.id) == Graduate.institution_id)
            .join(Programme, col(Programme.id) == Graduate.programme_id)
            .where(col(Invitation.id).in_(ids))
        )
    ).all()
    order = {invitation_id: index for index, invitation_id in enumerate(ids)}
    return sorted(rows, key=lambda row: order[row[0].id or 0])


async def wave_response(
    session: AsyncSession, graduate_id: int, wave: str
) -> SurveyResponse | None:
    result = await session.exec(
        select(SurveyResponse)
        .where(SurveyResponse.graduate_id == graduate_id, SurveyResponse.wave == wave)
        .order_by(col(SurveyResponse.id).desc())
    )
    return result.first()


async def open_wave_invitation(
    session: AsyncSession, graduate_id: int, now: datetime, plans: WavePlans | None = None
) -> Invitation | None:
    """The invitation of a wave that is open now for the graduate and not answered yet.

    A wave is open from its planned opening (with `plans`) until it closes, whether or not
    its invitation has gone out: the dispatcher moves an invitation due in the school's quiet
    hours to their end, but quiet hours hold back what the bot sends unasked, not what a
    graduate asks for (/survey, the "Start now" button)."""
    invitations = (
        await session.exec(
            select(Invitation)
            .where(
                Invitation.graduate_id == graduate_id,
                Invitation.seq == 0,
                col(Invitation.closes_at) > now,
            )
            .order_by(col(Invitation.due_at).desc())
        )
    ).all()
    opened: dict[str, datetime] = {}
    if plans is not None and any(i.due_at > now for i in invitations):
        found = (
            await session.exec(
                select(Graduate, Institution, Programme)
                .join(Institution, col(Institution.id) == Graduate.institution_id)
                .join(Programme, col(Programme.id) == Graduate.programme_id)
                .where(Graduate.id == graduate_id)
            )
        ).first()
        if found is not None:
            graduate, school, programme = found
            plan = plans.for_graduate(school.code, programme.code)
            for item in schedule(plan, graduate.graduation_date, school.timezone):
                if item.seq == 0:
                    opened[item.wave] = item.due_at
    invitations = [i for i in invitations if min(i.due_at, opened.get(i.wave, i.due_at)) <= now]
    for invitation in invitations:
        response = await wave_response(session, graduate_id, invitation.wave)
        if response is None or response.status == ResponseStatus.OPEN.value:
            return invitation
    return None


async def completed_waves(
    session: AsyncSession, wanted: set[tuple[int, str]]
) -> set[tuple[int, str]]:
    """Which of the (graduate, wave) pairs have a response that was sent already."""
    if not wanted:
        return set()
    graduate_ids = {graduate_id for graduate_id, _wave in wanted}
    rows = await session.exec(
        select(SurveyResponse.graduate_id, SurveyResponse.wave).where(
            col(SurveyResponse.graduate_id).in_(graduate_ids),
            SurveyResponse.status != ResponseStatus.OPEN.value,
        )
    )
    found = {(graduate_id, wave or "") for graduate_id, wave in rows.all()}
    return found & wanted


async def mark_offered(db: Database, invitation: Invitation, now: datetime) -> bool:
    """Record that the graduate was offered the wave in the chat (the "Start now" button at
    the end of onboarding) as its invitation being sent, unless a dispatcher has taken the
    row meanwhile. True when recorded."""
    async with db.session() as session:
        result = await session.exec(
            update(Invitation)
            .where(
                col(Invitation.id) == invitation.id,
                col(Invitation.status) == InvitationStatus.PENDING.value,
            )
            .values(status=InvitationStatus.SENT.value, sent_at=now)
        )
        return bool(result.rowcount)
