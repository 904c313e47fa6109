"""Front-end benchmark: librosa reference vs FastFrontend, side by side on real clips in memory.

Both are timed in the same run on the same clips (decoded beforehand), so the ratio holds
even when other jobs share the machine; the machine's load average is recorded with them.

Usage::

    python -m pynq_sparse.bench.frontend              # prints a markdown table
    pynq-sparse bench frontend --clips 2000

    from pynq_sparse.bench.frontend import run_frontend_bench, format_report
    print(format_report(run_frontend_bench(n_clips=2000)))
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..dataset import load_split, read_audio
from ..frontend import FastFrontend, reference_word

DEV_DATA = Path(os.environ.get("PYNQ_SPARSE_SHARED", Path(__file__).resolve().parents[3] / "shared")) \
    / "data" / "gsc_v2_dev"                                                  # ../shared beside the repo
BATCH = 256                                                                  # clips per FastFrontend call


def run_frontend_bench(n_clips: int = 2000, n_reference: int = 400, batch: int = BATCH, repeats: int = 3,
                       data: str | Path = DEV_DATA) -> dict[str, Any]:
    """Time the reference and the fast front end on the same real clips; compare their words.

    Parameters
    ----------
    n_clips : int > 0
        Real clips (evenly spread over the sorted dataset) timed with FastFrontend.
    n_reference : int > 0
        The first of those clips also run through the librosa reference, one at a time;
        the identical-cell share is measured on them.
    batch : int > 0
        Clips per FastFrontend call.
    repeats : int > 0
        Passes of FastFrontend over the clips; the fastest pass is reported (the first pass,
        which also starts the thread pool, is a warm-up and not counted).
    data : path
        A Speech Commands folder (default: the shared dev folder).

    Returns
    -------
    result : dict
        Keys carry their units: ``"reference[clips/s]"``, ``"fast[clips/s]"``, ``"speedup"``,
        ``"fast_cpu[us/clip]"`` (process CPU time per clip), ``"identical_cells"`` (share of
        equal int8 cells, fast vs reference), ``"max_abs_diff"``, plus the run's settings,
        ``"cpus"`` and ``"load_avg_1min"``.
    """
    examples = load_split(data, "all")
    pick = np.linspace(0, len(examples) - 1, min(n_clips, len(examples))).round().astype(int)
    x = read_audio([examples[i] for i in pick])                                   # float32 [n, 16000]
    n_ref = min(n_reference, len(x))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    reference_word(x[0])                                                          # warm-up: imports, caches
    t0 = time.perf_counter()
    ref = np.stack([reference_word(y) for y in x[:n_ref]])                        # int8 [n_ref, 32, 32]
    t_ref = time.perf_counter() - t0

    fe = FastFrontend()
    words = np.empty((len(x), 32, 32), np.int8)
    best, cpu = float("inf"), float("inf")
    for r in range(repeats + 1):
        c0, t0 = time.process_time(), time.perf_counter()
        for s in range(0, len(x), batch):
            words[s:s + batch] = fe(x[s:s + batch])
        if r:                                                                     # r == 0 is the warm-up
            best = min(best, time.perf_counter() - t0)
            cpu = min(cpu, time.process_time() - c0)
    fe.close()

    diff = np.abs(words[:n_ref].astype(np.int16) - ref)
    ref_rate, fast_rate = n_ref / t_ref, len(x) / best
    return {
        "n_clips": int(len(x)), "n_reference": int(n_ref), "batch": int(batch), "threads": fe.n_threads,
        "reference[clips/s]": ref_rate, "fast[clips/s]": fast_rate, "speedup": fast_rate / ref_rate,
        "fast_cpu[us/clip]": 1e6 * cpu / len(x),
        "identical_cells": float(np.mean(diff == 0)), "max_abs_diff": int(diff.max()),
        "cpus": os.cpu_count(), "load_avg_1min": load, "machine": platform.processor() or platform.machine(),
    }


def format_report(result: dict[str, Any]) -> str:
    """Markdown table of a :func:`run_frontend_bench` result."""
    r = result
    rows = [
        ("librosa reference (1 clip per call)", f"{r['reference[clips/s]']:,.0f} clips/s", f"{r['n_reference']} clips"),
        (f"FastFrontend (batches of {r['batch']}, {r['threads']} threads)", f"{r['fast[clips/s]']:,.0f} clips/s",
         f"{r['n_clips']} clips, {r['fast_cpu[us/clip]']:.0f} us CPU per clip"),
        ("speedup", f"{r['speedup']:.1f}x", ""),
        ("identical int8 cells (fast vs reference)", f"{100 * r['identical_cells']:.4f} %",
         f"{r['n_reference']} clips x 1024 cells, max abs diff {r['max_abs_diff']}"),
    ]
    lines = ["| front end | result | notes |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines.append("")
    lines.append(f"{r['cpus']} CPUs, 1-min load average {r['load_avg_1min']:.2f} at the start "
                 "(other jobs on the machine slow both columns alike).")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pynq-sparse bench frontend``."""
    parser.add_argument("--clips", type=int, default=2000, help="real clips timed with FastFrontend")
    parser.add_argument("--reference-clips", type=int, default=400, help="clips also run through librosa")
    parser.add_argument("--data", default=str(DEV_DATA), help="Speech Commands folder")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark with parsed options, print the table (and write it to --out); exit status 0."""
    report = format_report(run_frontend_bench(n_clips=args.clips, n_reference=args.reference_clips, data=args.data))
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("# Front-end benchmark\n\n" + report + "\n")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m pynq_sparse.bench.frontend")
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
