"""The gateway emulator's settings (:class:`EmulatorConfig`) and their checks.

Separate from :mod:`bot.gateway.emulator` so the CLI options (:mod:`bot.gateway.emulator.cli`)
can map onto it without importing the server. The keys are kept out of the dataclass repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from bot.clock import Clock, SystemClock

RATE_NAMES = ("fail_rate", "error_rate", "http500_rate", "drop_rate", "slow_rate", "webhook_duplicate_rate")


@dataclass
class EmulatorConfig:
    """How the emulator behaves. Times are seconds of the injected ``clock``."""

    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port
    # Keys stay out of reprs, like every secret in the project.
    api_keys: tuple[str, ...] = field(default=("emulator-key",), repr=False)  # the first is the default
    forbidden_keys: tuple[str, ...] = field(default=("forbidden-key",), repr=False)  # answered with 403
    balance: Decimal = Decimal("10.00")
    price: Decimal = Decimal("0.01")
    rate_per_second: float | None = None  # per-key token bucket; None = unlimited
    rate_burst: int = 10
    rate_limit_status: bool = False  # also limit status polls (submissions always are)
    workers: int = 4
    base_seconds: float = 1.0
    per_char_seconds: float = 0.02
    jitter: float = 0.1  # ± fraction of the computed duration
    seconds_per_char_audio: float = 0.06  # output length ~ text length (0.5-40 s)
    max_text_chars: int = 5000
    fail_rate: float = 0.0  # job ends FAILED (charged)
    error_rate: float = 0.0  # job ends ERROR (not charged)
    http500_rate: float = 0.0  # answer 500 (a submission creates no job)
    drop_rate: float = 0.0  # close the connection without answering
    slow_rate: float = 0.0  # answer after slow_seconds
    slow_seconds: float = 5.0
    allow_http_webhooks: bool = False  # the real contract is https-only
    webhook_duplicate_rate: float = 0.1
    webhook_max_attempts: int = 4
    webhook_backoff_seconds: float = 1.0  # doubled after each failed attempt
    webhook_timeout_seconds: float = 10.0  # real seconds, a guard against a stuck receiver
    audio_fetch_timeout_seconds: float = 10.0  # real seconds
    audio_max_bytes: int = 20 * 1024 * 1024
    seed: int | None = None
    # Request ids are UUIDs (36 characters); a longer length pads each with more random hex
    # characters, as a provider with long ids would send (the bot stores ids of any length).
    request_id_length: int = 36
    clock: Clock = field(default_factory=SystemClock)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first nonsensical field."""
        if not self.api_keys or any(not key for key in self.api_keys):
            raise ValueError("api_keys: at least one non-empty key is required")
        for name in RATE_NAMES:
            check_rate(name, getattr(self, name))
        if self.rate_per_second is not None and not self.rate_per_second > 0:
            raise ValueError("rate_per_second: must be > 0 (or None for no limit)")
        positive = ("rate_burst", "workers", "webhook_max_attempts", "max_text_chars", "audio_max_bytes")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        non_negative = (
            "base_seconds", "per_char_seconds", "jitter", "seconds_per_char_audio", "slow_seconds",
            "webhook_backoff_seconds", "price", "balance",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0")
        if self.jitter >= 1:
            raise ValueError("jitter: must be below 1")
        if not 36 <= self.request_id_length <= 1000:
            raise ValueError("request_id_length: must be between 36 and 1000")


def check_rate(name: str, value: float) -> None:
    if name not in RATE_NAMES:
        raise ValueError(f"unknown rate {name!r}; expected one of {', '.join(RATE_NAMES)}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: must be a probability between 0 and 1")
