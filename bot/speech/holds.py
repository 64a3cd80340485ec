"""A gateway 429 holds every process, not only the one that got it (DESIGN rule 4).

``SharedRateGuard`` is the process's ``RateGuard`` plus the database: when the gateway says
429 with a Retry-After, the client calls ``hold(seconds)`` (as before) and the guard also
writes the end of the hold to ``bot_guard.rate_limited_until`` (one conditional UPDATE that
only ever moves it later). Before a submission the pipeline calls ``adopt()``, which reads
that column (at most once per ``ADOPT_INTERVAL`` seconds of the clock) and holds the local
guard for what is left, so a second process waits out the same Retry-After. The 402 pause
needs nothing new: the wallet guard keeps it in the same row already.

Both directions are best effort: a database that is away only means this process is not
told (or does not tell) about another's 429; the gateway would then answer 429 again,
refusing, never charging.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.gateway.ratelimit import RateGuard
from bot.store.database import Database
from bot.store.tables import bot_guard

log = logging.getLogger(__name__)

GUARD_ROW = 1
ADOPT_INTERVAL = 1.0


class SharedRateGuard(RateGuard):
    def __init__(self, rate_per_second: float, burst: int, clock: Clock, *, db: Database) -> None:
        super().__init__(rate_per_second, burst, clock)
        self._db = db
        self._clock_ref = clock
        self._writes: set[asyncio.Task[None]] = set()
        self._last_adopt: float | None = None

    def hold(self, seconds: float) -> None:
        before = self.held_until
        super().hold(seconds)
        after = self.held_until
        if after is not None and after != before:
            until = self._clock_ref.now() + timedelta(seconds=after - self._clock_ref.monotonic())
            try:
                task = asyncio.get_running_loop().create_task(self._share(until), name="rate-hold-share")
            except RuntimeError:  # no loop (a synchronous caller): nothing to share with
                return
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _share(self, until: datetime) -> None:
        statement = (
            update(bot_guard)
            .where(bot_guard.c.id == GUARD_ROW,
                   or_(bot_guard.c.rate_limited_until.is_(None), bot_guard.c.rate_limited_until < until))
            .values(rate_limited_until=until)
        )

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(statement)

        try:
            await self._db.write(write)
        except Exception:
            log.warning("could not share a 429 hold with other processes", exc_info=True)

    async def adopt(self) -> None:
        """Hold this process for what is left of another process's 429 (module docstring)."""
        now = self._clock_ref.monotonic()
        if self._last_adopt is not None and now - self._last_adopt < ADOPT_INTERVAL:
            return
        self._last_adopt = now

        async def read(conn: AsyncConnection) -> datetime | None:
            query = select(bot_guard.c.rate_limited_until).where(bot_guard.c.id == GUARD_ROW)
            return (await conn.execute(query)).scalar_one_or_none()

        try:
            until = await self._db.run_read(read)
        except Exception:
            log.warning("could not read the shared 429 hold", exc_info=True)
            return
        if until is None:
            return
        left = (until - self._clock_ref.now()).total_seconds()
        if left > 0:
            current = self.held_until
            if current is None or current < self._clock_ref.monotonic() + left - 0.001:
                log.info("another process got a 429: holding submissions for %.1f s", left)
                RateGuard.hold(self, left)  # local only: it came from the database

    async def close(self) -> None:
        for task in list(self._writes):
            task.cancel()
        await asyncio.gather(*self._writes, return_exceptions=True)
