"""The audio cache's index (one row per cached chunk) and the takes its result buttons name.

Revision ID: 0008
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.types import UTCDateTime

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audio_cache",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("clip_sha256", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("path", sa.String(200), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_used_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_audio_cache"),
    )
    op.create_index("ix_audio_cache_clip_sha256", "audio_cache", ["clip_sha256"])
    op.create_index("ix_audio_cache_last_used_at", "audio_cache", ["last_used_at"])
    op.create_index("ix_audio_cache_created_at", "audio_cache", ["created_at"])
    op.create_table(
        "speech_takes",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("guild_id", sa.BigInteger, nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("chunks", sa.JSON, nullable=False),
        sa.Column("voice_url", sa.Text, nullable=True),
        sa.Column("voice_name", sa.String(200), nullable=True),
        sa.Column("clip_sha256", sa.String(64), nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("model_id", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_speech_takes"),
    )
    op.create_index("ix_speech_takes_clip_sha256", "speech_takes", ["clip_sha256"])
    op.create_index("ix_speech_takes_created_at", "speech_takes", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_speech_takes_created_at", table_name="speech_takes")
    op.drop_index("ix_speech_takes_clip_sha256", table_name="speech_takes")
    op.drop_table("speech_takes")
    op.drop_index("ix_audio_cache_created_at", table_name="audio_cache")
    op.drop_index("ix_audio_cache_last_used_at", table_name="audio_cache")
    op.drop_index("ix_audio_cache_clip_sha256", table_name="audio_cache")
    op.drop_table("audio_cache")
