"""Where the provider fetches a saved voice's clip: a signed URL of ours, or a Discord message.

The provider needs an ``audio_url`` it can fetch while the job runs, and a saved voice lives
for months, so no URL is stored with the voice or with a job: a job stores the reference
``voice:<id>`` and ``VoiceAudio.fresh_audio_url`` (the ``bot.speech.voice_ref.VoiceUrlResolver``
that ``bot.services`` hands the speech pipeline) makes a URL right before each part's POST,
also for a job resumed after a restart, however long it waited. ``/speak`` only checks, when
it is asked, that the voice can be served (``VoiceAudio.check``: not revoked, somewhere to
live), so a refusal then costs nothing and leaves no job. Two ways to serve a clip:

* **Signed clip URLs** (with ``PUBLIC_BASE_URL``): ``{base}/clips/{id}.wav?exp=…&sig=…``
  served by the bot's own HTTP server (``bot.voices.web``). ``sig`` is HMAC-SHA256 over
  ``"{id}.{exp}"`` with a random key the bot creates once and keeps in the database
  (``bot_secrets``), so every process of the bot signs and verifies alike and the key never
  appears in settings or logs. URLs expire after ``VOICE_CLIP_URL_TTL_SECONDS`` (at most an
  hour); a revoked or deleted voice is refused at once however fresh its URL.
* **Discord re-hosting** (no ``PUBLIC_BASE_URL``): the clip is posted once as a file in the
  moderators' storage channel (``/voices storage``); before each job the bot fetches that
  message for a current CDN URL (Discord's CDN links expire within about a day). The posting
  and fetching need Discord, so they are behind the ``ClipHost`` protocol, implemented in
  ``cogs.voices.hosting`` and handed over by the ``cogs.voices`` extension
  (``VoiceAudio.use_host``) before the bot resumes any job; nothing here imports discord.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.speech.voice_ref import VoiceUnusable
from bot.store.database import Database
from bot.store.tables import bot_secrets
from bot.voices.errors import VoiceUnavailable
from bot.voices.library import Voice, VoiceLibrary

log = logging.getLogger(__name__)

KEY_NAME = "clip_url_key"
MAX_TTL_SECONDS = 3600
NO_HOST = "Saved voices can't be used from here (no Discord connection)."
NO_STORAGE = (
    "Saved voices need a place to keep their clips here: a moderator can pick a channel with "
    "`/voices storage`."
)


class ClipHost(Protocol):
    """Keeps clips as Discord messages (the fallback without ``PUBLIC_BASE_URL``)."""

    async def upload(self, channel_id: int, filename: str, data: bytes) -> int:
        """Post ``data`` as a file in ``channel_id``; the new message's id."""
        ...

    async def fresh_url(self, channel_id: int, message_id: int) -> str | None:
        """A current URL of that message's file; None when the message is gone."""
        ...


class ClipSigner:
    """Signs and checks clip URLs with the key kept in ``bot_secrets`` (made on first use)."""

    def __init__(self, db: Database, clock: Clock, *, ttl_seconds: float) -> None:
        if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError("clip URLs must expire within an hour")
        self._db = db
        self._clock = clock
        self._ttl = int(ttl_seconds)
        self._key: bytes | None = None

    async def key(self) -> bytes:
        if self._key is None:

            async def write(conn: AsyncConnection) -> str:
                found = (
                    await conn.execute(select(bot_secrets.c.value).where(bot_secrets.c.name == KEY_NAME))
                ).scalar_one_or_none()
                if found is not None:
                    return found
                value = secrets.token_hex(32)
                await conn.execute(
                    bot_secrets.insert().values(name=KEY_NAME, value=value, created_at=self._clock.now())
                )
                return value

            self._key = bytes.fromhex(await self._db.write(write, lock="bot_secrets"))
        return self._key

    def _sig(self, key: bytes, voice_id: str, exp: int) -> str:
        return hmac.new(key, f"{voice_id}.{exp}".encode(), hashlib.sha256).hexdigest()

    async def sign(self, voice_id: str) -> tuple[int, str]:
        exp = int(self._clock.now().timestamp()) + self._ttl
        return exp, self._sig(await self.key(), voice_id, exp)

    async def url(self, base_url: str, voice_id: str) -> str:
        exp, sig = await self.sign(voice_id)
        return f"{base_url.rstrip('/')}/clips/{voice_id}.wav?exp={exp}&sig={sig}"

    async def verify(self, voice_id: str, exp: int, sig: str) -> bool:
        """True when ``sig`` is ours for this voice and ``exp`` is still ahead (and not
        further ahead than a URL we would have made)."""
        now = int(self._clock.now().timestamp())
        if exp < now or exp > now + self._ttl:
            return False
        expected = self._sig(await self.key(), voice_id, exp)
        return hmac.compare_digest(expected, sig)


