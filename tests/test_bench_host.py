"""The host benchmark's target: 10x the modeled full-chip rate, from the RTL reports when they exist."""
from __future__ import annotations

import json

from pynq_sparse.bench.host import REPORT_BOARDS, modeled_rate
from pynq_sparse.overlays.block_design import load_design


def test_modeled_rate_comes_from_the_rtl_report_else_the_design(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"modeled_words_per_s": {REPORT_BOARDS["u250"]: 1_234_567,
                                                           REPORT_BOARDS["ultra96v2"]: 98_765}}))
    assert modeled_rate("u250", summary) == (1_234_567.0, "overlays/reports/summary.json (modeled from "
                                                          "simulated cycles)")
    assert modeled_rate("ultra96v2", summary)[0] == 98_765.0
    rate, source = modeled_rate("zcu104", summary)              # not in this report: the design's figure
    assert rate == load_design("zcu104")["modeled"]["words_per_s"] and source.startswith("design assumption")
    rate, source = modeled_rate("u250", tmp_path / "missing.json")
    assert rate == load_design("u250")["modeled"]["words_per_s"] and source.startswith("design assumption")


def test_an_incomplete_report_is_an_upper_bound_and_an_empty_one_no_target(tmp_path):
    """Missing resources can only add copies: that rate bounds the chip's from above (a stricter target).

    A board where no copy fits has no chip rate: the design's figure stands in, never a zero target.
    """
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"modeled_words_per_s": {REPORT_BOARDS["u250"]: 540_321},
                                   "resources_missing_instances": ["conv2_inst"]}))
    rate, source = modeled_rate("u250", summary)
    assert rate == 540_321.0 and "upper bound" in source and "conv2_inst" in source
    summary.write_text(json.dumps({"modeled_words_per_s": {REPORT_BOARDS["ultra96v2"]: 0},
                                   "resources_missing_instances": ["conv2_inst"]}))
    rate, source = modeled_rate("ultra96v2", summary)
    assert rate == load_design("ultra96v2")["modeled"]["words_per_s"] and "no copy fits" in source
