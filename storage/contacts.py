"""What became of mail to a graduate's address: bounced, unsubscribed, or fine again."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, update
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


__all__ = ["set_email_status"]
