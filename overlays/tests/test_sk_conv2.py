"""cocotb testbench of sk_conv2 (the conv2 engine) against golden_trace.

Input: the winners of conv1 (golden_trace(model, word).activations[1], ascending idx, then an end
beat with the word's tag); expected output: the non-zeros of activations[2] in idx order, then an
end beat with the same tag. With TVALID bubbles, random m_afull back-pressure (at most 2 pushes
after m_afull rose), a second model loaded at run time, crafted ties at the threshold (saturated
requantisation, T = 0, mid thresholds) and real words with the shipped model.
test_conv2_measure (SK_MEASURE_OUT) feeds real words back to back and writes the interval.
The same tests run for both engine configurations: SK_CONV2_PHASES names the PHASES parameter the
simulation was built with (1: one winner per cycle, 2: half the hardware, two cycles per winner;
`run(phases)` builds and runs one); the interval is checked against PHASES x winners + 100.
"""
from __future__ import annotations

import copy
import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from common import extreme_weights, fitted_shift, get_model, model_layer_writes, random_words, real_words

LAYER = 1
PHASES = int(os.environ.get("SK_CONV2_PHASES", "1"))


def in_beats(act1, tag):
    """Winner beats of conv1's output (64x14x14) in idx order, then the end beat."""
    flat = np.asarray(act1).reshape(-1)
    beats = []
    for idx in np.flatnonzero(flat):
        c, p = divmod(int(idx), 196)
        y, x = divmod(p, 14)
        beats.append((int(idx) << 28) | (c << 17) | (y << 12) | (x << 7) | int(flat[idx]))
    beats.append((1 << 45) | (tag << 44))
    return beats


def expected(act2, tag):
    flat = np.asarray(act2).reshape(-1)
    return [(int(i), int(flat[i])) for i in np.flatnonzero(flat)], tag


class TB:
    def __init__(self, dut, bubble=0.0, afull=0.0, seed=1):
        self.dut = dut
        self.bubble, self.afull = bubble, afull
        self.rng = random.Random(seed)
        self.words = []          # [(winners [(idx, val)], tag, end cycle)]
        self.cycle = 0
        self.violations = 0
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for n in ("ld_we", "ld_layer", "ld_sel", "ld_group", "ld_addr", "ld_data", "s_data", "s_valid", "m_afull"):
            getattr(dut, n).value = 0

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 130)      # the clear sweep
        cocotb.start_soon(self._monitor())

    async def load(self, model, others=True):
        d = self.dut
        writes = [(LAYER, *w) for w in model_layer_writes(model.layers[LAYER])]
        if others:   # conv1's writes (ld_layer 0) must be ignored
            writes = [(0, *w) for w in model_layer_writes(model.layers[0])] + writes
        for li, sel, g, a, v in writes:
            d.ld_we.value = 1
            d.ld_layer.value = li
            d.ld_sel.value = sel
            d.ld_group.value = g
            d.ld_addr.value = a
            d.ld_data.value = v
            await RisingEdge(d.clk)
        d.ld_we.value = 0

    async def _monitor(self):
        d = self.dut
        cur = []
        hist = [0, 0, 0]
        while True:
            # drive m_afull for the coming cycle, then look at the edge
            a = int(self.afull > 0 and self.rng.random() < self.afull)
            d.m_afull.value = a
            await RisingEdge(d.clk)
            self.cycle += 1
            if int(d.m_push.value):
                if hist[-1] and hist[-2] and hist[-3]:
                    self.violations += 1
                v = int(d.m_data.value)
                if v >> 45:
                    self.words.append((cur, (v >> 44) & 1, self.cycle))
                    cur = []
                else:
                    idx, c, y, x, val = (v >> 28) & 0xFFFF, (v >> 17) & 0x7FF, (v >> 12) & 31, (v >> 7) & 31, v & 0x7F
                    assert (c, y, x) == (idx // 25, idx % 25 // 5, idx % 5), f"beat {v:#x}: c/y/x vs idx {idx}"
                    cur.append((idx, val))
            hist = hist[1:] + [a]

    async def send(self, beats):
        d = self.dut
        for beat in beats:
            while self.bubble and self.rng.random() < self.bubble:
                d.s_valid.value = 0
                await RisingEdge(d.clk)
            d.s_data.value = beat
            d.s_valid.value = 1
            while True:
                await ReadOnly()
                if int(d.s_ready.value):
                    break
                await RisingEdge(d.clk)
            await RisingEdge(d.clk)
        d.s_valid.value = 0

    async def wait_words(self, n, limit=200000):
        for _ in range(limit):
            if len(self.words) >= n:
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"timeout: {len(self.words)} of {n} words out")


