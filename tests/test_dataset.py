"""Speech Commands loader: the shared dev folder and a tiny generated full-download layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pynq_sparse.architecture import LABELS
from pynq_sparse.audio import load_audio
from pynq_sparse.dataset import (Example, detect_layout, label_array, load_split, read_audio, speaker_of)
from pynq_sparse.errors import DatasetError

# Counted from ../shared/data/gsc_v2_dev (manifest.csv + the two lists), class order = LABELS.
DEV_COUNTS = {
    "train": [202, 195, 206, 209, 212, 188, 197, 212, 199, 193, 181, 1605],        # incl. extra_v001
    "validation": [39, 33, 40, 42, 45, 38, 29, 37, 32, 37, 34, 34],
    "testing": [21, 24, 23, 23, 22, 18, 29, 28, 21, 21, 42, 22],
    "all": [262, 252, 269, 274, 279, 244, 255, 277, 252, 251, 257, 1688],
}
DEV_EXTRA_EVAL_SPEAKER_CLIPS = 27          # extra_v001 clips whose speaker is in a validation/testing list


# --- dev layout (real data) ---------------------------------------------------
@pytest.mark.parametrize("split", list(DEV_COUNTS))
def test_dev_counts_per_split_and_class(gsc_dev, split):
    ex = load_split(gsc_dev, split)
    counts = np.bincount(label_array(ex), minlength=len(LABELS)).tolist()
    assert counts == DEV_COUNTS[split]
    assert all(e.label_name == LABELS[e.label] and e.path.is_file() and e.offset is None for e in ex)


def test_dev_splits_are_disjoint_and_speaker_disjoint(gsc_dev):
    assert detect_layout(gsc_dev) == "dev"
    split = {s: load_split(gsc_dev, s) for s in ("train", "validation", "testing")}
    paths = {s: {e.path for e in ex} for s, ex in split.items()}
    assert not paths["train"] & paths["validation"] and not paths["train"] & paths["testing"]
    assert not paths["validation"] & paths["testing"]
    speakers = {s: {e.speaker for e in ex if e.label_name != "_silence_"} for s, ex in split.items()}
    assert not speakers["train"] & (speakers["validation"] | speakers["testing"])
    listed = {ln for ln in (gsc_dev / "validation_list.txt").read_text().split()}
    assert {e.path.relative_to(gsc_dev).as_posix() for e in split["validation"]} == listed
    # extras are train-only; with the speaker filter off, the 27 clips of eval speakers come back
    loose = load_split(gsc_dev, "train", exclude_eval_speakers=False)
    assert len(loose) - len(split["train"]) == DEV_EXTRA_EVAL_SPEAKER_CLIPS
    assert sum("extra_v001" in e.path.parts for e in split["train"]) == 1497 - DEV_EXTRA_EVAL_SPEAKER_CLIPS


def test_dev_labels_and_speakers(gsc_dev):
    ex = {e.path.relative_to(gsc_dev).as_posix(): e for e in load_split(gsc_dev, "all")}
    unk = ex["_unknown_/backward_0c540988_nohash_0.wav"]
    assert (unk.label_name, unk.speaker) == ("_unknown_", "0c540988")
    assert ex["_silence_/1041.wav"].speaker == "silence1041.wav"             # manifest value
    happy = next(e for r, e in ex.items() if r.startswith("extra_v001/happy/"))
    assert happy.label_name == "_unknown_"
    yes_extra = [e for r, e in ex.items() if r.startswith("extra_v001/yes/")]
    assert yes_extra and all(e.label_name == "yes" for e in yes_extra)
    assert speaker_of("yes/0a7c2a8d_nohash_1.wav") == "0a7c2a8d"


def test_read_audio_threads_equal_sequential(gsc_dev):
    ex = load_split(gsc_dev, "testing")[::7]
    x = read_audio(ex)
    assert x.shape == (len(ex), 16000) and x.dtype == np.float32
    np.testing.assert_array_equal(x, read_audio(ex, n_workers=1))
    np.testing.assert_array_equal(x[3], ex[3].audio())
    assert read_audio([]).shape == (0, 16000)


# --- full layout (generated) ----------------------------------------------------
def _wav(path: Path, n: int, value: float, sr: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(n, value, np.float32), sr, subtype="FLOAT")


@pytest.fixture()
def full_root(tmp_path) -> Path:
    """A miniature v0.02 download: 4 word folders, 2 noise files, the two lists."""
    root = tmp_path / "speech_commands_v0.02"
    files = {
        "yes": ["aaaa0001_nohash_0", "aaaa0001_nohash_1", "bbbb0002_nohash_0", "cccc0003_nohash_0"],
        "no": ["aaaa0001_nohash_0", "dddd0004_nohash_0"],
        "bed": ["bbbb0002_nohash_0", "eeee0005_nohash_0"],
        "marvin": ["cccc0003_nohash_0"],
    }
    for i, (word, names) in enumerate(files.items()):
        for j, name in enumerate(names):
            _wav(root / word / f"{name}.wav", 12000 + 3000 * j, 0.01 * (i + 1))   # 0.75 s .. 1.5 s
    noise = np.sin(np.arange(10 * 16000) / 7.0).astype(np.float32)               # 10 s at 16 kHz
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "hum.wav", noise, 16000, subtype="FLOAT")
    sf.write(root / "_background_noise_" / "ramp.wav", np.linspace(-1, 1, 5 * 22050).astype(np.float32),
             22050, subtype="FLOAT")                                              # 5 s at 22.05 kHz
    (root / "_background_noise_" / "README.md").write_text("noise")
    (root / "validation_list.txt").write_text("yes/bbbb0002_nohash_0.wav\nbed/bbbb0002_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/cccc0003_nohash_0.wav\nmarvin/cccc0003_nohash_0.wav\n")
    (root / "LICENSE").write_text("CC-BY-4.0")
    return root


def rels(root: Path, ex: list[Example]) -> list[str]:
    return [e.path.relative_to(root).as_posix() for e in ex if e.offset is None]


def test_full_layout_split_membership(full_root):
    assert detect_layout(full_root) == "full"
    val = load_split(full_root, "validation", n_silence=0)
    test = load_split(full_root, "testing", n_silence=0)
    train = load_split(full_root, "train", n_silence=0)
    assert rels(full_root, val) == ["bed/bbbb0002_nohash_0.wav", "yes/bbbb0002_nohash_0.wav"]
    assert rels(full_root, test) == ["marvin/cccc0003_nohash_0.wav", "yes/cccc0003_nohash_0.wav"]
    assert rels(full_root, train) == ["bed/eeee0005_nohash_0.wav", "no/aaaa0001_nohash_0.wav",
                                      "no/dddd0004_nohash_0.wav", "yes/aaaa0001_nohash_0.wav",
                                      "yes/aaaa0001_nohash_1.wav"]
    labels = {r: e.label_name for r, e in zip(rels(full_root, train + val + test), train + val + test)}
    assert labels["bed/eeee0005_nohash_0.wav"] == "_unknown_"
    assert labels["marvin/cccc0003_nohash_0.wav"] == "_unknown_"
    assert labels["yes/aaaa0001_nohash_0.wav"] == "yes" and labels["no/dddd0004_nohash_0.wav"] == "no"
    assert [e.speaker for e in val] == ["bbbb0002", "bbbb0002"]
    assert len(load_split(full_root, "all", n_silence=0)) == 9


def test_full_layout_clip_audio_is_one_second(full_root):
    train = load_split(full_root, "train", n_silence=0)
    short = next(e for e in train if e.path.name == "aaaa0001_nohash_0.wav" and e.label_name == "yes")
    long_ = next(e for e in train if e.path.name == "aaaa0001_nohash_1.wav")      # 15000 samples
    y = short.audio()
    assert y.shape == (16000,) and y.dtype == np.float32
    np.testing.assert_allclose(y[:12000], 0.01)
    assert (y[12000:] == 0).all()                                                 # zero-padded end
    assert long_.audio().shape == (16000,)


def test_full_layout_silence_segments(full_root):
    every = load_split(full_root, "all")                                           # 9 clips
    assert [e.label_name for e in every if e.offset is not None] == ["_silence_"]  # default: round(10 %)
    assert len(every) == 10 and every[-1].offset is not None                       # silence comes last
    many = [e for e in load_split(full_root, "train", n_silence=40, seed=3) if e.offset is not None]
    assert len(many) == 40 and {e.path.name for e in many} == {"hum.wav", "ramp.wav"}
    assert all(e.label == LABELS.index("_silence_") and e.speaker == e.path.stem for e in many)
    again = [e for e in load_split(full_root, "train", n_silence=40, seed=3) if e.offset is not None]
    assert again == many                                                           # deterministic
    other = [e for e in load_split(full_root, "train", n_silence=40, seed=4) if e.offset is not None]
    assert other != many
    length = {"hum.wav": 160000, "ramp.wav": 5 * 16000}
    for e in many:                                                                 # train: first 80 %
        assert 0 <= e.offset and e.offset + 16000 <= 0.8 * length[e.path.name]
    for e in load_split(full_root, "testing", n_silence=10):
        if e.offset is not None:                                                   # testing: last 10 %
            assert e.path.name == "hum.wav" and e.offset >= 0.9 * 160000 and e.offset + 16000 <= 160000
    hum = next(e for e in many if e.path.name == "hum.wav")
    np.testing.assert_array_equal(hum.audio(), load_audio(hum.path)[hum.offset:hum.offset + 16000])
    ramp = next(e for e in many if e.path.name == "ramp.wav")                      # resampled noise file
    np.testing.assert_allclose(ramp.audio(), load_audio(ramp.path)[ramp.offset:ramp.offset + 16000])
    assert ramp.audio().shape == (16000,)
    x = read_audio(many)
    np.testing.assert_array_equal(x[0], many[0].audio())


def test_list_file_override(full_root, tmp_path):
    lst = tmp_path / "mine.txt"
    lst.write_text("# my clips\nno/dddd0004_nohash_0.wav\n\nmarvin/cccc0003_nohash_0.wav  # unknown word\n")
    ex = load_split(full_root, "train", list_file=lst)
    assert rels(full_root, ex) == ["no/dddd0004_nohash_0.wav", "marvin/cccc0003_nohash_0.wav"]
    assert [e.label_name for e in ex] == ["no", "_unknown_"]                      # no silence added


def test_list_file_errors(full_root, tmp_path):
    missing = tmp_path / "missing.txt"
    missing.write_text("yes/aaaa0001_nohash_0.wav\nyes/ffff9999_nohash_0.wav\n")
    with pytest.raises(DatasetError, match="ffff9999.*does not exist"):
        load_split(full_root, "train", list_file=missing)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    with pytest.raises(DatasetError, match="names no clips"):
        load_split(full_root, "train", list_file=empty)
    noise = tmp_path / "noise.txt"
    noise.write_text("_background_noise_/hum.wav\n")
    with pytest.raises(DatasetError, match="not a clip"):
        load_split(full_root, "train", list_file=noise)
    with pytest.raises(DatasetError, match="does not exist"):
        load_split(full_root, "train", list_file=tmp_path / "nope.txt")


def test_layout_errors(full_root, tmp_path):
    other = tmp_path / "photos"
    (other / "cats").mkdir(parents=True)
    with pytest.raises(DatasetError, match="not a Speech Commands folder"):
        detect_layout(other)
    with pytest.raises(DatasetError, match="not a Speech Commands folder"):
        load_split(other, "train")
    with pytest.raises(DatasetError, match="not a folder"):
        detect_layout(tmp_path / "absent")
    with pytest.raises(DatasetError, match="split must be one of"):
        load_split(full_root, "dev")
    (full_root / "testing_list.txt").unlink()
    with pytest.raises(DatasetError, match="testing_list.txt"):
        load_split(full_root, "train")
    assert len(load_split(full_root, "all", n_silence=0)) == 9                    # no list needed for all
    for noise in (full_root / "_background_noise_").glob("*.wav"):
        noise.unlink()
    with pytest.raises(DatasetError, match="n_silence=0"):
        load_split(full_root, "all", n_silence=3)
