"""PyTorch networks: the float sparse CNN (k-WTA, complementary masks), its dense baseline, and the QAT model.

Layer order follows Numenta's hardware-friendly recipe: conv -> BatchNorm (no
affine) -> max-pool -> k-WTA (global over C*H*W), so the next layer sees the
winners of the pooled map. The quantisation-aware model folds BatchNorm and
reproduces the integer arithmetic of docs/golden_model.md in float.

Usage::

    net = SparseCNN(seed=0)                    # float training (masks fixed at init)
    qnet = QuantSparseCNN.from_float(net, calib_words)   # QAT fine-tuning, then export
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..architecture import ARCHITECTURE, LayerSpec, complementary_owners


def complementary_mask(spec: LayerSpec, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """Float mask [C_out, F] and its owner table [G, F] (complementary within each group of n_pack)."""
    g = spec.out_channels // spec.n_pack
    owner = complementary_owners(g, spec.fan_in, spec.n_pack, rng)
    slot = np.arange(spec.out_channels) % spec.n_pack
    mask = owner[np.arange(spec.out_channels) // spec.n_pack] == slot[:, None]   # (C_out, F)
    return torch.from_numpy(mask.astype(np.float32)), owner


def topk_mask(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mask [B, n] of the k largest per row (ties in any order: for float training)."""
    mask = torch.zeros_like(x)
    mask.scatter_(1, torch.topk(x, k, dim=1, sorted=False).indices, 1.0)
    return mask


def stable_topk_mask(q: torch.Tensor, k: int) -> torch.Tensor:
    """Mask [B, n] of the k largest integer values q (0..127) per row, ties to the lowest index.

    The key q * n + (n - 1 - index) is unique per row and orders like the golden rule
    (value descending, index ascending); it is exact in float64.
    """
    n = q.shape[1]
    idx = torch.arange(n, dtype=torch.float64, device=q.device)
    key = q.double() * n + (n - 1 - idx)
    return topk_mask(key, k).to(q.dtype)


class KWinners(nn.Module):
    """Global k-winner-take-all over (C, H, W) with boosting during training.

    Training ranks on ``x * exp((target - duty) * boost)`` (units that rarely win are
    favoured) but winners keep their own values; evaluation keeps the exact k largest.
    Outputs are clamped at 0 like the integer model (a ReLU on the winners).
    """

    def __init__(self, n: int, k: int, boost_strength: float = 1.5, duty_period: int = 1000):
        super().__init__()
        self.n, self.k = n, k
        self.boost_strength = boost_strength
        self.duty_period = duty_period
        self.register_buffer("duty_cycle", torch.zeros(n))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)                               # (B, n)
        if self.training and self.boost_strength > 0:
            target = self.k / self.n
            boost = torch.exp((target - self.duty_cycle) * self.boost_strength)
            mask = topk_mask(flat.detach() * boost, self.k)
        else:
            mask = topk_mask(flat.detach(), self.k)
        if self.training:
            with torch.no_grad():
                b = flat.shape[0]
                self.seen += b
                period = min(self.duty_period, int(self.seen))
                self.duty_cycle.mul_(period - b).add_(mask.sum(0)).div_(period)
        return (F.relu(flat) * mask).reshape(x.shape)


