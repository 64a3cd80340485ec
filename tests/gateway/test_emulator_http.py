"""The emulator's provider routes over real loopback HTTP: documents, keys, validation, queue."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from bot.clock import ManualClock
from bot.gateway.emulator import EmulatorWaitError, GatewayEmulator, Outcome
from tests.gateway.test_emulator_support import get_status, make_config, submit

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SPACE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
STATUS_FIELDS = {
    "request_id", "status", "model_id", "error", "output", "created_at", "updated_at", "completed_at",
}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_submit_answers_202_with_an_absolute_polling_url(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        body = {"text": "Hello world", "exaggeration": 0.5, "temperature": 0.8, "cfg": 1.5}
        answer = await submit(http, emu, body)

        assert answer.status == 202
        assert set(answer.body) == {"request_id", "status", "polling_url"}
        assert answer.body["status"] == "QUEUED"
        request_id = answer.body["request_id"]
        assert answer.body["polling_url"] == f"{emu.base_url}/v2/requests/status/{request_id}"
        job = emu.jobs[request_id]
        assert job.text == "Hello world"
        assert job.params == {"exaggeration": 0.5, "temperature": 0.8, "cfg": 1.5}
        assert emu.counts["submit"] == 1
        assert emu.counts["submit:202"] == 1


async def test_queue_progression_is_observable_through_status(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with GatewayEmulator(make_config(clock, workers=1)) as emu:
        first = (await submit(http, emu, {"text": "first job"})).body["request_id"]
        second = (await submit(http, emu, {"text": "second job"})).body["request_id"]
        await emu.wait_for_status(first, "PROCESSING")

        queued = (await get_status(http, emu, second)).body
        assert queued["status"] == "QUEUED"
        assert queued["output"] is None and queued["completed_at"] is None and queued["error"] is None
        assert (await get_status(http, emu, first)).body["status"] == "PROCESSING"

        clock.advance(emu.jobs[first].duration)
        await emu.wait_for_status(first, "COMPLETED")
        await emu.wait_for_status(second, "PROCESSING")
        done = (await get_status(http, emu, first)).body

        assert set(done) == STATUS_FIELDS
        assert done["status"] == "COMPLETED"
        assert done["model_id"] == "chatterbox-tts"
        assert done["output"] == {
            "media_url": [f"{emu.base_url}/_media/{first}.wav"],
            "media_type": "audio/wav",
        }
        job = emu.jobs[first]
        assert job.completed_mono == pytest.approx(job.duration)
        assert [status for _, status in job.transitions] == ["QUEUED", "PROCESSING", "COMPLETED"]
        assert job.status_polls == [(0.0, "PROCESSING"), (job.duration, "COMPLETED")]
        assert emu.jobs[second].status_polls == [(0.0, "QUEUED")]


async def test_duration_is_base_plus_per_char_with_jitter_or_scripted(
    http: aiohttp.ClientSession,
) -> None:
    config = make_config(base_seconds=1.0, per_char_seconds=0.02, jitter=0.1)
    async with GatewayEmulator(config) as emu:
        text = "x" * 100
        emu.script_submit("complete", Outcome("complete", duration=7.5))
        natural = emu.jobs[(await submit(http, emu, {"text": text})).body["request_id"]]
        fixed = emu.jobs[(await submit(http, emu, {"text": text})).body["request_id"]]

        assert 3.0 * 0.9 <= natural.duration <= 3.0 * 1.1
        assert fixed.duration == 7.5


async def test_timestamps_come_in_both_provider_shapes(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with GatewayEmulator(make_config(clock)) as emu:
        emu.script_submit(Outcome("complete", duration=1.5), Outcome("complete", duration=1.5))
        even = (await submit(http, emu)).body["request_id"]
        odd = (await submit(http, emu)).body["request_id"]
        await emu.wait_for_status(even, "PROCESSING")
        await emu.wait_for_status(odd, "PROCESSING")
        clock.advance(1.5)
        await emu.wait_for_status(even, "COMPLETED")
        await emu.wait_for_status(odd, "COMPLETED")

        first = (await get_status(http, emu, even)).body
        second = (await get_status(http, emu, odd)).body

        assert first["created_at"] == "2026-01-01T12:00:00.000Z"
        assert first["completed_at"] == "2026-01-01 12:00:01"
        assert ISO_Z.match(first["updated_at"])
        assert SPACE.match(second["updated_at"])
        assert ISO_Z.match(second["created_at"]) and SPACE.match(second["completed_at"])


@pytest.mark.parametrize(
    ("key", "status", "error"),
    [(None, 401, "Unauthorized"), ("wrong-key", 401, "Unauthorized"), ("forbidden-key", 403, "Forbidden")],
)
async def test_keys_are_checked_on_submit_and_status(
    http: aiohttp.ClientSession, key: str | None, status: int, error: str
) -> None:
    async with GatewayEmulator(make_config()) as emu:
        request_id = (await submit(http, emu)).body["request_id"]

        rejected = await submit(http, emu, key=key)
        polled = await get_status(http, emu, request_id, key=key)

        assert rejected.status == status and polled.status == status
        assert set(rejected.body) == {"error", "message"}
        assert rejected.body["error"] == error
        assert len(emu.jobs) == 1
        assert emu.balance == Decimal("9.99")
        assert emu.counts[f"submit:{status}"] == 1 and emu.counts[f"status:{status}"] == 1


async def test_another_configured_key_is_accepted(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config(api_keys=("first-key", "second-key"))) as emu:
        assert emu.api_key == "first-key"
        assert (await submit(http, emu, key="second-key")).status == 202


async def test_unknown_request_id_is_404_with_an_error_body(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        answer = await get_status(http, emu, "no-such-request")

        assert answer.status == 404
        assert set(answer.body) == {"error", "message"}
        assert "no-such-request" in answer.body["message"]


async def test_unknown_routes_and_methods_get_json_error_bodies(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        async with http.get(emu.base_url + "/v1/nothing") as resp:
            assert resp.status == 404
            assert set(await resp.json()) == {"error", "message"}
        async with http.get(emu.submit_url) as resp:
            assert resp.status == 405
            assert "POST" in resp.headers["Allow"]
            assert set(await resp.json()) == {"error", "message"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "text"),
        ({"text": None}, "text"),
        ({"text": ""}, "text"),
        ({"text": "   \n"}, "text"),
        ({"text": 42}, "text"),
        ({"text": "x" * 5001}, "text"),
        ({"text": "hi", "exaggeration": 1.01}, "exaggeration"),
        ({"text": "hi", "exaggeration": -0.1}, "exaggeration"),
        ({"text": "hi", "exaggeration": True}, "exaggeration"),
        ({"text": "hi", "temperature": 0.05}, "temperature"),
        ({"text": "hi", "temperature": 1.5}, "temperature"),
        ({"text": "hi", "cfg": 2.5}, "cfg"),
        ({"text": "hi", "cfg": "1.0"}, "cfg"),
        ({"text": "hi", "audio_url": "ftp://example.com/voice.wav"}, "audio_url"),
        ({"text": "hi", "audio_url": "voice.wav"}, "audio_url"),
        ({"text": "hi", "audio_url": 7}, "audio_url"),
        (["text"], "body"),
    ],
)
async def test_validation_is_400_naming_the_field(
    http: aiohttp.ClientSession, body: Any, field: str
) -> None:
    async with GatewayEmulator(make_config()) as emu:
        answer = await submit(http, emu, body)

        assert answer.status == 400
        assert answer.body["error"] == "Bad Request"
        assert answer.body["message"].startswith(f"{field}:")
        assert emu.jobs == {}
        assert emu.balance == Decimal("10.00")


async def test_invalid_json_is_400(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        answer = await submit(http, emu, raw=b'{"text": "unterminated')

        assert answer.status == 400
        assert answer.body["message"].startswith("body:")


async def test_range_boundaries_are_accepted(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        low = await submit(http, emu, {"text": "hi", "exaggeration": 0, "temperature": 0.1, "cfg": 0})
        high = await submit(http, emu, {"text": "hi", "exaggeration": 1, "temperature": 1, "cfg": 2.0})

        assert (low.status, high.status) == (202, 202)


@pytest.mark.parametrize(
    ("headers", "allow_http", "field"),
    [
        ({"X-Webhook-URL": "http://127.0.0.1:9/hook"}, False, "X-Webhook-URL"),
        ({"X-Webhook-URL": "not a url"}, True, "X-Webhook-URL"),
        ({"X-Webhook-URL": "https://example.com/hook", "X-Webhook-Mode": "always"}, False, "X-Webhook-Mode"),
    ],
)
async def test_webhook_headers_are_validated(
    http: aiohttp.ClientSession, headers: dict[str, str], allow_http: bool, field: str
) -> None:
    async with GatewayEmulator(make_config(allow_http_webhooks=allow_http)) as emu:
        answer = await submit(http, emu, headers=headers)

        assert answer.status == 400
        assert answer.body["message"].startswith(f"{field}:")
        assert emu.jobs == {}


async def test_media_is_served_only_once_completed(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with GatewayEmulator(make_config(clock)) as emu:
        emu.script_submit(Outcome("complete", duration=2.0))
        request_id = (await submit(http, emu, {"text": "media please"})).body["request_id"]
        media_url = f"{emu.base_url}/_media/{request_id}.wav"
        await emu.wait_for_status(request_id, "PROCESSING")
        async with http.get(media_url) as resp:
            assert resp.status == 404

        clock.advance(2.0)
        job = await emu.wait_for_status(request_id, "COMPLETED")
        async with http.get(media_url) as resp:
            body = await resp.read()
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "audio/wav"
            assert int(resp.headers["Content-Length"]) == len(body)
        assert body == job.media_bytes
        async with http.get(f"{emu.base_url}/_media/{request_id}.mp3") as resp:
            assert resp.status == 404
        assert emu.counts["media:200"] == 1 and emu.counts["media:404"] == 2


async def test_wait_for_status_raises_when_the_job_ends_otherwise(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        emu.script_submit("failed")
        request_id = (await submit(http, emu)).body["request_id"]

        with pytest.raises(EmulatorWaitError, match="ended FAILED"):
            await emu.wait_for_status(request_id, "COMPLETED")
