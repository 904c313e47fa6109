"""The pynq-sparse command line on real clips (subprocesses, as a user runs it)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pynq_sparse.cli import SAMPLES_DIR, sample_label
from pynq_sparse.frontend import words_from_audio
from pynq_sparse.golden import golden_scores, predict
from pynq_sparse.model_file import load_model

CLI = [sys.executable, "-m", "pynq_sparse.cli"]


def golden_labels(files) -> list[str]:
    """The golden model's labels of audio files, computed in-process (independently of the CLI)."""
    model = load_model()
    return [model.labels[i] for i in predict(golden_scores(model, words_from_audio(files)))]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=600)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def test_info_ends_with_the_nonzero_count():
    out = cli("info").stdout.strip().splitlines()
    m = re.fullmatch(r"nonzero_weights: (\d+)", out[-1])
    assert m and 0 < int(m.group(1)) <= 127_696
    assert any(line.startswith("conv1") for line in out) and any(line.startswith("fc2") for line in out)


def test_classify_bundled_samples_prints_a_label_per_file():
    files = sorted(str(p) for p in SAMPLES_DIR.glob("*.wav"))
    assert len(files) == 12
    lines = cli("classify", *files).stdout.strip().splitlines()
    assert len(lines) == 12
    labels = []
    for f, line in zip(files, lines):
        m = re.fullmatch(re.escape(f) + r": (\S+) \((0\.\d{3}|1\.000)\)", line)
        assert m, line
        labels.append(m.group(1))
    assert labels == golden_labels(files)                        # exactly the golden model's answer
    # and that answer is sensible on these test-split clips (the model card measures the accuracy:
    # ~85 %; 6 of 12 is far above chance, 1 in 12, and below it only with probability < 0.1 %)
    truth = [sample_label(Path(f).name) for f in files]
    assert sum(a == b for a, b in zip(labels, truth)) >= 6, list(zip(truth, labels))


def test_classify_resampled_stereo_flac_matches_the_original(tmp_path):
    src = next(SAMPLES_DIR.glob("yes__*.wav"))
    y, sr = sf.read(src)
    stereo = np.stack([y, y], axis=1)
    import soxr
    flac = tmp_path / "yes_44k_stereo.flac"
    sf.write(flac, soxr.resample(stereo, sr, 44100), 44100)
    a = cli("classify", str(src)).stdout.split(": ")[1].split()[0]
    b = cli("classify", str(flac)).stdout.split(": ")[1].split()[0]
    assert a == b


def test_classify_bad_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "notaudio.wav"
    bad.write_text("hello")
    res = cli("classify", str(bad), check=False)
    assert res.returncode == 2
    assert "error:" in res.stderr and "notaudio.wav" in res.stderr


def test_evaluate_prints_confusion_and_accuracy_last(gsc_dev):
    res = cli("evaluate", "--data", str(gsc_dev), "--list", str(gsc_dev / "testing_list.txt"))
    lines = res.stdout.strip().splitlines()
    m = re.fullmatch(r"accuracy: (0\.\d{4}|1\.0000)", lines[-1])
    assert m
    rows = [line for line in lines if line.split()[0] in ("yes", "silence", "unknown")]
    assert len(rows) == 3
    # the confusion matrix counts every listed clip
    n_listed = sum(1 for line in open(gsc_dev / "testing_list.txt") if line.strip())
    counts = [list(map(int, line.split()[1:13])) for line in lines if re.match(r"\s*\w+ +\d", line)]
    assert sum(map(sum, counts)) == n_listed
    assert float(m.group(1)) > 0.5


def test_evaluate_on_a_non_gsc_folder_fails_clearly(tmp_path):
    res = cli("evaluate", "--data", str(tmp_path), check=False)
    assert res.returncode == 2 and "Speech Commands" in res.stderr


def test_corrupt_model_file_is_reported(tmp_path):
    bad = tmp_path / "bad.pskw"
    from pynq_sparse.model_file import DEFAULT_MODEL_PATH
    data = bytearray(DEFAULT_MODEL_PATH.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    res = cli("info", str(bad), check=False)
    assert res.returncode == 2 and "SHA-256" in res.stderr


@pytest.mark.parametrize("cmd", [["train", "--help"], ["bench", "--help"], ["run", "--help"]])
def test_subcommands_have_help(cmd):
    assert "usage:" in cli(*cmd).stdout


def test_run_classifies_the_bundled_clips_on_the_emulated_overlay():
    out = cli("run", "--no-serve").stdout.strip().splitlines()
    assert out[0].startswith("backend: emulated")
    assert len([line for line in out if " -> " in line]) == 12
    # the emulated overlay's labels are the golden model's, and the summary line counts them right
    files = sorted(SAMPLES_DIR.glob("*.wav"))
    expected = golden_labels(files)
    printed = {line.split(" -> ")[0].strip(): line.split(" -> ")[1].split()[0] for line in out if " -> " in line}
    assert [printed[f.name] for f in files] == expected
    correct = sum(label == sample_label(f.name) for f, label in zip(files, expected))
    m = re.fullmatch(r"(\d+)/12 sample clips classified as their folder label", out[-1])
    assert m and int(m.group(1)) == correct >= 6
