"""Words into DMA buffer bytes, and 64-byte results back into scores and classes.

The stream formats are those of `pynq_sparse.core_interface`: a word is 1,024
int8 bytes (cell (h, w) at byte h*32 + w, i.e. C order of [32, 32]); a result is
16 little-endian int32 (scores 0..11, class, sequence number, model_id, flags).

Usage::

    words = as_words(spectrograms)            # int8 [B, 32, 32], checked
    pack_words(words[:n], in_buffer)          # copy into a DMA buffer
    res = Results(out_rows)                   # int32 [B, 16] rows as received
    res.scores, res.classes, res.seq
"""
from __future__ import annotations

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


def pack_words(words: np.ndarray, buffer: np.ndarray) -> None:
    """Copy int8 words [n, 32, 32] into the first n words of a DMA input buffer (int8 [>= n, 32, 32])."""
    np.copyto(buffer[:len(words)], words, casting="no")


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
