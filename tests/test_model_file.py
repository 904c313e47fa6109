"""Model file: round trip, and a specific error for every kind of damage."""
from __future__ import annotations

import numpy as np
import pytest

from pynq_sparse.architecture import random_model
from pynq_sparse.errors import (ChecksumError, InvalidModelError, ModelFormatError, NotAModelFileError,
                                TruncatedModelError, UnsupportedVersionError)
from pynq_sparse.golden import golden_scores
from pynq_sparse.model_file import (DEFAULT_MODEL_PATH, load_model, model_from_bytes, model_to_bytes,
                                    replace_layer, save_model)


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return model_to_bytes(random_model(seed=3))


def test_round_trip_keeps_every_array_and_the_scores(tmp_path, model_bytes):
    original = model_from_bytes(model_bytes)
    path = save_model(original, tmp_path / "m.pskw")
    again = load_model(path)
    assert again.model_id == original.model_id != 0
    assert again.labels == original.labels and again.frontend == original.frontend
    for a, b in zip(original.layers, again.layers):
        for name in ("packed_weights", "owner", "bias", "requant_mult", "requant_shift"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert (a.k, a.n_pack, a.acc_bits, a.in_shape) == (b.k, b.n_pack, b.acc_bits, b.in_shape)
    words = np.random.default_rng(0).integers(0, 128, (4, 32, 32)).astype(np.int8)
    np.testing.assert_array_equal(golden_scores(original, words), golden_scores(again, words))
    assert path.read_bytes() == model_bytes


def test_shipped_model_loads_and_is_within_the_whitepaper_budget():
    model = load_model()
    assert DEFAULT_MODEL_PATH.is_file()
    assert model.nonzero_weights <= 127_696
    assert [layer.name for layer in model.layers] == ["conv1", "conv2", "fc1", "fc2"]
    for layer in model.layers[:-1]:
        assert 1 - layer.k / np.prod(layer.out_shape) >= 0.88


def test_bad_magic(model_bytes):
    with pytest.raises(NotAModelFileError, match="not a pynq-sparse model file"):
        model_from_bytes(b"RIFF" + model_bytes[4:])


def test_wrong_version(model_bytes):
    data = bytearray(model_bytes)
    data[8] = 2
    with pytest.raises(UnsupportedVersionError, match="version 2"):
        model_from_bytes(bytes(data))


@pytest.mark.parametrize("keep", [0.0, 0.001, 0.5, 0.999])
def test_truncated(model_bytes, keep):
    cut = model_bytes[: int(len(model_bytes) * keep)]
    with pytest.raises((TruncatedModelError, NotAModelFileError)):
        model_from_bytes(cut)


def test_truncated_body_names_the_missing_bytes(model_bytes):
    with pytest.raises(TruncatedModelError, match="cut short"):
        model_from_bytes(model_bytes[: len(model_bytes) // 2])


@pytest.mark.parametrize("where", [0.3, 0.6, 0.95])
def test_flipped_byte_in_payload_is_a_checksum_error(model_bytes, where):
    data = bytearray(model_bytes)
    data[int(len(data) * where)] ^= 0x40
    with pytest.raises(ChecksumError, match="corrupt"):
        model_from_bytes(bytes(data))


def test_flipped_byte_in_header_is_a_checksum_error(model_bytes):
    data = bytearray(model_bytes)
    i = model_bytes.index(b'"labels"')
    data[i + 2] ^= 0x01
    with pytest.raises(ChecksumError):
        model_from_bytes(bytes(data))


def test_missing_file(tmp_path):
    with pytest.raises(ModelFormatError, match="not found"):
        load_model(tmp_path / "nope.pskw")


def test_invariants_are_checked_on_save():
    model = random_model(seed=4)
    bad_owner = model.layers[1].owner.copy()
    bad_owner[0, :10] = 0       # owner 0 now holds more than its share of the fan-in
    with pytest.raises(InvalidModelError, match="evenly"):
        model_to_bytes(replace_layer(model, 1, owner=bad_owner))
    with pytest.raises(InvalidModelError, match="requant_mult"):
        model_to_bytes(replace_layer(model, 0, requant_mult=np.zeros(64, np.int32)))
    with pytest.raises(InvalidModelError, match="k = "):
        model_to_bytes(replace_layer(model, 2, k=0))
    w = model.layers[0].packed_weights.copy()
    w[0, 0] = -128
    with pytest.raises(InvalidModelError, match="-128"):
        model_to_bytes(replace_layer(model, 0, packed_weights=w))
    with pytest.raises(InvalidModelError, match="overflow"):
        model_to_bytes(replace_layer(model, 3, bias=np.full(12, 2**31 - 10, np.int32)))
