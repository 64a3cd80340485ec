"""Long text at full speed, and 1,000 jobs in flight: wall time, memory and event-loop lag.

1. **Long text.** A 1,500-character text through ``SpeechService`` with the default settings
   against the gateway emulator, every chunk taking exactly 5 s there (a ``ScaledClock`` runs
   the emulator and the bot 2x faster than real time; figures are in emulated seconds). The
   wall time is printed as a multiple of the slowest chunk (goal <= 1.3x), next to the old
   default of 3 chunks at a time measured in the same run.
2. **1,000 jobs in flight.** A separate bot process (so its memory is its own) starts 1,000
   one-chunk jobs at once against an emulator process whose jobs all take 10 s and return
   ~9 s of audio each, so they finish within the same few seconds; the jobs' audio is taken
   and dropped as it arrives (like a delivery). Printed: the process's peak RSS (goal <= 200 MB)
   and the event-loop lag p99 measured by a 10 ms ticker (goal <= 20 ms).

Not a test: it prints figures and asserts nothing.

    .venv/bin/python bench/long_text.py [--jobs 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.clock import ScaledClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.gateway.emulator import EmulatorConfig, GatewayEmulator  # noqa: E402
from bot.gateway.models import TTSParams  # noqa: E402
from bot.services import Services  # noqa: E402
from bot.speak_cli import CLI_REQUESTER  # noqa: E402
from bot.speech.events import DeliveryTarget, Requester  # noqa: E402

CHUNK_SECONDS = 5.0
SCALE = 2.0
SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank today. "


def long_text(chars: int = 1500) -> str:
    text = ""
    while len(text) + len(SENTENCE) <= chars:
        text += SENTENCE
    return text.strip()


def settings_for(base_url: str, api_key: str, database: str, **extra: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, chatterbox_gateway_url=base_url, chatterbox_api_key=api_key,  # pyright: ignore[reportCallIssue]
        chatterbox_allow_http=True, database_url=database, **extra,
    )


async def one_long_text(concurrency: int | None, user_id: int) -> tuple[float, int]:
    clock = ScaledClock(SCALE)
    config = EmulatorConfig(clock=clock, workers=64, base_seconds=CHUNK_SECONDS, per_char_seconds=0.0,
                            jitter=0.0, webhook_duplicate_rate=0.0, seed=1)
    async with GatewayEmulator(config) as emulator:
        database = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-long-')}/bot.db"
        extra = {} if concurrency is None else {"chatterbox_chunk_concurrency": concurrency}
        settings = settings_for(emulator.base_url, emulator.api_key, database, **extra)
        async with await Services.open(settings, clock=clock) as services:
            requester = Requester(user_id=user_id, display_name="bench", guild_id=1)
            started = clock.monotonic()
            job = await services.speech.start(requester, long_text(), voice_url=None, params=TTSParams(),
                                              target=DeliveryTarget(kind="file"))
            await job.result()
            return clock.monotonic() - started, job.plan.requests


# ---- 1,000 jobs ----------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def thousand_jobs(base_url: str, jobs: int) -> None:
    """The bot side of part 2 (its own process); prints one result line."""
    database = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-many-')}/bot.db"
    settings = settings_for(base_url, "emulator-key", database, chatterbox_rate_per_second=1000,
                            chatterbox_rate_burst=1000, chatterbox_max_wait_seconds=600)
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(max(0.0, loop.time() - before - 0.01))

    text = "This sentence is long enough to make about nine seconds of test-signal audio, " \
           "which is what a busy server produces."
    async with await Services.open(settings) as services:
        baseline = rss_mb()
        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        starts: list[float] = []
        finish_times: list[float] = []

        async def one() -> None:
            handle = await services.speech.start(CLI_REQUESTER, text, voice_url=None, params=TTSParams(),
                                                 target=DeliveryTarget(kind="file"))
            starts.append(time.perf_counter() - started)
            job_id = handle.job_id
            result = await handle.result()
            finish_times.append(time.perf_counter() - started)
            del result, handle  # "delivered": nothing keeps the audio
            await services.speech.mark_delivered(job_id)

        await asyncio.gather(*(one() for _ in range(jobs)))
        submitted = max(starts)
        stop.set()
        await tick
    lags.sort()
    p99 = lags[int(len(lags) * 0.99)] * 1000 if lags else float("nan")
    spread = max(finish_times) - min(finish_times)
    print(f"RESULT jobs={jobs} baseline_mb={baseline:.0f} peak_mb={peak_rss_mb():.0f} p99_ms={p99:.1f} "
          f"max_ms={lags[-1] * 1000:.1f} submit_s={submitted:.1f} finish_spread_s={spread:.1f}", flush=True)


async def run_thousand(jobs: int, audio_per_char: float = 0.06) -> str:
    emulator = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "emulator", "--port", "0", "--workers", str(jobs * 2),
        "--base-seconds", "10", "--per-char-seconds", "0", "--balance", "100000",
        "--webhook-duplicate-rate", "0", "--seed", "1", "--audio-seconds-per-char", str(audio_per_char),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert emulator.stdout is not None
        base_url = ""
        while not base_url:
            line = (await asyncio.wait_for(emulator.stdout.readline(), 30)).decode()
            if not line:
                raise RuntimeError("the emulator exited before printing its address")
            for word in line.split():
                if word.startswith("http://127.0.0.1:"):
                    base_url = word.rstrip(",;")
        async def drain() -> None:  # the emulator logs every request: keep its pipe flowing
            assert emulator.stdout is not None
            while await emulator.stdout.read(65536):
                pass

        drainer = asyncio.create_task(drain())
        worker = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--worker", base_url, str(jobs), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "LOG_LEVEL": "WARNING"},
        )
        out, _ = await asyncio.wait_for(worker.communicate(), 900)
        drainer.cancel()
        lines = [line for line in out.decode().splitlines() if line.startswith("RESULT")]
        return lines[-1] if lines else "no result:\n" + out.decode()[-2000:]
    finally:
        emulator.terminate()
        await emulator.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--audio-seconds-per-char", type=float, default=0.06, help=argparse.SUPPRESS)
    parser.add_argument("--only-jobs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, metavar=("URL", "JOBS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        await thousand_jobs(args.worker[0], int(args.worker[1]))
        return
    if not args.only_jobs:
        print(f"Long text: {len(long_text()):,} characters, every chunk {CHUNK_SECONDS:g} s at the emulator")
        wall, chunks = await one_long_text(None, user_id=11)
        old, _ = await one_long_text(3, user_id=12)
        print(f"  defaults (all {chunks} chunks at once)        {wall:6.2f} s = {wall / CHUNK_SECONDS:.2f}x "
              f"the slowest chunk (goal <= 1.3x)")
        print(f"  peer: 3 chunks at a time (the old default)  {old:6.2f} s = {old / CHUNK_SECONDS:.2f}x")
    print(f"\n{args.jobs:,} jobs in flight (10 s each at the emulator, ~9 s of audio each)")
    result = await run_thousand(args.jobs, args.audio_seconds_per_char)
    fields = dict(part.split("=", 1) for part in result.split()[1:] if "=" in part)
    if "peak_mb" not in fields:
        print("  failed:", fields)
        return
    print(f"  peak RSS of the bot process      {float(fields['peak_mb']):6.0f} MB (goal <= 200 MB; "
          f"{fields['baseline_mb']} MB before the first job)")
    print(f"  event-loop lag p99               {float(fields['p99_ms']):6.1f} ms (goal <= 20 ms; "
          f"max {fields['max_ms']} ms)")
    print(f"  submitting took {fields['submit_s']} s; the jobs finished within {fields['finish_spread_s']} s "
          "of each other")


if __name__ == "__main__":
    asyncio.run(main())
