"""Hardware reports: measured cycles per word, yosys resources, copies per board, modeled words/s.

Writes overlays/reports/report.md and overlays/reports/summary.json. Runs the
measurement simulations (cocotb + Verilator for one sk_core; Icarus for the fc
engines alone) and yosys `synth_xilinx -family xcup` once per engine
configuration of sk_core (not on the flattened core: that did not finish in
40 min), plus sk_top's shared logic with sk_core as a black box. Results are
cached under overlays/reports/ keyed by a hash of the sources and parameters
(--force redoes them); each yosys run's time is recorded next to its stat.

    .venv/bin/python overlays/scripts/reports.py [--jobs 2]   # or: make -C overlays reports
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

OVERLAYS = Path(__file__).resolve().parents[1]
REPO = OVERLAYS.parent
REPORTS = OVERLAYS / "reports"
RTL = OVERLAYS / "rtl"
sys.path.insert(0, str(OVERLAYS / "tests"))
sys.path.insert(0, str(REPO))

# The engines of one copy are read from sk_core.v's instances (core_instances: one yosys run per
# (module, parameters), x its count per copy); a new engine module in overlays/rtl/ is picked up as
# soon as sk_core instantiates it. The files of each run follow its instantiation tree (module_files).

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


YOSYS_FLOW = "synth_xilinx -family xcup -noiopad -noclkbuf"   # part of every cache key
CORE_TOP = "sk_core.v"

# Configurations of one copy (sk_core parameters over its defaults; CORE_CONFIGS of the block design,
# which overlays/tests/common.py passes on to the testbenches): every board gets the configuration with the most modeled words/s
# (copies that fit x clock / cycles); ties go to the first one listed.
from common import CORE_CONFIGS as CONFIGS  # noqa: E402


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", "", re.sub(r"//[^\n]*", "", text), flags=re.S)


def rtl_modules() -> dict[str, str]:
    """module name -> file (overlays/rtl/*.v)."""
    out = {}
    for f in sorted(RTL.glob("*.v")):
        for m in re.finditer(r"^\s*module\s+(\w+)", _strip_comments(f.read_text()), re.M):
            out[m.group(1)] = f.name
    return out


def module_files(module: str, mods: dict[str, str]) -> list[str]:
    """The file of `module` and of every module it instantiates (recursively), leaves first."""
    order: list[str] = []

    def visit(mod: str) -> None:
        f = mods[mod]
        if f in order:
            return
        text = _strip_comments((RTL / f).read_text())
        for other in mods:
            if other != mod and mods[other] != f and re.search(rf"\b{other}\b\s*(#|\w+\s*\()", text):
                visit(other)
        order.append(f)

    visit(module)
    return order


def _eval_param(expr: str, env: dict) -> int | str:
    expr = expr.strip()
    try:
        return int(eval(re.sub(r"\b([A-Za-z_]\w*)\b", lambda m: str(env.get(m.group(1), m.group(1))), expr),
                        {"__builtins__": {}}))
    except Exception:
        return expr


def core_parameters(core_file: Path = RTL / CORE_TOP) -> dict:
    """sk_core's parameters and their defaults."""
    text = _strip_comments(core_file.read_text())
    header = text.split(");", 1)[0]
    return {m.group(1): _eval_param(m.group(2), {})
            for m in re.finditer(r"parameter\s+(\w+)\s*=\s*([^,\n)]+)", header)}


def core_instances(core_file: Path = RTL / CORE_TOP, overrides: dict | None = None) -> list[dict]:
    """The engines of one copy, read from sk_core's instances: [{module, params, instances, count}].

    One row per (module, parameters); parameters given as sk_core parameters are resolved to their
    defaults, or to `overrides` (a configuration of CONFIGS). New engines (sk_conv1, sk_conv2, ...)
    are picked up as soon as sk_core instantiates them."""
    text = _strip_comments(core_file.read_text())
    mods = rtl_modules()
    header, body = text.split(");", 1) if ");" in text else (text, "")
    defaults = core_parameters(core_file)
    unknown = set(overrides or {}) - set(defaults)
    if unknown:
        raise ValueError(f"sk_core has no parameter(s) {sorted(unknown)}")
    defaults.update(overrides or {})
    rows: dict[tuple, dict] = {}
    pat = re.compile(r"\b(\w+)\s*(#\s*\((?P<p>(?:[^()]|\((?:[^()]|\([^()]*\))*\))*)\))?\s*(?P<inst>\w+)\s*\(")
    for m in pat.finditer(body):
        mod = m.group(1)
        if mod not in mods or mod == "sk_core":
            continue
        params = {pm.group(1): _eval_param(pm.group(2), defaults)
                  for pm in re.finditer(r"\.(\w+)\s*\(([^()]*(?:\([^()]*\))?[^()]*)\)", m.group("p") or "")}
        key = (mod, tuple(sorted(params.items())))
        row = rows.setdefault(key, {"module": mod, "params": params, "instances": [], "count": 0})
        row["instances"].append(m.group("inst"))
        row["count"] += 1
    return list(rows.values())


def yosys_job(top: str, files: list[str], params: dict, blackbox: list[str] = ()) -> tuple[str, Path]:
    """(yosys script, cache stem): the stem holds a hash of the sources, parameters and flow."""
    chparam = " ".join(f"-set {k} {v}" for k, v in params.items())
    script = ((f"read_verilog -lib {' '.join(blackbox)}\n" if blackbox else "")
              + f"read_verilog {' '.join(files)}\n"
              + (f"chparam {chparam} {top}\n" if params else "")
              + f"{YOSYS_FLOW} -top {top}\ntee -o @STAT@ stat\n")
    h = hashlib.sha1(script.encode())
    for f in list(files) + list(blackbox):
        h.update((RTL / f).read_bytes())
    label = top + "".join(f"_{k}{v}" for k, v in params.items() if k in ("LAYER_ID", "N_COPIES", "WIDTH", "DEPTH"))
    return script, REPORTS / "yosys" / f"{label}_{h.hexdigest()[:10]}"


def run_yosys_cached(script: str, stem: Path, force: bool) -> dict:
    """Run one yosys job unless its result is cached; returns the parsed stat + run time."""
    stat, meta = stem.with_suffix(".stat.txt"), stem.with_suffix(".json")
    if force or not (stat.exists() and meta.exists()):
        ys = stem.with_suffix(".ys")
        ys.write_text(script.replace("@STAT@", str(stat)))
        t0 = time.time()
        subprocess.run(["nice", "-n", "5", "yosys", "-q", "-l", str(stem.with_suffix(".log")), str(ys)],
                       cwd=RTL, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = stem.with_suffix(".log").read_text(errors="replace")
        ff_mems = sorted(set(re.findall(r"using FF mapping for memory (\S+)", log)))
        meta.write_text(json.dumps({"seconds": round(time.time() - t0, 1), "yosys_flow": YOSYS_FLOW,
                                    "memories_as_ff": ff_mems}, indent=1) + "\n")
    out = parse_stat(stat.read_text())
    out.update(json.loads(meta.read_text()))
    out["stat_file"] = str(stat.relative_to(REPORTS))
    return out


def run_yosys(top: str, files: list[str], params: dict, force: bool, blackbox: list[str] = ()) -> dict:
    script, stem = yosys_job(top, files, params, blackbox)
    return run_yosys_cached(script, stem, force)


def parse_stat(text: str) -> dict:
    # the last "=== design hierarchy ===" block (or the only module block) holds the totals
    part = text.split("=== design hierarchy ===")[-1]
    if "=== design hierarchy ===" not in text:
        part = text.split("===")[-1]
    cells = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s+(\w+)\s+(\d+)\s*$", part, re.M)}
    lut_logic = sum(v for k, v in cells.items() if re.fullmatch(r"LUT[1-6]", k))
    lut_mem = sum(LUTRAM_LUTS.get(k, 0) * v for k, v in cells.items())
    ff = sum(v for k, v in cells.items() if re.fullmatch(r"FD[RSCP]E", k))
    return {"lut": lut_logic + lut_mem, "lut_logic": lut_logic, "lut_as_memory": lut_mem, "ff": ff,
            "dsp": cells.get("DSP48E2", 0),
            "bram36": cells.get("RAMB36E2", 0) + cells.get("RAMB18E2", 0) / 2, "uram": cells.get("URAM288", 0),
            "cells": cells}


def synth_copy(force: bool, jobs: int, cached_only: bool = False,
               overrides: dict | None = None) -> tuple[list[dict], dict]:
    """yosys per engine configuration of sk_core (parallel up to `jobs`), summed to one copy."""
    mods = rtl_modules()
    rows = core_instances(overrides=overrides)
    # sk_core's own glue (busy/stall OR gates) is a few LUTs: not synthesised separately
    work = []
    for r in rows:
        script, stem = yosys_job(r["module"], module_files(r["module"], mods), r["params"])
        work.append((r, script, stem))
    def one(w):
        if cached_only and not (w[2].with_suffix(".stat.txt").exists() and w[2].with_suffix(".json").exists()):
            return None                       # not synthesised yet: left out of the sum, reported as missing
        return run_yosys_cached(w[1], w[2], force)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        results = list(ex.map(one, work))
    total = {k: 0.0 for k in ("lut", "lut_logic", "lut_as_memory", "ff", "dsp", "bram36", "uram")}
    for (r, _, stem), res in zip(work, results):
        if res is None:
            r.update(resources=None, cells={}, yosys_seconds=None, memories_as_ff=[],
                     stat_file=str(stem.with_suffix(".stat.txt").relative_to(REPORTS)))
            continue
        r["resources"] = {k: res[k] for k in total}
        r["cells"] = res["cells"]
        r["yosys_seconds"] = res["seconds"]
        r["memories_as_ff"] = res["memories_as_ff"]
        r["stat_file"] = res["stat_file"]
        for k in total:
            total[k] += r["count"] * res[k]
    return rows, total


def _sources_hash(files) -> str:
    h = hashlib.sha1()
    for f in files:
        h.update((RTL / f).read_bytes())
    return h.hexdigest()[:12]


def measure(n_copies: int, words: int, force: bool, reuse: bool = False, config: str = "fast") -> dict:
    """Steady-state cycles per word, no back-pressure: n_copies 0 = one sk_core, else an sk_top.

    `config` names the sk_core configuration (CONFIGS; one copy only). Reuses the Verilator builds
    of the test suite (tests/test_rtl.py; SK_SIM_BUILD selects the build directory). Re-measured
    when the RTL sources changed since the stored measurement."""
    from common import CORE_SOURCES, TOP_SOURCES, run_cocotb
    params = CONFIGS[config]
    suffix = "" if config == "fast" else f"_{config}"
    out = REPORTS / (f"measured_n{n_copies}.json" if n_copies else f"measured_core{suffix}.json")
    srcs = CORE_SOURCES if n_copies == 0 else TOP_SOURCES
    key = _sources_hash(srcs) + (f"_{config}" if params else "")
    old = json.loads(out.read_text()) if out.exists() else {}
    if old and reuse and not force:
        if old.get("rtl_hash") != key:
            old["stale"] = "measured on an earlier RTL version (--reuse-measurements)"
        return old
    if force or old.get("rtl_hash") != key:
        env = {"SK_N_WORDS": str(words), "SK_BACKPRESSURE": "0", "SK_MEASURE_OUT": str(out), "SK_N_CLIPS": "0"}
        t0 = time.time()
        if n_copies == 0:
            run_cocotb("sk_core", CORE_SOURCES, "test_sk_core", sim="verilator", parameters=params or None,
                       tag=suffix, extra_env={**env, "COCOTB_TEST_FILTER": "test_core_words"})
        else:
            run_cocotb("sk_top", TOP_SOURCES, "test_sk_top", sim="verilator", parameters={"N_COPIES": n_copies},
                       tag=str(n_copies), extra_env={**env, "COCOTB_TEST_FILTER": "test_top_words"})
        m = json.loads(out.read_text())
        m.update({"rtl_hash": key, "rtl_sources": srcs, "config": config, "params": params,
                  "seconds": round(time.time() - t0, 1)})
        out.write_text(json.dumps(m, indent=1) + "\n")
    return json.loads(out.read_text())


def measure_engines(force: bool, reuse: bool = False) -> dict:
    """Interval of the fc engines alone (sk_fc unit test, Icarus, real fc1 / fc2 sizes, no back-pressure)."""
    sys.path.insert(0, str(REPO / "tests"))
    from common import run_cocotb
    out = {}
    for name, (p, k) in ENGINE_MEASURE.items():
        f = REPORTS / f"measured_{name}.json"
        params = dict(LAYER_ID=2, ACC_W=26, **p)
        key = _sources_hash(["sk_requant.v", "sk_fc.v"]) + str(sorted(params.items())) + f"k{k}"
        old = json.loads(f.read_text()) if f.exists() else {}
        if force or (old.get("rtl_key") != key and not (reuse and old)):
            env = {f"SKL_{k}": str(v) for k, v in params.items()}
            env.update({"SKL_ONLY_STEADY": "1", "SK_FC_MEASURE_OUT": str(f), "SKL_STEADY_K": str(k)})
            run_cocotb("sk_fc", ["sk_requant.v", "sk_fc.v"], "test_sk_fc", sim="icarus",
                       parameters=params, tag="_" + name, extra_env=env)
            m = json.loads(f.read_text())
            m["rtl_key"] = key
            f.write_text(json.dumps(m, indent=1) + "\n")
        out[name] = json.loads(f.read_text())
    return out


# fc engines measured alone: fan-in, kernels, packing, lanes as in sk_core, k of the shipped
# architecture (k3 = 180; fc2 has none); ~12 % dense input (~192 / ~180 winners in per word)
ENGINE_MEASURE = {
    "fc1": (dict(FAN_IN=1600, OUT_C=1500, N_PACK=25, LANES=8, PINGPONG=1, FINAL=0), 180),
    "fc2": (dict(FAN_IN=1500, OUT_C=12, N_PACK=1, LANES=1, PINGPONG=1, FINAL=1), 1),
}


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


RES = ("lut", "ff", "dsp", "bram36", "uram")


def board_table(per_copy: dict, cpw: float) -> dict:
    """copies per board (80 % of the scarcest resource) and modeled words/s, from one copy's numbers."""
    boards = {}
    for name, b in BOARDS.items():
        n, scarce = copies_fit(per_copy, b)
        boards[name] = {"clock_mhz_assumed": b["clock_mhz"], "copies_fit": n, "scarcest": scarce,
                        "words_per_s_one_copy": b["clock_mhz"] * 1e6 / cpw,
                        "modeled_words_per_s": n * b["clock_mhz"] * 1e6 / cpw}
    return boards


def config_tables(configs: dict) -> dict:
    """{name: board_table} of every configuration: {name: {"per_copy": resources, "cycles_per_word": cpw}}."""
    return {name: board_table(c["per_copy"], c["cycles_per_word"]) for name, c in configs.items()}


def best_boards(tables: dict) -> dict:
    """Per board, the row of the configuration (config_tables, in CONFIGS order) with the most modeled
    words/s; ties go to the first; each returned row gains "config" (its name)."""
    out = {}
    for board in BOARDS:
        name = max(tables, key=lambda n: (tables[n][board]["modeled_words_per_s"], -list(tables).index(n)))
        out[board] = dict(tables[name][board], config=name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="re-run simulations and yosys")
    ap.add_argument("--words", type=int, default=8, help="words per measurement run")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("YOSYS_JOBS", "1")),
                    help="yosys runs in parallel (default 1; YOSYS_JOBS)")
    ap.add_argument("--top-sim", action="store_true", help="also measure the N_COPIES = 3 top (Verilator)")
    ap.add_argument("--no-engines", action="store_true", help="skip the fc engine interval measurements")
    ap.add_argument("--cached-synth-only", action="store_true",
                    help="no new yosys runs: configurations without a cached result are reported as missing")
    ap.add_argument("--reuse-measurements", action="store_true",
                    help="use the stored cycle measurements even if the RTL changed since (marked stale)")
    args = ap.parse_args()
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "yosys").mkdir(exist_ok=True)

    m1 = measure(0, args.words, args.force, args.reuse_measurements)
    m3 = (measure(N_TOP, args.words * 2, args.force, args.reuse_measurements)
          if (args.top_sim or (REPORTS / f"measured_n{N_TOP}.json").exists()) else None)
    engines = {} if args.no_engines else measure_engines(args.force, args.reuse_measurements)

    rows, copy_total = synth_copy(args.force, args.jobs, args.cached_synth_only)
    missing = [i for r in rows if r["resources"] is None for i in r["instances"]]
    # the other configurations of one copy (CONFIGS): cycles and resources the same way
    others = {}
    for name, params in CONFIGS.items():
        if not params:
            continue
        m = measure(0, args.words, args.force, args.reuse_measurements, name)
        c_rows, c_total = synth_copy(args.force, args.jobs, args.cached_synth_only, params)
        others[name] = {"measured": m, "rows": c_rows, "total": c_total,
                        "missing": [i for r in c_rows if r["resources"] is None for i in r["instances"]]}
    # shared logic (registers, loader, distributor, collector, per-copy input FIFOs) with sk_core a black box
    top1 = run_yosys("sk_top", ["sk_fifo.v", "sk_loader.v", "sk_axil_regs.v", "sk_top.v"], {"N_COPIES": 1},
                     args.force, blackbox=["sk_core.v"])
    per_copy = {k: copy_total[k] for k in RES}
    shared = {k: top1[k] for k in RES}
    cpw = m1["interval_cycles_per_word"]
    configs = {"fast": {"per_copy": per_copy, "cycles_per_word": cpw, "params": {}, "missing": missing}}
    for name, o in others.items():
        configs[name] = {"per_copy": {k: o["total"][k] for k in RES},
                         "cycles_per_word": o["measured"]["interval_cycles_per_word"],
                         "params": CONFIGS[name], "missing": o["missing"]}
    # a configuration whose yosys runs are not all done cannot be placed on a board
    tables = config_tables(configs)
    boards = best_boards({k: t for k, t in tables.items() if not configs[k]["missing"] or k == "fast"})
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
    n_clips = min((c["bit_exact_clips"] for c in clips.values()), default=0)

    def module_rows(rows):
        return [{"module": r["module"], "instances": r["instances"], "count_per_copy": r["count"],
                 "params": r["params"],
                 "resources_each": ({k: round(v, 1) for k, v in r["resources"].items()} if r["resources"] else None),
                 "yosys_seconds": r["yosys_seconds"], "memories_as_ff": r["memories_as_ff"],
                 "stat_file": r["stat_file"]} for r in rows]
    modules = module_rows(rows)
    for name, o in others.items():
        o["modules"] = module_rows(o["rows"])
    summary = {
        "cycles_per_word": round(cpw, 1),
        "cycles_per_word_measured_with": "one sk_core copy, Verilator, steady-state interval between results "
                                         f"of {m1['words']} random words, no back-pressure"
                                         + (f" ({m1['stale']})" if m1.get("stale") else ""),
        "cycles_per_word_rtl": m1.get("rtl_sources"),
        "engine_intervals": {k: {"interval_cycles_per_word": round(v["interval_cycles_per_word"], 1),
                                 "winners_in_per_word": v["winners_in_per_word"], "k": v.get("k"),
                                 "params": v["params"]} for k, v in engines.items()},
        "clock_mhz_assumed": {k: v["clock_mhz_assumed"] for k, v in boards.items()},
        "clock_note": "assumed clocks: no place-and-route or timing analysis is possible here (no Vivado)",
        "resources_per_copy": {k: round(v, 1) for k, v in per_copy.items()},
        "resources_missing_instances": missing,
        "resources_per_copy_detail": {"lut_logic": round(copy_total["lut_logic"], 1),
                                      "lut_as_memory": round(copy_total["lut_as_memory"], 1)},
        "resources_shared_top": {k: round(v, 1) for k, v in shared.items()},
        "resources_n_copies": {str(n): {k: round(n * per_copy[k] + shared[k], 1) for k in per_copy}
                               for n in (1, 2, N_TOP, 20)},
        "resources_tool": f"yosys 0.23 `{YOSYS_FLOW}` per engine configuration of sk_core (memories map to "
                          "BRAM/LUTRAM; no -uram), summed x count per copy; bram36 = RAMB36 + RAMB18 / 2; "
                          "lut includes LUT-RAM / SRL LUTs; N copies = N x one copy + shared logic",
        "modules": modules,
        "shared_top": {"yosys_seconds": top1["seconds"], "stat_file": top1["stat_file"]},
        "configurations": {
            name: {"params": c["params"], "cycles_per_word": round(c["cycles_per_word"], 1),
                   "resources_per_copy": {k: round(v, 1) for k, v in c["per_copy"].items()},
                   "resources_missing_instances": c["missing"],
                   **({"modules": others[name]["modules"]} if name in others else {}),
                   "copies_fit": {b: row["copies_fit"] for b, row in tables[name].items()}}
            for name, c in configs.items()},
        "board_configuration": {k: v["config"] for k, v in boards.items()},
        "board_configuration_note": "each board uses the configuration with the most modeled words/s; "
                                    "copies_fit and modeled_words_per_s are that configuration's, "
                                    "cycles_per_word and resources_per_copy are the fast one's (sk_core defaults)",
        "copies_fit_utilisation": UTIL,
        "copies_fit": {k: v["copies_fit"] for k, v in boards.items()},
        "scarcest_resource": {k: v["scarcest"] for k, v in boards.items()},
        "modeled_words_per_s": {k: round(v["modeled_words_per_s"]) for k, v in boards.items()},
        "modeled_words_per_s_note": "modeled from simulated cycles at the assumed clock: copies_fit x clock / "
                                    "cycles_per_word (no timing analysis)",
        "u250_share_per_copy_percent": {k: round(v, 2) for k, v in share.items()},
        "whitepaper": PAPER,
        "whitepaper_u250_share_per_copy_percent": PAPER_SHARE_U250,
        "bit_exact_clips": n_clips,
        "bit_exact_model": clips.get("core", {}).get("model"),
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
    if m3:
        summary["n_copy_top"] = {"n_copies": m3["n_copies"],
                                 "interval_cycles_per_word": round(m3["interval_cycles_per_word"], 1),
                                 "cycles_per_word_per_copy": round(m3["interval_cycles_per_word"] * m3["n_copies"], 1)}
    (REPORTS / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    # drop cached yosys results of configurations that are no longer part of the design
    used = ({Path(m["stat_file"]).name.split(".")[0] for m in modules}
            | {Path(m["stat_file"]).name.split(".")[0] for o in others.values() for m in o["modules"]}
            | {Path(top1["stat_file"]).name.split(".")[0]})
    for f in (REPORTS / "yosys").glob("*"):
        if re.search(r"_[0-9a-f]{10}$", f.name.split(".")[0]) and f.name.split(".")[0] not in used:
            f.unlink()

    fmt = lambda d: " | ".join(f"{d[k]:,.1f}" if isinstance(d[k], float) and d[k] % 1 else f"{d[k]:,.0f}" for k in RES)
    lines = ["# sparse_kws hardware report", "",
             "Generated by `make -C overlays reports` (overlays/scripts/reports.py). **Modeled, not measured on "
             "hardware**: cycles/word are measured in RTL simulation (Verilator), resources are yosys "
             f"`{YOSYS_FLOW}` estimates (not Vivado utilisation), and **clocks are assumptions** (no Vivado: no "
             "place-and-route or timing analysis). Words/s = copies x assumed clock / simulated cycles per word.", "",
             "## Cycles per word (measured in simulation)", "",
             f"* one copy (sk_core, Verilator), steady-state interval between results: **{cpw:,.0f} cycles/word**"
             + (f" ({m1['stale']})" if m1.get("stale") else "")
             + (f"; RTL: {', '.join(m1['rtl_sources'])}" if m1.get("rtl_sources") else "")]
    if m3:
        lines.append(f"* N_COPIES = {m3['n_copies']} top (sk_top, through AXI4-Stream): "
                     f"{m3['interval_cycles_per_word']:,.0f} cycles/word "
                     f"({m3['interval_cycles_per_word'] * m3['n_copies']:,.0f} cycles/word per copy)")
    for k, v in engines.items():
        lines.append(f"* {k} engine alone (sk_fc, Icarus, {v['winners_in_per_word']:.0f} winners in per word, "
                     f"k {v.get('k', '-')}, "
                     f"LANES {v['params']['LANES']}, PINGPONG {v['params']['PINGPONG']}): "
                     f"{v['interval_cycles_per_word']:,.0f} cycles/word")
    lines += ["", "## Resources per engine (yosys, one run per configuration)", "",
              "| module | instances | count | LUT | FF | DSP | BRAM36 | URAM | LUT as RAM/SRL | yosys s | memories as FFs |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in modules:
        r = m["resources_each"]
        if r is None:
            lines.append(f"| {m['module']} | {', '.join(m['instances'])} | {m['count_per_copy']} | "
                         "**yosys not finished: not in the sum** | | | | | | | |")
            continue
        lines.append(f"| {m['module']} | {', '.join(m['instances'])} | {m['count_per_copy']} | {fmt(r)} | "
                     f"{r['lut_as_memory']:,.0f} | {m['yosys_seconds']:.0f} | {len(m['memories_as_ff'])} |")
    if missing:
        lines += ["", f"**Incomplete: no yosys result yet for {', '.join(missing)}; the per-copy sum, copies per "
                  "board and words/s below leave it out (rerun `make -C overlays reports`).**"]
    lines += ["", "| | LUT | FF | DSP | BRAM36 | URAM |", "|---|---|---|---|---|---|",
              f"| one copy (sum x count) | {fmt(per_copy)} |",
              f"| shared (loader, registers, map-reduce; sk_top N_COPIES = 1, sk_core black box) | {fmt(shared)} |",
              "| one copy as % of U250 | " + f"{share['lut']:.2f} | - | {share['dsp']:.2f} | {share['bram36']:.2f} | "
              f"{share['uram']:.2f} |",
              "| whitepaper Table 6 (% of U250, one copy) | " + f"{PAPER_SHARE_U250['lut']} | - | "
              f"{PAPER_SHARE_U250['dsp']} | {PAPER_SHARE_U250['bram36']} | {PAPER_SHARE_U250['uram']} |", "",
              "N copies: resources scale as N x one copy + shared (the copies share nothing but the load bus). "
              f"BRAM36 counts RAMB36 + RAMB18 / 2. LUT includes LUT-RAM and SRL LUTs ({copy_total['lut_as_memory']:,.0f} "
              "per copy).", ""]
    if others:
        lines += ["## Configurations of one copy (sk_core parameters)", "",
                  "The tables above are the fast configuration (sk_core's defaults). The others trade cycles for "
                  "area; each is measured the same way (one sk_core in Verilator, yosys per engine).", "",
                  "| configuration | sk_core parameters | cycles/word (measured) | LUT | FF | DSP | BRAM36 | URAM |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, c in configs.items():
            pstr = ", ".join(f"{k} {v}" for k, v in c["params"].items()) or "defaults"
            res = ("**yosys not finished for " + ", ".join(c["missing"]) + "** | | | | |") if c["missing"] \
                else fmt(c["per_copy"]) + " |"
            lines.append(f"| {name} | {pstr} | {c['cycles_per_word']:,.0f} | {res}")
        for name, o in others.items():
            lines += ["", f"{name} configuration per engine:", "",
                      "| module | instances | LUT | FF | DSP | BRAM36 | URAM |", "|---|---|---|---|---|---|---|"]
            for m in o["modules"]:
                r = m["resources_each"]
                lines.append(f"| {m['module']} | {', '.join(m['instances'])} | "
                             + (fmt(r) if r else "**yosys not finished** | | | |") + " |")
        lines.append("")
    lines += ["## Copies per board (80 % of the scarcest resource) and modeled throughput (Tables 3, 4)", "",
              "Each board uses the configuration with the most modeled words/s.", "",
              "| board | configuration | clock (assumed) | copies fit | scarcest | words/s one copy (modeled) "
              "| words/s full chip (modeled) | whitepaper one copy / full chip (copies) |",
              "|---|---|---|---|---|---|---|---|"]
    for name, v in boards.items():
        p = PAPER.get(name, {})
        pw = (f"{p['one']:,} / {p['full']:,} ({p['copies']})" if p.get("full") else
              (f"{p['one']:,} / - ({p['copies']})" if p else "-"))
        lines.append(f"| {name} | {v['config']} | {v['clock_mhz_assumed']} MHz | {v['copies_fit']} | {v['scarcest']} | "
                     f"{v['words_per_s_one_copy']:,.0f} | {v['modeled_words_per_s']:,.0f} | {pw} |")
    lines += ["", "## Targets of the issue", ""]
    for k, ok in summary["targets_met"].items():
        lines.append(f"* {k}: {'met' if ok else '**not met**'}")
    lines += ["", "## Bit-exact real clips (last `make test` run)", ""]
    for k, v in summary["bit_exact_runs"].items():
        lines.append(f"* {v['testbench']}: {v['clips']} clips bit-exact, model {v['model']} "
                     f"(model_id {v['model_id']:#010x})")
    lines += ["", "Where the cycles go and what would close the gap: see docs/hardware.md."]
    (REPORTS / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
