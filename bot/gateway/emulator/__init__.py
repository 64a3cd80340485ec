"""A local emulator of the hosted Chatterbox TTS gateway, for tests and people.

A real aiohttp server on loopback with the provider's routes and documents (see the gateway
contract in DESIGN.md): API keys (401/403), a wallet (402 with the provider's body), a per-key
token-bucket rate limit (429 + ``Retry-After``), validation (400 naming the field), a queue
served by N worker tasks so QUEUED → PROCESSING → COMPLETED is observable, reference-clip
fetching, webhooks, and failure injection by seeded probability or by script.

Its audio is NOT speech: every completed job yields a 24 kHz mono 16-bit WAV of sine beeps
whose pitch follows the text (:mod:`bot.gateway.emulator.audio`), long in proportion to the text.

Pieces: documents, validation and timestamps in :mod:`bot.gateway.emulator.model`, the WAV in
:mod:`bot.gateway.emulator.audio`, webhook sending in :mod:`bot.gateway.emulator.webhooks`,
settings in :mod:`bot.gateway.emulator.config`, CLI options in :mod:`bot.gateway.emulator.cli`.

Design decisions:
- Standalone: it shares no code with the client (its own dataclasses in
  :mod:`bot.gateway.emulator.model`), so a misunderstanding of the contract cannot hide on
  both sides at once.
- Every duration, timestamp, backoff and ``Retry-After`` runs on the injected ``Clock``, so
  tests use ``ManualClock`` (exact control) or ``ScaledClock`` (fast real sockets) and read the
  emulator's own records (``jobs``, ``counts``, ``webhook_deliveries``) instead of wall time.
  :meth:`GatewayEmulator.wait_until` / :meth:`GatewayEmulator.wait_for_status` wake on state
  changes; their timeout (real seconds) only guards against a hung test.
- Random choices (faults, job outcomes, duration jitter, ids, webhook duplicates) come from
  separate ``random.Random`` streams seeded from ``seed``: the same sequence of submissions
  gives the same outcomes, however status polls interleave. A fixed number of draws is made per
  request, whatever the outcome.
- Scripted outcomes are consumed one per request, in order, before anything else is checked.
  A transport or HTTP outcome replaces the answer; a job outcome (complete/failed/error) decides
  how the job ends if the request is otherwise accepted. Random faults (``http500_rate``,
  ``drop_rate``, ``slow_rate``) apply to submissions and status polls alike.
- Order of checks on a submission, as at an API gateway: injected faults, key (401/403), rate
  limit (429), body and headers (400), wallet (402). The price is reserved at acceptance;
  COMPLETED and FAILED keep it, ERROR refunds it.
- A "dropped" connection is closed after the request was read and before any answer, so the
  client sees ``ServerDisconnectedError`` (``drop_after``: the job exists and is charged).
- Keys never reach a log, a job or the control API: only ``sha256:`` fingerprints.
  The control API (``/_emulator/…``) needs no key and answers loopback clients only.
"""

from bot.gateway.emulator.app import (
    EMULATOR_DESCRIPTION,
    EmulatorConfig,
    EmulatorJob,
    EmulatorWaitError,
    GatewayEmulator,
    Outcome,
    WebhookDelivery,
    add_emulator_arguments,
    config_from_args,
    run_emulator,
)

__all__ = [
    "EMULATOR_DESCRIPTION",
    "EmulatorConfig",
    "EmulatorJob",
    "EmulatorWaitError",
    "GatewayEmulator",
    "Outcome",
    "WebhookDelivery",
    "add_emulator_arguments",
    "config_from_args",
    "run_emulator",
]
