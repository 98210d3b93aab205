"""Keeping and giving back the claims of a dispatcher pass on invitation and news delivery rows.

A dispatcher claims rows (status "claimed", `claimed_at` the claim's time, for invitations also
`claimed_by`); another dispatcher takes a row over once `claimed_at` is older than the lease.
While its sender works through the batch, the claim is renewed (`renew`: `claimed_at` moved
to now, for the rows still claimed as this pass left them); when the pass is stopped, the rows
it has not sent go back to pending (`release`). Both are compare-and-set on `claimed_at` (and
`claimed_by`): a row another dispatcher has taken over, or whose outcome is recorded, is left
alone.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col

from storage.db import Database
from storage.models import Delivery, Invitation

Claimable = type[Invitation] | type[Delivery]

CLAIMED = "claimed"
PENDING = "pending"


def _held(
    table: Claimable, ids: Collection[int], stamp: datetime, worker: str | None
) -> list[object]:
    conditions: list[object] = [
        col(table.id).in_(list(ids)),
        col(table.status) == CLAIMED,
        col(table.claimed_at) == stamp,
    ]
    if worker is not None and table is Invitation:
        conditions.append(col(Invitation.claimed_by) == worker)
    return conditions


async def renew(
    db: Database,
    table: Claimable,
    ids: Collection[int],
    stamp: datetime,
    now: datetime,
    worker: str | None = None,
) -> set[int]:
    """Move the claim of the rows `ids` still claimed at `stamp` (by `worker`) to `now`;
    returns the ids renewed (the others were sent, or taken over by another dispatcher)."""
    if not ids:
        return set()
    async with db.engine.begin() as conn:
        result = await conn.execute(
            update(table)
            .where(*_held(table, ids, stamp, worker))  # type: ignore[arg-type]
            .values(claimed_at=now)
            .returning(col(table.id))
        )
        return {row_id for row_id in result.scalars().all() if row_id is not None}


async def release(
    db: Database,
    table: Claimable,
    ids: Collection[int],
    stamp: datetime,
    worker: str | None = None,
) -> set[int]:
    """Give the rows `ids` still claimed at `stamp` (by `worker`) back: pending again, due
    as before, unclaimed, their attempt not counted (nothing was sent). Returns their ids."""
    if not ids:
        return set()
    values: dict[str, object] = {
        "status": PENDING,
        "claimed_at": None,
        "attempts": col(table.attempts) - 1,
    }
    if table is Invitation:
        values["claimed_by"] = None
    async with db.engine.begin() as conn:
        result = await conn.execute(
            update(table)
            .where(*_held(table, ids, stamp, worker))  # type: ignore[arg-type]
            .values(**values)
            .returning(col(table.id))
        )
        return {row_id for row_id in result.scalars().all() if row_id is not None}
