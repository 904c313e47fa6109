"""WebSocket /v1/stream: PCM chunks in, keyword detections out (the streaming detector of pynq_sparse.spotter).

Protocol (JSON text messages from the server, binary PCM from the client)::

    connect  /v1/stream?sample_rate=16000&channels=1&encoding=pcm_s16le[&api_key=KEY]
    server   {"type": "ready", "sample_rate", "channels", "encoding", "labels", "backend", "model_id"}
    client   binary messages of interleaved PCM (any length that is whole frames)
    server   {"type": "detection", "label", "confidence", "time_s"}   time_s: stream time of the keyword
    server   {"type": "level", "time_s", "rms_dbfs"}                  about 4 per second
    client   text {"type": "end"}                                      (or just close)
    server   {"type": "end", "time_s", "detections"} then close 1000

Refusals close the socket with a code and a reason: 1008 wrong API key, 1007 bad PCM,
1009 chunk too large, 1013 too many streams or shutting down, 1011 detector failure.
"""
from __future__ import annotations

import json
import math
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from pynq_sparse.errors import PynqSparseError

from ...core.audio_input import MAX_CHANNELS, MAX_SAMPLE_RATE, BadPcmError, pcm_samples
from ...core.batcher import ShuttingDown
from ..deps import API_KEY_HEADER, API_KEY_QUERY, engine_of, key_matches

router = APIRouter(prefix="/v1/stream", tags=["stream"])

LEVEL_EVERY_S = 0.25             # seconds of stream between two "level" messages


@router.websocket("")
async def stream(websocket: WebSocket,
                 sample_rate: Annotated[float, Query(gt=0, le=MAX_SAMPLE_RATE)] = 16000.0,
                 channels: Annotated[int, Query(ge=1, le=MAX_CHANNELS)] = 1,
                 encoding: Annotated[Literal["pcm_s16le", "pcm_s32le", "pcm_f32le"], Query()] = "pcm_s16le",
                 api_key: Annotated[str | None, Query(alias=API_KEY_QUERY)] = None) -> None:
    """Stream PCM chunks and receive keyword detections as they happen."""
    engine = engine_of(websocket)
    settings = engine.settings
    await websocket.accept()
    if not key_matches(settings, websocket.headers.get(API_KEY_HEADER) or api_key):
        await websocket.close(1008, f"missing or wrong API key: pass ?{API_KEY_QUERY}= or the {API_KEY_HEADER} "
                                    "header")
        return
    if engine.draining:
        await websocket.close(1013, "the service is shutting down")
        return
    if engine.open_streams >= settings.MAX_STREAMS:
        await websocket.close(1013, f"too many streams open (PYNQ_SPARSE_MAX_STREAMS={settings.MAX_STREAMS})")
        return
    try:
        detector = engine.new_detector()
    except PynqSparseError as err:
        await websocket.close(1011, str(err)[:120])
        return
    engine.open_streams += 1
    engine.metrics.streams.inc()
    frames = 0                                   # frames received so far
    next_level = 0.0
    n_detections = 0
    try:
        await websocket.send_json({"type": "ready", "sample_rate": sample_rate, "channels": channels,
                                   "encoding": encoding, "labels": list(engine.recognizer.model.labels),
                                   "backend": engine.recognizer.backend_name, "model_id": engine.model_id})
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                if _is_end(message.get("text")):
                    break
                continue
            if len(data) > settings.STREAM_MAX_CHUNK_BYTES:
                await websocket.close(1009, f"chunk of {len(data)} bytes; at most {settings.STREAM_MAX_CHUNK_BYTES}")
                return
            try:
                chunk = _to_mono_float(pcm_samples(data, channels, encoding, "the chunk"), encoding)
            except (BadPcmError, PynqSparseError) as err:
                await _refuse(websocket, 1007, "bad_pcm", str(err))
                return
            if not np.isfinite(chunk).all():
                await _refuse(websocket, 1007, "non_finite_audio", "the chunk holds NaN or infinite samples")
                return
            try:
                detections = await run_in_threadpool(detector.feed, chunk, sample_rate)
            except ShuttingDown:
                await _refuse(websocket, 1013, "shutting_down", "the service is shutting down")
                return
            except PynqSparseError as err:
                await _refuse(websocket, 1011, "detector_error", str(err))
                return
            frames += chunk.shape[0]
            for det in detections:
                n_detections += 1
                engine.metrics.detections.labels(det.label).inc()
                await websocket.send_json({"type": "detection", "label": det.label,
                                           "confidence": round(float(det.confidence), 4),
                                           "time_s": round(float(det.time_s), 3)})
            now = frames / sample_rate
            if now >= next_level and chunk.size:
                rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64))))
                await websocket.send_json({"type": "level", "time_s": round(now, 3),
                                           "rms_dbfs": round(20 * math.log10(max(rms, 1e-10)), 1)})
                next_level = now + LEVEL_EVERY_S
        await websocket.send_json({"type": "end", "time_s": round(frames / sample_rate, 3),
                                   "detections": n_detections})
        await websocket.close(1000)
    except WebSocketDisconnect:
        return
    finally:
        engine.open_streams -= 1
        engine.metrics.streams.dec()


def _is_end(text: str | None) -> bool:
    if not text:
        return False
    try:
        return json.loads(text).get("type") in ("end", "stop")
    except (ValueError, AttributeError):
        return text.strip().lower() in ("end", "stop")


def _to_mono_float(samples: np.ndarray, encoding: str) -> np.ndarray:
    """float32 mono (channel mean) of int16/int32/float32 samples [frames, channels]."""
    scale = {"pcm_s16le": 1 / 32768, "pcm_s32le": 1 / 2**31}.get(encoding, 1.0)
    x = samples.astype(np.float32) * np.float32(scale) if scale != 1.0 else samples.astype(np.float32)
    return x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]


async def _refuse(websocket: WebSocket, code: int, kind: str, detail: str) -> None:
    await websocket.send_json({"type": "error", "code": kind, "detail": detail})
    await websocket.close(code, detail[:120])

