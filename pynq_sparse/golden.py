"""Golden integer reference: the readable definition of what every backend computes.

One function per step of docs/golden_model.md section 4, integer numpy only
(int64 holds every intermediate; the widths the hardware needs are stated).

Usage::

    from pynq_sparse.golden import golden_scores
    from pynq_sparse.model_file import load_model
    scores = golden_scores(load_model(), words)    # words: int8 [B, 32, 32] -> int32 [B, 12]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import ShapeError
from .model_file import ACT_MAX, Layer, SparseModel

WORD_SHAPE = (32, 32)


def check_words(words: np.ndarray) -> np.ndarray:
    """Return `words` as int8 [B, 32, 32] (a single [32, 32] word becomes B = 1), values 0..127."""
    words = np.asarray(words)
    if words.ndim == 2:
        words = words[None]
    if words.ndim != 3 or words.shape[1:] != WORD_SHAPE:
        raise ShapeError(f"words must have shape [B, 32, 32] or [32, 32], got {list(np.shape(words))}")
    if words.dtype != np.int8:
        if not np.issubdtype(words.dtype, np.integer):
            raise ShapeError(f"words must be int8 spectrograms (0..127), got dtype {words.dtype}")
        if words.size and (words.min() < -128 or words.max() > 127):
            raise ShapeError("words must be int8 spectrograms (0..127); values exceed the int8 range")
        words = words.astype(np.int8)
    if words.size and words.min() < 0:
        raise ShapeError("words must hold values 0..127 (the front end's int8 range); negative values found")
    return words


def conv_acc(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Valid 2-D convolution (cross-correlation) with bias: int64 [C_out, Ho, Wo] from x [C, H, W]."""
    c, h, w = layer.in_shape
    kk = layer.kernel_size
    win = sliding_window_view(x.astype(np.int64), (kk, kk), axis=(1, 2))   # (C, Ho, Wo, k, k)
    ho, wo = win.shape[1], win.shape[2]
    cols = win.transpose(1, 2, 0, 3, 4).reshape(ho * wo, c * kk * kk)    # (Ho*Wo, F), F = ci*25+ky*5+kx
    acc = cols @ layer.dense_weights().astype(np.int64).T                  # (Ho*Wo, C_out)
    acc += layer.bias.astype(np.int64)
    return acc.T.reshape(layer.out_channels, ho, wo)


def fc_acc(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Fully connected layer with bias: int64 [C_out] from x [F]."""
    return layer.dense_weights().astype(np.int64) @ x.astype(np.int64).reshape(-1) + layer.bias.astype(np.int64)


def maxpool2(acc: np.ndarray) -> np.ndarray:
    """2x2 max-pool, stride 2, on [C, H, W] (odd trailing rows/columns dropped)."""
    c, h, w = acc.shape
    a = acc[:, : h // 2 * 2, : w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2)
    return a.max(axis=(2, 4))


def requantize(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """y = clamp((acc * mult + 2^(shift-1)) >> shift, 0, 127), per output channel (axis 0)."""
    bshape = (-1,) + (1,) * (acc.ndim - 1)
    m = mult.astype(np.int64).reshape(bshape)
    s = shift.astype(np.int64).reshape(bshape)
    y = (acc.astype(np.int64) * m + (np.int64(1) << (s - 1))) >> s
    return np.clip(y, 0, ACT_MAX)


def kwta(v: np.ndarray, k: int) -> np.ndarray:
    """k-winner-take-all on flattened values: keep the k largest, ties to the lowest index."""
    flat = v.reshape(-1)
    order = np.lexsort((np.arange(flat.size), -flat))       # value descending, index ascending
    out = np.zeros_like(flat)
    win = order[:k]
    out[win] = flat[win]
    return out.reshape(v.shape)


def kwta_threshold(v: np.ndarray, k: int) -> tuple[int, int]:
    """Hardware form of k-WTA: (T, ties_taken): T = largest t with count(v >= t) >= k."""
    hist = np.bincount(v.reshape(-1).astype(np.int64), minlength=ACT_MAX + 1)
    above = 0
    for t in range(ACT_MAX, -1, -1):
        if above + hist[t] >= k:
            return t, k - above
        above += hist[t]
    return 0, int(hist[0])


def layer_forward(x: np.ndarray, layer: Layer) -> np.ndarray:
    """One layer: accumulate, (pool,) and for hidden layers requantise + k-WTA; the last returns scores."""
    acc = conv_acc(x, layer) if layer.kind == "conv" else fc_acc(x, layer)
    if layer.pool == 2:
        acc = maxpool2(acc)
    if layer.is_final:
        return acc.reshape(-1)
    return kwta(requantize(acc, layer.requant_mult, layer.requant_shift), layer.k)


@dataclass
class GoldenTrace:
    """Everything the golden model computed for one word (for debugging and hardware tests)."""

    activations: list[np.ndarray]   # input word, then the output of every hidden layer (after k-WTA)
    scores: np.ndarray              # int32 [n_classes]

    @property
    def label_index(self) -> int:
        return int(np.argmax(self.scores))   # argmax returns the lowest index among ties


def golden_trace(model: SparseModel, word: np.ndarray) -> GoldenTrace:
    """Run one word [32, 32] through `model`, keeping every intermediate activation."""
    x = check_words(word)[0].astype(np.int64).reshape(model.layers[0].in_shape)
    acts = [x]
    for layer in model.layers:
        x = layer_forward(x.reshape(layer.in_shape), layer)
        acts.append(x)
    scores = acts.pop()
    if np.abs(scores).max(initial=0) >= 2 ** 31:
        raise OverflowError("score outside int32: the model breaks the accumulator bound")
    return GoldenTrace(activations=acts, scores=scores.astype(np.int32))


def golden_scores(model: SparseModel, words: np.ndarray) -> np.ndarray:
    """Scores int32 [B, n_classes] for int8 words [B, 32, 32] (or one word [32, 32] -> [1, n])."""
    words = check_words(words)
    out = np.empty((len(words), model.n_classes), dtype=np.int32)
    for b, word in enumerate(words):
        out[b] = golden_trace(model, word).scores
    return out


def predict(scores: np.ndarray) -> np.ndarray:
    """Class index per row of int32 scores; ties go to the lowest index."""
    return np.argmax(np.atleast_2d(scores), axis=1)


def confidences(scores: np.ndarray, score_scale: float) -> np.ndarray:
    """Softmax of `scores * score_scale` per row (float64; display only, not part of the contract)."""
    z = np.atleast_2d(scores).astype(np.float64) * score_scale
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
