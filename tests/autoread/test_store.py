"""``AutoreadStore`` on SQLite and PostgreSQL: settings saved and replaced, opt-in and opt-out."""

from __future__ import annotations

from bot.autoread.store import AutoreadSettings, AutoreadStore
from bot.clock import ManualClock
from bot.store.database import Database


async def test_settings_are_saved_replaced_and_turned_off(db: Database) -> None:
    store = AutoreadStore(db, ManualClock())
    assert await store.settings(1) is None
    first = AutoreadSettings(guild_id=1, text_channel_id=10)
    await store.save(first, actor_id=7)
    assert await store.settings(1) == first  # join on first speaker by default, no announce
    second = AutoreadSettings(
        guild_id=1, text_channel_id=11, voice_channel_id=20, announce=True, join_on_first_speaker=False
    )
    await store.save(second, actor_id=7)
    assert await store.settings(1) == second
    assert await store.settings(2) is None
    assert await store.turn_off(1) is True
    assert await store.turn_off(1) is False
    assert await store.settings(1) is None


async def test_opting_in_and_out_is_per_member_and_server(db: Database) -> None:
    store = AutoreadStore(db, ManualClock())
    assert await store.set_opt_in(1, 100, True) is True
    assert await store.set_opt_in(1, 100, True) is False  # already in
    assert await store.set_opt_in(1, 101, True) is True
    assert await store.opted_in(1, 100) and not await store.opted_in(2, 100)
    assert await store.opted_in_count(1) == 2
    assert await store.set_opt_in(1, 100, False) is True
    assert await store.set_opt_in(1, 100, False) is False
    assert not await store.opted_in(1, 100)
    assert await store.opted_in_count(1) == 1
    await store.turn_off(1)
    assert await store.opted_in(1, 101)  # a server turning reading off keeps members' choices
