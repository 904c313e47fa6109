"""cocotb testbench of sk_top: AXI4-Lite loading, N-copy map-reduce, framing, reset, reload, real clips.

Everything goes through the real ports: weights through AXI4-Lite WLOAD_DATA (AxiLiteMaster streams
the writes back to back), words on s_axis with random TVALID bubbles, results on m_axis with random
TREADY back-pressure (overlays/tests/common.py).
"""
from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from common import (REPO, AxiLiteMaster, get_model, random_words, real_words, recv_beats, send_beats, word_beats,
                    words_to_beats)
from pynq_sparse.core_interface import (ERR_NO_MODEL, ERR_TLAST, ERR_WEIGHT_CRC, ERR_WEIGHT_SHAPE, REG,
                                        RESULT_BEATS, STATUS_IDLE, STATUS_LOADING, STATUS_MODEL_LOADED,
                                        WLOAD_BEGIN, WLOAD_COMMIT, weight_image)
from pynq_sparse.golden import golden_scores


class TB:
    def __init__(self, dut):
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        self.axil = AxiLiteMaster(dut, "s_axil")
        for n in ("s_axis_tvalid", "s_axis_tdata", "s_axis_tlast", "m_axis_tready"):
            getattr(dut, n).value = 0
        self.bubble, self.stall = 0.0, 0.0
        self.rng = random.Random(7)

    def backpressure(self, on: bool):
        self.bubble, self.stall = (0.3, 0.4) if on else (0.0, 0.0)

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def write(self, addr, value):
        await self.axil.write(addr, value)

    async def read(self, addr):
        return await self.axil.read(addr)

    async def wait_idle(self, limit: int = 100_000):
        """Poll STATUS until IDLE (what the driver does before a weight load)."""
        t0 = cocotb.utils.get_sim_time("ns") / 10
        while not await self.read(REG.STATUS) & STATUS_IDLE:
            assert cocotb.utils.get_sim_time("ns") / 10 - t0 < limit, "core never became idle"
            await ClockCycles(self.dut.clk, 64)

    async def load(self, model, corrupt: bool = False):
        image = weight_image(model)
        if corrupt:
            image = image.copy()
            image[100] ^= 1
        await self.wait_idle()
        await self.write(REG.WLOAD_CTRL, WLOAD_BEGIN)
        assert await self.read(REG.STATUS) & STATUS_LOADING
        t0 = cocotb.utils.get_sim_time("ns") / 10
        await self.axil.write_many(REG.WLOAD_DATA, image)
        assert await self.read(REG.WLOAD_COUNT) == len(image)
        await self.write(REG.WLOAD_CTRL, WLOAD_COMMIT)
        await ClockCycles(self.dut.clk, 2)
        self.dut._log.info("weight image of %d words loaded through AXI4-Lite in %d cycles", len(image),
                           cocotb.utils.get_sim_time("ns") / 10 - t0)

    def send(self, words, last_on_final=True):
        return cocotb.start_soon(send_beats(self.dut, "s_axis", words_to_beats(words, last_on_final),
                                            self.bubble, random.Random(self.rng.random())))

    def state(self) -> str:
        """Internal state for a timeout message."""
        d = self.dut
        parts = [f"beat {int(d.beat_reg.value)} dsel {int(d.dsel_reg.value)} csel {int(d.csel_reg.value)} "
                 f"words_in {int(d.words_in_reg.value)} words_out {int(d.words_out_reg.value)} "
                 f"tvalid {int(d.s_axis_tvalid.value)} tready {int(d.s_axis_tready.value)} loaded {int(d.loaded.value)} "
                 f"enable {int(d.enable_reg.value)} error {int(d.error_reg.value)}"]
        for i in range(int(d.N_COPIES.value)):
            c = d.copy[i].core_inst
            parts.append(f"copy {i}: conv1 {int(c.conv1_inst.state_reg.value)} conv2 {int(c.conv2_inst.state_reg.value)} "
                         f"fc1 {int(c.fc1_inst.state_reg.value)} fc2 {int(c.fc2_inst.state_reg.value)} "
                         f"res_valid {int(c.m_res_valid.value)} in_ready {int(d.copy[i].in_fifo_inst.s_ready.value)} "
                         f"wi_full {int(c.word_in_inst.full_reg.value)} wi_wcnt {int(c.word_in_inst.wcnt_reg.value)}")
        return "; ".join(parts)

    async def results(self, n, timeout_cycles: int = 0):
        from cocotb.triggers import with_timeout
        timeout_cycles = timeout_cycles or 200_000 + 120_000 * n
        try:
            beats = await with_timeout(recv_beats(self.dut, "m_axis", n * RESULT_BEATS, self.stall,
                                                  random.Random(self.rng.random())), timeout_cycles * 10, "ns")
        except Exception as e:
            raise AssertionError(f"{n} results not received in {timeout_cycles} cycles ({type(e).__name__}); "
                                 f"{self.state()}") from e
        out = []
        for w in range(n):
            chunk = beats[w * RESULT_BEATS:(w + 1) * RESULT_BEATS]
            raw = b"".join(d.to_bytes(8, "little") for d, _, _ in chunk)
            lasts = [l for _, l, _ in chunk]
            assert lasts[:-1] == [0] * (RESULT_BEATS - 1), f"result {w}: TLAST inside a result {lasts}"
            ints = np.frombuffer(raw, dtype="<i4").copy()
            out.append((ints, lasts[-1], chunk[-1][2]))
        return out


