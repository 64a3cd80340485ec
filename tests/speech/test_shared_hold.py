"""A gateway 429 seen by one process holds the others too (through the database)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import select

from bot.clock import ScaledClock
from bot.gateway.emulator import GatewayEmulator, Outcome
from bot.gateway.models import TTSParams
from bot.services import Services
from bot.speech.events import DeliveryTarget, Requester, SpeechEvent, Submitted
from bot.store.tables import bot_guard
from tests.speech.support import EventLog, speech_settings

TARGET = DeliveryTarget(kind="file", channel_id=7001)


async def _shared_hold(services: Services) -> datetime | None:
    async with services.db.read() as conn:
        return (await conn.execute(select(bot_guard.c.rate_limited_until))).scalar_one()


async def test_a_429_in_one_process_holds_the_other_process_submissions(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url)
    emulator.script_submit(Outcome("http_429", retry_after=40), Outcome("complete", duration=1))
    async with await Services.open(settings, clock=scaled_clock) as first, \
            await Services.open(settings, clock=scaled_clock) as second:
        job_a = await first.speech.start(Requester(1, "ann", 5), "Held by the gateway.", voice_url=None,
                                         params=TTSParams(), target=TARGET)
        async with asyncio.timeout(20):  # until the 429 is in the database
            while True:
                if await _shared_hold(first) is not None:
                    break
                await asyncio.sleep(0.01)
        hold_end = await _shared_hold(first)
        assert hold_end is not None
        submitted_at: list[datetime] = []

        def note(event: SpeechEvent) -> None:
            if isinstance(event, Submitted):
                submitted_at.append(scaled_clock.now())

        events = EventLog(note)
        job_b = await second.speech.start(Requester(2, "bob", 5), "Another process, same gateway.",
                                          voice_url=None, params=TTSParams(), target=TARGET, on_event=events)
        await asyncio.gather(job_a.result(), job_b.result())
        # The second process had no 429 of its own, yet it waited for the first one's to end.
        assert submitted_at and submitted_at[0] >= hold_end
        assert emulator.counts["submit"] == 3  # the refused POST, then one each
