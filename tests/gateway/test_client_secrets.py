"""The API key never appears in logs, reprs or error text, on any error path (DESIGN rule 5)."""

from __future__ import annotations

import logging
import random
from decimal import Decimal

import aiohttp
import pytest
from pydantic import SecretStr

from bot.clock import ScaledClock
from bot.gateway import ChatterboxClient, GatewayError, ObservedDurations, TTSRequest, Webhook
from bot.gateway.emulator import GatewayEmulator, Outcome
from tests.gateway.client_support import MediaServer, closed_port_base_url
from tests.gateway.conftest import emulator_config

CANARY = "sk-CANARY-7f3a9c1e5d"
WRONG_CANARY = "sk-WRONGCANARY-0b2d4f"


async def test_the_key_is_absent_from_logs_reprs_and_errors(
    session: aiohttp.ClientSession, scaled_clock: ScaledClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[GatewayError] = []

    async def expect_error(call: object) -> None:
        try:
            await call  # type: ignore[misc]
        except GatewayError as exc:
            errors.append(exc)
        else:
            raise AssertionError("expected a GatewayError")

    config = emulator_config(scaled_clock, api_keys=(CANARY,), forbidden_keys=("forbidden-key",))
    async with GatewayEmulator(config) as emulator, MediaServer() as media:

        def client_with(key: str, **overrides: object) -> ChatterboxClient:
            options: dict[str, object] = {
                "base_url": emulator.base_url, "api_key": SecretStr(key), "clock": scaled_clock,
                "allow_http": True, "rng": random.Random(1), "get_retries": 1,
                "durations": ObservedDurations(prior_low=0.5, prior_high=5.0),
            }
            options.update(overrides)
            return ChatterboxClient(session, **options)  # type: ignore[arg-type]

        client = client_with(CANARY)
        hello = TTSRequest(text="Hello there.")

        # a successful round trip logs at DEBUG too
        assert await client.synthesize(hello, max_wait=30, max_bytes=10_000_000)

        # every submit error path
        await expect_error(client_with(WRONG_CANARY).submit(hello))  # 401
        await expect_error(client_with("forbidden-key").submit(hello))  # 403
        for outcome in ("http_400", "http_500", "drop_before", "drop_after"):
            emulator.script_submit(outcome)
            await expect_error(client.submit(hello))
        emulator.script_submit(*[Outcome("http_429", retry_after=1)] * 3)  # a 429 is retried twice
        await expect_error(client.submit(hello))
        emulator.script_submit("slow")
        await expect_error(client_with(CANARY, http_timeout=0.1).submit(hello))  # timeout after sending
        await expect_error(client_with(CANARY, base_url=await closed_port_base_url()).submit(hello))
        emulator.set_balance(Decimal("0"))
        await expect_error(client.submit(hello))  # 402
        emulator.set_balance(Decimal("10"))
        await expect_error(client.submit(TTSRequest(text=" ")))  # validation
        await expect_error(client.submit(hello, webhook=Webhook(url="http://hooks.example/x")))

        # job outcomes and polling errors
        for kind in ("failed", "error"):
            emulator.script_submit(Outcome(kind, duration=0.5, error=f"job went wrong ({kind})"))
            accepted = await client.submit(hello)
            await expect_error(client.wait(accepted.request_id, text_chars=12, max_wait=30))
        emulator.script_submit(Outcome("complete", duration=500))
        accepted = await client.submit(hello)
        await expect_error(client.wait(accepted.request_id, text_chars=12, max_wait=1))  # timeout
        emulator.script_status("http_500", "http_500")
        await expect_error(client.status(accepted.request_id))
        closed = await closed_port_base_url()
        await expect_error(client_with(CANARY, base_url=closed).status(accepted.request_id))
        emulator.script_status(Outcome("http_429", retry_after=500))
        await expect_error(client.status(accepted.request_id))
        await expect_error(client_with(WRONG_CANARY).status(accepted.request_id))
        await expect_error(client.status("unknown-id"))

        # downloads, including the gateway's own origin (where the key is sent)
        await expect_error(client.download(media.url("/html"), max_bytes=1000))
        await expect_error(client.download(media.url("/chunked"), max_bytes=1000))
        await expect_error(client.download(media.url("/missing"), max_bytes=1000))
        await expect_error(client.download(emulator.base_url + "/_media/none.wav", max_bytes=1000))

        reprs = [repr(client), repr(client_with(WRONG_CANARY)), repr(client.durations)]

    assert len(errors) == 24
    assert {type(e).__name__ for e in errors} >= {
        "Unauthorized", "Forbidden", "BadRequest", "ServerError", "GatewayUnreachable", "RateLimited",
        "InsufficientBalance", "InvalidTTSRequest", "JobFailed", "JobErrored", "WaitTimeout",
        "ProtocolError", "DownloadError",
    }
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = [formatter.format(record) for record in caplog.records]  # includes tracebacks
    texts += [str(record.args) for record in caplog.records]
    for error in errors:
        texts += [str(error), repr(error), error.user_message, error.message]
        cause = error.__cause__ or error.__context__
        if cause is not None:
            texts += [str(cause), repr(cause)]
    texts += reprs
    assert any("DEBUG" in text for text in texts)  # the capture really ran at DEBUG
    for secret in (CANARY, WRONG_CANARY):
        leaks = [text for text in texts if secret in text]
        assert leaks == [], f"key leaked: {leaks[:3]}"