def check(results, model, words, seq0=0, last_on_final=True):
    exp = golden_scores(model, words)
    for i, ((r, tlast, _), e) in enumerate(zip(results, exp)):
        assert np.array_equal(r[:12], e), f"word {i}: scores {r[:12]} != golden {e}"
        assert r[12] == int(np.argmax(e)), f"word {i}: class {r[12]} != {np.argmax(e)}"
        assert r[13] == seq0 + i, f"word {i}: seq {r[13]} != {seq0 + i}"
        assert (int(r[14]) & 0xFFFFFFFF) == model.model_id, f"word {i}: model_id {r[14]:#x}"
        flag = int(last_on_final and i == len(words) - 1)
        assert r[15] == flag and tlast == flag, f"word {i}: flags {r[15]} / TLAST {tlast}, want {flag}"
    assert len(results) == len(words)
    return len(results)


@cocotb.test()
async def test_top_words(dut):
    """No-model drop, corrupt image, load through AXI4-Lite, then words with bubbles and back-pressure."""
    n = int(os.environ.get("SK_N_WORDS", "8"))
    ncopies = int(dut.N_COPIES.value)
    model = get_model(seed=1)
    tb = TB(dut)
    await tb.reset()
    assert await tb.read(REG.VERSION) == 0x10000
    assert await tb.read(REG.N_COPIES) == ncopies
    assert not await tb.read(REG.STATUS) & STATUS_IDLE   # the copies clear their accumulators after reset
    await tb.wait_idle(10_000)
    # a word before any model is dropped with ERR_NO_MODEL
    await tb.send(random_words(1, seed=9))
    await ClockCycles(dut.clk, 20)
    assert await tb.read(REG.ERROR) & ERR_NO_MODEL
    await tb.write(REG.ERROR, ERR_NO_MODEL)
    assert await tb.read(REG.ERROR) == 0
    # a corrupt image: CRC error, model stays unloaded
    await tb.load(model, corrupt=True)
    assert await tb.read(REG.ERROR) & ERR_WEIGHT_CRC
    assert not await tb.read(REG.STATUS) & STATUS_MODEL_LOADED
    await tb.write(REG.ERROR, 0x1F)
    # a truncated image: shape error
    await tb.write(REG.WLOAD_CTRL, WLOAD_BEGIN)
    await tb.axil.write_many(REG.WLOAD_DATA, weight_image(model)[:50])
    await tb.write(REG.WLOAD_CTRL, WLOAD_COMMIT)
    await ClockCycles(dut.clk, 2)        # the COMMIT check lands in ERROR two cycles after the write
    assert await tb.read(REG.ERROR) & ERR_WEIGHT_SHAPE
    await tb.write(REG.ERROR, 0x1F)
    await tb.load(model)
    assert await tb.read(REG.STATUS) & STATUS_MODEL_LOADED
    assert await tb.read(REG.MODEL_ID) == model.model_id
    await tb.write(REG.CTRL, 2 | 4)      # ENABLE, CLEAR_COUNTERS
    tb.backpressure(os.environ.get("SK_BACKPRESSURE", "1") == "1")
    words = random_words(n, seed=5)
    t0 = cocotb.utils.get_sim_time("ns") / 10
    tb.send(words)
    res = await tb.results(n)
    check(res, model, words)
    assert await tb.read(REG.WORDS_IN) == n
    assert await tb.read(REG.WORDS_OUT) == n
    per_copy = [await tb.read(REG.COPY_BASE + i * REG.COPY_STRIDE + REG.COPY_WORDS) for i in range(ncopies)]
    assert sum(per_copy) == n, per_copy
    busy = await tb.read(REG.BUSY_CYCLES)
    assert await tb.read(REG.STATUS) & STATUS_IDLE
    times = [t for _, _, t in res]
    dut._log.info("%d words bit-exact; per-copy words %s; busy cycles %d; result cycles %s", n, per_copy, busy,
                  [int(t - t0) for t in times])
    out = os.environ.get("SK_MEASURE_OUT")
    if out and n >= 4:
        half = n // 2
        steady = (times[-1] - times[half - 1]) / (n - half)
        json.dump({"n_copies": ncopies, "words": n, "backpressure": os.environ.get("SK_BACKPRESSURE", "1"),
                   "first_result_cycle": times[0] - t0, "interval_cycles_per_word": steady,
                   "cycles_per_word_per_copy": steady * ncopies, "busy_cycles": busy,
                   "result_cycles": [t - t0 for t in times]}, open(out, "w"), indent=1)


