"""The emulator's server: ``GatewayEmulator`` (routes, the job queue and its workers, the
control API) and ``run_emulator`` for ``chatterbox-bot emulator``. What it emulates and how
is described in the package docstring (``bot.gateway.emulator``)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import email.utils
import ipaddress
import json
import logging
import math
import random
import sys
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, timedelta
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, NoReturn

import aiohttp
from aiohttp import web

from bot.clock import Clock
from bot.formats import money
from bot.gateway.emulator.audio import looks_like_audio, render_test_signal
from bot.gateway.emulator.cli import EMULATOR_DESCRIPTION, add_emulator_arguments, banner, config_from_args
from bot.gateway.emulator.config import RATE_NAMES, EmulatorConfig, check_rate
from bot.gateway.emulator.model import (
    COMPLETED,
    ERROR,
    FAILED,
    JOB_KINDS,
    KEY_HEADER,
    PROCESSING,
    QUEUED,
    STATUS_OUTCOMES,
    SUBMIT_OUTCOMES,
    TERMINAL_STATUSES,
    EmulatorJob,
    Outcome,
    Submission,
    SubmissionError,
    TokenBucket,
    key_fingerprint,
    redacted_headers,
    validate_submission,
)
from bot.gateway.emulator.webhooks import WebhookDelivery, WebhookPolicy, WebhookSender

__all__ = [
    "EMULATOR_DESCRIPTION",
    "EmulatorConfig",
    "EmulatorJob",
    "EmulatorWaitError",
    "GatewayEmulator",
    "Outcome",
    "WebhookDelivery",
    "add_emulator_arguments",
    "config_from_args",
    "run_emulator",
]

log = logging.getLogger(__name__)

SUBMIT_PATH = "/chatterbox-text-to-speech/v1/chatterbox-text-to-speech-request"
STATUS_PATH = "/v2/requests/status"
MEDIA_PATH = "/_media"
CONTROL_PATH = "/_emulator"
DEFAULT_FAILED_ERROR = "Generation failed: the model could not synthesize this input (emulated failure)."
DEFAULT_ERROR_ERROR = "Internal error while processing the request (emulated system error)."


class EmulatorWaitError(Exception):
    """A job ended without reaching the awaited status, or the wait timed out."""


@dataclass(frozen=True)
class _SubmitPlan:
    outcome: Outcome  # what the request gets (a scripted one, or "complete"/a random fault)
    job_kind: str  # how an accepted job ends
    jitter_draw: float  # uniform [0, 1) for the duration jitter


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The provider's error body: ``{"error", "message"}``."""
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


