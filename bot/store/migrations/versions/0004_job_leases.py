"""Owned jobs: lease columns and a deadline on ``jobs``; long provider ids; the shared 429 hold.

- ``jobs.owner`` / ``jobs.lease_until``: the process working on an open job and until when
  its claim holds (renewed while it works; a reconciler claims jobs whose lease expired).
- ``jobs.deadline``: after it an open job is settled, its member told, and closed. Rows from
  before this revision have none; the service then counts from ``created_at``.
- ``job_parts.request_id`` becomes ``Text``: a provider id longer than 100 characters fits.
- ``bot_guard.rate_limited_until``: a gateway 429's Retry-After, so every process waits.

Revision ID: 0004
Revises: 0008
Create Date: 2026-01-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("deadline", UTCDateTime, nullable=True))
    op.create_index("ix_jobs_lease_until", "jobs", ["lease_until"])
    with op.batch_alter_table("job_parts") as batch:
        batch.alter_column("request_id", type_=sa.Text, existing_type=sa.String(100), existing_nullable=True)
    with op.batch_alter_table("bot_guard") as batch:
        batch.add_column(sa.Column("rate_limited_until", UTCDateTime, nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), not a batch copy: recreating ``jobs``
    # would drop the old table, and ``job_parts`` rows would go with it (ON DELETE CASCADE).
    op.drop_index("ix_jobs_lease_until", table_name="jobs")
    for table, column in (("bot_guard", "rate_limited_until"), ("jobs", "deadline"),
                          ("jobs", "lease_until"), ("jobs", "owner")):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    with op.batch_alter_table("job_parts") as batch:
        batch.alter_column("request_id", type_=sa.String(100), existing_type=sa.Text, existing_nullable=True)
