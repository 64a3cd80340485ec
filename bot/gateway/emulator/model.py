"""The gateway emulator's own documents: jobs, scripted outcomes, request validation, timestamps.

The emulator is a standalone fake of the provider, so it does not share the client's models:
everything here is plain dataclasses and dicts shaped byte-for-byte like the provider's JSON.

Design decisions:
- Timestamps come in both shapes the real provider uses, so a client must parse both:
  ``created_at`` is always ISO with milliseconds and ``Z`` (``2026-03-31T07:32:03.749Z``),
  ``completed_at`` always ``2026-05-22 13:19:23`` (space, no zone, UTC), and ``updated_at``
  alternates between the two from one job to the next.
- A job's ``charged`` is True while its price is held: the price is reserved at submit and kept
  on COMPLETED and FAILED; an ERROR refunds it and sets ``charged`` to False.
- Request headers kept on a job are a case-insensitive copy with the subscription key replaced
  by its fingerprint, so nothing that shows a job (reprs, the control API) shows a key.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from multidict import CIMultiDict
from yarl import URL

QUEUED = "QUEUED"
PROCESSING = "PROCESSING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
ERROR = "ERROR"
TERMINAL_STATUSES = frozenset({COMPLETED, FAILED, ERROR})

KEY_HEADER = "Ocp-Apim-Subscription-Key"
WEBHOOK_URL_HEADER = "X-Webhook-URL"
WEBHOOK_MODE_HEADER = "X-Webhook-Mode"
WEBHOOK_MODES = ("terminal", "sync")
MODEL_ID = "chatterbox-tts"

JOB_KINDS = frozenset({"complete", "failed", "error"})
SUBMIT_OUTCOMES = JOB_KINDS | {
    "http_400",
    "http_402",
    "http_403",
    "http_429",
    "http_500",
    "drop_before",
    "drop_after",
    "slow",
}
STATUS_OUTCOMES = frozenset({"ok", "http_500", "http_429", "drop", "slow"})

# (field, low, high): the tuning parameters the provider accepts, inclusive ranges.
PARAM_RANGES: tuple[tuple[str, float, float], ...] = (
    ("exaggeration", 0.0, 1.0),
    ("temperature", 0.1, 1.0),
    ("cfg", 0.0, 2.0),
)


def key_fingerprint(key: str) -> str:
    """A short, stable, non-reversible name for an API key, safe to log."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:8]


def iso_z(moment: datetime) -> str:
    """``2026-03-31T07:32:03.749Z``"""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def space_utc(moment: datetime) -> str:
    """``2026-05-22 13:19:23`` (UTC, no zone, as the provider sends ``completed_at``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")



@dataclass(frozen=True)
class Outcome:
    """One scripted answer: ``kind`` plus optional details.

    ``duration`` fixes the job's processing time (clock seconds), ``error`` its FAILED/ERROR
    text; for ``http_429`` the ``Retry-After`` is ``retry_after`` seconds, or that far ahead as
    an HTTP date when ``retry_after_date`` is set.
    """

    kind: str
    duration: float | None = None
    error: str | None = None
    retry_after: float = 1.0
    retry_after_date: bool = False

    @classmethod
    def coerce(cls, item: str | Outcome, allowed: frozenset[str]) -> Outcome:
        outcome = item if isinstance(item, Outcome) else cls(item)
        if outcome.kind not in allowed:
            raise ValueError(f"unknown outcome {outcome.kind!r}; expected one of {sorted(allowed)}")
        if outcome.duration is not None and not (math.isfinite(outcome.duration) and outcome.duration >= 0):
            raise ValueError("an outcome's duration must be a finite number >= 0")
        if not (math.isfinite(outcome.retry_after) and outcome.retry_after >= 0):
            raise ValueError("an outcome's retry_after must be a finite number >= 0")
        return outcome

    @classmethod
    def from_json(cls, item: object, allowed: frozenset[str]) -> Outcome:
        """From the control API: ``"failed"`` or ``{"kind": "failed", "error": "…"}``."""
        if isinstance(item, str):
            return cls.coerce(item, allowed)
        if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
            raise ValueError("each outcome is a string or an object with a string 'kind'")
        unknown = set(item) - {"kind", "duration", "error", "retry_after", "retry_after_date"}
        if unknown:
            raise ValueError(f"unknown outcome fields: {sorted(unknown)}")
        try:
            outcome = cls(
                kind=item["kind"],
                duration=None if item.get("duration") is None else float(item["duration"]),
                error=None if item.get("error") is None else str(item["error"]),
                retry_after=float(item.get("retry_after", 1.0)),
                retry_after_date=bool(item.get("retry_after_date", False)),
            )
        except (TypeError, ValueError):
            raise ValueError("an outcome's duration and retry_after must be numbers") from None
        return cls.coerce(outcome, allowed)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "duration": self.duration,
            "error": self.error,
            "retry_after": self.retry_after,
            "retry_after_date": self.retry_after_date,
        }


class SubmissionError(ValueError):
    """A 400: ``str(err)`` names the offending field."""


@dataclass(frozen=True)
class Submission:
    """A validated POST: what the job will be made of."""

    text: str
    audio_url: str | None
    params: dict[str, float]
    webhook_url: str | None
    webhook_mode: str | None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _http_url(value: str, schemes: tuple[str, ...]) -> bool:
    try:
        url = URL(value)
    except (TypeError, ValueError):
        return False
    return url.scheme in schemes and bool(url.host)


def validate_submission(
    body: object,
    headers: Mapping[str, str],
    *,
    allow_http_webhooks: bool,
    max_text_chars: int,
) -> Submission:
    """Check a POST's JSON body and webhook headers as the provider does (400 on failure)."""
    if not isinstance(body, dict):
        raise SubmissionError("body: must be a JSON object")
    text = body.get("text")
    if text is None:
        raise SubmissionError("text: is required")
    if not isinstance(text, str):
        raise SubmissionError("text: must be a string")
    if not text.strip():
        raise SubmissionError("text: must not be empty")
    if len(text) > max_text_chars:
        raise SubmissionError(f"text: must be at most {max_text_chars} characters")
    params: dict[str, float] = {}
    for name, low, high in PARAM_RANGES:
        value = body.get(name)
        if value is None:
            continue
        if not _is_number(value) or not low <= value <= high:
            raise SubmissionError(f"{name}: must be a number between {low} and {high}")
        params[name] = float(value)
    audio_url = body.get("audio_url")
    if audio_url is not None and (
        not isinstance(audio_url, str) or not _http_url(audio_url, ("http", "https"))
    ):
        raise SubmissionError("audio_url: must be an http(s) URL")
    webhook_url = headers.get(WEBHOOK_URL_HEADER)
    webhook_mode = headers.get(WEBHOOK_MODE_HEADER)
    if webhook_mode is not None:
        webhook_mode = webhook_mode.strip().lower()
        if webhook_mode not in WEBHOOK_MODES:
            raise SubmissionError(f"{WEBHOOK_MODE_HEADER}: must be terminal or sync")
    if webhook_url is not None:
        schemes = ("https", "http") if allow_http_webhooks else ("https",)
        if not _http_url(webhook_url.strip(), schemes):
            raise SubmissionError(f"{WEBHOOK_URL_HEADER}: must be an https:// URL")
        webhook_url = webhook_url.strip()
        webhook_mode = webhook_mode or "terminal"
    else:
        webhook_mode = None
    return Submission(text, audio_url, params, webhook_url, webhook_mode)


