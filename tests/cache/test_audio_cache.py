"""``AudioCache`` against real databases (SQLite file and PostgreSQL) and a real folder."""

from __future__ import annotations

from pathlib import Path

from bot.cache import MIB, AudioCache, Take, cache_key, clip_sha256
from bot.clock import ManualClock
from bot.gateway.models import TTSParams
from bot.store import Database
from tests.store.dbkit import DbTarget

MODEL = "chatterbox-tts"
CLIP = clip_sha256(b"RIFF a voice clip")
PARAMS = TTSParams()


def cache_in(db: Database, folder: Path, clock: ManualClock, *, max_bytes: int = 64 * MIB) -> AudioCache:
    return AudioCache(db, directory=folder, max_bytes=max_bytes, clock=clock)


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.wav"))


async def test_a_stored_chunk_is_found_under_the_same_text_clip_tuning_and_model(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock)
    assert await cache.lookup(["Hello there."], CLIP, PARAMS) is None  # nothing known yet
    assert await cache.put([("Hello there.", b"wav-1"), ("Bye.", b"wav-2")], CLIP, PARAMS, MODEL) == 2

    assert await cache.lookup(["Hello there.", "Bye."], CLIP, PARAMS) == [b"wav-1", b"wav-2"]
    assert await cache.lookup(["Bye.", "Bye."], CLIP, PARAMS) == [b"wav-2", b"wav-2"]
    # Any part of the key differing is a miss; a partly cached request is a miss.
    assert await cache.lookup(["Hello there."], CLIP, TTSParams(temperature=0.5)) is None
    assert await cache.lookup(["Hello there."], CLIP, TTSParams(exaggeration=0.9)) is None
    assert await cache.lookup(["Hello there."], CLIP, TTSParams(cfg=1.0)) is None
    assert await cache.lookup(["Hello there."], clip_sha256(b"another clip"), PARAMS) is None
    assert await cache.lookup(["Hello there.", "Unknown."], CLIP, PARAMS) is None
    assert await cache.lookup(["Hello there."], None, PARAMS) is None  # a clip known only by URL
    assert await cache.usage() == (2, len(b"wav-1") + len(b"wav-2"))
    assert len(files(tmp_path / "cache")) == 2


async def test_a_new_model_id_makes_old_entries_miss(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock)
    await cache.put([("Same words.", b"old model")], CLIP, PARAMS, "model-a")
    clock.advance(1)
    await cache.put([("Other words.", b"new model")], CLIP, PARAMS, "model-b")

    assert await cache.current_model() == "model-b"
    assert await cache.lookup(["Same words."], CLIP, PARAMS) is None
    assert await cache.lookup(["Other words."], CLIP, PARAMS) == [b"new model"]
    assert cache_key("x", CLIP, PARAMS, "model-a") != cache_key("x", CLIP, PARAMS, "model-b")


async def test_files_removed_behind_its_back_are_a_miss_and_the_row_goes(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock)
    await cache.put([("Gone soon.", b"audio")], CLIP, PARAMS, MODEL)
    for path in files(tmp_path / "cache"):
        path.unlink()

    assert await cache.lookup(["Gone soon."], CLIP, PARAMS) is None
    assert await cache.usage() == (0, 0)
    await cache.put([("Gone soon.", b"again")], CLIP, PARAMS, MODEL)  # filled again as usual
    assert await cache.lookup(["Gone soon."], CLIP, PARAMS) == [b"again"]


async def test_replacing_an_entry_removes_the_old_file(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock)
    await cache.put([("Take one.", b"first take")], CLIP, PARAMS, MODEL)
    [first] = files(tmp_path / "cache")
    await cache.put([("Take one.", b"second take")], CLIP, PARAMS, MODEL)

    [second] = files(tmp_path / "cache")
    assert second != first and second.read_bytes() == b"second take"
    assert await cache.lookup(["Take one."], CLIP, PARAMS) == [b"second take"]


async def test_least_recently_used_entries_are_evicted_past_the_cap(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock, max_bytes=30)
    for name in ("one", "two", "three"):
        await cache.put([(name, name.encode() * 2)], CLIP, PARAMS, MODEL)  # 6, 6, 10 bytes
        clock.advance(1)
    assert await cache.lookup(["one"], CLIP, PARAMS) == [b"oneone"]  # now "two" is the oldest use
    clock.advance(1)
    await cache.put([("four", b"x" * 12)], CLIP, PARAMS, MODEL)  # 34 bytes > 30: evict "two"

    assert await cache.lookup(["two"], CLIP, PARAMS) is None
    for name in ("one", "three", "four"):
        assert await cache.lookup([name], CLIP, PARAMS) is not None
    assert await cache.usage() == (3, 28)
    assert len(files(tmp_path / "cache")) == 3
    # A chunk larger than the whole cache is not stored at all.
    assert await cache.put([("huge", b"y" * 31)], CLIP, PARAMS, MODEL) == 0


async def test_forget_clip_deletes_its_entries_files_and_takes_only(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock)
    other = clip_sha256(b"someone else")
    await cache.put([("Mine.", b"a"), ("Also mine.", b"b")], CLIP, PARAMS, MODEL)
    await cache.put([("Theirs.", b"c")], other, PARAMS, MODEL)
    for take_id, clip in (("t1", CLIP), ("t2", other)):
        await cache.record_take(Take(
            id=take_id, user_id=1, guild_id=2, text="x", chunks=("x",), voice_url=None, voice_name=None,
            clip_sha256=clip, params=PARAMS, model_id=MODEL, created_at=clock.now()))

    assert await cache.forget_clip(CLIP) == 2

    assert await cache.lookup(["Mine."], CLIP, PARAMS) is None
    assert await cache.get_take("t1") is None
    assert await cache.lookup(["Theirs."], other, PARAMS) == [b"c"]
    assert (await cache.get_take("t2")) is not None
    assert [p.read_bytes() for p in files(tmp_path / "cache")] == [b"c"]


async def test_cache_max_mb_zero_turns_it_off(db: Database, tmp_path: Path, clock: ManualClock) -> None:
    cache = cache_in(db, tmp_path / "cache", clock, max_bytes=0)
    assert not cache.enabled
    assert await cache.put([("Hello.", b"a")], CLIP, PARAMS, MODEL) == 0
    assert await cache.lookup(["Hello."], CLIP, PARAMS) is None
    assert not (tmp_path / "cache").exists()


async def test_two_processes_share_the_index(db_target: DbTarget, tmp_path: Path, clock: ManualClock) -> None:
    """Two engines on one database (as two bot processes with a shared CACHE_DIR)."""
    first_db, second_db = await db_target.open(), await db_target.open()
    try:
        first = cache_in(first_db, tmp_path / "shared", clock)
        second = cache_in(second_db, tmp_path / "shared", clock)
        await first.put([("Shared words.", b"made once")], CLIP, PARAMS, MODEL)
        assert await second.lookup(["Shared words."], CLIP, PARAMS) == [b"made once"]
        assert await second.forget_clip(CLIP) == 1
        assert await first.lookup(["Shared words."], CLIP, PARAMS) is None
    finally:
        await first_db.close()
        await second_db.close()
