"""cocotb testbench of sk_fc (the fc1 / fc2 engine), against golden arithmetic.

Random packed fc models (weights, owners, bias, requant) and random winner streams; every emitted
winner (index order, values, tie rule of docs/golden_model.md) and end beat (TLAST flag) checked, or
for FINAL = 1 every score and the argmax. Words are streamed back to back (with PINGPONG = 1 the
next word's scatter overlaps the back end), with TVALID bubbles and random m_afull / r_afull
back-pressure; model variants make many ties (saturated outputs, coarse requantisation), zeros,
k larger than the non-zero count, and a reload between words. Parameters come from the pytest
runner (tests/test_rtl.py); SK_FC_MAX_INTERVAL bounds the measured interval per word.
"""
from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from common import layer_writes
from pynq_sparse.golden import kwta, requantize


def params(dut):
    p = {}
    for name in ("FAN_IN", "OUT_C", "N_PACK", "FINAL", "LANES", "PINGPONG", "LAYER_ID"):
        p[name] = int(os.environ[f"SKL_{name}"])      # set by tests/test_rtl.py from the build parameters
    return p


class Model:
    """A random packed fc layer: entries [G, F] (weight, owner), bias, mult, shift, k."""

    def __init__(self, p, rng: np.random.Generator, variant: str, words: np.ndarray):
        f, oc, n_pack = p["FAN_IN"], p["OUT_C"], p["N_PACK"]
        g = oc // n_pack
        self.w = rng.integers(-128, 128, size=(g, f))
        self.owner = rng.integers(0, n_pack, size=(g, f))
        self.dense = np.zeros((oc, f), dtype=np.int64)
        for gi in range(g):
            self.dense[gi * n_pack + self.owner[gi], np.arange(f)] = self.w[gi]
        self.bias = rng.integers(-20_000, 20_000, size=oc)
        self.mult = rng.integers(1 << 14, 1 << 15, size=oc)
        acc = words.astype(np.int64) @ self.dense.T + self.bias
        spread = max(1.0, float(np.percentile(np.abs(acc), 90)))
        # shift so that the 90th percentile of |acc| maps to ~`top`
        top = {"normal": 100.0, "saturate": 1000.0, "coarse": 4.0}[variant]
        sh = int(np.clip(np.round(np.log2(spread * (1 << 15) / top)), 1, 62))
        self.shift = np.clip(sh + rng.integers(-1, 2, size=oc), 1, 62)
        self.k = int({"normal": rng.integers(1, max(2, oc // 4)), "saturate": rng.integers(1, max(2, oc // 3)),
                      "coarse": rng.integers(oc // 2, oc + 5)}[variant])
        self.variant = variant

    def expect(self, x, final):
        acc = self.dense @ x.astype(np.int64) + self.bias
        if final:
            return acc
        y = kwta(requantize(acc, self.mult, self.shift), self.k)
        return [(int(i), int(y[i])) for i in np.flatnonzero(y)]


class TB:
    def __init__(self, dut, p):
        self.dut, self.p = dut, p
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for name in ("ld_we", "ld_layer", "ld_sel", "ld_group", "ld_addr", "ld_data", "s_valid", "s_data",
                     "m_afull", "r_afull"):
            getattr(dut, name).value = 0
        self.cycle = 0
        self.out = []          # non-final: per word [(idx, val)]; final: per word (scores, class)
        self.tags, self.end_cycles = [], []
        self.afull_p = 0.0
        self.max_ties_seen = 0
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        d, cur = self.dut, []
        rng = random.Random(7)
        while True:
            await FallingEdge(d.clk)
            self.cycle += 1
            d.m_afull.value = int(rng.random() < self.afull_p)
            d.r_afull.value = int(rng.random() < self.afull_p)
            if int(d.m_push.value):
                v = int(d.m_data.value)
                if v >> 45:
                    self.out.append(cur)
                    self.tags.append((v >> 44) & 1)
                    self.end_cycles.append(self.cycle)
                    cur = []
                else:
                    idx, c, y, x, val = (v >> 28) & 0xFFFF, (v >> 17) & 0x7FF, (v >> 12) & 31, (v >> 7) & 31, v & 127
                    assert (c, y, x) == (idx & 0x7FF, 0, 0), f"fc winner fields {c, y, x} for idx {idx}"
                    cur.append((idx, val))
            if int(d.r_push.value):
                v = int(d.r_data.value)
                oc = self.p["OUT_C"]
                s = [(v >> (32 * i)) & 0xFFFFFFFF for i in range(oc)]
                s = [a - (1 << 32) if a >> 31 else a for a in s]
                self.out.append((s, (v >> (32 * oc)) & 0xFF))
                self.tags.append((v >> (32 * oc + 8)) & 1)
                self.end_cycles.append(self.cycle)

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def load(self, model):
        d = self.dut
        await FallingEdge(d.clk)
        for sel, g, a, v in layer_writes(model.w, model.owner, model.bias, model.mult, model.shift, model.k):
            d.ld_we.value = 1
            d.ld_layer.value = self.p["LAYER_ID"]
            d.ld_sel.value = sel
            d.ld_group.value = g
            d.ld_addr.value = a
            d.ld_data.value = v
            await FallingEdge(d.clk)
        d.ld_we.value = 0
        # a write to another layer must not land here
        d.ld_we.value = 1
        d.ld_layer.value = (self.p["LAYER_ID"] + 1) % 4
        d.ld_sel.value = 4
        d.ld_data.value = 12345
        await FallingEdge(d.clk)
        d.ld_we.value = 0

    async def send(self, words, bubble, rng, last_tag=True):
        """Winners of each word (ascending index, or shuffled), then its end beat; TLAST on the last word."""
        d = self.dut
        for wi, x in enumerate(words):
            nz = list(np.flatnonzero(x))
            if rng.random() < 0.3:
                rng.shuffle(nz)
            beats = [(int(i) << 28) | ((int(i) & 0x7FF) << 17) | int(x[i]) for i in nz]
            beats.append((1 << 45) | (int(last_tag and wi == len(words) - 1) << 44))
            for b in beats:
                while bubble and rng.random() < bubble:
                    d.s_valid.value = 0
                    await FallingEdge(d.clk)
                d.s_valid.value = 1
                d.s_data.value = b
                while True:
                    # s_ready depends on registers only: its value at the falling edge is the one the
                    # next rising edge sees
                    rdy = int(d.s_ready.value)
                    await FallingEdge(d.clk)
                    if rdy:
                        break
            d.s_valid.value = 0

    async def wait_words(self, n, limit=2_000_000):
        for _ in range(limit):
            if len(self.out) >= n:
                return
            await FallingEdge(self.dut.clk)
        raise AssertionError(f"timeout: {len(self.out)} of {n} words out")


def random_inputs(p, n, rng: np.random.Generator, density):
    x = rng.integers(1, 128, size=(n, p["FAN_IN"]))
    x[rng.random(x.shape) >= density] = 0
    return x


def check(tb, models_words, final, log, first=0):
    for i, (m, x) in enumerate(models_words):
        got = tb.out[first + i]
        exp = m.expect(x, final)
        if final:
            scores, cls = got
            assert scores == [int(a) for a in exp], f"word {i}: scores {scores} != {list(exp)}"
            assert cls == int(np.argmax(exp)), f"word {i}: class {cls} != {np.argmax(exp)}"
        else:
            if got != exp:
                gi, ei = dict(got), dict(exp)
                bad = [(j, gi.get(j), ei.get(j)) for j in sorted(set(gi) | set(ei)) if gi.get(j) != ei.get(j)][:8]
                raise AssertionError(f"word {i} ({m.variant}, k {m.k}): {len(got)} winners vs {len(exp)} "
                                     f"golden; (idx, rtl, golden) {bad}")
            y = requantize(m.dense @ x.astype(np.int64) + m.bias, m.mult, m.shift)
            t = min(v for _, v in exp) if exp else 0
            tb.max_ties_seen = max(tb.max_ties_seen, int(np.sum(y == t)) - sum(1 for _, v in exp if v == t))


@cocotb.test()
async def test_fc_words(dut):
    """Random fc models and winner streams, bubbles and back-pressure, ties; then the steady-state interval."""
    p = params(dut)
    final = bool(p["FINAL"])
    n = int(os.environ.get("SKL_N_WORDS", "6"))
    rng = np.random.default_rng(int(os.environ.get("SKL_SEED", "11")))
    prng = random.Random(5)
    tb = TB(dut, p)
    await tb.reset()
    done = 0
    variants = ["normal"] if final else ["normal", "saturate", "coarse"]
    if os.environ.get("SKL_VARIANTS") is not None:   # a subset (big configurations: loads are slow)
        variants = [v for v in os.environ["SKL_VARIANTS"].split(",") if v in variants]
    if os.environ.get("SKL_ONLY_STEADY"):          # measurement only (overlays/scripts/reports.py)
        variants = []
    for variant in variants:
        x = random_inputs(p, n, rng, density={"normal": 0.12, "saturate": 0.3, "coarse": 0.05}[variant])
        x[0] = 0 if variant == "saturate" else x[0]        # an all-zero word (no winners in)
        m = Model(p, rng, variant, x)
        await tb.load(m)
        tb.afull_p = 0.3
        await tb.send(x, bubble=0.3, rng=prng)
        await tb.wait_words(done + n)
        check(tb, [(m, xi) for xi in x], final, dut._log, first=done)
        assert tb.tags[done:done + n] == [0] * (n - 1) + [1], f"TLAST flags {tb.tags[done:done + n]}"
        dut._log.info("%s model (k %d): %d words bit-exact", variant, m.k, n)
        done += n
    if not final and variants:
        assert tb.max_ties_seen > 0, "no word had ties left out (the tie budget was not exercised)"

    # steady state: back-to-back words, no bubbles or back-pressure
    tb.afull_p = 0.0
    nm = 8
    x = random_inputs(p, nm, rng, density=0.12)
    m = Model(p, rng, "normal", x)
    if os.environ.get("SKL_STEADY_K"):              # e.g. the shipped k3 = 180 for the fc1 measurement
        m.k = int(os.environ["SKL_STEADY_K"])
    await tb.load(m)
    await tb.send(x, bubble=0.0, rng=random.Random(9))
    await tb.wait_words(done + nm)
    check(tb, [(m, xi) for xi in x], final, dut._log, first=done)
    ends = tb.end_cycles[done:done + nm]
    interval = (ends[-1] - ends[nm // 2 - 1]) / (nm - nm // 2)
    nnz = float(np.mean(np.count_nonzero(x, axis=1)))
    dut._log.info("steady-state interval %.1f cycles/word (%.0f winners in per word); result cycles %s",
                  interval, nnz, ends)
    limit = os.environ.get("SK_FC_MAX_INTERVAL")
    if limit:
        assert interval <= float(limit), f"interval {interval:.0f} cycles/word > {limit}"
    out = os.environ.get("SK_FC_MEASURE_OUT")
    if out:
        import json
        json.dump({"params": p, "winners_in_per_word": nnz, "k": m.k, "interval_cycles_per_word": interval,
                   "end_cycles": ends}, open(out, "w"), indent=1)
