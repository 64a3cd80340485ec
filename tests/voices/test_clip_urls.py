"""Signed clip URLs served by the /clips sub-application over a real socket, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from bot.clock import ManualClock
from bot.store import Database
from bot.voices import ClipSigner, VoiceAudio, VoiceLibrary, VoiceUnavailable
from bot.voices.web import clip_app
from tests.voices.conftest import ALICE, BOB, GUILD, MO, clip_of


@pytest.fixture
async def served(
    library: VoiceLibrary, db: Database, clock: ManualClock
) -> AsyncIterator[tuple[str, ClipSigner]]:
    signer = ClipSigner(db, clock, ttl_seconds=900)
    root = web.Application()
    root.add_subapp("/clips", clip_app(library, signer))
    runner = web.AppRunner(root)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", signer
    finally:
        await runner.cleanup()


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.read()


async def test_a_signed_url_serves_the_clip_until_it_expires(
    library: VoiceLibrary, served: tuple[str, ClipSigner], clock: ManualClock
) -> None:
    base, signer = served
    clip = clip_of()
    voice = await library.add(GUILD, ALICE, "Mine", clip, consent=True)
    url = await VoiceAudio(library, signer, public_base_url=base).audio_url(voice, None)
    parts = urlsplit(url)
    assert parts.path == f"/clips/{voice.id}.wav"
    exp = int(parse_qs(parts.query)["exp"][0])
    assert 0 < exp - clock.now().timestamp() <= 3600
    assert await _get(url) == (200, clip.wav)
    clock.advance(901)
    assert (await _get(url))[0] == 404


async def test_tampered_or_revoked_or_deleted_clips_are_404(
    library: VoiceLibrary, served: tuple[str, ClipSigner], db: Database, clock: ManualClock
) -> None:
    base, signer = served
    voice = await library.add(GUILD, ALICE, "Mine", clip_of(), consent=True)
    other = await library.add(GUILD, BOB, "Bobs", clip_of(), consent=True)
    url = await signer.url(base, voice.id)
    assert (await _get(url))[0] == 200
    assert (await _get(url.replace(voice.id, other.id)))[0] == 404  # signature is per voice
    assert (await _get(url[:-1] + ("0" if url[-1] != "0" else "1")))[0] == 404
    assert (await _get(f"{base}/clips/{voice.id}.wav"))[0] == 404
    # The key is in the database: another process (a new signer) accepts the same URL.
    assert await ClipSigner(db, clock, ttl_seconds=900).verify(
        voice.id, int(parse_qs(urlsplit(url).query)["exp"][0]), parse_qs(urlsplit(url).query)["sig"][0]
    )
    await library.revoke(GUILD, MO, "mine", owner_id=ALICE, reason="abuse")
    assert (await _get(url))[0] == 404
    other_url = await signer.url(base, other.id)
    await library.delete(GUILD, BOB, "bobs")
    assert (await _get(other_url))[0] == 404


class FakeDiscordHost:
    """Not Discord: a ClipHost double that records calls (the real one is tested in tests/discord)."""

    def __init__(self) -> None:
        self.messages: dict[int, bytes] = {}

    async def upload(self, channel_id: int, filename: str, data: bytes) -> int:
        message_id = 500 + len(self.messages)
        self.messages[message_id] = data
        return message_id

    async def fresh_url(self, channel_id: int, message_id: int) -> str | None:
        return f"https://cdn.example/{channel_id}/{message_id}.wav" if message_id in self.messages else None


async def test_without_a_public_url_the_clip_is_rehosted_once(
    library: VoiceLibrary, db: Database, clock: ManualClock
) -> None:
    audio = VoiceAudio(library, ClipSigner(db, clock, ttl_seconds=900), public_base_url=None)
    voice = await library.add(GUILD, ALICE, "Mine", clip_of(), consent=True)
    host = FakeDiscordHost()
    with pytest.raises(VoiceUnavailable, match="/voices storage"):
        await audio.audio_url(voice, host)
    await library.set_storage_channel(GUILD, 77, actor_id=MO)
    first = await audio.audio_url(voice, host)
    again = await audio.audio_url(await library.get(voice.id), host)  # type: ignore[arg-type]
    assert first == again == "https://cdn.example/77/500.wav" and len(host.messages) == 1
    host.messages.clear()  # someone deleted the storage message: posted again
    assert await audio.audio_url(await library.get(voice.id), host) == "https://cdn.example/77/500.wav"  # type: ignore[arg-type]
    assert len(host.messages) == 1


async def test_a_voice_deleted_or_revoked_after_lookup_gets_no_url(
    library: VoiceLibrary, db: Database, clock: ManualClock
) -> None:
    audio = VoiceAudio(library, ClipSigner(db, clock, ttl_seconds=900), public_base_url="https://bot.example")
    looked_up = await library.add(GUILD, ALICE, "Going", clip_of(), consent=True)
    other = await library.add(GUILD, ALICE, "Revoked", clip_of(), consent=True)
    await library.delete(GUILD, ALICE, "going")
    with pytest.raises(VoiceUnavailable) as caught:
        await audio.audio_url(looked_up, None)
    assert caught.value.code == "deleted"
    await library.revoke(GUILD, MO, "revoked", owner_id=ALICE, reason="x")
    with pytest.raises(VoiceUnavailable) as caught:
        await audio.audio_url(other, None)  # the stale object still says "not revoked"
    assert caught.value.code == "revoked"
