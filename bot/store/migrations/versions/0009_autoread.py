"""Hands-free reading: per-server settings and the members who opted in.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.types import UTCDateTime

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "autoread_settings",
        sa.Column("guild_id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("text_channel_id", sa.BigInteger, nullable=False),
        sa.Column("voice_channel_id", sa.BigInteger, nullable=True),
        sa.Column("announce", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("join_on_first_speaker", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("updated_by", sa.BigInteger, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("guild_id", name="pk_autoread_settings"),
    )
    op.create_table(
        "autoread_members",
        sa.Column("guild_id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("opted_in_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("guild_id", "user_id", name="pk_autoread_members"),
    )


def downgrade() -> None:
    op.drop_table("autoread_members")
    op.drop_table("autoread_settings")
