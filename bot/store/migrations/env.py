"""Alembic environment for the bot's database.

Two ways in:
- from the bot (``bot.store.migrate``): a synchronous ``Connection`` already inside a
  transaction arrives in ``config.attributes["connection"]``; migrations run on it and the
  caller commits. Logging is left alone (the bot configured it).
- from the ``alembic`` command line: the URL comes from ``-x url=…``, else ``DATABASE_URL`` /
  ``.env`` through the bot's settings, and ``-x schema=…`` optionally picks a PostgreSQL
  schema; the async engine is built the same way the bot builds it.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from bot.store.tables import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run_on(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _url_and_schema() -> tuple[str, str | None]:
    args = context.get_x_argument(as_dictionary=True)
    url = args.get("url")
    if not url:
        from bot.config import load_settings

        url = load_settings().database_url
    return url, args.get("schema")


async def _run_from_command_line() -> None:
    from bot.store.engine import create_engine
    from bot.store.migrate import lock_for_migrations

    url, schema = _url_and_schema()
    engine = create_engine(url, schema=schema)
    try:
        async with engine.begin() as conn:
            await lock_for_migrations(conn)
            await conn.run_sync(_run_on)
    finally:
        await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run_on(connection)
elif context.is_offline_mode():
    url, _ = _url_and_schema()
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    asyncio.run(_run_from_command_line())
