"""``AudioCache`` per chunk: partial lookups, reads for resumed jobs, and entries open jobs pin.

Real databases (SQLite file and PostgreSQL, ``db``) and a real folder.
"""

from __future__ import annotations

from pathlib import Path

from bot.cache import AudioCache, cache_key, cache_ref
from bot.clock import ManualClock
from bot.store import Database, JobsRepository, JobState, NewJob, PartState
from tests.cache.test_audio_cache import CLIP, MODEL, PARAMS, cache_in, files, wav

A, B, C = wav(4), wav(5), wav(6)


async def test_lookup_chunks_reports_each_cached_chunk_and_a_missing_file_is_a_miss(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cache = cache_in(db, tmp_path / "cache", clock)
    assert await cache.lookup_chunks(["One.", "Two."], CLIP, PARAMS) is None  # nothing cached ever
    await cache.put([("Two.", B), ("Three.", C)], CLIP, PARAMS, MODEL)

    found = await cache.lookup_chunks(["One.", "Two.", "Three.", "Two."], CLIP, PARAMS)
    assert found is not None and not found.complete and found.model_id == MODEL
    assert {i: hit.audio for i, hit in found.hits.items()} == {1: B, 2: C, 3: B}
    assert found.hits[1].key == cache_key("Two.", CLIP, PARAMS, MODEL)
    assert await cache.lookup(["One.", "Two."], CLIP, PARAMS) is None  # all-or-nothing stays so

    three = next(p for p in files(tmp_path / "cache") if p.read_bytes() == C)
    three.unlink()
    found = await cache.lookup_chunks(["Two.", "Three."], CLIP, PARAMS)
    assert found is not None and list(found.hits) == [0]  # the missing file: a miss, its row gone
    assert await cache.usage() == (1, len(B))
    assert await cache.lookup_chunks(["Two."], None, PARAMS) is None  # a clip known only by URL


async def test_read_finds_an_entry_by_key_even_with_the_cache_turned_off(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    await cache_in(db, tmp_path / "cache", clock).put([("Kept.", A)], CLIP, PARAMS, MODEL)
    off = AudioCache(db, directory=tmp_path / "cache", max_bytes=0, clock=clock)
    key = cache_key("Kept.", CLIP, PARAMS, MODEL)

    assert await off.lookup_chunks(["Kept."], CLIP, PARAMS) is None  # off: no hits for new requests
    assert await off.read(key) == A  # but a job that was promised it still gets it
    assert await off.read("0" * 64) is None
    [path] = files(tmp_path / "cache")
    path.unlink()
    assert await off.read(key) is None


async def test_entries_an_open_job_needs_are_not_evicted_until_it_is_delivered(
    db: Database, tmp_path: Path, clock: ManualClock
) -> None:
    cap = len(B) + len(C)
    cache = cache_in(db, tmp_path / "cache", clock, max_bytes=cap)
    await cache.put([("Needed.", A)], CLIP, PARAMS, MODEL)
    clock.advance(1)
    await cache.put([("Newer.", B)], CLIP, PARAMS, MODEL)
    clock.advance(1)
    needed = cache_key("Needed.", CLIP, PARAMS, MODEL)
    repo = JobsRepository(db, clock)
    job = NewJob(user_id=1, user_display="a", guild_id=None, channel_id=None, text="Made. Needed.",
                 parts=["Made.", "Needed."], cached_parts={1: cache_ref(needed)})
    record = await repo.create(job)
    assert [p.status for p in record.parts] == [PartState.PENDING, PartState.CACHED]
    assert record.parts[1].media_url == cache_ref(needed)

    await cache.put([("Newest.", C)], CLIP, PARAMS, MODEL)  # over the cap
    # "Needed." is the least recently used, but the open job pins it: "Newer." goes instead.
    assert await cache.read(needed) == A
    assert await cache.lookup(["Newer."], CLIP, PARAMS) is None
    clock.advance(1)
    assert await cache.lookup(["Newest."], CLIP, PARAMS) == [C]

    assert await repo.transition(job.id, JobState.RESERVED, JobState.CANCELLED)
    clock.advance(1)
    await cache.put([("Later.", B)], CLIP, PARAMS, MODEL)  # the job is closed: nothing pinned
    assert await cache.lookup(["Needed."], CLIP, PARAMS) is None
    assert await cache.usage() == (2, len(C) + len(B))
