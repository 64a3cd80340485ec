"""Moderator operations: policies, blocks, budgets, exempt roles, pause, alert channel.

Every change runs in one write transaction under the guild's quota lock (the same lock
``reserve`` takes, so a reservation never sees half a change) and writes an ``audit_log`` row
naming the moderator (``actor_id``) in that same transaction, which also bumps the guild's
configuration version (``bot.quotas.guild_config``) so every process re-reads it. Bad values raise
``PolicyError`` with a sentence fit to show the moderator; nothing is changed then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.config import Settings
from bot.quotas import counters
from bot.quotas.audit import AuditEntry, read_audit, write_audit
from bot.quotas.errors import PolicyError
from bot.quotas.guild_config import bump_version
from bot.quotas.guilds import GuildSettings, guild_lock, load_guild_settings
from bot.quotas.policy import Policy, PolicyScope, validate_field
from bot.quotas.window import day_start
from bot.store.database import Database
from bot.store.tables import (
    blocked_users,
    guild_settings,
    quota_policies,
    usage_ledger,
)
from bot.store.types import to_money

MAX_DAILY_BUDGET = 1_000_000
MAX_COST_CAP = Decimal(100_000)


@dataclass(frozen=True)
class PolicyEntry:
    scope: PolicyScope
    target_id: int | None  # None for the guild default
    policy: Policy
    updated_by: int | None
    updated_at: datetime | None


class QuotaAdmin:
    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock

    # ---- reading --------------------------------------------------------------------------
    async def guild_settings(self, guild_id: int) -> GuildSettings:
        async with self._db.read() as conn:
            return await load_guild_settings(conn, guild_id)

    async def policies(self, guild_id: int) -> list[PolicyEntry]:
        """The guild default first, then role policies, then member overrides."""
        order = {PolicyScope.GUILD: 0, PolicyScope.ROLE: 1, PolicyScope.USER: 2}
        async with self._db.read() as conn:
            rows = (
                await conn.execute(select(quota_policies).where(quota_policies.c.guild_id == guild_id))
            ).all()
        entries = [
            PolicyEntry(
                scope=PolicyScope(row.scope),
                target_id=None if row.scope == PolicyScope.GUILD.value else row.target_id,
                policy=Policy.from_mapping(row._mapping),
                updated_by=row.updated_by,
                updated_at=row.updated_at,
            )
            for row in rows
        ]
        return sorted(entries, key=lambda e: (order[e.scope], e.target_id or 0))

    async def blocked(self, guild_id: int) -> list[int]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(blocked_users.c.user_id)
                .where(blocked_users.c.guild_id == guild_id)
                .order_by(blocked_users.c.user_id)
            )
            return [row[0] for row in rows]

    async def audit(self, guild_id: int | None, *, limit: int = 20) -> list[AuditEntry]:
        """The newest audit entries of a guild (None: bot-wide entries such as the wallet pause)."""
        async with self._db.read() as conn:
            return await read_audit(conn, guild_id, limit)

    # ---- policies -------------------------------------------------------------------------
    async def set_policy(
        self, guild_id: int, scope: PolicyScope, target_id: int | None, *, actor_id: int, **fields: int | None
    ) -> Policy:
        """Change some fields of one policy; a field given as None goes back to inheriting.

        Returns the policy as stored (a policy whose fields are all None is removed).
        """
        if not fields:
            raise PolicyError("Name at least one quota setting to change.")
        changes = {name: validate_field(name, value) for name, value in fields.items()}
        target = _target(scope, target_id)
        now = self._clock.now()

        async def write(conn: AsyncConnection) -> Policy:
            where = _policy_where(guild_id, scope, target)
            row = (await conn.execute(select(quota_policies).where(where))).first()
            current = Policy.from_mapping(row._mapping) if row is not None else Policy()
            merged = Policy(**{**current.as_dict(), **changes})
            if merged.is_empty:
                await conn.execute(delete(quota_policies).where(where))
            elif row is None:
                await conn.execute(
                    quota_policies.insert().values(
                        guild_id=guild_id, scope=scope.value, target_id=target,
                        updated_by=actor_id, updated_at=now, **merged.as_dict(),
                    )
                )
            else:
                await conn.execute(
                    update(quota_policies)
                    .where(where)
                    .values(updated_by=actor_id, updated_at=now, **merged.as_dict())
                )
            await self._audit(conn, guild_id, actor_id, "policy.set",
                              {"scope": scope.value, "target_id": target_id, "changes": changes}, now)
            return merged

        return await self._db.write(write, lock=guild_lock(guild_id))

    async def set_guild_default(self, guild_id: int, *, actor_id: int, **fields: int | None) -> Policy:
        return await self.set_policy(guild_id, PolicyScope.GUILD, None, actor_id=actor_id, **fields)

    async def set_role_policy(
        self, guild_id: int, role_id: int, *, actor_id: int, **fields: int | None
    ) -> Policy:
        return await self.set_policy(guild_id, PolicyScope.ROLE, role_id, actor_id=actor_id, **fields)

    async def set_user_policy(
        self, guild_id: int, user_id: int, *, actor_id: int, **fields: int | None
    ) -> Policy:
        return await self.set_policy(guild_id, PolicyScope.USER, user_id, actor_id=actor_id, **fields)

    async def clear_policy(
        self, guild_id: int, scope: PolicyScope, target_id: int | None = None, *, actor_id: int
    ) -> bool:
        """Remove a whole policy (everything inherits again); False if there was none."""
        target = _target(scope, target_id)
        now = self._clock.now()

        async def write(conn: AsyncConnection) -> bool:
            result = await conn.execute(delete(quota_policies).where(_policy_where(guild_id, scope, target)))
            if result.rowcount:
                await self._audit(conn, guild_id, actor_id, "policy.clear",
                                  {"scope": scope.value, "target_id": target_id}, now)
            return bool(result.rowcount)

        return await self._db.write(write, lock=guild_lock(guild_id))

    # ---- members --------------------------------------------------------------------------
    async def reset_usage(self, guild_id: int, user_id: int, *, actor_id: int) -> int:
        """Forgive a member's usage of the current quota day (daily limits and cooldown start
        over; the server's budget keeps counting it). Returns how many reservations it forgave."""
        now = self._clock.now()

        async def write(conn: AsyncConnection) -> int:
            guild = await load_guild_settings(conn, guild_id)
            hour = guild.reset_hour_utc
            if hour is None:
                hour = self._settings.quota_reset_hour_utc
            ledger = usage_ledger.c
            today = day_start(now, hour)
            result = await conn.execute(
                update(usage_ledger)
                .where(
                    ledger.guild_id == guild_id,
                    ledger.user_id == user_id,
                    ledger.forgiven_at.is_(None),
                    ledger.quota_day == today,
                )
                .values(forgiven_at=now)
            )
            # The member's day starts over; the server's day keeps counting (money was spent).
            await counters.reset_member_day(conn, guild_id, user_id, today)
            await self._audit(conn, guild_id, actor_id, "usage.reset",
                              {"user_id": user_id, "reservations": result.rowcount}, now)
            return int(result.rowcount)

        return await self._db.write(write, lock=guild_lock(guild_id))

    async def block(self, guild_id: int, user_id: int, *, actor_id: int, reason: str | None = None) -> bool:
        """Refuse every request of the member on this server; False if already blocked."""
        now = self._clock.now()

        async def write(conn: AsyncConnection) -> bool:
            exists = (
                await conn.execute(select(blocked_users.c.user_id).where(_blocked_where(guild_id, user_id)))
            ).first()
            if exists is not None:
                return False
            await conn.execute(
                blocked_users.insert().values(
                    guild_id=guild_id, user_id=user_id, blocked_by=actor_id, reason=reason, blocked_at=now
                )
            )
            await self._audit(
                conn, guild_id, actor_id, "user.block", {"user_id": user_id, "reason": reason}, now
            )
            return True

        return await self._db.write(write, lock=guild_lock(guild_id))

    async def unblock(self, guild_id: int, user_id: int, *, actor_id: int) -> bool:
        now = self._clock.now()

        async def write(conn: AsyncConnection) -> bool:
            result = await conn.execute(delete(blocked_users).where(_blocked_where(guild_id, user_id)))
            if result.rowcount:
                await self._audit(conn, guild_id, actor_id, "user.unblock", {"user_id": user_id}, now)
            return bool(result.rowcount)

        return await self._db.write(write, lock=guild_lock(guild_id))

    # ---- guild settings -------------------------------------------------------------------
    async def set_daily_budget(self, guild_id: int, requests: int | None, *, actor_id: int) -> GuildSettings:
        """The server's requests per quota day, all members together (None: no budget)."""
        if requests is not None and not _whole(requests, 0, MAX_DAILY_BUDGET):
            raise PolicyError(
                f"The daily request budget must be a whole number from 0 to {MAX_DAILY_BUDGET:,}."
            )
        return await self._update_guild(guild_id, actor_id, "guild.budget", daily_request_budget=requests)

    async def set_cost_cap(
        self, guild_id: int, dollars: Decimal | int | str | None, *, actor_id: int
    ) -> GuildSettings:
        """The server's spending cap in dollars per quota day (None: no cap)."""
        cap = None if dollars is None else _dollars(dollars)
        return await self._update_guild(guild_id, actor_id, "guild.cost_cap", daily_cost_cap=cap)

    async def set_reset_hour(self, guild_id: int, hour: int | None, *, actor_id: int) -> GuildSettings:
        """The UTC hour this server's quota day starts (None: the bot-wide QUOTA_RESET_HOUR_UTC)."""
        if hour is not None and not _whole(hour, 0, 23):
            raise PolicyError("The reset hour must be a whole hour from 0 to 23 (UTC).")
        settings = await self._update_guild(guild_id, actor_id, "guild.reset_hour", reset_hour_utc=hour,
                                            rekey=True)
        return settings

    async def _rekey_days(self, conn: AsyncConnection, guild_id: int, hour: int) -> None:
        """Give the last two days' reservations the quota day of the new reset hour, moving
        their counts with them, so the day that is running keeps what it has spent (older
        days are history and keep their keys)."""
        now = self._clock.now()
        ledger = usage_ledger.c
        rows = (
            await conn.execute(
                select(usage_ledger).where(
                    ledger.guild_id == guild_id, ledger.created_at >= now - timedelta(days=2)
                )
            )
        ).all()
        moved: set[int] = set()
        for row in rows:
            new = day_start(row.created_at, hour)
            if new == row.quota_day:
                continue
            counted = row.state != "refunded"
            await conn.execute(update(usage_ledger).where(ledger.id == row.id).values(quota_day=new))
            await counters.move_guild_day(
                conn, guild_id, old=row.quota_day, new=new,
                requests=row.requests - row.refunded_requests if counted else 0,
                characters=row.characters if counted else 0, cost=row.cost if counted else Decimal(0),
            )
            moved.add(row.user_id)
        for user_id in sorted(moved):
            await counters.rebuild_member_day(conn, guild_id, user_id)

    async def set_alert_channel(
        self, guild_id: int, channel_id: int | None, *, actor_id: int
    ) -> GuildSettings:
        """Where the bot tells this server's moderators about problems (None: nowhere)."""
        return await self._update_guild(
            guild_id, actor_id, "guild.alert_channel", alert_channel_id=channel_id
        )

    async def add_exempt_role(self, guild_id: int, role_id: int, *, actor_id: int) -> bool:
        """Members with this role skip the member limits; False if it was exempt already."""
        return await self._change_exempt(guild_id, role_id, actor_id, add=True)

    async def remove_exempt_role(self, guild_id: int, role_id: int, *, actor_id: int) -> bool:
        return await self._change_exempt(guild_id, role_id, actor_id, add=False)

    async def pause(self, guild_id: int, *, actor_id: int, reason: str | None = None) -> bool:
        """Stop all requests on this server until resumed; False if it was paused already."""
        now = self._clock.now()

        async def write(conn: AsyncConnection) -> bool:
            if (await load_guild_settings(conn, guild_id)).paused:
                return False
            await self._write_guild(conn, guild_id, now, paused=True, paused_by=actor_id, paused_at=now,
                                    pause_reason=reason)
            await self._audit(conn, guild_id, actor_id, "guild.pause", {"reason": reason}, now)
            return True

        return await self._db.write(write, lock=guild_lock(guild_id))

    async def resume(self, guild_id: int, *, actor_id: int) -> bool:
        """Allow requests again; False if the guild was not paused."""
        now = self._clock.now()

        async def write(conn: AsyncConnection) -> bool:
            if not (await load_guild_settings(conn, guild_id)).paused:
                return False
            await self._write_guild(conn, guild_id, now, paused=False, paused_by=None, paused_at=None,
                                    pause_reason=None)
            await self._audit(conn, guild_id, actor_id, "guild.resume", {}, now)
            return True

        return await self._db.write(write, lock=guild_lock(guild_id))

    # ---- helpers --------------------------------------------------------------------------
    async def _change_exempt(self, guild_id: int, role_id: int, actor_id: int, *, add: bool) -> bool:
        now = self._clock.now()

        async def write(conn: AsyncConnection) -> bool:
            roles = set((await load_guild_settings(conn, guild_id)).exempt_role_ids)
            if (role_id in roles) == add:
                return False
            roles = roles | {role_id} if add else roles - {role_id}
            await self._write_guild(conn, guild_id, now, exempt_role_ids=sorted(roles))
            await self._audit(conn, guild_id, actor_id, "guild.exempt_add" if add else "guild.exempt_remove",
                              {"role_id": role_id}, now)
            return True

        return await self._db.write(write, lock=guild_lock(guild_id))

    async def _update_guild(
        self, guild_id: int, actor_id: int, action: str, *, rekey: bool = False, **values: Any
    ) -> GuildSettings:
        now = self._clock.now()

        async def write(conn: AsyncConnection) -> GuildSettings:
            await self._write_guild(conn, guild_id, now, **values)
            if rekey:
                hour = values["reset_hour_utc"]
                await self._rekey_days(conn, guild_id, self._settings.quota_reset_hour_utc
                                       if hour is None else hour)
            details = {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}
            await self._audit(conn, guild_id, actor_id, action, details, now)
            return await load_guild_settings(conn, guild_id)

        return await self._db.write(write, lock=guild_lock(guild_id))

    @staticmethod
    async def _write_guild(conn: AsyncConnection, guild_id: int, now: datetime, **values: Any) -> None:
        """Update the guild's row, creating it first (callers hold the guild lock)."""
        where = guild_settings.c.guild_id == guild_id
        exists = (await conn.execute(select(guild_settings.c.guild_id).where(where))).first()
        if exists is None:
            await conn.execute(
                guild_settings.insert().values(
                    guild_id=guild_id, paused=False, exempt_role_ids=[], updated_at=now
                )
            )
        await conn.execute(update(guild_settings).where(where).values(updated_at=now, **values))

    @staticmethod
    async def _audit(
        conn: AsyncConnection,
        guild_id: int,
        actor_id: int,
        action: str,
        details: dict[str, Any],
        at: datetime,
    ) -> None:
        await write_audit(conn, guild_id=guild_id, actor_id=actor_id, action=action, details=details, at=at)
        await bump_version(conn, guild_id)


def _target(scope: PolicyScope, target_id: int | None) -> int:
    if scope is PolicyScope.GUILD:
        return 0
    if target_id is None:
        raise PolicyError(f"A {scope.value} policy needs the {scope.value} it applies to.")
    return target_id


def _policy_where(guild_id: int, scope: PolicyScope, target: int) -> Any:
    q = quota_policies.c
    return and_(q.guild_id == guild_id, q.scope == scope.value, q.target_id == target)


def _blocked_where(guild_id: int, user_id: int) -> Any:
    return and_(blocked_users.c.guild_id == guild_id, blocked_users.c.user_id == user_id)


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _dollars(value: Decimal | int | str) -> Decimal:
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation:
        raise PolicyError(f"The cost cap must be an amount in dollars, like 2.50 (got {value!r}).") from None
    if not amount.is_finite() or not Decimal(0) <= amount <= MAX_COST_CAP:
        raise PolicyError(f"The cost cap must be from $0 to ${MAX_COST_CAP:,} (got {value}).")
    return to_money(amount)
