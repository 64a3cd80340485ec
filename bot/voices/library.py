"""``VoiceLibrary``: saved voices with consent — add, find, share, rename, delete, defaults, revoke.

Rules (DESIGN rule 7), and how they are kept:

* **Consent first.** ``add`` refuses unless the uploader stated consent; the statement (who,
  when) is stored on the voice and written to the audit log (``voice.add``).
* **Private by default.** A member's voice is usable only by its owner until shared with the
  server (``scope="server"``). Presets (``scope="preset"``) are added by moderators and usable
  by everyone in that server. A voice belongs to the server it was added in.
* **Revocable.** ``revoke`` marks the voice revoked; every lookup (``resolve``, the signed clip
  URL, autocomplete) skips revoked voices, so it stops working at once, in every process.
* **Deletable.** ``delete`` removes the row: the clip, its preview and (through the foreign
  key) members' defaults pointing at it.

Limits (voices per member, per server, who may clone) are checked inside the same write
transaction as the insert, under a per-server lock (``Database.write(lock=...)``), so two
concurrent adds cannot both squeeze under a limit. Names are unique per owner per server (and
among a server's presets); the unique index is the final word when two adds race.

Lookups for autocomplete are one indexed range query on ``(guild_id, name_key)`` capped at 25
rows (Discord's maximum number of choices): ``name_key >= prefix AND name_key < prefix+U+FFFF``
rather than ``LIKE``, because SQLite only uses an index for a case-sensitive ``LIKE``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.config import Settings
from bot.store.database import Database
from bot.store.ids import new_id
from bot.store.tables import audit_log, jobs, voice_defaults, voice_guild_settings, voices
from bot.voices.clips import NormalisedClip
from bot.voices.errors import VoiceError, VoiceUnavailable

NAME_MAX = 32
AUTOCOMPLETE_LIMIT = 25
SCOPES = ("private", "server")
CLONE_POLICIES = ("everyone", "moderators")
#: Letters, digits, spaces and ``- ' .``; it must start with a letter or digit. Anything else
#: (``*_~`|<>@#:`` …) would be Discord markup or a mention when the name is shown.
_NAME = re.compile(r"[^\W_][\w .'-]*")
_REF = re.compile(r"id:([0-9a-f]{32})")


@dataclass(frozen=True, slots=True)
class Voice:
    """A saved voice, without its clip bytes."""

    id: str
    guild_id: int
    owner_id: int
    name: str
    scope: str
    clip_sha256: str
    clip_seconds: float
    exaggeration: float | None
    temperature: float | None
    cfg: float | None
    storage_channel_id: int | None
    storage_message_id: int | None
    has_preview: bool
    revoked: bool
    revoke_reason: str | None
    created_at: datetime

    @property
    def is_preset(self) -> bool:
        return self.scope == "preset"

    @property
    def ref(self) -> str:
        """The value autocomplete hands back: unambiguous even when names repeat."""
        return f"id:{self.id}"


@dataclass(frozen=True, slots=True)
class VoiceLimits:
    max_per_member: int
    max_per_server: int
    clone_policy: str
    storage_channel_id: int | None


@dataclass(frozen=True, slots=True)
class MemberDefaults:
    """A member's /speak defaults in one server; ``voice`` is None when unset or unusable."""

    voice: Voice | None
    exaggeration: float | None
    temperature: float | None
    cfg: float | None
    #: Why a saved default voice is not used any more (revoked, made private), else None.
    voice_problem: str | None = None


@dataclass(frozen=True, slots=True)
class JobReport:
    """What the moderators see about a reported result: who asked, with which voice, what."""

    job_id: str
    guild_id: int | None
    user_id: int
    text: str
    voice: Voice | None


#: A saved voice's id in a job's ``voice_url``: the reference ``voice:{id}`` that jobs store
#: (``bot.speech.voice_ref``), or, in rows written before that, its URL ``/clips/{id}.wav`` or
#: ``voice-{id}.wav``.
_VOICE_IN_URL = re.compile(r"^voice:([0-9a-f]{32})$|(?:/clips/|voice-)([0-9a-f]{32})\.wav")