@cocotb.test()
async def test_top_framing_reset_reload(dut):
    """TLAST inside a word, soft reset in the middle of a word, and loading a second model at run time."""
    model_a, model_b = get_model(seed=1), get_model(seed=2)
    tb = TB(dut)
    await tb.reset()
    await tb.load(model_a)
    tb.backpressure(True)
    dut._log.info("model A loaded")
    # a short frame (TLAST on beat 10): dropped, ERR_TLAST, then normal words still line up
    await send_beats(dut, "s_axis", [(b, int(i == 9)) for i, b in enumerate(word_beats(random_words(1, 3)[0])[:10])],
                     0.3)
    words = random_words(3, seed=11)
    dut._log.info("short frame sent")
    tb.send(words)
    res = await tb.results(3)
    check(res, model_a, words)
    assert await tb.read(REG.ERROR) & ERR_TLAST
    await tb.write(REG.ERROR, 0x1F)
    assert await tb.read(REG.ERROR) == 0
    # soft reset while a word is being computed and the next one is half received
    tb.backpressure(False)
    busy_words = random_words(2, seed=14)
    beats = words_to_beats(busy_words, last_on_final=False)
    await send_beats(dut, "s_axis", beats[:128 + 61])
    await ClockCycles(dut.clk, 3000)
    assert not await tb.read(REG.STATUS) & STATUS_IDLE
    await tb.write(REG.CTRL, 1 | 2)      # SOFT_RESET, keep ENABLE
    await ClockCycles(dut.clk, 5)
    assert await tb.read(REG.STATUS) & STATUS_MODEL_LOADED
    await tb.wait_idle(10_000)           # the copies clear their accumulators, then report IDLE
    assert await tb.read(REG.ERROR) == 0
    tb.backpressure(True)
    words2 = random_words(2, seed=12)
    tb.send(words2)
    res = await tb.results(2)
    check(res, model_a, words2)          # seq restarts at 0 after the soft reset
    # a second model at run time (the driver waits for IDLE)
    await tb.load(model_b)
    assert await tb.read(REG.MODEL_ID) == model_b.model_id
    words3 = random_words(3, seed=13)
    tb.send(words3)
    res = await tb.results(3)
    check(res, model_b, words3, seq0=2)


@cocotb.test()
async def test_top_real_clips(dut):
    """Real clips from gsc_v2_dev through the front end, the shipped model when present: bit-exact."""
    n = int(os.environ.get("SK_N_CLIPS", "0"))
    if n == 0:
        return
    model = get_model(seed=None)
    words, paths = real_words(n)
    tb = TB(dut)
    await tb.reset()
    await tb.load(model)
    tb.backpressure(True)
    tb.send(words)
    res = await tb.results(len(words))
    matched = check(res, model, words)
    kind = "random_model(1)" if model.info.get("kind") == "random" else "shipped"
    dut._log.info("%d real clips bit-exact (model %s)", matched, kind)
    out = os.environ.get("SK_CLIPS_OUT")
    if out:
        times = [t for _, _, t in res]
        json.dump({"bit_exact_clips": matched, "model_id": model.model_id, "model": kind,
                   "testbench": f"sk_top N_COPIES={int(dut.N_COPIES.value)}, TVALID bubbles 30 %, TREADY 40 %",
                   "result_interval_cycles": (times[-1] - times[0]) / max(1, len(times) - 1),
                   "clips": [os.path.relpath(p, REPO.parent) for p in paths]}, open(out, "w"), indent=1)
