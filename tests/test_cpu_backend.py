"""Fast CPU backend: bit-exact with the golden reference on every input we can think of.

Models: random ones (several seeds), one whose tiny weights and biases make many requantised
values equal (ties at the k-WTA threshold), one that saturates at 127, one whose k-WTA often
has fewer non-zero values than k (threshold 0), one with more than 4 taps per conv1 kernel,
and the shipped model when it exists. Words: hypothesis-made (long runs of equal values,
all 0, all 127) and all 4,560 real dev clips (golden scores computed by a pool of 2).

Every kernel version is checked: the numba kernels and, when the optional C extension is built,
its AVX2 float32 version (models whose conv accumulator bounds allow it) and its portable int32
version (every model).
"""
from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pynq_sparse.architecture import complementary_owners, random_model
from pynq_sparse.backends import Backend, GoldenBackend, get_backend
from pynq_sparse.backends import cpu_sparse
from pynq_sparse.backends.cpu_sparse import (F32_EXACT_BITS, SparseCpuBackend, c_kernels_available, c_kernels_for,
                                             supports_model)
from pynq_sparse.errors import InvalidModelError, ShapeError
from pynq_sparse.golden import conv_acc, fc_acc, golden_scores, kwta, kwta_threshold, maxpool2, requantize
from pynq_sparse.model_file import (SparseModel, accumulator_bits, load_model, model_from_bytes,
                                    model_to_bytes, replace_layer)


# ----------------------------------------------------------------------------- models
def tiny_model(seed: int = 11) -> SparseModel:
    """Weights in -2..2, small biases and coarse requantisation: few distinct values, many ties."""
    model = random_model(seed)
    rng = np.random.default_rng(seed)
    for i, layer in enumerate(model.layers):
        w = rng.integers(-2, 3, layer.packed_weights.shape).astype(np.int8)
        bias = rng.integers(-3, 4, layer.out_channels).astype(np.int32)
        shift = np.full(layer.out_channels, 22 if i == 0 else 21, np.uint8)   # x ~2^-7: a few levels
        mult = np.full(layer.out_channels, 1 << 14, np.int32)
        model = replace_layer(model, i, packed_weights=w, bias=bias, requant_shift=shift, requant_mult=mult)
    return model_from_bytes(model_to_bytes(model))


def saturating_model(seed: int = 12) -> SparseModel:
    """Large biases and small shifts: a large share of every hidden layer clamps at 127."""
    model = random_model(seed)
    for i, layer in enumerate(model.layers[:-1]):
        shift = np.maximum(layer.requant_shift.astype(np.int64) - 4, 1).astype(np.uint8)
        bias = (np.abs(layer.bias.astype(np.int64)) * 8 + 5000).astype(np.int32)
        model = replace_layer(model, i, requant_shift=shift, bias=bias)
    return model_from_bytes(model_to_bytes(model))


def quiet_model(seed: int = 13) -> SparseModel:
    """Negative biases: often fewer than k non-zero values, so the k-WTA threshold is 0."""
    model = random_model(seed)
    for i, layer in enumerate(model.layers[:-1]):
        bias = (-np.abs(layer.bias.astype(np.int64)) * 20 - 20000).astype(np.int32)
        model = replace_layer(model, i, bias=bias)
    return model_from_bytes(model_to_bytes(model))


def wide_conv1_model(seed: int = 14, n_pack: int = 4) -> SparseModel:
    """conv1 with more than 4 taps per kernel (n_pack 4: 6-7 taps, n_pack 2: 12-13 taps, two passes
    of 8) and one all-zero packed row."""
    model = random_model(seed)
    rng = np.random.default_rng(seed)
    layer = model.layers[0]
    groups = layer.out_channels // n_pack
    w = rng.integers(-127, 128, (groups, layer.fan_in)).astype(np.int8)
    w[3] = 0                                                   # four kernels without any weight
    model = replace_layer(model, 0, n_pack=n_pack, packed_weights=w,
                          owner=complementary_owners(groups, layer.fan_in, n_pack, rng))
    return model_from_bytes(model_to_bytes(model))


