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
from bot.speech.events import Cancelled, CostPlan, Processing, QuotaReserved, Submitted, WaitingForSlot
from cogs.speak.card import Card
from cogs.speak.session import EDIT_INTERVAL, SpeakSession


class RecordingReply:
    def __init__(self) -> None:
        self.edits: list[tuple[str, Any]] = []
        self.told: list[str] = []

    async def edit_card(self, content: str, *, view: Any) -> None:
        self.edits.append((content.splitlines()[3], view))

    async def tell(self, content: str) -> None:
        self.told.append(content)


def processing(elapsed: float) -> Processing:
    return Processing("job", elapsed=elapsed, done_chunks=0, chunks=1)


def new_session(clock: ManualClock, reply: RecordingReply) -> SpeakSession:
    return SpeakSession(
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


async def until_sleeping(clock: ManualClock) -> None:
    for _ in range(100):  # let the flush task reach its sleep (yields only, no real time)
        if clock.sleepers:
            return
        await asyncio.sleep(0)


async def test_repeated_progress_is_throttled_and_the_latest_state_follows() -> None:
    clock = ManualClock()
    reply = RecordingReply()
    session = new_session(clock, reply)
    await session.on_event(QuotaReserved("job", CostPlan(("hi",), 2, Decimal("0.01"))))
    await session.on_event(processing(1.0))  # a new kind of state: shown at once
    await session.on_event(processing(1.4))  # a repeat within the interval: held back
    await session.on_event(processing(1.6))
    assert [text for text, _ in reply.edits] == [
        "**Status:** quota ok",
        "**Status:** processing… 1 s",
    ]
    assert reply.told == [  # the cost, privately, once the card shows
        "This /speak uses 1 request of your quota ($0.01); it is given back if the TTS service "
        "does not charge for it."
    ]
    assert session._flush is not None
    await until_sleeping(clock)
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


async def test_a_long_text_alternating_between_states_is_throttled_too() -> None:
    """Five parts: each waits for a slot, is sent and reports progress, all within moments.
    Only the first state of each kind goes out at once; returning to a kind is throttled."""
    clock = ManualClock()
    reply = RecordingReply()
    session = new_session(clock, reply)
    await session.on_event(QuotaReserved("job", CostPlan(("a",) * 5, 5, Decimal("0.05"))))
    for sent in range(1, 6):
        await session.on_event(WaitingForSlot("job", 1))
        await session.on_event(Submitted("job", sent, 5))
        await session.on_event(Processing("job", elapsed=0.1 * sent, done_chunks=0, chunks=5))
    assert [text for text, _ in reply.edits] == [
        "**Status:** quota ok: 5 parts",
        "**Status:** queued, position 1",
        "**Status:** queued (1/5 parts sent)",
        "**Status:** processing… 0.1 s (0/5 parts ready)",
    ]
    await until_sleeping(clock)
    clock.advance(EDIT_INTERVAL)
    assert session._flush is not None
    await session._flush  # then one edit with the latest state
    assert [text for text, _ in reply.edits][4:] == ["**Status:** processing… 0.5 s (0/5 parts ready)"]
