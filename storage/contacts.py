"""What became of mail to a graduate's address: bounced, unsubscribed, or fine again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, not_, or_
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import EmailStatus, Graduate


async def set_email_status(
    session: AsyncSession,
    graduate_id: int,
    address: str,
    status: EmailStatus,
    now: datetime,
) -> bool:
    """Record `status` for the graduate's e-mail, provided it is still `address` (a bounce
    of an address the school has since replaced says nothing about the new one; an erased
    graduate has none). Returns whether a row changed. In the caller's transaction."""
    result = await session.exec(
        update(Graduate)
        .where(
            col(Graduate.id) == graduate_id,
            col(Graduate.email) == address,
            col(Graduate.erased_at).is_(None),
        )
        .values(email_status=status.value, email_status_at=now)
    )
    return bool(result.rowcount)


@dataclass(frozen=True)
class EmailProblem:
    """A graduate whose address gets no more mail: bounced or unsubscribed."""

    student_ref: str
    name: str | None
    email: str
    status: str
    since: datetime | None


@dataclass(frozen=True)
class Reach:
    """How the graduates of a school (not erased) can be reached."""

    in_chat: int = 0
    by_email: int = 0
    no_way: int = 0
    stopped: int = 0
    bounced: int = 0
    unsubscribed: int = 0
    problems: list[EmailProblem] = field(default_factory=list)
    #: Graduates with no way to reach them (the first `listed` by student number).
    unreachable: list[NoWay] = field(default_factory=list)


@dataclass(frozen=True)
class NoWay:
    """A graduate the school cannot reach: why ("blocked": the Telegram chat blocked the bot;
    "email": the address bounced or was unsubscribed; "none": no chat and no address)."""

    student_ref: str
    name: str | None
    why: str


BLOCKED_STATUSES = (EmailStatus.BOUNCED.value, EmailStatus.UNSUBSCRIBED.value)


async def reach(session: AsyncSession, institution_id: int | None, *, listed: int = 200) -> Reach:
    """Counts of graduates in a chat, reachable by e-mail only, with no way to reach them,
    and stopped (/stop); the addresses that bounced or were unsubscribed (the newest
    `listed`). `institution_id` None: every school."""
    where: list[ColumnElement[bool]] = [col(Graduate.erased_at).is_(None)]
    if institution_id is not None:
        where.append(col(Graduate.institution_id) == institution_id)
    stopped = col(Graduate.opted_out_at).is_not(None)
    in_chat = and_(col(Graduate.chat_id).is_not(None), col(Graduate.unreachable_at).is_(None))
    mail_ok = and_(
        col(Graduate.email).is_not(None),
        or_(
            col(Graduate.email_status).is_(None),
            col(Graduate.email_status).not_in(BLOCKED_STATUSES),
        ),
    )

    def count(condition: object) -> object:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)  # type: ignore[arg-type]

    row = (
        await session.exec(
            select(  # type: ignore[call-overload]
                count(and_(not_(stopped), in_chat)),
                count(and_(not_(stopped), not_(in_chat), mail_ok)),
                count(and_(not_(stopped), not_(in_chat), not_(mail_ok))),
                count(stopped),
                count(col(Graduate.email_status) == EmailStatus.BOUNCED.value),
                count(col(Graduate.email_status) == EmailStatus.UNSUBSCRIBED.value),
            ).where(*where)
        )
    ).one()
    problems = (
        await session.exec(
            select(Graduate)
            .where(
                *where,
                col(Graduate.email).is_not(None),
                col(Graduate.email_status).in_(BLOCKED_STATUSES),
            )
            .order_by(col(Graduate.email_status_at).desc(), col(Graduate.id))
            .limit(listed)
        )
    ).all()
    cannot = (
        await session.exec(
            select(Graduate)
            .where(*where, not_(stopped), not_(in_chat), not_(mail_ok))
            .order_by(col(Graduate.student_ref))
            .limit(listed)
        )
    ).all()
    in_chat_n, by_email, no_way, stopped_n, bounced, unsubscribed = (int(n) for n in row)
    return Reach(
        in_chat_n,
        by_email,
        no_way,
        stopped_n,
        bounced,
        unsubscribed,
        [
            EmailProblem(
                g.student_ref, g.name, g.email or "", g.email_status or "", g.email_status_at
            )
            for g in problems
        ],
        [
            NoWay(
                g.student_ref,
                g.name,
                "blocked"
                if g.chat_id is not None
                else "email"
                if g.email_status in BLOCKED_STATUSES
                else "none",
            )
            for g in cannot
        ],
    )


__all__ = ["BLOCKED_STATUSES", "EmailProblem", "NoWay", "Reach", "reach", "set_email_status"]
