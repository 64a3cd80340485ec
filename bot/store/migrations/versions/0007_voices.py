"""Saved voices: the voice library, members' defaults, servers' voice rules, bot secrets.

Only adds tables; no existing row is read or changed.

Revision ID: 0007
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.types import UTCDateTime

revision = "0007"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voices",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("guild_id", sa.BigInteger, nullable=False),
        sa.Column("owner_id", sa.BigInteger, nullable=False),
        sa.Column("owner_key", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("name_key", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("clip", sa.LargeBinary, nullable=False),
        sa.Column("clip_sha256", sa.String(64), nullable=False),
        sa.Column("clip_seconds", sa.Float, nullable=False),
        sa.Column("exaggeration", sa.Float, nullable=True),
        sa.Column("temperature", sa.Float, nullable=True),
        sa.Column("cfg", sa.Float, nullable=True),
        sa.Column("consent_by", sa.BigInteger, nullable=False),
        sa.Column("consent_at", UTCDateTime, nullable=False),
        sa.Column("storage_channel_id", sa.BigInteger, nullable=True),
        sa.Column("storage_message_id", sa.BigInteger, nullable=True),
        sa.Column("preview", sa.LargeBinary, nullable=True),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.Column("revoked_by", sa.BigInteger, nullable=True),
        sa.Column("revoke_reason", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_voices"),
        sa.UniqueConstraint("guild_id", "owner_key", "name_key", name="uq_voices_owner_name"),
    )
    op.create_index("ix_voices_guild_name", "voices", ["guild_id", "name_key"])
    op.create_index("ix_voices_owner", "voices", ["owner_id"])
    op.create_table(
        "voice_defaults",
        sa.Column("guild_id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("voice_id", sa.String(32), nullable=True),
        sa.Column("exaggeration", sa.Float, nullable=True),
        sa.Column("temperature", sa.Float, nullable=True),
        sa.Column("cfg", sa.Float, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["voice_id"], ["voices.id"], name="fk_voice_defaults_voice_id_voices", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("guild_id", "user_id", name="pk_voice_defaults"),
    )
    op.create_table(
        "voice_guild_settings",
        sa.Column("guild_id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("max_per_member", sa.Integer, nullable=True),
        sa.Column("max_per_server", sa.Integer, nullable=True),
        sa.Column("clone_policy", sa.String(10), nullable=False, server_default=sa.text("'everyone'")),
        sa.Column("storage_channel_id", sa.BigInteger, nullable=True),
        sa.Column("updated_by", sa.BigInteger, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("guild_id", name="pk_voice_guild_settings"),
    )
    op.create_table(
        "bot_secrets",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_bot_secrets"),
    )


def downgrade() -> None:
    op.drop_table("bot_secrets")
    op.drop_table("voice_guild_settings")
    op.drop_table("voice_defaults")
    op.drop_index("ix_voices_owner", table_name="voices")
    op.drop_index("ix_voices_guild_name", table_name="voices")
    op.drop_table("voices")