class VoiceAudio:
    """Turns a saved voice into an ``audio_url`` for one job (see the module docstring)."""

    def __init__(self, library: VoiceLibrary, signer: ClipSigner, *, public_base_url: str | None) -> None:
        self._library = library
        self._signer = signer
        self._base = public_base_url.rstrip("/") if public_base_url else None
        self._host: ClipHost | None = None

    @property
    def self_hosted(self) -> bool:
        return self._base is not None

    def use_host(self, host: ClipHost | None) -> None:
        """Where clips live on Discord without ``PUBLIC_BASE_URL`` (set by ``cogs.voices``)."""
        self._host = host

    async def check(self, voice: Voice) -> Voice:
        """The voice as it is now, when a job may use it: ``VoiceUnavailable`` when it was
        revoked or deleted since it was looked up, or has nowhere to live. Makes no URL (that
        happens at each POST, ``fresh_audio_url``) and calls no network."""
        current = await self._library.get(voice.id)
        if current is None:
            raise VoiceUnavailable(
                "deleted", f"The voice “{voice.name}” was deleted meanwhile; nothing was charged."
            )
        if current.revoked:
            raise VoiceUnavailable("revoked", f"The voice “{current.name}” was revoked and can't be used.")
        if self._base is None:
            if self._host is None:
                raise VoiceUnavailable("no_host", NO_HOST)
            if current.storage_message_id is None:
                limits = await self._library.limits(current.guild_id)
                if limits.storage_channel_id is None:
                    raise VoiceUnavailable("no_storage", NO_STORAGE)
        return current

    async def fresh_audio_url(self, voice_id: str, *, name: str | None = None) -> str:
        """``VoiceUrlResolver``: a URL for the POST about to be made; ``VoiceUnusable`` (the
        job fails there, the part is not sent) when the voice was deleted or revoked."""
        voice = await self._library.get(voice_id)
        if voice is None:
            which = f"“{name}”" if name else "of this request"
            raise VoiceUnusable(f"voice {voice_id} was deleted", user_message=(
                f"The voice {which} was deleted before this request was sent to the TTS service."))
        try:
            return await self.audio_url(voice, self._host)
        except VoiceUnavailable as exc:
            if exc.code == "revoked":
                message = (f"The voice “{voice.name}” was revoked by this server's moderators before this "
                           "request was sent to the TTS service.")
            elif exc.code in ("deleted", "unknown"):
                message = (f"The voice “{voice.name}” was deleted before this request was sent to the "
                           "TTS service.")
            else:
                message = exc.user_message
            raise VoiceUnusable(f"voice {voice_id}: {exc.code}", user_message=message) from None

    async def audio_url(self, voice: Voice, host: ClipHost | None) -> str:
        """A URL the provider can fetch now; ``VoiceUnavailable`` when the voice was revoked or
        deleted since it was looked up, or has nowhere to live."""
        current = await self._library.get(voice.id)
        if current is None:
            raise VoiceUnavailable(
                "deleted", f"The voice “{voice.name}” was deleted meanwhile; nothing was charged."
            )
        voice = current
        if voice.revoked:
            raise VoiceUnavailable("revoked", f"The voice “{voice.name}” was revoked and can't be used.")
        if self._base is not None:
            return await self._signer.url(self._base, voice.id)
        if host is None:
            raise VoiceUnavailable("no_host", NO_HOST)
        if voice.storage_channel_id is not None and voice.storage_message_id is not None:
            url = await host.fresh_url(voice.storage_channel_id, voice.storage_message_id)
            if url is not None:
                return url
            log.info("voice %s: its storage message is gone; posting the clip again", voice.id)
        limits = await self._library.limits(voice.guild_id)
        if limits.storage_channel_id is None:
            raise VoiceUnavailable("no_storage", NO_STORAGE)
        clip = await self._library.clip(voice.id)
        if clip is None:
            raise VoiceUnavailable("unknown", f"The voice “{voice.name}” was deleted meanwhile.")
        message_id = await host.upload(limits.storage_channel_id, f"voice-{voice.id}.wav", clip)
        await self._library.set_storage_message(voice.id, limits.storage_channel_id, message_id)
        url = await host.fresh_url(limits.storage_channel_id, message_id)
        if url is None:
            raise VoiceUnavailable(
                "no_storage", "The voice's clip could not be stored on Discord; try again."
            )
        return url
