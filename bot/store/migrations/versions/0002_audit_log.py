"""Audit log of moderator actions; moderators can reset a member's usage for the day.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.BigInteger, nullable=True),
        sa.Column("actor_id", sa.BigInteger, nullable=True),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_guild_at", "audit_log", ["guild_id", "at"])
    with op.batch_alter_table("usage_ledger") as batch:
        batch.add_column(sa.Column("forgiven_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_ledger") as batch:
        batch.drop_column("forgiven_at")
    op.drop_index("ix_audit_log_guild_at", table_name="audit_log")
    op.drop_table("audit_log")
