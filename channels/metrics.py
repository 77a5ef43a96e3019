"""``GET /metrics``: operations metrics in the Prometheus text format (the official client).

Off unless ``DAOBAN_METRICS_TOKEN`` (a bearer token the scraper sends) and/or
``DAOBAN_METRICS_ALLOW`` (addresses or networks allowed to scrape) is set; off, the route
does not exist (404). With both set, a scrape needs both.

Each server process serves its own registry: counters and histograms count what *that*
process handled, so a Prometheus job scrapes every process (``sum by`` across them). The
handoff series are read from the shared database at scrape time and are the same in every
process (aggregate them with ``max``). docs/operations.md lists the series.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.agents import HandoffRow, HandoffStatus
from assistant.core import Seen
from channels.settings import Settings
from channels.staff import client_address, trusted_proxies

log = logging.getLogger(__name__)

OUTCOMES = ("answered", "clarified", "fallback", "handoff", "agent", "repeat")
CHANNELS = ("web", "wechat", "rest")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 4.5, 10.0, 30.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
WAIT_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 1800.0, 3600.0)
SOCKETS = {"/ws/chat": "web", "/ws/agent": "console"}
# Loggers whose error records are counted (daoban's own packages).
OURS = frozenset({"daoban", "channels", "assistant", "knowledge", "nlu", "doorplate"})
HTTP_ERRORS = {413: "body_too_large", 429: "rate_limited"}


def enabled(settings: Settings) -> bool:
    return bool(settings.metrics_token) or bool(settings.metrics_allow.strip())


def allowed_networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``"10.0.0.5, 10.1.0.0/16"``: fails loudly at start-up on a malformed entry."""
    try:
        return [ipaddress.ip_network(a.strip(), strict=False) for a in spec.split(",")
                if a.strip()]
    except ValueError as exc:
        raise ValueError(f"DAOBAN_METRICS_ALLOW: {exc}") from exc


