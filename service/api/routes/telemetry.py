"""GET /v1/telemetry (power, energy per word, throughput, counters, temperature) and GET /metrics (Prometheus)."""
from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import Response

from ...schemas import ErrorPublic, PowerPublic, QueuePublic, TelemetryPublic, TemperaturePublic
from ..deps import ApiKeyDep, EngineDep

router = APIRouter(tags=["telemetry"], dependencies=[ApiKeyDep])


@router.get("/v1/telemetry", response_model=TelemetryPublic, responses={401: {"model": ErrorPublic}})
async def telemetry(engine: EngineDep) -> TelemetryPublic:
    """Power (W, with its source and the rails summed), energy per word, words/s, counters and temperature."""
    snap = engine.telemetry.snapshot()
    p = snap.power
    counters = engine.core_counters()
    b = engine.batcher
    queue = QueuePublic(depth=b.depth, limit=b.limit, in_batch=b.busy, device_batch=b.max_batch,
                        deadline_ms=b.deadline_s * 1000.0, batches=b.batches,
                        mean_batch_size=(b.items / b.batches) if b.batches else None)
    return TelemetryPublic(
        power=PowerPublic(source=p.source, status=p.status, watts=p.watts, rails=p.rails, per_rail_w=p.per_rail_w,
                          interval_s=p.interval_s),
        energy_per_word_j=snap.energy_per_word_j, words_per_s=snap.words_per_s, words_total=snap.words_total,
        temperature=(TemperaturePublic(celsius=snap.temperature.celsius, source=snap.temperature.source)
                     if snap.temperature else None),
        core_counters=counters,
        core_counters_status="ok" if counters is not None else
        f"the {engine.recognizer.backend_name} backend has no core counters",
        backend=engine.recognizer.backend_name, queue=queue, uptime_s=time.time() - engine.started_at)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}},
                                                            401: {"model": ErrorPublic}})
async def metrics(engine: EngineDep) -> Response:
    """Prometheus metrics in the text exposition format."""
    body, content_type = engine.metrics.render()
    return Response(body, media_type=content_type)
