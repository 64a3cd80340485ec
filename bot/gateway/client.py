"""``ChatterboxClient``: the Chatterbox TTS gateway over one injected ``aiohttp.ClientSession``.

Design decisions (see DESIGN.md, "Rules that protect users' money and data"):

- Validation first. ``validate`` checks text, tuning ranges, ``audio_url`` and the webhook
  before anything touches the network, so a bad input costs nothing (``InvalidTTSRequest``).
- A POST is sent at most once unless it was *refused*. A timeout, a reset after sending, or a
  5xx may mean the job exists and is charged, so ``submit`` never retries those (rule 2); the
  error says ``refund=False``. Only failures that provably happened before sending (connection
  refused, DNS, connect timeout) are refundable. A 429 refused the job, so ``submit`` waits for
  ``Retry-After`` and tries again, at most ``submit_429_retries`` times.
- GETs (status, download) are idempotent: they retry 5xx, resets and timeouts with exponential
  backoff and full jitter, and 429 after ``Retry-After`` (also telling the shared limiter to
  hold everyone). ``wait`` goes on polling through a status document it cannot read, an
  unknown status, a GET that kept failing or a COMPLETED document without a media URL, until
  ``max_wait``: one bad answer must not end a charged job whose next poll would work. After
  such an answer the next poll waits for the plan's next instant and at least a backoff that
  doubles per bad answer in a row (1 s up to 30 s, jittered in its upper half), so a provider
  that keeps answering garbage is not hammered. A media URL may appear on the CDN a moment after
  COMPLETED, so media 403/404 are retried like 5xx; a whole download (retries included) has
  a total deadline (``download_timeout``), so a body that trickles forever cannot hang a job.
  All waiting goes through the injected clock, so tests with a ``ScaledClock``
  or ``ManualClock`` stay fast and deterministic.
- ``Retry-After`` is read in both forms (seconds, HTTP date against ``clock.now()``) and bounded
  by ``max_retry_after``: a longer wait is not slept through, it is raised as ``RateLimited``.
- Two budgets: ``limiter`` (the shared fair ``RateGuard``) for submissions, ``status_limiter``
  (its own guard, ``CHATTERBOX_STATUS_RATE_PER_SECOND``) for status reads of accepted jobs,
  so a poll never waits behind members' submissions (DESIGN rule 4). A 429 on a status read
  holds the read budget for its ``Retry-After``; a 429 on a submission holds the submissions.
- ``submit(..., slot_held=True)``: the caller (the speech pipeline) already waited for the
  submission slot itself, to show the member their place in line; the first attempt then
  spends no second token. Retries after a 429 wait as usual.
- ``wait`` polls on a plan built from the durations observed so far (``bot.gateway.polling``)
  and feeds every completion back. Polls are kept at the plan's instants (counted from when
  each poll was sent), so a slow answer does not push every later poll back. Time counts from
  the real submit: the client remembers when it submitted; a job it did not submit (resumed
  after a restart) is polled at once and its plan continues from the provider's
  ``created_at``.
- Push: with a ``PushChannel`` every submission carries a webhook URL with a per-part token;
  ``wait`` then sleeps until the callback (or a slow safety poll) and confirms with ONE status
  GET; only that GET's media URL is ever returned (a callback's body is never trusted).
- The API key lives in a ``SecretStr`` and is revealed only while building the gateway's
  request headers. It is never logged; text that came back from the network is scrubbed of it
  before it reaches an exception; the repr shows only the base URL. The key is sent to a
  media URL only if that URL is on the gateway's own origin (never to a third-party CDN).
  Media URLs are logged by host only, since signed URLs are credentials too.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
from pydantic import SecretStr

from bot.clock import Clock
from bot.config import Settings
from bot.gateway.errors import (
    BadRequest,
    DownloadError,
    Forbidden,
    GatewayError,
    GatewayUnreachable,
    InsufficientBalance,
    InvalidTTSRequest,
    JobErrored,
    JobFailed,
    ProtocolError,
    RateLimited,
    ServerError,
    Unauthorized,
    WaitTimeout,
    rate_limited_user_message,
)
from bot.gateway.limits import RateLimiter, backoff_delay, parse_retry_after
from bot.gateway.models import (
    JobStatus,
    StatusDocument,
    SubmitAccepted,
    TTSRequest,
    Webhook,
    check_params,
)
from bot.gateway.polling import ObservedDurations, PollPlan, PollPolicy
from bot.gateway.push import IssuedWebhook, PushChannel, PushWatch

__all__ = ["STATUS_PATH", "SUBMIT_PATH", "ChatterboxClient", "ClientMetrics", "RateLimiter", "StatusCallback"]

log = logging.getLogger(__name__)

SUBMIT_PATH = "/chatterbox-text-to-speech/v1/chatterbox-text-to-speech-request"
STATUS_PATH = "/v2/requests/status/{request_id}"

StatusCallback = Callable[[StatusDocument], Awaitable[None] | None]
T = TypeVar("T")

_MAX_DOCUMENT_BYTES = 1 << 20  # a status document is a few hundred bytes
_CHUNK = 64 * 1024
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_MAX_REDIRECTS = 5
_MAX_REMEMBERED = 10_000  # submit instants kept for ``wait``
MAX_CONCURRENT_DOWNLOADS = 16  # audio downloads in progress at once per client (= per process)
_GENERIC_CONTENT_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", ""})
# RIFF (WAV), Ogg, MP3 with an ID3 tag, FLAC: what a TTS service may plausibly send.
_AUDIO_MAGIC = (b"RIFF", b"OggS", b"ID3", b"fLaC")
# A media URL may be published a moment after COMPLETED (CDN propagation): not yet final.
_MEDIA_RETRY_STATUSES = frozenset({403, 404})
# After an unusable status answer (unreadable, unknown status, a GET that kept failing,
# COMPLETED without a media URL) the next poll waits at least this backoff: doubling from the
# base per answer in a row up to the cap, with jitter in its upper half (never zero).
_UNUSABLE_BACKOFF_BASE = 1.0
_UNUSABLE_BACKOFF_CAP = 30.0
_REQUIRED_AMOUNT = re.compile(r"Required:\s*\$?\s*([0-9]+(?:\.[0-9]+)?)")


class ClientMetrics(Protocol):
    """What the client reports (``bot.metrics.Metrics`` implements it)."""

    def provider_call(self, kind: str, outcome: str) -> None: ...

    def observe_delivery_lag(self, seconds: float) -> None: ...

    def delivery(self, via: str) -> None: ...


@dataclass(frozen=True)
class _Redirect:
    location: str


def _resolution(moment: datetime) -> float:
    """Seconds a timestamp may be truncated by: 1 for whole seconds, else a millisecond."""
    return 1.0 if moment.microsecond == 0 else 0.001


class ChatterboxClient:
    """Submit, poll, download — safely. One instance per process, shared by every job."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: SecretStr,
        clock: Clock,
        limiter: RateLimiter | None = None,
        status_limiter: RateLimiter | None = None,
        durations: ObservedDurations | None = None,
        push: PushChannel | None = None,
        metrics: ClientMetrics | None = None,
        max_text_chars: int = 2000,
        allow_http: bool = False,
        http_timeout: float = 30,
        max_retry_after: float = 120,
        get_retries: int = 4,
        submit_429_retries: int = 2,
        poll_policy: PollPolicy | None = None,
        rng: random.Random | None = None,
        download_timeout: float = 120,
        download_retries: int = 6,
        max_downloads: int = MAX_CONCURRENT_DOWNLOADS,
    ) -> None:
        base_url = base_url.strip().rstrip("/")
        scheme = urlsplit(base_url).scheme
        if scheme != "https" and not (scheme == "http" and allow_http):
            raise ValueError("the gateway URL must start with https:// (http:// only with allow_http)")
        self._session = session
        self._base_url = base_url
        self._api_key = api_key
        self._clock = clock
        self._limiter = limiter
        self._status_limiter = status_limiter
        self.durations = durations or ObservedDurations()
        self.push = push
        self._metrics = metrics
        self._submitted_at: dict[str, float] = {}  # request_id -> clock.monotonic() of its 202
        self.max_text_chars = max_text_chars
        self.allow_http = allow_http
        self.max_retry_after = max_retry_after
        self.get_retries = get_retries
        self.submit_429_retries = submit_429_retries
        self.poll_policy = poll_policy or PollPolicy()
        self._rng = rng or random.Random()
        self.download_timeout = download_timeout
        self.download_retries = download_retries
        self._timeout = aiohttp.ClientTimeout(total=http_timeout, sock_connect=min(http_timeout, 10.0))
        self._download_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(http_timeout, 10.0), sock_read=http_timeout
        )
        # Audio is read into memory: when many jobs finish together, only this many downloads
        # hold a growing buffer at once (the rest wait their turn), so memory stays bounded.
        self._downloads = asyncio.Semaphore(max_downloads)

    @classmethod
    def from_settings(
        cls,
        session: aiohttp.ClientSession,
        settings: Settings,
        clock: Clock,
        limiter: RateLimiter | None = None,
        *,
        status_limiter: RateLimiter | None = None,
        durations: ObservedDurations | None = None,
        push: PushChannel | None = None,
        metrics: ClientMetrics | None = None,
    ) -> ChatterboxClient:
        """Build from settings; raises ``ConfigError`` when the key is missing."""
        return cls(
            session,
            base_url=settings.chatterbox_gateway_url,
            api_key=settings.require_api_key(),
            clock=clock,
            limiter=limiter,
            status_limiter=status_limiter,
            durations=durations,
            push=push,
            metrics=metrics,
            max_text_chars=settings.chatterbox_max_text_chars,
            allow_http=settings.chatterbox_allow_http,
            http_timeout=settings.chatterbox_http_timeout,
            max_retry_after=settings.chatterbox_max_retry_after,
            download_timeout=settings.chatterbox_download_timeout,
        )

    def __repr__(self) -> str:
        return f"ChatterboxClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    # --- validation -------------------------------------------------------------------

    def validate(self, request: TTSRequest) -> TTSRequest:
        """Check a request without the network; returns it normalized (text and URL stripped)."""
        text = request.text.strip()
        if not text:
            raise InvalidTTSRequest("text", "The text is empty; write something to speak.")
        if len(text) > self.max_text_chars:
            raise InvalidTTSRequest(
                "text", f"text must be at most {self.max_text_chars} characters (got {len(text)})."
            )
        check_params(request.params)
        audio_url = (request.audio_url or "").strip() or None
        if audio_url is not None and not self._url_allowed(audio_url, http_ok=self.allow_http):
            allowed = "an http:// or https://" if self.allow_http else "an https://"
            raise InvalidTTSRequest("audio_url", f"audio_url (the voice clip) must be {allowed} link.")
        return request.model_copy(update={"text": text, "audio_url": audio_url})

    def _check_webhook(self, webhook: Webhook) -> None:
        # https only (the provider's rule); plain http only to loopback with allow_http, so
        # tests and local runs can receive callbacks from the emulator.
        parts = urlsplit(webhook.url.strip())
        loopback_http = self.allow_http and parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
        if not (self._url_allowed(webhook.url.strip(), http_ok=False) or loopback_http):
            raise InvalidTTSRequest("webhook", "The webhook URL must be an https:// address.")

    @staticmethod
    def _url_allowed(url: str, *, http_ok: bool) -> bool:
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        return bool(parts.hostname) and (parts.scheme == "https" or (http_ok and parts.scheme == "http"))

    # --- submit -----------------------------------------------------------------------

    async def submit(
        self,
        request: TTSRequest,
        *,
        webhook: Webhook | None = None,
        key: str = "-",
        slot_held: bool = False,
    ) -> SubmitAccepted:
        """POST the job once. Retries only a 429 (refused, so not charged).

        ``slot_held``: the caller already holds a submission slot of the shared limiter, so
        the first attempt does not wait for another. Without an explicit ``webhook`` and with
        a ``PushChannel``, a fresh per-part webhook is issued for this POST.
        """
        request = self.validate(request)
        headers = self._api_headers()
        headers["Content-Type"] = "application/json"
        issued: IssuedWebhook | None = None
        if webhook is None and self.push is not None:
            issued = await self.push.issue()
            webhook = issued.webhook if issued is not None else None
        if webhook is not None:
            self._check_webhook(webhook)
            headers["X-Webhook-URL"] = webhook.url.strip()
            headers["X-Webhook-Mode"] = webhook.mode
        try:
            accepted = await self._post_submit(request, headers, key=key, slot_held=slot_held)
        except BaseException:
            if issued is not None and self.push is not None:
                self.push.forget(issued)
            raise
        if issued is not None and self.push is not None:
            try:  # never lose an accepted job over push bookkeeping: it is then polled
                await self.push.bind(issued, accepted.request_id)
            except Exception:
                log.warning("could not bind the webhook of %s; polling it", accepted.request_id,
                            exc_info=True)
        return accepted

    async def _post_submit(
        self, request: TTSRequest, headers: dict[str, str], *, key: str, slot_held: bool
    ) -> SubmitAccepted:
        body = json.dumps(request.to_body()).encode()
        url = self._base_url + SUBMIT_PATH
        attempt = 0
        while True:
            if not (slot_held and attempt == 0):
                await self._acquire(self._limiter, key)
            try:
                async with self._session.post(url, data=body, headers=headers, timeout=self._timeout,
                                              allow_redirects=False) as resp:
                    status = resp.status
                    retry_after_header = resp.headers.get("Retry-After")
                    raw = await self._read_document(resp)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._count("submit", "network")
                raise self._unreachable(exc, "submit", accepted=False) from None
            self._count("submit", str(status))
            if 200 <= status < 300:
                accepted = SubmitAccepted.parse_json(raw)
                self._submitted_at[accepted.request_id] = self._clock.monotonic()
                while len(self._submitted_at) > _MAX_REMEMBERED:  # a job never waited for
                    self._submitted_at.pop(next(iter(self._submitted_at)))
                log.debug("submit accepted: request_id=%s key=%s", accepted.request_id, key)
                return accepted
            if status == 429:
                wait = self._retry_after(retry_after_header, self._limiter)
                if attempt < self.submit_429_retries and wait is not None:
                    attempt += 1
                    log.warning("submit got 429; retrying in %.1fs (%d/%d)", wait, attempt,
                                self.submit_429_retries)
                    await self._clock.sleep(wait)
                    continue
            raise self._http_error(status, raw, retry_after_header, accepted=False)

    # --- status and wait ---------------------------------------------------------------

    async def status(self, request_id: str, *, key: str = "-") -> StatusDocument:
        """One status document (GET from the read budget, retried on 5xx, resets, timeouts, 429)."""
        url = self._base_url + STATUS_PATH.format(request_id=quote(request_id, safe=""))
        raw = await self._get(url, key=key, what="status", headers=self._api_headers(),
                              read=self._read_document, budget=self._status_limiter)
        doc = StatusDocument.parse_json(raw)
        if doc.request_id != request_id:
            raise ProtocolError("status document is for another request", request_id=request_id)
        log.debug("status %s: %s", request_id, doc.status)
        return doc

    def plan(self, *, push: bool) -> PollPlan:
        """The poll plan a wait starting now would use (learned durations; push or not)."""
        if push:
            return self.poll_policy.fallback_plan(self.durations)
        return self.poll_policy.plan(self.durations)

    async def wait(
        self,
        request_id: str,
        *,
        max_wait: float,
        text_chars: int = 0,
        key: str = "-",
        on_status: StatusCallback | None = None,
    ) -> StatusDocument:
        """Wait until the job is terminal; return the COMPLETED document (with media URLs).

        Raises ``JobFailed`` (charged), ``JobErrored`` (refunded) or ``WaitTimeout`` after
        ``max_wait`` seconds of the injected clock. ``on_status`` is called with the first
        document and then whenever the status changes; an exception in it is logged, not raised.
        ``text_chars`` is accepted for callers but not used: the provider's time is queueing.
        The plan counts from this client's own submit of ``request_id``; a request it did not
        submit (a resumed job) is polled at once and continues from its ``created_at``.
        """
        del text_chars
        started = self._clock.monotonic()
        origin = self._submitted_at.pop(request_id, None)
        resumed = origin is None
        watch = self.push.watch(request_id) if self.push is not None else None
        plan = self.plan(push=watch is not None)
        rng = self._rng
        last_pending = 0.0  # seconds since submit at the last poll that saw a non-terminal status
        poll_started = 0.0  # seconds since submit at which the last poll was sent (0: the submit)
        last_status: JobStatus | None = None
        polls = 0
        unusable = 0  # unusable answers in a row
        not_before = 0.0  # seconds since submit before which the next poll is not sent (backoff)
        try:
            while True:
                now = self._clock.monotonic()
                if now - started >= max_wait:
                    raise WaitTimeout(
                        f"job {request_id} not finished after {now - started:.1f}s ({polls} polls, "
                        f"last {last_status})",
                        request_id=request_id,
                    )
                if origin is None:
                    delay = 0.0
                else:  # the plan's instants are kept whatever each answer's latency
                    due = max(poll_started + plan.next_delay(poll_started, rng), not_before)
                    delay = max(0.0, origin + due - now)
                pushed = await self._pause(min(delay, max_wait - (now - started)), watch, on_status,
                                           last_status)
                asked = self._clock.monotonic()
                try:
                    doc = await self.status(request_id, key=key)
                except (ProtocolError, ServerError, GatewayUnreachable, RateLimited) as exc:
                    polls += 1  # the job exists and may be charged: ask again until max_wait
                    if origin is None:  # resumed, no document yet: the plan counts from here
                        origin = asked
                    poll_started = asked - origin
                    unusable += 1
                    not_before = poll_started + self._unusable_backoff(unusable)
                    log.warning("status of %s unusable (%s); polling again in %.1f s", request_id,
                                exc.message, not_before - poll_started)
                    continue
                polls += 1
                if origin is None:  # resumed: anchor the plan on the provider's submit time
                    since = (self._clock.now() - doc.created_at).total_seconds() if doc.created_at else 0.0
                    origin = self._clock.monotonic() - max(0.0, since)
                poll_started = asked - origin
                polled = self._clock.monotonic() - origin
                if doc.status is JobStatus.COMPLETED and not doc.media_urls:
                    # Unusable like an unreadable document (the URL may come with the next one).
                    unusable += 1
                    not_before = poll_started + self._unusable_backoff(unusable)
                    log.warning("status of %s is COMPLETED without a media URL; polling again in %.1f s",
                                request_id, not_before - poll_started)
                    continue
                unusable, not_before = 0, 0.0
                if doc.status != last_status:
                    last_status = doc.status
                    await self._notify(on_status, doc)
                if doc.status is JobStatus.COMPLETED:
                    if not resumed:
                        self.durations.record(self._observed_duration(doc, last_pending, polled))
                    self._observe_lag(doc)
                    if self._metrics is not None:
                        self._metrics.delivery("push" if pushed else "poll")
                    log.debug("job %s completed after %d polls (%s)", request_id, polls,
                              "push" if pushed else "poll")
                    return doc
                if doc.status is JobStatus.FAILED:
                    if not resumed:
                        self.durations.record(self._observed_duration(doc, last_pending, polled))
                    detail = self._scrub_short(doc.error or "")
                    raise JobFailed(
                        f"job {request_id} FAILED: {detail or 'no reason given'}",
                        # The provider's reason (e.g. a voice clip URL it could not fetch) is for
                        # the log only; members get the plain default.
                        error=detail or None,
                        request_id=request_id,
                    )
                if doc.status is JobStatus.ERROR:
                    raise JobErrored(
                        f"job {request_id} ERROR: {self._scrub_short(doc.error or '') or 'no reason given'}",
                        request_id=request_id,
                    )
                last_pending = polled
                if pushed and watch is not None and self.push is not None:
                    # The callback said "done", the provider says not: trust polling from now on.
                    log.warning("a callback for %s was not confirmed (%s); polling it instead",
                                request_id, doc.status)
                    self.push.unwatch(watch)
                    watch = None
                    plan = self.plan(push=False)
        finally:
            if self.push is not None:
                if watch is not None:
                    self.push.unwatch(watch)
                try:
                    await self.push.settle(request_id)
                except Exception:
                    log.warning("could not settle the webhook of %s", request_id, exc_info=True)

    def _unusable_backoff(self, in_a_row: int) -> float:
        """Seconds before the poll after ``in_a_row`` unusable answers (``_UNUSABLE_BACKOFF_*``)."""
        ceiling = min(_UNUSABLE_BACKOFF_CAP, _UNUSABLE_BACKOFF_BASE * 2 ** max(0, in_a_row - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    async def _pause(
        self,
        delay: float,
        watch: PushWatch | None,
        on_status: StatusCallback | None,
        last_status: JobStatus | None,
    ) -> bool:
        """Sleep ``delay`` seconds, or less when a terminal callback arrives: True if it did.

        A ``sync`` callback's non-terminal document only updates progress (``on_status``)."""
        if watch is None:
            await self._clock.sleep(delay)
            return False
        if watch.event.is_set():
            watch.event.clear()
            return True
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        try:
            while True:
                pushed = asyncio.ensure_future(watch.event.wait())
                progress = asyncio.ensure_future(watch.progress_event.wait())
                try:
                    await asyncio.wait({sleeper, pushed, progress}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    pushed.cancel()
                    progress.cancel()
                if watch.event.is_set():
                    watch.event.clear()
                    return True
                if watch.progress_event.is_set():
                    watch.progress_event.clear()
                    doc = watch.progress
                    if doc is not None and doc.status != last_status and not doc.status.terminal:
                        await self._notify(on_status, doc)
                if sleeper.done():
                    return False
        finally:
            sleeper.cancel()

    def _observe_lag(self, doc: StatusDocument) -> None:
        if self._metrics is not None and doc.completed_at is not None:
            lag = (self._clock.now() - doc.completed_at).total_seconds()
            self._metrics.observe_delivery_lag(max(0.0, lag))

    @staticmethod
    def _observed_duration(doc: StatusDocument, last_pending: float, polled: float) -> float:
        """How long the job took, for the estimator.

        Our polls bracket the completion in (last_pending, polled]. The gateway's timestamps
        give another bracket, widened by their resolution (``completed_at`` often has whole
        seconds only). The middle of the intersection is the best guess; without timestamps,
        or when the brackets disagree (clock skew), the middle of our own bracket.
        """
        if doc.created_at is not None and doc.completed_at is not None:
            gateway = (doc.completed_at - doc.created_at).total_seconds()
            low = max(last_pending, gateway - _resolution(doc.created_at))
            high = min(polled, gateway + _resolution(doc.completed_at))
            if gateway > 0 and low <= high:
                return (low + high) / 2
        return (last_pending + polled) / 2

    async def _notify(self, on_status: StatusCallback | None, doc: StatusDocument) -> None:
        if on_status is None:
            return
        try:
            result = on_status(doc)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.warning("on_status callback failed for job %s", doc.request_id, exc_info=True)

    # --- download and the whole round trip --------------------------------------------

    async def download(self, media_url: str, *, max_bytes: int) -> bytes:
        """Fetch the audio, streamed; ``DownloadError`` if it is not audio/* or exceeds
        ``max_bytes`` (checked on Content-Length first, then while reading).

        Redirects are followed by hand (at most ``_MAX_REDIRECTS``), re-deciding at every hop
        whether the URL is allowed and whether it is the gateway's origin (the only place the
        key is sent): aiohttp would carry our custom key header to any redirect target.
        """
        try:
            async with self._downloads, asyncio.timeout(self.download_timeout):  # real seconds, retries
                return await self._download(media_url, max_bytes=max_bytes)
        except TimeoutError:
            host = urlsplit(media_url).hostname or "?"
            raise DownloadError(f"download from {host} took longer than {self.download_timeout:g} s",
                                reason="timeout") from None

    async def _download(self, media_url: str, *, max_bytes: int) -> bytes:
        url = media_url
        for _ in range(_MAX_REDIRECTS + 1):
            host = urlsplit(url).hostname or "?"
            if not self._url_allowed(url, http_ok=self.allow_http):
                raise DownloadError(f"refusing media URL on {host}: not https", reason="bad_url")
            headers = {"Cache-Control": "no-cache"}
            if self._same_origin(url):
                headers.update(self._api_headers())
            try:
                result = await self._get(url, key="-", what="download", headers=headers,
                                         read=self._media_reader(host, max_bytes),
                                         request_timeout=self._download_timeout, redirects=True,
                                         retry_statuses=_MEDIA_RETRY_STATUSES, retries=self.download_retries)
            except DownloadError:
                raise
            except GatewayError as exc:
                reason = "network" if isinstance(exc, GatewayUnreachable) else "http"
                raise DownloadError(f"download from {host} failed: {exc.message}", reason=reason,
                                    status=exc.status) from None
            if isinstance(result, _Redirect):
                url = urljoin(url, result.location)
                continue
            log.debug("downloaded %d bytes from %s", len(result), host)
            return result
        raise DownloadError(f"more than {_MAX_REDIRECTS} redirects", reason="http")

    def _media_reader(
        self, host: str, max_bytes: int
    ) -> Callable[[aiohttp.ClientResponse], Awaitable[bytes | _Redirect]]:
        async def read(resp: aiohttp.ClientResponse) -> bytes | _Redirect:
            if 300 <= resp.status < 400:
                location = resp.headers.get("Location")
                if not location:
                    raise DownloadError(f"HTTP {resp.status} from {host} without Location", reason="http",
                                        status=resp.status)
                return _Redirect(location)
            content_type = resp.content_type.lower()
            # Object stores often serve media as application/octet-stream; the job is already
            # charged by now, so such a body is accepted when its first bytes are audio.
            sniff = not content_type.startswith("audio/")
            if sniff and content_type not in _GENERIC_CONTENT_TYPES:
                resp.close()
                raise self._not_audio(host, resp.content_type)
            if resp.content_length is not None and resp.content_length > max_bytes:
                resp.close()
                raise self._too_big(host, max_bytes)
            buffer = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK):
                buffer += chunk
                if len(buffer) > max_bytes:
                    resp.close()
                    raise self._too_big(host, max_bytes)
            if sniff and not bytes(buffer[:4]).startswith(_AUDIO_MAGIC):
                raise self._not_audio(host, resp.content_type)
            return bytes(buffer)

        return read

    @staticmethod
    def _not_audio(host: str, content_type: str) -> DownloadError:
        return DownloadError(
            f"media on {host} is {content_type!r}, not audio",
            reason="wrong_type",
            user_message="The TTS service sent something that is not audio.",
        )

    @staticmethod
    def _too_big(host: str, max_bytes: int) -> DownloadError:
        return DownloadError(
            f"media on {host} exceeds {max_bytes} bytes",
            reason="too_big",
            user_message="The audio is too large to download.",
        )

    async def synthesize(
        self,
        request: TTSRequest,
        *,
        max_wait: float,
        max_bytes: int,
        key: str = "-",
        on_status: StatusCallback | None = None,
    ) -> bytes:
        """Validate, submit, wait and download the first media URL: the WAV bytes."""
        request = self.validate(request)
        accepted = await self.submit(request, key=key)
        doc = await self.wait(accepted.request_id, text_chars=len(request.text), max_wait=max_wait,
                              key=key, on_status=on_status)
        return await self.download(doc.media_urls[0], max_bytes=max_bytes)

    # --- HTTP plumbing ----------------------------------------------------------------

    def _api_headers(self) -> dict[str, str]:
        return {
            "Cache-Control": "no-cache",
            "Ocp-Apim-Subscription-Key": self._api_key.get_secret_value(),
        }

    def _same_origin(self, url: str) -> bool:
        mine, theirs = urlsplit(self._base_url), urlsplit(url)
        return (mine.scheme, mine.hostname, mine.port) == (theirs.scheme, theirs.hostname, theirs.port)

    @staticmethod
    async def _acquire(limiter: RateLimiter | None, key: str) -> None:
        if limiter is not None:
            await limiter.acquire(key)

    def _retry_after(self, header: str | None, limiter: RateLimiter | None) -> float | None:
        """Seconds to wait before retrying a 429, or None when we should not wait (the
        gateway asked for longer than ``max_retry_after``). No header: a short backoff.

        The 429 holds ``limiter``: the submissions' guard for a POST, the read budget for a
        status read; None (a media host's 429) slows that one download only."""
        seconds = parse_retry_after(header, self._clock.now())
        if seconds is None:
            seconds = backoff_delay(1, self._rng)
        if limiter is not None:
            limiter.hold(min(seconds, self.max_retry_after))
        return seconds if seconds <= self.max_retry_after else None

    def _count(self, kind: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.provider_call(kind, outcome)

    async def _get(
        self,
        url: str,
        *,
        key: str,
        what: str,
        headers: dict[str, str],
        read: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        request_timeout: aiohttp.ClientTimeout | None = None,
        budget: RateLimiter | None = None,
        redirects: bool = False,
        retry_statuses: frozenset[int] = frozenset(),
        retries: int | None = None,
    ) -> T:
        """GET with retries: 5xx, network failures and timeouts back off with full jitter;
        429 waits ``Retry-After``. Other statuses raise at once (refund False: the job exists).
        ``read`` gets 2xx answers, and 3xx ones too when ``redirects`` (never followed here).
        Each attempt first waits for ``budget`` (None: unlimited), which a 429 holds."""
        attempt = 0
        retries = self.get_retries if retries is None else retries
        request_timeout = request_timeout or self._timeout
        while True:
            await self._acquire(budget, key)
            failure: GatewayError
            try:
                async with self._session.get(url, headers=headers, timeout=request_timeout,
                                             allow_redirects=False) as resp:
                    self._count(what, str(resp.status))
                    if 200 <= resp.status < 300 or (redirects and 300 <= resp.status < 400):
                        return await read(resp)
                    status = resp.status
                    retry_after_header = resp.headers.get("Retry-After")
                    raw = await self._read_document(resp)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._count(what, "network")
                failure = self._unreachable(exc, what, accepted=True)
                delay: float | None = backoff_delay(attempt, self._rng)
            else:
                if status == 429:
                    # The gateway's own 429 holds the read budget; a media host's, nothing.
                    hold = self._status_limiter if self._same_origin(url) else None
                    delay = self._retry_after(retry_after_header, hold)
                elif status >= 500 or status in retry_statuses:
                    delay = backoff_delay(attempt, self._rng)
                else:
                    raise self._http_error(status, raw, retry_after_header, accepted=True)
                failure = self._http_error(status, raw, retry_after_header, accepted=True)
            if delay is None or attempt >= retries:
                raise failure
            attempt += 1
            log.warning("%s GET failed (%s); retry %d/%d in %.2fs", what, failure.message, attempt,
                        retries, delay)
            await self._clock.sleep(delay)

    @staticmethod
    async def _read_document(resp: aiohttp.ClientResponse) -> bytes:
        buffer = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            buffer += chunk
            if len(buffer) > _MAX_DOCUMENT_BYTES:
                resp.close()
                raise ProtocolError(f"answer larger than {_MAX_DOCUMENT_BYTES} bytes", status=resp.status)
        return bytes(buffer)

    def _unreachable(self, exc: BaseException, what: str, *, accepted: bool) -> GatewayUnreachable:
        """Classify a network failure. Only connect-phase failures prove nothing was sent."""
        never_sent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
        detail = self._scrub_short(str(exc)) or "no detail"
        message = f"{what}: {type(exc).__name__}: {detail}"
        log.debug("network failure during %s (%s; sent=%s)", what, type(exc).__name__,
                  "no" if never_sent else "maybe")
        return GatewayUnreachable(
            message,
            may_have_reached=not never_sent,
            refund=(not accepted) and never_sent,
        )

    def _http_error(
        self, status: int, raw: bytes, retry_after_header: str | None, *, accepted: bool
    ) -> GatewayError:
        """Map an HTTP error answer to its typed error. ``accepted``: the job already exists
        (a status or media GET), so nothing is refundable."""
        error, message = self._error_fields(raw)
        summary = f"HTTP {status}: {error or '-'}: {message or '-'}"
        refundable = None if not accepted else False  # None: the class's own rule
        if status == 400:
            # The provider's words stay in ``summary`` (the log); members get the plain default.
            return BadRequest(summary, status=status, refund=refundable)
        if status == 401:
            return Unauthorized(summary, status=status, refund=refundable)
        if status == 402:
            found = _REQUIRED_AMOUNT.search(message or "")
            return InsufficientBalance(summary, status=status, refund=refundable,
                                       required=found.group(1) if found else None)
        if status == 403:
            return Forbidden(summary, status=status, refund=refundable)
        if status == 429:
            seconds = parse_retry_after(retry_after_header, self._clock.now())
            bounded = None if seconds is None else min(seconds, self.max_retry_after)
            # The member is told the gateway's own wait; ``retry_after`` (for code) is bounded.
            return RateLimited(summary, status=status, refund=refundable, retry_after=bounded,
                               user_message=rate_limited_user_message(seconds))
        if status >= 500:
            return ServerError(summary, status=status)
        # Any other 3xx/4xx to a submit means it was not processed; otherwise keep the charge.
        return ProtocolError(f"unexpected {summary}", status=status,
                             refund=(not accepted) and 300 <= status < 500)

    def _error_fields(self, raw: bytes) -> tuple[str | None, str | None]:
        """``error`` and ``message`` of an error body, scrubbed and shortened."""
        try:
            data = json.loads(raw) if raw else None
        except (ValueError, RecursionError):
            return None, self._scrub_short(raw.decode("utf-8", "replace")) or None
        if not isinstance(data, dict):
            return None, None
        fields = []
        for name in ("error", "message"):
            value = data.get(name)
            fields.append(self._scrub_short(value) or None if isinstance(value, str) else None)
        return fields[0], fields[1]

    def _scrub_short(self, text: str, limit: int = 160) -> str:
        """One line of at most ``limit`` characters with the API key masked."""
        secret = self._api_key.get_secret_value()
        if secret:
            text = text.replace(secret, "***")
        text = " ".join(text.split())
        if len(text) > limit:
            text = text[: limit - 1] + "…"
        if secret and secret in text:  # joining lines could have rebuilt it
            text = text.replace(secret, "***")
        return text
