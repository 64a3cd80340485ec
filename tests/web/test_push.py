"""Push delivery through the real emulator: its webhook reaches the bot's HTTP server, one
status GET confirms it, and the audio is fetched from the confirmed document only.

The emulator and the bot share a ``ScaledClock`` (20x): assertions read the emulator's own
records (status GETs, webhook deliveries), never wall time.
"""

from __future__ import annotations

import hashlib
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import insert, select

from bot.clock import ManualClock, ScaledClock
from bot.gateway.emulator import EmulatorConfig, GatewayEmulator, Outcome
from bot.gateway.errors import BadRequest
from bot.gateway.models import TTSParams
from bot.push import PushHub
from bot.services import Services
from bot.speech.events import DeliveryTarget, Processing, Requester
from bot.store import open_database
from bot.store.tables import push_callbacks
from bot.web import CALLBACK_PREFIX
from tests.gateway.client_support import closed_port_base_url
from tests.speech.support import EventLog, speech_settings
from tests.store.dbkit import DbTarget, db_target, postgres_target
from tests.web.conftest import open_services

ALICE = Requester(user_id=101, display_name="alice", guild_id=5001)
TARGET = DeliveryTarget(kind="file", channel_id=7001)
__all__ = ["db_target", "postgres_target"]

PUSH = {"public_base_url": "http://127.0.0.1:9", "quota_max_in_flight": 20, "quota_requests_per_day": 100}


async def speak(services: Services, text: str, events: EventLog | None = None) -> bytes:
    job = await services.speech.start(ALICE, text, voice_url=None, params=TTSParams(), target=TARGET,
                                      on_event=events)
    return (await job.result()).audio


def token_of(url: str | None) -> str:
    assert url is not None and "/callbacks/chatterbox/" in url
    return url.rsplit("/", 1)[1]


