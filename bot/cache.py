"""``AudioCache``: every chunk's audio kept once, so the same sentence in the same voice is paid once.

The key of a chunk is the SHA-256 of: its spoken text (after ``bot.speech.cleanup``), the
SHA-256 of the reference clip's *bytes* ("" for the built-in voice; a clip URL changes, its
bytes do not), the three tuning values and the provider's model id. A hit costs no request
and no quota; a miss is filled after the job completes. Hits are per chunk
(``lookup_chunks``): a request of which some chunks are cached makes and pays only the others
(``bot.speech.cached``); a job's cached part names its entry by ``cache_ref(key)`` in
``job_parts.media_url``, so a resumed job reads it again with ``read``.

Design decisions:

- Files under ``CACHE_DIR`` (two-character shard folders), indexed in the database
  (``audio_cache``), so several processes on one PostgreSQL share the index (and, with a
  shared folder, the files). Each row version has its own file name (key + a random suffix):
  replacing or evicting a row deletes only the file that row named, after its transaction
  committed, so no process can delete a file another row points to. New files are written to
  a temporary name and renamed into place: a reader sees a whole file or none.
- A missing, unreadable or damaged file (not a whole WAV) is a miss, never an error: the row
  is dropped and the chunk is made again (and paid) as if it had never been cached.
- Size: ``CACHE_MAX_MB`` caps the files' total; after each fill the least recently used rows
  are evicted (under one lock name, ``audio-cache``: SQLite's write lock / a PostgreSQL
  advisory lock) until the total fits. A hit refreshes ``last_used_at``. Entries an open job
  still needs (one of its parts is ``cached`` and the job is not delivered yet) are never
  evicted, so a job resumed after a restart finds them (the total may then exceed the cap
  until that job ends). ``CACHE_MAX_MB=0`` turns the cache off (lookups miss, fills store
  nothing; ``read`` still finds what an open job named, while its file exists).
- The model id is only known from the provider's answers (``model_id`` of a completed
  status), so a lookup uses the model id of the newest entry in the index: when the provider
  moves to a new model, the first new answer carries its id, from then on old entries miss
  and age out.
- Takes (``speech_takes``): one row per result a member got, named by its job id (or a new id
  for a cache hit). The result's Re-roll and Play in voice buttons name a take, so they work
  after a restart; a take finds its audio through the same keys. Takes older than
  ``TAKE_KEEP`` are pruned whenever a take is recorded (even with the cache off).
- Deleting a voice deletes everything made from it: ``forget_clip(sha256)`` drops its entries,
  their files and its takes.
- File I/O runs in a worker thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.audio import AudioError, wav_info
from bot.clock import Clock
from bot.gateway.models import TTSParams
from bot.store.database import Database
from bot.store.jobs import LIVE_STATES, PartState
from bot.store.tables import audio_cache, job_parts, jobs, speech_takes

log = logging.getLogger(__name__)

#: Bumped when the key's recipe changes, so old entries simply miss.
KEY_VERSION = 1
#: The clip hash of the built-in voice (no reference clip).
BUILTIN_VOICE = ""
#: Model id stored when the provider's answer named none.
UNKNOWN_MODEL = "unknown"
LOCK = "audio-cache"
EVICT_BATCH = 100
TAKE_KEEP = timedelta(days=30)
MIB = 1024 * 1024
#: How a job's ``cached`` part names its entry in ``job_parts.media_url``.
REF_PREFIX = "cache:"


def clip_sha256(data: bytes) -> str:
    """The hash a reference clip is cached under (of its bytes, not its URL)."""
    return hashlib.sha256(data).hexdigest()


def cache_key(text: str, clip: str, params: TTSParams, model_id: str) -> str:
    """The key of one chunk (see the module docstring)."""
    material = json.dumps(
        [KEY_VERSION, text, clip, f"{params.exaggeration:.6g}", f"{params.temperature:.6g}",
         f"{params.cfg:.6g}", model_id],
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def cache_ref(key: str) -> str:
    """What a job's cached part stores in ``media_url``: its entry's key, marked as such."""
    return REF_PREFIX + key


def key_of_ref(ref: str | None) -> str | None:
    """The key in a ``cache_ref``, or None when ``ref`` is not one."""
    if ref is None or not ref.startswith(REF_PREFIX):
        return None
    return ref.removeprefix(REF_PREFIX)


@dataclass(frozen=True)
class Hit:
    """One chunk found in the cache."""

    key: str
    audio: bytes


@dataclass(frozen=True)
class Lookup:
    """Which chunks of a request are cached (for the model the provider answered last)."""

    chunks: int
    model_id: str
    hits: Mapping[int, Hit]  # chunk index -> its cached audio

    @property
    def complete(self) -> bool:
        return len(self.hits) == self.chunks


@dataclass(frozen=True)
class Take:
    """One result a member got: what Re-roll and Play in voice need."""

    id: str
    user_id: int
    guild_id: int | None
    text: str
    chunks: tuple[str, ...]
    voice_url: str | None
    voice_name: str | None
    clip_sha256: str | None  # None: a clip whose bytes were not known (never cached)
    params: TTSParams
    model_id: str | None
    created_at: datetime


class AudioCache:
    """The cache of one process (see the module docstring)."""

    def __init__(self, db: Database, *, directory: Path, max_bytes: int, clock: Clock) -> None:
        self._db = db
        self._dir = Path(directory)
        self._max_bytes = max_bytes
        self._clock = clock

    @classmethod
    def from_settings(cls, db: Database, settings: Any, clock: Clock) -> AudioCache:
        return cls(db, directory=settings.cache_dir, max_bytes=settings.cache_max_mb * MIB, clock=clock)

    @property
    def enabled(self) -> bool:
        return self._max_bytes > 0

    @property
    def directory(self) -> Path:
        return self._dir

    # --- looking up --------------------------------------------------------------------------

    async def current_model(self) -> str | None:
        """The model id of the newest entry (what the provider answered last), or None."""
        async with self._db.read() as conn:
            return await _newest_model(conn)

    async def lookup(self, chunks: Sequence[str], clip: str | None, params: TTSParams) -> list[bytes] | None:
        """Every chunk's audio if each one is cached for the current model, else None."""
        found = await self.lookup_chunks(chunks, clip, params)
        if found is None or not found.complete:
            return None
        return [found.hits[i].audio for i in range(len(chunks))]

    async def lookup_chunks(
        self, chunks: Sequence[str], clip: str | None, params: TTSParams
    ) -> Lookup | None:
        """The chunks that are cached for the current model (perhaps none of them); None when
        nothing can be cached (the cache is off, the clip is known only by its URL, or
        nothing was ever cached)."""
        if not self.enabled or clip is None or not chunks:
            return None
        async with self._db.read() as conn:
            model = await _newest_model(conn)
        if model is None:
            return None
        keys = [cache_key(c, clip, params, model) for c in chunks]
        found = await self._fetch(keys, every=False)
        hits = {i: Hit(key, found[key]) for i, key in enumerate(keys) if key in found}
        return Lookup(chunks=len(chunks), model_id=model, hits=hits)

    async def get(self, keys: Sequence[str]) -> list[bytes] | None:
        """The audio under ``keys``, in order, if all are cached (refreshing their use)."""
        if not self.enabled or not keys:
            return None
        found = await self._fetch(keys, every=True)
        if len(found) < len(set(keys)):
            return None
        return [found[k] for k in keys]

    async def read(self, key: str) -> bytes | None:
        """One entry's audio (a resumed job's cached part), even with the cache off; None
        when it is gone (its row or its file)."""
        found = await self._fetch([key], every=True)
        return found.get(key)

    async def _fetch(self, keys: Sequence[str], *, every: bool) -> dict[str, bytes]:
        """The audio of those ``keys`` that are cached, refreshing their use. A missing or
        damaged file drops its row (a miss). ``every``: nothing unless all keys have a row."""
        wanted = list(dict.fromkeys(keys))
        async with self._db.read() as conn:
            rows = (await conn.execute(
                select(audio_cache.c.key, audio_cache.c.path).where(audio_cache.c.key.in_(wanted))
            )).all()
        paths = {row.key: row.path for row in rows}
        present = [key for key in wanted if key in paths]
        if not present or (every and len(present) < len(wanted)):
            return {}
        read = await asyncio.to_thread(_read_files, self._dir, [paths[k] for k in present])
        missing = [key for key, data in zip(present, read, strict=True) if data is None]
        if missing:
            log.warning("audio cache: %d file(s) missing or unreadable; treated as a miss", len(missing))
            await self._drop_rows({k: paths[k] for k in missing})
            if every:
                return {}
        audio = {key: data for key, data in zip(present, read, strict=True) if data is not None}
        if audio:
            now = self._clock.now()

            async def touch(conn: AsyncConnection) -> None:
                await conn.execute(
                    update(audio_cache).where(audio_cache.c.key.in_(list(audio))).values(last_used_at=now)
                )

            await self._db.write(touch)
        return audio

    # --- filling ---------------------------------------------------------------------------

    async def put(
        self, chunks: Sequence[tuple[str, bytes]], clip: str | None, params: TTSParams, model_id: str | None
    ) -> int:
        """Store each (spoken text, WAV) chunk, replacing what was there; return how many."""
        if not self.enabled or clip is None or not chunks:
            return 0
        model = model_id or UNKNOWN_MODEL
        entries = {cache_key(text, clip, params, model): audio for text, audio in chunks
                   if 0 < len(audio) <= self._max_bytes}
        if not entries:
            return 0
        names = {key: f"{key[:2]}/{key}-{uuid.uuid4().hex[:12]}.wav" for key in entries}
        await asyncio.to_thread(_write_files, self._dir, {names[k]: entries[k] for k in entries})
        now = self._clock.now()

        async def write(conn: AsyncConnection) -> list[str]:
            stale: list[str] = []
            existing = {row.key: row.path for row in (await conn.execute(
                select(audio_cache.c.key, audio_cache.c.path).where(audio_cache.c.key.in_(entries))
            ))}
            for key, audio in entries.items():
                values = {"clip_sha256": clip, "model_id": model, "path": names[key],
                          "size_bytes": len(audio), "created_at": now, "last_used_at": now}
                if key in existing:
                    stale.append(existing[key])
                    await conn.execute(update(audio_cache).where(audio_cache.c.key == key).values(**values))
                else:
                    await conn.execute(audio_cache.insert().values(key=key, **values))
            stale += await _evict(conn, self._max_bytes)
            return stale

        try:
            stale = await self._db.write(write, lock=LOCK)
        except BaseException:
            await asyncio.to_thread(_remove_files, self._dir, list(names.values()))
            raise
        if stale:
            await asyncio.to_thread(_remove_files, self._dir, stale)
        return len(entries)

    # --- forgetting ------------------------------------------------------------------------

    async def forget_clip(self, sha256: str) -> int:
        """Delete every entry and take made from the clip with this hash; return the entries."""

        async def write(conn: AsyncConnection) -> list[str]:
            paths = list((await conn.execute(
                select(audio_cache.c.path).where(audio_cache.c.clip_sha256 == sha256)
            )).scalars())
            await conn.execute(delete(audio_cache).where(audio_cache.c.clip_sha256 == sha256))
            await conn.execute(delete(speech_takes).where(speech_takes.c.clip_sha256 == sha256))
            return paths

        paths = await self._db.write(write, lock=LOCK)
        await asyncio.to_thread(_remove_files, self._dir, paths)
        log.info("audio cache: forgot %d entr(y/ies) of a deleted voice", len(paths))
        return len(paths)

    async def _drop_rows(self, rows: Mapping[str, str]) -> None:
        """Drop index rows whose file is gone (only if they still name that file)."""

        async def write(conn: AsyncConnection) -> None:
            for key, path in rows.items():
                await conn.execute(
                    delete(audio_cache).where(audio_cache.c.key == key, audio_cache.c.path == path)
                )

        await self._db.write(write, lock=LOCK)

    async def usage(self) -> tuple[int, int]:
        """(entries, bytes) in the index."""
        async with self._db.read() as conn:
            row = (await conn.execute(
                select(func.count(), func.coalesce(func.sum(audio_cache.c.size_bytes), 0))
            )).one()
        return int(row[0]), int(row[1])

    # --- takes -----------------------------------------------------------------------------

    async def record_take(self, take: Take) -> None:
        values = {
            "user_id": take.user_id, "guild_id": take.guild_id, "text": take.text,
            "chunks": list(take.chunks), "voice_url": take.voice_url, "voice_name": take.voice_name,
            "clip_sha256": take.clip_sha256, "params": take.params.model_dump(),
            "model_id": take.model_id, "created_at": take.created_at,
        }

        keep_after = self._clock.now() - TAKE_KEEP

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(delete(speech_takes).where(speech_takes.c.created_at < keep_after))
            query = select(speech_takes.c.id).where(speech_takes.c.id == take.id)
            if (await conn.execute(query)).first() is None:
                await conn.execute(speech_takes.insert().values(id=take.id, **values))
            else:
                await conn.execute(update(speech_takes).where(speech_takes.c.id == take.id).values(**values))

        await self._db.write(write)

    async def get_take(self, take_id: str) -> Take | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(speech_takes).where(speech_takes.c.id == take_id))).first()
        if row is None:
            return None
        return Take(
            id=row.id, user_id=row.user_id, guild_id=row.guild_id, text=row.text,
            chunks=tuple(row.chunks), voice_url=row.voice_url, voice_name=row.voice_name,
            clip_sha256=row.clip_sha256, params=TTSParams.model_validate(row.params),
            model_id=row.model_id, created_at=row.created_at,
        )

    async def take_audio(self, take: Take) -> list[bytes] | None:
        """The take's chunks from the cache (the audio it was made with), or None."""
        if take.clip_sha256 is None:
            return None
        model = take.model_id or UNKNOWN_MODEL
        return await self.get([cache_key(c, take.clip_sha256, take.params, model) for c in take.chunks])