def check(tb, start, exps, log, name):
    for i, (want, tag) in enumerate(exps):
        got, gtag, _ = tb.words[start + i]
        if got != want:
            gi, wi = dict(got), dict(want)
            bad = [(j, gi.get(j), v) for j, v in want if gi.get(j) != v][:5]
            extra = [j for j in gi if j not in wi][:5]
            raise AssertionError(f"{name} word {i}: {len(got)} winners vs {len(want)} golden; "
                                 f"(idx, rtl, golden) {bad}, extra {extra}")
        assert gtag == tag, f"{name} word {i}: tag {gtag} != {tag}"
    assert tb.violations == 0, f"{tb.violations} pushes with m_afull high for 3 cycles"
    log.info("%s: %d words bit-exact (%s winners)", name, len(exps), [len(w) for w, _ in exps])


async def run_words(tb, model, words, name, tags=None):
    from pynq_sparse.golden import golden_trace
    traces = [golden_trace(model, w) for w in words]
    tags = tags or [int(i == len(words) - 1) for i in range(len(words))]
    beats = []
    for t, tag in zip(traces, tags):
        beats += in_beats(t.activations[1], tag)
    exps = [expected(t.activations[2], tag) for t, tag in zip(traces, tags)]
    start = len(tb.words)
    await tb.send(beats)
    await tb.wait_words(start + len(words))
    check(tb, start, exps, tb.dut._log, name)
    await ClockCycles(tb.dut.clk, 5)
    assert not int(tb.dut.busy.value), "busy after the last word"


def tie_models(base):
    """Variants of conv2 with many ties at the threshold."""
    out = []
    m = copy.deepcopy(base)                       # saturation: most positives requantise to 127
    m.layers[LAYER].requant_shift[:] = 12
    out.append(("saturated", m))
    m = copy.deepcopy(base)                       # T = 0: every non-zero wins
    m.layers[LAYER].k = 1600
    out.append(("k=1600", m))
    m = copy.deepcopy(base)                       # coarse values: few levels, ties mid-range
    m.layers[LAYER].requant_shift[:] = np.minimum(62, base.layers[LAYER].requant_shift.astype(int) + 4)
    m.layers[LAYER].k = 400
    out.append(("coarse k=400", m))
    m = copy.deepcopy(base)
    m.layers[LAYER].k = 1
    out.append(("k=1", m))
    return out


def corner_model(base, words):
    """conv2 weights drawn mostly from the extremes (-128, 127, -1): pairs with hi = -128 and lo < 0
    need the 9-bit multiplicand; requant shift fitted to `words` so the outputs do not all saturate."""
    from pynq_sparse.golden import conv_acc, golden_trace, maxpool2
    m = copy.deepcopy(base)
    layer = m.layers[LAYER]
    layer.packed_weights[...] = extreme_weights(layer.packed_weights.shape, seed=6)
    acc = np.stack([maxpool2(conv_acc(np.asarray(golden_trace(m, x).activations[1]).reshape(layer.in_shape),
                                      layer)) for x in words])
    layer.requant_shift[...] = fitted_shift(acc, layer.requant_mult)
    return m


