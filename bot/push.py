"""``PushHub``: the provider's webhook callbacks, from the HTTP route to the waiting job.

What happens to one part (``bot.gateway.push`` is the client's side of it):

1. ``issue()`` before its POST: a fresh token of 192 random bits (``secrets``), kept in this
   process only; nothing is written, so a submission never waits for the database. The URL
   ``{PUBLIC_BASE_URL}/callbacks/chatterbox/{token}`` goes to the provider in
   ``X-Webhook-URL``. A token is never logged (the web server's access log redacts it).
2. ``bind()`` after the 202: this process maps the token to the ``request_id`` at once (its
   callbacks need no database read from then on, and one that came before the 202 was handled
   is honoured if it names the same request); right after, one row with the token's SHA-256
   and the ``request_id`` goes to ``push_callbacks`` (migration 0006), batched with other
   parts' rows (``_GroupCommit``). Only accepted POSTs get a row.
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
recorded in ``push_callbacks`` all the same. On PostgreSQL the recording process then sends
``NOTIFY`` (``pg_notify``, payload ``"{request_id} {status}"``) on a channel named after the
database schema (``notify_channel``; tests sharing a server in separate schemas do not hear
each other), and every process with waiters ``LISTEN``s on it over one connection of its own,
so the owner wakes at once. Whatever the database, every process with waiters also checks
the table every ``CHATTERBOX_PUSH_SWEEP_SECONDS`` for its own requests (one indexed query,
only while it has waiters): on SQLite that is the only way, on PostgreSQL it covers a
notification lost while the listening connection was down (the sweeper reopens it). This is
the interface a lease/owner scheme plugs into: whoever owns a request calls
``watch(request_id)``; ``notify(request_id, status)`` wakes it in this process. A
notification never carries a result: the woken waiter confirms with its status GET.

A callback that arrives before its ``bind`` (a very fast job) is kept in memory when this
process issued the token and counts only if the 202 named the same request. Another process
knows a token only once its row is written (milliseconds after the 202): a callback that
reaches it sooner is answered 404, which a provider retries (the emulator does); if it does
not, the safety poll finishes the job. (Rows written by earlier versions before their 202
may lack the request id; a callback for one is kept in ``early_request_id``.) A token whose
POST failed is forgotten (``forget``) and never written. Rows older than ``RETENTION`` are
pruned by the sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
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


def notify_channel(schema: str | None) -> str:
    """The PostgreSQL NOTIFY channel of the bots sharing one schema (a plain identifier)."""
    return "chatterbox_push_" + hashlib.sha256((schema or "").encode()).hexdigest()[:16]


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
        # Terminal callbacks for tokens issued here that came before their 202 was recorded.
        self._early: dict[str, StatusDocument] = {}
        # The last ``sync`` progress document for a wait that has not started yet (by token
        # hash before the 202 is handled, by request id after).
        self._early_progress: dict[str, StatusDocument] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._writes = _GroupCommit(db)
        self._sweeper: asyncio.Task[None] | None = None
        self._channel = notify_channel(db.schema)
        # PostgreSQL: the LISTENing connection, and asyncpg's connection under it.
        self._listener: tuple[AsyncConnection, Any] | None = None
        self.listening = asyncio.Event()  # set while that LISTEN is up (tests wait for it)
        self._closed = False

    def __repr__(self) -> str:
        return f"PushHub(base={self.base_url!r}, mode={self.mode!r}, waiting={len(self._watches)})"

    # --- the client's side (PushChannel) -----------------------------------------------------
    async def issue(self) -> IssuedWebhook | None:
        """A fresh token for one POST. Nothing is written yet: only an accepted POST gets a
        row (``bind``), so a submission never waits for the database, and a refused one
        leaves nothing behind."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        digest = token_hash(token)
        self._local[digest] = None
        url = f"{self.base_url}{CALLBACK_PREFIX}{token}"
        return IssuedWebhook(Webhook(url=url, mode=self.mode), handle=digest)  # type: ignore[arg-type]

    async def bind(self, issued: IssuedWebhook, request_id: str) -> None:
        """The 202 named ``request_id``: this process knows it at once (callbacks for it are
        handled without the database from now on); the row is written right after, for
        callbacks that reach another process."""
        digest = issued.handle
        self._local[digest] = request_id
        early = self._early.pop(digest, None)
        if early is not None and hmac.compare_digest(early.request_id, request_id):
            self.notify(request_id, early.status)
        progress = self._early_progress.pop(digest, None)
        if progress is not None and hmac.compare_digest(progress.request_id, request_id):
            self._early_progress[request_id] = progress
        self._after_answer(self._writes.run(_INSERT, {
            "token_hash": digest, "request_id": request_id, "created_at": self._clock.now(),
        }))

    def forget(self, issued: IssuedWebhook) -> None:
        """The POST carrying this token was not accepted: nothing will call back."""
        self._local.pop(issued.handle, None)
        self._early.pop(issued.handle, None)
        self._early_progress.pop(issued.handle, None)

    def watch(self, request_id: str) -> PushWatch:
        watch = PushWatch(request_id)
        self._watches[request_id] = watch
        if request_id in self._arrived:
            del self._arrived[request_id]
            watch.event.set()
        progress = self._early_progress.pop(request_id, None)
        if progress is not None:
            watch.progress = progress
            watch.progress_event.set()
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.create_task(self._sweep(), name="push-sweeper")
        return watch

    @property
    def open_tokens(self) -> int:
        """Tokens issued here whose wait is not over (a gauge of work, and a leak check)."""
        return len(self._local)

    def watching(self, request_id: str) -> bool:
        """True while a wait in this process listens for ``request_id``'s callback."""
        return request_id in self._watches

    def unwatch(self, watch: PushWatch) -> None:
        if self._watches.get(watch.request_id) is watch:
            del self._watches[watch.request_id]

    async def settle(self, request_id: str) -> None:
        """The wait is over: forget the tokens here, and mark them settled after returning (the
        caller is about to fetch the audio; a lost mark only lets a late callback be recorded)."""
        for digest in [d for d, rid in self._local.items() if rid == request_id]:
            del self._local[digest]
            self._early.pop(digest, None)
            self._early_progress.pop(digest, None)
        self._early_progress.pop(request_id, None)
        self._after_answer(self._mark_settled(request_id))

    async def _mark_settled(self, request_id: str) -> None:
        await self._writes.run(_SETTLE, {"b_request": request_id, "b_at": self._clock.now()})

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
        if digest in self._local:  # issued here, wait not over: no database needed
            return self._receive_local(digest, body)
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
        owner_request = bound if bound is not None else doc.request_id
        if owner_request in self._arrived:  # already being recorded (and notified) from here
            return self._outcome("duplicate", 200)
        _remember(self._arrived, owner_request)
        self._after_answer(self._record(digest, doc, early=bound is None, request_id=owner_request))
        return self._outcome("accepted", 200)

    def _receive_local(self, digest: str, body: bytes) -> int:
        """A callback for a token this process issued and whose wait is not over."""
        try:
            doc = StatusDocument.parse_json(body)
        except ProtocolError:
            return self._outcome("invalid", 400)
        request_id = self._local.get(digest)
        if request_id is None:  # before the 202 was handled: keep it for ``bind``
            if doc.status.terminal and digest not in self._early:
                self._early[digest] = doc
            elif not doc.status.terminal and self.mode == "sync":
                self._early_progress[digest] = doc
            return self._outcome("accepted" if doc.status.terminal else "progress", 200)
        if not hmac.compare_digest(doc.request_id, request_id):
            return self._outcome("wrong_request", 404)
        watch = self._watches.get(request_id)
        if not doc.status.terminal:
            if self.mode == "sync":
                if watch is not None:
                    watch.progress = doc
                    watch.progress_event.set()
                else:
                    self._early_progress[request_id] = doc
            return self._outcome("progress", 200)
        if watch is None:  # between the 202 and the wait: ``watch`` will find it
            if request_id in self._arrived:
                return self._outcome("duplicate", 200)
            _remember(self._arrived, request_id)
            return self._outcome("accepted", 200)
        if watch.event.is_set():
            return self._outcome("duplicate", 200)
        watch.event.set()
        return self._outcome("accepted", 200)

    async def _record(self, digest: str, doc: StatusDocument, *, early: bool, request_id: str) -> None:
        try:
            await self._writes.run(_RECORD, {
                "b_hash": digest, "b_at": self._clock.now(), "b_status": doc.status.value,
                "b_early": doc.request_id if early else None,
            })
        except Exception:
            self._arrived.pop(request_id, None)  # not recorded: the provider's retry may record it
            raise
        if self._db.dialect == "postgresql":  # wake the owner now (after the record committed)
            payload = f"{request_id} {doc.status.value}"

            async def send(conn: AsyncConnection) -> None:
                await conn.execute(select(func.pg_notify(self._channel, payload)))

            await self._db.write(send)

    def _after_answer(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after the caller has its answer (a task; errors are logged)."""
        async def run() -> None:
            try:
                await work
            except Exception:
                log.warning("push bookkeeping failed; a safety poll covers the job", exc_info=True)

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
        await self._ensure_listening()
        while not self._closed:
            await self._clock.sleep(self._sweep_seconds)
            try:
                await self._ensure_listening()
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

    async def _ensure_listening(self) -> None:
        """PostgreSQL: LISTEN on this schema's channel over a connection of our own (reopened
        when it was lost; a failure is logged and tried again at the next sweep)."""
        if self._db.dialect != "postgresql" or self._closed:
            return
        if self._listener is not None:
            if not self._listener[1].is_closed():
                return
            log.warning("push: the LISTEN connection was lost; reopening it")
            await self._close_listener()
        conn: AsyncConnection | None = None
        try:
            conn = await self._db.engine.connect()
            driver: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's
            await driver.add_listener(self._channel, self._on_notification)
        except Exception as exc:
            log.warning("push: could not LISTEN for other processes' callbacks (%s); the sweep "
                        "covers them", type(exc).__name__)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            return
        self._listener = (conn, driver)
        self.listening.set()

    def _on_notification(self, connection: object, pid: int, channel: str, payload: str) -> None:
        request_id, _, status = payload.partition(" ")
        if request_id in self._watches and _is_terminal(status):
            self.notify(request_id, JobStatus(status))

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        self.listening.clear()
        if listener is not None:
            conn, driver = listener
            with contextlib.suppress(Exception):
                await driver.remove_listener(self._channel, self._on_notification)
            with contextlib.suppress(Exception):
                await conn.close()

    async def _prune(self) -> None:
        cutoff = self._clock.now() - RETENTION

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(delete(push_callbacks).where(push_callbacks.c.created_at < cutoff))

        await self._db.write(write)

    async def idle(self) -> None:
        """Wait for the bookkeeping started so far (records, settle marks) to be written."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (self._sweeper, *self._background) if t is not None]
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._close_listener()


