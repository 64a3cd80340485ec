"""How soon the audio is fetched after the provider finishes: push vs polling vs naive pollers.

Against the gateway emulator (real HTTP on loopback), with job durations drawn log-uniform
2-30 s, at N jobs in flight (N workers, each running jobs back to back), for:

  (a) push      the project's client as ``Services`` wires it, with ``PUBLIC_BASE_URL``: the
                emulator's webhook reaches the bot's HTTP server, one status GET confirms it
  (b) polling   the project's client as ``Services`` wires it, without push: the poll plan
                learned from observed durations
  (c) naive 1 s a loop asking every second
  (d) naive 5 s a loop asking every 5 s (the provider's documented example)

The emulator runs in this process by default; ``--child-process`` moves it to its own (on
a busy machine every request then waits for the other process to be scheduled, which costs
more than sharing a loop). Figures, all read from the emulator's own records on its clock:
delay from the job's COMPLETED to the first media request (p50 / p95 / max), and
status GETs per job.

Time runs ``--scale`` (5; ``--scale-300`` 1.25 at 300 in flight) times faster on a
``ScaledClock`` shared by the emulator and every client (timestamps and sleeps agree on both
sides), so a 30 s job takes 6 (24) real seconds. Every real millisecond of processing shows
as ``scale`` milliseconds in the figures, so they are pessimistic for push (whose delay is
all processing) and exact for the pollers' sleeps. At 300 in flight the factor is lower so
that what is measured is not one event loop (bot and emulator together) serving far more
requests per real second than 300 jobs make: at 2.5 the naive 1 s poller alone made ~750 a
second, its answers slowed, and so it polled less often than every second (fewer calls,
a p95 past 1 s) — a figure of this machine's load, not of the strategy. At 10 in flight
``--jobs-per-worker`` (6) jobs per worker make 60 samples, so a p95 is not one job's luck. Each strategy
runs against its own emulator on the same sequence of durations; at 300 in flight each
strategy runs alone (one after the other), so none is measured paying for another's CPU.

Settings of the project's side, chosen for what is measured (delivery, not pacing):
``CHATTERBOX_RATE_PER_SECOND`` 1000 (submissions are not the subject) and
``CHATTERBOX_STATUS_RATE_PER_SECOND`` sized as the README's rule of thumb says, never below
the default (20): for polling 1.2 reads per second per job in flight (the plan's densest
polling is one read per 0.9 s per job) — 20 at 10 in flight, 360 at 300; for push 1.5 x jobs
in flight / the mean job duration (10.3 s here) — 20 at 10, 44 at 300. ``--status-rate``
fixes one value for every case instead. The table's header prints the values used.
The poll plan starts from 200 earlier durations of the same distribution, as a bot that has
been running would (they are kept in the database). Not a test: it prints and asserts nothing.

    .venv/bin/python bench/delivery.py [--jobs-per-worker 6] [--scale 5] [--scale-300 1.25] [--status-rate R]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import aiohttp
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.clock import ScaledClock
from bot.config import Settings
from bot.gateway.client import ChatterboxClient
from bot.gateway.emulator import EmulatorConfig, GatewayEmulator, Outcome
from bot.gateway.models import JobStatus, TTSRequest
from bot.services import Services

LOW, HIGH = 2.0, 30.0
#: Workers start this far apart (clock seconds): 300 POSTs in the same instant would measure
#: how long the event loop takes to drain that burst, not delivery (the bot itself submits at
#: CHATTERBOX_RATE_PER_SECOND, 5/s by default). 300 workers are all running after 3 s.
RAMP_SECONDS_PER_WORKER = 0.01
MAX_BYTES = 10 * 1024 * 1024


@dataclass
class Figures:
    name: str
    jobs: int
    p50: float
    p95: float
    worst: float
    calls: float

    def row(self, scale: float) -> str:
        return (f"  {self.name:<12} {self.jobs:>5}  {self.p50:>7.3f}  {self.p95:>7.3f}  {self.worst:>7.3f}"
                f"  {self.calls:>9.2f}   {1000 * self.p95 / scale:>8.1f}")


def log_uniform(rng: random.Random) -> float:
    return math.exp(rng.uniform(math.log(LOW), math.log(HIGH)))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


JobRunner = Callable[[str], Awaitable[None]]
Result = tuple[int, list[float], list[int]]
Start = Callable[[], Awaitable[object]]


class Emulator:
    """The emulator in a child process (``--child-process``), driven over its control API; its
    ``ScaledClock`` has the same origin as ours (CLOCK_MONOTONIC is one clock for every
    process), so both sides' timestamps agree."""

    def __init__(self, process: asyncio.subprocess.Process, base_url: str, session: aiohttp.ClientSession):
        self._process = process
        self.base_url = base_url
        self.api_key = "emulator-key"
        self._session = session

    @classmethod
    async def start(cls, clock: SharedScaledClock, in_flight: int,
                    session: aiohttp.ClientSession) -> Emulator:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--child-emulator", repr(clock.origin), clock.start.isoformat(),
            repr(clock.factor), str(in_flight), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"the emulator process did not start: {line!r}")
        return cls(process, line, session)

    async def script(self, outcomes: list[Outcome]) -> None:
        body = {"submit": [o.to_json() for o in outcomes]}
        async with self._session.post(self.base_url + "/_emulator/script", json=body) as resp:
            resp.raise_for_status()

    async def jobs(self) -> list[dict[str, object]]:
        async with self._session.get(self.base_url + "/_emulator/jobs") as resp:
            resp.raise_for_status()
            return list((await resp.json())["jobs"])

    async def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        await self._process.wait()