def redacted_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """A case-insensitive copy with the subscription key replaced by its fingerprint."""
    copy: CIMultiDict[str] = CIMultiDict(headers)
    if KEY_HEADER in copy:
        copy[KEY_HEADER] = key_fingerprint(copy[KEY_HEADER])
    return copy


@dataclass(eq=False)
class EmulatorJob:
    """One accepted request and everything observable about it (times from the emulator clock)."""

    request_id: str
    sequence: int
    text: str
    audio_url: str | None
    params: dict[str, float]
    price: Decimal
    key_fingerprint: str
    request_headers: CIMultiDict[str]
    webhook_url: str | None
    webhook_mode: str | None
    planned: str  # "complete" | "failed" | "error": how the worker will end it
    planned_error: str | None
    duration: float  # processing time, clock seconds
    created_at: datetime
    created_mono: float
    status: str = QUEUED
    error: str | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    completed_mono: float | None = None
    charged: bool = True
    media_bytes: bytes | None = field(default=None, repr=False)  # the WAV, once COMPLETED
    reference_bytes: int | None = None
    status_polls: list[tuple[float, str]] = field(default_factory=list)
    media_requests: list[float] = field(default_factory=list)  # clock.monotonic() of each media GET
    transitions: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.updated_at is None:
            self.updated_at = self.created_at
        if not self.transitions:
            self.transitions.append((self.created_mono, self.status))

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def reached(self, status: str) -> bool:
        """Whether the job has ever been in ``status``."""
        return any(seen == status for _, seen in self.transitions)

    def status_document(self, base_url: str) -> dict[str, Any]:
        """The provider's status document for this job."""
        updated = self.updated_at or self.created_at
        output = None
        if self.status == COMPLETED:
            output = {"media_url": [f"{base_url}/_media/{self.request_id}.wav"], "media_type": "audio/wav"}
        return {
            "request_id": self.request_id,
            "status": self.status,
            "model_id": MODEL_ID,
            "error": self.error,
            "output": output,
            "created_at": iso_z(self.created_at),
            "updated_at": iso_z(updated) if self.sequence % 2 == 0 else space_utc(updated),
            "completed_at": None if self.completed_at is None else space_utc(self.completed_at),
        }

    def to_control_json(self) -> dict[str, Any]:
        """Everything about the job for the control API (no key: only its fingerprint)."""

        def stamp(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat()

        return {
            "request_id": self.request_id,
            "status": self.status,
            "error": self.error,
            "text": self.text,
            "audio_url": self.audio_url,
            "params": self.params,
            "price": str(self.price),
            "charged": self.charged,
            "key_fingerprint": self.key_fingerprint,
            "webhook_url": self.webhook_url,
            "webhook_mode": self.webhook_mode,
            "request_headers": dict(self.request_headers.items()),
            "duration": self.duration,
            "created_at": stamp(self.created_at),
            "started_at": stamp(self.started_at),
            "completed_at": stamp(self.completed_at),
            "completed_mono": self.completed_mono,
            "media_bytes": None if self.media_bytes is None else len(self.media_bytes),
            "reference_bytes": self.reference_bytes,
            "status_polls": [[mono, status] for mono, status in self.status_polls],
            "transitions": [[mono, status] for mono, status in self.transitions],
        }


class TokenBucket:
    """A per-key rate limit: ``burst`` tokens, refilled at ``rate`` per clock second."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float) -> float:
        """Spend a token: 0.0 when allowed, else the seconds until one is available."""
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate
