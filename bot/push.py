"""``PushHub``: the provider's webhook callbacks, from the HTTP route to the waiting job.

What happens to one part (``bot.gateway.push`` is the client's side of it):

1. ``issue()`` before its POST: a fresh token of 192 random bits (``secrets``); only its
   SHA-256 goes to ``push_callbacks`` (migration 0006). The URL
   ``{PUBLIC_BASE_URL}/callbacks/chatterbox/{token}`` goes to the provider in
   ``X-Webhook-URL``. A token is never logged (the web server's access log redacts it).
2. ``bind()`` after the 202: the row gets the ``request_id``.
3. ``receive(token, body)`` (``POST /callbacks/chatterbox/{token}``, answered within
   milliseconds): an unknown token is 404 and nothing else happens (looked up by its hash,
   then compared with ``hmac.compare_digest``); a body that is not a status document is 400;
   a document for another request than the token's is 404. Otherwise 200 at once. A terminal
   callback wakes the waiter when it waits in this process (nothing is written); otherwise
   the first one per token is recorded in the row after the answer, for whichever process
   waits on it. Duplicates and callbacks after the wait ended are acknowledged and ignored.
   A ``sync`` callback's non-terminal status only updates the waiter's progress (the card).
4. The waiter (``ChatterboxClient.wait``) then makes ONE status GET: the result is that
   GET's document, never the callback's; a callback's media URL is never fetched. If that
   GET shows the job still running (a forged or confused callback), the waiter stops
   listening to callbacks for this part and polls it on the ordinary plan, so a flood of
   callbacks costs at most one status GET.
5. ``settle()`` when the wait is over: later callbacks are ignored.

Several processes: a callback may reach a process that does not wait for that job. It is
recorded in ``push_callbacks`` all the same, and every process with waiters checks that table
every ``CHATTERBOX_PUSH_SWEEP_SECONDS`` for its own requests (one indexed query, only while it
has waiters). This is the interface a lease/owner scheme plugs into: whoever owns a request
calls ``watch(request_id)``; ``notify(request_id, status)`` wakes it in this process. With
PostgreSQL, ``LISTEN/NOTIFY`` could replace the sweep's latency; the table stays the record.

A callback that arrives before its ``bind`` (a very fast job) is kept with the request it
names (``early_request_id``); ``bind`` honours it only if the 202 named the same request.
Rows older than ``RETENTION`` are pruned by the sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
from collections import OrderedDict
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.gateway.errors import ProtocolError
from bot.gateway.models import JobStatus, StatusDocument, Webhook
from bot.gateway.push import IssuedWebhook, PushWatch
from bot.metrics import Metrics
from bot.store.database import Database
from bot.store.tables import push_callbacks
from bot.web import CALLBACK_PREFIX

log = logging.getLogger(__name__)

TOKEN_BYTES = 24  # 192 bits
RETENTION = timedelta(days=2)
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_RECENT_MAX = 10_000
_PRUNE_EVERY = 3600.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class PushHub:
    """Implements ``bot.gateway.push.PushChannel`` and ``bot.web.CallbackReceiver``."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        public_base_url: str,
        mode: str = "terminal",
        sweep_seconds: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        if mode not in ("terminal", "sync"):
            raise ValueError("mode is 'terminal' or 'sync'")
        self._db = db
        self._clock = clock
        self.base_url = public_base_url.rstrip("/")  # settable: tests learn their port after binding
        self.mode = mode
        self._sweep_seconds = sweep_seconds
        self._metrics = metrics
        self._watches: dict[str, PushWatch] = {}
        # request_ids whose terminal callback arrived here (or was found) before anyone watched.
        self._arrived: OrderedDict[str, None] = OrderedDict()
        # Tokens this process issued and whose wait is not over: hash -> request_id (None until
        # bound). A callback for one of them needs no database read (the hot path, and floods).
        self._local: dict[str, str | None] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"PushHub(base={self.base_url!r}, mode={self.mode!r}, waiting={len(self._watches)})"

    # --- the client's side (PushChannel) -----------------------------------------------------
    async def issue(self) -> IssuedWebhook | None:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        digest = token_hash(token)

        async def write(conn: AsyncConnection) -> None:
            row = {"token_hash": digest, "created_at": self._clock.now()}
            await conn.execute(push_callbacks.insert().values(**row))

        try:
            await self._db.write(write)
        except Exception as exc:  # push is an optimisation: this part is polled instead
            log.warning("could not store a webhook token (%s); the job is polled", type(exc).__name__)
            return None
        self._local[digest] = None
        url = f"{self.base_url}{CALLBACK_PREFIX}{token}"
        return IssuedWebhook(Webhook(url=url, mode=self.mode), handle=digest)  # type: ignore[arg-type]

    async def bind(self, issued: IssuedWebhook, request_id: str) -> None:
        async def write(conn: AsyncConnection) -> tuple[str | None, str | None]:
            row = (await conn.execute(
                select(push_callbacks.c.early_request_id, push_callbacks.c.callback_status)
                .where(push_callbacks.c.token_hash == issued.handle)
            )).first()
            await conn.execute(update(push_callbacks).where(push_callbacks.c.token_hash == issued.handle)
                               .values(request_id=request_id))
            return (row.early_request_id, row.callback_status) if row is not None else (None, None)

        early, status = await self._db.write(write)
        if issued.handle in self._local:
            self._local[issued.handle] = request_id
        if early is not None and early == request_id and _is_terminal(status):
            self.notify(request_id, JobStatus(status))

    def watch(self, request_id: str) -> PushWatch:
        watch = PushWatch(request_id)
        self._watches[request_id] = watch
        if request_id in self._arrived:
            del self._arrived[request_id]
            watch.event.set()
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.create_task(self._sweep(), name="push-sweeper")
        return watch

    def watching(self, request_id: str) -> bool:
        """True while a wait in this process listens for ``request_id``'s callback."""
        return request_id in self._watches

    def unwatch(self, watch: PushWatch) -> None:
        if self._watches.get(watch.request_id) is watch:
            del self._watches[watch.request_id]

    async def settle(self, request_id: str) -> None:
        for digest in [d for d, rid in self._local.items() if rid == request_id]:
            del self._local[digest]

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(update(push_callbacks).where(push_callbacks.c.request_id == request_id)
                               .values(settled_at=self._clock.now()))

        await self._db.write(write)

    def notify(self, request_id: str, status: JobStatus) -> None:
        """A terminal callback for ``request_id`` is known: wake its waiter in this process."""
        if not status.terminal:
            return
        watch = self._watches.get(request_id)
        if watch is not None:
            watch.event.set()
        else:
            _remember(self._arrived, request_id)

    # --- the HTTP side (CallbackReceiver) -------------------------------------------------------
    async def receive(self, token: str, body: bytes) -> int:
        if not _TOKEN_SHAPE.match(token):
            return self._outcome("unknown", 404)
        digest = token_hash(token)
        local = self._local.get(digest)
        if local is not None and local in self._watches:
            return self._receive_local(local, body)
        try:
            async with self._db.read() as conn:
                row = (await conn.execute(
                    select(push_callbacks).where(push_callbacks.c.token_hash == digest)
                )).first()
        except Exception as exc:
            log.warning("callback: database unreachable (%s)", type(exc).__name__)
            return self._outcome("error", 503)  # the provider retries; a safety poll covers it
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return self._outcome("unknown", 404)
        try:
            doc = StatusDocument.parse_json(body)
        except ProtocolError:
            return self._outcome("invalid", 400)
        bound = row.request_id
        if bound is not None and not hmac.compare_digest(doc.request_id, bound):
            return self._outcome("wrong_request", 404)
        if row.settled_at is not None:
            return self._outcome("late", 200)
        if not doc.status.terminal:
            watch = self._watches.get(doc.request_id) if bound is not None else None
            if watch is not None and self.mode == "sync":
                watch.progress = doc
                watch.progress_event.set()
            return self._outcome("progress", 200)
        watch = self._watches.get(bound) if bound is not None else None
        if watch is not None:  # waited on here: wake it; the database need not know
            if watch.event.is_set():
                return self._outcome("duplicate", 200)
            watch.event.set()
            return self._outcome("accepted", 200)
        if row.callback_at is not None:
            return self._outcome("duplicate", 200)
        _remember(self._arrived, bound if bound is not None else doc.request_id)
        self._after_answer(self._record(digest, doc, early=bound is None))
        return self._outcome("accepted", 200)

    def _receive_local(self, request_id: str, body: bytes) -> int:
        """A callback for a token this process issued and is waiting on (no database read)."""
        try:
            doc = StatusDocument.parse_json(body)
        except ProtocolError:
            return self._outcome("invalid", 400)
        if not hmac.compare_digest(doc.request_id, request_id):
            return self._outcome("wrong_request", 404)
        watch = self._watches.get(request_id)
        if watch is None:  # the wait ended meanwhile
            return self._outcome("late", 200)
        if not doc.status.terminal:
            if self.mode == "sync":
                watch.progress = doc
                watch.progress_event.set()
            return self._outcome("progress", 200)
        if watch.event.is_set():
            return self._outcome("duplicate", 200)
        watch.event.set()
        return self._outcome("accepted", 200)

    async def _record(self, digest: str, doc: StatusDocument, *, early: bool) -> None:
        values: dict[str, object] = {"callback_at": self._clock.now(), "callback_status": doc.status.value}
        if early:
            values["early_request_id"] = doc.request_id

        async def write(conn: AsyncConnection) -> None:
            first = (push_callbacks.c.token_hash == digest) & push_callbacks.c.callback_at.is_(None)
            await conn.execute(update(push_callbacks).where(first).values(**values))

        await self._db.write(write)

    def _after_answer(self, work: object) -> None:
        """Run ``work`` after the handler has answered (a task; errors are logged)."""
        async def run() -> None:
            try:
                await work  # type: ignore[misc]
            except Exception:
                log.warning("callback: could not record it; the safety poll will finish the job",
                            exc_info=True)

        task = asyncio.create_task(run(), name="push-record")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _outcome(self, outcome: str, status: int) -> int:
        if self._metrics is not None:
            self._metrics.callback(outcome)
        if outcome not in ("accepted", "progress", "duplicate"):
            log.info("callback refused or ignored: %s (HTTP %d)", outcome, status)
        return status

    # --- other processes' callbacks and housekeeping -------------------------------------------
    async def _sweep(self) -> None:
        last_prune = -_PRUNE_EVERY
        while not self._closed:
            await self._clock.sleep(self._sweep_seconds)
            try:
                if self._watches:
                    await self._pick_up()
                if self._clock.monotonic() - last_prune >= _PRUNE_EVERY:
                    last_prune = self._clock.monotonic()
                    await self._prune()
            except Exception as exc:
                log.warning("push sweep failed (%s)", type(exc).__name__)

    async def _pick_up(self) -> None:
        waiting = [rid for rid, w in self._watches.items() if not w.event.is_set()]
        for start in range(0, len(waiting), 500):
            chunk = waiting[start:start + 500]
            async with self._db.read() as conn:
                rows = (await conn.execute(
                    select(push_callbacks.c.request_id, push_callbacks.c.callback_status)
                    .where(push_callbacks.c.request_id.in_(chunk), push_callbacks.c.callback_at.is_not(None))
                )).all()
            for row in rows:
                if _is_terminal(row.callback_status):
                    self.notify(row.request_id, JobStatus(row.callback_status))

    async def _prune(self) -> None:
        cutoff = self._clock.now() - RETENTION

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(delete(push_callbacks).where(push_callbacks.c.created_at < cutoff))

        await self._db.write(write)

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (self._sweeper, *self._background) if t is not None]
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _is_terminal(status: str | None) -> bool:
    return status in {s.value for s in JobStatus if s.terminal}


def _remember(recent: OrderedDict[str, None], request_id: str) -> None:
    recent[request_id] = None
    recent.move_to_end(request_id)
    while len(recent) > _RECENT_MAX:
        recent.popitem(last=False)
