"""Export: quantisation-aware PyTorch model -> integer `.pskw` model, and float models -> ONNX.

Usage::

    model = to_sparse_model(qnet, info={"epochs": 40})
    save_model(model, "gsc_sparse_v1.pskw")
    export_onnx(dense_net, "gsc_dense_fp32.onnx")
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..architecture import FRONTEND, LABELS
from ..model_file import MULT_MAX, MULT_MIN, Layer, SparseModel, validate_model
from .network import QuantSparseCNN


def mult_shift(m: float) -> tuple[int, int]:
    """Integer (mult, shift) with mult in [2^14, 2^15) and mult / 2^shift ~= m (m > 0)."""
    if not m > 0:
        raise ValueError(f"requantisation factor must be positive, got {m}")
    e = math.floor(math.log2(m))
    mult = int(math.floor(m * 2.0 ** (14 - e) + 0.5))
    if mult > MULT_MAX:
        mult, e = MULT_MIN, e + 1
    return mult, 14 - e


def _pack(w_int: np.ndarray, owner: np.ndarray, n_pack: int) -> np.ndarray:
    """packed[g, i] = w_int[g * n_pack + owner[g, i], i]."""
    g = np.arange(owner.shape[0])[:, None] * n_pack + owner.astype(np.int64)
    return np.take_along_axis(w_int, g, axis=0).astype(np.int8) if n_pack > 1 else w_int.astype(np.int8)


@torch.no_grad()
def to_sparse_model(q: QuantSparseCNN, info: dict[str, Any] | None = None) -> SparseModel:
    """Integer model whose golden inference equals `q`'s fake-quantised forward (up to M rounding)."""
    layers = []
    score_scale = 1.0
    scales: dict[str, Any] = {"act_scale": [float(v) for v in q.act_scale], "weight_scale": {}}
    for i, (name, spec) in enumerate(zip(q.names, q.specs)):
        w = (getattr(q, f"{name}_w") * getattr(q, f"{name}_mask")).reshape(spec.out_channels, -1)
        _, s_w = q.layer_weights(i)
        s_w = s_w.double().numpy()
        scales["weight_scale"][name] = [float(v) for v in s_w]
        w_int = np.clip(np.floor(w.double().numpy() / s_w[:, None] + 0.5), -127, 127).astype(np.int64)
        s_x = q.input_scale(i)
        bias_scale = s_x * s_w
        bias = np.floor(getattr(q, f"{name}_b").double().numpy() / bias_scale + 0.5).astype(np.int64)
        if i < 3:
            s_a = float(q.act_scale[i])
            ms = [mult_shift(s_x * sw / s_a) for sw in s_w]
            mult = np.array([m for m, _ in ms], np.int32)
            shift = np.array([s for _, s in ms], np.uint8)
        else:
            mult = np.full(spec.out_channels, MULT_MIN, np.int32)
            shift = np.ones(spec.out_channels, np.uint8)
            score_scale = float(bias_scale[0])
        owner = q.owners[name] if spec.n_pack > 1 else np.zeros((spec.out_channels, spec.fan_in), np.uint8)
        mask = getattr(q, f"{name}_mask").reshape(spec.out_channels, -1).numpy()
        assert np.all(w_int[mask == 0] == 0), "masked weights must stay zero"
        # keep int32 accumulators safe (docs/golden_model.md section 4)
        limit = 2 ** 31 - 1 - 127 * np.abs(w_int).sum(axis=1)
        bias = np.clip(bias, -limit, limit)
        layers.append(Layer(name=name, kind=spec.kind, in_shape=spec.in_shape, out_channels=spec.out_channels,
                            kernel_size=spec.kernel_size, pool=spec.pool, n_pack=spec.n_pack, k=spec.k,
                            packed_weights=_pack(w_int, owner, spec.n_pack), owner=owner.astype(np.uint8),
                            bias=bias.astype(np.int32), requant_mult=mult, requant_shift=shift))
    model = SparseModel(layers=layers, labels=list(LABELS), frontend=dict(FRONTEND), input_scale=1.0 / 127.0,
                        score_scale=score_scale, info={**(info or {}), "quant": scales})
    validate_model(model)
    return model


class _OnnxWrapper(nn.Module):
    """Evaluation wrapper: float input word/127 [B, 1, 32, 32] -> logits [B, 12]."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        return self.net(words)


def export_onnx(net: nn.Module, path: str | Path, opset: int = 17) -> Path:
    """Export a float network (eval mode) to ONNX with input `words` and output `logits`, dynamic batch."""
    path = Path(path)
    net = net.eval()
    dummy = torch.zeros(1, 1, 32, 32)
    torch.onnx.export(_OnnxWrapper(net), (dummy,), str(path), input_names=["words"], output_names=["logits"],
                      dynamic_axes={"words": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                      dynamo=False)
    return path
