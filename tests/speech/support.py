"""Helpers for the speech pipeline tests: settings for the emulator, an event recorder, and
direct reads of the rows a job leaves behind (jobs, parts, ledger)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select

from bot.config import Settings
from bot.gateway.emulator import EmulatorJob, GatewayEmulator
from bot.speech.events import SpeechEvent
from bot.store import Database
from bot.store.tables import job_parts, jobs, usage_ledger

E = TypeVar("E", bound=SpeechEvent)


def speech_settings(emulator: GatewayEmulator, database_url: str, **overrides: Any) -> Settings:
    """Settings for a service talking to ``emulator``: no .env, no cooldown, fast chunks."""
    values: dict[str, Any] = {
        "chatterbox_gateway_url": emulator.base_url,
        "chatterbox_api_key": emulator.api_key,
        "chatterbox_allow_http": True,
        "database_url": database_url,
        "cache_dir": _cache_dir(database_url),
        "quota_cooldown_seconds": 0,
        "quota_max_in_flight": 5,
        "chatterbox_chunk_chars": 60,
        "chatterbox_http_timeout": 10,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _cache_dir(database_url: str) -> str:
    """Next to a SQLite file, else a fresh temporary folder: never the working directory."""
    prefix = "sqlite+aiosqlite:///"
    if database_url.startswith(prefix):
        return str(Path(database_url.removeprefix(prefix)).parent / "cache")
    return tempfile.mkdtemp(prefix="chatterbox-cache-")


class EventLog:
    """An ``on_event`` callback that records events and lets a test wait for one."""

    def __init__(self, on_event: Callable[[SpeechEvent], None] | None = None) -> None:
        self.events: list[SpeechEvent] = []
        self._on_event = on_event
        self._changed = asyncio.Event()

    async def __call__(self, event: SpeechEvent) -> None:
        self.events.append(event)
        if self._on_event is not None:
            self._on_event(event)
        self._changed.set()
        self._changed = asyncio.Event()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    async def wait_for(self, kind: type[E], *, max_real_seconds: float = 20.0) -> E:
        """The first event of ``kind`` (waiting for it; the limit only guards against a hang)."""
        async with asyncio.timeout(max_real_seconds):
            while True:
                changed = self._changed
                found = self.of(kind)
                if found:
                    return found[0]
                await changed.wait()


async def count_rows(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        return {
            table.name: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            for table in (jobs, job_parts, usage_ledger)
        }


def emulator_job_for(emulator: GatewayEmulator, text: str) -> EmulatorJob:
    (job,) = [j for j in emulator.jobs.values() if j.text == text]
    return job
