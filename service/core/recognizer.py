"""The service's view of the keyword spotter: clips -> int8 words (front end) -> int32 scores (device).

The two steps are separate so that the device queue can score, in one batch, words of
uploaded clips (front end in the queue's worker) and words of WebSocket streams (front end
in the streaming detector). Everything the service needs is gathered in the
:class:`Recognizer` protocol, so that tests can swap in another one through
``app.dependency_overrides[get_recognizer]``.

Usage::

    from pynq_sparse.service.core.recognizer import build_recognizer
    rec = build_recognizer(model_path=None, backend="auto")    # a KeywordSpotter inside
    scores = rec.scores(rec.words(clips))     # float32 [B, 16000] at 16 kHz -> int8 [B, 32, 32] -> int32 [B, 12]
"""
from __future__ import annotations

import threading
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pynq_sparse.golden import confidences
from pynq_sparse.model_file import SparseModel, load_model


@runtime_checkable
class Recognizer(Protocol):
    """What the service needs from a keyword spotter."""

    model: SparseModel          # labels, model_id, layers (for /v1/model) and score_scale
    backend_name: str           # which backend computes the scores (e.g. "emulated (ultra96v2, 1 copy, ...)")

    def words(self, clips: np.ndarray) -> np.ndarray:
        """int8 words [B, 32, 32] of float32 clips [B, 16000] at 16 kHz (thread-safe)."""
        ...

    def scores(self, words: np.ndarray) -> np.ndarray:
        """int32 scores [B, n_classes] of int8 words [B, 32, 32] (called by the device worker only)."""
        ...

    def counters(self) -> dict[str, int] | None:
        """The device's own counters (words in/out, busy cycles...), or None when it has none."""
        ...

    def spotter(self) -> Any:
        """The KeywordSpotter behind this recognizer (for the streaming detector), or None."""
        ...


class SpotterRecognizer:
    """A :class:`pynq_sparse.spotter.KeywordSpotter` seen as a :class:`Recognizer`."""

    COUNTER_WAIT_S = 0.05          # longest wait for the device to finish a batch before counters are read

    def __init__(self, spotter: Any) -> None:
        self._spotter = spotter
        self.model = spotter.model
        self.backend_name = str(spotter.backend_name)
        self._device = threading.Lock()                 # held while the overlay streams a batch
        self._last_counters: dict[str, int] | None = None

    def words(self, clips: np.ndarray) -> np.ndarray:
        return self._spotter.words(list(clips), 16000)

    def scores(self, words: np.ndarray) -> np.ndarray:
        with self._device:
            return np.asarray(self._spotter.scores(words), dtype=np.int32)

    def counters(self) -> dict[str, int] | None:
        """The overlay's counters, read between batches; while a long batch runs, the last values read."""
        overlay = getattr(self._spotter, "overlay", None)
        if overlay is None:
            return None
        if self._device.acquire(timeout=self.COUNTER_WAIT_S):
            try:
                self._last_counters = flatten_counters(overlay.counters())
            finally:
                self._device.release()
        return self._last_counters

    def spotter(self) -> Any:
        return self._spotter


class BackendRecognizer:
    """Front end plus a scoring backend from :func:`pynq_sparse.backends.get_backend` (no KeywordSpotter)."""

    def __init__(self, model: SparseModel, backend: str = "auto") -> None:
        from pynq_sparse.backends import get_backend
        from pynq_sparse.frontend import FastFrontend

        self.model = model
        self._backend = get_backend(backend, model)
        self.backend_name = str(getattr(self._backend, "name", backend))
        self._frontend = FastFrontend()

    def words(self, clips: np.ndarray) -> np.ndarray:
        return self._frontend.words(np.ascontiguousarray(clips, dtype=np.float32))

    def scores(self, words: np.ndarray) -> np.ndarray:
        return np.asarray(self._backend.scores(words), dtype=np.int32)

    def counters(self) -> dict[str, int] | None:
        return None

    def spotter(self) -> Any:
        return None


def flatten_counters(cores: list[dict]) -> dict[str, int]:
    """``[{"words_in": 5, "copies": [{"words": 3}, ...]}, ...]`` -> ``{"core0.words_in": 5, "core0.copy0.words": 3}``."""
    out: dict[str, int] = {}
    for i, core in enumerate(cores):
        for key, value in core.items():
            if key == "copies":
                for j, copy in enumerate(value):
                    for k, v in copy.items():
                        out[f"core{i}.copy{j}.{k}"] = int(v)
            else:
                out[f"core{i}.{key}"] = int(value)
    return out


def build_recognizer(model_path: str | None = None, backend: str = "auto") -> Recognizer:
    """The service's recognizer: a KeywordSpotter on `backend` ("auto": FPGA overlay, else its emulation)."""
    from pynq_sparse.spotter import KeywordSpotter

    return SpotterRecognizer(KeywordSpotter(model=load_model(model_path), backend=backend))


def confidences_of(recognizer: Recognizer, scores: np.ndarray) -> np.ndarray:
    """Softmax confidences float64 [B, n] of int32 scores, with the model's score scale."""
    return confidences(scores, recognizer.model.score_scale)