def wide_accumulator_model(layer: int = 0, seed: int = 16, low: int = 7, high: int = 3) -> SparseModel:
    """Layer `layer` (0 = conv1, 1 = conv2) with a few biases of magnitude ~2^25 (those kernels always
    clamp to 0 or 127): its accumulator bound exceeds float32's 24 exact bits, so conv1 in the batched
    numba kernels must take its float64 path, and the C kernels' float32 version must not run conv2."""
    model = random_model(seed)
    bias = model.layers[layer].bias.astype(np.int64)
    n = 4 if layer == 0 else 2
    bias[:n] = -(1 << 25) + low
    bias[n:2 * n] = (1 << 25) - high
    model = replace_layer(model, layer, bias=bias.astype(np.int32))
    return model_from_bytes(model_to_bytes(model))


MODEL_MAKERS = {
    "random0": lambda: random_model(0), "random1": lambda: random_model(1), "random2": lambda: random_model(2),
    "tiny_ties": tiny_model, "saturating": saturating_model, "quiet": quiet_model, "wide_conv1": wide_conv1_model,
    "wider_conv1": lambda: wide_conv1_model(15, n_pack=2), "wide_acc": wide_accumulator_model,
    "wide_acc2": lambda: wide_accumulator_model(1, seed=17, low=11, high=5),
}
# The package's own build (make test: pip install -e .) compiles the C kernels wherever a C compiler
# exists, so only a machine without one may skip their tests; a missing build elsewhere fails them.
needs_c = pytest.mark.skipif(not c_kernels_available() and shutil.which("cc") is None and shutil.which("gcc") is None,
                             reason="no C compiler: the optional C extension cannot be built here")


@pytest.fixture(scope="module")
def models() -> dict[str, SparseModel]:
    out = {name: make() for name, make in MODEL_MAKERS.items()}
    out["shipped"] = load_model()          # the model the package ships (always present)
    return out


@pytest.fixture(scope="module")
def backends(models) -> dict[str, SparseCpuBackend]:
    return {name: SparseCpuBackend(model, threads=2).warmup() for name, model in models.items()}


@pytest.fixture(scope="module")
def variants(models, backends) -> dict[str, list[SparseCpuBackend]]:
    """Per model: the default backend and one per other kernel version that can run it (numba, C)."""
    out = {}
    for name, model in models.items():
        kinds = ["numba"] + c_kernels_for(model)
        out[name] = [backends[name]] + [SparseCpuBackend(model, threads=2, kernels=k).warmup()
                                        for k in kinds if k != backends[name].kernels]
    return out


def hidden_values(model: SparseModel, word: np.ndarray) -> list[np.ndarray]:
    """The requantised values each k-WTA sees for one word (golden functions, before k-WTA)."""
    x = word.astype(np.int64).reshape(model.layers[0].in_shape)
    seen = []
    for layer in model.layers[:-1]:
        acc = conv_acc(x.reshape(layer.in_shape), layer) if layer.kind == "conv" else fc_acc(x, layer)
        if layer.pool == 2:
            acc = maxpool2(acc)
        v = requantize(acc, layer.requant_mult, layer.requant_shift)
        seen.append(v.reshape(-1))
        x = kwta(v, layer.k)
    return seen


def random_words(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 128, (n, 32, 32)).astype(np.int8)


