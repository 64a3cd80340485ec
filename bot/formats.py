"""Plain-text formats shared by every front end: money, counts, durations.

One place for them, in the core, because the CLI (``bot.speak_cli``), the quota messages
(``bot.quotas``), the emulator and the Discord cards all print the same amounts.
"""

from __future__ import annotations

from decimal import Decimal


def money(amount: Decimal) -> str:
    """``$0.02``, ``$1,234.50``; more digits only when a price needs them (``$0.005``)."""
    if amount == amount.quantize(Decimal("0.01")):
        return f"${amount:,.2f}"
    return f"${amount.normalize():,f}"


def plural(count: int, word: str) -> str:
    """``1 request``, ``2 requests``, ``1,000 requests``."""
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def seconds(value: float) -> str:
    """``4 s``, ``12.5 s`` (tenths below ten seconds), ``2 min 5 s``."""
    if value < 10:
        text = f"{value:.1f}".removesuffix(".0")
        return f"{text} s"
    whole = round(value)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"
