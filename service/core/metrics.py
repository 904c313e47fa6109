"""Prometheus metrics of one service instance (its own registry, so several apps can live in one process).

Usage::

    metrics = ServiceMetrics()
    metrics.watch(engine)
    metrics.requests.labels("/v1/recognize", "200").inc()
    text, content_type = metrics.render()
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from .engine import Engine

PREFIX = "pynq_sparse"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128)


class _LiveCollector:
    """Values read at scrape time: queue depth, telemetry and the device's counters."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine

    def collect(self):
        e = self.engine
        g = GaugeMetricFamily(f"{PREFIX}_queue_depth", "Clips waiting for a device batch")
        g.add_metric([], e.batcher.depth)
        yield g
        g = GaugeMetricFamily(f"{PREFIX}_queue_limit", "Most clips allowed to wait (beyond: 503)")
        g.add_metric([], e.batcher.limit)
        yield g
        snap = e.telemetry.snapshot()
        g = GaugeMetricFamily(f"{PREFIX}_power_sensor_available", "1 when the power source gives a reading",
                              labels=["source"])
        g.add_metric([snap.power.source], 1.0 if snap.power.ok else 0.0)
        yield g
        if snap.power.ok:
            g = GaugeMetricFamily(f"{PREFIX}_power_watts", "Power of the summed rails/zones", labels=["source"])
            g.add_metric([snap.power.source], snap.power.watts)
            yield g
        if snap.energy_per_word_j is not None and math.isfinite(snap.energy_per_word_j):
            g = GaugeMetricFamily(f"{PREFIX}_energy_per_word_joules", "Energy per classified word, last interval",
                                  labels=["source"])
            g.add_metric([snap.power.source], snap.energy_per_word_j)
            yield g
        g = GaugeMetricFamily(f"{PREFIX}_throughput_words_per_second", "Words classified per second, last interval")
        g.add_metric([], snap.words_per_s)
        yield g
        if snap.temperature is not None:
            g = GaugeMetricFamily(f"{PREFIX}_temperature_celsius", "Device temperature", labels=["source"])
            g.add_metric([snap.temperature.source], snap.temperature.celsius)
            yield g
        counters = e.core_counters()
        if counters:
            g = GaugeMetricFamily(f"{PREFIX}_core_counter", "Counters read from the core", labels=["counter"])
            for name, value in sorted(counters.items()):
                g.add_metric([name], value)
            yield g


class ServiceMetrics:
    """The counters, histograms and gauges the service exports at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(f"{PREFIX}_http_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=r)
        self.latency = Histogram(f"{PREFIX}_http_request_duration_seconds", "HTTP request latency by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram(f"{PREFIX}_batch_size", "Words per device batch (clips and stream windows)",
                                    buckets=BATCH_BUCKETS,
                                    registry=r)
        self.batch_seconds = Histogram(f"{PREFIX}_batch_compute_seconds", "Time to compute one device batch",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram(f"{PREFIX}_queue_wait_seconds", "Mean wait of a batch's clips in the queue",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.words = Counter(f"{PREFIX}_words", "Words (one-second windows) classified", registry=r)
        self.rejected = Counter(f"{PREFIX}_rejected", "Requests refused with 503", ["reason"], registry=r)
        self.bad_input = Counter(f"{PREFIX}_bad_input", "Requests refused for their input", ["code"], registry=r)
        self.streams = Gauge(f"{PREFIX}_stream_connections", "Open WebSocket streams", registry=r)
        self.detections = Counter(f"{PREFIX}_detections", "Keyword detections pushed to streams", ["label"],
                                  registry=r)
        self.info = Gauge(f"{PREFIX}_model_info", "The served model and backend (value 1)",
                          ["model_id", "backend"], registry=r)

    def watch(self, engine: "Engine") -> None:
        """Also export the engine's live values (queue, telemetry, core counters) at scrape time."""
        self.registry.register(_LiveCollector(engine))

    def observe_batch(self, items: int, queued_s: float, compute_s: float) -> None:
        """After each device batch (the engine observes its size in words itself)."""
        self.queue_wait.observe(queued_s)
        self.batch_seconds.observe(compute_s)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
