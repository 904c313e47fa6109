"""The engine: recognizer + micro-batching queue + telemetry + metrics, shared by every route.

Usage::

    engine = Engine(settings, recognizer).start()
    results = await engine.recognize([Payload(wav_bytes, "yes.wav")])   # list[Recognition]
    engine.stop()                                                         # drains the queue
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from pynq_sparse.audio import N_SAMPLES, fix_length
from pynq_sparse.errors import AudioError, DeviceError
from pynq_sparse.telemetry import TelemetryMonitor, detect_power_source

from .audio_input import Payload, decode
from .batcher import BatchInfo, MicroBatcher
from .config import Settings
from .metrics import ServiceMetrics
from .recognizer import Recognizer, confidences_of


@dataclass
class Recognition:
    """One classified clip, as the API returns it."""

    label: str
    index: int
    confidence: float
    top_k: list[dict]          # [{"label", "index", "score", "confidence"}], best first
    latency_ms: float          # from the request's arrival to its result
    queue_ms: float            # spent waiting for its device batch
    compute_ms: float          # the device batch's compute time (decode, front end, scores)
    batch_size: int            # clips in the device batch it went through
    backend: str
    model_id: str
    duration_s: float          # length of the clip as sent (only the first second is classified)


@dataclass
class _Scored:
    scores: np.ndarray         # int32 [n_classes]
    confidence: np.ndarray     # float64 [n_classes]
    duration_s: float
    batch_words: int           # words in the device batch it went through


@dataclass
class StreamWords:
    """Words of a WebSocket stream's windows, queued for the device like the clips of requests."""

    words: np.ndarray          # int8 [n, 32, 32]


class _QueuedSpotter:
    """The KeywordSpotter as a StreamingDetector sees it, except that ``scores`` goes through the device queue.

    So stream windows and uploaded clips share device batches, and only the queue's worker
    touches the device.
    """

    def __init__(self, spotter, batcher: MicroBatcher) -> None:
        self._spotter, self._batcher = spotter, batcher

    def scores(self, words: np.ndarray) -> np.ndarray:
        future = self._batcher.submit_from_thread(StreamWords(np.asarray(words, dtype=np.int8)), over_limit=True)
        scores, _info = future.result()
        return scores

    def __getattr__(self, name: str):
        return getattr(self._spotter, name)


