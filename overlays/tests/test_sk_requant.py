"""cocotb testbench of sk_requant against pynq_sparse.golden.requantize (random and edge values)."""
import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from pynq_sparse.golden import requantize


@cocotb.test()
async def test_requant(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    rng = np.random.default_rng(3)
    n = 3000
    acc = rng.integers(-2**31, 2**31, size=n)
    acc[: n // 2] = rng.integers(-200000, 200000, size=n // 2)
    acc[:4] = [-2**31, 2**31 - 1, 0, -1]
    mult = rng.integers(2**14, 2**15, size=n)
    shift = rng.integers(1, 63, size=n)
    shift[n // 2:] = rng.integers(10, 24, size=n - n // 2)
    exp = [int(requantize(np.array([a]), np.array([m]), np.array([s]))[0]) for a, m, s in zip(acc, mult, shift)]
    got = []
    dut.in_valid.value = 0
    for i in range(n + 4):
        if i < n:
            dut.acc.value = int(acc[i]) & 0xFFFFFFFF
            dut.mult.value = int(mult[i])
            dut.shift.value = int(shift[i])
            dut.in_valid.value = 1
        else:
            dut.in_valid.value = 0
        await RisingEdge(dut.clk)
        if int(dut.out_valid.value):
            got.append(int(dut.y.value))
    assert got == exp[: len(got)] and len(got) == n, [(i, g, e) for i, (g, e) in enumerate(zip(got, exp)) if g != e][:5]
