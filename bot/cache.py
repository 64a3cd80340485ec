"""``AudioCache``: every chunk's audio kept once, so the same sentence in the same voice is paid once.

The key of a chunk is the SHA-256 of: its spoken text (after ``bot.speech.cleanup``), the
SHA-256 of the reference clip's *bytes* ("" for the built-in voice; a clip URL changes, its
bytes do not), the three tuning values and the provider's model id. A hit costs no request
and no quota; a miss is filled after the job completes.

Design decisions:

- Files under ``CACHE_DIR`` (two-character shard folders), indexed in the database
  (``audio_cache``), so several processes on one PostgreSQL share the index (and, with a
  shared folder, the files). Each row version has its own file name (key + a random suffix):
  replacing or evicting a row deletes only the file that row named, after its transaction
  committed, so no process can delete a file another row points to. New files are written to
  a temporary name and renamed into place: a reader sees a whole file or none.
- A missing or unreadable file is a miss, never an error: the row is dropped and the chunk is
  made again (and paid) as if it had never been cached.
- Size: ``CACHE_MAX_MB`` caps the files' total; after each fill the least recently used rows
  are evicted (under one lock name, ``audio-cache``: SQLite's write lock / a PostgreSQL
  advisory lock) until the total fits. A hit refreshes ``last_used_at``. ``CACHE_MAX_MB=0``
  turns the cache off (lookups miss, fills store nothing).
- The model id is only known from the provider's answers (``model_id`` of a completed
  status), so a lookup uses the model id of the newest entry in the index: when the provider
  moves to a new model, the first new answer carries its id, from then on old entries miss
  and age out.
- Takes (``speech_takes``): one row per result a member got, named by its job id (or a new id
  for a cache hit). The result's Re-roll and Play in voice buttons name a take, so they work
  after a restart; a take finds its audio through the same keys. Takes older than
  ``TAKE_KEEP`` are pruned when the cache is filled.
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

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.gateway.models import TTSParams
from bot.store.database import Database
from bot.store.tables import audio_cache, speech_takes

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
        if not self.enabled or clip is None or not chunks:
            return None
        async with self._db.read() as conn:
            model = await _newest_model(conn)
        if model is None:
            return None
        return await self.get([cache_key(c, clip, params, model) for c in chunks])

    async def get(self, keys: Sequence[str]) -> list[bytes] | None:
        """The audio under ``keys``, in order, if all are cached (refreshing their use)."""
        if not self.enabled or not keys:
            return None
        async with self._db.read() as conn:
            rows = (await conn.execute(
                select(audio_cache.c.key, audio_cache.c.path).where(audio_cache.c.key.in_(set(keys)))
            )).all()
        paths = {row.key: row.path for row in rows}
        if any(key not in paths for key in keys):
            return None
        found = await asyncio.to_thread(_read_files, self._dir, [paths[k] for k in dict.fromkeys(keys)])
        missing = [key for key, data in zip(dict.fromkeys(keys), found, strict=True) if data is None]
        if missing:
            log.warning("audio cache: %d file(s) missing or unreadable; treated as a miss", len(missing))
            await self._drop_rows({k: paths[k] for k in missing})
            return None
        audio = dict(zip(dict.fromkeys(keys), found, strict=True))
        now = self._clock.now()

        async def touch(conn: AsyncConnection) -> None:
            await conn.execute(
                update(audio_cache).where(audio_cache.c.key.in_(set(keys))).values(last_used_at=now)
            )

        await self._db.write(touch)
        return [audio[k] for k in keys]  # type: ignore[misc]  # none is None here

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
        keep_takes_after = now - TAKE_KEEP

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
            await conn.execute(delete(speech_takes).where(speech_takes.c.created_at < keep_takes_after))
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

        async def write(conn: AsyncConnection) -> None:
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
    """Delete least recently used rows until the total fits; return their files."""
    total_query = select(func.coalesce(func.sum(audio_cache.c.size_bytes), 0))
    total = int((await conn.execute(total_query)).scalar_one())
    evicted: list[str] = []
    while total > max_bytes:
        rows = (await conn.execute(
            select(audio_cache.c.key, audio_cache.c.path, audio_cache.c.size_bytes)
            .order_by(audio_cache.c.last_used_at, audio_cache.c.key).limit(EVICT_BATCH)
        )).all()
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
    found: list[bytes | None] = []
    for name in names:
        try:
            found.append((root / name).read_bytes())
        except OSError:
            found.append(None)
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
