"""The bot-wide 402 pause: persisted, told once, one probe at a time, resumable by hand."""

from __future__ import annotations

import asyncio

import pytest

from bot.clock import ManualClock
from bot.quotas import QuotaService, SubmissionsPaused, SubmitPermit, WalletGuard
from bot.quotas.wallet import PAUSED_USER_MESSAGE
from tests.quotas.conftest import make_settings
from tests.store.dbkit import DbTarget

MESSAGE = "Insufficient Balance: Required: $0.01"


async def paused_error(wallet: WalletGuard) -> SubmissionsPaused:
    with pytest.raises(SubmissionsPaused) as caught:
        await wallet.before_submit()
    return caught.value


async def test_a_402_pauses_everyone_once(wallet: WalletGuard, clock: ManualClock) -> None:
    permit = await wallet.before_submit()
    assert permit == SubmitPermit(probe=False, epoch=0)
    results = await asyncio.gather(*(wallet.record_insufficient_balance(MESSAGE) for _ in range(8)))
    assert results.count(True) == 1
    error = await paused_error(wallet)
    assert error.user_message == PAUSED_USER_MESSAGE
    assert str(error) == error.user_message
    assert error.since == clock.now() and error.reason == MESSAGE
    state = await wallet.state()
    assert state.paused and state.since == clock.now() and state.reason == MESSAGE
    assert state.paused_by == "gateway (402)"
    alerts = await asyncio.gather(*(wallet.claim_alert() for _ in range(5)))
    assert alerts.count(True) == 1
    assert not await wallet.claim_alert()


async def test_a_restart_stays_paused(db_target: DbTarget, clock: ManualClock) -> None:
    first_db = await db_target.open()
    try:
        assert await WalletGuard(first_db, clock, 600).record_insufficient_balance(MESSAGE)
    finally:
        await first_db.close()
    second_db = await db_target.open()  # a new process, in effect
    try:
        wallet = WalletGuard(second_db, clock, 600)
        assert (await wallet.state()).paused
        await paused_error(wallet)
        assert not await wallet.record_insufficient_balance(MESSAGE)  # moderators already told
    finally:
        await second_db.close()


async def test_one_probe_after_the_interval_resumes(wallet: WalletGuard, clock: ManualClock) -> None:
    await wallet.record_insufficient_balance(MESSAGE)
    clock.advance(599)
    error = await paused_error(wallet)
    assert error.next_probe_at is not None and (error.next_probe_at - clock.now()).total_seconds() == 1
    clock.advance(1)
    outcomes = await asyncio.gather(*(wallet.before_submit() for _ in range(10)), return_exceptions=True)
    probes = [o for o in outcomes if isinstance(o, SubmitPermit)]
    assert len(probes) == 1 and probes[0].probe
    assert all(isinstance(o, SubmissionsPaused) for o in outcomes if o is not probes[0])
    assert (await wallet.state()).probe_in_flight
    assert not await wallet.record_success(SubmitPermit())  # an ordinary success resumes nothing
    assert await wallet.record_success(probes[0])
    assert not (await wallet.state()).paused
    assert await wallet.before_submit() == SubmitPermit(probe=False, epoch=1)


async def test_an_unused_probe_is_handed_back_for_the_next_request(
    wallet: WalletGuard, clock: ManualClock
) -> None:
    await wallet.record_insufficient_balance(MESSAGE)
    clock.advance(600)
    probe = await wallet.before_submit()
    assert probe.probe
    await paused_error(wallet)  # while it is out, nobody else probes
    assert await wallet.release_probe(probe)
    assert not await wallet.release_probe(probe)  # only once
    assert not await wallet.release_probe(SubmitPermit())  # an ordinary permit is no probe
    again = await wallet.before_submit()  # at once, not an interval later
    assert again.probe and again.epoch == probe.epoch


async def test_a_failed_probe_keeps_the_pause_and_restarts_the_interval(
    wallet: WalletGuard, clock: ManualClock
) -> None:
    await wallet.record_insufficient_balance(MESSAGE)
    clock.advance(600)
    probe = await wallet.before_submit()
    assert probe.probe
    clock.advance(30)
    assert not await wallet.record_insufficient_balance("Insufficient Balance again")
    state = await wallet.state()
    assert state.paused and state.last_probe_at == clock.now() and not state.probe_in_flight
    clock.advance(599)
    await paused_error(wallet)
    clock.advance(1)
    assert (await wallet.before_submit()).probe


async def test_an_old_probe_cannot_end_a_new_pause(wallet: WalletGuard, clock: ManualClock) -> None:
    await wallet.record_insufficient_balance(MESSAGE)
    clock.advance(600)
    old_probe = await wallet.before_submit()
    assert await wallet.resume("moderator 900")
    assert await wallet.record_insufficient_balance(MESSAGE)  # paused again: a new epoch
    assert not await wallet.record_success(old_probe)
    assert (await wallet.state()).paused


async def test_manual_resume_is_audited(db: object, wallet: WalletGuard, clock: ManualClock) -> None:
    assert not await wallet.resume("nobody")  # not paused
    await wallet.record_insufficient_balance(MESSAGE)
    assert await wallet.resume("moderator 900")
    assert not (await wallet.state()).paused
    await wallet.before_submit()
    quotas = QuotaService(db, make_settings(), clock)  # type: ignore[arg-type]
    actions = [(e.action, e.details) for e in await quotas.admin.audit(None)]
    assert actions == [("wallet.resume", {"by": "moderator 900"}), ("wallet.pause", {"reason": MESSAGE})]


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        WalletGuard(None, ManualClock(), 0)  # type: ignore[arg-type]
