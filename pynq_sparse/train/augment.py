"""Waveform and spectrogram augmentation for training (numpy, whole batches).

Usage::

    aug = Augmenter(noise_bank, rng=np.random.default_rng(0))
    y_aug = aug.waveforms(y)          # float32 [B, 16000]
    words = aug.spec_mask(words)      # int8 [B, 32, 32]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N = 16000


@dataclass
class AugmentConfig:
    p_shift: float = 0.8         # probability of a time shift
    max_shift: int = 2400        # samples (150 ms) either way
    p_speed: float = 0.4         # probability of a speed change
    speed_range: float = 0.15    # factor in [1 - r, 1 + r]
    p_gain: float = 0.5          # amplitude x U(0.7, 1.1) before noise is added
    p_bg_noise: float = 0.5      # probability of mixing a real background-noise segment
    snr_db: tuple = (5.0, 30.0)  # SNR range for background noise
    p_blend: float = 0.15        # Numenta's blend x*(1-a) + a*U(-1,1)
    blend_max: float = 0.1       # largest a used in training
    p_specmask: float = 0.4      # SpecAugment-style masking of the int8 word
    max_mask: int = 4            # widest time / mel mask


class Augmenter:
    """Random audio perturbations (deterministic for a given rng)."""

    def __init__(self, noise_bank: np.ndarray | None, cfg: AugmentConfig | None = None,
                 rng: np.random.Generator | None = None):
        self.noise = noise_bank if noise_bank is not None and len(noise_bank) else None
        self.cfg = cfg or AugmentConfig()
        self.rng = rng or np.random.default_rng()

    def waveforms(self, y: np.ndarray) -> np.ndarray:
        """Augmented copy of a float32 batch [B, 16000]."""
        cfg, rng = self.cfg, self.rng
        out = np.array(y, dtype=np.float32, copy=True)
        t = np.arange(N, dtype=np.float64)
        for b in range(len(out)):
            x = out[b]
            if rng.random() < cfg.p_speed:
                f = 1.0 + rng.uniform(-cfg.speed_range, cfg.speed_range)
                x = np.interp(t * f, t, x, right=0.0).astype(np.float32)
            if rng.random() < cfg.p_shift:
                s = int(rng.integers(-cfg.max_shift, cfg.max_shift + 1))
                x = np.roll(x, s)
                if s > 0:
                    x[:s] = 0
                elif s < 0:
                    x[s:] = 0
            if rng.random() < cfg.p_gain:
                x = x * rng.uniform(0.7, 1.1)
            if self.noise is not None and rng.random() < cfg.p_bg_noise:
                nz = self.noise[rng.integers(len(self.noise))]
                p_sig = float(np.mean(x ** 2)) + 1e-10
                p_nz = float(np.mean(nz ** 2)) + 1e-10
                snr = rng.uniform(*cfg.snr_db)
                x = x + nz * np.sqrt(p_sig / (p_nz * 10 ** (snr / 10)))
            if rng.random() < cfg.p_blend:
                a = rng.uniform(0, cfg.blend_max)
                x = x * (1 - a) + a * rng.uniform(-1, 1, N)
            out[b] = x
        return out

    def spec_mask(self, words: np.ndarray) -> np.ndarray:
        """Zero (the -80 dB floor) random time and mel stripes of int8 words [B, 32, 32]."""
        cfg, rng = self.cfg, self.rng
        out = words.copy()
        for b in range(len(out)):
            if rng.random() < cfg.p_specmask:
                w = int(rng.integers(1, cfg.max_mask + 1))
                s = int(rng.integers(0, 32 - w))
                out[b, :, s:s + w] = 0
                w = int(rng.integers(1, cfg.max_mask + 1))
                s = int(rng.integers(0, 32 - w))
                out[b, s:s + w, :] = 0
        return out


def noise_blend(y: np.ndarray, a: float, rng: np.random.Generator) -> np.ndarray:
    """Numenta's noise-robustness blend: y * (1 - a) + a * U(-1, 1), per sample."""
    return (y * (1 - a) + a * rng.uniform(-1, 1, y.shape)).astype(np.float32)
