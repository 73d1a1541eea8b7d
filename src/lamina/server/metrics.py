"""``GET /metrics``: the server's counters in Prometheus' text format (prometheus-client).

One registry per app (so two apps in one process, as in tests, do not mix
their numbers). What a request did is recorded where it is known: the status
by a pure ASGI middleware (every answer, 401/413/429/500 included), tokens and
latencies by the routes and the piece stream, and the slot pool's state is
read at scrape time, so nothing here can drift from ``/health``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:  # pragma: no cover
    from lamina.server.slots import SlotPool

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "MetricsMiddleware", "route_label"]

#: Paths counted under their own name; anything else is "other" (bounded label values).
ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/extract",
          "/v1/models", "/health", "/metrics")
#: Seconds: from a first token in a few milliseconds (tiny models) to a long queue wait.
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Seconds between two pieces of one stream: thousands of tokens/s down to a few.
ITL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


def route_label(path: str) -> str:
    if path in ROUTES:
        return path
    if path.startswith("/v1/models/"):
        return "/v1/models/{id}"
    return "other"


class _PoolCollector:
    """Slot-pool numbers read when Prometheus scrapes (the pool keeps them anyway)."""

    def __init__(self, pool: SlotPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Any]:
        pool = self.pool
        yield GaugeMetricFamily("lamina_queue_length", "Requests waiting for a slot.",
                                value=pool.waiting)
        yield GaugeMetricFamily("lamina_slots_busy", "Slots holding a request.", value=pool.busy)
        yield GaugeMetricFamily("lamina_slots_total", "Slots (--parallel).", value=pool.n_slots)
        yield CounterMetricFamily("lamina_rejected_requests", "Requests answered 429 because "
                                  "the queue was full.", value=pool.rejected)
        yield CounterMetricFamily("lamina_cancelled_requests", "Requests whose client left "
                                  "while queued or generating.", value=pool.cancelled)


class Metrics:
    """The app's registry and the instruments the routes record into."""

    def __init__(self, pool: SlotPool) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("lamina_requests", "HTTP requests answered, by route and "
                                "status.", ["route", "status"], registry=r)
        self.prompt_tokens = Counter("lamina_prompt_tokens", "Prompt tokens of chat and "
                                     "completion requests.", registry=r)
        self.generated_tokens = Counter("lamina_generated_tokens", "Tokens generated for chat "
                                        "and completion requests (cancelled ones included).",
                                        registry=r)
        self.ttft = Histogram("lamina_time_to_first_token_seconds", "From the route receiving "
                              "the request (queue wait included) to the first generated text.",
                              buckets=TTFT_BUCKETS, registry=r)
        self.itl = Histogram("lamina_inter_token_latency_seconds", "Time between two "
                             "consecutive pieces of text of one generation.",
                             buckets=ITL_BUCKETS, registry=r)
        r.register(_PoolCollector(pool))  # type: ignore[arg-type]

    def count_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens.inc(prompt_tokens)
        self.generated_tokens.inc(completion_tokens)

    def first_piece(self, since: float) -> None:
        self.ttft.observe(time.perf_counter() - since)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI: counts every answer by route and status, streams included."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_label(scope.get("path", ""))

        async def counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.metrics.requests.labels(route, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counted)
