"""The CLI is the operator's tool: member limits do not bind it; the wallet guard still does."""

from __future__ import annotations

import pytest

from bot.clock import ScaledClock
from bot.gateway.emulator import GatewayEmulator
from bot.gateway.models import TTSParams
from bot.quotas import QuotaExceeded, SubmissionsPaused
from bot.services import Services
from bot.speak_cli import CLI_REQUESTER
from bot.speech.events import DeliveryTarget
from tests.speech.support import speech_settings

FILE = DeliveryTarget(kind="file")
TEXT = "The operator checks the bot before the server wakes up. " * 3  # 171 characters


async def test_the_cli_skips_cooldown_and_characters_per_request(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url, quota_cooldown_seconds=3600,
                               quota_max_chars_per_request=50, quota_requests_per_day=1)
    async with await Services.open(settings, clock=scaled_clock) as services:
        for n in range(2):  # twice within the cooldown, past the daily request limit
            # Every chunk differs from the other take's: the audio cache answers none of them.
            text = TEXT.replace("the bot", f"bot {n + 1}")
            job = await services.speech.start(CLI_REQUESTER, text, voice_url=None, params=TTSParams(),
                                              target=FILE)
            result = await job.result()
            assert result.chunks == job.plan.requests >= 2
        usage = await services.quotas.usage(None, CLI_REQUESTER.user_id)
        assert usage.requests_used == 2 * job.plan.requests  # still recorded in the ledger
        # A member with the same limits is held by them.
        member = CLI_REQUESTER.__class__(user_id=5, display_name="m", guild_id=77)
        with pytest.raises(QuotaExceeded) as caught:
            await services.speech.start(member, TEXT.replace("the bot", "bot 3"), voice_url=None,
                                        params=TTSParams(), target=FILE)
        assert caught.value.code == "max_chars_per_request"


async def test_the_cli_still_respects_the_wallet_pause(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url)
    async with await Services.open(settings, clock=scaled_clock) as services:
        await services.wallet.record_insufficient_balance("Insufficient Balance")
        with pytest.raises(SubmissionsPaused):
            await services.speech.start(CLI_REQUESTER, "Hello there, operator.", voice_url=None,
                                        params=TTSParams(), target=FILE)
        assert emulator.counts["submit"] == 0
