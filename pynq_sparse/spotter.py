"""High-level keyword spotting: `KeywordSpotter` (clips) and `StreamingDetector` (continuous audio).

`KeywordSpotter` runs the network on the FPGA overlay when the board has it,
else on the emulated overlay (the same driver code, on any host), or on a CPU
backend when asked; `backend_name` says which. Every backend returns the golden
model's scores bit for bit, so only speed differs.

`StreamingDetector` slides a 1 s window over a stream of audio chunks with a
configurable hop, smooths the class posteriors over a few windows, and reports a
keyword when its smoothed posterior crosses a threshold, then stays quiet for a
refractory period (so one utterance gives one detection).

Usage::

    from pynq_sparse.spotter import KeywordSpotter, StreamingDetector
    spotter = KeywordSpotter()                    # shipped model; FPGA if present, else emulated
    print(spotter.backend_name)                   # e.g. "emulated (ultra96v2, 1 copy, cpu compute)"
    result = spotter.classify("yes.wav")          # path, bytes, or array (+ sample_rate)
    print(result.label, result.confidence, result.top_k)
    detector = StreamingDetector(spotter, hop_s=0.1, threshold=0.7)
    for chunk in microphone_chunks():             # any chunk size, int16 or float
        for det in detector.feed(chunk, sample_rate=48000):
            print(f"{det.time_s:6.2f} s  {det.label}  {det.confidence:.2f}")
"""
from __future__ import annotations

import time
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import DeviceError, ShapeError
from .golden import check_words, confidences
from .model_file import SparseModel, as_model

BACKENDS = ("auto", "fpga", "emulated", "cpu", "golden")
SAMPLE_RATE = 16000
NON_KEYWORDS = ("_silence_", "_unknown_")


@dataclass
class Classification:
    """The network's answer for one clip (or word)."""

    label: str
    index: int
    confidence: float                       # softmax(scores * score_scale)[index]; for display
    scores: np.ndarray                      # int32 [n_classes], bit-exact with pynq_sparse.golden
    top_k: list[tuple[str, float]]          # the k most likely (label, confidence), best first
    latency_ms: float                       # wall time of the call that produced it (share of a batch)
    backend: str

    def __str__(self) -> str:
        return f"{self.label} ({self.confidence:.0%}, {self.backend}, {self.latency_ms:.1f} ms)"


@dataclass
class Detection:
    """A keyword found in a stream: `time_s` is the end of the window, from the stream's start."""

    label: str
    time_s: float
    confidence: float
    index: int = -1


