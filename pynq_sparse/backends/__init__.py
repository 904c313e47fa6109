"""Compute backends: everything that turns int8 words into the golden model's int32 scores.

Every backend computes exactly `pynq_sparse.golden.golden_scores` (docs/golden_model.md),
bit for bit; they differ only in speed.

Usage::

    from pynq_sparse.backends import get_backend
    backend = get_backend()                  # "auto": the fast CPU backend when numba imports
    scores = backend.scores(words)           # int8 [B, 32, 32] -> int32 [B, 12]
    get_backend("golden").scores(words)      # the readable reference, slow
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..golden import check_words, golden_scores
from ..model_file import SparseModel, load_model

BACKEND_NAMES = ("auto", "golden", "cpu")


@runtime_checkable
class Backend(Protocol):
    """Anything with a name that maps int8 words [B, 32, 32] to int32 scores [B, n_classes]."""

    name: str

    def scores(self, words: np.ndarray) -> np.ndarray:
        """int32 [B, n_classes] for int8 words [B, 32, 32] (or one word [32, 32] -> [1, n])."""
        ...


class GoldenBackend:
    """The golden integer reference (`pynq_sparse.golden`) behind the Backend interface."""

    name = "golden"

    def __init__(self, model: SparseModel | None = None) -> None:
        self.model = model if model is not None else load_model()

    def scores(self, words: np.ndarray) -> np.ndarray:
        return golden_scores(self.model, check_words(words))


def cpu_backend_available() -> bool:
    """True when numba imports (the fast CPU backend can be compiled)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def get_backend(name: str = "auto", model: SparseModel | None = None) -> Backend:
    """Build the backend `name` ("auto", "golden" or "cpu") for `model` (default: the shipped model).

    "auto" is "cpu" when numba imports and the model has the layer chain the CPU
    backend compiles (conv, conv..., fc..., as in pynq_sparse.architecture), else "golden".
    """
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    model = model if model is not None else load_model()
    if name == "golden":
        return GoldenBackend(model)
    if name == "auto" and not cpu_backend_available():
        return GoldenBackend(model)
    from .cpu_sparse import SparseCpuBackend, supports_model
    if name == "auto" and not supports_model(model):
        return GoldenBackend(model)
    return SparseCpuBackend(model)


__all__ = ["BACKEND_NAMES", "Backend", "GoldenBackend", "cpu_backend_available", "get_backend"]
