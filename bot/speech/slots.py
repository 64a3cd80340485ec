"""Handing a rate-limiter slot the pipeline already holds to the gateway client.

The pipeline waits for the shared ``RateGuard`` itself before a POST, because only there can
it report the member's place in line (``WaitingForSlot``) and tell "cancelled while waiting"
(nothing sent: full refund) from "cancelled while posting" (maybe charged). The client also
calls ``limiter.acquire`` before every request it sends; without help a submission would
spend two tokens.

``PrepaidLimiter`` is the limiter the client gets (``bot.services`` wires it): inside
``prepaid_slot()`` the client's next ``acquire`` in the same task is free, every later one
(a POST retried after a 429, the status polls) waits as usual. The flag is a ``ContextVar``,
so it belongs to the one task that acquired the slot and never leaks to concurrent jobs.
A client built with the bare ``RateGuard`` still works; it just spends a second token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from bot.gateway.ratelimit import RateGuard

# Per-task state, not a shared global: each task sees its own value.
_prepaid: ContextVar[bool] = ContextVar("chatterbox_prepaid_slot", default=False)


@contextmanager
def prepaid_slot() -> Iterator[None]:
    """The caller holds a slot: the client's next ``acquire`` in this task uses it."""
    token = _prepaid.set(True)
    try:
        yield
    finally:
        _prepaid.reset(token)


class PrepaidLimiter:
    """``bot.gateway.limits.RateLimiter`` over a ``RateGuard``, honouring ``prepaid_slot``."""

    def __init__(self, guard: RateGuard) -> None:
        self.guard = guard

    async def acquire(self, key: str) -> None:
        if _prepaid.get():
            _prepaid.set(False)
            return
        await self.guard.acquire(key)

    def hold(self, seconds: float) -> None:
        self.guard.hold(seconds)

    def __repr__(self) -> str:
        return f"PrepaidLimiter({self.guard!r})"
