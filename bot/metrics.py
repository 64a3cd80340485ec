"""``Metrics``: what ``GET /metrics`` shows, in Prometheus' text format (``prometheus-client``).

One ``CollectorRegistry`` per ``Services`` (no module-level default registry), so several
``Services`` in one test process never share a counter.

Two kinds of figures:
- counted as they happen (``provider_call``, ``delivery``, ``observe_delivery_lag``,
  ``quota_refusal``, ``callback``): calls made by this process since it started;
- read from the database at scrape time (``refresh``): jobs by state and the bot-wide wallet
  pause, which every process sees alike.

``chatterbox_delivery_lag_seconds`` is the provider's ``completed_at`` → the moment this
process had the confirmed document in hand (the media request follows at once): the
number push delivery exists to make small. ``completed_at`` often has whole seconds only, so
single samples are coarse; the histogram is meant for percentiles over many jobs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from bot.store.database import Database
from bot.store.jobs import JobState
from bot.store.tables import bot_guard, jobs

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._calls = Counter("chatterbox_provider_calls", "Calls to the TTS provider by kind and answer",
                              ["kind", "status"], registry=r)
        self._deliveries = Counter("chatterbox_deliveries",
                                   "Completed jobs confirmed, by how they were noticed", ["via"], registry=r)
        self._lag = Histogram("chatterbox_delivery_lag_seconds",
                              "Provider completed_at to the confirmed document in hand",
                              buckets=_LAG_BUCKETS, registry=r)
        self._refusals = Counter("chatterbox_quota_refusals", "Requests refused by a quota, by limit",
                                 ["code"], registry=r)
        self._callbacks = Counter("chatterbox_callbacks", "Provider callbacks received, by outcome",
                                  ["outcome"], registry=r)
        self._jobs = Gauge("chatterbox_jobs", "Jobs in the database by state", ["state"], registry=r)
        self._paused = Gauge("chatterbox_wallet_paused", "1 while submissions are paused bot-wide (402)",
                             registry=r)

    # --- counted as it happens ----------------------------------------------------------
    def provider_call(self, kind: str, outcome: str) -> None:
        self._calls.labels(kind=kind, status=outcome).inc()

    def delivery(self, via: str) -> None:
        self._deliveries.labels(via=via).inc()

    def observe_delivery_lag(self, seconds: float) -> None:
        self._lag.observe(seconds)

    def quota_refusal(self, code: str) -> None:
        self._refusals.labels(code=code).inc()

    def callback(self, outcome: str) -> None:
        self._callbacks.labels(outcome=outcome).inc()

    # --- read at scrape time --------------------------------------------------------------
    async def refresh(self, db: Database) -> None:
        async with db.read() as conn:
            by_state = select(jobs.c.status, func.count()).group_by(jobs.c.status)
            counts = {status: count for status, count in (await conn.execute(by_state)).all()}
            paused = (await conn.execute(select(bot_guard.c.paused).where(bot_guard.c.id == 1))).scalar()
        for state in JobState:
            self._jobs.labels(state=state.value).set(counts.get(state.value, 0))
        self._paused.set(1 if paused else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
