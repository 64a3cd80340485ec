"""Delivering a job's events to its listener, in order, without stalling the pipeline.

Events are queued and one consumer task awaits the listener for each, so a slow listener
(a Discord edit, a terminal) never holds up a POST or a status poll, events reach it in the
order they happened, and a listener that raises is logged and ignored: the UI failing must
not fail or double-charge a job. Synchronous producers (the rate guard's position callback)
can ``post`` too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.speech.events import SpeechEvent

log = logging.getLogger(__name__)

EventListener = Callable[[SpeechEvent], Awaitable[None]]


class EventSink:
    """One job's event queue and the task that drains it into ``listener``."""

    def __init__(self, listener: EventListener | None) -> None:
        self._listener = listener
        self._queue: asyncio.Queue[SpeechEvent | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def post(self, event: SpeechEvent) -> None:
        """Queue ``event`` (never blocks; events after ``close`` are dropped)."""
        if self._listener is None:
            return
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name=f"speech-events-{event.job_id}")
        self._queue.put_nowait(event)

    async def close(self) -> None:
        """Wait until every queued event reached the listener, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await asyncio.shield(self._task)

    def in_listener(self) -> bool:
        """True when called from inside the listener (which must not wait for the job's end:
        the job waits for its listener to see the final event)."""
        return self._task is not None and asyncio.current_task() is self._task

    async def abort(self) -> None:
        """Stop at once (the service is closing); queued events are dropped.

        Waits for the listener to unwind: it may be inside a database call (marking a job
        delivered), and the service closes the database right after its jobs stop."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _drain(self) -> None:
        assert self._listener is not None
        while True:
            event = await self._queue.get()
            if event is None:
                return
            try:
                await self._listener(event)
            except Exception:
                log.exception("speech event listener failed on %s", type(event).__name__)
