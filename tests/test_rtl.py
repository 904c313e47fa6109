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

pytestmark = pytest.mark.timeout(2700)   # Verilator builds of the engines take minutes on 2 cores
N_CLIPS = os.environ.get("SK_N_CLIPS", "50")


def test_sk_fifo_icarus():
    run_cocotb("sk_fifo", ["sk_fifo.v"], "test_sk_fifo", sim="icarus", parameters={"WIDTH": 8, "DEPTH": 8})


def test_sk_requant_icarus():
    run_cocotb("sk_requant", ["sk_requant.v"], "test_sk_requant", sim="icarus")


def test_sk_conv1_verilator():
    """Dense conv1 engine: random/real/tie-heavy words, bubbles, back-pressure, run-time reload, interval."""
    SIM_BUILD.mkdir(parents=True, exist_ok=True)
    run_cocotb("sk_conv1", ["sk_requant.v", "sk_conv1.v"], "test_sk_conv1", sim="verilator",
               extra_env={"SK_N_WORDS": "8", "SK_MEASURE_OUT": str(SIM_BUILD / "conv1_interval.json")})


def test_sk_loader_icarus():
    run_cocotb("sk_loader", ["sk_loader.v"], "test_sk_loader", sim="icarus", parameters=_tiny_hdr())


# sk_fc, the fc1 / fc2 engine: (parameters, words per model, max interval)
FC_LAYER_CONFIGS = {
    "small_lanes4_pp": (dict(FAN_IN=96, OUT_C=45, N_PACK=5, LANES=4, PINGPONG=1, FINAL=0), 6, None),
    "small_lanes1": (dict(FAN_IN=64, OUT_C=24, N_PACK=3, LANES=1, PINGPONG=0, FINAL=0), 4, None),
    "small_lanes2": (dict(FAN_IN=96, OUT_C=45, N_PACK=5, LANES=2, PINGPONG=0, FINAL=0), 4, None),   # fc1 of "small"
    "final_pp": (dict(FAN_IN=150, OUT_C=12, N_PACK=1, LANES=1, PINGPONG=1, FINAL=1), 5, None),
    "fc1_size": (dict(FAN_IN=1600, OUT_C=1500, N_PACK=25, LANES=8, PINGPONG=1, FINAL=0), 3, 520),
    "fc2_size": (dict(FAN_IN=1500, OUT_C=12, N_PACK=1, LANES=1, PINGPONG=1, FINAL=1), 3, 250),
}


@pytest.mark.parametrize("cfg", list(FC_LAYER_CONFIGS))
def test_sk_fc_icarus(cfg):
    """sk_fc vs golden arithmetic: winners, ties, bubbles, back-pressure, ping-pong, lanes."""
    p, n, limit = FC_LAYER_CONFIGS[cfg]
    params = dict(LAYER_ID=2, ACC_W=26, **p)
    env = {f"SKL_{k}": str(v) for k, v in params.items()}
    env["SKL_N_WORDS"] = str(n)
    if p["FAN_IN"] * p["OUT_C"] // p["N_PACK"] > 50_000:
        env["SKL_VARIANTS"] = "saturate"       # the weight load takes ~10^5 cycles per model on Icarus
    if limit:
        env["SK_FC_MAX_INTERVAL"] = str(limit)
        env["SKL_STEADY_K"] = "180" if not p["FINAL"] else "1"     # the shipped k3
    run_cocotb("sk_fc", ["sk_requant.v", "sk_fc.v"], "test_sk_fc", sim="icarus", parameters=params,
               tag="_" + cfg, extra_env=env)


@pytest.mark.parametrize("phases,bram", [(1, 0), (2, 0), (2, 1)], ids=["p1", "p2", "p2_bram"])
def test_sk_conv2_verilator(phases, bram):
    """conv2 engine (one winner per PHASES cycles): random models, ties, second model, real words vs golden_trace.
    bram 1: weights and readout copies in block RAM (WBRAM = RBRAM = 1, the small configuration)."""
    from test_sk_conv2 import run
    name = "conv2_interval" + ("" if phases == 1 else f"_p{phases}") + ("_bram" if bram else "")
    run(phases, n_clips=8, measure_out=SIM_BUILD / f"{name}.json", wbram=bram, rbram=bram)


def test_sk_core_verilator():
    """One copy: random-model words with per-layer winner checks, then real clips, all bit-exact."""
    SIM_BUILD.mkdir(parents=True, exist_ok=True)
    run_cocotb("sk_core", CORE_SOURCES, "test_sk_core", sim="verilator",
               extra_env={"SK_N_WORDS": "3", "SK_N_CLIPS": N_CLIPS,
                          "SK_CLIPS_OUT": str(SIM_BUILD / "clips_core.json")})


def test_sk_core_small_verilator():
    """The small configuration of one copy (common.CORE_CONFIGS["small"]: CONV1_PHASES 4, CONV2_PHASES 2,
    FC1_LANES 2, FC1_PINGPONG 0, CONV2_WBRAM 1, CONV2_RBRAM 1): random-model
    words with per-layer winner checks, then 8 real clips, all bit-exact."""
    from test_sk_core import run
    run("small", n_words=3, n_clips=min(8, int(N_CLIPS)), clips_out=SIM_BUILD / "clips_core_small.json")


def test_sk_core_small_lowbram_verilator():
    """The small_lowbram configuration (CORE_CONFIGS: "small" with conv2's readout copies in LUT RAM): random-model
    words with per-layer winner checks, then 8 real clips, all bit-exact."""
    from test_sk_core import run
    run("small_lowbram", n_words=3, n_clips=min(8, int(N_CLIPS)), clips_out=SIM_BUILD / "clips_core_small_lowbram.json")


def test_sk_top_n3_verilator():
    """Map-reduce with 3 copies: back-pressure, framing, soft reset mid-word, second model, real clips."""
    SIM_BUILD.mkdir(parents=True, exist_ok=True)
    run_cocotb("sk_top", TOP_SOURCES, "test_sk_top", sim="verilator", parameters={"N_COPIES": 3}, tag="3",
               extra_env={"SK_N_WORDS": "8", "SK_N_CLIPS": N_CLIPS,
                          "SK_CLIPS_OUT": str(SIM_BUILD / "clips_n3.json")})


def _tiny_hdr() -> dict:
    from test_sk_loader import TINY_HDR_PARAM
    return {"HDR": TINY_HDR_PARAM}
