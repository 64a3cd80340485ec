"""Snowflake ids made from the injected clock.

A Discord id encodes its creation time (milliseconds since 2015-01-01 in the top 42 bits),
and discord.py derives ``created_at`` from it. Making ids from the sandbox's clock keeps
``Interaction.created_at`` consistent with the clock the test shares with the bot.
"""

from __future__ import annotations

from bot.clock import Clock

DISCORD_EPOCH_MS = 1_420_070_400_000


class SnowflakeFactory:
    """Strictly increasing snowflakes whose timestamp part is ``clock.now()``."""

    def __init__(self, clock: Clock, *, worker: int = 1, process: int = 1) -> None:
        self._clock = clock
        self._low_bits = ((worker & 0x1F) << 17) | ((process & 0x1F) << 12)
        self._last = 0

    def __call__(self) -> int:
        ms = int(self._clock.now().timestamp() * 1000) - DISCORD_EPOCH_MS
        candidate = (max(ms, 0) << 22) | self._low_bits
        # Several ids in the same millisecond (or a clock that does not move): bump the increment.
        self._last = max(candidate, self._last + 1)
        return self._last
