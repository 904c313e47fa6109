"""overlays/reports/summary.json and report.md: schema and internal consistency (no yosys, no simulation).

copies_fit and modeled_words_per_s must follow from resources_per_copy, the board capacities and
cycles_per_word in the same file; the per-copy resources from the per-engine rows.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

OVERLAYS = Path(__file__).resolve().parents[1] / "overlays"
REPORTS = OVERLAYS / "reports"
sys.path.insert(0, str(OVERLAYS / "scripts"))

import reports  # noqa: E402

RES = ("lut", "ff", "dsp", "bram36", "uram")


@pytest.fixture(scope="module")
def summary():
    f = REPORTS / "summary.json"
    assert f.exists(), "overlays/reports/summary.json missing: run `make -C overlays reports`"
    return json.loads(f.read_text())


def test_schema(summary):
    for key in ("cycles_per_word", "clock_mhz_assumed", "resources_per_copy", "copies_fit",
                "modeled_words_per_s", "bit_exact_clips", "modules", "resources_shared_top", "targets_met"):
        assert key in summary, key
    assert summary["cycles_per_word"] > 0
    assert set(summary["resources_per_copy"]) >= set(RES)
    assert set(summary["copies_fit"]) == set(reports.BOARDS) == set(summary["modeled_words_per_s"])
    assert summary["clock_mhz_assumed"] == {k: b["clock_mhz"] for k, b in reports.BOARDS.items()}
    assert isinstance(summary["bit_exact_clips"], int) and summary["bit_exact_clips"] >= 0


def test_per_copy_is_sum_of_engines(summary):
    tot = {k: 0.0 for k in RES}
    for m in summary["modules"]:
        assert m["count_per_copy"] == len(m["instances"]) >= 1
        if m["resources_each"] is None:       # yosys not finished: listed as missing, not summed
            assert set(m["instances"]) <= set(summary["resources_missing_instances"])
            continue
        assert m["yosys_seconds"] > 0
        for k in RES:
            tot[k] += m["count_per_copy"] * m["resources_each"][k]
    for k in RES:
        assert math.isclose(tot[k], summary["resources_per_copy"][k], abs_tol=0.1 * len(summary["modules"]) + 0.11), k


def _fits(per_copy: dict, board: dict, util: float) -> int:
    return min(math.floor(util * board[k] / per_copy[k]) for k in RES if per_copy[k] > 0)


def _configurations(summary) -> dict:
    """{name: (resources per copy, cycles per word)}; the fast one is the top level of the file."""
    out = {"fast": (summary["resources_per_copy"], summary["cycles_per_word"])}
    for name, c in summary.get("configurations", {}).items():
        if name != "fast" and not c["resources_missing_instances"]:
            out[name] = (c["resources_per_copy"], c["cycles_per_word"])
    return out


def test_copies_and_words_per_s_follow(summary):
    util = summary.get("copies_fit_utilisation", 0.8)
    assert util == 0.8
    configs = _configurations(summary)
    for name, b in reports.BOARDS.items():
        chosen = summary.get("board_configuration", {}).get(name, "fast")
        per_copy, cpw = configs[chosen]
        n = _fits(per_copy, b, util)
        assert summary["copies_fit"][name] == n, name
        wps = n * summary["clock_mhz_assumed"][name] * 1e6 / cpw
        # cycles_per_word is rounded to 0.1 in the file
        assert math.isclose(summary["modeled_words_per_s"][name], wps, rel_tol=1e-3, abs_tol=1), name
        for other, (pc, c) in configs.items():      # the chosen configuration is the fastest one here
            assert _fits(pc, b, util) * b["clock_mhz"] * 1e6 / c <= wps * (1 + 1e-3) + 1, (name, other)
    t = summary["targets_met"]
    assert t["cycles_per_word_le_1000"] == (summary["cycles_per_word"] <= 1000)
    assert t["u250_ge_24_copies"] == (summary["copies_fit"]["U250"] >= 24)
    assert t["zu3eg_ge_2_copies"] == (summary["copies_fit"]["ZU3EG (Ultra96-V2)"] >= 2)


def test_configurations_sum_their_engines(summary):
    for name, c in summary.get("configurations", {}).items():
        if name == "fast" or c["resources_missing_instances"]:
            continue
        for k in RES:
            tot = sum(m["count_per_copy"] * m["resources_each"][k] for m in c["modules"])
            assert math.isclose(tot, c["resources_per_copy"][k], abs_tol=0.1 * len(c["modules"]) + 0.11), (name, k)
        assert set(c["params"]) <= set(reports.core_parameters()), name


def test_best_boards_picks_most_words_per_s():
    big = {"lut": 60_000, "ff": 1, "dsp": 1, "bram36": 1, "uram": 0}
    small = {"lut": 30_000, "ff": 1, "dsp": 1, "bram36": 1, "uram": 0}
    rows = reports.best_boards(reports.config_tables({"fast": {"per_copy": big, "cycles_per_word": 1000},
                                                      "small": {"per_copy": small, "cycles_per_word": 3000}}))
    # ZU3EG (56.4k LUT at 80 %): the fast copy does not fit, one small one does
    assert rows["ZU3EG (Ultra96-V2)"]["config"] == "small" and rows["ZU3EG (Ultra96-V2)"]["copies_fit"] == 1
    # U250: 23 fast copies x 1/1000 beat 46 small ones x 1/3000
    assert rows["U250"]["config"] == "fast" and rows["U250"]["copies_fit"] == 23
    tie = reports.best_boards(reports.config_tables({"fast": {"per_copy": big, "cycles_per_word": 1000},
                                                     "small": {"per_copy": big, "cycles_per_word": 1000}}))
    assert all(r["config"] == "fast" for r in tie.values())


def test_bit_exact_clips_from_runs(summary):
    runs = summary.get("bit_exact_runs", {})
    assert summary["bit_exact_clips"] == min((r["clips"] for r in runs.values()), default=0)


def test_report_md_says_what_is_modeled(summary):
    text = (REPORTS / "report.md").read_text()
    assert "assum" in text and "modeled" in text.lower()
    assert f"{summary['cycles_per_word']:,.0f} cycles/word" in text
    for name in reports.BOARDS:
        assert name in text


def test_core_instances_table():
    """The per-copy module table is read from sk_core's instances (every instance counted once)."""
    rows = reports.core_instances()
    text = (OVERLAYS / "rtl" / "sk_core.v").read_text()
    n_inst = sum(r["count"] for r in rows)
    assert n_inst == sum(len(r["instances"]) for r in rows) >= 5
    for r in rows:
        for inst in r["instances"]:
            assert inst in text


def test_block_design_uses_the_reported_configuration(summary):
    """Every board whose report fits a copy builds with the configuration the report chose for it, and
    every Zynq board with as many copies as the report fits (the U250 keeps the issue's 20 copies)."""
    from pynq_sparse.overlays.block_design import load_design, total_copies
    names = {"ultra96v2": "ZU3EG (Ultra96-V2)", "zcu104": "ZCU104 (XCZU7EV)", "kv260": "KV260 (K26)", "u250": "U250"}
    for board, name in names.items():
        design = load_design(board)
        core = design["cores"][0]
        assert core["parameters"] == reports.CONFIGS[core["config"]], board
        if summary["copies_fit"][name] > 0 and "board_configuration" in summary:
            assert core["config"] == summary["board_configuration"][name], board
            if board != "u250":
                assert total_copies(design) == summary["copies_fit"][name], board
