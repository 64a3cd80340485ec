"""The learned durations survive a restart: saved to ``poll_durations``, loaded by a new view."""

from __future__ import annotations

import pytest

from bot.clock import ManualClock
from bot.gateway import ObservedDurations
from bot.store.database import Database
from bot.store.durations import DurationsStore


async def test_durations_round_trip_through_the_database(db: Database) -> None:
    store = DurationsStore(db, ManualClock())
    fresh = ObservedDurations()
    assert await store.load(fresh) is False  # nothing stored yet: the prior stands

    seen = ObservedDurations()
    for seconds in [4.0, 6.0, 9.0, 14.0] * 25:
        seen.record(seconds)
    await store.save(seen)
    assert not seen.dirty
    seen.record(7.0)
    await store.save(seen)  # the second save updates the one row

    restarted = ObservedDurations()
    assert await store.load(restarted) is True
    assert restarted.samples == 101
    for q in (0.02, 0.5, 0.98):
        assert restarted.quantile(q) == pytest.approx(seen.quantile(q), rel=0.01)
    assert restarted.quantile(0.02) > 3.5  # not the fresh prior's ~1 s


async def test_saving_nothing_new_writes_nothing(db: Database) -> None:
    store = DurationsStore(db, ManualClock())
    await store.save(ObservedDurations())  # never recorded: no row
    assert await store.load(ObservedDurations()) is False
