"""cocotb testbench of sk_fifo: random pushes and pops (bubbles and back-pressure) against a Python queue."""
import random
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge


@cocotb.test()
async def test_fifo(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.s_valid.value = 0
    dut.m_ready.value = 0
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    model, got, nxt = deque(), [], 0
    for phase_push, phase_pop in ((0.9, 0.3), (0.3, 0.9), (0.5, 0.5), (1.0, 1.0)):
        for _ in range(600):
            push = random.random() < phase_push
            pop = random.random() < phase_pop
            dut.s_valid.value = int(push)
            dut.s_data.value = nxt & 0xFF
            dut.m_ready.value = int(pop)
            await ReadOnly()
            pushed = push and int(dut.s_ready.value)
            popped = pop and int(dut.m_valid.value)
            if popped:
                got.append(int(dut.m_data.value))
            await RisingEdge(dut.clk)
            if pushed:
                model.append(nxt & 0xFF)
                nxt += 1
    exp = list(model)[: len(got)]
    assert got == exp, "FIFO order or data wrong"
    assert len(got) > 500
