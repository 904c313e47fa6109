"""KeywordSpotter (backend choice, inputs, bit-exact across backends) and StreamingDetector (window logic)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pynq_sparse.architecture import LABELS, random_model
from pynq_sparse.audio import load_audio
from pynq_sparse.golden import golden_scores
from pynq_sparse.model_file import model_from_bytes, model_to_bytes
from pynq_sparse.spotter import Classification, Detection, KeywordSpotter, StreamingDetector

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "pynq_sparse" / "data" / "samples"
SAMPLES = sorted(str(p) for p in SAMPLES_DIR.glob("*.wav"))


@pytest.fixture(scope="module")
def model():
    return model_from_bytes(model_to_bytes(random_model(5)))


@pytest.fixture(scope="module")
def emulated(model):
    with KeywordSpotter(model=model, backend="emulated", board="ultra96v2") as spotter:
        yield spotter


@pytest.fixture(scope="module")
def cpu(model):
    with KeywordSpotter(model=model, backend="cpu") as spotter:
        yield spotter


def test_backend_is_named(emulated, cpu):
    assert emulated.backend_name.startswith("emulated (ultra96v2, 1 copy, ")
    assert emulated.overlay is not None and emulated.overlay.is_emulated
    assert cpu.backend_name == "cpu" and cpu.overlay is None
    with pytest.raises(ValueError, match="unknown backend"):
        KeywordSpotter(model=cpu.model, backend="gpu")


def test_auto_picks_emulation_without_a_board(monkeypatch):
    monkeypatch.delenv("PYNQ_SPARSE_EMULATION", raising=False)
    assert KeywordSpotter._choose("auto") == "emulated"            # no board on this machine
    monkeypatch.setenv("PYNQ_SPARSE_EMULATION", "0")
    assert KeywordSpotter._choose("auto") == "cpu"
    import pynq_sparse.emulation as em
    monkeypatch.setattr(em, "real_board_present", lambda: True)    # a board without the bitstream
    monkeypatch.setenv("PYNQ_SPARSE_EMULATION", "auto")
    with pytest.warns(UserWarning, match="no sparse-kws bitstream"):
        assert KeywordSpotter._choose("auto") == "emulated"


def test_every_input_form_gives_the_same_answer(emulated, model):
    path = SAMPLES[0]
    by_path = emulated.classify(path)
    assert isinstance(by_path, Classification) and by_path.label in LABELS
    assert by_path.backend == emulated.backend_name and by_path.latency_ms > 0
    assert np.array_equal(emulated.classify(Path(path).read_bytes()).scores, by_path.scores)
    y = load_audio(path)
    assert np.array_equal(emulated.classify(y, sample_rate=16000).scores, by_path.scores)
    word = emulated.words([path])[0]
    assert np.array_equal(emulated.classify(word).scores, by_path.scores)
    assert np.array_equal(by_path.scores, golden_scores(model, word)[0])
    assert emulated.classify(np.repeat(y, 3), sample_rate=48000).label in LABELS   # resampled
    top = by_path.top_k
    assert len(top) == 3 and top[0] == (by_path.label, pytest.approx(by_path.confidence))
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)


def test_emulated_and_cpu_backends_agree_bit_for_bit(emulated, cpu):
    a = emulated.classify_batch(SAMPLES)
    b = cpu.classify_batch(SAMPLES)
    assert len(a) == len(SAMPLES) == 12
    assert all(np.array_equal(x.scores, y.scores) and x.label == y.label for x, y in zip(a, b))


# --- streaming detector ---------------------------------------------------------------------
class _MarkerSpotter:
    """Stands in for KeywordSpotter: the class of a window is the value of its last sample x 100."""

    labels = list(LABELS)

    @property
    def frontend(self):
        return self

    def words(self, clips):
        w = np.zeros((len(clips), 32, 32), np.int8)
        w[:, 0, 0] = np.rint(np.asarray(clips)[:, -1] * 100)
        return w

    def scores(self, words):
        s = np.zeros((len(words), len(self.labels)), np.int32)
        s[np.arange(len(words)), words[:, 0, 0]] = 1
        return s

    def posteriors(self, scores):
        return scores.astype(float)


def _signal(rate=16000):
    """2 s silence, 0.5 s 'yes', 2 s silence, 0.35 s 'stop', 1 s silence (class markers)."""
    sil, yes, stop = LABELS.index("_silence_") / 100, LABELS.index("yes") / 100, LABELS.index("stop") / 100
    parts = [(sil, 2.0), (yes, 0.5), (sil, 2.0), (stop, 0.35), (sil, 1.0)]
    return np.concatenate([np.full(int(round(d * rate)), v, np.float32) for v, d in parts])


def _run(det, x, chunk, rate=16000):
    out = []
    for i in range(0, len(x), chunk):
        out += det.feed(x[i:i + chunk], sample_rate=rate)
    return [(d.label, round(d.time_s, 3)) for d in out]


def test_detector_threshold_smoothing_and_refractory():
    sp = _MarkerSpotter()
    x = _signal()
    assert _run(StreamingDetector(sp, smoothing=1, threshold=0.5), x, 1600) == [("yes", 2.1), ("stop", 4.6)]
    # smoothing over 3 windows: 'yes' (5 windows) reaches 2/3 at its second window, 'stop' (3) too
    assert _run(StreamingDetector(sp, smoothing=3, threshold=0.6), x, 1600) == [("yes", 2.2), ("stop", 4.7)]
    assert _run(StreamingDetector(sp, smoothing=3, threshold=0.9), x, 1600) == [("yes", 2.3), ("stop", 4.8)]
    # no refractory period: every window of the keyword fires
    fired = _run(StreamingDetector(sp, smoothing=1, threshold=0.5, refractory_s=0), x, 1600)
    assert fired == [("yes", 2.1), ("yes", 2.2), ("yes", 2.3), ("yes", 2.4), ("yes", 2.5),
                     ("stop", 4.6), ("stop", 4.7), ("stop", 4.8)]
    # a long refractory period swallows the second keyword
    assert _run(StreamingDetector(sp, smoothing=1, threshold=0.5, refractory_s=3.0), x, 1600) == [("yes", 2.1)]
    assert _run(StreamingDetector(sp, threshold=0.5, keywords=["stop"], smoothing=1), x, 1600) == [("stop", 4.6)]


def test_detector_does_not_depend_on_chunking_or_rate():
    sp = _MarkerSpotter()
    x = _signal()
    ref = _run(StreamingDetector(sp, smoothing=2, threshold=0.6, hop_s=0.05), x, len(x))
    assert ref == [("yes", 2.1), ("stop", 4.6)]
    for chunk in (37, 333, 4096, 16000):
        det = StreamingDetector(sp, smoothing=2, threshold=0.6, hop_s=0.05)
        assert _run(det, x, chunk) == ref, chunk
        assert det.time_s == pytest.approx(len(x) / 16000)
        assert det._buf.size <= det.window + chunk
    pcm = (x * 32767).astype(np.int16)                       # int16 input is scaled to +-1
    assert _run(StreamingDetector(sp, smoothing=2, threshold=0.6, hop_s=0.05), pcm, 777) == ref
    x48 = np.repeat(x, 3)                                     # 48 kHz: resampled in a stream
    got = _run(StreamingDetector(sp, smoothing=2, threshold=0.6, hop_s=0.05), x48, 4800, rate=48000)
    assert [g[0] for g in got] == ["yes", "stop"]
    assert all(abs(g[1] - r[1]) <= 0.051 for g, r in zip(got, ref))


def test_detector_checks_its_arguments():
    sp = _MarkerSpotter()
    with pytest.raises(ValueError):
        StreamingDetector(sp, hop_s=0)
    with pytest.raises(ValueError, match="not labels"):
        StreamingDetector(sp, keywords=["hello"])
    det = StreamingDetector(sp)
    assert det.feed(np.zeros(8000, np.float32)) == []
    det.reset()
    assert det.time_s == 0


def test_detector_on_real_audio_with_the_emulated_overlay(emulated):
    y = np.concatenate([load_audio(p) for p in SAMPLES[:4]])
    det = StreamingDetector(emulated, hop_s=0.25, smoothing=1, threshold=0.5, refractory_s=0.5)
    found = []
    for i in range(0, len(y), 3200):
        found += det.feed(y[i:i + 3200])
    assert all(isinstance(d, Detection) and 1.0 <= d.time_s <= 4.0 for d in found)
    assert all(d.label not in ("_silence_", "_unknown_") for d in found)
    times = [d.time_s for d in found]
    assert all(b - a >= 0.5 for a, b in zip(times, times[1:]))


def test_readme_example_runs(capsys):
    """The README's KeywordSpotter example, as written (needs the shipped model)."""
    from pynq_sparse.model_file import DEFAULT_MODEL_PATH
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip("the shipped model is not in pynq_sparse/data/models yet")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("KeywordSpotter", 1)[0].rsplit("```python", 1)[-1] + "KeywordSpotter" + \
        readme.split("KeywordSpotter", 1)[1].split("```", 1)[0]
    assert "spotter.classify(" in block and "StreamingDetector" in block
    cwd = os.getcwd()
    os.chdir(Path(__file__).resolve().parents[1])
    try:                                   # the example's pcm_chunk: 0.1 s of microphone audio
        exec(compile(block, "README.md", "exec"), {"pcm_chunk": np.zeros(1600, np.int16)})
    finally:
        os.chdir(cwd)
    assert capsys.readouterr().out.splitlines()[0].startswith(("emulated (", "fpga ("))


