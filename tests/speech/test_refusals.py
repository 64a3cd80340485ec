"""Every refusal happens before anything is written (DESIGN rule 6): no job, no reservation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.clock import ManualClock, ScaledClock
from bot.gateway.emulator import GatewayEmulator
from bot.gateway.errors import InvalidTTSRequest
from bot.gateway.models import TTSParams
from bot.quotas import GuildPaused, QuotaExceeded, SubmissionsPaused, WalletGuard
from bot.services import Services
from bot.speech.events import DeliveryTarget, Requester
from tests.speech.support import count_rows, speech_settings

ALICE = Requester(user_id=101, display_name="alice", guild_id=5001)
TARGET = DeliveryTarget(kind="file", channel_id=7001)
NOTHING = {"jobs": 0, "job_parts": 0, "usage_ledger": 0}


async def _refused(services: Services, text: str, **kwargs: object) -> BaseException:
    options: dict[str, object] = {"voice_url": None, "params": TTSParams(), "target": TARGET}
    options.update(kwargs)
    with pytest.raises(Exception) as caught:
        await services.speech.start(ALICE, text, **options)  # type: ignore[arg-type]
    assert await count_rows(services.db) == NOTHING
    return caught.value


@pytest.mark.parametrize(
    ("text", "options", "field", "needle"),
    [
        ("   ", {}, "text", "empty"),
        ("Hello", {"params": TTSParams(exaggeration=1.5)}, "exaggeration", "between 0 and 1 (got 1.5)"),
        ("Hello", {"params": TTSParams(temperature=0.0)}, "temperature", "between 0.1 and 1 (got 0.0)"),
        ("Hello", {"voice_url": "ftp://example.com/voice.wav"}, "audio_url", "link"),
        ("word " * 500, {}, "text", "limit is 2,000"),
    ],
)
async def test_invalid_requests_change_nothing(
    services: Services, emulator: GatewayEmulator, text: str, options: dict[str, object], field: str,
    needle: str,
) -> None:
    error = await _refused(services, text, **options)
    assert isinstance(error, InvalidTTSRequest) and error.field == field
    assert needle in error.user_message
    assert emulator.counts["submit"] == 0


async def test_too_many_chunks_says_how_long_the_text_may_be(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url, chatterbox_max_chunks=2)
    text = " ".join(f"Sentence number {n} is here to fill the chunk up." for n in range(4))
    async with await Services.open(settings, clock=scaled_clock) as services:
        with pytest.raises(InvalidTTSRequest) as caught:
            services.speech.plan(text)
        error = await _refused(services, text)
    assert isinstance(error, InvalidTTSRequest)
    assert str(caught.value) == str(error)
    assert "at most 2" in error.user_message and "Keep it under about 108 characters" in error.user_message


async def test_quota_exceeded_changes_nothing(
    emulator: GatewayEmulator, database_url: str, scaled_clock: ScaledClock
) -> None:
    settings = speech_settings(emulator, database_url, quota_requests_per_day=2)
    text = " ".join(f"Sentence number {n} is here to fill the chunk up." for n in range(3))
    async with await Services.open(settings, clock=scaled_clock) as services:
        assert services.speech.plan(text).requests == 3
        error = await _refused(services, text)
    assert isinstance(error, QuotaExceeded) and error.code == "requests_per_day"
    assert "needs 3 requests" in error.user_message
    assert emulator.counts["submit"] == 0


async def test_guild_pause_changes_nothing(services: Services, emulator: GatewayEmulator) -> None:
    await services.quotas.admin.pause(ALICE.guild_id or 0, actor_id=1, reason="maintenance")
    error = await _refused(services, "Hello")
    assert isinstance(error, GuildPaused) and "maintenance" in error.user_message


async def test_wallet_pause_refuses_until_a_probe_succeeds(
    services: Services, emulator: GatewayEmulator, scaled_clock: ScaledClock
) -> None:
    fresh = WalletGuard(services.db, scaled_clock, probe_interval=600)
    await fresh.record_insufficient_balance("HTTP 402: Insufficient Balance")
    error = await _refused(services, "Hello")
    assert isinstance(error, SubmissionsPaused)

    # The pause began long ago (another clock): the next start is the probe, and it resumes.
    await services.wallet.resume("test")
    past = ManualClock(scaled_clock.now() - timedelta(hours=1))
    await WalletGuard(services.db, past, probe_interval=600).record_insufficient_balance("HTTP 402")
    assert (await services.wallet.state()).paused
    job = await services.speech.start(ALICE, "Hello again", voice_url=None, params=TTSParams(),
                                      target=TARGET)
    await job.result()
    assert not (await services.wallet.state()).paused  # the probe's success resumed everyone


async def test_a_quota_refusal_does_not_use_up_the_wallet_probe(
    services: Services, emulator: GatewayEmulator, scaled_clock: ScaledClock
) -> None:
    past = ManualClock(scaled_clock.now() - timedelta(hours=1))  # the probe is due now
    await WalletGuard(services.db, past, probe_interval=600).record_insufficient_balance("HTTP 402")
    await services.quotas.admin.set_user_policy(ALICE.guild_id or 0, ALICE.user_id, actor_id=1,
                                                requests_per_day=0)
    error = await _refused(services, "Hello")
    assert isinstance(error, QuotaExceeded)  # alice held the probe permit, then was refused
    bob = Requester(user_id=102, display_name="bob", guild_id=ALICE.guild_id)
    job = await services.speech.start(bob, "Hello from bob", voice_url=None, params=TTSParams(),
                                      target=TARGET)
    await job.result()  # bob is the probe at once, not an interval later, and it resumes
    assert not (await services.wallet.state()).paused
