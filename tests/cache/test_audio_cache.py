"""``AudioCache`` against real databases (SQLite file and PostgreSQL) and a real folder."""

from __future__ import annotations

import io
import wave
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


def wav(frames: int) -> bytes:
    """A tiny valid 16-bit mono WAV of ``frames`` frames (the cache checks what it reads)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(24_000)
        writer.writeframes(bytes(2 * frames))
    return out.getvalue()


A, B, C = wav(1), wav(2), wav(3)


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.wav"))


async def test_a_stored_chunk_is_found_under_the_same_text_clip_tuning_and_model(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock)
    assert await cache.lookup(["Hello there."], CLIP, PARAMS) is None  # nothing known yet
    assert await cache.put([("Hello there.", A), ("Bye.", B)], CLIP, PARAMS, MODEL) == 2

    assert await cache.lookup(["Hello there.", "Bye."], CLIP, PARAMS) == [A, B]
    assert await cache.lookup(["Bye.", "Bye."], CLIP, PARAMS) == [B, B]
    # Any part of the key differing is a miss; a partly cached request is a miss.
    assert await cache.lookup(["Hello there."], CLIP, TTSParams(temperature=0.5)) is None
    assert await cache.lookup(["Hello there."], CLIP, TTSParams(exaggeration=0.9)) is None
    assert await cache.lookup(["Hello there."], CLIP, TTSParams(cfg=1.0)) is None
    assert await cache.lookup(["Hello there."], clip_sha256(b"another clip"), PARAMS) is None
    assert await cache.lookup(["Hello there.", "Unknown."], CLIP, PARAMS) is None
    assert await cache.lookup(["Hello there."], None, PARAMS) is None  # a clip known only by URL
    assert await cache.usage() == (2, len(A) + len(B))
    assert len(files(tmp_path / "cache")) == 2


async def test_a_new_model_id_makes_old_entries_miss(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock)
    await cache.put([("Same words.", A)], CLIP, PARAMS, "model-a")
    clock.advance(1)
    await cache.put([("Other words.", B)], CLIP, PARAMS, "model-b")

    assert await cache.current_model() == "model-b"
    assert await cache.lookup(["Same words."], CLIP, PARAMS) is None
    assert await cache.lookup(["Other words."], CLIP, PARAMS) == [B]
    assert cache_key("x", CLIP, PARAMS, "model-a") != cache_key("x", CLIP, PARAMS, "model-b")


async def test_files_removed_or_damaged_behind_its_back_are_a_miss_and_the_row_goes(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock)
    await cache.put([("Gone soon.", wav(1)), ("Damaged soon.", wav(2))], CLIP, PARAMS, MODEL)
    gone, damaged = sorted(files(tmp_path / "cache"), key=lambda p: p.stat().st_size)
    gone.unlink()
    damaged.write_bytes(b"RIFF\x00\x00")

    assert await cache.lookup(["Gone soon."], CLIP, PARAMS) is None
    assert await cache.lookup(["Damaged soon."], CLIP, PARAMS) is None
    assert await cache.usage() == (0, 0)
    await cache.put([("Gone soon.", wav(3))], CLIP, PARAMS, MODEL)  # filled again as usual
    assert await cache.lookup(["Gone soon."], CLIP, PARAMS) == [wav(3)]


async def test_replacing_an_entry_removes_the_old_file(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock)
    await cache.put([("Take one.", A)], CLIP, PARAMS, MODEL)
    [first] = files(tmp_path / "cache")
    await cache.put([("Take one.", B)], CLIP, PARAMS, MODEL)

    [second] = files(tmp_path / "cache")
    assert second != first and second.read_bytes() == B
    assert await cache.lookup(["Take one."], CLIP, PARAMS) == [B]


async def test_least_recently_used_entries_are_evicted_past_the_cap(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    sizes = {name: wav(frames) for name, frames in (("one", 3), ("two", 3), ("three", 5), ("four", 6))}
    cap = len(sizes["one"]) + len(sizes["three"]) + len(sizes["four"])  # 50 + 54 + 56 bytes
    cache = cache_in(db, tmp_path / "cache", clock, max_bytes=cap)
    for name in ("one", "two", "three"):
        await cache.put([(name, sizes[name])], CLIP, PARAMS, MODEL)
        clock.advance(1)
    assert await cache.lookup(["one"], CLIP, PARAMS) == [sizes["one"]]  # now "two" is the oldest use
    clock.advance(1)
    await cache.put([("four", sizes["four"])], CLIP, PARAMS, MODEL)  # over the cap: evict "two"

    assert await cache.lookup(["two"], CLIP, PARAMS) is None
    for name in ("one", "three", "four"):
        assert await cache.lookup([name], CLIP, PARAMS) is not None
    assert await cache.usage() == (3, cap)
    assert len(files(tmp_path / "cache")) == 3
    # A chunk larger than the whole cache is not stored at all.
    assert await cache.put([("huge", wav(cap))], CLIP, PARAMS, MODEL) == 0


async def test_forget_clip_deletes_its_entries_files_and_takes_only(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock)
    other = clip_sha256(b"someone else")
    await cache.put([("Mine.", A), ("Also mine.", B)], CLIP, PARAMS, MODEL)
    await cache.put([("Theirs.", C)], other, PARAMS, MODEL)
    for take_id, clip in (("t1", CLIP), ("t2", other)):
        await cache.record_take(Take(
            id=take_id, user_id=1, guild_id=2, text="x", chunks=("x",), voice_url=None, voice_name=None,
            clip_sha256=clip, params=PARAMS, model_id=MODEL, created_at=clock.now()))

    assert await cache.forget_clip(CLIP) == 2

    assert await cache.lookup(["Mine."], CLIP, PARAMS) is None
    assert await cache.get_take("t1") is None
    assert await cache.lookup(["Theirs."], other, PARAMS) == [C]
    assert (await cache.get_take("t2")) is not None
    assert [p.read_bytes() for p in files(tmp_path / "cache")] == [C]


async def test_cache_max_mb_zero_turns_it_off(db: Database, tmp_path: Path, clock: ManualClock) -> None:
    cache = cache_in(db, tmp_path / "cache", clock, max_bytes=0)
    assert not cache.enabled
    assert await cache.put([("Hello.", A)], CLIP, PARAMS, MODEL) == 0
    assert await cache.lookup(["Hello."], CLIP, PARAMS) is None
    assert not (tmp_path / "cache").exists()


async def test_two_processes_share_the_index(db_target: DbTarget, tmp_path: Path, clock: ManualClock) -> None:
    """Two engines on one database (as two bot processes with a shared CACHE_DIR)."""
    first_db, second_db = await db_target.open(), await db_target.open()
    try:
        first = cache_in(first_db, tmp_path / "shared", clock)
        second = cache_in(second_db, tmp_path / "shared", clock)
        await first.put([("Shared words.", A)], CLIP, PARAMS, MODEL)
        assert await second.lookup(["Shared words."], CLIP, PARAMS) == [A]
        assert await second.forget_clip(CLIP) == 1
        assert await first.lookup(["Shared words."], CLIP, PARAMS) is None
    finally:
        await first_db.close()
        await second_db.close()


async def test_takes_are_kept_thirty_days_even_with_the_cache_off(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock, max_bytes=0)

    def take(take_id: str) -> Take:
        return Take(id=take_id, user_id=1, guild_id=2, text="x", chunks=("x",), voice_url=None,
                    voice_name=None, clip_sha256="", params=PARAMS, model_id=None, created_at=clock.now())

    await cache.record_take(take("old"))
    clock.advance(29 * 86400)
    await cache.record_take(take("newer"))
    assert await cache.get_take("old") is not None
    clock.advance(2 * 86400)
    await cache.record_take(take("newest"))
    assert await cache.get_take("old") is None
    assert await cache.get_take("newer") is not None and await cache.get_take("newest") is not None
