"""Fast CPU backend: the golden integer model computed sparse-sparse, in C (AVX2) or numba.

Bit-exact with `pynq_sparse.golden` (docs/golden_model.md): the same int8 weights and
activations, int32 accumulators (the file's accumulator bound makes every partial sum
fit in int32, in any order), the same int64 requantisation and the same k-WTA winners
(histogram threshold, ties to the lowest flattened (C, H, W) index). Only the order of
the additions differs, and exact integer addition does not care.

Two implementations of the same layers, chosen per backend (``kernels=``):

* **C kernels** (``_sparse_c.c``, the optional extension ``pynq_sparse.backends._sparse_c``
  that setup.py builds when a C compiler is present; called through ctypes, which releases
  the GIL; one call runs a block of words through every layer, no allocation).
  ``"c-avx2"`` (x86 with AVX2 + FMA, checked at run time) computes conv1 and conv2 in
  float32 lanes: exact when both conv layers' accumulator bounds are at most 24 bits
  (``F32_EXACT_BITS``: every product and partial sum is then an integer float32 holds
  exactly, in any order, FMA or not), and requantises in float64 (exact: ``acc * mult`` <
  2^39, ``+ 2^(shift-1)`` < 2^53 for shifts up to ``F64_REQUANT_SHIFT``, the scaling by
  2^-shift is exact and ``floor`` is the arithmetic shift). ``"c-portable"`` is plain C99
  with int32 accumulators (exact for every model; gcc vectorises it for SSE2 or NEON, so it
  builds on the ARM boards too). ``kernels="auto"`` (the default) takes ``"c-avx2"`` when it
  can run the model, else the numba kernels (``"c-portable"`` is opt-in: slower than numba
  on this x86 machine, not measured on ARM).
* **numba kernels** (below): every model the backend accepts, and the path when the
  extension is missing (the package imports and runs without it).

How each layer uses Complementary Sparsity in the C kernels (``c-avx2``, per word):

* **conv1**: the word's 4 polyphase planes as float32 (each 2x2 pooling phase is then a
  shifted contiguous slice); per kernel, 7 vectors (56 pooled positions) at a time: per
  pooling phase the owned taps (6-7 for n_pack 4) are FMAs into 7 register accumulators,
  the phases' running max stays in registers, then bias and requantisation 8 at a time.
* **k-WTA**: the same threshold search and tie rule as the numba kernels below, 32 cells
  per AVX2 compare + movemask + popcount; the winners are listed with tzcnt.
* **conv2**, slice-stationary: the winners are bucketed by input position (counting
  sort); the routed rows (below: the 8 packed weights of a fan-in placed at their owners'
  lanes among the 64) are stored as float32 ordered ``[ky, kx, ci, o]``, so the rows of
  every channel for one kernel offset ``(ky, kx)`` form one 16 KB slice that stays in L1.
  For each offset, every output position loads its 64 float32 accumulators (8 ymm; all
  of them, 25.6 KB, stay in L1 too), adds value x row for each winner at input position
  ``p + (ky, kx)`` (8 FMAs per winner) and stores them back. Then the 2x2 max and the
  requantisation, 8 lanes at a time.
* **fc1**, **fc2**: as the numba kernels (scalar scatter of ``value * w`` to the owners).

Profile (shipped model, real dev words, one thread, us per word; C stages timed inside the
call with the time-stamp counter (``ps_words_ticks``), numba stages by calling each stage's
kernels alone; the machine was shared with other jobs, hence the ranges):

    ====================================  ===============  ===============
    stage                                 numba (before)   C c-avx2 (now)
    ====================================  ===============  ===============
    conv1 + pool + requant                35 (35-47)       34 (33-42)
    k-WTA 1 (12,544 cells, k 1,505)       4.9 (4.8-6.7)    5.4 (5.1-6.7)
    conv2 + pool + requant                104 (70-116)     56 (53-66)
    k-WTA 2, fc1 + requant, k-WTA 3, fc2  15 (14-16)       13 (12.5-19)
    total                                 124-174          104-134
    ====================================  ===============  ===============

    (median and range of 3 interleaved rounds; each: 8 words, min of 40 calls per stage; the
    numba stages are the kernels below, unchanged. ``pynq-sparse bench cpu`` measured
    139 us/word for c-avx2 and 199 for numba, single thread, batch 64, in the same run.)
    In C, conv1 spends ~45k FMAs per word and conv2 ~154k (8 per winner and valid kernel
    offset): at 2 FMAs per cycle and 2.45 GHz that alone is >= 9 and >= 31 us per word.

How each layer uses Complementary Sparsity in the numba kernels (per word, on one core):

* **conv1** sees a dense input word. Each kernel keeps only the taps it owns (``n_pack``
  kernels share one packed 5x5 kernel: 3-4 taps each for n_pack 8, 6-7 for n_pack 4) as
  a list of (input offset, weight). The word is split once into its 4 polyphase
  components (even/odd rows x even/odd columns), so that each of the 4 positions of a 2x2
  pooling window is a contiguous shifted slice. ``scores`` runs conv1 on 8 words at once
  (``_conv_pool_lanes``): their polyphase planes are interleaved so that vector lane ``l``
  holds word ``l``, and every tap loop is 8 times longer (fixed per-loop costs, such as
  LLVM's runtime alias checks, are paid once per 8 words). These loops use float32 FMAs,
  exact because the file's accumulator bound keeps every product and partial sum an
  integer below 2^24 (a model whose conv1 bound is wider gets float64, exact to 2^53).
  One pass per pooling phase sums 4, 6 or 8 taps and takes the running max; the phases
  alternate between two buffers (LLVM turns an in-place max into masked stores).
  ``score_one`` keeps the one-word int32 version (``_conv_pool_dense``). The int64
  requantisation follows in the same vector loop style.
* **k-WTA** finds the contract's threshold ``T`` (the largest ``t`` with
  ``count(v >= t) >= k``, what the 128-bin histogram gives) by a binary search on counts,
  each count testing 8 uint8 cells per uint64 operation; then it lists the winning cells
  in ascending flattened index order, branch-free, 8 cells per step (a 256-entry table
  turns the 8-bit "cell >= T" mask into positions); cells equal to ``T`` win lowest index
  first until ``k`` are taken. Consumers read the winners' values from the cells.
* **conv2** visits only the winners of k-WTA 1. A winner ``(ci, y, x)`` reaches the
  output positions ``(y - ky, x - kx)``; for each it multiplies its value with the packed
  weight row of fan-in ``i = ci*25 + ky*5 + kx`` (``G`` = 8 packed kernels) and routes
  each product to its owner kernel ``g*n_pack + owner[g][i]``. x86 AVX2 and ARM NEON
  have no scatter instruction, so the routing is done once, offline: the row of ``G``
  packed weights is laid out over the ``C_out`` lanes of an output position's accumulator
  row, each weight at its owner's lane (zeros elsewhere, 1 lane in ``n_pack`` used). One
  winner and one kernel row ``ky`` then update one contiguous run of ``n_kx * C_out``
  int32 accumulators that the compiler vectorises (the table stores kx reversed so that
  the table run and the accumulator run advance together). Winners at the same input
  position ``(y, x)`` (in different channels) update exactly the same runs, so the
  winners are first bucketed by position (a counting sort) and up to 8 of them are added
  in one pass over a run: one load and one store of the accumulators per 8 routed rows
  instead of per row (the pass is bound by those memory operations, not by arithmetic).
* **fc1** and **fc2** visit the winners of the previous k-WTA: winner ``i`` reads its
  contiguous packed row ``[i, 0:G]`` (the packed weights transposed at load time) and adds
  ``value * w`` to the owner kernel, whose index ``g*n_pack + owner`` is precomputed.

Measured and not kept in C (one core, real words, side by side with the kept code):
conv2 output-stationary, each output position keeping its 64 accumulators in 8 ymm and
visiting the winners of its 5x5 window (no accumulator loads or stores, but the routed
rows of 25 offsets x 64 channels, 400 KB in float32, are streamed from L2 for every output:
about 1.3x slower than slice-stationary; with the rows always in L1 it was 1.4x faster,
so memory was the limit); int8 routed rows converted to float32 in the loop (4x smaller
table, 2 more uops per FMA: no faster); the slice-stationary pass on 32-lane halves (L1
holds both halves' slices, but twice the bucket visits: slower); int32 lanes (vpmovsxbd +
vpmulld + vpaddd, 3 uops where one FMA does: slower). Not tried, counted on real words:
vpmaddwd on fixed channel pairs or vpmaddubsw on channel quads (no fused accumulate on
AVX2, and winners rarely share a position with their pair: 1,403 pair units or 1,141 quad
units for 1,505 winners per word, so no fewer multiply uops than one FMA per winner).
conv2 is bound by its 8 FMAs x 1,505 winners x ~12.8 valid offsets = 154k FMAs per word
(the routed rows are 7/8 zeros: true scatter would need 8x fewer, but AVX2 has no scatter).

Measured and not kept in numba (one core, real words, side by side with the kept code): float32
FMA lanes for conv2's routed runs (no faster: the runs are bound by accumulator loads and
stores, not arithmetic; a float32 table is 4x larger and falls out of L1); conv2 gathered
per (channel, output position) with bit-mask enumeration of the 5x5 window (the per-pass
set-up of many 64-lane loops costs more than it saves); one-word conv1 in float32 (no
faster than int32 unless batched); a single histogram pass for k-WTA instead of the binary
search on SWAR counts (slower); fc scatter into 4 interleaved accumulator copies (slower).

Batches are split over worker threads (the kernels release the GIL); each thread owns
its scratch buffers, allocated once, so the hot loop allocates nothing.

Usage::

    from pynq_sparse.backends.cpu_sparse import SparseCpuBackend
    backend = SparseCpuBackend(load_model())        # threads=None: every core
    backend.kernels                                  # "c-avx2" (C extension built, AVX2 CPU) or "numba"
    backend.warmup()                                 # compile, or load numba's cached code
    scores = backend.scores(words)                   # int8 [B, 32, 32] -> int32 [B, 12]
    one = backend.score_one(words[0])                # int32 [12]
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from ..errors import InvalidModelError
from ..golden import check_words
from ..model_file import ACT_MAX, SparseModel, accumulator_bits

try:                                             # optional C kernels (setup.py builds them when it can)
    from . import _sparse_c
except ImportError:                              # not built: the numba kernels do everything
    _sparse_c = None

_CELLS = 8                     # k-WTA tests 8 uint8 cells (one uint64) at a time
_ONES = np.uint64(0x0101010101010101)
_HIGH_BITS = np.uint64(0x8080808080808080)
_MOVEMASK = np.uint64(0x0102040810204080)   # (bytes 0/1) * this >> 56: byte j -> bit j
_POPCOUNT = np.array([bin(m).count("1") for m in range(256)], np.uint8)
_POSITIONS = np.array([[j for j in range(8) if m >> j & 1] + [0] * (8 - bin(m).count("1"))
                       for m in range(256)], np.int64).reshape(-1)   # set bits of m, ascending, padded
_LOW_BYTES = np.uint64(0x00FF00FF00FF00FF)
_ONES16 = np.uint64(0x0001000100010001)
_ALIGN = 64                    # scratch buffers start on a cache line
_LANES = 8                     # words per batched conv1 pass (their polyphase planes are interleaved)
F32_EXACT_BITS = 24            # accumulator_bits at or below which batched conv1 accumulates in float32
F64_REQUANT_SHIFT = 52         # c-avx2 requantises in float64: exact when acc*mult + 2^(shift-1) < 2^53
_FM = {"contract"}             # lets LLVM fuse a*b+c into one FMA: exact, the values are small integers


# --------------------------------------------------------------------------------------
# numba kernels (nopython, GIL released, machine code cached on disk)
# --------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _polyphase(word, src, xp):
    """xp[k] = word[src[k]] (src = -1: zero): the input split into its 2x2 polyphase planes."""
    for k in range(src.shape[0]):
        s = src[k]
        xp[k] = word[s] if s >= 0 else 0


@njit(cache=True, nogil=True, inline="always")
def _sum8(wa, wb, wc, wd, we, wf, wg, wh, xa, xb, xc, xd, xe, xf, xg, xh):
    """wa*xa + ... + wh*xh in int32 (the casts keep vector lanes 32-bit; the model's bound makes it exact)."""
    return np.int32(np.int32(np.int32(np.int32(wa * xa) + np.int32(wb * xb)) + np.int32(
        np.int32(wc * xc) + np.int32(wd * xd))) + np.int32(np.int32(
            np.int32(we * xe) + np.int32(wf * xf)) + np.int32(np.int32(wg * xg) + np.int32(wh * xh))))


@njit(cache=True, nogil=True)
def _taps8(xp, off, w, bias, out, nq, accumulate):
    """Sum of 8 taps, s[q] = sum_t w[t] * xp[off[t] + q], in int32 lanes: out = bias + s (accumulate
    False) or out += s (True). (A max-pooling variant that skips the phase buffer measured slower.)"""
    xa = xp[off[0]:]
    xb = xp[off[1]:]
    xc = xp[off[2]:]
    xd = xp[off[3]:]
    xe = xp[off[4]:]
    xf = xp[off[5]:]
    xg = xp[off[6]:]
    xh = xp[off[7]:]
    wa, wb, wc, wd, we, wf, wg, wh = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
    if accumulate:
        for q in range(nq):
            out[q] += _sum8(wa, wb, wc, wd, we, wf, wg, wh, xa[q], xb[q], xc[q], xd[q], xe[q], xf[q], xg[q], xh[q])
    else:
        for q in range(nq):
            out[q] = bias + _sum8(wa, wb, wc, wd, we, wf, wg, wh, xa[q], xb[q], xc[q], xd[q], xe[q], xf[q], xg[q], xh[q])


@njit(cache=True, nogil=True)
def _conv_pool_dense(xp, tap_off, tap_w, n_taps, bias, mult, shift, rnd, pooled, phase, out, ph, pw, stride):
    """conv1: dense input, only the owned taps of each kernel; 2x2 max-pool; requantise.

    xp      : int32 polyphase input (see _polyphase)
    tap_off : int64 [C_out, 4, T] offset in xp of tap t for pooling phase (dy, dx) = divmod(phase, 2)
    tap_w   : int32 [C_out, T] weight of tap t (taps past n_taps[o] weigh 0; T = 4, or a multiple of 8)
    pooled  : int32 [ph * stride] scratch, pooled[py*stride + px] (px < pw valid)
    phase   : int32 [ph * stride] scratch (kernels with more than 4 taps: 8 taps per pass and phase)
    out     : uint8 [C_out * ph * pw] requantised pooled values, (c, h, w) order

    The np.int32 casts keep the vector lanes 32-bit (numba would widen integer arithmetic
    to int64); the accumulator bound of the model file makes every partial sum fit.
    """
    nq = ph * stride
    for o in range(tap_w.shape[0]):
        b = np.int32(bias[o])
        wa = tap_w[o, 0]
        wb = tap_w[o, 1]
        wc = tap_w[o, 2]
        a0 = xp[tap_off[o, 0, 0]:]
        b0 = xp[tap_off[o, 0, 1]:]
        c0 = xp[tap_off[o, 0, 2]:]
        a1 = xp[tap_off[o, 1, 0]:]
        b1 = xp[tap_off[o, 1, 1]:]
        c1 = xp[tap_off[o, 1, 2]:]
        a2 = xp[tap_off[o, 2, 0]:]
        b2 = xp[tap_off[o, 2, 1]:]
        c2 = xp[tap_off[o, 2, 2]:]
        a3 = xp[tap_off[o, 3, 0]:]
        b3 = xp[tap_off[o, 3, 1]:]
        c3 = xp[tap_off[o, 3, 2]:]
        if n_taps[o] <= 3:
            for q in range(nq):
                s0 = np.int32(np.int32(wa * a0[q]) + np.int32(wb * b0[q])) + np.int32(wc * c0[q])
                s1 = np.int32(np.int32(wa * a1[q]) + np.int32(wb * b1[q])) + np.int32(wc * c1[q])
                s2 = np.int32(np.int32(wa * a2[q]) + np.int32(wb * b2[q])) + np.int32(wc * c2[q])
                s3 = np.int32(np.int32(wa * a3[q]) + np.int32(wb * b3[q])) + np.int32(wc * c3[q])
                pooled[q] = b + max(max(np.int32(s0), np.int32(s1)), max(np.int32(s2), np.int32(s3)))
        elif n_taps[o] == 4:
            wd = tap_w[o, 3]
            d0 = xp[tap_off[o, 0, 3]:]
            d1 = xp[tap_off[o, 1, 3]:]
            d2 = xp[tap_off[o, 2, 3]:]
            d3 = xp[tap_off[o, 3, 3]:]
            for q in range(nq):
                s0 = np.int32(np.int32(wa * a0[q]) + np.int32(wb * b0[q])) + np.int32(
                    np.int32(wc * c0[q]) + np.int32(wd * d0[q]))
                s1 = np.int32(np.int32(wa * a1[q]) + np.int32(wb * b1[q])) + np.int32(
                    np.int32(wc * c1[q]) + np.int32(wd * d1[q]))
                s2 = np.int32(np.int32(wa * a2[q]) + np.int32(wb * b2[q])) + np.int32(
                    np.int32(wc * c2[q]) + np.int32(wd * d2[q]))
                s3 = np.int32(np.int32(wa * a3[q]) + np.int32(wb * b3[q])) + np.int32(
                    np.int32(wc * c3[q]) + np.int32(wd * d3[q]))
                pooled[q] = b + max(max(np.int32(s0), np.int32(s1)), max(np.int32(s2), np.int32(s3)))
        else:                                    # 5 or more taps: 8 per pass, one phase at a time
            for p in range(4):
                for t0 in range(0, n_taps[o], 8):
                    _taps8(xp, tap_off[o, p, t0:t0 + 8], tap_w[o, t0:t0 + 8], b, phase, nq, t0 > 0)
                if p == 0:
                    for q in range(nq):
                        pooled[q] = phase[q]
                else:
                    for q in range(nq):
                        pooled[q] = max(pooled[q], phase[q])
        m = mult[o]
        s = shift[o]
        r = rnd[o]
        for q in range(nq):
            y = (np.int64(pooled[q]) * m + r) >> s
            pooled[q] = min(max(y, 0), ACT_MAX)
        for py in range(ph):
            dst = out[(o * ph + py) * pw:(o * ph + py + 1) * pw]
            row = pooled[py * stride:py * stride + pw]
            for px in range(pw):
                dst[px] = row[px]


@njit(cache=True, nogil=True)
def _polyphase_lanes(words, b0, n, src, xw):
    """xw[k*_LANES + l] = words[b0 + l][src[k]] (0 where src = -1 or l >= n): the polyphase planes
    of up to _LANES words, interleaved so that one vector lane holds one word."""
    for k in range(src.shape[0]):
        s = src[k]
        row = xw[k * _LANES:(k + 1) * _LANES]
        if s < 0:
            for lane in range(_LANES):
                row[lane] = 0
        else:
            for lane in range(_LANES):
                row[lane] = words[b0 + lane, s] if lane < n else 0


@njit(cache=True, nogil=True, inline="always")
def _fmax(a, b):
    """max of two floats as a plain compare-select (vectorises to vmaxps / fmax)."""
    return b if b > a else a


@njit(cache=True, nogil=True, fastmath=_FM)
def _phase_max(xw, off, w, bias, prev, dst, nq, first, n_taps):
    """One pooling phase of one conv1 kernel over nq interleaved lanes:
    s[q] = bias + sum_t w[t] * xw[off[t] + q] over the first 4, 6 or 8 taps (n_taps; padded
    taps weigh 0); dst = s (first) or max(prev, s).

    prev and dst are different buffers: LLVM turns an in-place max into a conditional store and
    vectorises it with masked stores (vmaskmovps); a plain select vectorises to vmaxps."""
    xa = xw[off[0]:]
    xb = xw[off[1]:]
    xc = xw[off[2]:]
    xd = xw[off[3]:]
    wa, wb, wc, wd = w[0], w[1], w[2], w[3]
    if n_taps == 4:
        if first:
            for q in range(nq):
                dst[q] = bias + ((wa * xa[q] + wb * xb[q]) + (wc * xc[q] + wd * xd[q]))
        else:
            for q in range(nq):
                dst[q] = _fmax(prev[q], bias + ((wa * xa[q] + wb * xb[q]) + (wc * xc[q] + wd * xd[q])))
        return
    xe = xw[off[4]:]
    xf = xw[off[5]:]
    we, wf = w[4], w[5]
    if n_taps == 6:
        if first:
            for q in range(nq):
                dst[q] = bias + (((wa * xa[q] + wb * xb[q]) + (wc * xc[q] + wd * xd[q])) + (we * xe[q] + wf * xf[q]))
        else:
            for q in range(nq):
                dst[q] = _fmax(prev[q], bias + (((wa * xa[q] + wb * xb[q]) + (wc * xc[q] + wd * xd[q]))
                                                + (we * xe[q] + wf * xf[q])))
        return
    xg = xw[off[6]:]
    xh = xw[off[7]:]
    wg, wh = w[6], w[7]
    if first:
        for q in range(nq):
            dst[q] = bias + (((wa * xa[q] + wb * xb[q]) + (wc * xc[q] + wd * xd[q]))
                             + ((we * xe[q] + wf * xf[q]) + (wg * xg[q] + wh * xh[q])))
    else:
        for q in range(nq):
            dst[q] = _fmax(prev[q], bias + (((wa * xa[q] + wb * xb[q]) + (wc * xc[q] + wd * xd[q]))
                                            + ((we * xe[q] + wf * xf[q]) + (wg * xg[q] + wh * xh[q]))))


@njit(cache=True, nogil=True, fastmath=_FM)
def _taps8_add(xw, off, w, out, nq):
    """out[q] += sum of 8 taps w[t] * xw[off[t] + q] (kernels with more than 8 taps)."""
    xa = xw[off[0]:]
    xb = xw[off[1]:]
    xc = xw[off[2]:]
    xd = xw[off[3]:]
    xe = xw[off[4]:]
    xf = xw[off[5]:]
    xg = xw[off[6]:]
    xh = xw[off[7]:]
    wa, wb, wc, wd, we, wf, wg, wh = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
    for q in range(nq):
        out[q] += (((wa * xa[q] + wb * xb[q]) + (wc * xc[q] + wd * xd[q]))
                   + ((we * xe[q] + wf * xf[q]) + (wg * xg[q] + wh * xh[q])))


@njit(cache=True, nogil=True, fastmath=_FM)
def _conv_pool_lanes(xw, n, tap_off, tap_w, n_taps, bias, mult, shift, rnd, pool_a, pool_b, phase, quant, outs,
                     ph, pw, stride):
    """conv1 for up to _LANES words at once (n real ones): the same taps, pooling and
    requantisation as _conv_pool_dense, with every loop _LANES times longer.

    xw      : float interleaved polyphase planes (_polyphase_lanes); float32 when the layer's
              accumulator bound is below 2^24 (every product and partial sum exact), else float64
    tap_off : int64 [C_out, 4, T] offsets in xw (_conv_pool_dense's offsets times _LANES)
    tap_w   : float [C_out, T]; bias float [C_out]; mult int32 [C_out] (requant multipliers < 2^15)
    pool_a, pool_b, phase : float [ph * stride * _LANES] scratch; quant int32 [ph * stride * _LANES]
    outs    : uint8 [_LANES, >= C_out * ph * pw] requantised pooled values of word l in row l, (c, h, w)

    The four pooling phases alternate between pool_a and pool_b (no in-place max).
    """
    nq = ph * stride * _LANES
    t_max = tap_w.shape[1]
    for o in range(tap_w.shape[0]):
        b = bias[o]
        nt = n_taps[o]
        for p in range(4):                       # phases write pool_a, pool_b, pool_a, pool_b
            src = pool_b if p & 1 == 0 else pool_a
            dst = pool_a if p & 1 == 0 else pool_b
            if nt <= 8:
                _phase_max(xw, tap_off[o, p], tap_w[o], b, src, dst, nq, p == 0,
                           4 if nt <= 4 else (6 if nt <= 6 else 8))
            else:                                # more than 8 taps: 8 per pass
                _phase_max(xw, tap_off[o, p], tap_w[o], b, phase, phase, nq, True, 8)
                for t0 in range(8, t_max, 8):
                    if t0 < nt:
                        _taps8_add(xw, tap_off[o, p, t0:t0 + 8], tap_w[o, t0:t0 + 8], phase, nq)
                if p == 0:
                    for q in range(nq):
                        dst[q] = phase[q]
                else:
                    for q in range(nq):
                        dst[q] = _fmax(src[q], phase[q])
        m = np.int64(mult[o])
        s = shift[o]
        r = rnd[o]
        for q in range(nq):                      # sign-extended int32 x int32 product: one vpmuldq
            y = (np.int64(np.int32(pool_b[q])) * np.int64(np.int32(m)) + r) >> s
            quant[q] = min(max(y, 0), ACT_MAX)
        for py in range(ph):
            for px in range(pw):
                lanes = quant[((py * stride) + px) * _LANES:((py * stride) + px + 1) * _LANES]
                c = (o * ph + py) * pw + px
                for lane in range(n):
                    outs[lane, c] = lanes[lane]


@njit(cache=True, nogil=True)
def _count_ge(v64, t):
    """Number of cells >= t (0 <= t <= 128) among uint8 cells 0..127 packed 8 to a uint64.

    Byte j of (cells + (128 - t) * 0x0101..01) has bit 7 set iff cell j >= t (no carries:
    cell + 128 - t <= 255). Blocks of up to 255 chunks add their 0/1 bytes, then the
    bytes are summed through 16-bit lanes.
    """
    add = np.uint64(128 - t) * _ONES
    total = 0
    for b0 in range(0, v64.shape[0], 255):
        block = v64[b0:b0 + 255]                 # indices from 0: the loop vectorises
        acc = np.uint64(0)
        for c in range(block.shape[0]):
            acc += ((block[c] + add) & _HIGH_BITS) >> np.uint64(7)
        pairs = (acc & _LOW_BYTES) + ((acc >> np.uint64(8)) & _LOW_BYTES)
        total += np.int64((pairs * _ONES16) >> np.uint64(48))
    return total


@njit(cache=True, nogil=True)
def _kwta(v64, k, win_idx):
    """k-WTA on requantised values: list the winning cells, ascending; return their count.

    v64 holds the uint8 cells 0..127 (padding cells 0), 8 to a uint64 (little-endian:
    cell 8c + j is byte j of v64[c]). T = the largest t with count(v >= t) >= k (binary
    search on counts, the same T as the 128-bin histogram of the contract); every cell > T
    wins and the first k - count(v > T) cells equal to T, in index order. When fewer than
    k cells are non-zero (T = 0) every non-zero cell wins: zero cells output nothing and
    are not listed. win_idx needs 8 slack entries (whole chunks are written).
    """
    if _count_ge(v64, 1) < k:
        thr = 1
        take = v64.shape[0] * _CELLS
    else:
        lo = 1
        hi = ACT_MAX
        while lo < hi:                           # invariant: count(v >= lo) >= k
            mid = (lo + hi + 1) >> 1
            if _count_ge(v64, mid) >= k:
                lo = mid
            else:
                hi = mid - 1
        thr = lo
        take = k - _count_ge(v64, thr + 1)      # cells equal to T that win
    add_ge = np.uint64(128 - thr) * _ONES
    add_gt = np.uint64(127 - thr) * _ONES
    n = np.uint64(0)                             # unsigned indices: no negative-index fix-ups
    for c in range(v64.shape[0]):
        x = v64[c]
        hit_ge = ((x + add_ge) & _HIGH_BITS) >> np.uint64(7)     # byte j = 1 iff cell j >= T
        if hit_ge == 0:
            continue
        m_ge = (hit_ge * _MOVEMASK) >> np.uint64(56)             # bit j = 1 iff cell j >= T
        m_gt = ((((x + add_gt) & _HIGH_BITS) >> np.uint64(7)) * _MOVEMASK) >> np.uint64(56)
        m_eq = m_ge & ~m_gt
        n_eq = np.int64(_POPCOUNT[m_eq])
        if n_eq > take:                          # the chunk where the ties run out (once)
            kept = np.uint64(0)
            for _ in range(take):
                low = m_eq & (~m_eq + np.uint64(1))
                kept |= low
                m_eq ^= low
            m_ge = m_gt | kept
            take = 0
        else:
            take -= n_eq
        row = m_ge * np.uint64(_CELLS)
        i0 = c * _CELLS
        for j in range(_CELLS):
            win_idx[n + np.uint64(j)] = i0 + _POSITIONS[row + np.uint64(j)]
        n += np.uint64(_POPCOUNT[m_ge])
    return np.int64(n)


@njit(cache=True, nogil=True, inline="always")
def _i32(x):
    """Keep a vector lane 32-bit (numba widens integer products to int64); the accumulator bound makes it exact."""
    return np.int32(x)


@njit(cache=True, nogil=True)
def _conv_pool_winners(v, win_idx, n_win, cell_geo, cols, bias, mult, shift, rnd, acc, pooled, out,
                       hw, ks, ho, wo, bucket, vals, rows):
    """conv2: the winners, grouped by input position, add value x routed weight rows; 2x2 max-pool; requantise.

    v        : uint8 input cells (c, h, w) order; win_idx [n_win] the winning cells, ascending
    cell_geo : int32 [hw, 5] per input position r = y*W + x: first accumulator run start
               (ky = 0), first table run start within the channel, run length, ky_lo, ky_hi
    cols     : int8 [C_in*ks*ks*C_out], cols[((ci*ks + ky)*ks + ks-1-kx)*C_out + o] = W[o][ci, ky, kx]
    acc      : int32 [ho*wo*C_out] scratch, acc[(oy*wo + ox)*C_out + o]
    pooled   : int32 [(ho//2)*(wo//2)*C_out] scratch
    out      : uint8 [C_out*(ho//2)*(wo//2)] requantised pooled values, (c, h, w) order
    bucket   : int64 [hw + 1] scratch; vals int32, rows int64 [>= n_win] scratch

    Winners at the same input position (different channels) update the same accumulator
    runs, so they are bucketed by position (a counting sort) and up to 8 of them are added
    per pass over a run: one load and one store of the accumulators per 8 routed rows.
    """
    c_out = bias.shape[0]
    for p in range(ho * wo):
        row = acc[p * c_out:(p + 1) * c_out]
        for o in range(c_out):
            row[o] = bias[o]
    a_step = wo * c_out                          # accumulator run start moves up one row per ky
    c_step = ks * c_out                          # table run start moves one kernel row per ky
    c_chan = ks * ks * c_out                     # table block of one input channel
    for r in range(hw + 1):                      # counting sort of the winners by input position
        bucket[r] = 0
    ci = 0
    for j in range(n_win):
        i = win_idx[j]
        while i >= (ci + 1) * hw:                # winners ascend: the channel only moves forward
            ci += 1
        bucket[i - ci * hw + 1] += 1
    for r in range(hw):
        bucket[r + 1] += bucket[r]
    ci = 0
    for j in range(n_win):
        i = win_idx[j]
        while i >= (ci + 1) * hw:
            ci += 1
        r = i - ci * hw
        k = bucket[r]
        vals[k] = np.int32(v[i])
        rows[k] = ci * c_chan
        bucket[r] = k + 1                        # afterwards bucket[r] is the end of position r's winners
    j0 = 0
    for r in range(hw):
        j1 = bucket[r]
        if j0 == j1:
            continue
        g = cell_geo[r]
        n = g[2]
        for ky in range(g[3], g[4] + 1):
            a0 = g[0] - ky * a_step
            cb = g[1] + ky * c_step
            a = acc[a0:a0 + n]
            j = j0
            while j + 8 <= j1:
                x0, x1, x2, x3 = vals[j], vals[j + 1], vals[j + 2], vals[j + 3]
                x4, x5, x6, x7 = vals[j + 4], vals[j + 5], vals[j + 6], vals[j + 7]
                c0 = cols[rows[j] + cb:]
                c1 = cols[rows[j + 1] + cb:]
                c2 = cols[rows[j + 2] + cb:]
                c3 = cols[rows[j + 3] + cb:]
                c4 = cols[rows[j + 4] + cb:]
                c5 = cols[rows[j + 5] + cb:]
                c6 = cols[rows[j + 6] + cb:]
                c7 = cols[rows[j + 7] + cb:]
                for t in range(n):
                    a[t] += _i32(_i32(_i32(_i32(x0 * _i32(c0[t])) + _i32(x1 * _i32(c1[t])))
                                      + _i32(_i32(x2 * _i32(c2[t])) + _i32(x3 * _i32(c3[t]))))
                                 + _i32(_i32(_i32(x4 * _i32(c4[t])) + _i32(x5 * _i32(c5[t])))
                                        + _i32(_i32(x6 * _i32(c6[t])) + _i32(x7 * _i32(c7[t])))))
                j += 8
            if j + 4 <= j1:
                x0, x1, x2, x3 = vals[j], vals[j + 1], vals[j + 2], vals[j + 3]
                c0 = cols[rows[j] + cb:]
                c1 = cols[rows[j + 1] + cb:]
                c2 = cols[rows[j + 2] + cb:]
                c3 = cols[rows[j + 3] + cb:]
                for t in range(n):
                    a[t] += _i32(_i32(_i32(x0 * _i32(c0[t])) + _i32(x1 * _i32(c1[t])))
                                 + _i32(_i32(x2 * _i32(c2[t])) + _i32(x3 * _i32(c3[t]))))
                j += 4
            if j + 2 <= j1:
                x0, x1 = vals[j], vals[j + 1]
                c0 = cols[rows[j] + cb:]
                c1 = cols[rows[j + 1] + cb:]
                for t in range(n):
                    a[t] += _i32(_i32(x0 * _i32(c0[t])) + _i32(x1 * _i32(c1[t])))
                j += 2
            if j < j1:
                x0 = vals[j]
                c0 = cols[rows[j] + cb:]
                for t in range(n):
                    a[t] += _i32(x0 * _i32(c0[t]))
        j0 = j1
    ph = ho // 2
    pw = wo // 2
    for py in range(ph):
        for px in range(pw):
            q = (py * 2 * wo + px * 2) * c_out
            r0 = acc[q:q + c_out]
            r1 = acc[q + c_out:q + 2 * c_out]
            r2 = acc[q + wo * c_out:q + (wo + 1) * c_out]
            r3 = acc[q + (wo + 1) * c_out:q + (wo + 2) * c_out]
            pr = pooled[(py * pw + px) * c_out:(py * pw + px + 1) * c_out]
            for o in range(c_out):
                a_max = max(max(r0[o], r1[o]), max(r2[o], r3[o]))
                yq = (np.int64(a_max) * mult[o] + rnd[o]) >> shift[o]
                pr[o] = min(max(yq, 0), ACT_MAX)
    npp = ph * pw
    for pp in range(npp):
        pr = pooled[pp * c_out:(pp + 1) * c_out]
        for o in range(c_out):
            out[o * npp + pp] = pr[o]


@njit(cache=True, nogil=True)
def _fc_winners(v, win_idx, n_win, dst, wt, bias, acc):
    """fc: acc = bias; winner i (value v[i]) adds v[i] * wt[i, g] to kernel dst[i, g] for each group g."""
    for o in range(bias.shape[0]):
        acc[o] = bias[o]
    for j in range(n_win):
        i = win_idx[j]
        val = np.int32(v[i])
        d = dst[i]
        w = wt[i]
        for g in range(d.shape[0]):
            acc[d[g]] += val * w[g]


@njit(cache=True, nogil=True)
def _requant_fc(acc, mult, shift, rnd, out):
    for o in range(acc.shape[0]):
        y = (np.int64(acc[o]) * mult[o] + rnd[o]) >> shift[o]
        out[o] = min(max(y, 0), ACT_MAX)


@njit(cache=True, nogil=True)
def _after_conv1(v1, v1_64, scores, p, s):
    """Every layer after conv1 for one word whose conv1 output is v1 into scores (int32 [n_classes])."""
    (src, c1_off, c1_w, c1_nt, c1_b, c1_m, c1_s, c1_r, c1_k,
     c2_geo, c2_cols, c2_b, c2_m, c2_s, c2_r, c2_k,
     f1_dst, f1_w, f1_b, f1_m, f1_s, f1_r, f1_k,
     f2_dst, f2_w, f2_b, geo, lanes) = p
    (xp, pooled1, phase1, _v1, _v1_64, wi, acc2, pooled2, v2, v2_64, acc3, v3, v3_64, acc4, lane_bufs,
     bucket, vals, rows) = s
    (ph1, pw1, stride1, hw2, ks2, ho2, wo2) = geo
    n = _kwta(v1_64, c1_k, wi)
    _conv_pool_winners(v1, wi, n, c2_geo, c2_cols, c2_b, c2_m, c2_s, c2_r, acc2, pooled2, v2, hw2, ks2, ho2, wo2,
                       bucket, vals, rows)
    n = _kwta(v2_64, c2_k, wi)
    _fc_winners(v2, wi, n, f1_dst, f1_w, f1_b, acc3)
    _requant_fc(acc3, f1_m, f1_s, f1_r, v3)
    n = _kwta(v3_64, f1_k, wi)
    _fc_winners(v3, wi, n, f2_dst, f2_w, f2_b, acc4)
    for o in range(scores.shape[0]):
        scores[o] = acc4[o]


@njit(cache=True, nogil=True)
def _word(word, scores, p, s):
    """Every layer for one word (int8 [H*W]) into scores (int32 [n_classes]): conv1 on this word alone."""
    (src, c1_off, c1_w, c1_nt, c1_b, c1_m, c1_s, c1_r, c1_k) = p[:9]
    (ph1, pw1, stride1, hw2, ks2, ho2, wo2) = p[26]
    (xp, pooled1, phase1, v1, v1_64) = s[:5]
    _polyphase(word, src, xp)
    _conv_pool_dense(xp, c1_off, c1_w, c1_nt, c1_b, c1_m, c1_s, c1_r, pooled1, phase1, v1, ph1, pw1, stride1)
    _after_conv1(v1, v1_64, scores, p, s)


@njit(cache=True, nogil=True)
def _words(words, scores, p, s):
    """Scores (int32 [B, n_classes]) of words (int8 [B, H*W]): conv1 for _LANES words at a time
    (_conv_pool_lanes), then the sparse layers word by word."""
    src = p[0]
    (ph1, pw1, stride1, hw2, ks2, ho2, wo2) = p[26]
    (l_off, l_w, l_b, l_m) = p[27]
    c1_nt, c1_s, c1_r = p[3], p[6], p[7]
    (xw, pool_a, pool_b, phase, quant, outs, outs_64) = s[14]
    for b0 in range(0, words.shape[0], _LANES):
        n = min(_LANES, words.shape[0] - b0)
        _polyphase_lanes(words, b0, n, src, xw)
        _conv_pool_lanes(xw, n, l_off, l_w, c1_nt, l_b, l_m, c1_s, c1_r, pool_a, pool_b, phase, quant, outs,
                         ph1, pw1, stride1)
        for lane in range(n):
            _after_conv1(outs[lane], outs_64[lane], scores[b0 + lane], p, s)


# --------------------------------------------------------------------------------------
# host side: tables, scratch, threads
# --------------------------------------------------------------------------------------
def supports_model(model: SparseModel) -> bool:
    """True when `model` has the chain this backend compiles (conv+pool2, conv+pool2, fc, fc)
    and keeps the int32 accumulator bound of docs/golden_model.md section 4."""
    layers = model.layers
    if sys.byteorder != "little":                # k-WTA reads 8 uint8 cells as one little-endian uint64
        return False
    if [layer.kind for layer in layers] != ["conv", "conv", "fc", "fc"]:
        return False
    l1, l2 = layers[0], layers[1]
    if l1.pool != 2 or l2.pool != 2 or len(l1.in_shape) != 3 or len(l2.in_shape) != 3:
        return False
    ho1, wo1 = l1.in_shape[1] - l1.kernel_size + 1, l1.in_shape[2] - l1.kernel_size + 1
    ho2, wo2 = l2.in_shape[1] - l2.kernel_size + 1, l2.in_shape[2] - l2.kernel_size + 1
    if min(ho1, wo1, ho2, wo2) < 2 or ho1 % 2 or wo1 % 2 or ho2 % 2 or wo2 % 2:
        return False
    return all(accumulator_bits(layer) <= 32 for layer in layers)


def _requant_params(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mult, shift, 2^(shift-1)) as int64 per kernel."""
    shift = layer.requant_shift.astype(np.int64)
    return layer.requant_mult.astype(np.int64), shift, np.left_shift(np.int64(1), shift - 1)


def _aligned(n: int, dtype) -> np.ndarray:
    """Zeroed array of n items starting on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + _ALIGN, np.uint8)
    start = (-raw.ctypes.data) % _ALIGN
    return raw[start:start + n * dtype.itemsize].view(dtype)


