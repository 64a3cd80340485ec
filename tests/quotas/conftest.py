from __future__ import annotations

import pytest

from bot.clock import ManualClock
from bot.config import Settings
from bot.quotas import QuotaService, WalletGuard
from bot.store import Database
from tests.store.dbkit import db, db_target, postgres_target

__all__ = ["db", "db_target", "postgres_target"]


def make_settings(**overrides: object) -> Settings:
    """Settings with the documented defaults, untouched by the environment or a .env file."""
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def quotas(db: Database, settings: Settings, clock: ManualClock) -> QuotaService:
    return QuotaService(db, settings, clock)


@pytest.fixture
def wallet(db: Database, clock: ManualClock) -> WalletGuard:
    return WalletGuard(db, clock, probe_interval=600)
