"""The board builds without Vivado: `make -C overlays bitstream` writes the Tcl from the block design and
stops with exit code 2 and a clear message; the Tcl sets every core's engine configuration."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pynq_sparse.overlays.block_design import load_design

OVERLAYS = Path(__file__).resolve().parents[1] / "overlays"


@pytest.mark.parametrize("board", ["ultra96v2", "u250"])
def test_bitstream_without_vivado_stops_clearly(board):
    if shutil.which("vivado"):
        pytest.fail("this test checks the no-Vivado path; Vivado is on PATH here")
    res = subprocess.run(["make", "-s", "-C", str(OVERLAYS), "bitstream", f"BOARD={board}"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "MAKEFLAGS": ""})
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Vivado" in res.stdout + res.stderr and "not installed" in res.stdout + res.stderr
    tcl = (OVERLAYS / "build" / f"{board}.tcl").read_text()
    core = load_design(board)["cores"][0]
    if board == "u250":
        assert f"N_COPIES={core['n_copies']}" in tcl
    else:
        assert f"CONFIG.N_COPIES {{{core['n_copies']}}}" in tcl
        assert core["config"] == "small" and core["parameters"]
        for k, v in core["parameters"].items():
            assert f"CONFIG.{k} {{{v}}}" in tcl, k


def test_rtl_wrapper_takes_the_configuration_generics():
    """Every sk_core configuration parameter reaches sparse_kws (the IP Vivado packages)."""
    from pynq_sparse.overlays.block_design.design import CORE_CONFIGS
    text = (OVERLAYS / "rtl" / "sparse_kws.v").read_text()
    for params in CORE_CONFIGS.values():
        for k in params:
            assert f"parameter {k}" in text and f".{k}({k})" in text, k