# ----------------------------------------------------------------------------- the special models do their job
def test_special_models_reach_the_cases_they_are_for(models):
    words = random_words(4, seed=5)
    cases = {"tie": False, "saturated_tie": False, "zero_threshold": False}
    for name in ("tiny_ties", "saturating", "quiet"):
        for word in words:
            for layer, v in zip(models[name].layers, hidden_values(models[name], word)):
                t, taken = kwta_threshold(v, layer.k)
                equal = int(np.sum(v == t))
                cases["tie"] |= name == "tiny_ties" and t > 0 and 0 < taken < equal
                cases["saturated_tie"] |= name == "saturating" and t == 127 and taken < equal
                cases["zero_threshold"] |= name == "quiet" and t == 0
    assert all(cases.values()), cases
    taps = [(models[name].layers[0].dense_weights() != 0).sum(axis=1).max() for name in ("wide_conv1", "wider_conv1")]
    assert 4 < taps[0] <= 8 < taps[1]                     # one and two passes of 8 taps


def test_float_paths_follow_the_accumulator_bound(models, backends):
    """Batched conv1 accumulates in float32 only when every accumulator is below 2^24 (exact);
    the wide-accumulator model takes the float64 path (and stays exact: see the tests below)."""
    assert accumulator_bits(models["shipped"].layers[0]) <= F32_EXACT_BITS
    assert backends["shipped"]._tables[27][1].dtype == np.float32
    assert accumulator_bits(models["wide_acc"].layers[0]) > F32_EXACT_BITS
    assert backends["wide_acc"]._tables[27][1].dtype == np.float64
    values = hidden_values(models["wide_acc"], random_words(1, seed=9)[0])[0]
    assert 10 < np.unique(values).size, "the wide-accumulator model should not saturate"


# ----------------------------------------------------------------------------- bit-exactness
@pytest.mark.parametrize("name", list(MODEL_MAKERS))
def test_batched_scores_equal_golden(models, variants, name):
    words = np.concatenate([random_words(12, seed=1), np.zeros((1, 32, 32), np.int8),
                            np.full((1, 32, 32), 127, np.int8)])
    expected = golden_scores(models[name], words)
    for backend in variants[name]:
        np.testing.assert_array_equal(backend.scores(words), expected, err_msg=backend.kernels)
        np.testing.assert_array_equal(backend.score_one(words[0]), expected[0], err_msg=backend.kernels)


word_values = st.one_of(st.just(0), st.just(127), st.integers(0, 127))


@st.composite
def words_with_runs(draw) -> np.ndarray:
    """A word built from runs of equal values (long flat stretches make equal activations)."""
    flat = np.empty(32 * 32, np.int8)
    pos = 0
    while pos < flat.size:
        run = draw(st.integers(1, 300))
        flat[pos:pos + run] = draw(word_values)
        pos += run
    word = flat.reshape(32, 32)
    return word.T.copy() if draw(st.booleans()) else word


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(word=words_with_runs(), name=st.sampled_from(sorted(MODEL_MAKERS)))
@example(word=np.zeros((32, 32), np.int8), name="random0")
@example(word=np.full((32, 32), 127, np.int8), name="random0")
@example(word=np.zeros((32, 32), np.int8), name="tiny_ties")
@example(word=np.full((32, 32), 127, np.int8), name="saturating")
@example(word=np.full((32, 32), 127, np.int8), name="quiet")
def test_hypothesis_words_equal_golden(models, variants, word, name):
    expected = golden_scores(models[name], word)
    for backend in variants[name]:
        np.testing.assert_array_equal(backend.score_one(word), expected[0], err_msg=backend.kernels)
        np.testing.assert_array_equal(backend.scores(word), expected, err_msg=backend.kernels)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_hypothesis_random_models_equal_golden(seed, data):
    model = random_model(seed, density_of_packed=data.draw(st.sampled_from([1.0, 0.5, 0.1])))
    words = np.stack([data.draw(words_with_runs()) for _ in range(2)])
    expected = golden_scores(model, words)
    for kernels in ["auto", "numba"] + c_kernels_for(model):
        np.testing.assert_array_equal(SparseCpuBackend(model, threads=1, kernels=kernels).scores(words), expected,
                                      err_msg=kernels)


