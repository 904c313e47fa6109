"""cocotb testbench of sk_word_in against a Python model: 128 beats -> non-zero pixels, framing, tags.

Random TVALID bubbles on the input, random m_afull back-pressure on the output; a short frame (TLAST
on beat 10) between words must be dropped; bytes >= 0x80 count as zero; the end beat carries TLAST.
"""
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from common import send_beats, word_beats


def expected(word, tag):
    flat = np.asarray(word, dtype=np.int8).reshape(-1).view(np.uint8)
    return [(int(i), int(v)) for i, v in enumerate(flat) if 0 < v < 0x80], tag


async def monitor(dut, words_out):
    cur = []
    while True:
        await RisingEdge(dut.clk)
        if int(dut.m_push.value):
            v = int(dut.m_data.value)
            if v >> 45:
                words_out.append((cur, (v >> 44) & 1))
                cur = []
            else:
                idx, c, y, x, val = (v >> 28) & 0xFFFF, (v >> 17) & 0x7FF, (v >> 12) & 31, (v >> 7) & 31, v & 0x7F
                assert c == 0 and idx == y * 32 + x, f"pixel beat {v:#x}: c {c} y {y} x {x} idx {idx}"
                cur.append((idx, val))


async def afull_noise(dut, rng):
    while True:
        dut.m_afull.value = int(rng.random() < 0.3)
        await RisingEdge(dut.clk)


@cocotb.test()
async def test_word_in(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    rng = np.random.default_rng(4)
    dut.rst.value = 1
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tdata.value = 0
    dut.s_axis_tlast.value = 0
    dut.m_afull.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    words = rng.integers(-128, 128, size=(4, 32, 32)).astype(np.int8)
    words[rng.random(words.shape) < 0.5] = 0
    words[2] = 0                                   # an all-zero word: only the end beat
    got = []
    cocotb.start_soon(monitor(dut, got))
    cocotb.start_soon(afull_noise(dut, random.Random(5)))
    beats = [(b, 0) for b in word_beats(words[0])]
    beats += [(b, int(i == 9)) for i, b in enumerate(word_beats(words[1])[:10])]   # framing error: dropped
    for k in (1, 2, 3):
        beats += [(b, int(k == 3 and i == 127)) for i, b in enumerate(word_beats(words[k]))]
    await send_beats(dut, "s_axis", beats, bubble=0.3, rng=random.Random(6))
    for _ in range(20000):
        await RisingEdge(dut.clk)
        if len(got) == 4:
            break
    want = [expected(words[0], 0), expected(words[1], 0), expected(words[2], 0), expected(words[3], 1)]
    assert len(got) == 4, f"{len(got)} words out"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"word {i}: {len(g[0])} pixels tag {g[1]} vs {len(w[0])} pixels tag {w[1]}"
    await ClockCycles(dut.clk, 4)
    assert not int(dut.busy.value)