class GatewayEmulator:
    """The emulated provider: an aiohttp server plus its in-memory state (see the module doc).

    Use as ``async with GatewayEmulator(config) as emulator:``; ``emulator.base_url`` is then
    the server's address and ``emulator.api_key`` the default key.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = dataclasses.replace(config) if config is not None else EmulatorConfig()
        self.config.validate()
        self.clock: Clock = self.config.clock
        self.counts: Counter[str] = Counter()
        self.jobs: dict[str, EmulatorJob] = {}
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._balance = Decimal(self.config.balance)
        self._submit_script: deque[Outcome] = deque()
        self._status_script: deque[Outcome] = deque()
        seed = self.config.seed

        def stream(name: str) -> random.Random:
            return random.Random() if seed is None else random.Random(f"{seed}:{name}")

        self._submit_rng = stream("submit")
        self._status_rng = stream("status")
        self._id_rng = stream("ids")
        self._webhook_rng = stream("webhooks")
        self._buckets: dict[str, TokenBucket] = {}
        self._change = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._webhooks: WebhookSender | None = None
        self._queue: asyncio.Queue[EmulatorJob] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._slow_handlers: set[asyncio.Task[Any]] = set()
        self._webhook_locks: dict[str, asyncio.Lock] = {}
        self._base_url: str | None = None

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the server (``config.port``; 0 picks a free one) and start the workers."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already started")
        self._session = aiohttp.ClientSession()
        self._webhooks = WebhookSender(
            self._session, self.clock, self._webhook_rng, self._webhook_policy, self.counts,
            self._record_delivery,
        )
        self._queue = asyncio.Queue()
        app = web.Application(middlewares=[self._middleware])
        self._add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        try:
            await web.TCPSite(runner, self.config.host, self.config.port).start()
        except OSError:
            await self.close()
            raise
        port = runner.addresses[0][1]
        host = self.config.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        self._base_url = f"http://{host}:{port}"
        self._workers = [
            asyncio.create_task(self._worker(), name=f"emulator-worker-{n}")
            for n in range(self.config.workers)
        ]
        log.info("gateway emulator listening on %s", self._base_url)

    async def close(self) -> None:
        """Stop workers, webhook deliveries and the server; close the outbound session."""
        for task in self._slow_handlers:
            task.cancel()
        tasks = [*self._workers, *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> GatewayEmulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- Python control API -----------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` once started."""
        if self._base_url is None:
            raise RuntimeError("the emulator is not started")
        return self._base_url

    @property
    def api_key(self) -> str:
        """The default (first) accepted key."""
        return self.config.api_keys[0]

    @property
    def submit_url(self) -> str:
        return self.base_url + SUBMIT_PATH

    def status_url(self, request_id: str) -> str:
        return f"{self.base_url}{STATUS_PATH}/{request_id}"

    @property
    def balance(self) -> Decimal:
        return self._balance

    def set_balance(self, amount: Decimal | int | str) -> None:
        try:
            value = Decimal(str(amount))
        except InvalidOperation:
            raise ValueError("balance: must be a number >= 0") from None
        if not value.is_finite() or value < 0:
            raise ValueError("balance: must be a number >= 0")
        self._balance = value
        self._changed()

    def set_rates(self, **rates: float) -> None:
        """Set failure probabilities: ``fail_rate``, ``error_rate``, ``http500_rate``,
        ``drop_rate``, ``slow_rate``, ``webhook_duplicate_rate`` (each 0..1)."""
        for name, value in rates.items():
            check_rate(name, value)
        for name, value in rates.items():
            setattr(self.config, name, float(value))

    def set_rate_limit(self, rate_per_second: float | None, burst: int | None = None) -> None:
        """Change the per-key limit (None = unlimited); every key starts with a full bucket."""
        if rate_per_second is not None and not rate_per_second > 0:
            raise ValueError("rate_per_second: must be > 0 (or None for no limit)")
        if burst is not None and burst < 1:
            raise ValueError("burst: must be at least 1")
        self.config.rate_per_second = rate_per_second
        if burst is not None:
            self.config.rate_burst = burst
        self._buckets.clear()

    def script_submit(self, *outcomes: str | Outcome) -> None:
        """Queue the answers of the next POSTs, in order (kinds in ``SUBMIT_OUTCOMES``)."""
        checked = [Outcome.coerce(item, SUBMIT_OUTCOMES) for item in outcomes]
        self._submit_script.extend(checked)

    def script_status(self, *outcomes: str | Outcome) -> None:
        """Queue the answers of the next status GETs: ``ok``, ``http_500``, ``http_429``,
        ``drop``, ``slow``."""
        checked = [Outcome.coerce(item, STATUS_OUTCOMES) for item in outcomes]
        self._status_script.extend(checked)

    def status_document(self, request_id: str) -> dict[str, Any]:
        """The status document a poll would return now (without counting a poll)."""
        return self.jobs[request_id].status_document(self.base_url)

    async def wait_until(self, predicate: Callable[[], bool], *, max_real_seconds: float = 10.0) -> None:
        """Return once ``predicate()`` holds, re-checking on every state change.

        State changes: a request answered or dropped, a job's status, a webhook attempt, a
        balance change. ``max_real_seconds`` (wall time) only guards against a hung test.
        """
        try:
            async with asyncio.timeout(max_real_seconds):
                while True:
                    change = self._change
                    if predicate():
                        return
                    await change.wait()
        except TimeoutError:
            raise EmulatorWaitError(f"condition not met within {max_real_seconds} s") from None

    async def wait_for_status(
        self, request_id: str, *statuses: str, max_real_seconds: float = 10.0
    ) -> EmulatorJob:
        """Wait until the job has reached one of ``statuses`` (default: any terminal status).

        A status the job already passed counts. Raises :class:`EmulatorWaitError` when the job
        ends in another terminal status, or after ``max_real_seconds`` (wall time; a hang guard).
        """
        wanted = frozenset(statuses) or TERMINAL_STATUSES

        def reached() -> bool:
            job = self.jobs.get(request_id)
            if job is None:
                return False
            if any(job.reached(status) for status in wanted):
                return True
            if job.terminal:
                raise EmulatorWaitError(
                    f"job {request_id} ended {job.status} ({job.error}), not {sorted(wanted)}"
                )
            return False

        await self.wait_until(reached, max_real_seconds=max_real_seconds)
        return self.jobs[request_id]

    # --- internals: state ---------------------------------------------------------------
    def _changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    def _record_delivery(self, delivery: WebhookDelivery) -> None:
        self.webhook_deliveries.append(delivery)
        self._changed()

    def _webhook_policy(self) -> WebhookPolicy:
        c = self.config
        return WebhookPolicy(
            c.webhook_max_attempts, c.webhook_backoff_seconds, c.webhook_timeout_seconds,
            c.webhook_duplicate_rate,
        )

    def _new_request_id(self) -> str:
        request_id = str(uuid.UUID(int=self._id_rng.getrandbits(128), version=4))
        while len(request_id) < self.config.request_id_length:
            request_id += f"-{self._id_rng.getrandbits(128):032x}"
        return request_id[: self.config.request_id_length]

    def _plan_submit(self) -> _SubmitPlan:
        draws = [self._submit_rng.random() for _ in range(7)]
        if self._submit_script:
            outcome = self._submit_script.popleft()
            job_kind = outcome.kind if outcome.kind in JOB_KINDS else "complete"
            return _SubmitPlan(outcome, job_kind, draws[6])
        c = self.config
        if draws[0] < c.http500_rate:
            kind = "http_500"
        elif draws[1] < c.drop_rate:
            kind = "drop_before" if draws[2] < 0.5 else "drop_after"
        elif draws[3] < c.slow_rate:
            kind = "slow"
        else:
            kind = "complete"
        if draws[4] < c.fail_rate:
            job_kind = "failed"
        elif draws[5] < c.error_rate:
            job_kind = "error"
        else:
            job_kind = "complete"
        return _SubmitPlan(Outcome(kind), job_kind, draws[6])

    def _plan_status(self) -> Outcome:
        draws = [self._status_rng.random() for _ in range(3)]
        if self._status_script:
            return self._status_script.popleft()
        c = self.config
        if draws[0] < c.http500_rate:
            return Outcome("http_500")
        if draws[1] < c.drop_rate:
            return Outcome("drop")
        if draws[2] < c.slow_rate:
            return Outcome("slow")
        return Outcome("ok")

    def _create_job(
        self, submission: Submission, plan: _SubmitPlan, key: str, request: web.Request
    ) -> EmulatorJob:
        c = self.config
        if plan.outcome.duration is not None:
            duration = plan.outcome.duration
        else:
            nominal = c.base_seconds + c.per_char_seconds * len(submission.text)
            duration = max(0.0, nominal * (1 + c.jitter * (2 * plan.jitter_draw - 1)))
        default_error = {"failed": DEFAULT_FAILED_ERROR, "error": DEFAULT_ERROR_ERROR}.get(plan.job_kind)
        job = EmulatorJob(
            request_id=self._new_request_id(),
            sequence=len(self.jobs),
            text=submission.text,
            audio_url=submission.audio_url,
            params=submission.params,
            price=c.price,
            key_fingerprint=key_fingerprint(key),
            request_headers=redacted_headers(request.headers),
            webhook_url=submission.webhook_url,
            webhook_mode=submission.webhook_mode,
            planned=plan.job_kind,
            planned_error=plan.outcome.error or default_error,
            duration=duration,
            created_at=self.clock.now(),
            created_mono=self.clock.monotonic(),
        )
        self._balance -= c.price
        self.jobs[job.request_id] = job
        assert self._queue is not None
        self._queue.put_nowait(job)
        log.info(
            "accepted %s (key %s, %d chars, ends %s in %.2f s)",
            job.request_id, job.key_fingerprint, len(job.text), job.planned, job.duration,
        )
        self._schedule_webhook(job)
        self._changed()
        return job

    def _set_status(self, job: EmulatorJob, status: str) -> None:
        job.status = status
        job.updated_at = self.clock.now()
        job.transitions.append((self.clock.monotonic(), status))
        self._schedule_webhook(job)
        self._changed()

    def _finish(self, job: EmulatorJob, status: str, error: str | None) -> None:
        job.error = error
        job.completed_at = self.clock.now()
        job.completed_mono = self.clock.monotonic()
        if status == ERROR and job.charged:
            self._balance += job.price
            job.charged = False
        log.info("%s %s%s", job.request_id, status, f": {error}" if error else "")
        self._set_status(job, status)

    # --- internals: workers ---------------------------------------------------------------
    async def _worker(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            try:
                await self._process(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("emulator job %s crashed", job.request_id)
                if not job.terminal:
                    self._finish(job, ERROR, DEFAULT_ERROR_ERROR)
            finally:
                self._queue.task_done()

    async def _process(self, job: EmulatorJob) -> None:
        # The deadline is fixed first and the remaining time slept last, so time spent fetching
        # the reference or rendering (or a ManualClock advanced meanwhile) counts toward it.
        deadline = self.clock.monotonic() + job.duration
        job.started_at = self.clock.now()
        self._set_status(job, PROCESSING)
        if job.audio_url is not None:
            problem = await self._fetch_reference(job)
            if problem is not None:
                self._finish(job, FAILED, problem)
                return
        media: bytes | None = None
        if job.planned == "complete":
            loop = asyncio.get_running_loop()
            media = await loop.run_in_executor(
                None, render_test_signal, job.text, self.config.seconds_per_char_audio
            )
        await self.clock.sleep(deadline - self.clock.monotonic())
        if job.planned == "complete":
            job.media_bytes = media
            self._finish(job, COMPLETED, None)
        elif job.planned == "failed":
            self._finish(job, FAILED, job.planned_error)
        else:
            self._finish(job, ERROR, job.planned_error)

    async def _fetch_reference(self, job: EmulatorJob) -> str | None:
        """Download the voice reference; a message for FAILED when it is unusable."""
        assert self._session is not None and job.audio_url is not None
        self.counts["audio_fetch"] += 1
        limit = self.config.audio_max_bytes
        try:
            async with self._session.get(
                job.audio_url,
                timeout=aiohttp.ClientTimeout(total=self.config.audio_fetch_timeout_seconds),
            ) as resp:
                self.counts[f"audio_fetch:{resp.status}"] += 1
                if resp.status >= 400:
                    return f"audio_url could not be fetched: HTTP {resp.status}."
                content_type = resp.headers.get("Content-Type")
                data = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > limit:
                        return f"audio_url is larger than {limit} bytes."
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.counts["audio_fetch:error"] += 1
            return f"audio_url could not be fetched: {type(exc).__name__}."
        job.reference_bytes = len(data)
        if not data:
            return "audio_url is empty, not an audio file."
        if not looks_like_audio(content_type, bytes(data[:16])):
            return f"audio_url is not an audio file (Content-Type {content_type or 'missing'})."
        return None

    # --- internals: webhooks ------------------------------------------------------------------
    def _schedule_webhook(self, job: EmulatorJob) -> None:
        if job.webhook_url is None or job.webhook_mode is None:
            return
        if job.webhook_mode == "terminal" and not job.terminal:
            return
        document = job.status_document(self.base_url)
        # One lock per job, taken in task-creation order (asyncio locks are FIFO): a job's
        # documents reach the receiver in the order its statuses changed.
        lock = self._webhook_locks.setdefault(job.request_id, asyncio.Lock())
        task = asyncio.create_task(self._send_webhook(lock, job.webhook_url, job.webhook_mode, document))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_webhook(
        self, lock: asyncio.Lock, url: str, mode: str, document: dict[str, Any]
    ) -> None:
        assert self._webhooks is not None
        async with lock:
            try:
                await self._webhooks.deliver(url, mode, document)
            except Exception:
                log.exception("webhook delivery for %s crashed", document["request_id"])

    # --- internals: HTTP ----------------------------------------------------------------------
    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post(SUBMIT_PATH, self._submit, name="submit")
        app.router.add_get(STATUS_PATH + "/{request_id}", self._status, name="status")
        app.router.add_get(MEDIA_PATH + "/{name}", self._media, name="media")
        control: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("GET", "/state", self._control_state),
            ("POST", "/balance", self._control_balance),
            ("POST", "/rates", self._control_rates),
            ("POST", "/script", self._control_script),
            ("GET", "/jobs", self._control_jobs),
            ("GET", "/jobs/{request_id}", self._control_job),
            ("GET", "/webhooks", self._control_webhooks),
        ]
        for method, path, handler in control:
            app.router.add_route(method, CONTROL_PATH + path, self._loopback_only(handler))

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Count requests per route and per answer; turn aiohttp's own errors into JSON bodies."""
        route = request.match_info.route.name or (
            "control" if request.path.startswith(CONTROL_PATH) else "other"
        )
        self.counts[route] += 1
        self._changed()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            message = f"{request.method} {request.path}: {exc.reason}"
            response = _error(exc.status, exc.reason, message, headers)
        self.counts[f"{route}:{response.status}"] += 1
        self._changed()
        return response

    def _drop(self, request: web.Request, route: str) -> NoReturn:
        """Close the connection without answering (the client sees a disconnect)."""
        self.counts[f"{route}:dropped"] += 1
        self._changed()
        if request.transport is not None:
            request.transport.close()
        # aiohttp treats a cancelled handler as a premature disconnection: no answer is
        # written and nothing is logged as an error.
        raise asyncio.CancelledError

    async def _slow(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._slow_handlers.add(task)
        try:
            await self.clock.sleep(self.config.slow_seconds)
        finally:
            self._slow_handlers.discard(task)

    def _check_key(self, key: str | None) -> web.Response | None:
        if not key:
            return _error(
                401, "Unauthorized",
                "Access denied due to missing subscription key. Make sure to include subscription "
                "key when making requests to an API.",
            )
        if key in self.config.forbidden_keys:
            return _error(403, "Forbidden", "This subscription key is not allowed to use this API.")
        if key not in self.config.api_keys:
            return _error(
                401, "Unauthorized",
                "Access denied due to invalid subscription key. Make sure to provide a valid key "
                "for an active subscription.",
            )
        return None

    def _rate_limit(self, key: str) -> web.Response | None:
        rate = self.config.rate_per_second
        if rate is None:
            return None
        now = self.clock.monotonic()
        fingerprint = key_fingerprint(key)
        bucket = self._buckets.get(fingerprint)
        if bucket is None:
            bucket = self._buckets[fingerprint] = TokenBucket(rate, self.config.rate_burst, now)
        wait = bucket.take(now)
        if wait <= 0:
            return None
        return self._too_many(max(1, math.ceil(wait)), as_date=False)

    def _too_many(self, seconds: float, *, as_date: bool) -> web.Response:
        if as_date:
            moment = (self.clock.now() + timedelta(seconds=seconds)).astimezone(UTC)
            retry_after = email.utils.format_datetime(moment, usegmt=True)
        else:
            retry_after = str(math.ceil(seconds))
        return _error(
            429, "Too Many Requests",
            f"Rate limit is exceeded. Try again in {math.ceil(seconds)} seconds.",
            {"Retry-After": retry_after},
        )

    def _insufficient(self) -> web.Response:
        return _error(
            402, "Insufficient Balance", f"Insufficient balance. Required: {money(self.config.price)}"
        )

    def _internal_error(self, message: str | None) -> web.Response:
        return _error(500, "Internal Server Error", message or "The service encountered an internal error.")

    def _scripted_http(self, outcome: Outcome) -> web.Response | None:
        kind = outcome.kind
        if kind == "http_400":
            return _error(400, "Bad Request", outcome.error or "Model not found.")
        if kind == "http_402":
            return self._insufficient()
        if kind == "http_403":
            return _error(403, "Forbidden", outcome.error or "This subscription key is not allowed.")
        if kind == "http_429":
            return self._too_many(outcome.retry_after, as_date=outcome.retry_after_date)
        if kind == "http_500":
            return self._internal_error(outcome.error)
        return None

    async def _submit(self, request: web.Request) -> web.Response:
        raw = await request.read()
        plan = self._plan_submit()
        if plan.outcome.kind == "drop_before":
            self._drop(request, "submit")
        scripted = self._scripted_http(plan.outcome)
        if scripted is not None:
            return scripted
        key = request.headers.get(KEY_HEADER)
        denied = self._check_key(key)
        if denied is not None:
            return denied
        assert key is not None
        limited = self._rate_limit(key)
        if limited is not None:
            return limited
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _error(400, "Bad Request", "body: is not valid JSON")
        try:
            submission = validate_submission(
                body, request.headers,
                allow_http_webhooks=self.config.allow_http_webhooks,
                max_text_chars=self.config.max_text_chars,
            )
        except SubmissionError as exc:
            return _error(400, "Bad Request", str(exc))
        if self._balance < self.config.price:
            return self._insufficient()
        job = self._create_job(submission, plan, key, request)
        if plan.outcome.kind == "drop_after":
            self._drop(request, "submit")
        if plan.outcome.kind == "slow":
            await self._slow()
        polling_url = f"{request.url.origin()}{STATUS_PATH}/{job.request_id}"
        return web.json_response(
            {"request_id": job.request_id, "status": QUEUED, "polling_url": polling_url}, status=202
        )

    async def _status(self, request: web.Request) -> web.Response:
        outcome = self._plan_status()
        if outcome.kind == "drop":
            self._drop(request, "status")
        if outcome.kind == "http_500":
            return self._internal_error(outcome.error)
        if outcome.kind == "http_429":
            return self._too_many(outcome.retry_after, as_date=outcome.retry_after_date)
        if outcome.kind == "slow":
            await self._slow()
        key = request.headers.get(KEY_HEADER)
        denied = self._check_key(key)
        if denied is not None:
            return denied
        assert key is not None
        if self.config.rate_limit_status:
            limited = self._rate_limit(key)
            if limited is not None:
                return limited
        request_id = request.match_info["request_id"]
        job = self.jobs.get(request_id)
        if job is None:
            return _error(404, "Not Found", f"Request {request_id} was not found.")
        job.status_polls.append((self.clock.monotonic(), job.status))
        return web.json_response(job.status_document(str(request.url.origin())))

    async def _media(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        job = self.jobs.get(name.removesuffix(".wav")) if name.endswith(".wav") else None
        if job is None or job.media_bytes is None:
            return _error(404, "Not Found", "No such media.")
        job.media_requests.append(self.clock.monotonic())
        return web.Response(body=job.media_bytes, content_type="audio/wav")

    # --- internals: control API -----------------------------------------------------------------
    def _loopback_only(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                loopback = ipaddress.ip_address(request.remote or "").is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                return _error(403, "Forbidden", "The emulator's control API answers loopback clients only.")
            return await handler(request)

        return guarded

    def state(self) -> dict[str, Any]:
        """What ``GET /_emulator/state`` returns."""
        return {
            "base_url": self._base_url,
            "balance": str(self._balance),
            "price": str(self.config.price),
            "counts": dict(self.counts),
            "rates": {name: getattr(self.config, name) for name in RATE_NAMES},
            "rate_per_second": self.config.rate_per_second,
            "rate_burst": self.config.rate_burst,
            "jobs": dict(Counter(job.status for job in self.jobs.values())),
            "queued": 0 if self._queue is None else self._queue.qsize(),
            "webhook_deliveries": len(self.webhook_deliveries),
            "script": {
                "submit": [o.to_json() for o in self._submit_script],
                "status": [o.to_json() for o in self._status_script],
            },
        }

    @staticmethod
    async def _json_object(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError("body: is not valid JSON") from None
        if not isinstance(body, dict):
            raise ValueError("body: must be a JSON object")
        return body

    async def _control_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def _control_balance(self, request: web.Request) -> web.Response:
        try:
            body = await self._json_object(request)
            value = body.get("balance")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ValueError("balance: must be a number or a decimal string")
            self.set_balance(str(value))
        except ValueError as exc:
            return _error(400, "Bad Request", str(exc))
        return web.json_response(self.state())

    async def _control_rates(self, request: web.Request) -> web.Response:
        try:
            self.set_rates(**await self._json_object(request))
        except ValueError as exc:
            return _error(400, "Bad Request", str(exc))
        return web.json_response(self.state())

    async def _control_script(self, request: web.Request) -> web.Response:
        try:
            body = await self._json_object(request)
            unknown = set(body) - {"submit", "status"}
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)}; expected submit and/or status")
            lists = {name: body.get(name) or [] for name in ("submit", "status")}
            if not all(isinstance(items, list) for items in lists.values()):
                raise ValueError("submit and status must be lists")
            submit = [Outcome.from_json(item, SUBMIT_OUTCOMES) for item in lists["submit"]]
            status = [Outcome.from_json(item, STATUS_OUTCOMES) for item in lists["status"]]
        except ValueError as exc:
            return _error(400, "Bad Request", str(exc))
        self.script_submit(*submit)
        self.script_status(*status)
        return web.json_response(self.state())

    async def _control_jobs(self, request: web.Request) -> web.Response:
        return web.json_response({"jobs": [job.to_control_json() for job in self.jobs.values()]})

    async def _control_job(self, request: web.Request) -> web.Response:
        request_id = request.match_info["request_id"]
        job = self.jobs.get(request_id)
        if job is None:
            return _error(404, "Not Found", f"Request {request_id} was not found.")
        return web.json_response(job.to_control_json())

    async def _control_webhooks(self, request: web.Request) -> web.Response:
        return web.json_response({"deliveries": [d.to_json() for d in self.webhook_deliveries]})


# --- CLI entry point (used by bot/cli.py; the options live in emulator.cli) ----------------------
async def run_emulator(
    args: argparse.Namespace, *, ready: Callable[[GatewayEmulator], None] | None = None
) -> None:
    """Serve the emulator until cancelled; print its address and default key to stderr."""
    async with GatewayEmulator(config_from_args(args)) as emulator:
        print(banner(emulator), file=sys.stderr, flush=True)
        if ready is not None:
            ready(emulator)
        await asyncio.Event().wait()
