"""cocotb testbench of sk_core (one copy): words in, scores + class out, bit-exact against the golden model.

test_core_words: random-model words; also checks every winner conv1, conv2 and fc1 emit against
golden_trace, with TVALID bubbles and result back-pressure.
test_core_real_clips: SK_N_CLIPS real clips (gsc_v2_dev through the front end) with the shipped model
(random_model(1) until it exists), scores and class bit-exact, bubbles and back-pressure.
The simulation is built for one configuration of sk_core's parameters (common.CORE_CONFIGS; SK_CORE_CONFIG
names it in the logs and the clips file): "fast" = the defaults, "small" = the ZU3EG-sized core
(half the conv multipliers, 2 fc1 lanes, conv2 weights in block RAM). `run(config, ...)` builds and runs one.
"""
from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from common import (CORE_CONFIGS as CONFIGS, get_model, model_layer_writes, random_words, real_words, recv_beats, send_beats,
                    words_to_beats, REPO)

CONFIG = os.environ.get("SK_CORE_CONFIG", "fast")


class TB:
    def __init__(self, dut):
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for name in ("ld_we", "ld_layer", "ld_sel", "ld_group", "ld_addr", "ld_data", "s_axis_tvalid",
                     "s_axis_tdata", "s_axis_tlast", "m_res_ready"):
            getattr(dut, name).value = 0

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def load(self, model):
        d = self.dut
        for li, sel, g, a, v in ((li, *w) for li, layer in enumerate(model.layers)
                                 for w in model_layer_writes(layer)):
            d.ld_we.value = 1
            d.ld_layer.value = li
            d.ld_sel.value = sel
            d.ld_group.value = g
            d.ld_addr.value = a
            d.ld_data.value = v
            await RisingEdge(d.clk)
        d.ld_we.value = 0

    async def run_words(self, words, bubble=0.3, stall=0.4):
        """Send `words` (TLAST on the last), collect one result each: [(scores, class, tag, cycle)]."""
        cocotb.start_soon(send_beats(self.dut, "s_axis", words_to_beats(words), bubble, random.Random(3)))
        beats = await recv_beats(self.dut, "m_res", len(words), stall, random.Random(4),
                                 data_name="data", valid_name="valid", ready_name="ready", last_name=None)
        out = []
        for v, _, t in beats:
            scores = [(v >> (32 * i)) & 0xFFFFFFFF for i in range(12)]
            scores = [s - (1 << 32) if s >> 31 else s for s in scores]
            out.append((np.array(scores, dtype=np.int64), (v >> 384) & 0xFF, (v >> 392) & 1, t))
        return out


def check_results(res, model, words, log):
    from pynq_sparse.golden import golden_scores
    exp = golden_scores(model, words)
    for i, (scores, cls, tag, t) in enumerate(res):
        assert np.array_equal(scores, exp[i].astype(np.int64)), f"word {i}: {scores} != golden {exp[i]}"
        assert cls == int(np.argmax(exp[i])), f"word {i}: class {cls} != {np.argmax(exp[i])}"
        assert tag == int(i == len(words) - 1), f"word {i}: TLAST flag {tag}"
    log.info("%d words bit-exact; result cycles %s", len(res), [r[3] for r in res][:8])
    return len(res)


async def monitor_layer(dut, inst, store):
    """Record the winners a layer emits: one list of (idx, val) per word."""
    eng = getattr(dut, inst)
    cur = []
    while True:
        await RisingEdge(dut.clk)
        if int(eng.m_push.value):
            v = int(eng.m_data.value)
            if v >> 45:
                store.append(cur)
                cur = []
            else:
                cur.append(((v >> 28) & 0xFFFF, v & 0x7F))


def check_layer(store, acts, name, log):
    assert len(store) >= len(acts), f"{name}: {len(store)} words seen, {len(acts)} expected"
    for i, exp in enumerate(acts):
        got = store[i]
        exp = exp.reshape(-1)
        want = [(int(j), int(exp[j])) for j in np.flatnonzero(exp)]
        if got != want:
            gi = dict(got)
            bad = [(j, gi.get(j), v) for j, v in want if gi.get(j) != v][:5]
            extra = [j for j in gi if exp[j] == 0][:5]
            raise AssertionError(f"{name} word {i}: {len(got)} winners vs {len(want)} golden; "
                                 f"first differences (idx, rtl, golden) {bad}, extra {extra}")
    log.info("%s winners match for %d words", name, len(acts))


