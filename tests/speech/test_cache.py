"""The audio cache in the speech pipeline: Services + the gateway emulator + SQLite + files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.cache import clip_sha256
from bot.config import Settings
from bot.gateway.emulator import GatewayEmulator
from bot.gateway.models import TTSParams
from bot.quotas.errors import QuotaExceeded
from bot.services import Services
from bot.speech.errors import SpeechFailed
from bot.speech.events import (
    ChunkReady,
    Completed,
    DeliveryTarget,
    Failed,
    QuotaReserved,
    Requester,
    SpeechResult,
)
from bot.store.tables import usage_ledger
from tests.discord.speak_support import make_wav
from tests.speech.support import EventLog, count_rows

ALICE = Requester(user_id=101, display_name="alice", guild_id=5001)
TARGET = DeliveryTarget(kind="file", channel_id=7001)
TEXT = "Say it once and only once, please. Then hear it as often as you like, for nothing."
CLIP = make_wav(1.0)


@pytest.fixture
async def clip_url() -> AsyncIterator[str]:
    """A reference clip on a loopback HTTP server (where the emulator fetches it)."""

    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=CLIP, content_type="audio/wav")

    app = web.Application()
    app.router.add_get("/clip.wav", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/clip.wav"
    finally:
        await runner.cleanup()


async def speak(services: Services, text: str = TEXT, *, events: EventLog | None = None,
                **options: object) -> SpeechResult:
    options.setdefault("voice_url", None)
    options.setdefault("params", TTSParams())
    job = await services.speech.start(ALICE, text, target=TARGET, on_event=events, **options)  # type: ignore[arg-type]
    return await job.result()


def cached_files(settings: Settings) -> list[Path]:
    return sorted(Path(settings.cache_dir).rglob("*.wav"))


async def ledger(services: Services) -> list[dict[str, object]]:
    async with services.db.read() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(usage_ledger))]


async def test_same_text_and_voice_twice_is_one_provider_call_and_the_second_is_free(
    services: Services, emulator: GatewayEmulator
) -> None:
    first = await speak(services)
    events = EventLog()
    second = await speak(services, events=events)

    assert emulator.counts["submit"] == 2  # two chunks, once
    assert (first.cached, first.cost) == (False, Decimal("0.02"))
    assert (second.cached, second.cost) == (True, Decimal("0"))
    assert second.audio == first.audio and second.chunks == 2 and second.text == TEXT
    # The member sees the usual events: a $0 "quota" line, the chunks in order, the result.
    assert events.kinds() == ["QuotaReserved", "ChunkReady", "ChunkReady", "Completed"]
    [reserved] = events.of(QuotaReserved)
    assert reserved.plan.cached and reserved.plan.cost == 0 and len(reserved.plan.chunks) == 2
    assert reserved.plan.requests == 0 and reserved.plan.from_cache == (0, 1)  # nothing is requested
    assert [e.index for e in events.of(ChunkReady)] == [0, 1]
    assert events.of(Completed)[0].result == second
    # The ledger has the first request only; no job row was made for the hit.
    [row] = await ledger(services)
    assert (row["state"], row["committed_requests"]) == ("committed", 2)
    assert (await count_rows(services.db))["jobs"] == 1
    assert await services.cache.get_take(second.job_id) is not None  # its buttons can find it


async def test_a_different_temperature_is_a_miss(services: Services, emulator: GatewayEmulator) -> None:
    await speak(services, "Warm words.")
    again = await speak(services, "Warm words.", params=TTSParams(temperature=0.3))

    assert not again.cached and emulator.counts["submit"] == 2
    assert len(await ledger(services)) == 2


async def test_a_clip_is_cached_by_its_bytes_and_forgetting_it_removes_its_entries(
    services: Services, emulator: GatewayEmulator, clip_url: str
) -> None:
    sha = clip_sha256(CLIP)
    first = await speak(services, "In my voice.", voice_url=clip_url, clip_sha256=sha)
    second = await speak(services, "In my voice.", voice_url=clip_url + "?moved=1", clip_sha256=sha)
    assert not first.cached and second.cached  # another URL, the same bytes: a hit
    assert emulator.counts["submit"] == 1

    assert await services.cache.forget_clip(sha) == 1
    assert await services.cache.get_take(first.job_id) is None
    third = await speak(services, "In my voice.", voice_url=clip_url, clip_sha256=sha)
    assert not third.cached and emulator.counts["submit"] == 2


async def test_a_clip_known_only_by_its_url_is_never_cached(
    services: Services, emulator: GatewayEmulator, clip_url: str
) -> None:
    await speak(services, "Unknown bytes.", voice_url=clip_url)
    again = await speak(services, "Unknown bytes.", voice_url=clip_url)
    assert not again.cached and emulator.counts["submit"] == 2
    assert await services.cache.usage() == (0, 0)


async def test_cache_files_removed_behind_the_bots_back_are_a_miss_not_an_error(
    services: Services, emulator: GatewayEmulator, settings: Settings
) -> None:
    await speak(services, "Still here?")
    removed = cached_files(settings)
    assert removed
    for path in removed:
        path.unlink()

    again = await speak(services, "Still here?")
    assert not again.cached and emulator.counts["submit"] == 2
    assert (await speak(services, "Still here?")).cached  # and it was filled again


async def test_a_fresh_take_is_paid_and_replaces_the_cached_one(
    services: Services, emulator: GatewayEmulator, settings: Settings
) -> None:
    await speak(services, "Once more, with feeling.")
    [before] = cached_files(settings)
    reroll = await speak(services, "Once more, with feeling.", fresh=True)

    assert not reroll.cached and emulator.counts["submit"] == 2
    [after] = cached_files(settings)  # the old take's file is gone
    assert after != before and after.read_bytes() == reroll.audio
    assert (await speak(services, "Once more, with feeling.")).cached


async def test_a_hit_is_free_but_a_blocked_member_stays_blocked(services: Services) -> None:
    await speak(services, "Blocked or not.")
    await services.quotas.admin.block(ALICE.guild_id, ALICE.user_id, actor_id=1)  # type: ignore[arg-type]
    with pytest.raises(QuotaExceeded, match="blocked"):
        await speak(services, "Blocked or not.")


async def test_cached_chunks_that_cannot_be_joined_fail_cleanly_and_cost_nothing(
    services: Services, emulator: GatewayEmulator
) -> None:
    plan = services.speech.plan(TEXT)
    assert plan.requests == 2
    mismatched = [make_wav(0.2, rate=24_000), make_wav(0.2, rate=16_000)]  # one is not like the other
    chunks = list(zip(plan.chunks, mismatched, strict=True))
    await services.cache.put(chunks, "", TTSParams(), "chatterbox-tts")
    events = EventLog()

    with pytest.raises(SpeechFailed):
        await speak(services, events=events)
    [failed] = events.of(Failed)
    assert failed.refunded and "nothing was charged" in failed.user_message
    assert emulator.counts["submit"] == 0 and await ledger(services) == []
