"""The emulator's control API (HTTP and Python), its counters, its CLI hooks, and key hygiene."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from bot.clock import ManualClock
from bot.gateway.emulator import (
    GatewayEmulator,
    add_emulator_arguments,
    config_from_args,
    run_emulator,
)
from tests.gateway.test_emulator_support import HelperServer, get_status, make_config, submit


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def control(
    http: aiohttp.ClientSession, emu: GatewayEmulator, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, f"{emu.base_url}/_emulator{path}", json=body) as resp:
        return resp.status, await resp.json()


async def test_state_reports_balance_counts_and_rates(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config(fail_rate=0.25)) as emu:
        await submit(http, emu)
        await submit(http, emu, key=None)

        status, state = await control(http, emu, "GET", "/state")

        assert status == 200
        assert state["balance"] == "9.99" and state["price"] == "0.01"
        assert state["counts"]["submit"] == 2
        assert state["counts"]["submit:202"] == 1 and state["counts"]["submit:401"] == 1
        assert state["rates"]["fail_rate"] == 0.25
        assert state["base_url"] == emu.base_url


async def test_balance_route_sets_the_wallet(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        status, state = await control(http, emu, "POST", "/balance", {"balance": "1.23"})
        assert (status, state["balance"], emu.balance) == (200, "1.23", Decimal("1.23"))

        for bad in ({"balance": "lots"}, {"balance": -1}, {"balance": True}, {}, ["balance"]):
            status, body = await control(http, emu, "POST", "/balance", bad)
            assert status == 400 and set(body) == {"error", "message"}
        assert emu.balance == Decimal("1.23")

        await control(http, emu, "POST", "/balance", {"balance": 0})
        answer = await submit(http, emu)
        assert answer.status == 402
        assert answer.body == {
            "error": "Insufficient Balance",
            "message": "Insufficient balance. Required: $0.01",
        }


async def test_rates_route_sets_probabilities(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        status, state = await control(http, emu, "POST", "/rates", {"fail_rate": 1})
        assert status == 200 and state["rates"]["fail_rate"] == 1.0
        request_id = (await submit(http, emu)).body["request_id"]
        assert (await emu.wait_for_status(request_id)).status == "FAILED"

        assert (await control(http, emu, "POST", "/rates", {"explode_rate": 0.1}))[0] == 400
        assert (await control(http, emu, "POST", "/rates", {"error_rate": 1.5}))[0] == 400
        assert emu.config.error_rate == 0.0


async def test_script_route_queues_outcomes(http: aiohttp.ClientSession, clock: ManualClock) -> None:
    async with GatewayEmulator(make_config(clock)) as emu:
        script = {
            "submit": ["http_500", {"kind": "failed", "error": "scripted failure", "duration": 0}],
            "status": [{"kind": "http_429", "retry_after": 7}],
        }
        status, state = await control(http, emu, "POST", "/script", script)
        assert status == 200
        assert [o["kind"] for o in state["script"]["submit"]] == ["http_500", "failed"]

        assert (await submit(http, emu)).status == 500
        request_id = (await submit(http, emu)).body["request_id"]
        limited = await get_status(http, emu, request_id)
        job = await emu.wait_for_status(request_id)

        assert (limited.status, limited.headers["Retry-After"]) == (429, "7")
        assert (job.status, job.error) == ("FAILED", "scripted failure")


@pytest.mark.parametrize(
    "script",
    [
        {"submit": ["complete", "explode"]},
        {"status": ["failed"]},
        {"submit": [{"kind": "failed", "duration": "soon"}]},
        {"submit": [{"kind": "failed", "colour": "red"}]},
        {"submit": "complete"},
        {"later": ["complete"]},
    ],
)
async def test_script_route_rejects_bad_scripts_atomically(
    http: aiohttp.ClientSession, script: dict[str, Any]
) -> None:
    async with GatewayEmulator(make_config()) as emu:
        status, body = await control(http, emu, "POST", "/script", script)

        assert status == 400 and set(body) == {"error", "message"}
        assert emu.state()["script"] == {"submit": [], "status": []}


async def test_job_route_shows_timestamps_polls_and_billing(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    async with GatewayEmulator(make_config(clock)) as emu:
        emu.script_submit("complete")
        request_id = (await submit(http, emu, {"text": "inspect me"})).body["request_id"]
        await emu.wait_for_status(request_id, "PROCESSING")
        await get_status(http, emu, request_id)
        clock.advance(emu.jobs[request_id].duration)
        await emu.wait_for_status(request_id, "COMPLETED")
        await get_status(http, emu, request_id)

        status, job = await control(http, emu, "GET", f"/jobs/{request_id}")
        listed_status, listed = await control(http, emu, "GET", "/jobs")
        missing_status, missing = await control(http, emu, "GET", "/jobs/nope")

        assert status == 200
        assert job["status"] == "COMPLETED" and job["charged"] is True
        assert job["completed_mono"] == pytest.approx(emu.jobs[request_id].duration)
        assert job["status_polls"] == [[0.0, "PROCESSING"], [job["completed_mono"], "COMPLETED"]]
        assert job["created_at"].startswith("2026-01-01T12:00:00")
        assert job["started_at"] is not None and job["completed_at"] is not None
        assert job["media_bytes"] == len(emu.jobs[request_id].media_bytes or b"")
        assert listed_status == 200 and [j["request_id"] for j in listed["jobs"]] == [request_id]
        assert missing_status == 404 and set(missing) == {"error", "message"}


async def test_webhooks_route_lists_deliveries(http: aiohttp.ClientSession) -> None:
    async with HelperServer() as helper, GatewayEmulator(make_config()) as emu:
        await submit(http, emu, headers={"X-Webhook-URL": helper.hook_url})
        await emu.wait_until(lambda: len(emu.webhook_deliveries) == 1)

        status, body = await control(http, emu, "GET", "/webhooks")

        assert status == 200
        (delivery,) = body["deliveries"]
        assert delivery["http_status"] == 200 and delivery["body"]["status"] == "COMPLETED"


async def test_counts_cover_every_route_and_answer(http: aiohttp.ClientSession) -> None:
    async with GatewayEmulator(make_config()) as emu:
        request_id = (await submit(http, emu)).body["request_id"]
        await get_status(http, emu, request_id)
        await get_status(http, emu, "missing")
        await emu.wait_for_status(request_id)
        async with http.get(f"{emu.base_url}/_media/{request_id}.wav") as resp:
            await resp.read()
        await control(http, emu, "GET", "/state")

        assert {k: emu.counts[k] for k in ("submit", "submit:202", "status", "status:200", "status:404")} == {
            "submit": 1, "submit:202": 1, "status": 2, "status:200": 1, "status:404": 1,
        }
        assert emu.counts["media"] == 1 and emu.counts["media:200"] == 1
        assert emu.counts["control"] == 1 and emu.counts["control:200"] == 1


async def test_keys_never_reach_logs_or_the_control_api(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = ("sekrit-good-1234", "sekrit-wrong-5678", "sekrit-forbidden-9")
    config = make_config(api_keys=(secrets[0],), forbidden_keys=(secrets[2],), fail_rate=0.0)
    async with GatewayEmulator(config) as emu:
        request_id = (await submit(http, emu, key=secrets[0])).body["request_id"]
        assert (await submit(http, emu, key=secrets[1])).status == 401
        assert (await submit(http, emu, key=secrets[2])).status == 403
        await get_status(http, emu, request_id, key=secrets[0])
        job = await emu.wait_for_status(request_id)
        _, jobs = await control(http, emu, "GET", "/jobs")
        _, state = await control(http, emu, "GET", "/state")

    exposed = caplog.text + json.dumps(jobs) + json.dumps(state) + repr(job) + repr(emu.config)
    assert request_id in caplog.text, "the log does record the job"
    for secret in secrets:
        assert secret not in exposed


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatterbox-bot emulator")
    add_emulator_arguments(parser)
    return parser


def test_cli_options_all_have_help_and_say_the_audio_is_not_speech() -> None:
    parser = make_parser()

    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
    help_text = parser.format_help()
    assert "NON-SPEECH" in help_text
    for option in (
        "--host", "--port", "--key", "--balance", "--price", "--rate", "--workers", "--base-seconds",
        "--per-char-seconds", "--fail-rate", "--error-rate", "--http500-rate", "--drop-rate",
        "--slow-rate", "--allow-http-webhooks", "--seed",
    ):
        assert option in help_text


def test_cli_defaults_and_options_map_to_the_config() -> None:
    defaults = config_from_args(make_parser().parse_args([]))
    assert (defaults.port, defaults.api_keys, defaults.price) == (8765, ("emulator-key",), Decimal("0.01"))
    assert defaults.rate_per_second is None and defaults.allow_http_webhooks is False

    args = make_parser().parse_args([
        "--port", "0", "--key", "a", "--key", "b", "--balance", "2.50", "--price", "0.05",
        "--rate", "3", "--workers", "2", "--base-seconds", "0.5", "--per-char-seconds", "0.01",
        "--fail-rate", "0.1", "--error-rate", "0.2", "--http500-rate", "0.3", "--drop-rate", "0.4",
        "--slow-rate", "0.5", "--allow-http-webhooks", "--seed", "9",
    ])
    config = config_from_args(args)

    assert config.api_keys == ("a", "b") and config.balance == Decimal("2.50")
    assert (config.price, config.rate_per_second, config.workers) == (Decimal("0.05"), 3.0, 2)
    assert (config.base_seconds, config.per_char_seconds) == (0.5, 0.01)
    assert (config.fail_rate, config.error_rate, config.http500_rate) == (0.1, 0.2, 0.3)
    assert (config.drop_rate, config.slow_rate) == (0.4, 0.5)
    assert (config.allow_http_webhooks, config.seed) == (True, 9)


@pytest.mark.parametrize(
    "argv", [["--fail-rate", "1.5"], ["--balance", "-1"], ["--workers", "0"], ["--port", "70000"]]
)
def test_cli_rejects_bad_values(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        make_parser().parse_args(argv)


async def test_run_emulator_serves_until_cancelled(
    http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    args = make_parser().parse_args(
        ["--port", "0", "--key", "cli-key", "--base-seconds", "0", "--per-char-seconds", "0", "--seed", "1"]
    )
    started: asyncio.Future[GatewayEmulator] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_emulator(args, ready=started.set_result))
    emu = await asyncio.wait_for(started, 10)
    base_url = emu.base_url

    answer = await submit(http, emu, {"text": "Hello"}, key="cli-key")
    job = await emu.wait_for_status(answer.body["request_id"])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert answer.status == 202 and job.status == "COMPLETED"
    err = capsys.readouterr().err
    assert base_url in err and "cli-key" in err and "NON-SPEECH" in err
    assert (
        f"CHATTERBOX_GATEWAY_URL={base_url} CHATTERBOX_API_KEY=cli-key CHATTERBOX_ALLOW_HTTP=true "
        'chatterbox-bot speak "Hello" -o hello.wav'
    ) in err
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(base_url + "/_emulator/state") as resp:
            await resp.read()


def non_loopback_address() -> str | None:
    """This machine's outbound IPv4 address (a UDP connect sends nothing), if it has one."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if ipaddress.ip_address(address).is_loopback else address


async def test_control_api_answers_loopback_clients_only(http: aiohttp.ClientSession) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    async with GatewayEmulator(make_config(host="0.0.0.0")) as emu:
        port = emu.base_url.rsplit(":", 1)[1]
        outside = f"http://{address}:{port}"
        async with http.get(outside + "/_emulator/state") as resp:
            refused = (resp.status, await resp.json())
        headers = {"Ocp-Apim-Subscription-Key": emu.api_key}
        async with http.post(
            outside + "/chatterbox-text-to-speech/v1/chatterbox-text-to-speech-request",
            json={"text": "from outside"}, headers=headers,
        ) as resp:
            accepted = (resp.status, await resp.json())

        assert refused[0] == 403 and set(refused[1]) == {"error", "message"}
        assert accepted[0] == 202
        assert accepted[1]["polling_url"].startswith(outside + "/v2/requests/status/")
        assert emu.base_url.startswith("http://127.0.0.1:")
