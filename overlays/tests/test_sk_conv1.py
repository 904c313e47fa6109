"""cocotb testbench of sk_conv1: word beats in -> conv1 winners (idx order) bit-exact against the golden model.

test_conv1_words: random model, random + real words, a dropped short frame, TVALID bubbles and m_afull
back-pressure, tags; then a second model and new k loaded at run time, tie-heavy words (flat and
two-level words make many equal values at the threshold), small and large k.
test_conv1_interval: back-to-back words without bubbles or back-pressure: prints the steady-state
interval (cycles per word between end beats); SK_MEASURE_OUT=<json> writes it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from common import extreme_weights, fitted_shift, get_model, model_layer_writes, random_words, real_words, send_beats, word_beats


def expected(model, word, k=None):
    from pynq_sparse.golden import layer_forward
    layer = model.layers[0]
    if k is not None:
        layer = dataclasses.replace(layer, k=k)
    x = np.asarray(word, dtype=np.int64).reshape(1, 32, 32)
    out = layer_forward(x, layer).reshape(-1)
    return [(int(j), int(out[j])) for j in np.flatnonzero(out)]


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.words = []          # [(winners [(idx, val)], tag, cycle)]
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for n in ("ld_we", "ld_layer", "ld_sel", "ld_group", "ld_addr", "ld_data", "s_axis_tvalid",
                  "s_axis_tdata", "s_axis_tlast", "m_afull"):
            getattr(dut, n).value = 0
        self.mon = None

    async def monitor(self):
        d = self.dut
        cur = []
        while True:
            await RisingEdge(d.clk)
            if int(d.m_push.value):
                v = int(d.m_data.value)
                if v >> 45:
                    self.words.append((cur, (v >> 44) & 1, int(cocotb.utils.get_sim_time("ns")) // 10))
                    cur = []
                else:
                    idx, c, y, x, val = (v >> 28) & 0xFFFF, (v >> 17) & 0x7FF, (v >> 12) & 31, (v >> 7) & 31, v & 0x7F
                    assert idx == c * 196 + y * 14 + x and x < 14 and y < 14 and c < 64, f"beat {v:#x}"
                    cur.append((idx, val))

    async def afull_noise(self, p, rng):
        while True:
            self.dut.m_afull.value = int(rng.random() < p)
            await RisingEdge(self.dut.clk)

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)
        if self.mon is None:                   # watch the output from after the reset on
            self.mon = cocotb.start_soon(self.monitor())

    async def load(self, model, k=None):
        d = self.dut
        for sel, g, a, v in model_layer_writes(model.layers[0], k):
            d.ld_we.value = 1
            d.ld_layer.value = 0
            d.ld_sel.value = sel
            d.ld_group.value = g
            d.ld_addr.value = a
            d.ld_data.value = v
            await RisingEdge(d.clk)
        # writes to other layers must be ignored
        d.ld_layer.value = 1
        d.ld_sel.value = 4
        d.ld_data.value = 5
        await RisingEdge(d.clk)
        d.ld_we.value = 0

    async def run(self, words, bubble, short_frame_after=None, timeout_per_word=20000):
        beats = []
        for i, w in enumerate(words):
            wb = word_beats(w)
            beats += [(b, int(i == len(words) - 1 and j == 127)) for j, b in enumerate(wb)]
            if short_frame_after == i:
                beats += [(0x0101010101010101 * (j + 1), int(j == 9)) for j in range(10)]
        n0 = len(self.words)
        cocotb.start_soon(send_beats(self.dut, "s_axis", beats, bubble, random.Random(7)))
        for _ in range(len(words) * timeout_per_word // 100):
            if len(self.words) >= n0 + len(words):
                break
            await ClockCycles(self.dut.clk, 100)
        assert len(self.words) == n0 + len(words), f"{len(self.words) - n0} of {len(words)} words came out"
        return self.words[n0:]


def check(got, model, words, log, k=None, name=""):
    for i, (w, (win, tag, _)) in enumerate(zip(words, got)):
        want = expected(model, w, k)
        if win != want:
            gi, wi = dict(win), dict(want)
            bad = [(j, gi.get(j), v) for j, v in want if gi.get(j) != v][:5]
            extra = [j for j in gi if j not in wi][:5]
            raise AssertionError(f"{name} word {i}: {len(win)} winners vs {len(want)} golden; first differences "
                                 f"(idx, rtl, golden) {bad}, extra {extra}; order ok {win == sorted(win)}")
        assert tag == int(i == len(words) - 1), f"{name} word {i}: tag {tag}"
    log.info("%s: %d words bit-exact (winners per word %s)", name, len(words), [len(g[0]) for g in got][:8])


def corner_model(model, words):
    """conv1 weights drawn mostly from the extremes (-128, 127, -1), requant shift fitted to `words`."""
    from pynq_sparse.golden import conv_acc, maxpool2
    layer = model.layers[0]
    layer = dataclasses.replace(layer, packed_weights=extreme_weights(layer.packed_weights.shape, seed=5))
    acc = np.stack([maxpool2(conv_acc(np.asarray(x, dtype=np.int64).reshape(1, 32, 32), layer)) for x in words])
    layer = dataclasses.replace(layer, requant_shift=fitted_shift(acc, layer.requant_mult))
    return dataclasses.replace(model, layers=[layer] + list(model.layers[1:]))


def tie_words():
    """Words with many equal conv1 outputs: flat, stripes, and a checkerboard of two levels."""
    out = []
    for v in (0, 1, 64, 127):
        out.append(np.full((32, 32), v))
    yy, xx = np.mgrid[0:32, 0:32]
    out.append(np.where((yy // 4 + xx // 4) % 2 == 0, 90, 10))
    out.append(np.where(yy % 8 < 4, 50, 0))
    w = np.full((32, 32), 40)
    w[10:20, 5:9] = 127
    out.append(w)
    return np.asarray(out).astype(np.int8)


@cocotb.test()
async def test_conv1_words(dut):
    tb = TB(dut)
    await tb.reset()
    rng = random.Random(11)
    cocotb.start_soon(tb.afull_noise(0.3, rng))
    model = get_model(seed=1)
    await tb.load(model)
    words = np.concatenate([random_words(4, seed=9), real_words(3)[0]])
    words[1, 3, 5] = -3                         # a byte >= 0x80 counts as 0
    got = await tb.run(words, 0.3, short_frame_after=1)
    w_exp = words.copy()
    w_exp[1, 3, 5] = 0
    check(got, model, w_exp, dut._log, name="model 1")

    # second model and other k values, loaded at run time; tie-heavy words
    model2 = get_model(seed=2)
    tw = tie_words()
    for k in (None, 37, 5000, 12544):
        await tb.load(model2, k)
        got = await tb.run(tw, 0.1)
        check(got, model2, tw, dut._log, k=k, name=f"model 2, k {k}")
    # back to model 1, mixed words again (weights fully overwritten)
    await tb.load(model)
    got = await tb.run(words[:3], 0.0)
    check(got, model, w_exp[:3], dut._log, name="model 1 again")

    # corner weights (many -128 and 127, pixels up to 127): two packed kernels share one multiplier,
    # the multiplicand holds hi - (lo < 0), which reaches -129
    cw = np.concatenate([w_exp[:3], np.full((1, 32, 32), 127, dtype=np.int8)])
    model3 = corner_model(model, cw)
    await tb.load(model3)
    got = await tb.run(cw, 0.1)
    check(got, model3, cw, dut._log, name="corner weights")


@cocotb.test()
async def test_conv1_interval(dut):
    n = int(os.environ.get("SK_N_WORDS", "8"))
    tb = TB(dut)
    await tb.reset()
    model = get_model(seed=None)
    await tb.load(model)
    words = real_words(n)[0]
    t0 = int(cocotb.utils.get_sim_time("ns")) // 10
    got = await tb.run(words, 0.0)
    check(got, model, words, dut._log, name="interval run")
    times = [g[2] - t0 for g in got]
    half = n // 2
    interval = (times[-1] - times[half - 1]) / (n - half)
    dut._log.info("end beats at %s; steady-state interval %.1f cycles/word; winners %s", times, interval,
                  [len(g[0]) for g in got])
    out = os.environ.get("SK_MEASURE_OUT")
    if out:
        json.dump({"engine": "sk_conv1", "words": n, "first_word_cycles": times[0],
                   "interval_cycles_per_word": interval, "end_cycles": times,
                   "winners": [len(g[0]) for g in got]}, open(out, "w"), indent=1)
