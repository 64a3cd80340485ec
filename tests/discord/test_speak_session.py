"""The job card's edit throttle, on a ManualClock, with a recording stand-in for ``Reply``.

Only the cog's own collaborator is replaced (``Reply``, which is what talks to Discord); the
session's logic runs as is, so time and the number of edits are exact.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from bot.clock import ManualClock
from bot.speech.events import Cancelled, CostPlan, Processing, QuotaReserved
from cogs._card import Card
from cogs._session import EDIT_INTERVAL, SpeakSession


class RecordingReply:
    def __init__(self) -> None:
        self.edits: list[tuple[str, Any]] = []

    async def edit_card(self, content: str, *, view: Any) -> None:
        self.edits.append((content.splitlines()[3], view))


def processing(elapsed: float) -> Processing:
    return Processing("job", elapsed=elapsed, done_chunks=0, chunks=1)


async def test_repeated_progress_is_throttled_and_the_latest_state_follows() -> None:
    clock = ManualClock()
    reply = RecordingReply()
    session = SpeakSession(
        bot=SimpleNamespace(clock=clock),
        reply=reply,  # type: ignore[arg-type]
        card=Card(requester="<@1>", text="hi", output="file", exaggeration=0.5, temperature=0.8, cfg=0.5),
        requester_id=1,
        requester_name="alice",
        guild_id=None,
        output="file",
        upload_limit=1 << 20,
        make_view=lambda job_id: f"view:{job_id}",  # type: ignore[arg-type,return-value]
    )
    await session.on_event(QuotaReserved("job", CostPlan(("hi",), 2, Decimal("0.01"))))
    await session.on_event(processing(1.0))  # a new kind of state: shown at once
    await session.on_event(processing(1.4))  # a repeat within the interval: held back
    await session.on_event(processing(1.6))
    assert [text for text, _ in reply.edits] == [
        "**Status:** quota ok: 1 request, $0.01",
        "**Status:** processing… 1 s",
    ]
    assert session._flush is not None
    for _ in range(100):  # let the flush task reach its sleep (yields only, no real time)
        if clock.sleepers:
            break
        await asyncio.sleep(0)
    assert clock.sleepers == 1

    clock.advance(EDIT_INTERVAL)
    await session._flush  # the held-back edit shows the latest state, once
    assert [text for text, _ in reply.edits][2:] == ["**Status:** processing… 1.6 s"]

    await session.on_event(processing(3.0))  # held back again...
    await session.on_event(Cancelled("job", refunded=True))  # ...but the end is shown at once
    assert reply.edits[-1] == ("**Status:** cancelled (your quota was refunded)", None)
    assert all(view == "view:job" for _, view in reply.edits[:-1])  # Cancel button until the end
    await asyncio.gather(session._flush, return_exceptions=True)
    assert session.finished.is_set() and session._flush.cancelled()
    assert len(reply.edits) == 4