@cocotb.test()
async def test_conv2_random(dut):
    """Random models and words, bubbles and back-pressure, a second model, crafted ties."""
    from pynq_sparse.golden import golden_trace, kwta_threshold, requantize
    tb = TB(dut, bubble=0.3, afull=0.3, seed=7)
    await tb.reset()
    m1 = get_model(seed=1)
    await tb.load(m1)
    await run_words(tb, m1, random_words(3, seed=11), "model 1", tags=[0, 1, 0])
    m2 = get_model(seed=2)
    await tb.load(m2)
    await run_words(tb, m2, random_words(2, seed=12), "model 2 (loaded at run time)")
    cw = random_words(2, seed=14)
    mc = corner_model(m1, cw)
    await tb.load(mc, others=False)
    await run_words(tb, mc, cw, "corner weights (-128 / 127 / -1)")
    for name, m in tie_models(m1):
        words = random_words(2, seed=13)
        await tb.load(m, others=False)
        await run_words(tb, m, words, name)
        t = golden_trace(m, words[0])
        dut._log.info("%s: threshold/ties %s", name, kwta_threshold(
            _requant2(m, t.activations[1]), m.layers[LAYER].k))


def _requant2(model, act1):
    from pynq_sparse.golden import conv_acc, maxpool2, requantize
    layer = model.layers[LAYER]
    return requantize(maxpool2(conv_acc(np.asarray(act1).reshape(layer.in_shape), layer)),
                      layer.requant_mult, layer.requant_shift)


@cocotb.test()
async def test_conv2_real(dut):
    """Real words with the shipped model, bubbles and back-pressure."""
    n = int(os.environ.get("SK_N_CLIPS", "8"))
    model = get_model(seed=None)
    words, _ = real_words(n)
    tb = TB(dut, bubble=0.2, afull=0.2, seed=9)
    await tb.reset()
    await tb.load(model, others=False)
    await run_words(tb, model, words, "real words")


@cocotb.test()
async def test_conv2_measure(dut):
    """Real words back to back, no bubbles or back-pressure: steady-state interval."""
    from pynq_sparse.golden import golden_trace
    n = int(os.environ.get("SK_N_MEASURE", "6"))
    model = get_model(seed=None)
    words, _ = real_words(n)
    tb = TB(dut)
    await tb.reset()
    await tb.load(model, others=False)
    await run_words(tb, model, words, "measure")
    ends = [c for _, _, c in tb.words]
    nin = [int(np.count_nonzero(golden_trace(model, w).activations[1])) for w in words]
    half = n // 2
    interval = (ends[-1] - ends[half - 1]) / (n - half)
    dut._log.info("PHASES %d: end-beat cycles %s, input winners %s, interval %.1f cycles/word",
                  PHASES, ends, nin, interval)
    limit = PHASES * float(np.mean(nin[half:])) + 100
    assert interval <= limit, f"interval {interval:.1f} > {limit:.1f} (PHASES {PHASES} x winners + 100)"
    out = os.environ.get("SK_MEASURE_OUT")
    if out:
        json.dump({"phases": PHASES, "words": n, "input_winners": nin, "end_cycles": ends,
                   "interval_cycles_per_word": interval,
                   "interval_minus_winners": interval - float(np.mean(nin[half:])),
                   "interval_minus_phases_x_winners": interval - PHASES * float(np.mean(nin[half:]))}, open(out, "w"), indent=1)


def run(phases: int = 1, n_clips: int = 8, measure_out: str | None = None, wbram: int = 0, rbram: int = 0):
    """Build sk_conv2 with PHASES = `phases`, WBRAM = `wbram`, RBRAM = `rbram` (Verilator) and run every test above."""
    from common import SIM_BUILD, run_cocotb
    SIM_BUILD.mkdir(parents=True, exist_ok=True)
    env = {"SK_N_CLIPS": str(n_clips), "SK_CONV2_PHASES": str(phases)}
    if measure_out:
        env["SK_MEASURE_OUT"] = str(measure_out)
    return run_cocotb("sk_conv2", ["sk_requant.v", "sk_conv2.v"], "test_sk_conv2", sim="verilator",
                      parameters={"PHASES": phases, "WBRAM": wbram, "RBRAM": rbram},
                      tag=("" if phases == 1 else f"_p{phases}") + ("_wbram" if wbram else "")
                      + ("_rbram" if rbram else ""), extra_env=env)
