"""How the emulated core turns words into scores: from the weight image it holds, bit-exact.

The emulated core never sees a `SparseModel`; like the hardware it holds the
weight image written through WLOAD_DATA. `model_from_image` rebuilds the
layers from those words and `scorer_for_image` returns the fastest bit-exact
scorer available (`pynq_sparse.backends.get_backend`, which falls back to the
golden reference), cached by image content so that N copies and hot reloads
of the same weights share one backend.

Usage::

    scorer = scorer_for_image(image, backend="auto")
    scores = scorer.scores(words)    # int8 [B, 32, 32] -> int32 [B, 12]
"""
from __future__ import annotations

import hashlib
import zlib
from collections import OrderedDict
from typing import Protocol

import numpy as np

from ..core_interface import parse_weight_image
from ..model_file import Layer, SparseModel

class Scorer(Protocol):
    """A backend: `name` and `scores(words int8 [B, 32, 32]) -> int32 [B, 12]`."""

    name: str

    def scores(self, words: np.ndarray) -> np.ndarray: ...


class _Golden:
    name = "golden"

    def __init__(self, model: SparseModel) -> None:
        self.model = model

    def scores(self, words: np.ndarray) -> np.ndarray:
        from ..golden import golden_scores
        return golden_scores(self.model, words)


_CACHE: OrderedDict[tuple[str, bytes], Scorer] = OrderedDict()
_CACHE_SIZE = 8


def with_fresh_crc(image: np.ndarray) -> np.ndarray:
    """A copy of `image` whose last word is the CRC of the others (to parse a corrupted memory)."""
    out = np.array(image, dtype="<u4", copy=True)
    out[-1] = zlib.crc32(out[:-1].tobytes()) & 0xFFFF_FFFF
    return out


def model_from_image(image: np.ndarray) -> SparseModel:
    """The network a core computes with these weight-image words (no labels: class i is named str(i))."""
    model_id, layers = parse_weight_image(image)
    out = [Layer(name=f"layer{i}", kind=il.kind, in_shape=il.in_shape, out_channels=il.out_channels,
                 kernel_size=il.kernel_size, pool=il.pool, n_pack=il.n_pack, k=il.k,
                 packed_weights=il.packed_weights, owner=il.owner, bias=il.bias, requant_mult=il.requant_mult,
                 requant_shift=il.requant_shift, acc_bits=32)
           for i, il in enumerate(layers)]
    n_out = out[-1].out_channels
    return SparseModel(layers=out, labels=[str(i) for i in range(n_out)], frontend={}, model_id=model_id)


def _build_scorer(model: SparseModel, backend: str) -> Scorer:
    try:
        from ..backends import get_backend
    except ImportError:              # the backends package is optional for the emulator
        return _Golden(model)
    return get_backend(backend, model)


def scorer_for_image(image: np.ndarray, backend: str = "auto") -> Scorer:
    """A bit-exact scorer for the weights in `image` (its CRC is not checked here)."""
    key = (backend, hashlib.blake2b(np.ascontiguousarray(image, dtype="<u4").tobytes(), digest_size=16).digest())
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    scorer = _build_scorer(model_from_image(with_fresh_crc(image)), backend)
    _CACHE[key] = scorer
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return scorer
