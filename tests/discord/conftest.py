"""Fixtures for Discord integration tests (see ``tests.discord.harness``).

- ``harness``: the default world with the bot running and commands synced.
- ``make_harness``: ``async with make_harness(settings={...}, emulator={...}) as h:`` for knobs.
- ``bot_db``: the bot's database, SQLite unless a module sets ``pytestmark =
  BOTH_DATABASES`` (``tests.discord.harness``); then each of its tests runs on SQLite and on
  PostgreSQL (a schema of its own, dropped afterwards; see ``tests.store.dbkit``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.discord.harness import Harness, open_harness
from tests.store.dbkit import DbTarget, fresh_postgres_schema

HarnessFactory = Callable[..., AbstractAsyncContextManager[Harness]]


@pytest.fixture
def bot_db(request: pytest.FixtureRequest) -> Iterator[DbTarget | None]:
    """None (the harness's SQLite file) or, parametrized ``"postgres"``, a fresh schema."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield None
        return
    with fresh_postgres_schema(request) as target:
        yield target


@pytest.fixture
def make_harness(tmp_path: Path, bot_db: DbTarget | None) -> HarnessFactory:
    """``open_harness`` bound to this test's ``tmp_path`` (and database); takes the same
    keyword knobs."""

    def factory(**knobs: Any) -> AbstractAsyncContextManager[Harness]:
        return open_harness(tmp_path, db=bot_db, **knobs)

    return factory


@pytest.fixture
async def harness(tmp_path: Path, bot_db: DbTarget | None) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path, db=bot_db) as h:
        yield h
