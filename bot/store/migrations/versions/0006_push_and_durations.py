"""Push delivery and the learned poll plan: webhook tokens (hashed) and observed durations.

``push_callbacks``: one row per submitted part that carried a webhook. ``token_hash`` is the
SHA-256 of the part's secret URL token (the token itself is never stored). ``request_id`` is
set after the 202; ``callback_at``/``callback_status`` record the first callback, so the
process that owns the wait finds it even when the callback reached another process.
``early_request_id`` keeps the request a callback named when it came before the 202 was
recorded. ``settled_at``: the wait is over; later callbacks are ignored.

``poll_durations``: one row (id 1) with the histogram weights of observed job durations
(``bot.gateway.polling.ObservedDurations``), so a restart does not forget them.

Revision ID: 0006
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.types import UTCDateTime

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "push_callbacks",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=True),
        sa.Column("early_request_id", sa.String(100), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("callback_at", UTCDateTime, nullable=True),
        sa.Column("callback_status", sa.String(10), nullable=True),
        sa.Column("settled_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_push_callbacks"),
    )
    op.create_index("ix_push_callbacks_request_id", "push_callbacks", ["request_id"])
    op.create_index("ix_push_callbacks_created_at", "push_callbacks", ["created_at"])
    op.create_table(
        "poll_durations",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("weights", sa.JSON, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_poll_durations"),
    )


def downgrade() -> None:
    op.drop_table("poll_durations")
    op.drop_index("ix_push_callbacks_created_at", table_name="push_callbacks")
    op.drop_index("ix_push_callbacks_request_id", table_name="push_callbacks")
    op.drop_table("push_callbacks")
