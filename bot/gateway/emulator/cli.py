"""Command-line options of ``chatterbox-bot emulator`` and the banner it prints at start.

The emulator's audio is a NON-SPEECH test signal (sine beeps whose pitch follows the text); the
parser's description and ``--help`` say so. Every option has help text and a default that
matches :class:`~bot.gateway.emulator.config.EmulatorConfig`, except ``--port`` (8765 here, a
free port for tests). :func:`bot.gateway.emulator.run_emulator` serves with these options.
"""

from __future__ import annotations

import argparse
import math
import shlex
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from bot.formats import money
from bot.gateway.emulator.config import EmulatorConfig

if TYPE_CHECKING:
    from bot.gateway.emulator import GatewayEmulator

DEFAULT_CLI_PORT = 8765
EMULATOR_DESCRIPTION = (
    "Run a local emulator of the hosted Chatterbox TTS gateway (same routes, documents, keys, "
    "wallet, rate limit, queue, webhooks, failure injection). Its audio is a NON-SPEECH test "
    "signal: a 24 kHz mono WAV of sine beeps whose pitch follows the text, not synthesized speech."
)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be an amount >= 0")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text} must be a number >= 0")
    return value


def _positive(text: str) -> float:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (0-65535)")
    return value


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``chatterbox-bot emulator`` options (every one with help and its default)."""
    if parser.description is None:
        parser.description = EMULATOR_DESCRIPTION
    d = EmulatorConfig()
    add = parser.add_argument
    add("--host", default=d.host, help="address to listen on (default: %(default)s)")
    add("--port", type=_port, default=DEFAULT_CLI_PORT,
        help="port to listen on; 0 picks a free one (default: %(default)s)")
    add("--key", dest="keys", action="append", metavar="KEY",
        help=f"an accepted API key; repeat for several (default: {d.api_keys[0]})")
    add("--forbidden-key", dest="forbidden_keys", action="append", metavar="KEY",
        help=f"a key answered with 403; repeatable (default: {d.forbidden_keys[0]})")
    add("--balance", type=_amount, default=d.balance,
        help="starting wallet balance in dollars (default: %(default)s)")
    add("--price", type=_amount, default=d.price,
        help="price of one request in dollars (default: %(default)s)")
    add("--rate", type=_positive, default=None, metavar="PER_SECOND",
        help="per-key submissions per second before 429 (token bucket; default: unlimited)")
    add("--burst", type=_count, default=d.rate_burst,
        help="token bucket size for --rate (default: %(default)s)")
    add("--workers", type=_count, default=d.workers, help="jobs processed at once (default: %(default)s)")
    add("--base-seconds", type=_non_negative, default=d.base_seconds,
        help="fixed part of a job's processing time (default: %(default)s)")
    add("--per-char-seconds", type=_non_negative, default=d.per_char_seconds,
        help="processing time per character of text (default: %(default)s)")
    add("--audio-seconds-per-char", type=_non_negative, default=d.seconds_per_char_audio,
        help="length of the NON-SPEECH beep test signal per character, clamped to 0.5-40 s "
        "(default: %(default)s)")
    add("--fail-rate", type=_probability, default=0.0,
        help="probability a job ends FAILED, charged (default: 0)")
    add("--error-rate", type=_probability, default=0.0,
        help="probability a job ends ERROR, not charged (default: 0)")
    add("--http500-rate", type=_probability, default=0.0,
        help="probability a request is answered 500; a submission then creates no job (default: 0)")
    add("--drop-rate", type=_probability, default=0.0,
        help="probability a request's connection is closed without an answer (default: 0)")
    add("--slow-rate", type=_probability, default=0.0,
        help="probability a request is answered only after --slow-seconds (default: 0)")
    add("--slow-seconds", type=_non_negative, default=d.slow_seconds,
        help="delay of slow answers (default: %(default)s)")
    add("--webhook-duplicate-rate", type=_probability, default=d.webhook_duplicate_rate,
        help="probability a delivered webhook is sent a second time (default: %(default)s)")
    add("--allow-http-webhooks", action="store_true",
        help="accept plain-http X-Webhook-URL addresses (the real API accepts https only)")
    add("--seed", type=int, default=None,
        help="seed for every random choice, for reproducible runs (default: random)")


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """An :class:`EmulatorConfig` from parsed ``add_emulator_arguments`` options."""
    d = EmulatorConfig()

    def opt(name: str, default: Any) -> Any:
        value = getattr(args, name, None)
        return default if value is None else value

    return EmulatorConfig(
        host=opt("host", d.host),
        port=opt("port", DEFAULT_CLI_PORT),
        api_keys=tuple(opt("keys", d.api_keys)),
        forbidden_keys=tuple(opt("forbidden_keys", d.forbidden_keys)),
        balance=opt("balance", d.balance),
        price=opt("price", d.price),
        rate_per_second=getattr(args, "rate", None),
        rate_burst=opt("burst", d.rate_burst),
        workers=opt("workers", d.workers),
        base_seconds=opt("base_seconds", d.base_seconds),
        per_char_seconds=opt("per_char_seconds", d.per_char_seconds),
        seconds_per_char_audio=opt("audio_seconds_per_char", d.seconds_per_char_audio),
        fail_rate=opt("fail_rate", 0.0),
        error_rate=opt("error_rate", 0.0),
        http500_rate=opt("http500_rate", 0.0),
        drop_rate=opt("drop_rate", 0.0),
        slow_rate=opt("slow_rate", 0.0),
        slow_seconds=opt("slow_seconds", d.slow_seconds),
        webhook_duplicate_rate=opt("webhook_duplicate_rate", d.webhook_duplicate_rate),
        allow_http_webhooks=bool(getattr(args, "allow_http_webhooks", False)),
        seed=getattr(args, "seed", None),
    )


def banner(emulator: GatewayEmulator) -> str:
    """What ``chatterbox-bot emulator`` prints at start: address, default key, an example."""
    base = emulator.base_url
    key = emulator.api_key
    others = len(emulator.config.api_keys) - 1
    example = (
        f"CHATTERBOX_GATEWAY_URL={shlex.quote(base)} CHATTERBOX_API_KEY={shlex.quote(key)} "
        'CHATTERBOX_ALLOW_HTTP=true chatterbox-bot speak "Hello" -o hello.wav'
    )
    lines = [
        f"Chatterbox TTS gateway emulator listening on {base}",
        f"  API key:     {key}" + (f"  (+{others} more accepted)" if others else ""),
        f"  Balance:     {money(emulator.balance)} at {money(emulator.config.price)} per request",
        f"  Control API: {base}/_emulator/state",
        "  Audio is a NON-SPEECH test signal (sine beeps), not synthesized speech.",
        f"  Try:         {example}",
        "Press Ctrl+C to stop.",
    ]
    return "\n".join(lines)
