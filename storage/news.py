"""Alumni news: audiences, broadcasts and their recipients.

An audience is a filter (`Audience`) over the graduates who can be reached and want news:
linked to a chat, news consent given, not stopped, not unreachable, not erased. A broadcast is
composed as a draft, then scheduled (now or later); when it is due, one `Delivery` row per
recipient is written in one statement, and the dispatcher (bot/news.py) sends them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    and_,
    exists,
    extract,
    func,
    insert,
    literal,
    or_,
    update,
)
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from conversations.rules import LANGUAGES
from storage.contacts import BLOCKED_STATUSES
from storage.db import Database
from storage.followups import FollowupError, ListKey, may_be_contacted, on_list
from storage.models import (
    Broadcast,
    BroadcastStatus,
    ChatState,
    Delivery,
    DeliveryStatus,
    Graduate,
    Invitation,
    ResponseStatus,
    SurveyResponse,
)
from storage.queries import WEB_CHAT_BASE

WAVE_STATUSES = ("responded", "not_responded")


class AudienceError(ValueError):
    """A filter that cannot be used."""


@dataclass(frozen=True)
class Audience:
    """Who a broadcast is for. Empty tuples mean "any"."""

    institution_ids: tuple[int, ...] = ()
    programme_ids: tuple[int, ...] = ()
    graduation_years: tuple[int, ...] = ()
    languages: tuple[str, ...] = ()
    wave: str | None = None
    wave_status: str | None = None  # responded | not_responded (needs `wave`)
    followup: str | None = None
    """A follow-up list (storage/followups.py): "work", "offer" or "offer:<choice>"; its
    graduates who may be contacted, and who want news as every audience."""

    def __post_init__(self) -> None:
        if self.followup is not None:
            try:
                ListKey.parse(self.followup)
            except FollowupError as error:
                raise AudienceError(str(error)) from None
        if any(lang not in LANGUAGES for lang in self.languages):
            raise AudienceError(f"languages must be among {', '.join(LANGUAGES)}")
        if self.wave_status is not None and (
            self.wave is None or self.wave_status not in WAVE_STATUSES
        ):
            raise AudienceError("wave_status needs a wave and is responded or not_responded")

    def to_filter(self) -> dict[str, Any]:
        return {
            "institution_ids": list(self.institution_ids),
            "programme_ids": list(self.programme_ids),
            "graduation_years": list(self.graduation_years),
            "languages": list(self.languages),
            "wave": self.wave,
            "wave_status": self.wave_status,
            "followup": self.followup,
        }

    @classmethod
    def from_filter(cls, data: dict[str, Any]) -> Audience:
        def ints(key: str) -> tuple[int, ...]:
            values = data.get(key) or []
            if not isinstance(values, list) or not all(isinstance(v, int) for v in values):
                raise AudienceError(f"{key} must be a list of numbers")
            return tuple(values)

        unknown = set(data) - set(cls().to_filter())
        if unknown:
            raise AudienceError(f"unknown filter keys: {', '.join(sorted(unknown))}")
        languages = data.get("languages") or []
        if not isinstance(languages, list):
            raise AudienceError("languages must be a list")
        return cls(
            institution_ids=ints("institution_ids"),
            programme_ids=ints("programme_ids"),
            graduation_years=ints("graduation_years"),
            languages=tuple(str(v) for v in languages),
            wave=data.get("wave") or None,
            wave_status=data.get("wave_status") or None,
            followup=str(data["followup"]) if data.get("followup") else None,
        )

    def within(self, institution_id: int | None) -> Audience:
        """The same audience, limited to one school (a staff member's scope)."""
        if institution_id is None:
            return self
        if self.institution_ids and institution_id not in self.institution_ids:
            return Audience(institution_ids=(-1,))  # nobody
        return Audience(
            (institution_id,),
            self.programme_ids,
            self.graduation_years,
            self.languages,
            self.wave,
            self.wave_status,
            self.followup,
        )


def reachable_news_readers() -> Any:
    """Graduates who may receive news now: they said yes to alumni news, did not stop, were
    not erased, and can be reached on some channel: a Telegram chat that did not block the
    bot, an e-mail address that did not bounce and was not unsubscribed, or a web chat they
    opened (bot/news.py chooses the channel when it sends)."""
    in_telegram = and_(col(Graduate.chat_id).is_not(None), col(Graduate.unreachable_at).is_(None))
    by_email = and_(
        col(Graduate.email).is_not(None),
        or_(
            col(Graduate.email_status).is_(None),
            col(Graduate.email_status).not_in(BLOCKED_STATUSES),
        ),
    )
    base = literal(-WEB_CHAT_BASE, BigInteger)  # beyond int4: typed, or PostgreSQL refuses it
    web_chat = exists().where(col(ChatState.chat_id) == base - col(Graduate.id))
    return and_(
        col(Graduate.consent_news).is_(True),
        col(Graduate.opted_out_at).is_(None),
        col(Graduate.erased_at).is_(None),
        or_(in_telegram, by_email, web_chat),
    )


def audience_query(audience: Audience) -> Select[Any]:
    """SELECT graduate.id for everyone in the audience who may receive news."""
    conditions: list[Any] = [reachable_news_readers()]
    if audience.institution_ids:
        conditions.append(col(Graduate.institution_id).in_(audience.institution_ids))
    if audience.programme_ids:
        conditions.append(col(Graduate.programme_id).in_(audience.programme_ids))
    if audience.graduation_years:
        conditions.append(
            extract("year", col(Graduate.graduation_date)).in_(audience.graduation_years)
        )
    if audience.languages:
        conditions.append(col(Graduate.language).in_(audience.languages))
    if audience.wave is not None and audience.wave_status is not None:
        responded = exists().where(
            col(SurveyResponse.graduate_id) == col(Graduate.id),
            col(SurveyResponse.wave) == audience.wave,
            col(SurveyResponse.status) == ResponseStatus.SUBMITTED.value,
        )
        if audience.wave_status == "responded":
            conditions.append(responded)
        else:
            invited = exists().where(
                col(Invitation.graduate_id) == col(Graduate.id),
                col(Invitation.wave) == audience.wave,
            )
            conditions.append(and_(invited, ~responded))
    if audience.followup is not None:
        conditions += [may_be_contacted(), on_list(ListKey.parse(audience.followup))]
    return select(Graduate.id).where(*conditions)


async def count_audience(session: AsyncSession, audience: Audience) -> int:
    query = select(func.count()).select_from(audience_query(audience).subquery())
    return int((await session.exec(query)).one())


async def count_by_language(session: AsyncSession, audience: Audience) -> dict[str | None, int]:
    """How many of the audience read each language (None: no language known)."""
    members = audience_query(audience).with_only_columns(col(Graduate.language)).subquery()
    rows = await session.exec(select(members.c.language, func.count()).group_by(members.c.language))
    return {language: int(n) for language, n in rows.all()}


async def schedule(session: AsyncSession, broadcast: Broadcast, due_at: datetime) -> None:
    """A composed broadcast goes out at `due_at` (now, or later)."""
    if broadcast.status not in (BroadcastStatus.DRAFT.value, BroadcastStatus.SCHEDULED.value):
        raise AudienceError(f"broadcast {broadcast.id} is {broadcast.status}")
    if not broadcast.texts:
        raise AudienceError("a broadcast needs a text")
    broadcast.status = BroadcastStatus.SCHEDULED.value
    broadcast.due_at = due_at
    session.add(broadcast)


async def start_due(db: Database, now: datetime) -> list[int]:
    """Write the recipients of every scheduled broadcast that is due; returns their ids.
    Recipients are chosen when sending starts, so later consents and stops count."""
    started: list[int] = []
    async with db.session() as session:
        due = (
            await session.exec(
                select(Broadcast)
                .where(
                    Broadcast.status == BroadcastStatus.SCHEDULED.value,
                    col(Broadcast.due_at) <= now,
                )
                .with_for_update(skip_locked=True)
            )
        ).all()
        for broadcast in due:
            assert broadcast.id is not None
            audience = Audience.from_filter(broadcast.filter).within(broadcast.institution_id)
            recipients = audience_query(audience).with_only_columns(
                literal(broadcast.id),
                col(Graduate.id),
                literal(DeliveryStatus.PENDING.value),
                literal(now),
                literal(0),
            )
            await session.exec(
                insert(Delivery).from_select(
                    ["broadcast_id", "graduate_id", "status", "due_at", "attempts"], recipients
                )
            )
            broadcast.total = await _count(session, broadcast.id)
            broadcast.status = BroadcastStatus.SENDING.value
            broadcast.started_at = now
            session.add(broadcast)
            started.append(broadcast.id)
    return started


async def _count(session: AsyncSession, broadcast_id: int, *statuses: str) -> int:
    query = select(func.count()).select_from(Delivery).where(Delivery.broadcast_id == broadcast_id)
    if statuses:
        query = query.where(col(Delivery.status).in_(statuses))
    return int((await session.exec(query)).one())


async def cancel(db: Database, broadcast_id: int, now: datetime) -> Broadcast:
    """Stop a broadcast: what is not sent yet will not be."""
    async with db.session() as session:
        broadcast = await session.get(Broadcast, broadcast_id, with_for_update=True)
        if broadcast is None:
            raise AudienceError(f"no broadcast {broadcast_id}")
        if broadcast.status in (BroadcastStatus.DONE.value, BroadcastStatus.CANCELLED.value):
            return broadcast
        await session.exec(
            update(Delivery)
            .where(
                col(Delivery.broadcast_id) == broadcast_id,
                or_(
                    col(Delivery.status) == DeliveryStatus.PENDING.value,
                    col(Delivery.status) == DeliveryStatus.CLAIMED.value,
                ),
            )
            .values(status=DeliveryStatus.CANCELLED.value)
        )
        broadcast.status = BroadcastStatus.CANCELLED.value
        broadcast.cancelled_at = now
        broadcast.finished_at = now
        session.add(broadcast)
    return await refresh_counts(db, broadcast_id, now)


async def refresh_counts(db: Database, broadcast_id: int, now: datetime) -> Broadcast:
    """Store the report numbers; a sending broadcast with nothing left is done."""
    async with db.session() as session:
        broadcast = await session.get(Broadcast, broadcast_id)
        if broadcast is None:
            raise AudienceError(f"no broadcast {broadcast_id}")
        counts = dict(
            (
                await session.exec(
                    select(Delivery.status, func.count())
                    .where(Delivery.broadcast_id == broadcast_id)
                    .group_by(col(Delivery.status))
                )
            ).all()
        )
        broadcast.sent = counts.get(DeliveryStatus.SENT.value, 0)
        broadcast.blocked = counts.get(DeliveryStatus.BLOCKED.value, 0)
        broadcast.failed = counts.get(DeliveryStatus.FAILED.value, 0)
        broadcast.cancelled = counts.get(DeliveryStatus.CANCELLED.value, 0)
        left = counts.get(DeliveryStatus.PENDING.value, 0) + counts.get(
            DeliveryStatus.CLAIMED.value, 0
        )
        if broadcast.status == BroadcastStatus.SENDING.value and not left:
            broadcast.status = BroadcastStatus.DONE.value
            broadcast.finished_at = broadcast.finished_at or now
        session.add(broadcast)
    return broadcast


def pending_count(broadcast: Broadcast) -> int:
    return max(
        broadcast.total
        - broadcast.sent
        - broadcast.blocked
        - broadcast.failed
        - broadcast.cancelled,
        0,
    )


async def failure_reasons(
    session: AsyncSession, broadcast_ids: list[int]
) -> dict[int, list[tuple[str, int]]]:
    """Why deliveries failed, per broadcast: Telegram's error text (as stored in
    Delivery.error, no personal data) and how many failed so, most frequent first."""
    if not broadcast_ids:
        return {}
    rows = (
        await session.exec(
            select(Delivery.broadcast_id, Delivery.error, func.count())
            .where(
                col(Delivery.broadcast_id).in_(broadcast_ids),
                col(Delivery.status) == DeliveryStatus.FAILED.value,
            )
            .group_by(col(Delivery.broadcast_id), col(Delivery.error))
        )
    ).all()
    reasons: dict[int, list[tuple[str, int]]] = {}
    for broadcast_id, error, n in rows:
        reasons.setdefault(broadcast_id, []).append((error or "", int(n)))
    for items in reasons.values():
        items.sort(key=lambda item: (-item[1], item[0]))
    return reasons


def reasons_text(reasons: list[tuple[str, int]], unknown: str = "unknown") -> str:
    """`Bad Request: chat not found ×2, Message is too long` (×1 is left out)."""
    return ", ".join(
        f"{error or unknown} ×{n}" if n > 1 else (error or unknown) for error, n in reasons
    )
