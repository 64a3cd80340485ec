"""Documents of the Chatterbox TTS gateway (see DESIGN.md, "The gateway contract").

Design decisions:
- Request models are plain typed containers; the *ranges* (text length, tuning values, URL
  schemes) are checked by ``ChatterboxClient.validate`` so every violation becomes one
  ``InvalidTTSRequest`` that names the field and the allowed range (a pydantic
  ``ValidationError`` would be unreadable to a Discord member). ``PARAM_RANGES`` is exported
  for the Discord layer's option ranges, and ``check_params`` (the tuning rule, which
  ``validate`` applies) for front ends that refuse bad tuning before anything else.
- Response models tolerate extra fields (the provider adds fields over time) but are strict
  about what we rely on: a missing ``request_id``, an unknown ``status`` or an unparseable
  timestamp is a ``ProtocolError`` raised by ``parse`` — never a pydantic error, never a crash.
- Timestamps arrive as ``2026-03-31T07:32:03.749Z`` and as ``2026-05-22 13:19:23``; both are
  UTC, and every datetime we hand out is timezone-aware UTC.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.gateway.errors import InvalidTTSRequest, ProtocolError

#: (low, high) inclusive bounds of each tuning value, from the provider's documentation.
PARAM_RANGES: dict[str, tuple[float, float]] = {
    "exaggeration": (0.0, 1.0),
    "temperature": (0.1, 1.0),
    "cfg": (0.0, 2.0),
}


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    ERROR = "ERROR"

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change (COMPLETED, FAILED, ERROR)."""
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.ERROR)


class TTSParams(BaseModel):
    """Tuning values. Defaults are the provider's; ranges in ``PARAM_RANGES``."""

    model_config = ConfigDict(frozen=True)

    exaggeration: float = 0.5
    temperature: float = 0.8
    cfg: float = 0.5


def check_params(params: TTSParams) -> None:
    """``InvalidTTSRequest`` naming the first tuning value outside ``PARAM_RANGES``."""
    for name, (low, high) in PARAM_RANGES.items():
        value = getattr(params, name)
        if not math.isfinite(value) or not low <= value <= high:
            raise InvalidTTSRequest(name, f"`{name}` must be between {low:g} and {high:g} (got {value}).")


class TTSRequest(BaseModel):
    """What to synthesize. ``params`` are flattened into the JSON body by ``to_body``.

    For convenience the tuning values may also be given flat:
    ``TTSRequest(text="hi", exaggeration=0.7)`` equals
    ``TTSRequest(text="hi", params=TTSParams(exaggeration=0.7))``.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    audio_url: str | None = None
    params: TTSParams = Field(default_factory=TTSParams)

    @model_validator(mode="before")
    @classmethod
    def _flat_params(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(name in data for name in PARAM_RANGES):
            data = dict(data)
            given = {name: data.pop(name) for name in PARAM_RANGES if name in data}
            base = data.get("params")
            if isinstance(base, TTSParams):
                base = base.model_dump()
            data["params"] = {**(base or {}), **given}
        return data

    @property
    def exaggeration(self) -> float:
        return self.params.exaggeration

    @property
    def temperature(self) -> float:
        return self.params.temperature

    @property
    def cfg(self) -> float:
        return self.params.cfg

    def to_body(self) -> dict[str, Any]:
        """The JSON body of the submit POST (``audio_url`` omitted when None)."""
        body: dict[str, Any] = {"text": self.text}
        if self.audio_url is not None:
            body["audio_url"] = self.audio_url
        body.update(self.params.model_dump())
        return body


class Webhook(BaseModel):
    """Where the gateway should POST status documents: once at the end (``terminal``) or on
    every poll cycle and at the end (``sync``). The client only sends https URLs."""

    model_config = ConfigDict(frozen=True)

    url: str
    mode: Literal["terminal", "sync"] = "terminal"


class _Document(BaseModel):
    """Base of gateway answers: extra fields tolerated, parse errors become ProtocolError."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    what: ClassVar[str] = "document"

    @classmethod
    def parse(cls, data: object) -> Self:
        """Validate decoded JSON, raising ``ProtocolError`` (only) when it does not fit."""
        if not isinstance(data, dict):
            raise ProtocolError(f"{cls.what} is not a JSON object (got {type(data).__name__})")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ProtocolError(f"malformed {cls.what}: {_summarize(exc)}") from None
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise ProtocolError(f"malformed {cls.what}: {type(exc).__name__}") from None

    @classmethod
    def parse_json(cls, raw: bytes | str) -> Self:
        """Decode JSON text and validate it (``ProtocolError`` on any problem)."""
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"{cls.what} is not valid JSON ({type(exc).__name__})") from None
        return cls.parse(data)


def _summarize(exc: ValidationError) -> str:
    """The first problem, without the offending input (which may be long or odd)."""
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "document"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}"[:200] + more


def parse_timestamp(value: object) -> datetime | None:
    """Parse a gateway timestamp to an aware UTC datetime.

    Accepts ISO 8601 with ``Z`` or an offset, and the naive ``YYYY-MM-DD HH:MM:SS[.ffffff]``
    shape, which the provider means as UTC. ``None``/empty is None; anything else raises
    ``ValueError``.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("timestamp must be a string")
    text = value.strip()
    if len(text) > 64:
        raise ValueError("timestamp too long")
    parsed = datetime.fromisoformat(text)  # 3.11: accepts "Z", offsets and a space separator
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError("timestamp out of range") from None


class SubmitAccepted(_Document):
    """The 202 answer to a submit POST."""

    what: ClassVar[str] = "submit answer"

    request_id: str = Field(min_length=1)
    status: JobStatus = JobStatus.QUEUED
    polling_url: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: object) -> object:
        return _normalize_status(value)


class StatusOutput(_Document):
    """Where the audio is. ``media_url`` is always a list (a lone string is wrapped)."""

    what: ClassVar[str] = "status output"

    media_url: list[str] = Field(default_factory=list)
    media_type: str | None = None

    @field_validator("media_url", mode="before")
    @classmethod
    def _listify(cls, value: object) -> object:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        return value


class StatusDocument(_Document):
    """The answer of ``GET /v2/requests/status/{request_id}``."""

    what: ClassVar[str] = "status document"

    request_id: str = Field(min_length=1)
    status: JobStatus
    model_id: str | None = None
    error: str | None = None
    output: StatusOutput | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: object) -> object:
        return _normalize_status(value)

    @field_validator("model_id", "error", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        """Tolerate an error given as an object: keep its message, else its JSON."""
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return value["message"]
        return json.dumps(value)[:500]

    @field_validator("created_at", "updated_at", "completed_at", mode="before")
    @classmethod
    def _timestamp(cls, value: object) -> datetime | None:
        return parse_timestamp(value)

    @property
    def media_urls(self) -> list[str]:
        return list(self.output.media_url) if self.output else []


def _normalize_status(value: object) -> object:
    """Statuses are matched case-insensitively; an unknown one fails validation."""
    if isinstance(value, str):
        upper = value.strip().upper()
        if upper in JobStatus.__members__:
            return JobStatus(upper)
        raise ValueError(f"unknown status {value[:40]!r}")
    return value
