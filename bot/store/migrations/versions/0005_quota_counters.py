"""Quota counters: a row per guild-day and per member, and a policy version per guild.

The ledger gains ``quota_day`` (the start of the quota day each reservation counts in); the
counters are filled from the ledger's sums, so an upgraded database starts consistent
(``chatterbox-bot db verify`` checks it). The quota day of an existing row is computed with
the guild's reset hour, else ``QUOTA_RESET_HOUR_UTC`` (0 when unset or invalid).

Revision ID: 0005
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from bot.store.types import Money, UTCDateTime

revision = "0005"
down_revision = "0007"
branch_labels = None
depends_on = None

_ledger = sa.table(
    "usage_ledger",
    sa.column("id", sa.String),
    sa.column("guild_id", sa.BigInteger),
    sa.column("created_at", UTCDateTime),
    sa.column("quota_day", UTCDateTime),
)
_guilds = sa.table(
    "guild_settings", sa.column("guild_id", sa.BigInteger), sa.column("reset_hour_utc", sa.Integer)
)


def _default_hour() -> int:
    try:
        hour = int(os.environ.get("QUOTA_RESET_HOUR_UTC", "0"))
    except ValueError:
        return 0
    return hour if 0 <= hour <= 23 else 0


def _day_start(moment: datetime, hour: int) -> datetime:
    moment = moment.astimezone(UTC)
    start = moment.replace(hour=hour, minute=0, second=0, microsecond=0)
    return start if start <= moment else start - timedelta(days=1)


def _backfill_days(bind: sa.Connection) -> None:
    default = _default_hour()
    hours = {
        row.guild_id: row.reset_hour_utc
        for row in bind.execute(sa.select(_guilds.c.guild_id, _guilds.c.reset_hour_utc))
        if row.reset_hour_utc is not None
    }
    rows = bind.execute(sa.select(_ledger.c.id, _ledger.c.guild_id, _ledger.c.created_at)).all()
    for row in rows:
        day = _day_start(row.created_at, hours.get(row.guild_id, default))
        bind.execute(sa.update(_ledger).where(_ledger.c.id == row.id).values(quota_day=day))


_FILL_GUILD_DAYS = """
INSERT INTO quota_guild_days (guild_key, day, requests, characters, cost)
SELECT COALESCE(guild_id, 0), quota_day,
       SUM(CASE WHEN state <> 'refunded' THEN requests - refunded_requests ELSE 0 END),
       SUM(CASE WHEN state <> 'refunded' THEN characters ELSE 0 END),
       SUM(CASE WHEN state <> 'refunded' THEN cost ELSE 0 END)
FROM usage_ledger
GROUP BY COALESCE(guild_id, 0), quota_day
"""
_FILL_MEMBERS = """
INSERT INTO quota_members (guild_key, user_id, day, requests, characters, in_flight, last_request_at)
SELECT COALESCE(guild_id, 0), user_id, MAX(quota_day), 0, 0,
       SUM(CASE WHEN state = 'reserved' THEN 1 ELSE 0 END),
       MAX(CASE WHEN state <> 'refunded' AND forgiven_at IS NULL THEN created_at END)
FROM usage_ledger
GROUP BY COALESCE(guild_id, 0), user_id
"""
_MEMBER_DAY = """
FROM usage_ledger l
WHERE COALESCE(l.guild_id, 0) = quota_members.guild_key AND l.user_id = quota_members.user_id
  AND l.quota_day = quota_members.day AND l.forgiven_at IS NULL AND l.state <> 'refunded'
"""
_FILL_MEMBER_DAYS = f"""
UPDATE quota_members SET
  requests = (SELECT COALESCE(SUM(l.requests - l.refunded_requests), 0) {_MEMBER_DAY}),
  characters = (SELECT COALESCE(SUM(l.characters), 0) {_MEMBER_DAY})
"""


def upgrade() -> None:
    op.create_table(
        "quota_guild_days",
        sa.Column("guild_key", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("day", UTCDateTime, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("characters", sa.Integer, nullable=False),
        sa.Column("cost", Money, nullable=False),
        sa.PrimaryKeyConstraint("guild_key", "day", name="pk_quota_guild_days"),
    )
    op.create_table(
        "quota_members",
        sa.Column("guild_key", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("day", UTCDateTime, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("characters", sa.Integer, nullable=False),
        sa.Column("in_flight", sa.Integer, nullable=False),
        sa.Column("last_request_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("guild_key", "user_id", name="pk_quota_members"),
    )
    op.create_table(
        "quota_versions",
        sa.Column("guild_key", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("guild_key", name="pk_quota_versions"),
    )
    with op.batch_alter_table("usage_ledger") as batch:
        batch.add_column(sa.Column("quota_day", UTCDateTime, nullable=True))
    bind = op.get_bind()
    _backfill_days(bind)
    # (Left nullable: making it NOT NULL would rebuild the table on SQLite, which the jobs'
    # foreign key forbids inside the migration's transaction. Every writer sets it.)
    op.create_index("ix_usage_ledger_guild_day", "usage_ledger", ["guild_id", "quota_day"])
    for statement in (_FILL_GUILD_DAYS, _FILL_MEMBERS, _FILL_MEMBER_DAYS):
        bind.execute(sa.text(statement))


def downgrade() -> None:
    op.drop_index("ix_usage_ledger_guild_day", table_name="usage_ledger")
    with op.batch_alter_table("usage_ledger") as batch:
        batch.drop_column("quota_day")
    for name in ("quota_versions", "quota_members", "quota_guild_days"):
        op.drop_table(name)
