"""Initial schema: guild settings, quota policies, blocks, usage ledger, jobs, bot guard.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.types import Money, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

POLICY_FIELDS = (
    "requests_per_day",
    "chars_per_day",
    "cooldown_seconds",
    "max_in_flight",
    "max_chars_per_request",
)


def upgrade() -> None:
    op.create_table(
        "guild_settings",
        sa.Column("guild_id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("alert_channel_id", sa.BigInteger, nullable=True),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("paused_by", sa.BigInteger, nullable=True),
        sa.Column("paused_at", UTCDateTime, nullable=True),
        sa.Column("pause_reason", sa.Text, nullable=True),
        sa.Column("daily_request_budget", sa.Integer, nullable=True),
        sa.Column("daily_cost_cap", Money, nullable=True),
        sa.Column("exempt_role_ids", sa.JSON, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("reset_hour_utc", sa.Integer, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("guild_id", name="pk_guild_settings"),
    )
    op.create_table(
        "quota_policies",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger, nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("target_id", sa.BigInteger, nullable=False),
        *(sa.Column(name, sa.Integer, nullable=True) for name in POLICY_FIELDS),
        sa.Column("updated_by", sa.BigInteger, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_quota_policies"),
        sa.UniqueConstraint("guild_id", "scope", "target_id", name="uq_quota_policies_target"),
    )
    op.create_table(
        "blocked_users",
        sa.Column("guild_id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("blocked_by", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("blocked_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("guild_id", "user_id", name="pk_blocked_users"),
    )
    op.create_table(
        "usage_ledger",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("guild_id", sa.BigInteger, nullable=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("characters", sa.Integer, nullable=False),
        sa.Column("price_per_request", Money, nullable=False),
        sa.Column("cost", Money, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("committed_requests", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("refunded_requests", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("settled_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_usage_ledger"),
    )
    op.create_index(
        "ix_usage_ledger_guild_user_created", "usage_ledger", ["guild_id", "user_id", "created_at"]
    )
    op.create_index("ix_usage_ledger_guild_created", "usage_ledger", ["guild_id", "created_at"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("user_display", sa.String(100), nullable=False),
        sa.Column("guild_id", sa.BigInteger, nullable=True),
        sa.Column("channel_id", sa.BigInteger, nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("voice_url", sa.Text, nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("chunk_count", sa.Integer, nullable=False),
        sa.Column("reservation_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("delivery", sa.JSON, nullable=False),
        sa.Column("delivered", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("webhook_secret", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("completed_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(
            ["reservation_id"], ["usage_ledger.id"], name="fk_jobs_reservation_id_usage_ledger"
        ),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_table(
        "job_parts",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("idx", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(100), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("media_url", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "idx", name="pk_job_parts"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_parts_job_id_jobs", ondelete="CASCADE"
        ),
    )
    bot_guard = op.create_table(
        "bot_guard",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("epoch", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("since", UTCDateTime, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("paused_by", sa.String(100), nullable=True),
        sa.Column("alert_sent", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("last_probe_at", UTCDateTime, nullable=True),
        sa.Column("probe_in_flight", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("resumed_by", sa.String(100), nullable=True),
        sa.Column("resumed_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_bot_guard"),
    )
    op.bulk_insert(bot_guard, [{"id": 1, "paused": False, "epoch": 0, "alert_sent": False,
                                "probe_in_flight": False}])


def downgrade() -> None:
    for table in ("bot_guard", "job_parts", "jobs", "usage_ledger", "blocked_users",
                  "quota_policies", "guild_settings"):
        op.drop_table(table)