class Engine:
    """Everything behind the routes; one per app, built in the app's lifespan."""

    def __init__(self, settings: Settings, recognizer: Recognizer) -> None:
        self.settings = settings
        self.recognizer = recognizer
        self.model_id = f"{recognizer.model.model_id:#010x}"
        self.telemetry = TelemetryMonitor(detect_power_source(settings.POWER_SOURCE), settings.TELEMETRY_INTERVAL_S)
        self.metrics = ServiceMetrics()
        self.metrics.info.labels(self.model_id, recognizer.backend_name).set(1)
        self.batcher = MicroBatcher(self._process, max_batch=settings.DEVICE_BATCH,
                                    deadline_s=settings.BATCH_DEADLINE_MS / 1000.0, limit=settings.QUEUE_LIMIT,
                                    on_batch=self.metrics.observe_batch)
        self.metrics.watch(self)
        self.started_at = time.time()
        self.draining = False
        self.open_streams = 0           # WebSocket streams (changed on the event loop only)

    # --- lifecycle ----------------------------------------------------------------
    def start(self) -> "Engine":
        """Warm the device up (first-call compilation, buffers), then start the queue's worker and telemetry."""
        self.recognizer.scores(self.recognizer.words(np.zeros((1, N_SAMPLES), np.float32)))
        self.batcher.start()
        self.telemetry.start()
        return self

    def begin_shutdown(self) -> None:
        """The server stopped accepting connections: report not ready, run queued clips without waiting."""
        self.draining = True
        self.batcher.hurry()

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new clips, finish the queued ones, stop the telemetry sampler."""
        self.draining = True
        self.batcher.stop(drain=True, timeout=self.settings.SHUTDOWN_TIMEOUT_S if timeout is None else timeout)
        self.telemetry.stop()

    @property
    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining: the service is shutting down"
        if not self.batcher.alive:
            return False, "the device worker is not running"
        return True, "ready"

    # --- recognition ----------------------------------------------------------------
    async def recognize(self, payloads: list[Payload]) -> list[Recognition | AudioError]:
        """Classify payloads through the queue; bad ones come back as their AudioError, in order.

        Raises QueueFull or ShuttingDown (from the batcher) when the clips cannot be queued.
        """
        arrived = time.perf_counter()
        futures = self.batcher.submit_many(payloads)
        done = await asyncio.gather(*futures, return_exceptions=True)
        out: list[Recognition | AudioError] = []
        for item in done:
            if isinstance(item, BaseException):
                if isinstance(item, AudioError):
                    out.append(item)
                    continue
                raise item
            scored, info = item
            out.append(self._recognition(scored, info, arrived))
        return out

    def _recognition(self, s: _Scored, info: BatchInfo, arrived: float) -> Recognition:
        labels = self.recognizer.model.labels
        order = np.argsort(-s.scores, kind="stable")[: self.settings.TOP_K]   # ties: lowest index first
        best = int(order[0])
        top = [{"label": labels[i], "index": int(i), "score": int(s.scores[i]), "confidence": float(s.confidence[i])}
               for i in order]
        return Recognition(label=labels[best], index=best, confidence=float(s.confidence[best]), top_k=top,
                           latency_ms=(time.perf_counter() - arrived) * 1000.0, queue_ms=info.queued_s * 1000.0,
                           compute_ms=info.compute_s * 1000.0, batch_size=s.batch_words,
                           backend=self.recognizer.backend_name, model_id=self.model_id, duration_s=s.duration_s)

    def _process(self, items: list) -> list:
        """Worker thread: decode the clips, run their front end, then score every word of the batch at once."""
        out: list = [None] * len(items)
        clips, clip_at, durations = [], [], []
        parts: list[tuple[int, np.ndarray]] = []             # (item index, int8 words [n, 32, 32])
        for i, item in enumerate(items):
            if isinstance(item, StreamWords):
                parts.append((i, item.words))
                continue
            try:
                y = decode(item, self.settings.MAX_CLIP_SECONDS)
            except AudioError as err:
                out[i] = err
                continue
            durations.append(y.shape[0] / 16000.0)
            clips.append(fix_length(y, N_SAMPLES))
            clip_at.append(i)
        if clips:
            words = self.recognizer.words(np.stack(clips))                  # (B, 32, 32) int8
            parts += [(i, words[j:j + 1]) for j, i in enumerate(clip_at)]
        if not parts:
            return out
        all_words = np.concatenate([w for _, w in parts])                   # (n_words, 32, 32)
        scores = self.recognizer.scores(all_words)                           # (n_words, n_classes) int32
        n = len(all_words)
        conf = confidences_of(self.recognizer, scores)                       # (n_words, n_classes)
        duration = dict(zip(clip_at, durations))
        row = 0
        for i, w in parts:
            if isinstance(items[i], StreamWords):
                out[i] = scores[row:row + len(w)]
            else:
                out[i] = _Scored(scores[row], conf[row], duration[i], n)
            row += len(w)
        self.telemetry.count_words(n)
        self.metrics.words.inc(n)
        self.metrics.batch_size.observe(n)
        return out

    # --- streaming -----------------------------------------------------------------
    def new_detector(self):
        """A StreamingDetector on this engine's spotter, with the STREAM_* settings that are set."""
        spotter = self.recognizer.spotter()
        if spotter is None:
            raise DeviceError("streaming needs a KeywordSpotter (pynq_sparse.spotter); this recognizer has none")
        from pynq_sparse.spotter import StreamingDetector

        s = self.settings
        options = {"window_s": s.STREAM_WINDOW_S, "hop_s": s.STREAM_HOP_S, "threshold": s.STREAM_THRESHOLD}
        return StreamingDetector(_QueuedSpotter(spotter, self.batcher),
                                 **{k: v for k, v in options.items() if v is not None})

    # --- telemetry -----------------------------------------------------------------
    def core_counters(self) -> dict[str, int] | None:
        try:
            return self.recognizer.counters()
        except Exception:  # noqa: BLE001 - a counter read must not fail a scrape
            return None