class LocalEmulator(Emulator):
    """The emulator in this process (the default): one event loop serves both sides."""

    def __init__(self, emulator: GatewayEmulator) -> None:
        self._emulator = emulator
        self.base_url = emulator.base_url
        self.api_key = emulator.api_key

    @classmethod
    async def open(cls, clock: SharedScaledClock, in_flight: int) -> LocalEmulator:
        emulator = GatewayEmulator(emulator_config(clock, in_flight))
        await emulator.start()
        return cls(emulator)

    async def script(self, outcomes: list[Outcome]) -> None:
        self._emulator.script_submit(*outcomes)

    async def jobs(self) -> list[dict[str, object]]:
        return [job.to_control_json() for job in self._emulator.jobs.values()]

    async def close(self) -> None:
        await self._emulator.close()


def emulator_config(clock: ScaledClock, in_flight: int) -> EmulatorConfig:
    return EmulatorConfig(seed=3, jitter=0.0, workers=4 * in_flight, webhook_duplicate_rate=0.0,
                          allow_http_webhooks=True, balance=Decimal(1_000_000), clock=clock)


async def child_emulator(origin: float, start: str, factor: float, in_flight: int) -> None:
    """``--child-emulator``: serve until stdin closes; print the base URL first."""
    clock = SharedScaledClock(factor, datetime.fromisoformat(start), origin)
    async with GatewayEmulator(emulator_config(clock, in_flight)) as emulator:
        print(emulator.base_url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


class SharedScaledClock(ScaledClock):
    """A ``ScaledClock`` with a given origin, so two processes share one scaled time."""

    def __init__(self, factor: float, start: datetime, origin: float | None = None) -> None:
        super().__init__(factor, start)
        self.start = start
        self.origin = self._origin if origin is None else origin
        self._origin = self.origin


async def run_strategy(emulator: Emulator, runner: JobRunner, clock: ScaledClock, *, workers: int,
                       per_worker: int, rng: random.Random, start: Start) -> Result:
    """Run ``workers`` x ``per_worker`` jobs, ``workers`` at a time; (jobs, delays, calls)."""
    before = {job["request_id"] for job in await emulator.jobs()}
    durations = [log_uniform(rng) for _ in range(workers * per_worker)]
    await emulator.script([Outcome("complete", duration=d) for d in durations])
    await start()  # strategies side by side start their jobs together, once all are set up

    async def worker(index: int) -> None:
        await clock.sleep(index * RAMP_SECONDS_PER_WORKER)
        for n in range(per_worker):
            await runner(f"Bench job {index}-{n}.")

    await asyncio.gather(*(worker(i) for i in range(workers)))
    jobs = [job for job in await emulator.jobs() if job["request_id"] not in before]
    delays, calls = [], []
    for job in jobs:
        media = job["media_requests"]
        assert isinstance(media, list) and media and isinstance(job["completed_mono"], float), job
        delays.append(media[0] - job["completed_mono"])
        polls = job["status_polls"]
        assert isinstance(polls, list)
        calls.append(len(polls))
    return len(jobs), delays, calls


def settings_for(emulator: Emulator, database: str, status_rate: float, *, push: bool) -> Settings:
    values: dict[str, object] = {
        "chatterbox_gateway_url": emulator.base_url,
        "chatterbox_api_key": emulator.api_key,
        "chatterbox_allow_http": True,
        "database_url": f"sqlite+aiosqlite:///{database}",
        "chatterbox_rate_per_second": 1000.0,
        "chatterbox_rate_burst": 1000,
        "chatterbox_status_rate_per_second": status_rate,
        "log_level": "WARNING",
    }
    if push:
        values["public_base_url"] = "http://127.0.0.1:9"  # replaced by the bound port below
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# Two Services migrating at once in one process deadlock on Alembic's process-wide lock
# (bot.store.migrate holds a threading.Lock across an await); open them one at a time.
_OPENING = asyncio.Lock()


async def project(emulator: Emulator, clock: ScaledClock, workdir: Path, status_rate: float, *,
                  push: bool, workers: int, per_worker: int, rng: random.Random, start: Start) -> Result:
    settings = settings_for(emulator, str(workdir / f"bot-{push}-{workers}.db"), status_rate, push=push)
    async with _OPENING:
        services = await Services.open(settings, clock=clock, serve_http=push, http_port=0 if push else None)
    try:
        if services.push is not None:
            assert services.web is not None
            services.push.base_url = services.web.base_url
        history = random.Random(7)
        for _ in range(200):
            services.client.durations.record(log_uniform(history))
        client = services.client

        async def one(text: str) -> None:
            accepted = await client.submit(TTSRequest(text=text), key=text)
            doc = await client.wait(accepted.request_id, max_wait=600, key=text)
            await client.download(doc.media_urls[0], max_bytes=MAX_BYTES)

        return await run_strategy(emulator, one, clock, workers=workers, per_worker=per_worker, rng=rng,
                                  start=start)
    finally:
        await services.close()


async def naive(emulator: Emulator, clock: ScaledClock, session: aiohttp.ClientSession,
                every: float, *, workers: int, per_worker: int, rng: random.Random, start: Start) -> Result:
    client = ChatterboxClient(session, base_url=emulator.base_url, api_key=SecretStr(emulator.api_key),
                              clock=clock, allow_http=True)  # no limiter at all: the naive peer

    async def one(text: str) -> None:
        accepted = await client.submit(TTSRequest(text=text))
        while True:
            await clock.sleep(every)
            doc = await client.status(accepted.request_id)
            if doc.status is JobStatus.COMPLETED:
                break
        await client.download(doc.media_urls[0], max_bytes=MAX_BYTES)

    return await run_strategy(emulator, one, clock, workers=workers, per_worker=per_worker, rng=rng,
                              start=start)


def figures(name: str, result: Result) -> Figures:
    jobs, delays, calls = result
    return Figures(name, jobs, statistics.median(delays), quantile(delays, 0.95), max(delays),
                   statistics.fmean(calls))


async def measure(args: argparse.Namespace, in_flight: int, workdir: Path) -> list[Figures]:
    """The four strategies at ``in_flight`` jobs, each against its own emulator and on the same
    durations (same seed). At 10 in flight they run side by side (the load is small); at 300
    one after the other, so none slows another down."""
    clock = SharedScaledClock(scale_for(args, in_flight), datetime.now(UTC))
    per_worker = args.jobs_per_worker if in_flight < 100 else 1
    names = ["(a) push", "(b) polling", "(c) naive 1s", "(d) naive 5s"]
    side_by_side = in_flight < 100
    # Side by side, no strategy's jobs run while another still opens its database (migrations
    # hold the GIL for a moment): all set up, then all start.
    barrier = asyncio.Barrier(len(names) if side_by_side else 1)
    common = {"workers": in_flight, "per_worker": per_worker, "start": barrier.wait}

    async def one(name: str) -> Figures:
        async with aiohttp.ClientSession() as session:
            if args.child_process:
                emulator: Emulator = await Emulator.start(clock, in_flight, session)
            else:
                emulator = await LocalEmulator.open(clock, in_flight)
            try:
                return figures(name, await strategy(name, emulator, session))
            finally:
                await emulator.close()

    async def strategy(name: str, emulator: Emulator, session: aiohttp.ClientSession) -> Result:
        rng = random.Random(in_flight)  # the same durations for every strategy
        if name in ("(a) push", "(b) polling"):
            push = name == "(a) push"
            return await project(emulator, clock, workdir, status_rate_for(args, in_flight, push=push),
                                 push=push, rng=rng, **common)
        every = 1.0 if name == "(c) naive 1s" else 5.0
        return await naive(emulator, clock, session, every, rng=rng, **common)

    if side_by_side:
        return list(await asyncio.gather(*(one(name) for name in names)))
    return [await one(name) for name in names]  # alone: none pays for another's CPU


def scale_for(args: argparse.Namespace, in_flight: int) -> float:
    return args.scale if in_flight < 100 else args.scale_300


DEFAULT_STATUS_RATE = float(Settings.model_fields["chatterbox_status_rate_per_second"].default)
# The README's rules of thumb: polling reads a job once per 0.9 s (1.2 with a margin); push
# reads it once, when it ends (x 1.5 for bursts of completions).
POLL_READS_PER_JOB_PER_SECOND = 1.2
PUSH_MARGIN = 1.5
MEAN_DURATION = (HIGH - LOW) / math.log(HIGH / LOW)  # of the log-uniform durations: 10.3 s


def status_rate_for(args: argparse.Namespace, in_flight: int, *, push: bool) -> float:
    """The status budget of (a) or (b): ``--status-rate``, else the README's rule of thumb."""
    if args.status_rate is not None:
        return float(args.status_rate)
    need = PUSH_MARGIN * in_flight / MEAN_DURATION if push else POLL_READS_PER_JOB_PER_SECOND * in_flight
    return max(DEFAULT_STATUS_RATE, float(math.ceil(need)))


def verdicts(small: list[Figures], large: list[Figures], scale_small: float, scale_large: float) -> list[str]:
    lines = []
    for rows, n in ((small, "10"), (large, "300")):
        push, polling, one_second = rows[0], rows[1], rows[2]
        lines.append(f"  at {n:>3}: push p95 {push.p95:.3f} s (target <= 0.1) with {push.calls:.2f} GET/part "
                     f"(target <= 1): {'ok' if push.p95 <= 0.1 and push.calls <= 1 else 'MISSED'}")
        ok = polling.p95 <= 1.0 and polling.calls <= one_second.calls
        lines.append(f"          polling p95 {polling.p95:.3f} s (target <= 1.0) with {polling.calls:.2f} "
                     f"GET/job vs the 1 s poller's {one_second.calls:.2f}: {'ok' if ok else 'MISSED'}")
    for a, b in zip(small[:2], large[:2], strict=True):
        change = (b.p95 - a.p95) / a.p95 if a.p95 > 0 else 0.0
        calls = (b.calls - a.calls) / a.calls if a.calls > 0 else 0.0
        # The two sizes draw different samples of durations, so calls are also compared as a
        # ratio to the 1 s poller's on the same sample.
        relative = (b.calls / large[2].calls) / (a.calls / small[2].calls) - 1
        versus = f" ({relative:+.0%} relative to the 1 s poller)" if a.name.startswith("(b)") else ""
        if a.name.startswith("(a)"):
            # Push's delay is all processing, which each level's clock factor magnifies
            # differently: compare it in real milliseconds too.
            real_a, real_b = a.p95 / scale_small, b.p95 / scale_large
            versus = f" (p95 in real ms {(real_b - real_a) / real_a:+.0%})" if real_a > 0 else ""
        lines.append(f"  {a.name}: 300 vs 10 in flight: p95 {change:+.0%}, calls {calls:+.0%}{versus} "
                     "(target within 20 %)")
    return lines


async def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--child-emulator":
        await child_emulator(float(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs-per-worker", type=int, default=6, help="jobs per worker at 10 in flight")
    parser.add_argument("--scale", type=float, default=5.0,
                        help="clock factor at 10 in flight (time runs this much faster)")
    parser.add_argument("--scale-300", type=float, default=1.25, help="clock factor at 300 in flight")
    parser.add_argument("--child-process", action="store_true",
                        help="run the emulator in a child process (its own CPU share, but every "
                        "request then waits for the other process to be scheduled)")
    parser.add_argument("--status-rate", type=float, default=None,
                        help="CHATTERBOX_STATUS_RATE_PER_SECOND for (a) and (b) at both levels "
                        "(default: the README's rule of thumb for each, at least the setting's default)")
    args = parser.parse_args()
    started = time.monotonic()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(real-time delays, and so these figures, grow with it)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results = {}
        for in_flight in (10, 300):
            results[in_flight] = await measure(args, in_flight, workdir)
            scale = scale_for(args, in_flight)
            print(f"\n{in_flight} jobs in flight (durations log-uniform {LOW:g}-{HIGH:g} s, "
                  f"clock x{scale:g}); CHATTERBOX_STATUS_RATE_PER_SECOND "
                  f"{status_rate_for(args, in_flight, push=True):g} for push, "
                  f"{status_rate_for(args, in_flight, push=False):g} for polling; "
                  "delay COMPLETED -> media request, seconds:")
            print(f"  {'':<12} {'jobs':>5}  {'p50':>7}  {'p95':>7}  {'max':>7}  {'GETs/job':>9}"
                  f"   {'p95 real ms':>8}")
            for row in results[in_flight]:
                print(row.row(scale))
    print("\ntargets:")
    for line in verdicts(results[10], results[300], scale_for(args, 10), scale_for(args, 300)):
        print(line)
    print(f"\n(wall time {time.monotonic() - started:.1f} s; load average at end {os.getloadavg()[0]:.1f}; "
          "'p95 real ms' = p95 / scale: the processing cost without the clock's magnification)")


if __name__ == "__main__":
    asyncio.run(main())
