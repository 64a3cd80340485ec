"""What the client sends: headers, webhook headers (https only), and validation before any call."""

from __future__ import annotations

import math

import aiohttp
import pytest
from pydantic import SecretStr

from bot.clock import ScaledClock
from bot.config import load_settings
from bot.gateway import ChatterboxClient, InvalidTTSRequest, TTSParams, TTSRequest, Webhook
from bot.gateway.emulator import GatewayEmulator
from tests.gateway.conftest import ClientFactory

HELLO = TTSRequest(text="Hello there.")


async def test_submit_sends_the_contract_headers_and_no_webhook_by_default(
    client: ChatterboxClient, emulator: GatewayEmulator
) -> None:
    accepted = await client.submit(HELLO)
    headers = emulator.jobs[accepted.request_id].request_headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-cache"
    assert "Ocp-Apim-Subscription-Key" in headers  # the emulator keeps a fingerprint, not the key
    assert "X-Webhook-URL" not in headers and "X-Webhook-Mode" not in headers


@pytest.mark.parametrize("mode", ["terminal", "sync"])
async def test_https_webhook_is_sent_with_its_mode(
    client: ChatterboxClient, emulator: GatewayEmulator, mode: str
) -> None:
    webhook = Webhook(url="https://127.0.0.1:9/hooks/tts?secret=abc", mode=mode)
    accepted = await client.submit(HELLO, webhook=webhook)
    job = emulator.jobs[accepted.request_id]
    assert job.request_headers["X-Webhook-URL"] == webhook.url
    assert job.request_headers["X-Webhook-Mode"] == mode
    assert (job.webhook_url, job.webhook_mode) == (webhook.url, mode)


@pytest.mark.parametrize("url", ["http://hooks.example/tts", "ftp://hooks.example/x", "https://", "nonsense"])
async def test_non_https_webhook_is_refused_before_any_call(
    client: ChatterboxClient, emulator: GatewayEmulator, url: str
) -> None:
    with pytest.raises(InvalidTTSRequest) as caught:
        await client.submit(HELLO, webhook=Webhook(url=url))
    assert caught.value.field == "webhook" and caught.value.refund is True
    assert "https://" in caught.value.user_message
    assert emulator.counts["submit"] == 0


async def test_plain_http_loopback_webhook_only_with_allow_http(
    make_client: ClientFactory, emulator: GatewayEmulator
) -> None:
    hook = Webhook(url="http://127.0.0.1:9/hook", mode="terminal")
    accepted = await make_client(allow_http=True).submit(HELLO, webhook=hook)
    assert emulator.jobs[accepted.request_id].request_headers["X-Webhook-URL"] == hook.url
    with pytest.raises(InvalidTTSRequest):
        await make_client(allow_http=True).submit(HELLO, webhook=Webhook(url="http://hooks.example/x"))


# --- validation (no network: a gateway that does not exist would fail differently) --------


@pytest.fixture
def offline(session: aiohttp.ClientSession, scaled_clock: ScaledClock) -> ChatterboxClient:
    return ChatterboxClient(session, base_url="https://gateway.invalid", api_key=SecretStr("k"),
                            clock=scaled_clock, max_text_chars=50)


@pytest.mark.parametrize(
    ("request_", "field", "message"),
    [
        (TTSRequest(text=""), "text", "The text is empty; write something to speak."),
        (TTSRequest(text=" \n\t "), "text", "The text is empty; write something to speak."),
        (TTSRequest(text="x" * 51), "text", "text must be at most 50 characters (got 51)."),
        (TTSRequest(text="hi", exaggeration=1.01), "exaggeration",
         "`exaggeration` must be between 0 and 1 (got 1.01)."),
        (TTSRequest(text="hi", exaggeration=-0.1), "exaggeration",
         "`exaggeration` must be between 0 and 1 (got -0.1)."),
        (TTSRequest(text="hi", temperature=0.05), "temperature",
         "`temperature` must be between 0.1 and 1 (got 0.05)."),
        (TTSRequest(text="hi", cfg=2.5), "cfg", "`cfg` must be between 0 and 2 (got 2.5)."),
        (TTSRequest(text="hi", cfg=math.nan), "cfg", "`cfg` must be between 0 and 2 (got nan)."),
        (TTSRequest(text="hi", audio_url="ftp://x/voice.wav"), "audio_url",
         "audio_url (the voice clip) must be an https:// link."),
        (TTSRequest(text="hi", audio_url="http://x/voice.wav"), "audio_url",
         "audio_url (the voice clip) must be an https:// link."),
        (TTSRequest(text="hi", audio_url="javascript:alert(1)"), "audio_url",
         "audio_url (the voice clip) must be an https:// link."),
    ],
)
async def test_validation_names_the_field_and_range_before_any_call(
    offline: ChatterboxClient, request_: TTSRequest, field: str, message: str
) -> None:
    with pytest.raises(InvalidTTSRequest) as caught:
        offline.validate(request_)
    assert (caught.value.field, caught.value.user_message, caught.value.refund) == (field, message, True)
    with pytest.raises(InvalidTTSRequest):  # submit validates first: no DNS error for gateway.invalid
        await offline.submit(request_)
    with pytest.raises(InvalidTTSRequest):
        await offline.synthesize(request_, max_wait=1, max_bytes=1)


async def test_boundaries_are_valid_and_text_is_stripped(offline: ChatterboxClient) -> None:
    for params in (TTSParams(exaggeration=0.0, temperature=0.1, cfg=0.0),
                   TTSParams(exaggeration=1.0, temperature=1.0, cfg=2.0)):
        request = offline.validate(TTSRequest(text="  " + "x" * 50 + "  ", audio_url=" https://x/v.wav ",
                                              params=params))
        assert request.text == "x" * 50 and request.audio_url == "https://x/v.wav"
        assert request.params == params
    assert offline.validate(TTSRequest(text="hi", audio_url="  ")).audio_url is None


async def test_plain_http_audio_url_only_with_allow_http(
    session: aiohttp.ClientSession, scaled_clock: ScaledClock
) -> None:
    client = ChatterboxClient(session, base_url="http://127.0.0.1:1", api_key=SecretStr("k"),
                              clock=scaled_clock, allow_http=True)
    assert client.validate(TTSRequest(text="hi", audio_url="http://127.0.0.1:2/v.wav")).audio_url
    with pytest.raises(InvalidTTSRequest, match="http:// or https://"):
        client.validate(TTSRequest(text="hi", audio_url="file:///etc/passwd"))


async def test_plain_http_gateway_needs_allow_http(
    session: aiohttp.ClientSession, scaled_clock: ScaledClock
) -> None:
    with pytest.raises(ValueError, match="https://"):
        ChatterboxClient(session, base_url="http://gateway.example", api_key=SecretStr("k"),
                         clock=scaled_clock)


async def test_from_settings(session: aiohttp.ClientSession, scaled_clock: ScaledClock) -> None:
    settings = load_settings(chatterbox_api_key="settings-key", chatterbox_max_text_chars=7,
                             chatterbox_gateway_url="https://gw.example/")
    client = ChatterboxClient.from_settings(session, settings, scaled_clock)
    assert client.base_url == "https://gw.example" and client.max_text_chars == 7
    assert "settings-key" not in repr(client)
    with pytest.raises(InvalidTTSRequest):
        client.validate(TTSRequest(text="eight ch"))
