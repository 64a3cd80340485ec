"""A guild's quota configuration (settings, policies, blocked members), cached per process.

A reservation needs the guild's settings, every policy that may apply and whether the member
is blocked. Reading those on every request costs three queries and grows with the number of
policies, so each process keeps one ``GuildConfig`` per guild and reuses it while the guild's
version number in ``quota_versions`` is unchanged. Every moderator change bumps that number in
its own transaction (``bump_version``, called from ``QuotaAdmin``'s audit write), so another
process sees the change at its next reservation: the reservation's member upsert returns the
version (``bot.quotas.counters.take_member``) and a reservation decided on an older copy is
run again with the fresh one. The check is exact (no time-based staleness) and costs no extra
round trip; reports and the refusal path read the version with ``get``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.quotas.guilds import GuildSettings, load_guild_settings
from bot.quotas.policy import Policy, PolicyScope, PolicySource, ResolvedPolicy, resolve, source_of
from bot.store.tables import blocked_users, quota_policies, quota_versions

MAX_CACHED_GUILDS = 10_000


@dataclass(frozen=True)
class GuildConfig:
    settings: GuildSettings
    guild_policy: Policy | None = None
    role_policies: dict[int, Policy] = field(default_factory=dict)
    user_policies: dict[int, Policy] = field(default_factory=dict)
    blocked: frozenset[int] = frozenset()

    def policy_for(self, defaults: ResolvedPolicy, user_id: int, role_ids: Sequence[int]) -> ResolvedPolicy:
        roles = [self.role_policies[r] for r in role_ids if r in self.role_policies]
        return resolve(defaults, guild=self.guild_policy, roles=roles, user=self.user_policies.get(user_id))

    def source_of(self, name: str, user_id: int, role_ids: Sequence[int]) -> PolicySource:
        roles = [self.role_policies[r] for r in role_ids if r in self.role_policies]
        return source_of(name, guild=self.guild_policy, roles=roles, user=self.user_policies.get(user_id))

    def exempt(self, role_ids: Sequence[int]) -> bool:
        return bool(self.settings.exempt_role_ids.intersection(role_ids))


async def read_version(conn: AsyncConnection, guild_id: int) -> int:
    t = quota_versions.c
    version = (await conn.execute(select(t.version).where(t.guild_key == guild_id))).scalar()
    return 0 if version is None else int(version)


async def bump_version(conn: AsyncConnection, guild_id: int) -> None:
    """Mark every process's cached configuration of the guild stale (same transaction as the change)."""
    t = quota_versions.c
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(quota_versions)
    await conn.execute(
        insert.values(guild_key=guild_id, version=1).on_conflict_do_update(
            index_elements=[t.guild_key], set_={"version": t.version + 1}
        )
    )


async def load_config(conn: AsyncConnection, guild_id: int) -> GuildConfig:
    settings = await load_guild_settings(conn, guild_id)
    guild: Policy | None = None
    roles: dict[int, Policy] = {}
    users: dict[int, Policy] = {}
    for row in await conn.execute(select(quota_policies).where(quota_policies.c.guild_id == guild_id)):
        policy = Policy.from_mapping(row._mapping)
        if row.scope == PolicyScope.GUILD.value:
            guild = policy
        elif row.scope == PolicyScope.ROLE.value:
            roles[row.target_id] = policy
        elif row.scope == PolicyScope.USER.value:
            users[row.target_id] = policy
    blocked = frozenset(
        row[0]
        for row in await conn.execute(
            select(blocked_users.c.user_id).where(blocked_users.c.guild_id == guild_id)
        )
    )
    return GuildConfig(settings, guild, roles, users, blocked)


class GuildConfigCache:
    """``get(conn, guild_id)``: the guild's configuration, re-read only when its version moved."""

    def __init__(self) -> None:
        self._cached: dict[int, tuple[int, GuildConfig]] = {}

    def peek(self, guild_id: int) -> tuple[int, GuildConfig] | None:
        """The cached (version, configuration), without asking the database."""
        return self._cached.get(guild_id)

    def forget(self, guild_id: int) -> None:
        self._cached.pop(guild_id, None)

    async def get(self, conn: AsyncConnection, guild_id: int) -> GuildConfig:
        version = await read_version(conn, guild_id)
        hit = self._cached.get(guild_id)
        if hit is not None and hit[0] == version:
            return hit[1]
        config = await load_config(conn, guild_id)
        if len(self._cached) >= MAX_CACHED_GUILDS:
            self._cached.pop(next(iter(self._cached)))
        self._cached[guild_id] = (version, config)
        return config