# The writes of the hub, each one statement run with many parameter sets at once.
_INSERT = push_callbacks.insert()
_SETTLE = (update(push_callbacks).where(push_callbacks.c.request_id == bindparam("b_request"))
           .values(settled_at=bindparam("b_at")))
_RECORD = (update(push_callbacks)
           .where(push_callbacks.c.token_hash == bindparam("b_hash"), push_callbacks.c.callback_at.is_(None))
           .values(callback_at=bindparam("b_at"), callback_status=bindparam("b_status"),
                   early_request_id=func.coalesce(bindparam("b_early"), push_callbacks.c.early_request_id)))
# Within one transaction the kinds run in this order: a row's insert before anything that
# updates it, whatever order they were queued in.
_ORDER = {id(_INSERT): 0, id(_RECORD): 1, id(_SETTLE): 2}


class _GroupCommit:
    """Writes of many waiting callers in one transaction (one SQLite commit, one lock).

    A burst of submissions issues a token each; one transaction (or even one statement) per
    token would queue them behind SQLite's single write lock and the driver's thread. Here
    the first caller starts a transaction with every write queued so far, each kind of
    statement executed once with all its parameter sets (``executemany``); writes queued
    meanwhile go in the next one. A failed transaction fails each write in it (their callers
    fall back to polling). Kinds run in a fixed order (``_ORDER``: insert, record, settle), so
    a row queued for insert in the same batch as its settle mark exists when it is marked.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[tuple[Any, dict[str, Any], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def run(self, statement: Any, params: dict[str, Any]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((statement, params, done))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="push-writes")
        await asyncio.shield(done)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                grouped: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
                for statement, params, _ in batch:
                    grouped.setdefault(id(statement), (statement, []))[1].append(params)

                groups = sorted(grouped.items(), key=lambda item: _ORDER.get(item[0], len(_ORDER)))
                try:
                    await self._db.write(functools.partial(_execute_all, [g for _, g in groups]),
                                         lock="push_callbacks")
                except Exception as exc:
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._task = None


async def _execute_all(groups: list[tuple[Any, list[dict[str, Any]]]], conn: AsyncConnection) -> None:
    for statement, rows in groups:
        await conn.execute(statement, rows)


def _is_terminal(status: str | None) -> bool:
    return status in {s.value for s in JobStatus if s.terminal}


def _remember(recent: OrderedDict[str, None], request_id: str) -> None:
    recent[request_id] = None
    recent.move_to_end(request_id)
    while len(recent) > _RECENT_MAX:
        recent.popitem(last=False)
