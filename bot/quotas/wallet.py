"""The wallet guard: a 402 from the gateway pauses submissions for the whole bot (DESIGN rule 4).

State lives in the single ``bot_guard`` row, so every process sharing the database obeys the
same pause and a restarted bot stays paused. Each change is one conditional UPDATE whose
WHERE clause states what the caller expects (``paused = false``, "the probe interval has
passed", ``alert_sent = false`` …); the database applies it to at most one caller, which is
how "moderators are told once" and "exactly one probe" hold across tasks and processes:

- ``record_insufficient_balance`` pauses; only the call that flipped the flag gets True.
- While paused ``before_submit`` raises ``SubmissionsPaused`` — except that once
  ``probe_interval`` seconds have passed since the pause (or the last probe), one caller
  claims a probe permit (``last_probe_at`` moves to now in the same UPDATE, so nobody else can).
- ``record_success(permit)`` of that probe resumes; a probe answered by another 402 calls
  ``record_insufficient_balance`` again, which keeps the pause and restarts the interval. A
  probe that ends some other way simply lets the next interval pass.
- ``resume(by)`` is the moderator's manual switch; ``claim_alert`` is True once per pause.

``epoch`` counts pauses, so a probe permit issued during one pause cannot end a later one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.config import Settings
from bot.errors import UserFacingError
from bot.quotas.audit import write_audit
from bot.store.database import Database
from bot.store.tables import bot_guard

GUARD_ROW = 1
REASON_MAX = 500
PAUSED_USER_MESSAGE = (
    "The bot's TTS account is out of credit; text-to-speech is paused on every server until its "
    "owner tops it up."
)


class SubmissionsPaused(UserFacingError):
    """Submissions are paused bot-wide (the gateway said 402); nothing was sent or reserved."""

    def __init__(
        self,
        since: datetime | None,
        reason: str | None,
        user_message: str = PAUSED_USER_MESSAGE,
        *,
        next_probe_at: datetime | None = None,
    ) -> None:
        super().__init__(user_message, user_message=user_message)
        self.since = since
        self.reason = reason
        self.next_probe_at = next_probe_at

    def __repr__(self) -> str:
        return f"SubmissionsPaused(since={self.since!r}, reason={self.reason!r})"


@dataclass(frozen=True)
class SubmitPermit:
    """Permission for one submission; ``probe`` is True for the one that tests a paused wallet."""

    probe: bool = False
    epoch: int = 0


@dataclass(frozen=True)
class WalletState:
    paused: bool
    since: datetime | None
    reason: str | None
    paused_by: str | None
    alert_sent: bool = False
    last_probe_at: datetime | None = None
    probe_in_flight: bool = False
    next_probe_at: datetime | None = None
    epoch: int = 0


class WalletGuard:
    def __init__(self, db: Database, clock: Clock, probe_interval: float) -> None:
        if probe_interval <= 0:
            raise ValueError("probe_interval must be positive")
        self._db = db
        self._clock = clock
        self._interval = timedelta(seconds=probe_interval)

    @classmethod
    def from_settings(cls, db: Database, settings: Settings, clock: Clock) -> WalletGuard:
        return cls(db, clock, settings.chatterbox_wallet_probe_seconds)

    async def state(self) -> WalletState:
        async with self._db.read() as conn:
            row = (await conn.execute(select(bot_guard).where(bot_guard.c.id == GUARD_ROW))).one()
        return self._state(row)

    async def before_submit(self) -> SubmitPermit:
        """A permit to submit, or ``SubmissionsPaused`` (see the module docstring)."""
        state = await self.state()
        if not state.paused:
            return SubmitPermit(probe=False, epoch=state.epoch)
        now = self._clock.now()
        if state.next_probe_at is not None and state.next_probe_at <= now:
            c = bot_guard.c
            claim = (
                update(bot_guard)
                .where(
                    c.id == GUARD_ROW,
                    c.paused.is_(True),
                    c.epoch == state.epoch,
                    func.coalesce(c.last_probe_at, c.since) <= now - self._interval,
                )
                .values(last_probe_at=now, probe_in_flight=True)
            )
            if await self._update(claim):
                return SubmitPermit(probe=True, epoch=state.epoch)
            state = await self.state()
            if not state.paused:  # resumed meanwhile
                return SubmitPermit(probe=False, epoch=state.epoch)
        raise SubmissionsPaused(state.since, state.reason, next_probe_at=state.next_probe_at)

    async def record_insufficient_balance(self, message: str) -> bool:
        """A 402: pause bot-wide. True only for the call that paused it (tell moderators then);
        while already paused it restarts the probe interval and returns False."""
        now = self._clock.now()
        reason = message[:REASON_MAX]
        c = bot_guard.c

        async def write(conn: AsyncConnection) -> bool:
            paused = await conn.execute(
                update(bot_guard)
                .where(c.id == GUARD_ROW, c.paused.is_(False))
                .values(
                    paused=True, epoch=c.epoch + 1, since=now, reason=reason, paused_by="gateway (402)",
                    alert_sent=False, last_probe_at=None, probe_in_flight=False,
                    resumed_by=None, resumed_at=None,
                )
            )
            if paused.rowcount == 1:
                await write_audit(conn, guild_id=None, actor_id=None, action="wallet.pause",
                                  details={"reason": reason}, at=now)
                return True
            await conn.execute(
                update(bot_guard)
                .where(c.id == GUARD_ROW, c.paused.is_(True))
                .values(last_probe_at=now, probe_in_flight=False, reason=reason)
            )
            return False

        return await self._db.write(write)

    async def record_success(self, permit: SubmitPermit) -> bool:
        """A submission went through; if it was the probe, resume. True if this resumed."""
        if not permit.probe:
            return False
        c = bot_guard.c
        return await self._resume(
            (c.epoch == permit.epoch,), by="probe", action="wallet.resume"
        )

    async def release_probe(self, permit: SubmitPermit) -> bool:
        """Give back a probe permit that was never used (the request was refused before its
        POST, e.g. by the member's quota), so the next request may probe at once instead of a
        whole interval later. True if the probe was handed back."""
        if not permit.probe:
            return False
        c = bot_guard.c
        return await self._update(
            update(bot_guard)
            .where(c.id == GUARD_ROW, c.paused.is_(True), c.epoch == permit.epoch,
                   c.probe_in_flight.is_(True))
            .values(last_probe_at=self._clock.now() - self._interval, probe_in_flight=False)
        )

    async def resume(self, by: str) -> bool:
        """Resume by hand (a moderator topped up the wallet). False if it was not paused."""
        return await self._resume((), by=by[:100], action="wallet.resume")

    async def claim_alert(self) -> bool:
        """True exactly once per pause: the caller tells the moderators."""
        c = bot_guard.c
        return await self._update(
            update(bot_guard)
            .where(c.id == GUARD_ROW, c.paused.is_(True), c.alert_sent.is_(False))
            .values(alert_sent=True)
        )

    # ---- helpers --------------------------------------------------------------------------
    async def _resume(self, extra: tuple[Any, ...], *, by: str, action: str) -> bool:
        now = self._clock.now()
        c = bot_guard.c

        async def write(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                update(bot_guard)
                .where(c.id == GUARD_ROW, c.paused.is_(True), *extra)
                .values(paused=False, probe_in_flight=False, resumed_by=by, resumed_at=now)
            )
            if result.rowcount != 1:
                return False
            await write_audit(conn, guild_id=None, actor_id=None, action=action, details={"by": by}, at=now)
            return True

        return await self._db.write(write)

    async def _update(self, statement: Any) -> bool:
        async def write(conn: AsyncConnection) -> bool:
            return (await conn.execute(statement)).rowcount == 1

        return await self._db.write(write)

    def _state(self, row: Any) -> WalletState:
        paused = bool(row.paused)
        last = row.last_probe_at or row.since
        return WalletState(
            paused=paused,
            since=row.since if paused else None,
            reason=row.reason if paused else None,
            paused_by=row.paused_by if paused else None,
            alert_sent=bool(row.alert_sent),
            last_probe_at=row.last_probe_at,
            probe_in_flight=bool(row.probe_in_flight),
            next_probe_at=last + self._interval if paused and last is not None else None,
            epoch=row.epoch,
        )
