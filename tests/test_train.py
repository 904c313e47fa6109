"""Training smoke test on real clips (CPU, small) and the export path it ends in."""
from __future__ import annotations

import numpy as np

from pynq_sparse.model_file import load_model
from pynq_sparse.train.export import mult_shift
from pynq_sparse.train.train import TrainConfig, run


def test_mult_shift_approximates_the_factor():
    for m in (1e-6, 3.3e-3, 0.5, 0.999999, 1.0, 7.5):
        mult, shift = mult_shift(m)
        assert 2**14 <= mult < 2**15
        assert abs(mult / 2**shift - m) <= m * 2**-14


def test_training_runs_end_to_end_and_exports_a_valid_model(tmp_path, gsc_dev):
    cfg = TrainConfig(data=str(gsc_dev), out=str(tmp_path), epochs=1, qat_epochs=1, limit=160, batch_size=32,
                      train_dense=True)
    report = run(cfg)
    model = load_model(tmp_path / "gsc_sparse_v1.pskw")
    assert model.nonzero_weights <= 127_696
    assert (tmp_path / "gsc_dense_fp32.onnx").stat().st_size > 1_000_000
    # the golden model and the fake-quantised PyTorch model agree on nearly every clip even after 1 epoch
    assert report["sparse_int8"]["golden_vs_qat_top1_agreement"] >= 0.95
    assert 0.0 <= report["dense_float"]["test_acc"] <= 1.0
    assert np.isfinite(report["sparse_float"]["history"][0]["loss"])