class KeywordSpotter:
    """Classify one-second clips with the sparse network on the best available engine.

    Parameters
    ----------
    model : SparseModel | path | bytes, optional
        The network (default: the model shipped in pynq_sparse/data/models).
    backend : str
        "auto" (FPGA overlay if this is a board with the sparse-kws bitstream, else the
        emulated overlay; the CPU backend if emulation is switched off), "fpga",
        "emulated", "cpu" or "golden".
    board : str, optional
        Board of the overlay (default: PYNQ_SPARSE_BOARD, BOARD, ultra96v2).
    top_k : int
        Entries of `Classification.top_k`.
    batch_size : int
        Words per DMA transfer (overlay backends).
    """

    def __init__(self, model: SparseModel | str | Path | bytes | None = None, backend: str = "auto",
                 board: str | None = None, top_k: int = 3, batch_size: int = 64) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.model = as_model(model)
        self.top_k = int(top_k)
        self.overlay = None
        self._cpu = None
        self._frontend = None
        kind = self._choose(backend)
        if kind in ("fpga", "emulated"):
            from .emulation import EmulatedDevice, board_name
            from .overlay import SparseKwsOverlay
            if kind == "emulated":
                device = EmulatedDevice(board_name(board))
            else:
                import pynq
                device = next((d for d in pynq.Device.devices if not isinstance(d, EmulatedDevice)), None)
                if device is None:
                    raise DeviceError("backend='fpga': no PYNQ board found (try backend='emulated')")
            self.overlay = SparseKwsOverlay(board=board, device=device, model=self.model, batch_size=batch_size)
            n = self.overlay.n_copies
            copies = f"{n} cop{'y' if n == 1 else 'ies'}"
            if kind == "emulated":
                engine = self.overlay.device.core_model(0).compute_backend
                self.backend_name = f"emulated ({self.overlay.board}, {copies}, {engine} compute)"
            else:
                self.backend_name = f"fpga ({self.overlay.board}, {copies})"
        else:
            from .backends import get_backend
            self._cpu = get_backend(kind, self.model)
            self.backend_name = self._cpu.name
        self.kind = kind

    @staticmethod
    def _choose(backend: str) -> str:
        if backend != "auto":
            return backend
        from .emulation import emulation_mode, packaged_bitstream, real_board_present
        mode = emulation_mode()
        if mode != "force" and real_board_present():
            if packaged_bitstream() is not None:
                return "fpga"
            warnings.warn("this board has no sparse-kws bitstream; using the emulated overlay", stacklevel=3)
        if mode == "off":
            return "cpu"
        return "emulated"

    def __repr__(self) -> str:
        return f"<KeywordSpotter on {self.backend_name}, model 0x{self.model.model_id:08x}>"

    @property
    def labels(self) -> list[str]:
        return list(self.model.labels)

    # --- words -------------------------------------------------------------------------
    @property
    def frontend(self):
        """The `pynq_sparse.frontend.FastFrontend` turning 16 kHz clips into words (created on first use)."""
        if self._frontend is None:
            from .frontend import FastFrontend
            self._frontend = FastFrontend()
        return self._frontend

    def words(self, sources: Sequence, sample_rate: float | None = None) -> np.ndarray:
        """int8 words [B, 32, 32] of paths, file bytes, audio arrays (at `sample_rate`, default 16 kHz) or words."""
        from .audio import fix_length, load_audio
        out, clips, where = [], [], []
        for i, src in enumerate(sources):
            arr = src if isinstance(src, np.ndarray) else None
            if arr is not None and arr.ndim == 2 and arr.shape == (32, 32) and np.issubdtype(arr.dtype, np.integer):
                out.append((i, check_words(arr)[0]))
                continue
            if arr is not None:
                y = load_audio(arr, sample_rate if sample_rate is not None else SAMPLE_RATE)
            else:
                y = load_audio(src, sample_rate)
            clips.append(fix_length(y))
            where.append(i)
        words = np.empty((len(sources), 32, 32), dtype=np.int8)
        for i, w in out:
            words[i] = w
        if clips:
            words[where] = self.frontend.words(np.stack(clips))
        return words

    # --- scores ------------------------------------------------------------------------
    def scores(self, words: np.ndarray) -> np.ndarray:
        """int32 scores [B, n_classes] of int8 words [B, 32, 32] on this spotter's backend."""
        words = check_words(words)
        if not len(words):
            return np.empty((0, self.model.n_classes), dtype=np.int32)
        if self.overlay is not None:
            return self.overlay.execute(words)
        return np.asarray(self._cpu.scores(words), dtype=np.int32)

    def posteriors(self, scores: np.ndarray) -> np.ndarray:
        """float64 [B, n_classes]: softmax(scores * score_scale) (display and thresholds only)."""
        return confidences(scores, self.model.score_scale)

    def _results(self, scores: np.ndarray, latency_ms: float) -> list[Classification]:
        post = self.posteriors(scores)
        out = []
        for s, p in zip(scores, post):
            idx = int(np.argmax(s))
            order = np.argsort(-p, kind="stable")[:self.top_k]
            out.append(Classification(label=self.model.labels[idx], index=idx, confidence=float(p[idx]),
                                      scores=np.array(s, dtype=np.int32),
                                      top_k=[(self.model.labels[j], float(p[j])) for j in order],
                                      latency_ms=latency_ms, backend=self.backend_name))
        return out

    def classify(self, source, sample_rate: float | None = None) -> Classification:
        """Classify one clip: a path, the bytes of an audio file, samples (+ `sample_rate`) or an int8 word."""
        return self.classify_batch([source], sample_rate)[0]

    def classify_batch(self, sources: Iterable, sample_rate: float | None = None) -> list[Classification]:
        """Classify several clips in one batch (one front-end call, one DMA stream)."""
        t0 = time.perf_counter()
        sources = list(sources)
        scores = self.scores(self.words(sources, sample_rate))
        ms = (time.perf_counter() - t0) * 1e3 / max(1, len(sources))
        return self._results(scores, ms)

    def load_model(self, model: SparseModel | str | Path | bytes) -> int:
        """Switch to another model on the same backend (a hot reload on the overlay: no new bitstream).

        Returns the new model's id. On the overlay the cores' weight memories are rewritten
        (`SparseKwsOverlay.load_model`); on the CPU backends a new backend is compiled for it.
        If loading fails (bad file, model the bitstream cannot hold) the spotter keeps its
        current model and the error propagates.
        """
        new = as_model(model)
        if self.overlay is not None:
            try:
                self.overlay.load_model(new)
            except Exception:
                try:
                    self.overlay.load_model(self.model)   # a rejected image leaves the cores empty
                except Exception:                         # the first error is the one to report
                    pass
                raise
        else:
            from .backends import get_backend
            backend = get_backend(self.kind, new)
            old, self._cpu = self._cpu, backend
            if hasattr(old, "close"):
                old.close()
        self.model = new
        return new.model_id

    def close(self) -> None:
        """Release the front end's threads and the overlay's buffers."""
        if self._frontend is not None:
            self._frontend.close()
            self._frontend = None
        if self.overlay is not None and self.overlay._streams:
            for s in self.overlay._streams:
                s.close()

    def __enter__(self) -> "KeywordSpotter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StreamingDetector:
    """Keyword detection over continuous audio: sliding window, smoothing, threshold, refractory period.

    Parameters
    ----------
    spotter : KeywordSpotter
    window_s : float > 0
        Window length (the network sees one second: 1.0).
    hop_s : float > 0
        Step between windows; each `feed` scores every window that ended in its audio.
    smoothing : int >= 1
        Posteriors averaged over the last `smoothing` windows before thresholding.
    threshold : float in (0, 1]
        Smoothed posterior a keyword must reach.
    refractory_s : float >= 0
        After a detection, no other detection for this long (of stream time).
    keywords : list of str, optional
        Labels that count as detections (default: all but _silence_ and _unknown_).

    Examples
    --------
    >>> det = StreamingDetector(KeywordSpotter(backend="cpu"), hop_s=0.25)   # doctest: +SKIP
    >>> det.feed(np.zeros(8000, np.float32), sample_rate=16000)              # doctest: +SKIP
    []
    """

    def __init__(self, spotter: KeywordSpotter, window_s: float = 1.0, hop_s: float = 0.1, smoothing: int = 3,
                 threshold: float = 0.6, refractory_s: float = 1.0, keywords: Sequence[str] | None = None) -> None:
        if window_s <= 0 or hop_s <= 0 or smoothing < 1 or not 0 < threshold <= 1 or refractory_s < 0:
            raise ValueError("need window_s > 0, hop_s > 0, smoothing >= 1, 0 < threshold <= 1, refractory_s >= 0")
        self.spotter = spotter
        self.window = int(round(window_s * SAMPLE_RATE))
        self.hop = max(1, int(round(hop_s * SAMPLE_RATE)))
        self.smoothing, self.threshold, self.refractory_s = int(smoothing), float(threshold), float(refractory_s)
        labels = spotter.labels
        names = list(keywords) if keywords is not None else [x for x in labels if x not in NON_KEYWORDS]
        unknown = [k for k in names if k not in labels]
        if unknown:
            raise ValueError(f"keywords {unknown} are not labels of the model ({', '.join(labels)})")
        self.keyword_mask = np.array([x in names for x in labels])
        self.reset()

    def reset(self) -> None:
        """Forget the audio and the smoothing state (time restarts at 0)."""
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0            # stream sample index of _buf[0]
        self._next_end = self.window   # stream sample index where the next window ends
        self._recent: deque[np.ndarray] = deque(maxlen=self.smoothing)
        self._last_detection = -np.inf
        self._resampler = None
        self._rate = None

    @property
    def time_s(self) -> float:
        """Seconds of audio fed so far (at 16 kHz)."""
        return (self._buf_start + self._buf.size) / SAMPLE_RATE

    def _to_16k(self, pcm: np.ndarray, sample_rate: float) -> np.ndarray:
        x = np.asarray(pcm)
        if x.ndim == 2:
            x = x.mean(axis=1) if x.shape[1] <= 64 else x.mean(axis=0)
        if x.ndim != 1:
            raise ShapeError(f"a PCM chunk must be [samples] or [samples, channels], got {list(np.shape(pcm))}")
        if x.dtype == np.int16:
            x = x.astype(np.float32) / 32768.0
        elif x.dtype == np.int32:
            x = x.astype(np.float32) / 2.0 ** 31
        elif not np.issubdtype(x.dtype, np.floating):
            raise ShapeError(f"PCM samples must be int16, int32 or float, got {x.dtype}")
        x = x.astype(np.float32, copy=False)
        if sample_rate != SAMPLE_RATE:
            if self._resampler is None or self._rate != sample_rate:
                import soxr
                self._resampler = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32")
                self._rate = sample_rate
            x = self._resampler.resample_chunk(x)
        return x

    def feed(self, pcm: np.ndarray, sample_rate: float = SAMPLE_RATE) -> list[Detection]:
        """Add a chunk of audio (any length; int16/int32/float, mono or [samples, channels]); new detections."""
        x = self._to_16k(pcm, float(sample_rate))
        self._buf = np.concatenate([self._buf, x])
        end_avail = self._buf_start + self._buf.size
        ends = []
        while self._next_end <= end_avail:
            ends.append(self._next_end)
            self._next_end += self.hop
        found = []
        if ends:
            clips = np.stack([self._buf[e - self.window - self._buf_start:e - self._buf_start] for e in ends])
            words = self.spotter.frontend.words(clips)
            post = self.spotter.posteriors(self.spotter.scores(words))
            for e, p in zip(ends, post):
                self._recent.append(p)
                smooth = np.mean(self._recent, axis=0)
                idx = int(np.argmax(smooth))
                t = e / SAMPLE_RATE
                if (self.keyword_mask[idx] and smooth[idx] >= self.threshold
                        and t - self._last_detection >= self.refractory_s):
                    self._last_detection = t
                    found.append(Detection(label=self.spotter.labels[idx], time_s=t, confidence=float(smooth[idx]),
                                           index=idx))
        keep_from = self._next_end - self.window        # first sample the next window needs
        drop = max(0, min(keep_from - self._buf_start, self._buf.size))
        if drop:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return found
