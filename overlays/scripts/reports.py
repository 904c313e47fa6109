"""Hardware reports: measured cycles per word, yosys resources, copies per board, modeled words/s.

Writes overlays/reports/report.md and overlays/reports/summary.json. Runs the
measurement simulations (cocotb + Verilator) and yosys `synth_xilinx -family
xcup` unless their outputs already exist (--force redoes them).

    .venv/bin/python overlays/scripts/reports.py            # or: make -C overlays reports
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

OVERLAYS = Path(__file__).resolve().parents[1]
REPO = OVERLAYS.parent
REPORTS = OVERLAYS / "reports"
RTL = OVERLAYS / "rtl"
sys.path.insert(0, str(OVERLAYS / "tests"))
sys.path.insert(0, str(REPO))

CORE_FILES = ["sk_fifo.v", "sk_requant.v", "sk_word_in.v", "sk_layer.v", "sk_core.v"]
TOP_FILES = CORE_FILES + ["sk_loader.v", "sk_axil_regs.v", "sk_top.v"]

# Device capacities (datasheets; /work/shared/docs/reference.md section 1). FF from the same datasheets.
BOARDS = {
    "ZU3EG (Ultra96-V2)": dict(lut=70_560, ff=141_120, dsp=360, bram36=216, uram=0, clock_mhz=200),
    "ZCU104 (XCZU7EV)": dict(lut=230_400, ff=460_800, dsp=1_728, bram36=312, uram=96, clock_mhz=200),
    "KV260 (K26)": dict(lut=117_120, ff=234_240, dsp=1_248, bram36=144, uram=64, clock_mhz=200),
    "U250": dict(lut=1_728_000, ff=3_456_000, dsp=12_288, bram36=2_688, uram=1_280, clock_mhz=250),
}
UTIL = 0.80
N_TOP = 3          # the N-copy top measured in simulation (the test suite's build)
# Whitepaper (reference.md section 1): words/s, sparse-sparse
PAPER = {"U250": {"one": 102_564, "full": 1_369_863, "copies": 20},
         "ZU3EG (Ultra96-V2)": {"one": 45_455, "full": None, "copies": 1}}
PAPER_SHARE_U250 = {"lut": 2.97, "dsp": 3.07, "bram36": 4.50, "uram": 4.06}
# LUT cost of yosys' LUT-RAM / shift-register primitives
LUTRAM_LUTS = {"RAM32M": 4, "RAM32M16": 8, "RAM64M": 4, "RAM64M8": 8, "RAM32X1D": 2, "RAM64X1D": 2,
               "RAM128X1D": 4, "RAM256X1S": 4, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "SRL16E": 1,
               "SRLC32E": 1}


def run_yosys(top: str, files: list[str], params: dict, out: Path, force: bool, blackbox: list[str] = (),
              uram: bool = False) -> dict:
    """yosys `synth_xilinx -family xcup` of `top`; modules in `blackbox` are read as black boxes."""
    stat = out.with_suffix(".stat.txt")
    if force or not stat.exists():
        chparam = " ".join(f"-set {k} {v}" for k, v in params.items())
        script = ((f"read_verilog -lib {' '.join(blackbox)}\n" if blackbox else "")
                  + f"read_verilog {' '.join(files)}\n"
                  + (f"chparam {chparam} {top}\n" if params else "")
                  + f"synth_xilinx -family xcup{' -uram' if uram else ''} -top {top}\ntee -o {stat} stat\n")
        ys = out.with_suffix(".ys")
        ys.write_text(script)
        subprocess.run(["nice", "-n", "10", "yosys", "-q", "-l", str(out.with_suffix(".log")), str(ys)],
                       cwd=RTL, check=True, stdout=subprocess.DEVNULL)
    return parse_stat(stat.read_text())


def parse_stat(text: str) -> dict:
    # the last "=== design hierarchy ===" block (or the only module block) holds the totals
    part = text.split("=== design hierarchy ===")[-1]
    cells = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s+(\w+)\s+(\d+)\s*$", part, re.M)}
    lut = sum(v for k, v in cells.items() if re.fullmatch(r"LUT[1-6]", k))
    lut += sum(LUTRAM_LUTS.get(k, 0) * v for k, v in cells.items())
    ff = sum(v for k, v in cells.items() if re.fullmatch(r"FD[RSCP]E", k))
    return {"lut": lut, "ff": ff, "dsp": cells.get("DSP48E2", 0),
            "bram36": cells.get("RAMB36E2", 0) + cells.get("RAMB18E2", 0) / 2, "uram": cells.get("URAM288", 0),
            "cells": cells}


def measure(n_copies: int, words: int, force: bool) -> dict:
    """Steady-state cycles per word, no back-pressure: n_copies 0 = one sk_core, else an sk_top.

    Reuses the Verilator builds of the test suite (tests/test_rtl.py)."""
    out = REPORTS / (f"measured_n{n_copies}.json" if n_copies else "measured_core.json")
    if force or not out.exists():
        from common import CORE_SOURCES, TOP_SOURCES, run_cocotb
        env = {"SK_N_WORDS": str(words), "SK_BACKPRESSURE": "0", "SK_MEASURE_OUT": str(out), "SK_N_CLIPS": "0"}
        if n_copies == 0:
            run_cocotb("sk_core", CORE_SOURCES, "test_sk_core", sim="verilator",
                       extra_env={**env, "COCOTB_TEST_FILTER": "test_core_words"})
        else:
            run_cocotb("sk_top", TOP_SOURCES, "test_sk_top", sim="verilator", parameters={"N_COPIES": n_copies},
                       tag=str(n_copies), extra_env={**env, "COCOTB_TEST_FILTER": "test_top_words"})
    return json.loads(out.read_text())


def copies_fit(per_copy: dict, board: dict) -> tuple[int, str]:
    best, scarce = 10 ** 9, ""
    for res in ("lut", "ff", "dsp", "bram36", "uram"):
        need = per_copy[res]
        if need <= 0:
            continue
        n = math.floor(UTIL * board[res] / need) if board[res] else 0
        if n < best:
            best, scarce = n, res
    return best, scarce


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="re-run simulations and yosys")
    ap.add_argument("--words", type=int, default=8, help="words per measurement run")
    args = ap.parse_args()
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "yosys").mkdir(exist_ok=True)

    m1 = measure(0, args.words, args.force)
    m3 = measure(N_TOP, args.words * 2, args.force)
    core = run_yosys("sk_core", CORE_FILES, {}, REPORTS / "yosys" / "sk_core", args.force)
    # shared logic (registers, loader, distributor, collector, per-copy input FIFOs) with sk_core a black box
    top1 = run_yosys("sk_top", [f for f in TOP_FILES if f not in ("sk_core.v", "sk_layer.v", "sk_word_in.v",
                                                                  "sk_requant.v")],
                     {"N_COPIES": 1}, REPORTS / "yosys" / "sk_top_n1_shared", args.force, blackbox=["sk_core.v"])
    per_copy = {k: core[k] for k in ("lut", "ff", "dsp", "bram36", "uram")}
    shared = {k: top1[k] for k in per_copy}
    cpw = m1["interval_cycles_per_word"]
    n_top = m3["n_copies"]

    boards = {}
    for name, b in BOARDS.items():
        n, scarce = copies_fit(per_copy, b)
        boards[name] = {"clock_mhz_assumed": b["clock_mhz"], "copies_fit": n, "scarcest": scarce,
                        "words_per_s_one_copy": b["clock_mhz"] * 1e6 / cpw,
                        "modeled_words_per_s": n * b["clock_mhz"] * 1e6 / cpw}
    u250 = BOARDS["U250"]
    share = {k: 100.0 * per_copy[k] / u250[k] for k in ("lut", "dsp", "bram36", "uram")}

    clips = {}
    for name in ("core", "n3"):
        f = OVERLAYS / "sim_build" / f"clips_{name}.json"
        if f.exists():
            clips[name] = json.loads(f.read_text())
            (REPORTS / f"clips_{name}.json").write_text(f.read_text())   # keep the evidence with the report
        elif (REPORTS / f"clips_{name}.json").exists():
            clips[name] = json.loads((REPORTS / f"clips_{name}.json").read_text())
    n_clips = min((c["bit_exact_clips"] for c in clips.values()), default=0) if len(clips) == 2 else 0

    summary = {
        "cycles_per_word": round(cpw, 1),
        "cycles_per_word_measured_with": "one sk_core copy, Verilator, steady-state interval between results, no back-pressure",
        "n_copy_top": {"n_copies": n_top, "interval_cycles_per_word": round(m3["interval_cycles_per_word"], 1),
                       "cycles_per_word_per_copy": round(m3["interval_cycles_per_word"] * n_top, 1)},
        "clock_mhz_assumed": {k: v["clock_mhz_assumed"] for k, v in boards.items()},
        "clock_note": "assumed clocks: no place-and-route or timing analysis is possible here (no Vivado)",
        "resources_per_copy": {k: round(v, 1) for k, v in per_copy.items()},
        "resources_shared_top": {k: round(v, 1) for k, v in shared.items()},
        "resources_n_copies": {str(n): {k: round(n * per_copy[k] + shared[k], 1) for k in per_copy} for n in (1, 2, n_top, 20)},
        "resources_tool": "yosys 0.23 synth_xilinx -family xcup (no -uram: memories map to BRAM/LUTRAM); "
                          "N copies = N x one copy + shared logic",
        "copies_fit": {k: v["copies_fit"] for k, v in boards.items()},
        "scarcest_resource": {k: v["scarcest"] for k, v in boards.items()},
        "modeled_words_per_s": {k: round(v["modeled_words_per_s"]) for k, v in boards.items()},
        "u250_share_per_copy_percent": {k: round(v, 2) for k, v in share.items()},
        "whitepaper": PAPER,
        "bit_exact_clips": n_clips,
        "bit_exact_model": clips.get("n3", {}).get("model"),
        "bit_exact_runs": {k: {"clips": v["bit_exact_clips"], "model": v["model"], "model_id": v["model_id"],
                               "testbench": v.get("testbench")} for k, v in clips.items()},
        "targets_met": {
            "cycles_per_word_le_1000": cpw <= 1000,
            "u250_ge_24_copies": boards["U250"]["copies_fit"] >= 24,
            "zu3eg_ge_2_copies": boards["ZU3EG (Ultra96-V2)"]["copies_fit"] >= 2,
            "u250_ge_3x_paper": boards["U250"]["modeled_words_per_s"] >= 3 * 1_369_863,
            "zu3eg_ge_2x_paper": boards["ZU3EG (Ultra96-V2)"]["modeled_words_per_s"] >= 2 * 45_455,
        },
    }
    (REPORTS / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")

    lines = ["# sparse_kws hardware report", "",
             "Generated by `make -C overlays reports` (overlays/scripts/reports.py). **Clocks are assumptions**: "
             "no Vivado, so no place-and-route or timing analysis was possible; resources are yosys "
             "`synth_xilinx -family xcup` estimates, not Vivado utilisation.", "",
             "## Cycles per word (measured in simulation, Verilator)", "",
             f"* one copy (sk_core), steady-state interval between results: **{cpw:,.0f} cycles/word**",
             f"* N_COPIES = {n_top} top (sk_top, through AXI4-Stream), interval between results: "
             f"{m3['interval_cycles_per_word']:,.0f} cycles/word "
             f"({m3['interval_cycles_per_word'] * n_top:,.0f} cycles/word per copy)", "",
             "## Resources (yosys, one copy = sk_core)", "",
             "| | LUT | FF | DSP | BRAM36 | URAM |", "|---|---|---|---|---|---|",
             "| one copy | " + " | ".join(f"{per_copy[k]:,.1f}" for k in ("lut", "ff", "dsp", "bram36", "uram")) + " |",
             "| shared (loader, registers, map-reduce) | " + " | ".join(f"{shared[k]:,.1f}" for k in ("lut", "ff", "dsp", "bram36", "uram")) + " |",
             "| one copy as % of U250 | " + f"{share['lut']:.2f} | - | {share['dsp']:.2f} | {share['bram36']:.2f} | {share['uram']:.2f} |",
             "| whitepaper Table 6 (% of U250) | 2.97 | - | 3.07 | 4.50 | 4.06 |", "",
             "N copies: resources scale as N x one copy + shared (the copies share nothing but the load bus).", "",
             "## Copies per board (80 % of the scarcest resource) and modeled throughput", "",
             "| board | clock (assumed) | copies fit | scarcest | words/s one copy | words/s full chip | whitepaper one / full |",
             "|---|---|---|---|---|---|---|"]
    for name, v in boards.items():
        p = PAPER.get(name, {})
        pw = f"{p.get('one', '-'):,} / {p['full']:,} ({p['copies']})" if p.get("full") else (f"{p['one']:,} / -" if p else "-")
        lines.append(f"| {name} | {v['clock_mhz_assumed']} MHz | {v['copies_fit']} | {v['scarcest']} | "
                     f"{v['words_per_s_one_copy']:,.0f} | {v['modeled_words_per_s']:,.0f} | {pw} |")
    lines += ["", "## Targets of issue 4", ""]
    for k, ok in summary["targets_met"].items():
        lines.append(f"* {k}: {'met' if ok else '**not met**'}")
    lines += ["", "## Bit-exact real clips (last `make test` run)", ""]
    for k, v in summary["bit_exact_runs"].items():
        lines.append(f"* {v['testbench']}: {v['clips']} clips bit-exact, model {v['model']} (model_id {v['model_id']:#010x})")
    lines += ["",
              "Where the cycles go and what would close the gap: see docs/hardware.md."]
    (REPORTS / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