class Metrics:
    """This process's registry, and the observer the assistant reports messages to."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.token = settings.metrics_token or None
        self.networks = allowed_networks(settings.metrics_allow)
        self.trusted = trusted_proxies(settings)
        r = self.registry = CollectorRegistry()
        self.messages = Counter(
            "daoban_messages", "Citizen messages handled, by channel and what each came to "
            "(answered, clarified, fallback, handoff, agent: for the human who owns the "
            "conversation, repeat: a message id already processed)",
            ["channel", "outcome"], registry=r)
        self.latency = Histogram(
            "daoban_message_duration_seconds",
            "From a message's arrival at the assistant to its replies (per-conversation lock "
            "wait included)", ["channel"], buckets=LATENCY_BUCKETS, registry=r)
        self.intent_confidence = Histogram(
            "daoban_nlu_intent_confidence", "The intent model's confidence in its top intent",
            buckets=CONFIDENCE_BUCKETS, registry=r)
        self.match_confidence = Histogram(
            "daoban_nlu_match_confidence",
            "Calibrated confidence that the best guide-base hit is what was asked (0: none)",
            buckets=CONFIDENCE_BUCKETS, registry=r)
        self.sockets = Gauge("daoban_websocket_connections",
                             "Open websocket connections in this process (web chat, agent "
                             "console)", ["kind"], registry=r)
        self.wechat_late = Counter(
            "daoban_wechat_late_answers", "WeChat answers that took longer than "
            "DAOBAN_WECHAT_REPLY_TIMEOUT and so went out as 客服消息", registry=r)
        self.errors = Counter(
            "daoban_errors", "Errors by kind: http_5xx, body_too_large, rate_limited, and "
            "log:<logger> for every error a daoban module logged", ["kind"], registry=r)
        for channel in CHANNELS:  # every series exists from the start, at 0
            self.latency.labels(channel)
            for outcome in OUTCOMES:
                self.messages.labels(channel, outcome)
        for kind in SOCKETS.values():
            self.sockets.labels(kind)
        for kind in ("http_5xx", *HTTP_ERRORS.values()):
            self.errors.labels(kind)
        self.handoffs = HandoffCollector()
        r.register(self.handoffs)
        ProcessCollector(registry=r)  # process_resident_memory_bytes, CPU, open files

    def message_handled(self, seen: Seen) -> None:
        self.messages.labels(seen.channel, seen.outcome).inc()
        self.latency.labels(seen.channel).observe(seen.seconds)
        if seen.intent_confidence is not None:
            self.intent_confidence.observe(seen.intent_confidence)
        if seen.match_confidence is not None:
            self.match_confidence.observe(seen.match_confidence)
        if seen.channel == "wechat" and seen.seconds > self.settings.wechat_reply_timeout:
            self.wechat_late.inc()

    def may_scrape(self, request: Request) -> int:
        """200, or the status that refuses the scrape (401: token; 403: address)."""
        if self.token is not None:
            auth = request.headers.get("authorization", "")
            given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return 401
        if self.networks:
            try:
                address = ipaddress.ip_address(client_address(request, self.trusted))
            except ValueError:
                return 403
            if not any(address in n for n in self.networks):
                return 403
        return 200

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HandoffCollector:
    """The handoff queue, read from the shared database at scrape time."""

    def __init__(self) -> None:
        self.engine: Any = None  # set once the app has its database

    def collect(self) -> Iterable[Metric]:
        if self.engine is None:
            return []
        wait = _seconds_between(self.engine, HandoffRow.requested_at, HandoffRow.claimed_at)
        try:
            with Session(self.engine) as s:
                queued = s.execute(
                    select(HandoffRow.department, func.count(), func.min(HandoffRow.queued_at))
                    .where(HandoffRow.status == HandoffStatus.QUEUED.value)
                    .group_by(HandoffRow.department)).all()
                # One row: how many claimed, their total wait, and how many waited <= each bucket.
                claimed = s.execute(select(
                    func.count(), func.coalesce(func.sum(wait), 0.0),
                    *(func.coalesce(func.sum(case((wait <= b, 1), else_=0)), 0)
                      for b in WAIT_BUCKETS)).where(HandoffRow.claimed_at.is_not(None))).one()
        except SQLAlchemyError:
            log.warning("metrics: could not read the handoff queue", exc_info=True)
            return []
        return list(_handoff_families(queued, tuple(claimed), datetime.now(UTC)))


def _seconds_between(engine: Any, start: Any, end: Any) -> ColumnElement[Any]:
    if engine.dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    # SQLite: julianday's doubles are days (~2.46e6) with ~50 µs of noise: rounded to ms,
    # so a wait of exactly a bucket's bound lands in that bucket.
    return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)  # SQLite keeps UTC without the zone


def _handoff_families(queued: Sequence[Any], claimed: tuple[Any, ...],
                      now: datetime) -> Iterator[Metric]:
    length = GaugeMetricFamily("daoban_handoff_queue_length",
                               "Conversations waiting for a human agent (all processes)",
                               labels=["department"])
    for department, n, _ in sorted(queued, key=lambda q: q[0] or ""):
        length.add_metric([department or "none"], n)
    if not queued:
        length.add_metric(["none"], 0)
    yield length
    oldest = max(((now - _aware(t)).total_seconds() for _, _, t in queued if t), default=0.0)
    yield GaugeMetricFamily("daoban_handoff_oldest_wait_seconds",
                            "How long the longest-waiting citizen in the queue has waited",
                            value=max(0.0, oldest))
    total, seconds, *within = claimed
    buckets = [(str(b), float(c)) for b, c in zip(WAIT_BUCKETS, within, strict=True)]
    buckets.append(("+Inf", float(total)))
    yield HistogramMetricFamily(
        "daoban_handoff_wait_seconds",
        "From asking for a human to an agent's claim, every claimed handoff kept in the "
        "database (all processes)", buckets=buckets, sum_value=max(0.0, float(seconds)))


class MetricsMiddleware:
    """Open websockets (counted from the accept to the end of the connection) and HTTP
    errors, seen from outside every other layer."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._socket(scope, receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        gauge = self.metrics.sockets.labels(SOCKETS.get(scope["path"], "other"))
        accepted = False

        async def watch(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                gauge.inc()
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if accepted:
                gauge.dec()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        errors = self.metrics.errors

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status >= 500:
                    errors.labels("http_5xx").inc()
                elif status in HTTP_ERRORS:
                    errors.labels(HTTP_ERRORS[status]).inc()
            await send(message)

        await self.app(scope, receive, watch)


class ErrorCounter(logging.Handler):
    """Counts the error records of daoban's modules (on the root logger, so every module's
    records reach it)."""

    def __init__(self, counter: Counter) -> None:
        super().__init__(logging.WARNING)
        self.counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR and record.name.split(".")[0] in OURS:
            self.counter.labels(f"log:{record.name}").inc()
        # A handler on the root logger switches off Python's last-resort output (warnings
        # and errors to stderr when logging is not configured): keep it, once.
        root = logging.getLogger().handlers
        last = logging.lastResort
        if last is not None and record.levelno >= last.level and root and root[0] is self \
                and all(isinstance(h, ErrorCounter) for h in root):
            last.handle(record)


def install(app: FastAPI, settings: Settings) -> None:
    """Wiring for ``create_app``: the registry, the middleware and the route."""
    metrics = Metrics(settings)
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(router)


def _metrics(app: Any) -> Metrics:
    metrics: Metrics = app.state.metrics
    return metrics


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    metrics = _metrics(app)
    assistant = app.state.services.assistant
    metrics.handoffs.engine = assistant.store.engine
    assistant.observers.append(metrics)
    counter = ErrorCounter(metrics.errors)
    logging.getLogger().addHandler(counter)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(counter)
        if metrics in assistant.observers:
            assistant.observers.remove(metrics)


router = APIRouter(lifespan=lifespan)


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request) -> Response:
    metrics = _metrics(request.app)
    status = metrics.may_scrape(request)
    if status == 401:
        return JSONResponse({"error": "需要指标令牌", "code": "unauthorized"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    if status != 200:
        return JSONResponse({"error": "此地址不能读取指标", "code": "forbidden"},
                            status_code=status)
    body = await anyio.to_thread.run_sync(metrics.render)  # the handoff queue is SQL
    return Response(body, media_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
