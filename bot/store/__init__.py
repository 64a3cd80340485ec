"""The database: SQLAlchemy 2 async Core tables, Alembic migrations, the jobs repository.

``open_database(url)`` builds the engine (SQLite file with WAL, or PostgreSQL) and migrates to
the newest revision; ``upgrade(url)`` is ``chatterbox-bot db upgrade``.
"""

from bot.store.database import Database, open_database
from bot.store.engine import DatabaseUrlError
from bot.store.ids import new_id
from bot.store.jobs import (
    KEEP,
    InvalidTransition,
    JobRecord,
    JobsRepository,
    JobState,
    NewJob,
    PartChange,
    PartRecord,
    PartState,
)
from bot.store.migrate import current_revision, head_revision, upgrade

__all__ = [
    "KEEP",
    "Database",
    "DatabaseUrlError",
    "InvalidTransition",
    "JobRecord",
    "JobState",
    "JobsRepository",
    "NewJob",
    "PartChange",
    "PartRecord",
    "PartState",
    "current_revision",
    "head_revision",
    "new_id",
    "open_database",
    "upgrade",
]