def test_single_word_equals_batched(backends):
    backend = backends["random1"]
    words = random_words(9, seed=3)
    batched = backend.scores(words)
    np.testing.assert_array_equal(np.stack([backend.score_one(w) for w in words]), batched)
    np.testing.assert_array_equal(backend.scores(words[4]), batched[4:5])       # [32, 32] -> [1, 12]
    assert backend.scores(words[:0]).shape == (0, 12)


def test_result_does_not_depend_on_thread_count(models):
    words = random_words(37, seed=4)
    results = [SparseCpuBackend(models["tiny_ties"], threads=t).scores(words) for t in (1, 2, 3, 5, 64)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_concurrent_callers_share_one_backend(backends, models):
    from concurrent.futures import ThreadPoolExecutor
    backend = backends["random2"]
    words = random_words(24, seed=6)
    expected = backend.scores(words)
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda i: backend.scores(words), range(6)))
        singles = list(pool.map(backend.score_one, words))
    for b in batches:
        np.testing.assert_array_equal(b, expected)
    np.testing.assert_array_equal(np.stack(singles), expected)


# ----------------------------------------------------------------------------- kernel versions (numba, C)
@needs_c
def test_c_versions_follow_the_accumulator_bounds(models, backends):
    """The AVX2 version runs in float32: only when both conv layers' bounds are at most 24 bits
    (every partial sum an exact float32 integer); the portable int32 version runs every model."""
    avx2 = cpu_sparse._c_library().ps_has_avx2() == 1
    for name, model in models.items():
        bits = max(accumulator_bits(model.layers[0]), accumulator_bits(model.layers[1]))
        kinds = c_kernels_for(model)
        assert "c-portable" in kinds
        assert ("c-avx2" in kinds) == (avx2 and bits <= F32_EXACT_BITS), name
        assert backends[name].kernels == ("c-avx2" if "c-avx2" in kinds else "numba"), name
    assert accumulator_bits(models["wide_acc2"].layers[1]) > F32_EXACT_BITS >= accumulator_bits(
        models["wide_acc2"].layers[0])
    if avx2:
        assert backends["shipped"].kernels == "c-avx2"
        with pytest.raises(ValueError):
            SparseCpuBackend(models["wide_acc"], kernels="c-avx2")


@needs_c
def test_c_avx2_needs_requant_shifts_its_float64_holds(models):
    """Shifts above F64_REQUANT_SHIFT (acc*mult + 2^(shift-1) no longer exact in float64) keep the
    model off the AVX2 version; the other versions stay exact."""
    model = models["random0"]
    shift = model.layers[0].requant_shift.astype(np.int64)
    shift[:3] = cpu_sparse.F64_REQUANT_SHIFT + 1
    model = model_from_bytes(model_to_bytes(replace_layer(model, 0, requant_shift=shift.astype(np.uint8))))
    assert "c-avx2" not in c_kernels_for(model) and "c-portable" in c_kernels_for(model)
    words = random_words(3, seed=23)
    for kernels in ("auto", "c-portable"):
        np.testing.assert_array_equal(SparseCpuBackend(model, threads=1, kernels=kernels).scores(words),
                                      golden_scores(model, words))


@needs_c
def test_c_versions_equal_numba_on_random_words(models):
    words = random_words(40, seed=21)
    for name in ("shipped", "random0", "tiny_ties", "quiet"):
        expected = SparseCpuBackend(models[name], threads=1, kernels="numba").scores(words)
        for kernels in c_kernels_for(models[name]):
            for threads in (1, 2, 3):
                np.testing.assert_array_equal(
                    SparseCpuBackend(models[name], threads=threads, kernels=kernels).scores(words), expected,
                    err_msg=f"{name} {kernels} threads={threads}")


