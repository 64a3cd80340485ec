"""The learned job-duration histogram in the database (table ``poll_durations``, one row).

``bot.gateway.polling.ObservedDurations`` lives in memory and is read on every wait; this
module loads it when a process starts and saves it now and then and at close
(``bot.services``), so a restart continues from what the bot has seen. With several
processes each saves its own view, last writer wins: every view is a fair sample of the
same provider, so that loses nothing that matters.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.gateway.polling import ObservedDurations
from bot.store.database import Database
from bot.store.tables import poll_durations

log = logging.getLogger(__name__)

_ROW = 1


class DurationsStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def load(self, into: ObservedDurations) -> bool:
        """Fill ``into`` from the database; False when nothing was stored yet."""
        async with self._db.read() as conn:
            row = (await conn.execute(select(poll_durations).where(poll_durations.c.id == _ROW))).first()
        if row is None:
            return False
        raw = row.weights if isinstance(row.weights, dict) else {}
        weights: dict[int, float] = {}
        for bucket, weight in raw.items():
            try:
                weights[int(bucket)] = float(weight)
            except (TypeError, ValueError):
                continue
        into.load(weights, int(row.samples))
        return True

    async def save(self, durations: ObservedDurations) -> None:
        """Write the current weights (a no-op when nothing was recorded since the last save)."""
        if not durations.dirty:
            return
        values = {
            "weights": {str(k): round(v, 6) for k, v in durations.weights().items()},
            "samples": durations.samples,
            "updated_at": self._clock.now(),
        }

        async def write(conn: AsyncConnection) -> None:
            changed = await conn.execute(update(poll_durations).where(poll_durations.c.id == _ROW)
                                         .values(**values))
            if changed.rowcount == 0:
                await conn.execute(poll_durations.insert().values(id=_ROW, **values))

        await self._db.write(write, lock="poll_durations")
        durations.dirty = False
