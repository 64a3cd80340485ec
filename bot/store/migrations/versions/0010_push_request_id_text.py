"""Long provider ids in push delivery: ``push_callbacks.request_id`` and ``early_request_id``
become ``Text``, as ``job_parts.request_id`` did in 0004, so a ``request_id`` over 100
characters is stored on PostgreSQL too (SQLite never enforced the length).

The downgrade turns them back into ``String(100)``; on PostgreSQL it fails while a row holds
a longer id (nothing is cut short silently).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_COLUMNS = ("request_id", "early_request_id")


def upgrade() -> None:
    with op.batch_alter_table("push_callbacks") as batch:
        for column in _COLUMNS:
            batch.alter_column(column, type_=sa.Text, existing_type=sa.String(100), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("push_callbacks") as batch:
        for column in _COLUMNS:
            batch.alter_column(column, type_=sa.String(100), existing_type=sa.Text, existing_nullable=True)
