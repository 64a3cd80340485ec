"""The client against the emulator: every terminal status, timestamps, timeouts, round trip."""

from __future__ import annotations

import io
import wave
from datetime import UTC, datetime

import pytest

from bot.gateway import (
    ChatterboxClient,
    JobErrored,
    JobFailed,
    JobStatus,
    ProtocolError,
    StatusDocument,
    TTSParams,
    TTSRequest,
    WaitTimeout,
)
from bot.gateway.emulator import GatewayEmulator, Outcome
from tests.gateway.client_support import RecordingLimiter


async def test_synthesize_round_trip_returns_a_24khz_mono_wav(
    client: ChatterboxClient, emulator: GatewayEmulator, limiter: RecordingLimiter
) -> None:
    seen: list[JobStatus] = []
    request = TTSRequest(text="  Hello from the round trip.  ", params=TTSParams(exaggeration=0.7, cfg=1.2))

    audio = await client.synthesize(request, max_wait=60, max_bytes=5_000_000, key="user-1",
                                    on_status=lambda doc: seen.append(doc.status))

    with wave.open(io.BytesIO(audio)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
        assert wav.getnframes() > 0
    (job,) = emulator.jobs.values()
    assert job.text == "Hello from the round trip."  # stripped before sending
    assert job.params == {"exaggeration": 0.7, "temperature": 0.8, "cfg": 1.2}
    assert job.status == "COMPLETED" and job.charged
    assert seen[-1] is JobStatus.COMPLETED and len(seen) == len(set(seen))  # on change only
    assert set(limiter.acquired) == {"user-1"}
    assert emulator.counts["media"] == 1


async def test_failed_job_raises_job_failed_not_refunded(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    emulator.script_submit(Outcome("failed", duration=1.0, error="The voice clip is too short."))
    accepted = await client.submit(TTSRequest(text="This will fail."))
    with pytest.raises(JobFailed) as caught:
        await client.wait(accepted.request_id, text_chars=15, max_wait=30)
    error = caught.value
    assert error.refund is False
    assert error.error == "The voice clip is too short."
    assert error.user_message == (
        "The TTS service could not make this audio (often the voice clip: try another clip, or no clip)."
    )
    assert "The voice clip is too short." in str(error)  # the provider's words: for the log
    assert error.request_id == accepted.request_id
    assert emulator.jobs[accepted.request_id].charged  # the provider charges FAILED


async def test_errored_job_raises_job_errored_refunded(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    emulator.script_submit(Outcome("error", duration=1.0))
    accepted = await client.submit(TTSRequest(text="This will error."))
    with pytest.raises(JobErrored) as caught:
        await client.wait(accepted.request_id, text_chars=16, max_wait=30)
    assert caught.value.refund is True
    assert caught.value.user_message == "The TTS service had a system error."  # the cog adds the refund
    assert not emulator.jobs[accepted.request_id].charged  # ERROR is not charged


async def test_wait_timeout(client: ChatterboxClient, emulator: GatewayEmulator) -> None:
    emulator.script_submit(Outcome("complete", duration=500.0))
    accepted = await client.submit(TTSRequest(text="A very slow job."))
    with pytest.raises(WaitTimeout) as caught:
        await client.wait(accepted.request_id, text_chars=16, max_wait=4.0)
    assert caught.value.refund is False
    job = emulator.jobs[accepted.request_id]
    assert job.status == "PROCESSING"
    assert 2 <= len(job.status_polls) <= 20
    # the last poll happened at the deadline, not long after it (emulator's own clock)
    assert job.status_polls[-1][0] - job.created_mono == pytest.approx(4.0, abs=1.5)


async def test_both_timestamp_shapes_from_the_emulator_parse_as_utc(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    docs: list[StatusDocument] = []
    for text in ("first timestamps", "second timestamps"):  # updated_at alternates shapes per job
        emulator.script_submit(Outcome("complete", duration=0.5))
        accepted = await client.submit(TTSRequest(text=text))
        docs.append(await client.wait(accepted.request_id, text_chars=len(text), max_wait=30))
    raw_updated = [emulator.status_document(doc.request_id)["updated_at"] for doc in docs]
    assert any("T" in value and value.endswith("Z") for value in raw_updated)
    assert any(" " in value for value in raw_updated)
    for doc in docs:
        job = emulator.jobs[doc.request_id]
        assert doc.created_at == job.created_at.astimezone(UTC).replace(
            microsecond=job.created_at.microsecond // 1000 * 1000)
        assert doc.completed_at == job.completed_at.astimezone(UTC).replace(microsecond=0)
        assert doc.updated_at is not None and doc.updated_at.tzinfo is not None
        assert isinstance(doc.completed_at, datetime) and doc.completed_at.utcoffset().total_seconds() == 0


async def test_unknown_request_id_is_a_protocol_error(client: ChatterboxClient) -> None:
    with pytest.raises(ProtocolError) as caught:
        await client.status("no-such-request")
    assert caught.value.status == 404 and caught.value.refund is False


async def test_failing_status_callback_does_not_break_wait(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    async def broken(doc: StatusDocument) -> None:
        raise RuntimeError("discord edit failed")

    emulator.script_submit(Outcome("complete", duration=0.5))
    accepted = await client.submit(TTSRequest(text="callback"))
    doc = await client.wait(accepted.request_id, text_chars=8, max_wait=30, on_status=broken)
    assert doc.status is JobStatus.COMPLETED and doc.media_urls
