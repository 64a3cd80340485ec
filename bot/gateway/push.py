"""The client's side of push delivery: what ``ChatterboxClient`` needs from a webhook receiver.

The receiver itself (tokens in the database, the HTTP route, other processes) is
``bot.push.PushHub``; the client only sees this protocol, so ``bot.gateway`` stays free of
the database and the web server, and tests can plug in their own.

- ``issue()`` before a POST: a fresh webhook URL (with its secret token) and an opaque
  handle, without waiting for storage. ``None`` when a channel cannot push this part (then
  the job is polled; push is an optimisation, never a reason to fail a submission).
- ``bind(handle, request_id)`` after the 202: the token now belongs to that request (the
  receiver stores it then); ``forget(handle)`` when the POST was not accepted.
- ``watch(request_id)`` while waiting: a ``PushWatch`` whose ``event`` is set when a terminal
  callback for the request arrived (here or in another process), and whose ``progress``
  holds the last non-terminal document a ``sync`` callback brought (display only: a
  callback is never trusted for a result, the client confirms with a status GET).
- ``settle(request_id)`` when the wait is over: later callbacks are ignored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from bot.gateway.models import StatusDocument, Webhook


@dataclass(frozen=True)
class IssuedWebhook:
    webhook: Webhook
    handle: str  # opaque to the client (the token's hash)


@dataclass(eq=False)
class PushWatch:
    request_id: str
    event: asyncio.Event = field(default_factory=asyncio.Event)
    progress: StatusDocument | None = None
    progress_event: asyncio.Event = field(default_factory=asyncio.Event)


class PushChannel(Protocol):
    async def issue(self) -> IssuedWebhook | None: ...

    async def bind(self, issued: IssuedWebhook, request_id: str) -> None: ...

    def forget(self, issued: IssuedWebhook) -> None: ...

    def watch(self, request_id: str) -> PushWatch: ...

    def unwatch(self, watch: PushWatch) -> None: ...

    async def settle(self, request_id: str) -> None: ...
