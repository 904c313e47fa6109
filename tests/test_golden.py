"""Golden reference: each rule of docs/golden_model.md, checked against a second, independent reading."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pynq_sparse.architecture import random_model
from pynq_sparse.errors import ShapeError
from pynq_sparse.golden import (check_words, conv_acc, golden_scores, golden_trace, kwta, kwta_threshold,
                                maxpool2, predict, requantize)


def test_requantize_rounds_half_up_and_clamps():
    acc = np.array([[-1000, -1, 0, 1, 2, 3, 5, 10**6]], dtype=np.int64).T   # one channel per row
    mult = np.full(acc.shape[0], 1 << 14, np.int32)          # x 0.5 with shift 15
    shift = np.full(acc.shape[0], 15, np.uint8)
    y = requantize(acc, mult, shift).reshape(-1)
    # 0.5*acc rounded half up: -500 -> 0 (clamp), -0.5 -> 0, 0, 0.5 -> 1, 1, 1.5 -> 2, 2.5 -> 3, clamp 127
    assert y.tolist() == [0, 0, 0, 1, 1, 2, 3, 127]


def test_kwta_ties_go_to_the_lowest_index():
    v = np.array([5, 7, 7, 3, 7, 5, 0, 7], dtype=np.int64)
    assert kwta(v, 3).tolist() == [0, 7, 7, 0, 7, 0, 0, 0]
    assert kwta(v, 5).tolist() == [5, 7, 7, 0, 7, 0, 0, 7]
    assert kwta(v, 6).tolist() == [5, 7, 7, 0, 7, 5, 0, 7]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 127), min_size=1, max_size=300), st.data())
def test_kwta_equals_its_histogram_hardware_form(values, data):
    v = np.array(values, dtype=np.int64)
    k = data.draw(st.integers(1, len(v)))
    t, ties = kwta_threshold(v, k)
    hw = np.where(v > t, v, 0)
    tied = np.flatnonzero(v == t)[:ties]
    hw[tied] = t
    np.testing.assert_array_equal(kwta(v, k), hw)
    assert np.count_nonzero(kwta(v, k)) <= k


def test_conv_acc_single_tap_kernel_shifts_the_image():
    model = random_model(seed=0)
    layer = model.layers[0]
    w = np.zeros_like(layer.packed_weights)
    owner = layer.owner
    # kernel 0 (group 0, owner 0): put weight 2 on the first tap it owns
    tap = int(np.flatnonzero(owner[0] == 0)[0])
    w[0, tap] = 2
    from pynq_sparse.model_file import replace_layer
    layer = replace_layer(model, 0, packed_weights=w, bias=np.zeros(64, np.int32)).layers[0]
    img = np.random.default_rng(1).integers(0, 128, (1, 32, 32))
    acc = conv_acc(img, layer)
    ky, kx = divmod(tap, 5)
    np.testing.assert_array_equal(acc[0], 2 * img[0, ky:ky + 28, kx:kx + 28])
    assert not acc[1:].any()


def test_maxpool2():
    a = np.arange(16).reshape(1, 4, 4)
    assert maxpool2(a).tolist() == [[[5, 7], [13, 15]]]


def scatter_reference(x: np.ndarray, layer) -> np.ndarray:
    """Select-Multiply-Route-Sum in plain Python loops (the sparse-sparse reading of the spec)."""
    acc = layer.bias.astype(np.int64).copy()
    for i in np.flatnonzero(x):
        for g in range(layer.n_groups):
            acc[g * layer.n_pack + layer.owner[g, i]] += int(x[i]) * int(layer.packed_weights[g, i])
    return acc


def test_fc_layers_equal_the_sparse_sparse_scatter_form():
    model = random_model(seed=5)
    word = np.random.default_rng(2).integers(0, 128, (32, 32)).astype(np.int8)
    trace = golden_trace(model, word)
    fc1, fc2 = model.layers[2], model.layers[3]
    from pynq_sparse.golden import fc_acc
    np.testing.assert_array_equal(fc_acc(trace.activations[2], fc1), scatter_reference(trace.activations[2].ravel(), fc1))
    np.testing.assert_array_equal(trace.scores, scatter_reference(trace.activations[3], fc2))


def test_trace_shapes_sparsity_and_batch_consistency():
    model = random_model(seed=6)
    words = np.random.default_rng(3).integers(0, 128, (3, 32, 32)).astype(np.int8)
    trace = golden_trace(model, words[1])
    assert [a.shape for a in trace.activations] == [(1, 32, 32), (64, 14, 14), (64, 5, 5), (1500,)]
    for act, layer in zip(trace.activations[1:], model.layers):
        assert np.count_nonzero(act) <= layer.k
        assert act.min() >= 0 and act.max() <= 127
    scores = golden_scores(model, words)
    assert scores.dtype == np.int32 and scores.shape == (3, 12)
    np.testing.assert_array_equal(scores[1], trace.scores)


def test_predict_ties_to_lowest_class():
    assert predict(np.array([[3, 9, 9, 1]])).tolist() == [1]


@pytest.mark.parametrize("bad", [np.zeros((31, 32), np.int8), np.zeros((2, 1, 32, 32), np.int8),
                                 np.zeros((32, 32), np.float32), np.full((32, 32), -1, np.int8),
                                 np.full((32, 32), 300, np.int16)])
def test_check_words_rejects_bad_input(bad):
    with pytest.raises(ShapeError):
        check_words(bad)
