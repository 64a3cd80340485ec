"""The error types: refund flags per DESIGN rule 3, user messages, reprs."""

from __future__ import annotations

import aiohttp
import pytest
from pydantic import SecretStr

from bot.clock import ScaledClock
from bot.gateway import (
    BadRequest,
    ChatterboxClient,
    DownloadError,
    Forbidden,
    GatewayError,
    GatewayUnreachable,
    InsufficientBalance,
    InvalidTTSRequest,
    JobErrored,
    JobFailed,
    ProtocolError,
    RateLimited,
    ServerError,
    TTSRequest,
    Unauthorized,
    WaitTimeout,
)
from tests.gateway.client_support import MediaServer


@pytest.mark.parametrize(
    ("error", "refund"),
    [
        (BadRequest("x"), True),
        (Unauthorized("x"), True),
        (InsufficientBalance("x"), True),
        (Forbidden("x"), True),
        (RateLimited("x"), True),
        (InvalidTTSRequest("text", "The text is empty."), True),
        (JobErrored("x"), True),
        (GatewayUnreachable("x", may_have_reached=False), True),
        (GatewayUnreachable("x", may_have_reached=True), False),
        (ServerError("x"), False),
        (JobFailed("x"), False),
        (WaitTimeout("x"), False),
        (ProtocolError("x"), False),
        (DownloadError("x", reason="too_big"), False),
    ],
)
def test_refund_follows_design_rule_3(error: GatewayError, refund: bool) -> None:
    assert error.refund is refund
    assert error.user_message and len(error.user_message) < 120
    assert "Traceback" not in error.user_message and type(error).__name__ in repr(error)


def test_rate_limited_message_says_when_to_come_back() -> None:
    assert "a moment" in RateLimited("x").user_message
    assert "about 30 seconds" in RateLimited("x", retry_after=30).user_message
    assert "about 5 minutes" in RateLimited("x", retry_after=300).user_message
    assert RateLimited("x", retry_after=5, user_message="custom").user_message == "custom"


def test_the_refund_flag_can_be_overridden_for_an_accepted_job() -> None:
    assert Unauthorized("x", refund=False).refund is False
    assert GatewayUnreachable("x", may_have_reached=False, refund=False).refund is False


async def test_a_garbled_202_is_a_protocol_error_not_refunded(
    session: aiohttp.ClientSession, scaled_clock: ScaledClock
) -> None:
    async with MediaServer() as gateway:
        client = ChatterboxClient(session, base_url=gateway.base_url, api_key=SecretStr("k"),
                                  clock=scaled_clock, allow_http=True)
        with pytest.raises(ProtocolError) as caught:
            await client.submit(TTSRequest(text="hello"))
    assert caught.value.refund is False  # it was accepted: the job may exist
    assert len(gateway.headers_seen) == 1
