"""A saved voice's clip URL is made right before each POST, not when the job is asked for.

Through the real parts: the gateway emulator (which fetches ``audio_url`` over HTTP when it
processes a job), the bot's own HTTP server with the ``/clips`` route, and ``Services`` on a
``ManualClock`` on SQLite and PostgreSQL. The rate guard holds the job unsubmitted (its only
token is taken), the clock moves past ``VOICE_CLIP_URL_TTL_SECONDS``, then the job goes out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.clock import ManualClock, SystemClock
from bot.gateway.emulator import EmulatorConfig, GatewayEmulator
from bot.gateway.errors import InvalidTTSRequest
from bot.gateway.models import TTSParams
from bot.services import Services
from bot.speech.events import (
    Completed,
    DeliveryTarget,
    Failed,
    Requester,
    ResumedJob,
    SpeechResult,
    WaitingForSlot,
)
from bot.speech.voice_ref import VoiceUnusable, voice_ref
from bot.store.tables import job_parts, jobs, usage_ledger
from bot.voices import Voice
from tests.speech.support import EventLog, speech_settings
from tests.store.dbkit import DbTarget
from tests.voices.conftest import ALICE, GUILD, MO, clip_of
from tests.voices.test_clip_urls import _get

TTL = 900
#: One submission per 1000 s: a second job waits longer than a clip URL lives.
RATE = {"chatterbox_rate_per_second": 0.001, "chatterbox_rate_burst": 1}
REQUESTER = Requester(ALICE, "alice", GUILD, ())
TARGET = DeliveryTarget(kind="file", channel_id=5)


@dataclass
class World:
    services: Services
    emulator: GatewayEmulator
    clock: ManualClock
    base: str


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def emulator() -> AsyncIterator[GatewayEmulator]:
    # Real time for the emulator (jobs take ~0.1 s); push callbacks may use plain http here.
    config = EmulatorConfig(base_seconds=0.05, per_char_seconds=0.001, jitter=0.0, seed=3,
                            allow_http_webhooks=True, clock=SystemClock())
    async with GatewayEmulator(config) as emu:
        yield emu


@pytest.fixture
def open_world(db_target: DbTarget, emulator: GatewayEmulator, clock: ManualClock, tmp_path: Path
               ) -> Callable[[], Any]:
    """``async with open_world() as world``: a bot process (call again for a restart)."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"

    class Opened:
        async def __aenter__(self) -> World:
            self.db = await db_target.open()
            settings = speech_settings(
                emulator, db_target.url, public_base_url=base, http_port=port,
                cache_dir=str(tmp_path / "cache"), voice_clip_url_ttl_seconds=TTL,
                job_reconcile_seconds=3600, **RATE,
            )
            self.services = await Services.open(settings, clock=clock, database=self.db, serve_http=True,
                                                http_port=port)
            return World(self.services, emulator, clock, base)

        async def __aexit__(self, *exc: object) -> None:
            await self.services.close()
            await self.db.close()

    return Opened


async def _voice(world: World, name: str) -> Voice:
    return await world.services.voices.add(GUILD, ALICE, name, clip_of(), consent=True)


async def _hold_the_rate_guard(world: World) -> None:
    """Take the one token: the next submission waits 1000 s of the ManualClock."""
    await world.services.limiter.acquire("someone-else")


async def _row(world: World, job_id: str) -> dict[str, Any]:
    async with world.services.db.read() as conn:
        row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).one()
        return dict(row._mapping)


async def _sent(world: World) -> Any:
    """The one job the emulator was sent, once it finished (it fetched the clip first)."""
    await world.emulator.wait_until(lambda: len(world.emulator.jobs) == 1)
    [request_id] = world.emulator.jobs
    return await world.emulator.wait_for_status(request_id, "COMPLETED")


async def test_a_job_held_past_the_url_lifetime_sends_a_fresh_clip_url(open_world) -> None:
    async with open_world() as world:
        voice = await _voice(world, "Narrator")
        await _hold_the_rate_guard(world)
        log = EventLog()
        job = await world.services.speech.start(
            REQUESTER, "Held in line for a long while.", voice_url=voice_ref(voice.id),
            params=TTSParams(),
            target=TARGET, on_event=log, voice_name=voice.name,
        )
        await log.wait_for(WaitingForSlot)
        assert world.emulator.counts["submit"] == 0
        assert (await _row(world, job.job_id))["voice_url"] == f"voice:{voice.id}"  # not a URL
        # The naive peer: a URL made when the job was asked for (what the job used to store).
        minted_then = await world.services.voice_audio.audio_url(voice, None)
        assert (await _get(minted_then))[0] == 200

        world.clock.advance(TTL + 100)  # past the URL's lifetime, and the rate guard lets go
        assert (await _get(minted_then))[0] == 404  # what the provider would have been sent
        sent = await _sent(world)
        assert sent.audio_url is not None and sent.audio_url.startswith(f"{world.base}/clips/{voice.id}.wav?")
        assert sent.audio_url != minted_then
        assert world.emulator.counts["audio_fetch:200"] == 1  # the bot's /clips route served it
        assert sent.reference_bytes == len(await world.services.voices.clip(voice.id) or b"")
        done = await log.wait_for(Completed)
        assert done.result.voice_url == f"voice:{voice.id}"
        [ledger] = await _ledger(world)
        assert (ledger["state"], ledger["committed_requests"]) == ("committed", 1)


