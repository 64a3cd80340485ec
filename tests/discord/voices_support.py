"""Helpers for the /voices tests: run a /voices command, add a voice, read the private answer."""

from __future__ import annotations

from typing import Any

from tests.discord.harness import Harness
from tests.discord.speak_support import make_wav
from tests.sandbox import InteractionHandle, Member, Message


def voice_clip(h: Harness, seconds: float = 6.0, name: str = "me.wav") -> Any:
    """A clip a member uploads: a steady tone, loud enough to count as sound everywhere."""
    return h.sandbox.attachment(make_wav(seconds), name, "audio/wav")


async def voices(h: Harness, sub: str, user: Member | None = None, **options: Any) -> InteractionHandle:
    return await h.sandbox.slash(["voices", sub], user=user or h.alice, channel=h.general, options=options)


async def answer(handle: InteractionHandle, words: str = "") -> Message:
    """The private answer (an ephemeral original or follow-up) once it contains ``words``."""
    return await handle.wait_for_message(
        lambda m: m.ephemeral and words in m.content and not m.deleted and m.content != ""
    )


async def add_voice(h: Harness, name: str, user: Member | None = None, **options: Any) -> Message:
    handle = await voices(h, "add", user, name=name, clip=voice_clip(h), consent=True, **options)
    return await answer(handle, "Saved")