def _conv1_tables(layer) -> tuple:
    """Polyphase source map and per-kernel tap tables of the dense-input conv."""
    c_in, h, w = layer.in_shape
    ks = layer.kernel_size
    hc, wc = (h + 1) // 2, (w + 1) // 2                  # polyphase plane size
    ph, pw = (h - ks + 1) // 2, (w - ks + 1) // 2        # pooled output
    stride = wc                                          # row stride of pooled / polyphase planes
    # xp[((ci*2 + a)*2 + b)*hc*wc + i*wc + j] = x[ci, 2i+a, 2j+b]; tail padding is zero
    pad = (ks // 2 + 1) * wc + ks
    src = np.full(c_in * 4 * hc * wc + pad, -1, np.int64)
    for ci in range(c_in):
        for a in range(2):
            for b in range(2):
                base = ((ci * 2 + a) * 2 + b) * hc * wc
                for i in range((h - a + 1) // 2):
                    for j in range((w - b + 1) // 2):
                        src[base + i * wc + j] = (ci * h + 2 * i + a) * w + 2 * j + b
    dense = layer.dense_weights().astype(np.int32)                       # [C_out, F]
    n_taps = (dense != 0).sum(axis=1)
    t_max = 4 if n_taps.max() <= 4 else -(-int(n_taps.max()) // 8) * 8
    tap_off = np.zeros((layer.out_channels, 4, t_max), np.int64)
    tap_w = np.zeros((layer.out_channels, t_max), np.int32)
    for o in range(layer.out_channels):
        nz = np.flatnonzero(dense[o])
        ci, rest = np.divmod(nz, ks * ks)
        ky, kx = np.divmod(rest, ks)
        tap_w[o, :len(nz)] = dense[o, nz]
        for p, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            a, b = (dy + ky) % 2, (dx + kx) % 2
            tap_off[o, p, :len(nz)] = ((ci * 2 + a) * 2 + b) * hc * wc + (dy + ky) // 2 * wc + (dx + kx) // 2
    return src, tap_off, tap_w, n_taps.astype(np.int64), (ph, pw, stride)


def _float_type(layer) -> type:
    """float32 when every accumulator of `layer` is an integer below 2^23 (float32 holds every
    integer up to 2^24 exactly, so each product and partial sum is exact, in any order, FMA
    or not); float64 otherwise (exact up to 2^53; supports_model keeps accumulators in int32)."""
    return np.float32 if accumulator_bits(layer) <= F32_EXACT_BITS else np.float64


def _lane_tables(layer, tap_off: np.ndarray, tap_w: np.ndarray) -> tuple:
    """Batched conv1 tables: offsets in the interleaved planes, float weights and bias, int32 multipliers."""
    ft = _float_type(layer)
    return (np.ascontiguousarray(tap_off * _LANES), tap_w.astype(ft), layer.bias.astype(ft),
            layer.requant_mult.astype(np.int32))


def _run_geometry(layer) -> np.ndarray:
    """Per input position r = y*W + x of a conv: where its winners' runs start (see _conv_pool_winners)."""
    c_out, ks = layer.out_channels, layer.kernel_size
    _, h, w = layer.in_shape
    ho, wo = h - ks + 1, w - ks + 1
    geo = np.zeros((h * w, 5), np.int32)
    for y in range(h):
        for x in range(w):
            kx_hi, kx_lo = min(ks - 1, x), max(0, x - wo + 1)
            geo[y * w + x] = ((y * wo + x - kx_hi) * c_out, (ks - 1 - kx_hi) * c_out,
                              (kx_hi - kx_lo + 1) * c_out, max(0, y - ho + 1), min(ks - 1, y))
    return geo


def _routed_columns(layer) -> np.ndarray:
    """conv2 weights routed to owner lanes: int8 [C_in*ks*ks*C_out], kx reversed (see module doc)."""
    c_in, _, _ = layer.in_shape
    ks = layer.kernel_size
    dense = layer.dense_weights().reshape(layer.out_channels, c_in, ks, ks)
    cols = np.ascontiguousarray(dense[:, :, :, ::-1].transpose(1, 2, 3, 0)).reshape(-1)
    out = _aligned(cols.size, np.int8)
    out[:] = cols
    return out


def _fc_tables(layer) -> tuple[np.ndarray, np.ndarray]:
    """(kernel index, weight) of every packed weight, transposed to [F, G] rows."""
    kern = np.arange(layer.n_groups)[:, None] * layer.n_pack + layer.owner.astype(np.int64)
    return (np.ascontiguousarray(kern.T, dtype=np.uint16),
            np.ascontiguousarray(layer.packed_weights.T, dtype=np.int32))


def _build_tables(model: SparseModel) -> tuple[tuple, dict]:
    """The tables the kernels read (once per model) and the scratch sizes."""
    if not supports_model(model):
        raise InvalidModelError(
            "the CPU backend compiles conv+pool2, conv+pool2, fc, fc with int32 accumulators; this model has "
            f"{[(lay.kind, lay.pool, accumulator_bits(lay)) for lay in model.layers]} (kind, pool, accumulator "
            "bits): use the golden backend")
    l1, l2, l3, l4 = model.layers
    src, c1_off, c1_w, c1_nt, (ph1, pw1, stride1) = _conv1_tables(l1)
    _, h2, w2 = l2.in_shape
    ks2 = l2.kernel_size
    ho2, wo2 = h2 - ks2 + 1, w2 - ks2 + 1
    f1_dst, f1_w = _fc_tables(l3)
    f2_dst, f2_w = _fc_tables(l4)
    i64 = lambda a: np.ascontiguousarray(a, dtype=np.int64)                 # noqa: E731
    geo = tuple(int(g) for g in (ph1, pw1, stride1, h2 * w2, ks2, ho2, wo2))
    tables = (src, c1_off, c1_w, c1_nt, i64(l1.bias), *_requant_params(l1), int(l1.k),
              _run_geometry(l2), _routed_columns(l2), i64(l2.bias), *_requant_params(l2), int(l2.k),
              f1_dst, f1_w, i64(l3.bias), *_requant_params(l3), int(l3.k),
              f2_dst, f2_w, i64(l4.bias), geo, _lane_tables(l1, c1_off, c1_w))
    sizes = {"float1": _float_type(l1), "hw2": h2 * w2, "xp": len(src), "pooled1": ph1 * stride1, "v1": int(np.prod(l1.out_shape)),
             "acc2": ho2 * wo2 * l2.out_channels, "pooled2": int(np.prod(l2.out_shape)),
             "v2": int(np.prod(l2.out_shape)), "fc1": l3.out_channels, "fc2": l4.out_channels}
    return tables, sizes


def _new_scratch(sizes: dict) -> tuple:
    """One thread's buffers; activations are uint8 padded to whole uint64 chunks."""
    def act(n: int) -> tuple[np.ndarray, np.ndarray]:
        buf = _aligned(-(-n // _CELLS) * _CELLS, np.uint8)
        return buf, buf.view(np.uint64)
    v1, v1_64 = act(sizes["v1"])
    v2, v2_64 = act(sizes["v2"])
    v3, v3_64 = act(sizes["fc1"])
    n_win = max(len(v1), len(v2), len(v3)) + _CELLS         # k-WTA writes whole chunks
    return (_aligned(sizes["xp"], np.int32), _aligned(sizes["pooled1"], np.int32),
            _aligned(sizes["pooled1"], np.int32), v1, v1_64, np.zeros(n_win, np.int64),
            _aligned(sizes["acc2"], np.int32), _aligned(sizes["pooled2"], np.int32), v2, v2_64,
            _aligned(sizes["fc1"], np.int32), v3, v3_64, np.zeros(sizes["fc2"], np.int32), _lane_scratch(sizes),
            np.zeros(sizes["hw2"] + 1, np.int64), np.zeros(len(v1), np.int32), np.zeros(len(v1), np.int64))


def _lane_scratch(sizes: dict) -> tuple:
    """Buffers of the batched conv1 (_conv_pool_lanes): _LANES words at a time."""
    ft, nq = sizes["float1"], sizes["pooled1"] * _LANES
    outs = _aligned(_LANES * (-(-sizes["v1"] // _CELLS) * _CELLS), np.uint8).reshape(_LANES, -1)
    return (_aligned(sizes["xp"] * _LANES, ft), _aligned(nq, ft), _aligned(nq, ft), _aligned(nq, ft),
            _aligned(nq, np.int32), outs, outs.view(np.uint64))


def default_threads() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


# --------------------------------------------------------------------------------------
# optional C kernels (_sparse_c.c): every layer in C, called through ctypes (GIL released)
# --------------------------------------------------------------------------------------
C_KERNELS = ("c-avx2", "c-portable")        # the C versions; kernels="numba" is the pure numba path
_C_LIB = None
_I64, _VP = ctypes.c_int64, ctypes.c_void_p


class _CModel(ctypes.Structure):
    """Mirror of ps_model in _sparse_c.c (same field order)."""
    _fields_ = ([(n, _I64) for n in ("n_xp", "c1_out", "n_tap", "ph1", "pw1", "stride1", "k1")]
                + [(n, _VP) for n in ("src", "tap_off", "tap_w", "tap_wf", "n_taps", "bias1", "mult1", "shift1",
                                      "rnd1")]
                + [(n, _I64) for n in ("c2_in", "h2", "w2", "ks2", "c2_out", "k2")]
                + [(n, _VP) for n in ("rows8", "rowsk", "bias2", "mult2", "shift2", "rnd2")]
                + [(n, _I64) for n in ("f1_in", "f1_g", "f1_pack", "f1_out", "k3", "f2_in", "f2_g", "f2_pack",
                                       "f2_out")]
                + [(n, _VP) for n in ("f1_w", "f1_own", "bias3", "mult3", "shift3", "rnd3", "mult3d", "rnd3d",
                                      "scale3d", "f2_w", "f2_own", "bias4")]
                + [(n, _I64) for n in ("n_v1", "n_v2", "n_v3")])


class _CScratch(ctypes.Structure):
    """Mirror of ps_scratch in _sparse_c.c."""
    _fields_ = [(n, _VP) for n in ("xpf", "xpi", "pooled", "phase", "v1", "v2", "v3", "win", "start", "ent_row",
                                   "ent_val", "acc3", "acc4", "acc2")]



def _c_library():
    """The ctypes handle of the compiled _sparse_c module, or None when it was not built."""
    global _C_LIB
    if _C_LIB is None and _sparse_c is not None:
        lib = ctypes.CDLL(_sparse_c.__file__)
        lib.ps_words.restype = ctypes.c_int
        lib.ps_words.argtypes = [ctypes.POINTER(_CModel), ctypes.POINTER(_CScratch), _I64, _VP, _I64, _VP,
                                 ctypes.c_int]
        lib.ps_has_avx2.restype = ctypes.c_int
        lib.ps_has_avx2.argtypes = []
        _C_LIB = lib
    return _C_LIB


def c_kernels_available() -> bool:
    """True when the C kernels were built (setup.py ext_modules) and load."""
    try:
        return _c_library() is not None
    except OSError:
        return False


def c_kernels_for(model: SparseModel) -> list[str]:
    """The C versions that can run `model` on this CPU, fastest first ([] without the C kernels).

    "c-avx2" (x86 AVX2+FMA, float32 lanes) needs both conv layers' accumulator bounds at most
    F32_EXACT_BITS (every product and partial sum an exact float32 integer), requantisation
    shifts at most F64_REQUANT_SHIFT (its float64 requantisation is then exact) and 64 conv2
    kernels; "c-portable" (plain C, int32) runs every model the backend accepts (conv2 up to 256
    kernels)."""
    if not c_kernels_available() or not supports_model(model):
        return []
    l1, l2 = model.layers[0], model.layers[1]
    if l1.in_shape[0] != 1:
        return []
    out = []
    ph1 = (l1.in_shape[1] - l1.kernel_size + 1) // 2
    nq = ph1 * ((l1.in_shape[2] + 1) // 2)
    if (_c_library().ps_has_avx2() and l2.out_channels == 64 and nq % 8 == 0
            and max(accumulator_bits(l1), accumulator_bits(l2)) <= F32_EXACT_BITS
            and max(int(lay.requant_shift.max()) for lay in model.layers[:3]) <= F64_REQUANT_SHIFT):
        out.append("c-avx2")
    if l2.out_channels <= 256:
        out.append("c-portable")
    return out


def _copy_aligned(a: np.ndarray, dtype) -> np.ndarray:
    """a (flattened) as dtype, starting on a cache line."""
    out = _aligned(a.size, dtype)
    out[:] = a.reshape(-1)
    return out


def _pad32(n: int) -> int:
    return -(-n // 32) * 32


class _CState:
    """The C tables of one model (kept alive: the structure holds their addresses) and one
    _CScratch per thread."""

    def __init__(self, model: SparseModel, tables: tuple, kernel: str, n_scratch: int) -> None:
        l1, l2, l3, l4 = model.layers
        src, c1_off, c1_w, c1_nt = tables[:4]
        (ph1, pw1, stride1, hw2, ks2, ho2, wo2) = tables[26]
        c2_in, h2, w2 = l2.in_shape
        dense = l2.dense_weights().reshape(l2.out_channels, c2_in, ks2, ks2)
        rows = np.ascontiguousarray(dense.transpose(1, 2, 3, 0)).reshape(-1)       # [ci, ky, kx, o]
        i32 = lambda a: np.ascontiguousarray(a, dtype=np.int32)                     # noqa: E731
        m1, m2, m3 = _requant_params(l1), _requant_params(l2), _requant_params(l3)
        keep = {"src": i32(src), "tap_off": i32(c1_off), "tap_w": i32(c1_w), "tap_wf": c1_w.astype(np.float32),
                "n_taps": i32(c1_nt), "bias1": i32(l1.bias), "mult1": m1[0], "shift1": m1[1], "rnd1": m1[2],
                "rows8": _copy_aligned(rows, np.int8),
                "rowsk": _copy_aligned(dense.transpose(2, 3, 1, 0), np.float32), "bias2": i32(l2.bias),
                "mult2": m2[0], "shift2": m2[1], "rnd2": m2[2],
                "f1_w": _copy_aligned(l3.packed_weights.T, np.int8), "f1_own": _copy_aligned(l3.owner.T, np.uint8),
                "bias3": i32(l3.bias), "mult3": m3[0], "shift3": m3[1], "rnd3": m3[2],
                "mult3d": m3[0].astype(np.float64), "rnd3d": m3[2].astype(np.float64),
                "scale3d": np.ldexp(1.0, -m3[1]),
                "f2_w": _copy_aligned(l4.packed_weights.T, np.int8), "f2_own": _copy_aligned(l4.owner.T, np.uint8),
                "bias4": i32(l4.bias)}
        self._keep = keep
        n_v1, n_v2, n_v3 = (_pad32(int(np.prod(lay.out_shape))) for lay in (l1, l2, l3))
        self.model = _CModel(
            n_xp=len(src), c1_out=l1.out_channels, n_tap=c1_w.shape[1], ph1=ph1, pw1=pw1, stride1=stride1,
            k1=int(l1.k), c2_in=c2_in, h2=h2, w2=w2, ks2=ks2, c2_out=l2.out_channels, k2=int(l2.k),
            f1_in=l3.fan_in, f1_g=l3.n_groups, f1_pack=l3.n_pack, f1_out=l3.out_channels, k3=int(l3.k),
            f2_in=l4.fan_in, f2_g=l4.n_groups, f2_pack=l4.n_pack, f2_out=l4.out_channels,
            n_v1=n_v1, n_v2=n_v2, n_v3=n_v3,
            **{name: arr.ctypes.data for name, arr in keep.items()})
        sizes = {"xpf": (len(src), np.float32), "xpi": (len(src), np.int32), "pooled": (ph1 * stride1, np.int32),
                 "phase": (ph1 * stride1, np.int32),
                 "v1": (n_v1, np.uint8), "v2": (n_v2, np.uint8), "v3": (n_v3, np.uint8),
                 "win": (max(n_v1, n_v2, n_v3) + 32, np.int64), "start": (h2 * w2 + 1, np.int32),
                 "ent_row": (n_v1, np.int32), "ent_val": (n_v1, np.int32), "acc3": (l3.out_channels, np.int32),
                 "acc4": (l4.out_channels, np.int32), "acc2": ((h2 - ks2 + 1) * (w2 - ks2 + 1) * l2.out_channels,
                                                              np.float32)}
        self._buffers = []
        self.scratch = []
        for _ in range(n_scratch):
            bufs = {name: _aligned(n, dt) for name, (n, dt) in sizes.items()}
            self._buffers.append(bufs)
            self.scratch.append(_CScratch(**{name: arr.ctypes.data for name, arr in bufs.items()}))
        self.avx2 = 1 if kernel == "c-avx2" else 0
        self.lib = _c_library()

    def run(self, t: int, flat: np.ndarray, out: np.ndarray) -> None:
        """Scores of flat int8 words [n, H*W] (C-contiguous) into out int32 [n, n_classes] on scratch t."""
        if self.lib.ps_words(ctypes.byref(self.model), ctypes.byref(self.scratch[t]), len(flat), flat.ctypes.data,
                             flat.shape[1], out.ctypes.data, self.avx2) != 0:
            raise RuntimeError("the C kernels refused to run (CPU check)")


class SparseCpuBackend:
    """Bit-exact sparse-sparse CPU backend (C kernels or numba).

    Parameters
    ----------
    model : SparseModel
        A model with the layer chain conv+pool2, conv+pool2, fc, fc
        (`pynq_sparse.architecture`; see `supports_model`).
    threads : int > 0 or None
        Worker threads a batch is split over (None: every core this process may use).
    kernels : str
        "auto" (default: "c-avx2" when it can run the model, else "numba"), "numba", "c" (the
        fastest C version that can run the model; RuntimeError without the extension),
        "c-avx2" or "c-portable" (see `c_kernels_for` and the module docstring). The chosen
        one is in the attribute ``kernels``.

    `scores` and `score_one` may be called from several threads: calls on one backend
    take turns (each holds the scratch buffers it computes in).
    """

    name = "cpu"

    def __init__(self, model: SparseModel, threads: int | None = None, kernels: str = "auto") -> None:
        if threads is None:
            threads = default_threads()
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.model = model
        self.threads = int(threads)
        self._tables, self._sizes = _build_tables(model)
        modes = c_kernels_for(model)
        if kernels == "auto":
            kernels = "c-avx2" if "c-avx2" in modes else "numba"
        elif kernels == "c":
            if not modes:
                raise RuntimeError("the C kernels are not built (pip install -e . builds them) or cannot run "
                                   "this model")
            kernels = modes[0]
        elif kernels != "numba" and kernels not in modes:
            raise ValueError(f"kernels must be 'auto', 'numba', 'c' or one of {modes}, got {kernels!r}")
        self.kernels = kernels                   # "numba", "c-avx2" or "c-portable"
        self._scratch = [_new_scratch(self._sizes) for _ in range(self.threads)]
        self._one = _new_scratch(self._sizes)
        self._c = _CState(model, self._tables, kernels, self.threads + 1) if kernels != "numba" else None
        self._lock = threading.Lock()
        self._one_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def n_classes(self) -> int:
        return self.model.n_classes

    def warmup(self) -> "SparseCpuBackend":
        """Compile the kernels (or load numba's on-disk cache) and run them once."""
        word = np.zeros((1, 32, 32), np.int8)
        self.score_one(word[0])
        self.scores(np.repeat(word, self.threads, axis=0))
        return self

    @staticmethod
    def _flat(words: np.ndarray) -> np.ndarray:
        words = check_words(words)
        return np.ascontiguousarray(words.reshape(len(words), words.shape[1] * words.shape[2]))

    def score_one(self, word: np.ndarray) -> np.ndarray:
        """int32 [n_classes] for one int8 word [32, 32] (on the calling thread)."""
        flat = self._flat(word)
        if len(flat) != 1:
            raise ValueError(f"score_one takes one word, got {len(flat)}; use scores() for batches")
        out = np.empty(self.model.n_classes, np.int32)
        with self._one_lock:
            if self._c is None:
                _word(flat[0], out, self._tables, self._one)
            else:
                self._c.run(self.threads, flat, out[None])
        return out

    def _words(self, flat: np.ndarray, out: np.ndarray, t: int) -> None:
        """Scores of flat words into out on worker t's scratch buffers."""
        if self._c is None:
            _words(flat, out, self._tables, self._scratch[t])
        else:
            self._c.run(t, flat, out)

    def scores(self, words: np.ndarray) -> np.ndarray:
        """int32 [B, n_classes] for int8 words [B, 32, 32] (or one word [32, 32] -> [1, n])."""
        flat = self._flat(words)
        out = np.empty((len(flat), self.model.n_classes), np.int32)
        n_parts = min(self.threads, len(flat))
        with self._lock:
            if n_parts <= 1:
                if len(flat):
                    self._words(flat, out, 0)
                return out
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="pynq-sparse-cpu")
            bounds = np.linspace(0, len(flat), n_parts + 1).round().astype(int)
            futures = [self._pool.submit(self._words, flat[a:b], out[a:b], t)
                       for t, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
            for future in futures:
                future.result()
        return out

    def close(self) -> None:
        """Stop the worker threads (the next batch starts them again)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    def __repr__(self) -> str:
        return (f"SparseCpuBackend(threads={self.threads}, kernels={self.kernels!r}, "
                f"model_id={self.model.model_id:#010x})")
