"""The network's shape (whitepaper Table 1) and complementary weight masks.

Shared by training (float masks) and by tools that need a valid model without
training (tests, hardware bring-up).

Usage::

    from pynq_sparse.architecture import ARCHITECTURE, complementary_owners, random_model
    owner = complementary_owners(n_groups=8, fan_in=25, n_pack=8, rng=np.random.default_rng(0))
    model = random_model(seed=1)          # a valid SparseModel with random weights
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model_file import MULT_MIN, Layer, SparseModel

LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_"]
KEYWORDS = LABELS[:10]
FRONTEND = {"sample_rate": 16000, "n_samples": 16000, "n_fft": 2048, "hop_length": 512, "n_mels": 32,
            "center": True, "pad_mode": "constant", "power": 2.0, "top_db": 80.0, "amin": 1e-10,
            "quant": "clip(floor((db + 80) * 127/80 + 0.5), 0, 127)"}


@dataclass(frozen=True)
class LayerSpec:
    """Shape of one layer; `percent_on` sets k = round(percent_on * outputs after pooling)."""

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_channels: int
    kernel_size: int
    pool: int
    n_pack: int
    percent_on: float      # 0 for the final layer

    @property
    def fan_in(self) -> int:
        if self.kind == "conv":
            return self.in_shape[0] * self.kernel_size ** 2
        return int(np.prod(self.in_shape))

    @property
    def out_shape(self) -> tuple[int, ...]:
        if self.kind == "conv":
            _, h, w = self.in_shape
            s = h - self.kernel_size + 1
            return (self.out_channels, s // self.pool, (w - self.kernel_size + 1) // self.pool)
        return (self.out_channels,)

    @property
    def k(self) -> int:
        return int(round(self.percent_on * int(np.prod(self.out_shape))))


ARCHITECTURE: tuple[LayerSpec, ...] = (
    LayerSpec("conv1", "conv", (1, 32, 32), 64, 5, 2, 4, 0.12),    # k = 1505 of 64x14x14
    LayerSpec("conv2", "conv", (64, 14, 14), 64, 5, 2, 8, 0.12),   # k = 192 of 64x5x5
    LayerSpec("fc1", "fc", (1600,), 1500, 0, 1, 25, 0.12),         # k = 180 of 1500
    LayerSpec("fc2", "fc", (1500,), 12, 0, 1, 1, 0.0),             # scores
)


def complementary_owners(n_groups: int, fan_in: int, n_pack: int, rng: np.random.Generator) -> np.ndarray:
    """Owner table [n_groups, fan_in] whose rows split the fan-in evenly among n_pack kernels.

    Each row is a random permutation of `arange(fan_in) % n_pack`, so kernel s of a group
    owns floor or ceil(fan_in / n_pack) positions and no two kernels of a group share one.
    """
    base = np.arange(fan_in) % n_pack
    return np.stack([rng.permutation(base) for _ in range(n_groups)]).astype(np.uint8)


def random_model(seed: int = 0, density_of_packed: float = 1.0) -> SparseModel:
    """A valid model with random int8 weights (for tests and hardware bring-up, not for accuracy)."""
    rng = np.random.default_rng(seed)
    layers = []
    for spec in ARCHITECTURE:
        g = spec.out_channels // spec.n_pack
        owner = complementary_owners(g, spec.fan_in, spec.n_pack, rng)
        w = rng.integers(-127, 128, size=(g, spec.fan_in)).astype(np.int8)
        w[rng.random(w.shape) > density_of_packed] = 0
        n_eff = max(1, spec.fan_in // spec.n_pack)
        bias = rng.integers(-2000, 2000, size=spec.out_channels).astype(np.int32)
        # scale so that a typical accumulator (~ 64 * 40 * sqrt(n_eff/4)) lands mid-range
        mult = rng.integers(MULT_MIN, 2 * MULT_MIN, size=spec.out_channels).astype(np.int32)
        shift = np.full(spec.out_channels, 14 + int(np.ceil(np.log2(max(2.0, 40 * np.sqrt(n_eff))))) - 3,
                        dtype=np.uint8)
        layers.append(Layer(name=spec.name, kind=spec.kind, in_shape=spec.in_shape, out_channels=spec.out_channels,
                            kernel_size=spec.kernel_size, pool=spec.pool, n_pack=spec.n_pack, k=spec.k,
                            packed_weights=w, owner=owner, bias=bias, requant_mult=mult, requant_shift=shift))
    return SparseModel(layers=layers, labels=list(LABELS), frontend=dict(FRONTEND), score_scale=1e-4,
                       info={"kind": "random", "seed": seed})
