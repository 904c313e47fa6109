"""Words into DMA buffer bytes, and 64-byte results back into scores and classes.

The stream formats are those of `pynq_sparse.core_interface`: a word is 1,024
int8 bytes (cell (h, w) at byte h*32 + w, i.e. C order of [32, 32]); a result is
16 little-endian int32 (scores 0..11, class, sequence number, model_id, flags).

Usage::

    words = as_words(spectrograms)            # int8 [B, 32, 32], checked
    pack_words(words[:n], in_buffer)          # copy into a DMA buffer (PACKER: big chunks over every core)
    dma_view(words, device)                   # the words themselves when they are in a DMA buffer
    res = Results(out_rows)                   # int32 [B, 16] rows as received
    res.scores, res.classes, res.seq
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from pynq_sparse import core_interface as ci
from pynq_sparse.errors import ShapeError
from pynq_sparse.golden import check_words

N_SCORES = ci.RESULT_CLASS          # scores occupy ints 0..RESULT_CLASS-1 (12)


def as_words(words: np.ndarray, check_values: bool = True) -> np.ndarray:
    """int8 C-contiguous [B, 32, 32] from `words` ([B, 32, 32] or one [32, 32]).

    With `check_values` the values must be 0..127 (the front end's range, as the golden
    model requires); without it only shape and dtype are checked (the fast path).
    """
    arr = np.asarray(words)
    if check_values or arr.dtype != np.int8:
        arr = check_words(arr)
    elif arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (32, 32):
        raise ShapeError(f"words must have shape [B, 32, 32], got {list(arr.shape)}")
    return np.ascontiguousarray(arr)


def dma_view(words, device):
    """`words` itself when the DMA can read it in place, else None.

    That is a `pynq.buffer.PynqBuffer` (or a view of one) allocated on `device`, int8
    [n, 32, 32] and C-contiguous: e.g. from `SparseKwsOverlay.allocate_words(n)`, filled by
    `FastFrontend.words(clips, out=...)`. Chunks of it are sent as they are: no packing.
    """
    from pynq.buffer import PynqBuffer
    if (isinstance(words, PynqBuffer) and getattr(words, "device", None) is device and words.dtype == np.int8
            and words.ndim == 3 and words.shape[1:] == (32, 32) and words.flags.c_contiguous
            and getattr(words, "device_address", None) is not None):
        return words
    return None


def pack_words(words: np.ndarray, buffer: np.ndarray) -> None:
    """Copy int8 words [n, 32, 32] into the first n words of a DMA input buffer (int8 [>= n, 32, 32]).

    The shared `PACKER` does the copy (big chunks split over the cores).
    """
    PACKER.pack(words, buffer)


class Packer:
    """Copies words into DMA input buffers with every core (numpy releases the GIL while copying).

    Packing is the one host-path stage that grows with the bytes moved (1 KB a word), and one
    core's copy rate is below the DMA's. A chunk of at least `split_bytes` is cut into one
    part per worker: the caller's thread copies the first part while worker threads copy
    the others, then it waits for them (a blocking wait, so the workers never queue for the
    GIL behind a polling loop). Smaller chunks are copied on the caller's thread alone.

    Usage::

        packer = Packer(workers=2)
        seconds = packer.pack(words[a:b], buffer)   # buffer[:b - a] now holds the words
    """

    def __init__(self, workers: int | None = None, split_bytes: int = 1 << 20, timeout_s: float = 30.0) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.split_bytes, self.timeout_s = split_bytes, timeout_s
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="pynq-sparse-pack")
            return self._pool

    def pack(self, words: np.ndarray, buffer: np.ndarray) -> float:
        """Copy int8 words [n, 32, 32] into the first n words of `buffer`; returns the copy's wall time."""
        t0 = time.perf_counter()
        n = len(words)
        dst = buffer[:n]
        if dst.shape != words.shape:
            raise ShapeError(f"cannot pack {list(words.shape)} words into a buffer of {list(buffer.shape)}")
        parts = min(self.workers, n) if words.nbytes >= self.split_bytes else 1
        if parts <= 1:
            np.copyto(dst, words, casting="no")
            return time.perf_counter() - t0
        bounds = np.linspace(0, n, parts + 1).astype(int)
        pool = self._executor()
        futures = [pool.submit(np.copyto, dst[a:b], words[a:b], casting="no")
                   for a, b in zip(bounds[1:-1], bounds[2:])]
        try:
            np.copyto(dst[:bounds[1]], words[:bounds[1]], casting="no")
        finally:                                # never return while a worker still writes the buffer
            deadline = time.monotonic() + self.timeout_s
            for f in futures:
                f.result(timeout=max(0.0, deadline - time.monotonic()))
        return time.perf_counter() - t0

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


PACKER = Packer()                       # shared by every DmaStream of the process


def unpack_results(buffer: np.ndarray, n: int, out: np.ndarray) -> None:
    """Copy the first n result rows (int32 [n, 16]) of a DMA output buffer into `out`."""
    np.copyto(out, buffer[:n], casting="no")


@dataclass
class Results:
    """Results of a batch in input order; `raw` holds the rows exactly as the core sent them."""

    raw: np.ndarray                         # int32 [B, 16]

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def scores(self) -> np.ndarray:
        """int32 [B, 12] (a view of `raw`)."""
        return self.raw[:, :N_SCORES]

    @property
    def classes(self) -> np.ndarray:
        """int32 [B]: argmax of the scores, ties to the lowest index (computed by the core)."""
        return self.raw[:, ci.RESULT_CLASS]

    @property
    def seq(self) -> np.ndarray:
        """uint32 [B]: the core's sequence number of each word."""
        return self.raw[:, ci.RESULT_SEQ].view(np.uint32)

    @property
    def model_ids(self) -> np.ndarray:
        """uint32 [B]: model_id of the weights that computed each word."""
        return self.raw[:, ci.RESULT_MODEL_ID].view(np.uint32)

    @property
    def tlast(self) -> np.ndarray:
        """bool [B]: the word ended a transfer."""
        return (self.raw[:, ci.RESULT_FLAGS] & 1).astype(bool)