async def test_a_callback_delivers_the_job_with_one_status_get(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    async with await open_services(emulator, database_url, scaled_clock, **PUSH) as services:
        emulator.script_submit(Outcome("complete", duration=8.0))
        audio = await speak(services, "Pushed, not polled.")
        assert audio.startswith(b"RIFF")
        (job,) = emulator.jobs.values()
        assert job.webhook_mode == "terminal"
        assert [status for _, status in job.status_polls] == ["COMPLETED"]  # the confirmation only
        assert any(d.ok for d in emulator.webhook_deliveries)
        token = token_of(job.webhook_url)
        assert len(token) >= 22  # >= 128 random bits, url-safe base64
        assert services.push is not None
        await services.push.idle()
        async with services.db.read() as conn:
            rows = (await conn.execute(select(push_callbacks))).all()
        assert [r.token_hash for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
        assert rows[0].request_id == job.request_id and rows[0].settled_at is not None
        assert token not in repr([tuple(r) for r in rows])  # stored hashed only


async def test_sync_mode_drives_progress_and_still_confirms_once(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    opened = await open_services(emulator, database_url, scaled_clock, chatterbox_webhook_mode="sync", **PUSH)
    async with opened as services:
        emulator.script_submit(Outcome("complete", duration=6.0))
        events = EventLog()
        await speak(services, "Show me the progress.", events)
        (job,) = emulator.jobs.values()
        assert job.webhook_mode == "sync"
        assert [status for _, status in job.status_polls] == ["COMPLETED"]
        assert "PROCESSING" in [e.status for e in events.of(Processing)]  # from a callback


async def test_a_callback_that_never_comes_is_covered_by_the_safety_poll(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    opened = await open_services(emulator, database_url, scaled_clock, chatterbox_push_fallback_seconds=5.0,
                                 **PUSH)
    async with opened as services:
        assert services.push is not None
        services.push.base_url = await closed_port_base_url()  # the provider cannot reach us
        for _ in range(30):  # jobs have been taking ~2 s, so the safety poll is due after 5 s
            services.client.durations.record(2.0)
        emulator.script_submit(Outcome("complete", duration=3.0))
        audio = await speak(services, "Nobody calls back.")
        assert audio.startswith(b"RIFF")
        (job,) = emulator.jobs.values()
        assert not any(d.ok for d in emulator.webhook_deliveries)
        first_poll = job.status_polls[0][0] - job.created_mono
        assert first_poll >= 5.0  # a slow safety net, not the dense polling plan
        assert job.status_polls[-1][1] == "COMPLETED"


async def test_duplicates_and_late_callbacks_change_nothing(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock, http: aiohttp.ClientSession
) -> None:
    emulator.config.webhook_duplicate_rate = 1.0  # every document is delivered twice
    async with await open_services(emulator, database_url, scaled_clock, **PUSH) as services:
        emulator.script_submit(Outcome("complete", duration=4.0))
        await speak(services, "Said twice.")
        (job,) = emulator.jobs.values()
        await emulator.wait_until(lambda: any(d.duplicate for d in emulator.webhook_deliveries))
        assert len(job.status_polls) == 1
        # The same document again, long after: acknowledged (so the sender stops), ignored.
        assert job.webhook_url is not None
        async with http.post(job.webhook_url, json=emulator.status_document(job.request_id)) as resp:
            assert resp.status == 200
        assert len(job.status_polls) == 1
        assert len(job.media_requests) == 1


async def test_a_callback_reaching_another_process_is_picked_up_by_the_owner(
    emulator: GatewayEmulator, db_target: DbTarget, scaled_clock: ScaledClock
) -> None:
    """Two processes on one database (SQLite file, PostgreSQL schema): the provider calls back
    the one that did not submit; it records the callback and the owner's sweep finds it."""
    settings = speech_settings(emulator, db_target.url, **PUSH)
    async with AsyncExitStack() as stack:
        bots = []
        for _ in range(2):
            database = await db_target.open()
            stack.push_async_callback(database.close)
            bot = await Services.open(settings, clock=scaled_clock, database=database, serve_http=True,
                                      http_port=0)
            stack.push_async_callback(bot.close)
            bots.append(bot)
        owner, other = bots
        assert owner.push is not None and other.web is not None and other.push is not None
        owner.push.base_url = other.web.base_url  # the proxy routed the callback elsewhere
        emulator.script_submit(Outcome("complete", duration=4.0))
        audio = await speak(owner, "Across processes.")
        assert audio.startswith(b"RIFF")
        (job,) = emulator.jobs.values()
        assert [status for _, status in job.status_polls] == ["COMPLETED"]
        await other.push.idle()
        async with owner.db.read() as conn:
            row = (await conn.execute(select(push_callbacks))).one()
        assert row.callback_status == "COMPLETED" and row.callback_at is not None


@pytest.mark.postgres
async def test_on_postgresql_notify_wakes_the_owner_at_once(
    emulator: GatewayEmulator, postgres_target: DbTarget, scaled_clock: ScaledClock
) -> None:
    """Two processes on PostgreSQL; the callback reaches the one that did not submit. Its
    sweep is at the longest (60 s) and the safety poll at 30 s, so a 4 s job confirmed
    before either was woken by the other process's NOTIFY."""
    settings = speech_settings(emulator, postgres_target.url, chatterbox_push_sweep_seconds=60.0,
                               chatterbox_push_fallback_seconds=30.0, **PUSH)
    async with AsyncExitStack() as stack:
        bots = []
        for _ in range(2):
            database = await postgres_target.open()
            stack.push_async_callback(database.close)
            bot = await Services.open(settings, clock=scaled_clock, database=database, serve_http=True,
                                      http_port=0)
            stack.push_async_callback(bot.close)
            bots.append(bot)
        owner, other = bots
        assert owner.push is not None and other.web is not None and other.push is not None
        owner.push.base_url = other.web.base_url  # the proxy routed the callback elsewhere
        warm_up = owner.push.watch("warm-up")  # starts the owner's sweeper, which LISTENs first
        await owner.push.listening.wait()
        owner.push.unwatch(warm_up)
        emulator.script_submit(Outcome("complete", duration=4.0))
        audio = await speak(owner, "Woken by a notification.")
        assert audio.startswith(b"RIFF")
        (job,) = emulator.jobs.values()
        assert [status for _, status in job.status_polls] == ["COMPLETED"]
        assert job.status_polls[0][0] - job.created_mono < 30.0  # neither the sweep nor the safety poll
        await other.push.idle()
        async with owner.db.read() as conn:
            row = (await conn.execute(select(push_callbacks))).one()
        assert row.callback_status == "COMPLETED" and row.request_id == job.request_id


@pytest.mark.postgres
async def test_a_request_id_over_100_characters_is_stored_through_push_on_postgresql(
    postgres_target: DbTarget, scaled_clock: ScaledClock, http: aiohttp.ClientSession
) -> None:
    """``push_callbacks.request_id`` and ``early_request_id`` are Text (migration 0010): a
    provider's long id is stored by ``bind`` after the 202, and by a callback for a row an
    earlier version wrote before its 202 (no request id yet, so it lands in ``early_request_id``)."""
    config = EmulatorConfig(seed=5, jitter=0.0, webhook_duplicate_rate=0.0, allow_http_webhooks=True,
                            clock=scaled_clock, request_id_length=180)
    async with GatewayEmulator(config) as emulator:
        settings = speech_settings(emulator, postgres_target.url, **PUSH)
        database = await postgres_target.open()
        try:
            async with await Services.open(settings, clock=scaled_clock, database=database, serve_http=True,
                                           http_port=0) as services:
                assert services.push is not None and services.web is not None
                services.push.base_url = services.web.base_url
                emulator.script_submit(Outcome("complete", duration=4.0))
                assert (await speak(services, "A provider with long ids.")).startswith(b"RIFF")
                (job,) = emulator.jobs.values()
                assert len(job.request_id) == 180
                legacy_token = "legacy-token-written-before-its-202"
                async with database.engine.begin() as conn:
                    await conn.execute(insert(push_callbacks).values(
                        token_hash=hashlib.sha256(legacy_token.encode()).hexdigest(), request_id=None,
                        created_at=scaled_clock.now()))
                other_id = "r" * 150
                body = {"request_id": other_id, "status": "COMPLETED", "error": None,
                        "output": {"media_url": ["https://cdn.example/a.wav"], "media_type": "audio/wav"}}
                callback = services.web.base_url + CALLBACK_PREFIX + legacy_token
                async with http.post(callback, json=body) as resp:
                    assert resp.status == 200
                await services.push.idle()
                async with services.db.read() as conn:
                    rows = {r.token_hash: r for r in (await conn.execute(select(push_callbacks))).all()}
        finally:
            await database.close()
    token = token_of(job.webhook_url)
    bound = rows[hashlib.sha256(token.encode()).hexdigest()]
    assert bound.request_id == job.request_id and bound.settled_at is not None
    legacy = rows[hashlib.sha256(legacy_token.encode()).hexdigest()]
    assert legacy.request_id is None and legacy.early_request_id == other_id
    assert legacy.callback_status == "COMPLETED"


async def test_a_refused_submission_leaves_no_token_behind(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    async with await open_services(emulator, database_url, scaled_clock, **PUSH) as services:
        assert services.push is not None
        emulator.script_submit("http_400")
        with pytest.raises(BadRequest):
            await speak(services, "Refused at once.")
        assert services.push.open_tokens == 0
        emulator.script_submit(Outcome("complete", duration=2.0))
        await speak(services, "Accepted.")
        assert services.push.open_tokens == 0  # settled after delivery


async def test_a_row_queued_with_its_settle_mark_is_written_before_it_is_marked(tmp_path: Path) -> None:
    """Bind and settle of a quick part can land in one group commit behind another part's
    settle mark: the insert still runs first, so the row ends up settled."""
    async with await open_database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}") as db:
        hub = PushHub(db, ManualClock(), public_base_url="http://127.0.0.1:9")
        first, second = await hub.issue(), await hub.issue()
        assert first is not None and second is not None
        await hub.bind(first, "req-first")
        await hub.idle()
        await hub.settle("req-first")  # queued first in the next batch...
        await hub.bind(second, "req-second")  # ...then this row's insert...
        await hub.settle("req-second")  # ...and its settle mark
        await hub.idle()
        await hub.close()
        async with db.read() as conn:
            rows = {r.request_id: r for r in (await conn.execute(select(push_callbacks))).all()}
        assert set(rows) == {"req-first", "req-second"}
        assert all(r.settled_at is not None for r in rows.values())
