"""numba kernels of the fast front end: framing + window, and mel power -> dB -> int8 words.

`FastFrontend` (pynq_sparse.frontend) runs each chunk of clips as: `window_frames` (one pass
that writes the Hann-windowed, zero-padded frames into the FFT buffer), scipy's in-place
float32 real FFT, then `mel_words` (squared spectrum x each mel filter's span, the contract's
power_to_db and quantisation, written straight into the int8 words). Each kernel is one pass
over its data with no temporary arrays; numba compiles them on first use (cached on disk) and
releases the GIL, so the front end's threads run them on every core.

The arithmetic follows the numpy steps of the reference recipe operation by operation (float32
cells, float64 reference term and quantisation, libm log10f as numpy uses); only the order
of the additions inside one mel filter's sum differs (as it does between BLAS builds).

Usage::

    from pynq_sparse.frontend_kernels import window_frames, mel_words
    window_frames(clips, window, frames)            # float32 [n, 16000] -> float32 [n, 32, 2048]
    bad = mel_words(spec, starts, stops, offsets, weights, words)   # -> int8 [n, 32, 32]; bad = -1 or a clip index
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .architecture import FRONTEND

_HOP = FRONTEND["hop_length"]               # 512
_PAD = FRONTEND["n_fft"] // 2               # centre padding (zeros): frame t starts at sample 512 t - 1024
_AMIN64 = float(FRONTEND["amin"])           # 1e-10, power floor before log10
_AMIN = np.float32(_AMIN64)
_TEN = np.float32(10.0)
_TOP_DB = np.float32(FRONTEND["top_db"])    # 80 dB


@njit(cache=True, nogil=True)
def window_frames(clips: np.ndarray, window: np.ndarray, frames: np.ndarray) -> None:
    """frames[c, t, j] = clips[c, 512 t - 1024 + j] * window[j], zero where that sample is outside the clip.

    clips float32 [n, L]; window float32 [N]; frames float32 [n, T, N] (C-contiguous), written in full.
    """
    n, length = clips.shape
    n_frames, n_fft = frames.shape[1], frames.shape[2]
    for c in range(n):
        for t in range(n_frames):
            s0 = t * _HOP - _PAD
            lo = max(0, -s0)                     # first window position inside the clip
            hi = max(lo, min(n_fft, length - s0))  # one past the last
            row = frames[c, t]
            row[:lo] = 0.0
            src, w, dst = clips[c, s0 + lo:s0 + hi], window[lo:hi], row[lo:hi]
            for j in range(hi - lo):             # slices: LLVM sees unit strides and vectorises
                dst[j] = src[j] * w[j]
            row[hi:] = 0.0


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _mel_power(spec: np.ndarray, starts: np.ndarray, stops: np.ndarray, offsets: np.ndarray,
               weights: np.ndarray, mel: np.ndarray) -> None:
    """mel[f, m] = sum_j spec[f, j]^2 * w_m[j] over band m's span of the packed spectrum (float32)."""
    for f in range(spec.shape[0]):
        for m in range(starts.shape[0]):
            a, b, o = starts[m], stops[m], offsets[m]
            x, w = spec[f, a:b], weights[o:o + b - a]
            s = np.float32(0.0)
            for j in range(b - a):               # slices + reassoc: a vectorised float32 reduction
                s += x[j] * x[j] * w[j]
            mel[f, m] = s


@njit(cache=True, nogil=True)
def _db_words(mel: np.ndarray, n_frames: int, words: np.ndarray) -> int:
    """power_to_db(ref=max, amin, top_db 80) and quantisation of each clip; -1, or the first non-finite clip.

    mel float32 [n * T, M] (frame-major); words int8 [n, M, T]. Per clip, as numpy/librosa do it:
    cell = float32(10 * log10(max(p, amin))) - float32(10 * log10(max(amin, float64(ref)))),
    then max(cell, max(cells) - 80) in float32, then clip(floor((cell + 80) * 127 / 80 + 0.5), 0, 127)
    in float64.
    """
    n_mels = mel.shape[1]
    cells = np.empty((n_frames, n_mels), np.float32)
    for c in range(words.shape[0]):
        block = mel[c * n_frames:(c + 1) * n_frames]
        ref = np.float32(0.0)
        for t in range(n_frames):
            for m in range(n_mels):
                p = block[t, m]
                if not np.isfinite(p):
                    return c
                if p > ref:
                    ref = p
        ref_term = np.float32(10.0 * np.log10(max(_AMIN64, np.float64(ref))))
        top = np.float32(-np.inf)
        for t in range(n_frames):
            for m in range(n_mels):
                d = _TEN * np.log10(max(block[t, m], _AMIN)) - ref_term
                cells[t, m] = d
                if d > top:
                    top = d
        floor_db = top - _TOP_DB
        for t in range(n_frames):
            for m in range(n_mels):
                d = max(cells[t, m], floor_db)
                q = np.floor((np.float64(d) + 80.0) * 127.0 / 80.0 + 0.5)
                words[c, m, t] = np.int8(min(max(q, 0.0), 127.0))
    return -1


def mel_words(spec: np.ndarray, starts: np.ndarray, stops: np.ndarray, offsets: np.ndarray,
              weights: np.ndarray, mel: np.ndarray, words: np.ndarray) -> int:
    """int8 words [n, M, T] of a chunk's packed rFFT rows spec float32 [n * T, N] (mel: work buffer [n * T, M]).

    Band m's weights are weights[offsets[m] : offsets[m] + stops[m] - starts[m]], applied to the
    squared packed spectrum positions starts[m]..stops[m]-1. Returns -1, or the index of the
    first clip whose mel power is not finite (NaN/inf samples).
    """
    _mel_power(spec, starts, stops, offsets, weights, mel)
    return _db_words(mel, words.shape[2], words)
