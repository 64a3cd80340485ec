"""Hands-free reading test kit: a voice world with the Message Content intent allowed and
reading set up in #general, plus shortcuts to write as a member and to read what was played.

``Reading.say`` posts as a member (MESSAGE_CREATE through the sandbox gateway) and returns
once the Autoread cog has finished handling the message; ``played`` maps every voice playback
(in order) back to the text that was spoken, through the clip the reader handed to voice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bot.autoread.reader import GuildReader, Read
from tests.discord.harness import Harness
from tests.discord.voice_support import WAIT_LIMIT, VoiceLab, VoiceWorld, voice_world
from tests.sandbox import Channel, Member, Message

MESSAGE_CONTENT = 1 << 15
ENABLED = {"autoread_enabled": True}


@dataclass
class Reading:
    w: VoiceWorld

    @property
    def h(self) -> Harness:
        return self.w.h

    @property
    def cog(self) -> Any:
        cog = self.h.bot.get_cog("Autoread")
        assert cog is not None
        return cog

    @property
    def reader(self) -> GuildReader:
        return self.cog.service.reader(self.h.guild.id)

    async def command(self, name: str, who: Member, **options: Any) -> str:
        """Run ``/autoread <name>`` as ``who``; the ephemeral answer's text."""
        handle = await self.h.sandbox.slash(f"autoread {name}", user=who, channel=self.h.general, **options)
        message = await handle.wait_for_original()
        assert message.ephemeral
        return message.content

    async def opt_in(self, *members: Member) -> None:
        for member in members:
            answer = await self.command("me", member, choice="on")
            assert "will be read aloud" in answer

    async def handled(self, kind: str, message: Message) -> Read | None:
        """Wait until the cog finished handling ``kind`` ("message", "edit", "delete")."""
        async with asyncio.timeout(WAIT_LIMIT):
            entry = await self.cog.wait_until(
                lambda: next((e for e in self.cog.handled if e[0] == kind and e[1] == message.id), None)
            )
        return entry[2]

    async def say(self, who: Member, text: str, channel: Channel | None = None) -> Message:
        message = await self.h.sandbox.post(who, channel or self.h.general, text)
        await self.handled("message", message)
        return message

    def marks(self, message: Message) -> list[str]:
        """The bot's reactions on ``message`` now."""
        return message.reacted(self.h.sandbox.bot_user.id)

    async def wait_marks(self, message: Message, marks: list[str]) -> None:
        await self.h.sandbox.wait_for(lambda: self.marks(message) == marks, describe=f"marks {marks}")

    async def wait_reader(self, predicate: Callable[[GuildReader], Any]) -> Any:
        reader = self.reader
        async with asyncio.timeout(WAIT_LIMIT):
            return await reader.wait_until(lambda: predicate(reader))

    def read_of(self, message: Message) -> Read | None:
        reader = self.reader
        return reader.by_message.get(message.id) or next(
            (r for r in reader.finished if r.message.message_id == message.id), None
        )

    def played(self) -> list[str]:
        """The text behind every voice playback so far, in the order they were played."""
        texts = []
        reads = list(self.reader.finished) + list(self.reader.active)
        for playback in self.w.lab.playbacks:
            match = next((a.text for r in reads for a in r.attempts if playback.plays(a.clip)), None)
            texts.append(match or "?")
        return texts


def reading_world(
    make_harness: Callable[..., AbstractAsyncContextManager[Harness]],
    *,
    settings: dict[str, Any] | None = None,
    setup: dict[str, Any] | None = None,
    real_voice: bool = False,
    **knobs: Any,
) -> AbstractAsyncContextManager[Reading]:
    """``async with reading_world(make_harness) as r:`` — reading set up in #general by mo.
    ``real_voice``: the bot's own ``discord.VoiceClient`` talks to the sandbox's voice server
    (``h.sandbox.listening(channel)`` is what a member hears) instead of ``TestVoice``."""

    @asynccontextmanager
    async def opened() -> AsyncIterator[Reading]:
        merged = {**ENABLED, **(settings or {})}
        if real_voice:
            async with make_harness(settings=merged, privileged_intents=MESSAGE_CONTENT, **knobs) as h:
                yield await ready(Reading(VoiceWorld(h, VoiceLab())), setup)
            return
        async with voice_world(
            make_harness, settings=merged, privileged_intents=MESSAGE_CONTENT, **knobs
        ) as w:
            yield await ready(Reading(w), setup)

    return opened()


async def ready(r: Reading, setup: dict[str, Any] | None) -> Reading:
    answer = await r.command("setup", r.h.mo, text_channel=r.h.general, **(setup or {}))
    assert answer.startswith("Hands-free reading is on."), answer
    return r