def test_readme_bulk_example_runs():
    """The README's zero-copy bulk example, as written: scores equal the golden model's."""
    from pynq_sparse.golden import golden_scores
    from pynq_sparse.model_file import load_model
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("ol.allocate_words(len(clips))", 1)[0].rsplit("```python", 1)[-1] + \
        "ol.allocate_words(len(clips))" + readme.split("ol.allocate_words(len(clips))", 1)[1].split("```", 1)[0]
    assert "FastFrontend().words(clips, out=buf)" in block
    block = block.replace("buf.freebuffer()", "words = np.array(buf)\nbuf.freebuffer()")
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["scores"].shape == (256, 12)
    assert np.array_equal(scope["scores"][:3], golden_scores(load_model(), scope["words"][:3]))


@pytest.mark.parametrize("backend", ["emulated", "cpu"])
def test_load_model_switches_models_and_keeps_the_old_one_on_failure(backend, model, monkeypatch):
    from pynq_sparse.errors import ChecksumError, CoreError
    other = model_from_bytes(model_to_bytes(random_model(6)))
    words = np.stack([np.random.default_rng(1).integers(0, 128, (32, 32)) for _ in range(5)]).astype(np.int8)
    with KeywordSpotter(model=model, backend=backend, board="ultra96v2") as spotter:
        assert np.array_equal(spotter.scores(words), golden_scores(model, words))
        assert spotter.load_model(other) == other.model_id
        assert spotter.model is other
        assert np.array_equal(spotter.scores(words), golden_scores(other, words))
        broken = bytearray(model_to_bytes(model))
        broken[200] ^= 0xFF
        with pytest.raises(ChecksumError):
            spotter.load_model(bytes(broken))
        assert np.array_equal(spotter.scores(words), golden_scores(other, words))
        if backend == "emulated":                   # the core rejects the image: roll back to the old model
            from pynq_sparse.overlay import SparseKwsCore
            real = SparseKwsCore.load_model

            def reject(core, m, *a, **k):
                if m.model_id == model.model_id:
                    raise CoreError(f"{core.name}: model rejected: weight image does not fit this bitstream")
                return real(core, m, *a, **k)
            monkeypatch.setattr(SparseKwsCore, "load_model", reject)
            with pytest.raises(CoreError, match="rejected"):
                spotter.load_model(model)
            assert spotter.model is other
            assert all(c.model_id == other.model_id for c in spotter.overlay.cores)
            assert np.array_equal(spotter.scores(words), golden_scores(other, words))