def voice_id_in_url(url: str | None) -> str | None:
    match = _VOICE_IN_URL.search(url or "")
    return (match.group(1) or match.group(2)) if match else None


_SUMMARY_COLUMNS = [c for c in voices.c if c.name not in ("clip", "preview")]


def _voice(row: Row[Any]) -> Voice:
    m = row._mapping
    return Voice(
        id=m["id"],
        guild_id=m["guild_id"],
        owner_id=m["owner_id"],
        name=m["name"],
        scope=m["scope"],
        clip_sha256=m["clip_sha256"],
        clip_seconds=m["clip_seconds"],
        exaggeration=m["exaggeration"],
        temperature=m["temperature"],
        cfg=m["cfg"],
        storage_channel_id=m["storage_channel_id"],
        storage_message_id=m["storage_message_id"],
        has_preview=bool(m["has_preview"]),
        revoked=m["revoked_at"] is not None,
        revoke_reason=m["revoke_reason"],
        created_at=m["created_at"],
    )


def _select_voices() -> Any:
    return select(*_SUMMARY_COLUMNS, voices.c.preview.is_not(None).label("has_preview"))


def name_key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold().strip()


def check_name(name: str) -> str:
    """The cleaned name, or ``VoiceError`` saying what is wrong with it."""
    cleaned = " ".join(unicodedata.normalize("NFKC", name).split())
    if not cleaned:
        raise VoiceError("name_empty", "The voice needs a name (1 to 32 characters).")
    if len(cleaned) > NAME_MAX:
        raise VoiceError("name_long", f"That name is {len(cleaned)} characters; the limit is {NAME_MAX}.")
    if _REF.fullmatch(cleaned) or not _NAME.fullmatch(cleaned):
        raise VoiceError(
            "name_markup",
            "A voice name may hold letters, digits, spaces and - ' . only (no markup, mentions or emoji), "
            "and must start with a letter or digit.",
        )
    return cleaned


def _visible_to(user_id: int) -> Any:
    return or_(voices.c.scope.in_(("server", "preset")), voices.c.owner_id == user_id)


def usable_query(guild_id: int, user_id: int, typed: str, limit: int = AUTOCOMPLETE_LIMIT) -> Any:
    """The autocomplete query: a range scan of ``ix_voices_guild_name``, at most ``limit`` rows."""
    key = name_key(typed)
    query = _select_voices().where(
        voices.c.guild_id == guild_id,
        voices.c.revoked_at.is_(None),
        _visible_to(user_id),
    )
    if key:
        query = query.where(voices.c.name_key >= key, voices.c.name_key < key + "\uffff")
    return query.order_by(voices.c.guild_id, voices.c.name_key).limit(min(limit, AUTOCOMPLETE_LIMIT))


