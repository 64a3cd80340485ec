"""Webhook callbacks from the gateway emulator.

The provider POSTs the status document to the job's ``X-Webhook-URL``: once at the final
status in ``terminal`` mode, on every status change and at the end in ``sync`` mode. Like a
real sender this one retries a failed delivery (non-2xx or network error) with exponential
backoff on the injected clock, and now and then (``duplicate_rate``, seeded) delivers the same
document twice, so receivers must be idempotent on ``request_id``.

Every attempt is recorded as a :class:`WebhookDelivery`. Deliveries of one job are sent in
order by the caller (one lock per job); this module sends a single document.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookDelivery:
    """One POST attempt to a webhook receiver."""

    request_id: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    attempt: int  # 1 for the first try of this document, counting retries and duplicates
    duplicate: bool  # a deliberate second delivery of a document already delivered
    http_status: int | None  # None when the request failed before an answer
    error: str | None
    sent_mono: float  # clock.monotonic() when the attempt was made

    @property
    def ok(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "url": self.url,
            "headers": self.headers,
            "body": self.body,
            "attempt": self.attempt,
            "duplicate": self.duplicate,
            "http_status": self.http_status,
            "error": self.error,
            "sent_mono": self.sent_mono,
        }


@dataclass(frozen=True)
class WebhookPolicy:
    max_attempts: int
    backoff_seconds: float
    timeout_seconds: float
    duplicate_rate: float


class WebhookSender:
    """Sends status documents to webhook URLs with retries and occasional duplicates."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        clock: Clock,
        rng: random.Random,
        policy: Callable[[], WebhookPolicy],
        counts: Counter[str],
        record: Callable[[WebhookDelivery], None],
    ) -> None:
        self._session = session
        self._clock = clock
        self._rng = rng
        self._policy = policy
        self._counts = counts
        self._record = record

    async def deliver(self, url: str, mode: str, document: dict[str, Any]) -> bool:
        """POST ``document`` until a 2xx or the attempts run out; True when delivered."""
        policy = self._policy()
        attempt = 0
        for attempt in range(1, policy.max_attempts + 1):
            if await self._post(url, mode, document, attempt, duplicate=False, policy=policy):
                break
            if attempt < policy.max_attempts:
                # Recording and going to sleep happen without an await in between, so a test
                # that wakes on the recorded attempt finds this sleep already registered.
                await self._clock.sleep(policy.backoff_seconds * 2 ** (attempt - 1))
        else:
            log.info("webhook for %s not delivered after %d attempts", document["request_id"], attempt)
            return False
        if self._rng.random() < policy.duplicate_rate:
            await self._post(url, mode, document, attempt + 1, duplicate=True, policy=policy)
        return True

    async def _post(
        self, url: str, mode: str, document: dict[str, Any], attempt: int, *, duplicate: bool,
        policy: WebhookPolicy,
    ) -> bool:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "chatterbox-gateway-emulator",
            "X-Request-Id": document["request_id"],
            "X-Webhook-Mode": mode,
            "X-Webhook-Attempt": str(attempt),
        }
        payload = json.dumps(document).encode()
        sent = self._clock.monotonic()
        status: int | None = None
        error: str | None = None
        self._counts["webhook"] += 1
        try:
            async with self._session.post(
                url, data=payload, headers=headers,
                timeout=aiohttp.ClientTimeout(total=policy.timeout_seconds),
            ) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        self._counts[f"webhook:{status if status is not None else 'error'}"] += 1
        delivery = WebhookDelivery(
            request_id=document["request_id"], url=url, headers=headers, body=document,
            attempt=attempt, duplicate=duplicate, http_status=status, error=error, sent_mono=sent,
        )
        self._record(delivery)
        return delivery.ok
