"""``AutoreadService``: the hands-free reading core of one bot (settings, opt-ins, readers).

The Discord layer builds it with a ``ReadOutlet`` (reactions and the voice player) and a
``VoiceLookup`` (members' default voices: ``cogs.autoread.voices``; the built-in voice for
everyone when none is given) and hands it each message as an ``IncomingMessage``; the rules
(``bot.autoread.rules``), the opt-in check and the text cleanup happen here, the queueing and
the money in ``GuildReader``.

Decisions: a server's settings are cached in memory after the first read and refreshed by
``save_settings``/``turn_off`` in this process (one bot process per token, see DESIGN); the
opt-in is read from the database for every candidate message of the reading channel, so an
opt-out takes effect at once. A member's display name is used for the "… said" announcement.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.autoread.cleaning import default_cleaner
from bot.autoread.reader import LOOKAHEAD, GuildReader, NoteThrottle, Read, ReadOutlet
from bot.autoread.rules import Cleaner, IncomingMessage, Names, announcement, skip_reason, spoken_text
from bot.autoread.store import AutoreadSettings, AutoreadStore
from bot.autoread.voices import VoiceLookup, builtin_voice
from bot.clock import Clock

if TYPE_CHECKING:
    from bot.speech.service import SpeechService

#: Given the server's settings, why the author cannot be read in voice now (None: they can).
VoiceCheck = Callable[[AutoreadSettings], "str | None"]


class AutoreadService:
    def __init__(
        self,
        *,
        store: AutoreadStore,
        speech: SpeechService,
        clock: Clock,
        outlet: ReadOutlet,
        max_chars: int,
        voices: VoiceLookup = builtin_voice,
        cleaner: Cleaner | None = None,
    ) -> None:
        self.store = store
        self._speech = speech
        self._clock = clock
        self._outlet = outlet
        self._max_chars = max_chars
        self._voices = voices
        self._cleaner = cleaner or default_cleaner()
        self.throttle = NoteThrottle(clock)
        #: Reads started at once per server (``bot.autoread.reader.LOOKAHEAD``; the bench sets
        #: 1 to measure the naive peer that generates a message only after the previous played).
        self.lookahead = LOOKAHEAD
        self.readers: dict[int, GuildReader] = {}
        self._settings: dict[int, AutoreadSettings | None] = {}
        self._intake: dict[int, asyncio.Lock] = {}

    # -- settings -----------------------------------------------------------------------

    async def settings(self, guild_id: int) -> AutoreadSettings | None:
        if guild_id not in self._settings:
            self._settings[guild_id] = await self.store.settings(guild_id)
        return self._settings[guild_id]

    async def save_settings(self, settings: AutoreadSettings, *, actor_id: int) -> AutoreadSettings:
        saved = await self.store.save(settings, actor_id=actor_id)
        self._settings[settings.guild_id] = saved
        return saved

    async def turn_off(self, guild_id: int) -> bool:
        removed = await self.store.turn_off(guild_id)
        self._settings[guild_id] = None
        return removed

    def last_refusal(self, guild_id: int, user_id: int) -> str | None:
        return self.throttle.last_reason.get((guild_id, user_id))

    # -- messages -----------------------------------------------------------------------

    def reader(self, guild_id: int) -> GuildReader:
        reader = self.readers.get(guild_id)
        if reader is None:
            reader = GuildReader(
                guild_id,
                speech=self._speech,
                outlet=self._outlet,
                voices=self._voices,
                clock=self._clock,
                throttle=self.throttle,
                lookahead=self.lookahead,
            )
            self.readers[guild_id] = reader
        return reader

    def _lock(self, guild_id: int) -> asyncio.Lock:
        """One lock per server around taking in messages, edits and deletions: discord.py runs
        each event's listener in its own task, and the lock (first come, first served) keeps
        them in the order Discord sent them, whatever database reads each one waits for."""
        return self._intake.setdefault(guild_id, asyncio.Lock())

    def _text(self, content: str, names: Names) -> str:
        return spoken_text(content, names=names, cleaner=self._cleaner, max_chars=self._max_chars)

    async def on_message(
        self, message: IncomingMessage, names: Names, voice_check: VoiceCheck
    ) -> Read | None:
        """Queue ``message`` if it is to be read; the ``Read`` or None (skipped or refused)."""
        async with self._lock(message.guild_id):
            read = await self._take(message, names, voice_check)
        if read is not None:
            await self.reader(message.guild_id).pump()
        return read

    async def _take(self, message: IncomingMessage, names: Names, voice_check: VoiceCheck) -> Read | None:
        settings = await self.settings(message.guild_id)
        if settings is None or message.channel_id != settings.text_channel_id:
            return None
        if skip_reason(message) is not None:
            return None
        if not await self.store.opted_in(message.guild_id, message.author_id):
            return None
        if voice_check(settings) is not None:
            return None
        text = self._text(message.content, names)
        if not text:
            return None
        announce = None
        if settings.announce:
            announce = announcement(message.author_name, names=names, cleaner=self._cleaner)
        return self.reader(message.guild_id).add(message, text, announce=announce)

    async def on_edit(self, guild_id: int, message_id: int, content: str, names: Names) -> None:
        async with self._lock(guild_id):
            reader = self.readers.get(guild_id)
            read = reader.by_message.get(message_id) if reader is not None else None
            settings = await self.settings(guild_id)
            if reader is None or read is None or settings is None:
                return
            edited = dataclasses.replace(read.message, content=content)
            text = "" if skip_reason(edited) is not None else self._text(content, names)
            await reader.edit(message_id, text)  # "" drops it (edited into a command, emptied)

    async def on_delete(self, guild_id: int, message_id: int) -> None:
        async with self._lock(guild_id):
            reader = self.readers.get(guild_id)
            if reader is not None:
                await reader.delete(message_id)

    async def close(self) -> None:
        readers, self.readers = list(self.readers.values()), {}
        for reader in readers:
            await reader.close()
