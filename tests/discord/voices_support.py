"""Helpers for the /voices tests: run a /voices command, add a voice, read the private answer."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from bot.app import ChatterboxBot
from bot.clock import Clock
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def self_hosted(
    make_harness: Callable[..., AbstractAsyncContextManager[Harness]],
    *,
    emulator_clock: Clock | None = None,
    **settings: Any,
) -> AsyncIterator[Harness]:
    """The bot with its own HTTP server (as ``chatterbox-bot run``) and ``PUBLIC_BASE_URL``
    pointing at it, so saved clips are served at signed ``/clips`` URLs (``restart_self_hosted``
    restarts it the same way)."""
    port = free_port()
    knobs = {"http_port": port, "public_base_url": f"http://127.0.0.1:{port}", **settings}
    # Push delivery is on too (PUBLIC_BASE_URL): the emulator may call back over plain http here.
    async with make_harness(start=False, settings=knobs, emulator={"allow_http_webhooks": True},
                            emulator_clock=emulator_clock) as h:
        await restart_self_hosted(h)
        yield h


async def restart_self_hosted(h: Harness) -> ChatterboxBot:
    """Stop the bot (if running) and start a new one that serves HTTP, as ``run_bot`` does."""
    await h.stop_bot()
    bot = h.new_bot()
    bot.serve_http = True
    return await h.start_bot(bot)
