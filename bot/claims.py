"""A dispatcher pass's hold on the rows of one batch it claimed (invitations, news).

A claim lasts CLAIM_LEASE_SECONDS; after that another dispatcher may take the row over (its
sender is taken for dead). So that a batch slower than the lease is not sent a second time
by another pass meanwhile, `Held.sending` renews the claim every third of the lease while the
batch is being sent, and a row whose claim could not be kept (renewed too late, or taken
over) is not sent by this pass (`holds`). Batches are also kept to what the bulk rate sends
in half a lease (`batch_limit`).

When the process stops gracefully (`Runtime.stopping`), the pass sends no further row
(`holds` says no): the messages being sent are finished and recorded, the batch ends, and the
rows not sent go back to pending at once (storage/claims.py), instead of waiting for the lease
to expire: a deploy in the middle of a broadcast delays nothing. The stop is asked, not forced,
so that no database transaction is cut in the middle (a task cancelled inside one leaves its
SQLite connection to be torn down, holding the write lock meanwhile). A pass still running
after the scheduler's grace is cancelled: the messages in flight are still finished
(`complete`) and the rest given back. A pass cancelled because this process stopped leading is
cut off as it was: its claims run out, as after a crash (another process may be leading
already).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Collection
from contextlib import asynccontextmanager
from datetime import datetime

from bot.runtime import Runtime
from storage import claims
from storage.claims import Claimable

log = logging.getLogger(__name__)

#: How long a stopped pass waits for the messages it is sending before giving up on them
#: (those stay claimed until the lease expires, as after a crash).
STOP_WAIT_SECONDS = 15.0


def batch_limit(batch: int, per_second: float, lease_seconds: float) -> int:
    """At most `batch` rows, and no more than `per_second` sends in half a lease."""
    if per_second <= 0 or lease_seconds <= 0:
        return batch
    return max(1, min(batch, int(per_second * lease_seconds / 2)))


class Held:
    """The rows `ids` of `table` claimed at `stamp` (by `worker`, for invitations)."""

    def __init__(
        self,
        rt: Runtime,
        table: Claimable,
        ids: Collection[int],
        stamp: datetime,
        worker: str | None = None,
    ) -> None:
        self.rt = rt
        self.table = table
        self.owned = set(ids)
        self.stamp = stamp
        self.worker = worker
        self.lease = max(rt.settings.claim_lease_seconds, 0.0)
        self._valid_until = time.monotonic() + self.lease
        self._inflight: dict[asyncio.Future[None], int] = {}
        self._done = asyncio.Event()

    def holds(self, row_id: int) -> bool:
        """Whether this pass may still send the row: claimed by it, the claim not older than
        the lease (no other dispatcher can have taken it over), and the process not stopping."""
        if row_id not in self.owned or self.rt.stopping:
            return False
        return self.lease <= 0 or time.monotonic() < self._valid_until

    async def renew(self) -> None:
        started = time.monotonic()
        now = self.rt.clock.now()
        self.owned = await claims.renew(
            self.rt.db, self.table, self.owned, self.stamp, now, self.worker
        )
        self.stamp = now
        self._valid_until = started + self.lease

    async def complete(self, row_id: int, work: Awaitable[None]) -> None:
        """Run one row's send and record to the end, even if the pass is stopped meanwhile:
        a message Telegram may have taken is recorded, never given back."""
        task = asyncio.ensure_future(work)
        self._inflight[task] = row_id
        task.add_done_callback(lambda done: self._inflight.pop(done, None))
        await asyncio.shield(task)

    @asynccontextmanager
    async def sending(self) -> AsyncIterator[Held]:
        """Renew the claim while the block sends the batch; when the process stops (the block
        ends early, or is cancelled), finish the messages in flight and give back the rest."""
        renewer = asyncio.create_task(self._renewing(), name="gradtrack-claim-renewal")
        try:
            yield self
            if self.rt.stopping:  # the batch ended early: give back what was not sent
                await self._stop(renewer)
        except asyncio.CancelledError:
            if self.rt.stopping:
                await self._stop(renewer)
            else:  # this process stopped leading: cut off, the claims run out (bot/leader.py)
                for task in self._inflight:
                    task.cancel()
            raise
        finally:
            self._done.set()
            await renewer

    async def _renewing(self) -> None:
        interval = self.lease / 3
        if interval <= 0:
            return
        while not self._done.is_set():
            try:
                await asyncio.wait_for(self._done.wait(), interval)
                return
            except TimeoutError:
                pass
            try:
                await self.renew()
            except Exception:  # the lease may run out: `holds` stops the sending then
                log.warning("could not renew the claim on %d rows", len(self.owned), exc_info=True)

    async def _stop(self, renewer: asyncio.Task[None]) -> None:
        self._done.set()
        await renewer
        unfinished: set[int] = set()
        if self._inflight:
            _done, pending = await asyncio.wait(set(self._inflight), timeout=STOP_WAIT_SECONDS)
            for task in pending:
                unfinished.add(self._inflight[task])
                task.cancel()
        released = await claims.release(
            self.rt.db, self.table, self.owned - unfinished, self.stamp, self.worker
        )
        if released or unfinished:
            log.info(
                "stopping: %d claimed %s rows given back unsent%s",
                len(released),
                self.table.__tablename__,
                f", {len(unfinished)} left in flight" if unfinished else "",
            )
