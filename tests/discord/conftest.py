"""Fixtures for Discord integration tests (see ``tests.discord.harness``).

- ``harness``: the default world with the bot running and commands synced.
- ``make_harness``: ``async with make_harness(settings={...}, emulator={...}) as h:`` for knobs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.discord.harness import Harness, open_harness

HarnessFactory = Callable[..., AbstractAsyncContextManager[Harness]]


@pytest.fixture
def make_harness(tmp_path: Path) -> HarnessFactory:
    """``open_harness`` bound to this test's ``tmp_path``; takes the same keyword knobs."""

    def factory(**knobs: Any) -> AbstractAsyncContextManager[Harness]:
        return open_harness(tmp_path, **knobs)

    return factory


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path) as h:
        yield h
