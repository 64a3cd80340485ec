"""A real ``submitting`` part state instead of a marker string in ``job_parts.error``.

Before this revision the pipeline wrote ``error = 'submitting: POST sent, answer not
recorded'`` on a ``pending`` part right before its POST. Such rows become
``status = 'submitting'`` with the marker cleared; the downgrade turns them back.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: The marker string of revisions 0001-0002 (``bot.speech.runner.SUBMITTING_MARKER`` then).
LEGACY_MARKER = "submitting: POST sent, answer not recorded"

_parts = sa.table(
    "job_parts",
    sa.column("status", sa.String(10)),
    sa.column("error", sa.Text),
)


def upgrade() -> None:
    op.execute(
        _parts.update()
        .where(_parts.c.status == "pending", _parts.c.error == LEGACY_MARKER)
        .values(status="submitting", error=None)
    )


def downgrade() -> None:
    op.execute(
        _parts.update()
        .where(_parts.c.status == "submitting")
        .values(status="pending", error=LEGACY_MARKER)
    )
