"""SIGKILL with a partly cached job in flight: the next process finishes it, charged once.

A real worker process (``tests.cache.partial_kill_worker``) against the gateway emulator and a
real database (SQLite file and PostgreSQL); it is killed after its job was written with its
cached part and both made parts were POSTed. This process then takes the job over (its clock
is set past the dead worker's lease) and must deliver it exactly once, POST nothing again, and
commit the two made requests only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.audio import join_wavs
from bot.clock import ScaledClock
from bot.gateway.emulator import EmulatorConfig, GatewayEmulator, Outcome
from bot.quotas import ReservationState
from bot.services import Services
from bot.speech.events import ResumedJob, SpeechResult
from bot.store import JobState, PartState
from tests.cache.partial_kill_worker import MIDDLE, TEXT
from tests.speech.support import speech_settings
from tests.store.dbkit import DbTarget

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def emulator() -> AsyncIterator[GatewayEmulator]:
    """On real time: the worker process polls it with its own clock."""
    config = EmulatorConfig(seed=5, jitter=0.0, base_seconds=0.2, per_char_seconds=0.002,
                            webhook_duplicate_rate=0.0)
    async with GatewayEmulator(config) as emu:
        yield emu


async def run_until_submitted(command: list[str]) -> str:
    """Start the worker, wait for its ``submitted <job id>`` line, SIGKILL it; the job id."""
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):  # a hang guard only
            line = await process.stdout.readline()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        _, stderr = await process.communicate()
    assert line.startswith(b"submitted "), stderr.decode(errors="replace")[-2000:]
    assert process.returncode == -signal.SIGKILL
    return line.split()[1].decode()


async def test_a_killed_worker_leaves_its_partly_cached_job_to_the_next_process_charged_once(
    db_target: DbTarget, emulator: GatewayEmulator, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    # The warm-up request completes at once; the two made parts outlive the worker.
    emulator.script_submit(Outcome("complete"), Outcome("complete", duration=4),
                           Outcome("complete", duration=4))
    command = [sys.executable, "-m", "tests.cache.partial_kill_worker", "--db", db_target.url,
               "--gateway", emulator.base_url, "--key", emulator.api_key, "--cache-dir", str(cache_dir)]
    if db_target.schema:
        command += ["--schema", db_target.schema]
    job_id = await run_until_submitted(command)
    assert emulator.counts["submit"] == 3  # the warm-up and the two made parts

    settings = speech_settings(emulator, db_target.url, cache_dir=str(cache_dir))
    # Real time, a minute ahead: the dead worker's one-second lease has run out.
    clock = ScaledClock(1.0, start=datetime.now(UTC) + timedelta(minutes=1))
    db = await db_target.open()
    try:
        async with await Services.open(settings, clock=clock, database=db) as services:
            left = await services.speech.get_job(job_id)
            assert left is not None and left.status is JobState.SUBMITTED
            assert [p.status for p in left.parts] == [PartState.SUBMITTED, PartState.CACHED,
                                                      PartState.SUBMITTED]
            delivered: list[tuple[ResumedJob, SpeechResult]] = []
            failed: list[str] = []

            async def deliver(job: ResumedJob, result: SpeechResult) -> None:
                delivered.append((job, result))

            async def on_failed(_: ResumedJob, message: str) -> None:
                failed.append(message)

            assert await services.speech.resume_pending(deliver, wait=True, on_failed=on_failed) == 1
            assert await services.speech.resume_pending(deliver, wait=True, on_failed=on_failed) == 0

            [(job, result)] = delivered  # delivered once
            assert job.job_id == job_id and failed == []
            assert (result.text, result.chunks, result.cached_chunks) == (TEXT, 3, 1)
            media = {j.text: j.media_bytes or b"" for j in emulator.jobs.values()}
            first, middle, last = services.speech.plan(TEXT).chunks
            assert middle == MIDDLE
            assert result.audio == join_wavs([media[first], media[MIDDLE], media[last]],
                                             pause_ms=settings.chatterbox_chunk_pause_ms)
            assert emulator.counts["submit"] == 3  # polled again, never re-POSTed

            record = await services.speech.get_job(job_id)
            assert record is not None and record.status is JobState.DELIVERED and record.reservation_id
            reservation = await services.quotas.get_reservation(record.reservation_id)
            assert reservation.state is ReservationState.COMMITTED
            assert (reservation.requests, reservation.committed_requests) == (2, 2)
            assert reservation.characters == len(first) + len(last)
            assert result.cost == reservation.cost == Decimal("0.02")
    finally:
        await db.close()