class VoiceLibrary:
    """The voice library of one process (see the module docstring)."""

    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock

    # -- limits -------------------------------------------------------------------------

    async def limits(self, guild_id: int) -> VoiceLimits:
        async with self._db.read() as conn:
            return await self._limits(conn, guild_id)

    async def _limits(self, conn: AsyncConnection, guild_id: int) -> VoiceLimits:
        row = (
            await conn.execute(
                select(voice_guild_settings).where(voice_guild_settings.c.guild_id == guild_id)
            )
        ).first()
        s = self._settings
        if row is None:
            return VoiceLimits(s.voices_per_member, s.voices_per_server, "everyone", None)
        m = row._mapping
        return VoiceLimits(
            m["max_per_member"] if m["max_per_member"] is not None else s.voices_per_member,
            m["max_per_server"] if m["max_per_server"] is not None else s.voices_per_server,
            m["clone_policy"],
            m["storage_channel_id"],
        )

    async def set_limits(
        self,
        guild_id: int,
        *,
        actor_id: int,
        max_per_member: int | None = None,
        max_per_server: int | None = None,
        clone_policy: str | None = None,
    ) -> VoiceLimits:
        if clone_policy is not None and clone_policy not in CLONE_POLICIES:
            raise VoiceError("bad_policy", f"`who` must be one of {', '.join(CLONE_POLICIES)}.")
        for label, value in (("per_member", max_per_member), ("per_server", max_per_server)):
            if value is not None and not 0 <= value <= 1000:
                raise VoiceError("bad_limit", f"`{label}` must be from 0 to 1000.")
        changes: dict[str, Any] = {
            k: v
            for k, v in (
                ("max_per_member", max_per_member),
                ("max_per_server", max_per_server),
                ("clone_policy", clone_policy),
            )
            if v is not None
        }

        async def write(conn: AsyncConnection) -> VoiceLimits:
            await self._upsert_settings(conn, guild_id, actor_id, changes)
            await self._audit(conn, guild_id, actor_id, "voice.limits", changes)
            return await self._limits(conn, guild_id)

        return await self._db.write(write, lock=f"voices:{guild_id}")

    async def set_storage_channel(self, guild_id: int, channel_id: int | None, *, actor_id: int) -> None:
        async def write(conn: AsyncConnection) -> None:
            await self._upsert_settings(conn, guild_id, actor_id, {"storage_channel_id": channel_id})
            await self._audit(conn, guild_id, actor_id, "voice.storage", {"channel_id": channel_id})

        await self._db.write(write, lock=f"voices:{guild_id}")

    async def _upsert_settings(
        self, conn: AsyncConnection, guild_id: int, actor_id: int, changes: dict[str, Any]
    ) -> None:
        values = {**changes, "updated_by": actor_id, "updated_at": self._clock.now()}
        done = await conn.execute(
            update(voice_guild_settings).where(voice_guild_settings.c.guild_id == guild_id).values(**values)
        )
        if done.rowcount == 0:
            await conn.execute(voice_guild_settings.insert().values(guild_id=guild_id, **values))

    # -- adding -------------------------------------------------------------------------

    async def check_can_add(
        self,
        guild_id: int,
        user_id: int,
        name: str,
        *,
        consent: bool,
        is_moderator: bool,
        preset: bool = False,
    ) -> str:
        """Everything ``add`` will refuse for, checked before the clip is downloaded.

        Returns the cleaned name. ``add`` checks again atomically; this is so a member at a
        limit is told before spending a download and an FFmpeg run.
        """
        cleaned = check_name(name)
        if not consent:
            raise VoiceError(
                "no_consent",
                "Nothing was saved: set `consent` to True only if you are the person speaking in the clip "
                "or have their permission to clone their voice.",
            )
        async with self._db.read() as conn:
            await self._check_room(conn, guild_id, user_id, cleaned, is_moderator=is_moderator, preset=preset)
        return cleaned

    async def _check_room(
        self,
        conn: AsyncConnection,
        guild_id: int,
        user_id: int,
        name: str,
        *,
        is_moderator: bool,
        preset: bool,
    ) -> None:
        limits = await self._limits(conn, guild_id)
        if not preset and limits.clone_policy == "moderators" and not is_moderator:
            raise VoiceError("clone_forbidden", "In this server only moderators may add voices.")
        owner_key = 0 if preset else user_id
        taken = (
            await conn.execute(
                select(voices.c.id).where(
                    voices.c.guild_id == guild_id,
                    voices.c.owner_key == owner_key,
                    voices.c.name_key == name_key(name),
                )
            )
        ).first()
        if taken is not None:
            whose = "This server already has a voice" if preset else "You already have a voice"
            raise VoiceError(
                "name_taken", f"{whose} named “{name}”; pick another name or delete that one first."
            )
        in_server = (
            await conn.execute(select(func.count()).select_from(voices).where(voices.c.guild_id == guild_id))
        ).scalar_one()
        if in_server >= limits.max_per_server:
            raise VoiceError(
                "server_full", f"This server has reached its limit of {limits.max_per_server} voices."
            )
        if not preset:
            mine = (
                await conn.execute(
                    select(func.count())
                    .select_from(voices)
                    .where(voices.c.guild_id == guild_id, voices.c.owner_key == user_id)
                )
            ).scalar_one()
            if mine >= limits.max_per_member:
                raise VoiceError(
                    "member_full",
                    f"You have {mine} voices, the limit here is {limits.max_per_member}: delete one first "
                    "(`/voices delete`).",
                )

    async def add(
        self,
        guild_id: int,
        user_id: int,
        name: str,
        clip: NormalisedClip,
        *,
        consent: bool,
        is_moderator: bool = False,
        preset: bool = False,
        tuning: tuple[float | None, float | None, float | None] = (None, None, None),
    ) -> Voice:
        """Save a voice (``preset=True``: a server voice added by moderator ``user_id``)."""
        cleaned = await self.check_can_add(
            guild_id, user_id, name, consent=consent, is_moderator=is_moderator, preset=preset
        )
        now = self._clock.now()
        voice_id = new_id()
        scope = "preset" if preset else "private"

        async def write(conn: AsyncConnection) -> None:
            await self._check_room(conn, guild_id, user_id, cleaned, is_moderator=is_moderator, preset=preset)
            await conn.execute(
                voices.insert().values(
                    id=voice_id,
                    guild_id=guild_id,
                    owner_id=user_id,
                    owner_key=0 if preset else user_id,
                    name=cleaned,
                    name_key=name_key(cleaned),
                    scope=scope,
                    clip=clip.wav,
                    clip_sha256=clip.sha256,
                    clip_seconds=clip.seconds,
                    exaggeration=tuning[0],
                    temperature=tuning[1],
                    cfg=tuning[2],
                    consent_by=user_id,
                    consent_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
            await self._audit(
                conn,
                guild_id,
                user_id,
                "voice.add",
                {
                    "voice_id": voice_id,
                    "name": cleaned,
                    "scope": scope,
                    "consent": True,
                    "clip_sha256": clip.sha256,
                },
            )

        try:
            await self._db.write(write, lock=f"voices:{guild_id}")
        except IntegrityError:
            raise VoiceError(
                "name_taken", f"A voice named “{cleaned}” was just added; pick another name."
            ) from None
        found = await self.get(voice_id)
        assert found is not None
        return found

    # -- finding ------------------------------------------------------------------------

    async def get(self, voice_id: str) -> Voice | None:
        async with self._db.read() as conn:
            row = (await conn.execute(_select_voices().where(voices.c.id == voice_id))).first()
        return _voice(row) if row is not None else None

    async def clip(self, voice_id: str) -> bytes | None:
        """The clip of a usable (not revoked, not deleted) voice, for the clip URL."""
        async with self._db.read() as conn:
            return (
                await conn.execute(
                    select(voices.c.clip).where(voices.c.id == voice_id, voices.c.revoked_at.is_(None))
                )
            ).scalar_one_or_none()

    async def usable(
        self, guild_id: int, user_id: int, typed: str = "", *, limit: int = AUTOCOMPLETE_LIMIT
    ) -> list[Voice]:
        """Voices ``user_id`` may use in ``guild_id`` whose name starts with ``typed``, by name."""
        async with self._db.read() as conn:
            return [_voice(row) for row in await conn.execute(usable_query(guild_id, user_id, typed, limit))]

    async def owned(self, guild_id: int, user_id: int) -> list[Voice]:
        """The member's own voices here, revoked ones included (they should see why)."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                _select_voices()
                .where(voices.c.guild_id == guild_id, voices.c.owner_key == user_id)
                .order_by(voices.c.name_key)
            )
            return [_voice(row) for row in rows]

    async def resolve(self, guild_id: int, user_id: int, typed: str) -> Voice:
        """The voice ``typed`` names for this member here (an autocomplete ``id:`` value or a
        name; own voices first, then server presets, then voices shared by others)."""
        ref = _REF.fullmatch(typed.strip())
        async with self._db.read() as conn:
            if ref is not None:
                rows = list(
                    await conn.execute(
                        _select_voices().where(voices.c.id == ref.group(1), voices.c.guild_id == guild_id)
                    )
                )
            else:
                rows = list(
                    await conn.execute(
                        _select_voices().where(
                            voices.c.guild_id == guild_id, voices.c.name_key == name_key(typed)
                        )
                    )
                )
        candidates = [_voice(row) for row in rows]
        label = typed if ref is None else (candidates[0].name if candidates else "that voice")
        if not candidates:
            raise VoiceUnavailable(
                "unknown",
                f"There is no voice named “{label}” here (it may have been deleted). "
                "`/voices list` shows the ones you can use.",
            )
        rank = {"own": 0, "preset": 1, "server": 2}

        def order(v: Voice) -> int:
            if v.owner_id == user_id and not v.is_preset:
                return rank["own"]
            return rank["preset"] if v.is_preset else rank["server"] if v.scope == "server" else 9

        visible = sorted((v for v in candidates if order(v) < 9), key=order)
        usable = [v for v in visible if not v.revoked]
        if usable:
            return usable[0]
        if visible:
            reason = f" ({visible[0].revoke_reason})" if visible[0].revoke_reason else ""
            raise VoiceUnavailable(
                "revoked",
                f"The voice “{visible[0].name}” was revoked by this server's "
                f"moderators{reason} and can't be used.",
            )
        raise VoiceUnavailable("private", f"The voice “{label}” is private to its owner.")

    async def _own(
        self, conn: AsyncConnection, guild_id: int, user_id: int, name: str, *, is_moderator: bool
    ) -> Voice:
        """A voice the member manages: their own by name, else (moderators) a preset."""
        key = name_key(name)
        ref = _REF.fullmatch(name.strip())
        where = [voices.c.guild_id == guild_id]
        where.append(voices.c.id == ref.group(1) if ref else voices.c.name_key == key)
        rows = [_voice(r) for r in await conn.execute(_select_voices().where(*where))]
        for voice in rows:
            if voice.owner_id == user_id and not voice.is_preset:
                return voice
        for voice in rows:
            if voice.is_preset and is_moderator:
                return voice
        if any(v.is_preset for v in rows):
            raise VoiceError("not_yours", "That is a server voice; only moderators can change it.")
        raise VoiceUnavailable(
            "unknown", f"You have no voice named “{name}” here. `/voices list` shows yours."
        )

    # -- changing -----------------------------------------------------------------------

    async def share(self, guild_id: int, user_id: int, name: str, scope: str) -> Voice:
        if scope not in SCOPES:
            raise VoiceError("bad_scope", f"`scope` must be one of {', '.join(SCOPES)}.")

        async def write(conn: AsyncConnection) -> str:
            voice = await self._own(conn, guild_id, user_id, name, is_moderator=False)
            if voice.revoked:
                raise VoiceUnavailable("revoked", f"“{voice.name}” was revoked here and can't be shared.")
            await conn.execute(
                update(voices)
                .where(voices.c.id == voice.id)
                .values(scope=scope, updated_at=self._clock.now())
            )
            await self._audit(conn, guild_id, user_id, "voice.share", {"voice_id": voice.id, "scope": scope})
            return voice.id

        voice_id = await self._db.write(write, lock=f"voices:{guild_id}")
        return await self._must_get(voice_id)

    async def rename(
        self, guild_id: int, user_id: int, name: str, new_name: str, *, is_moderator: bool = False
    ) -> Voice:
        cleaned = check_name(new_name)

        async def write(conn: AsyncConnection) -> str:
            voice = await self._own(conn, guild_id, user_id, name, is_moderator=is_moderator)
            owner_key = 0 if voice.is_preset else user_id
            clash = (
                await conn.execute(
                    select(voices.c.id).where(
                        voices.c.guild_id == guild_id,
                        voices.c.owner_key == owner_key,
                        voices.c.name_key == name_key(cleaned),
                        voices.c.id != voice.id,
                    )
                )
            ).first()
            if clash is not None:
                raise VoiceError(
                    "name_taken", f"There is already a voice named “{cleaned}”; pick another name."
                )
            await conn.execute(
                update(voices)
                .where(voices.c.id == voice.id)
                .values(name=cleaned, name_key=name_key(cleaned), updated_at=self._clock.now())
            )
            await self._audit(
                conn,
                guild_id,
                user_id,
                "voice.rename",
                {"voice_id": voice.id, "from": voice.name, "to": cleaned},
            )
            return voice.id

        voice_id = await self._db.write(write, lock=f"voices:{guild_id}")
        return await self._must_get(voice_id)

    async def delete(self, guild_id: int, user_id: int, name: str, *, is_moderator: bool = False) -> Voice:
        """Delete the voice with its clip and preview; defaults pointing at it are cleared."""

        async def write(conn: AsyncConnection) -> Voice:
            voice = await self._own(conn, guild_id, user_id, name, is_moderator=is_moderator)
            await self._delete_rows(conn, [voice.id])
            await self._audit(
                conn, guild_id, user_id, "voice.delete", {"voice_id": voice.id, "name": voice.name}
            )
            return voice

        return await self._db.write(write, lock=f"voices:{guild_id}")

    @staticmethod
    async def _delete_rows(conn: AsyncConnection, voice_ids: Sequence[str]) -> None:
        if not voice_ids:
            return
        # Explicit, not only ON DELETE SET NULL: that needs SQLite's foreign_keys pragma.
        await conn.execute(
            update(voice_defaults).where(voice_defaults.c.voice_id.in_(voice_ids)).values(voice_id=None)
        )
        await conn.execute(delete(voices).where(voices.c.id.in_(voice_ids)))

    async def revoke(
        self, guild_id: int, moderator_id: int, name: str, *, owner_id: int | None, reason: str
    ) -> Voice:
        """Stop a voice working in this server at once (moderators)."""
        reason = " ".join(reason.split())[:200]

        async def write(conn: AsyncConnection) -> str:
            ref = _REF.fullmatch(name.strip())
            where = [voices.c.guild_id == guild_id]
            where.append(voices.c.id == ref.group(1) if ref else voices.c.name_key == name_key(name))
            if owner_id is not None:
                where.append(and_(voices.c.owner_id == owner_id, voices.c.scope != "preset"))
            rows = [_voice(r) for r in await conn.execute(_select_voices().where(*where))]
            live = [v for v in rows if not v.revoked]
            if not rows:
                raise VoiceUnavailable("unknown", f"There is no voice named “{name}” here.")
            if not live:
                raise VoiceError("already_revoked", f"“{rows[0].name}” is already revoked.")
            if len(live) > 1:
                raise VoiceError("ambiguous", f"Several voices are named “{name}”: pick the `owner` too.")
            voice = live[0]
            await conn.execute(
                update(voices)
                .where(voices.c.id == voice.id)
                .values(
                    revoked_at=self._clock.now(),
                    revoked_by=moderator_id,
                    revoke_reason=reason or None,
                    updated_at=self._clock.now(),
                )
            )
            await self._audit(
                conn,
                guild_id,
                moderator_id,
                "voice.revoke",
                {"voice_id": voice.id, "owner_id": voice.owner_id, "reason": reason},
            )
            return voice.id

        voice_id = await self._db.write(write, lock=f"voices:{guild_id}")
        return await self._must_get(voice_id)

    async def revoke_by_id(self, guild_id: int, moderator_id: int, voice_id: str, *, reason: str) -> Voice:
        return await self.revoke(guild_id, moderator_id, f"id:{voice_id}", owner_id=None, reason=reason)

    async def job_report(self, job_id: str) -> JobReport | None:
        """The reported job's requester, text and saved voice (None when the job is unknown)."""
        async with self._db.read() as conn:
            row = (await conn.execute(select(jobs.c.guild_id, jobs.c.user_id, jobs.c.text, jobs.c.voice_url)
                                      .where(jobs.c.id == job_id))).first()
        if row is None:
            return None
        voice_id = voice_id_in_url(row.voice_url)
        voice = await self.get(voice_id) if voice_id else None
        return JobReport(job_id, row.guild_id, row.user_id, row.text, voice)

    async def record_report(self, guild_id: int, reporter_id: int, details: dict[str, Any]) -> None:
        """Keep a member's report in the audit log (the alert itself is the cog's job)."""
        await self._db.write(lambda conn: self._audit(conn, guild_id, reporter_id, "voice.report", details))

    # -- storage on Discord ---------------------------------------------------------------

    async def set_storage_message(self, voice_id: str, channel_id: int, message_id: int) -> None:
        await self._db.write(
            lambda conn: conn.execute(
                update(voices)
                .where(voices.c.id == voice_id)
                .values(storage_channel_id=channel_id, storage_message_id=message_id)
            )
        )

    # -- previews -----------------------------------------------------------------------

    async def preview(self, voice_id: str) -> bytes | None:
        async with self._db.read() as conn:
            return (
                await conn.execute(select(voices.c.preview).where(voices.c.id == voice_id))
            ).scalar_one_or_none()

    async def store_preview(self, voice_id: str, audio: bytes) -> None:
        await self._db.write(
            lambda conn: conn.execute(update(voices).where(voices.c.id == voice_id).values(preview=audio))
        )

    # -- defaults -----------------------------------------------------------------------

    async def set_defaults(
        self,
        guild_id: int,
        user_id: int,
        *,
        voice: str | None,
        clear_voice: bool = False,
        exaggeration: float | None = None,
        temperature: float | None = None,
        cfg: float | None = None,
    ) -> MemberDefaults:
        """Set the given fields (None leaves a field as it is; ``clear_voice`` unsets the voice)."""
        chosen = await self.resolve(guild_id, user_id, voice) if voice else None
        changes: dict[str, Any] = {
            k: v
            for k, v in (("exaggeration", exaggeration), ("temperature", temperature), ("cfg", cfg))
            if v is not None
        }
        if chosen is not None:
            changes["voice_id"] = chosen.id
        elif clear_voice:
            changes["voice_id"] = None
        now = self._clock.now()

        async def write(conn: AsyncConnection) -> None:
            done = await conn.execute(
                update(voice_defaults)
                .where(voice_defaults.c.guild_id == guild_id, voice_defaults.c.user_id == user_id)
                .values(**changes, updated_at=now)
            )
            if done.rowcount == 0:
                await conn.execute(
                    voice_defaults.insert().values(
                        guild_id=guild_id, user_id=user_id, updated_at=now, **changes
                    )
                )

        await self._db.write(write, lock=f"voices:{guild_id}")
        return await self.defaults(guild_id, user_id)

    async def defaults(self, guild_id: int, user_id: int) -> MemberDefaults:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(voice_defaults).where(
                        voice_defaults.c.guild_id == guild_id, voice_defaults.c.user_id == user_id
                    )
                )
            ).first()
        if row is None:
            return MemberDefaults(None, None, None, None)
        m = row._mapping
        voice: Voice | None = None
        problem: str | None = None
        if m["voice_id"] is not None:
            try:
                voice = await self.resolve(guild_id, user_id, f"id:{m['voice_id']}")
            except VoiceUnavailable as exc:
                problem = exc.user_message
        return MemberDefaults(voice, m["exaggeration"], m["temperature"], m["cfg"], problem)

    # -- helpers ------------------------------------------------------------------------

    async def _must_get(self, voice_id: str) -> Voice:
        voice = await self.get(voice_id)
        if voice is None:
            raise VoiceUnavailable("unknown", "That voice was deleted meanwhile.")
        return voice

    async def _audit(
        self,
        conn: AsyncConnection,
        guild_id: int | None,
        actor_id: int | None,
        action: str,
        details: dict[str, Any],
    ) -> None:
        await conn.execute(
            audit_log.insert().values(
                guild_id=guild_id, actor_id=actor_id, action=action, details=details, at=self._clock.now()
            )
        )