async def _newest_model(conn: AsyncConnection) -> str | None:
    return (await conn.execute(
        select(audio_cache.c.model_id).order_by(audio_cache.c.created_at.desc()).limit(1)
    )).scalar_one_or_none()


async def _evict(conn: AsyncConnection, max_bytes: int) -> list[str]:
    """Delete least recently used rows until the total fits; return their files. Entries an
    open job's ``cached`` part names are kept (see the module docstring)."""
    total_query = select(func.coalesce(func.sum(audio_cache.c.size_bytes), 0))
    total = int((await conn.execute(total_query)).scalar_one())
    if total <= max_bytes:
        return []
    pinned = (  # open jobs by their status index, then their parts by primary key
        select(job_parts.c.media_url)
        .select_from(jobs.join(job_parts, job_parts.c.job_id == jobs.c.id))
        .where(and_(jobs.c.status.in_([s.value for s in LIVE_STATES]), jobs.c.delivered == false(),
                    job_parts.c.status == PartState.CACHED.value))
    )
    kept = sorted({key for key in map(key_of_ref, (await conn.execute(pinned)).scalars()) if key})
    evicted: list[str] = []
    while total > max_bytes:
        query = (
            select(audio_cache.c.key, audio_cache.c.path, audio_cache.c.size_bytes)
            .order_by(audio_cache.c.last_used_at, audio_cache.c.key).limit(EVICT_BATCH)
        )
        if kept:
            query = query.where(audio_cache.c.key.not_in(kept))
        rows = (await conn.execute(query)).all()
        if not rows:
            break
        doomed = []
        for row in rows:
            if total <= max_bytes:
                break
            doomed.append(row.key)
            evicted.append(row.path)
            total -= row.size_bytes
        await conn.execute(delete(audio_cache).where(audio_cache.c.key.in_(doomed)))
    if evicted:
        log.info("audio cache: evicted %d least recently used entr(y/ies)", len(evicted))
    return evicted


# --- file helpers (run in a worker thread) ----------------------------------------------------


def _read_files(root: Path, names: Sequence[str]) -> list[bytes | None]:
    """Each file's bytes, or None when it is gone, unreadable or not a whole WAV any more."""
    found: list[bytes | None] = []
    for name in names:
        try:
            data = (root / name).read_bytes()
            wav_info(data)
        except (OSError, AudioError):
            found.append(None)
        else:
            found.append(data)
    return found


def _write_files(root: Path, files: Mapping[str, bytes]) -> None:
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".part-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


def _remove_files(root: Path, names: Sequence[str]) -> None:
    for name in names:
        try:
            (root / name).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("audio cache: could not remove %s: %s", name, exc)