async def _ledger(world: World) -> list[dict[str, Any]]:
    async with world.services.db.read() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(usage_ledger))]


async def test_a_voice_revoked_or_deleted_before_the_post_is_not_sent_and_refunded(open_world) -> None:
    async with open_world() as world:
        revoked, deleted = await _voice(world, "Revoked one"), await _voice(world, "Deleted one")
        await _hold_the_rate_guard(world)
        logs: dict[str, EventLog] = {}
        handles = {}
        for voice in (revoked, deleted):
            logs[voice.id] = EventLog()
            handles[voice.id] = await world.services.speech.start(
                REQUESTER, f"Spoken in {voice.name}.", voice_url=voice_ref(voice.id), params=TTSParams(),
                target=TARGET, on_event=logs[voice.id], voice_name=voice.name,
            )
            await logs[voice.id].wait_for(WaitingForSlot)  # in line in this order
        await world.services.voices.revoke_by_id(GUILD, MO, revoked.id, reason="impersonation")
        await world.services.voices.delete(GUILD, ALICE, "deleted one")

        failed = {}
        for voice in (revoked, deleted):  # one turn at the rate guard each, 1000 s apart
            world.clock.advance(1000)
            failed[voice.id] = await logs[voice.id].wait_for(Failed)
        assert "The voice “Revoked one” was revoked" in failed[revoked.id].user_message
        assert "The voice “Deleted one” was deleted" in failed[deleted.id].user_message
        assert all(f.refunded for f in failed.values())
        for handle in handles.values():
            with pytest.raises(VoiceUnusable):
                await handle.result()
        assert world.emulator.counts["submit"] == 0 and world.emulator.counts["audio_fetch"] == 0
        ledger = await _ledger(world)
        assert [(r["state"], r["committed_requests"]) for r in ledger] == [("refunded", 0)] * 2
        for handle in handles.values():
            row = await _row(world, handle.job_id)
            assert row["status"] == "delivered" and "before this request was sent" in row["error"]
        async with world.services.db.read() as conn:
            parts = [r.status for r in await conn.execute(select(job_parts.c.status))]
        assert parts == ["cancelled", "cancelled"]


async def test_a_job_resumed_after_a_restart_gets_a_url_made_then(open_world) -> None:
    delivered: list[tuple[ResumedJob, SpeechResult]] = []

    async def deliver(job: ResumedJob, result: SpeechResult) -> None:
        delivered.append((job, result))

    async with open_world() as world:
        voice = await _voice(world, "Patient")
        await _hold_the_rate_guard(world)
        log = EventLog()
        job = await world.services.speech.start(
            REQUESTER, "Asked for just before a restart.", voice_url=voice_ref(voice.id), params=TTSParams(),
            target=TARGET, on_event=log, voice_name=voice.name,
        )
        await log.wait_for(WaitingForSlot)
    # The process stopped with the part unsent; the next one starts after a URL made then expired.
    world.clock.advance(TTL + 100)
    async with open_world() as world:
        task = asyncio.create_task(world.services.speech.resume_pending(deliver, wait=True))
        sent = await _sent(world)
        assert sent.audio_url is not None and f"/clips/{voice.id}.wav?" in sent.audio_url
        assert world.emulator.counts["audio_fetch:200"] == 1
        assert await asyncio.wait_for(task, timeout=20) == 1
        [(resumed, result)] = delivered
        assert resumed.job_id == job.job_id and result.voice_url == f"voice:{voice.id}"


async def test_a_malformed_reference_is_refused_before_anything_is_written(open_world) -> None:
    async with open_world() as world:
        with pytest.raises(InvalidTTSRequest, match="saved voice reference is not valid"):
            await world.services.speech.start(REQUESTER, "Bad reference.", voice_url="voice:not-an-id",
                                              params=TTSParams(), target=TARGET)
        assert await _ledger(world) == [] and world.emulator.counts["submit"] == 0


async def test_a_voice_revoked_between_two_parts_keeps_the_sent_one_charged_and_refunds_the_rest(
    open_world,
) -> None:
    async with open_world() as world:
        voice = await _voice(world, "Two parts")
        log = EventLog()
        text = "The first sentence of this request goes out now. The second one waits its turn."
        job = await world.services.speech.start(
            REQUESTER, text, voice_url=voice_ref(voice.id), params=TTSParams(), target=TARGET,
            on_event=log, voice_name=voice.name,
        )
        assert job.plan.requests == 2
        first = await _sent(world)  # the first part took the rate guard's one token at once
        assert first.audio_url is not None and f"/clips/{voice.id}.wav?" in first.audio_url
        await log.wait_for(WaitingForSlot)  # the second part waits 1000 s for its own
        await world.services.voices.revoke_by_id(GUILD, MO, voice.id, reason="impersonation")
        world.clock.advance(1000)
        failed = await log.wait_for(Failed)
        assert "was revoked" in failed.user_message and not failed.refunded
        assert world.emulator.counts["submit"] == 1 and world.emulator.counts["audio_fetch:200"] == 1
        [ledger] = await _ledger(world)
        assert (ledger["state"], ledger["committed_requests"], ledger["refunded_requests"]) == (
            "partial", 1, 1)
        async with world.services.db.read() as conn:
            query = select(job_parts.c.status).order_by(job_parts.c.idx)
            parts = [r.status for r in await conn.execute(query)]
        assert parts[1] == "cancelled" and parts[0] in ("submitted", "completed")