@cocotb.test()
async def test_core_words(dut):
    """Random-model words, per-layer winners and scores bit-exact, with bubbles and back-pressure."""
    from pynq_sparse.golden import golden_trace
    n = int(os.environ.get("SK_N_WORDS", "3"))
    model = get_model(seed=1)
    tb = TB(dut)
    await tb.reset()
    await tb.load(model)
    words = random_words(n, seed=5)
    stores = {name: [] for name in ("conv1_inst", "conv2_inst", "fc1_inst")}
    for name, st in stores.items():
        cocotb.start_soon(monitor_layer(dut, name, st))
    measure = os.environ.get("SK_MEASURE_OUT")
    t0 = cocotb.utils.get_sim_time("ns") // 10
    res = await (tb.run_words(words, 0.0, 0.0) if measure else tb.run_words(words))
    check_results(res, model, words, dut._log)
    if measure and n >= 4:
        times = [r[3] - t0 for r in res]
        half = n // 2
        json.dump({"n_copies": 1, "words": n, "backpressure": "0", "first_result_cycle": times[0],
                   "interval_cycles_per_word": (times[-1] - times[half - 1]) / (n - half),
                   "result_cycles": times}, open(measure, "w"), indent=1)
    traces = [golden_trace(model, w) for w in words]
    for li, name in enumerate(stores):
        check_layer(stores[name], [t.activations[li + 1] for t in traces], name, dut._log)
    if n >= 3:
        dut._log.info("interval between the last results: %d cycles", res[-1][3] - res[-2][3])


@cocotb.test()
async def test_core_real_clips(dut):
    """Real clips through the front end, the shipped model when present: scores bit-exact."""
    n = int(os.environ.get("SK_N_CLIPS", "0"))
    if n == 0:
        return
    model = get_model(seed=None)
    words, paths = real_words(n)
    tb = TB(dut)
    await tb.reset()
    await tb.load(model)
    res = await tb.run_words(words)
    matched = check_results(res, model, words, dut._log)
    times = [r[3] for r in res]
    interval = (times[-1] - times[0]) / max(1, len(times) - 1)
    dut._log.info("configuration %s %s: %d real clips bit-exact, result interval %.1f cycles/word",
                  CONFIG, CONFIGS.get(CONFIG), matched, interval)
    out = os.environ.get("SK_CLIPS_OUT")
    if out:
        json.dump({"bit_exact_clips": matched, "model_id": model.model_id,
                   "model": "random_model(1)" if model.info.get("kind") == "random" else "shipped",
                   "testbench": "sk_core (one copy), TVALID bubbles 30 %, TREADY back-pressure 40 %",
                   "config": CONFIG, "params": CONFIGS.get(CONFIG),
                   "result_interval_cycles": interval,
                   "clips": [os.path.relpath(p, REPO.parent) for p in paths]}, open(out, "w"), indent=1)


def run(config: str = "fast", n_words: int = 3, n_clips: int = 50, clips_out: str | None = None,
        extra_env: dict | None = None):
    """Build sk_core with the parameters of CONFIGS[config] (Verilator) and run both tests."""
    from common import CORE_SOURCES, SIM_BUILD, run_cocotb
    SIM_BUILD.mkdir(parents=True, exist_ok=True)
    env = {"SK_N_WORDS": str(n_words), "SK_N_CLIPS": str(n_clips), "SK_CORE_CONFIG": config}
    if clips_out:
        env["SK_CLIPS_OUT"] = str(clips_out)
    env.update(extra_env or {})
    params = CONFIGS[config]
    return run_cocotb("sk_core", CORE_SOURCES, "test_sk_core", sim="verilator", parameters=params or None,
                      tag="" if config == "fast" else f"_{config}", extra_env=env)