def test_without_the_c_extension_the_numba_kernels_run(models, monkeypatch):
    monkeypatch.setattr(cpu_sparse, "_sparse_c", None)
    monkeypatch.setattr(cpu_sparse, "_C_LIB", None)
    assert not c_kernels_available() and c_kernels_for(models["shipped"]) == []
    backend = SparseCpuBackend(models["shipped"], threads=1)
    assert backend.kernels == "numba"
    words = random_words(3, seed=22)
    np.testing.assert_array_equal(backend.scores(words), golden_scores(models["shipped"], words))
    with pytest.raises(RuntimeError, match="not built"):
        SparseCpuBackend(models["shipped"], kernels="c")


def test_package_imports_when_the_c_extension_is_missing():
    code = ("import sys; sys.modules['pynq_sparse.backends._sparse_c'] = None\n"
            "import numpy as np\n"
            "from pynq_sparse.architecture import random_model\n"
            "from pynq_sparse.backends import get_backend\n"
            "from pynq_sparse.golden import golden_scores\n"
            "m = random_model(0); b = get_backend('auto', m)\n"
            "w = np.random.default_rng(0).integers(0, 128, (2, 32, 32)).astype(np.int8)\n"
            "assert b.kernels == 'numba', b.kernels\n"
            "assert (b.scores(w) == golden_scores(m, w)).all()\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)


@needs_c
def test_portable_only_build_is_exact(models, tmp_path, monkeypatch):
    """The extension as a CPU without the x86 code builds it (an ARM board): the portable int32
    version alone, through the same Python side."""
    import ctypes
    import shutil
    import sysconfig
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    src = cpu_sparse.__file__.replace("cpu_sparse.py", "_sparse_c.c")
    lib_path = tmp_path / "_sparse_c_portable.so"
    subprocess.run([cc, "-O2", "-std=c99", "-fPIC", "-shared", "-DPS_PORTABLE_ONLY",
                    "-I" + sysconfig.get_paths()["include"], src, "-o", str(lib_path)], check=True, timeout=300)
    lib = ctypes.CDLL(str(lib_path))
    assert lib.ps_has_avx2() == 0
    monkeypatch.setattr(cpu_sparse, "_sparse_c", type("M", (), {"__file__": str(lib_path)}))
    monkeypatch.setattr(cpu_sparse, "_C_LIB", None)
    words = np.concatenate([random_words(5, seed=24), np.full((1, 32, 32), 127, np.int8)])
    for name in ("shipped", "tiny_ties", "wider_conv1", "wide_acc"):
        assert c_kernels_for(models[name]) == ["c-portable"]
        backend = SparseCpuBackend(models[name], threads=2, kernels="c")
        assert backend.kernels == "c-portable"
        expected = golden_scores(models[name], words)
        np.testing.assert_array_equal(backend.scores(words), expected, err_msg=name)
        np.testing.assert_array_equal(backend.score_one(words[0]), expected[0], err_msg=name)


def test_bad_kernels_name(models):
    with pytest.raises(ValueError):
        SparseCpuBackend(models["random0"], kernels="gpu")


# ----------------------------------------------------------------------------- input checks and registry
@pytest.mark.parametrize("bad", [
    np.zeros((31, 32), np.int8), np.zeros((2, 32, 33), np.int8), np.zeros((1, 1, 32, 32), np.int8),
    np.zeros((2, 32, 32), np.float32), np.full((1, 32, 32), -1, np.int8), np.full((1, 32, 32), 300, np.int16),
])
def test_wrong_words_raise_shape_error(backends, bad):
    backend = backends["random0"]
    with pytest.raises(ShapeError):
        backend.scores(bad)
    with pytest.raises((ShapeError, ValueError)):
        backend.score_one(bad)
    with pytest.raises(ShapeError):
        GoldenBackend(backend.model).scores(bad)


def test_other_integer_dtypes_are_accepted(backends, models):
    words = random_words(3, seed=8)
    np.testing.assert_array_equal(backends["random0"].scores(words.astype(np.int64)),
                                  golden_scores(models["random0"], words))


def test_score_one_refuses_a_batch(backends):
    with pytest.raises(ValueError):
        backends["random0"].score_one(random_words(2))


def test_get_backend_registry(models):
    model = models["random0"]
    assert get_backend("cpu", model).name == "cpu"
    assert get_backend("auto", model).name == "cpu"
    golden = get_backend("golden", model)
    assert isinstance(golden, GoldenBackend) and isinstance(golden, Backend)
    assert isinstance(get_backend("auto", model), Backend)
    with pytest.raises(ValueError, match="unknown backend"):
        get_backend("gpu", model)


def test_unsupported_chain_falls_back_to_golden(models):
    base = models["random0"]
    odd = SparseModel(layers=[base.layers[0], base.layers[1], base.layers[3]], labels=base.labels,
                      frontend=base.frontend)                       # never validated: only the chain matters
    assert not supports_model(odd)
    assert get_backend("auto", odd).name == "golden"
    with pytest.raises(InvalidModelError, match="golden backend"):
        SparseCpuBackend(odd)


def test_bad_thread_count():
    with pytest.raises(ValueError):
        SparseCpuBackend(random_model(0), threads=0)


# ----------------------------------------------------------------------------- every real dev clip
def _golden_chunk(task: tuple[bytes, np.ndarray]) -> np.ndarray:
    model_bytes, words = task
    return golden_scores(model_from_bytes(model_bytes), words)


@pytest.fixture(scope="module")
def dev_words(gsc_dev) -> np.ndarray:
    """int8 words of every shared dev clip (the real front end, once per module)."""
    from pynq_sparse.frontend import words_from_audio
    paths = sorted(str(p) for p in gsc_dev.glob("**/*.wav"))
    assert len(paths) >= 4000, f"expected the 4,560 shared dev clips, found {len(paths)}"
    return words_from_audio(paths)


@pytest.fixture(scope="module")
def dev_models(models) -> dict[str, SparseModel]:
    return {"shipped": models["shipped"]}   # the contract for every clip; random models are covered above


@pytest.fixture(scope="module")
def dev_golden(dev_words, dev_models) -> dict[str, np.ndarray]:
    """Golden scores of every dev clip for each dev model, computed by a pool of 2 processes."""
    chunks = np.array_split(dev_words, max(1, len(dev_words) // 120))
    tasks = [(model_to_bytes(model), chunk) for model in dev_models.values() for chunk in chunks]
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        parts = pool.map(_golden_chunk, tasks, chunksize=1)
    print(f"golden on {len(dev_words)} clips x {len(dev_models)} models: {time.perf_counter() - t0:.0f} s")
    return {name: np.concatenate(parts[i * len(chunks):(i + 1) * len(chunks)])
            for i, name in enumerate(dev_models)}


def test_every_dev_clip_equals_golden(dev_words, dev_models, dev_golden):
    for name, model in dev_models.items():
        for kernels in ["auto", "numba"] + c_kernels_for(model):
            scores = SparseCpuBackend(model, kernels=kernels).scores(dev_words)
            mismatched = np.flatnonzero((scores != dev_golden[name]).any(axis=1))
            assert mismatched.size == 0, (f"{name} ({kernels}): {mismatched.size} of {len(dev_words)} clips differ "
                                          f"from golden, e.g. clips {mismatched[:5]}")
        one = SparseCpuBackend(model, threads=1)
        for i in range(0, len(dev_words), 97):                        # the single-word entry point
            np.testing.assert_array_equal(one.score_one(dev_words[i]), dev_golden[name][i])


def test_model_beyond_int32_accumulators_falls_back_to_golden():
    model = random_model(0)
    huge = replace_layer(model, 2, bias=np.full(model.layers[2].out_channels, 2**31 - 1, np.int32))
    assert not supports_model(huge)
    assert get_backend("auto", huge).name == "golden"
    with pytest.raises(InvalidModelError):
        SparseCpuBackend(huge)
