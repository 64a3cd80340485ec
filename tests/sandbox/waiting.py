"""Awaiting sandbox state without polling.

Every mutation of the sandbox calls ``Notifier.notify()``; waiters re-check their predicate
only then. The timeout is a safety net so a broken test fails with a description of what it
waited for instead of hanging; it is never how a test waits for something.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from tests.sandbox.errors import SandboxTimeout

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


class Notifier:
    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._event = asyncio.Event()
        #: Safety net for every wait; a test can tighten one wait with ``asyncio.timeout``.
        self.timeout = timeout

    def notify(self) -> None:
        """Wake every waiter; they re-evaluate their predicates."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_until(
        self,
        predicate: Callable[[], T | None],
        *,
        describe: str | Callable[[], str] = "a condition",
    ) -> T:
        """Return the first truthy value of ``predicate()``, re-checked after each change."""
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    event = self._event
                    result = predicate()
                    if result:
                        return result
                    await event.wait()
        except TimeoutError:
            text = describe() if callable(describe) else describe
            raise SandboxTimeout(f"timed out after {self.timeout}s waiting for {text}") from None
