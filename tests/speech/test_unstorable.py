"""Text the database cannot hold is refused before anything is reserved, on both engines."""

from __future__ import annotations

import pytest

from bot.clock import ScaledClock
from bot.gateway.emulator import GatewayEmulator
from bot.gateway.errors import InvalidTTSRequest
from bot.gateway.models import TTSParams
from bot.services import Services
from bot.speech.events import DeliveryTarget, Requester
from tests.speech.support import count_rows, speech_settings
from tests.store.dbkit import DbTarget, db_target

__all__ = ["db_target"]

NOTHING = {"jobs": 0, "job_parts": 0, "usage_ledger": 0}


@pytest.mark.parametrize(
    ("text", "voice_url", "field", "needle"),
    [
        ("Hello\x00 there", None, "text", "NUL character"),
        ("Broken \ud83d here", None, "text", "lone UTF-16 surrogate"),
        ("Fine text.", "https://example.com/v\x00.wav", "audio_url", "NUL character"),
    ],
)
async def test_unstorable_input_is_refused_and_changes_nothing(
    db_target: DbTarget, emulator: GatewayEmulator, scaled_clock: ScaledClock, text: str,
    voice_url: str | None, field: str, needle: str,
) -> None:
    db = await db_target.open()
    try:
        settings = speech_settings(emulator, db_target.url)
        async with await Services.open(settings, clock=scaled_clock, database=db) as services:
            with pytest.raises(InvalidTTSRequest) as caught:
                await services.speech.start(Requester(1, "ann", 5), text, voice_url=voice_url,
                                            params=TTSParams(), target=DeliveryTarget(channel_id=7))
            assert caught.value.field == field and needle in caught.value.user_message
            assert await count_rows(db) == NOTHING
            # A display name with such characters is stored without them, not refused.
            job = await services.speech.start(Requester(1, "a\x00n\udc00n", 5), "Hello there.",
                                              voice_url=None, params=TTSParams(),
                                              target=DeliveryTarget(channel_id=7))
            await job.result()
            record = await services.speech.get_job(job.job_id)
            assert record is not None and record.user_display == "ann"
        assert emulator.counts["submit"] == 1
    finally:
        await db.close()
