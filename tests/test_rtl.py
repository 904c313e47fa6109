"""pytest entry of the RTL cocotb suite (overlays/tests): unit tests on Icarus, core and top on Verilator.

Fails (does not skip) when a simulator is missing. Environment knobs:
SK_N_CLIPS (real clips for the bit-exact runs, default 50), SK_SIM_BUILD (build directory).
Each Verilator configuration is built once (cocotb runner, always=False) and runs all tests of its
testbench in one simulation.

    .venv/bin/python -m pytest tests/test_rtl.py -v
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1] / "overlays" / "tests"
sys.path.insert(0, str(TESTS))

from common import CORE_SOURCES, SIM_BUILD, TOP_SOURCES, run_cocotb  # noqa: E402

pytestmark = pytest.mark.timeout(1800)
N_CLIPS = os.environ.get("SK_N_CLIPS", "50")


def test_sk_fifo_icarus():
    run_cocotb("sk_fifo", ["sk_fifo.v"], "test_sk_fifo", sim="icarus", parameters={"WIDTH": 8, "DEPTH": 8})


def test_sk_requant_icarus():
    run_cocotb("sk_requant", ["sk_requant.v"], "test_sk_requant", sim="icarus")


def test_sk_word_in_icarus():
    run_cocotb("sk_word_in", ["sk_word_in.v"], "test_sk_word_in", sim="icarus")


def test_sk_loader_icarus():
    run_cocotb("sk_loader", ["sk_loader.v"], "test_sk_loader", sim="icarus", parameters=_tiny_hdr())


def test_sk_core_verilator():
    """One copy: random-model words with per-layer winner checks, then real clips, all bit-exact."""
    SIM_BUILD.mkdir(parents=True, exist_ok=True)
    run_cocotb("sk_core", CORE_SOURCES, "test_sk_core", sim="verilator",
               extra_env={"SK_N_WORDS": "3", "SK_N_CLIPS": N_CLIPS,
                          "SK_CLIPS_OUT": str(SIM_BUILD / "clips_core.json")})


def test_sk_top_n3_verilator():
    """Map-reduce with 3 copies: back-pressure, framing, soft reset mid-word, second model, real clips."""
    SIM_BUILD.mkdir(parents=True, exist_ok=True)
    run_cocotb("sk_top", TOP_SOURCES, "test_sk_top", sim="verilator", parameters={"N_COPIES": 3}, tag="3",
               extra_env={"SK_N_WORDS": "8", "SK_N_CLIPS": N_CLIPS,
                          "SK_CLIPS_OUT": str(SIM_BUILD / "clips_n3.json")})


def _tiny_hdr() -> dict:
    from test_sk_loader import TINY_HDR_PARAM
    return {"HDR": TINY_HDR_PARAM}