class SparseCNN(nn.Module):
    """Whitepaper Table 1 CNN. ``dense=True`` gives the dense baseline (no masks, ReLU, no k-WTA)."""

    def __init__(self, seed: int = 0, dense: bool = False, boost_strength: float = 1.5,
                 specs: tuple[LayerSpec, ...] = ARCHITECTURE):
        super().__init__()
        self.dense = dense
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        c1, c2, f1, f2 = specs
        self.specs = specs
        self.conv1 = nn.Conv2d(1, c1.out_channels, c1.kernel_size)
        self.conv2 = nn.Conv2d(c2.in_shape[0], c2.out_channels, c2.kernel_size)
        self.fc1 = nn.Linear(f1.fan_in, f1.out_channels)
        self.fc2 = nn.Linear(f2.fan_in, f2.out_channels)
        self.bn1 = nn.BatchNorm2d(c1.out_channels, affine=False)
        self.bn2 = nn.BatchNorm2d(c2.out_channels, affine=False)
        self.bn3 = nn.BatchNorm1d(f1.out_channels, affine=False)
        for name, spec in zip(("conv1", "conv2", "fc1", "fc2"), specs):
            mod = getattr(self, name)
            if dense:
                mask = torch.ones(spec.out_channels, spec.fan_in)
                owner = np.zeros((spec.out_channels, spec.fan_in), np.uint8)
            else:
                mask, owner = complementary_mask(spec, rng)
                with torch.no_grad():   # Kaiming-like init for the sparse fan-in
                    fan = spec.fan_in / spec.n_pack
                    mod.weight.normal_(0.0, math.sqrt(2.0 / fan))
            self.register_buffer(f"{name}_mask", mask.reshape(mod.weight.shape))
            self.register_buffer(f"{name}_owner", torch.from_numpy(owner))
        self.kwta = nn.ModuleList([
            KWinners(int(np.prod(s.out_shape)), s.k, boost_strength) for s in specs[:3]])
        self.apply_masks()

    @property
    def owners(self) -> dict[str, np.ndarray]:
        """Owner tables [G, F] per layer (saved with the state dict)."""
        return {n: getattr(self, f"{n}_owner").numpy() for n in ("conv1", "conv2", "fc1", "fc2")}

    def apply_masks(self) -> None:
        """Re-zero masked weights (call after every optimiser step)."""
        with torch.no_grad():
            for name in ("conv1", "conv2", "fc1", "fc2"):
                getattr(self, name).weight.mul_(getattr(self, f"{name}_mask"))

    def act(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.dense else self.kwta[i](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:        # x: (B, 1, 32, 32) in [0, 1]
        x = self.act(0, F.max_pool2d(self.bn1(self.conv1(x)), 2))       # (B, 64, 14, 14)
        x = self.act(1, F.max_pool2d(self.bn2(self.conv2(x)), 2))       # (B, 64, 5, 5)
        x = self.act(2, self.bn3(self.fc1(x.flatten(1))))               # (B, 1500)
        return self.fc2(x)                                              # (B, 12)

    def set_boost(self, strength: float) -> None:
        for kw in self.kwta:
            kw.boost_strength = strength


def specs_of(model) -> tuple[LayerSpec, ...]:
    """The LayerSpecs of an exported SparseModel (n_pack and k as stored in the file)."""
    out = []
    for layer in model.layers:
        n_out = int(np.prod(layer.out_shape))
        out.append(LayerSpec(layer.name, layer.kind, tuple(layer.in_shape), layer.out_channels, layer.kernel_size,
                             layer.pool, layer.n_pack, layer.k / n_out))
    return tuple(out)


def make_specs(n_pack: str = "", percent_on: str = "") -> tuple[LayerSpec, ...]:
    """ARCHITECTURE with optional overrides, e.g. n_pack="4,8,25,1", percent_on="0.12,0.12,0.12"."""
    specs = list(ARCHITECTURE)
    if n_pack:
        specs = [dataclasses.replace(s, n_pack=int(v)) for s, v in zip(specs, n_pack.split(","))]
    if percent_on:
        vals = [float(v) for v in percent_on.split(",")] + [0.0]
        specs = [dataclasses.replace(s, percent_on=v) for s, v in zip(specs, vals)]
    return tuple(specs)


# --- quantisation-aware model -------------------------------------------------
def round_half_up(x: torch.Tensor) -> torch.Tensor:
    """floor(x + 0.5) with a straight-through gradient."""
    return x + (torch.floor(x + 0.5) - x).detach()


def fake_quant_weight(w: torch.Tensor, per_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 (-127..127) fake quantisation; returns (w_q in real units, scale per channel)."""
    flat = w.reshape(w.shape[0], -1)
    amax = flat.abs().amax(dim=1) if per_channel else flat.abs().amax().expand(w.shape[0])
    scale = (amax.clamp_min(1e-8) / 127.0).detach()
    shape = (-1,) + (1,) * (w.dim() - 1)
    q = torch.clamp(round_half_up(w / scale.reshape(shape)), -127, 127)
    return q * scale.reshape(shape), scale


class QuantSparseCNN(nn.Module):
    """BatchNorm-folded network with int8 fake quantisation that mirrors the golden integer model.

    Activations are `clamp(floor(z / s_a + 0.5), 0, 127) * s_a` after pooling, then k-WTA
    (no boost, lowest-index tie-break); weights are per-channel int8 for hidden layers and
    per-tensor for fc2 so integer scores rank like the float logits.
    """

    names = ("conv1", "conv2", "fc1", "fc2")

    def __init__(self, float_net: SparseCNN):
        super().__init__()
        self.specs = float_net.specs
        bns = (float_net.bn1, float_net.bn2, float_net.bn3, None)
        for name, bn in zip(self.names, bns):
            mod = getattr(float_net, name)
            w = mod.weight.detach().clone()
            b = mod.bias.detach().clone()
            if bn is not None:                      # fold BN (affine=False): (z - mean) / std
                std = torch.sqrt(bn.running_var + bn.eps)
                w = w / std.reshape((-1,) + (1,) * (w.dim() - 1))
                b = (b - bn.running_mean) / std
            self.register_parameter(f"{name}_w", nn.Parameter(w))
            self.register_parameter(f"{name}_b", nn.Parameter(b))
            self.register_buffer(f"{name}_mask", getattr(float_net, f"{name}_mask").clone())
            self.register_buffer(f"{name}_owner", getattr(float_net, f"{name}_owner").clone())
        self.register_buffer("act_scale", torch.ones(3))   # s_a of conv1, conv2, fc1 outputs
        self.ks = [s.k for s in self.specs[:3]]

    @property
    def owners(self) -> dict[str, np.ndarray]:
        return {n: getattr(self, f"{n}_owner").numpy() for n in self.names}

    def layer_weights(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        name = self.names[i]
        w = getattr(self, f"{name}_w") * getattr(self, f"{name}_mask")
        return fake_quant_weight(w, per_channel=i < 3)

    def input_scale(self, i: int) -> float:
        return 1.0 / 127.0 if i == 0 else float(self.act_scale[i - 1])

    def layer(self, i: int, x: torch.Tensor, quant_act: bool = True) -> torch.Tensor:
        name = self.names[i]
        w_q, s_w = self.layer_weights(i)
        bias_scale = (self.input_scale(i) * s_w).detach()
        b_q = round_half_up(getattr(self, f"{name}_b") / bias_scale) * bias_scale
        if i < 2:
            z = F.max_pool2d(F.conv2d(x, w_q, b_q), 2)
        else:
            z = F.linear(x.flatten(1), w_q, b_q)
        if i == 3:
            return z
        if not quant_act:
            y = F.relu(z).reshape(z.shape[0], -1)
            return (y * topk_mask(y.detach(), self.ks[i])).reshape(z.shape)
        s_a = self.act_scale[i]
        q = torch.clamp(round_half_up(z / s_a), 0, 127).reshape(z.shape[0], -1)    # integer-valued
        return (q * stable_topk_mask(q.detach(), self.ks[i]) * s_a).reshape(z.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:      # x: (B, 1, 32, 32) = word / 127
        for i in range(4):
            x = self.layer(i, x)
        return x

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, percentile: float = 99.9) -> None:
        """Set each s_a from a high percentile of the layer's positive winners (float pass)."""
        for i in range(3):
            y = self.layer(i, x, quant_act=False)
            pos = y[y > 0]
            hi = torch.quantile(pos[torch.randperm(pos.numel())[:200_000]], percentile / 100.0)
            self.act_scale[i] = hi / 127.0
            x = self.layer(i, x, quant_act=True)

    @classmethod
    def from_sparse_model(cls, model) -> "QuantSparseCNN":
        """Rebuild the fake-quantised PyTorch model from an exported SparseModel (needs info["quant"])."""
        scales = model.info["quant"]
        q = cls(SparseCNN(seed=0, specs=specs_of(model)))
        with torch.no_grad():
            for name, layer in zip(cls.names, model.layers):
                s_w = torch.tensor(scales["weight_scale"][name], dtype=torch.float64)
                dense = torch.from_numpy(layer.dense_weights().astype(np.float64))
                w = dense * s_w[:, None]
                getattr(q, f"{name}_w").copy_(w.reshape(getattr(q, f"{name}_w").shape).float())
                i = cls.names.index(name)
                s_x = 1.0 / 127.0 if i == 0 else scales["act_scale"][i - 1]
                getattr(q, f"{name}_b").copy_((torch.from_numpy(layer.bias.astype(np.float64)) * s_x * s_w).float())
                mask = (torch.from_numpy(layer.owner.astype(np.int64))[torch.arange(layer.out_channels) // layer.n_pack]
                        == (torch.arange(layer.out_channels) % layer.n_pack)[:, None])
                getattr(q, f"{name}_mask").copy_(mask.float().reshape(getattr(q, f"{name}_mask").shape))
                getattr(q, f"{name}_owner").copy_(torch.from_numpy(layer.owner))
            q.act_scale.copy_(torch.tensor(scales["act_scale"]))
        return q

    @classmethod
    def from_float(cls, net: SparseCNN, calib: torch.Tensor) -> "QuantSparseCNN":
        q = cls(net)
        q.calibrate(calib)
        return q
