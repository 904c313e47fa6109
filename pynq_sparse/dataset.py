"""Google Speech Commands loader: the 12-class task on the full downloads and on the shared dev folder.

Two layouts are read (see :func:`detect_layout`):

* ``"full"`` -- the v0.01/v0.02 downloads: one folder per word, ``_background_noise_/``,
  ``validation_list.txt`` and ``testing_list.txt``. Keyword folders give their class, every
  other word folder gives ``_unknown_``; train is every clip in neither list. ``_silence_``
  examples are 1-second segments cut from the background-noise files (seeded, see
  :func:`load_split`).
* ``"dev"`` -- ``../shared/data/gsc_v2_dev``: a folder per class including ``_silence_/`` and
  ``_unknown_/``, ``extra_v001/<word>/`` (train only), the two lists and ``manifest.csv``.

Usage::

    from pynq_sparse.dataset import load_split, read_audio, label_array
    train = load_split("../shared/data/gsc_v2_dev", "train")
    x, y = read_audio(train), label_array(train)          # float32 [N, 16000], int64 [N]
"""
from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf

from .architecture import KEYWORDS, LABELS
from .audio import N_SAMPLES, SAMPLE_RATE, fix_length, load_audio
from .errors import DatasetError

SPLITS = ("train", "validation", "testing", "all")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
NOISE_DIR = "_background_noise_"
EXTRA_DIR = "extra_v001"
VALIDATION_LIST, TESTING_LIST, MANIFEST = "validation_list.txt", "testing_list.txt", "manifest.csv"
SILENCE_SHARE = 0.1                                   # default silence examples: 10% of the split's clips
NOISE_REGIONS = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "testing": (0.9, 1.0), "all": (0.0, 1.0)}
# ^ part of every noise file (as fractions of its length) each split cuts its silence from, so
#   the splits never share noise samples


@dataclass(frozen=True)
class Example:
    """One labelled one-second example.

    Attributes
    ----------
    path : Path
        The WAV file (for silence cut from background noise: the noise file).
    label : int
        Class index into ``architecture.LABELS``.
    label_name : str
        ``LABELS[label]``.
    speaker : str
        Speaker id (file name before ``_nohash_``); noise file stem for cut silence; the
        manifest's value for the dev layout's silence clips.
    offset : int or None
        For silence cut from background noise: first sample (at 16 kHz) of the segment.
    """

    path: Path
    label: int
    label_name: str
    speaker: str
    offset: int | None = None

    def audio(self) -> np.ndarray:
        """float32 [16000] at 16 kHz: the clip cut/zero-padded at the end, or the noise segment."""
        if self.offset is None:
            return fix_length(load_audio(self.path), N_SAMPLES)
        return _noise_segment(self.path, self.offset)


def detect_layout(root: str | Path) -> str:
    """``"dev"`` for the shared dev folder, ``"full"`` for a v0.01/v0.02 download; DatasetError otherwise.

    dev = has ``_silence_/`` and ``_unknown_/`` folders; full = has ``_background_noise_/`` or at
    least one keyword folder (and is not dev).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{str(root)!r} is not a folder; pass the Speech Commands root folder")
    if (root / SILENCE).is_dir() and (root / UNKNOWN).is_dir():
        return "dev"
    if (root / NOISE_DIR).is_dir() or any((root / k).is_dir() for k in KEYWORDS):
        return "full"
    raise DatasetError(f"{str(root)!r} is not a Speech Commands folder: expected either word folders "
                       f"(yes/, no/, ...) with {NOISE_DIR}/ (full v0.01/v0.02 download) or {SILENCE}/ and "
                       f"{UNKNOWN}/ class folders (the gsc_v2_dev layout)")


def load_split(root: str | Path, split: str = "train", list_file: str | Path | None = None, *,
               n_silence: int | None = None, seed: int = 0, exclude_eval_speakers: bool = True) -> list[Example]:
    """The examples of one split, sorted by relative path (silence segments last; a list file keeps its order).

    Parameters
    ----------
    root : str or Path
        Dataset root (either layout).
    split : {"train", "validation", "testing", "all"}
        Which split; "all" is every clip (and, in the full layout, silence from whole noise files).
    list_file : str or Path, optional
        A text file of paths relative to `root` (one a line, ``#`` comments allowed). When
        given, exactly those clips are returned and `split` is ignored (no silence is added).
    n_silence : int >= 0, optional
        Full layout only: silence segments to cut for the split; default
        ``round(0.1 * clips in the split)``. Each is a random 1-second window (``seed``) inside
        the split's own region of a random noise file (train: first 80% of each file,
        validation: next 10%, testing: last 10%).
    seed : int
        Seed of the silence segments; the same seed gives the same segments.
    exclude_eval_speakers : bool
        Dev layout only: drop ``extra_v001`` clips of speakers that occur in the validation or
        testing list, so that train stays speaker-disjoint from them.

    Returns
    -------
    examples : list of Example

    Raises
    ------
    DatasetError
        Not a Speech Commands folder, a missing split list, an empty list file, a listed
        file that does not exist or is not a clip of the dataset, or no noise to cut silence from.
    """
    root = Path(root)
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    layout = detect_layout(root)
    clips = _index_dev(root) if layout == "dev" else _index_full(root)     # relpath -> Example
    if list_file is not None:
        return [clips[rel] for rel in _read_list(root, Path(list_file), clips, required=True)]
    if split == "all":
        chosen = sorted(clips)
    else:
        val = set(_read_list(root, root / VALIDATION_LIST, clips))
        test = set(_read_list(root, root / TESTING_LIST, clips))
        if split == "validation":
            chosen = sorted(val)
        elif split == "testing":
            chosen = sorted(test)
        else:
            chosen = sorted(set(clips) - val - test)
            if layout == "dev" and exclude_eval_speakers:
                eval_speakers = {clips[rel].speaker for rel in val | test}
                chosen = [rel for rel in chosen
                          if not rel.startswith(EXTRA_DIR + "/") or clips[rel].speaker not in eval_speakers]
    examples = [clips[rel] for rel in chosen]
    if layout == "full":
        n = int(round(SILENCE_SHARE * len(examples))) if n_silence is None else int(n_silence)
        examples += _silence_segments(root, split, n, seed)
    return examples


def read_audio(examples: Sequence[Example], n_workers: int | None = None) -> np.ndarray:
    """All audio of `examples` as one float32 array [N, 16000], read in parallel threads.

    libsndfile releases the GIL while it decodes, so threads overlap the file reads.

    Parameters
    ----------
    examples : sequence of Example
    n_workers : int > 0, optional
        Reader threads (default: 2 x CPU cores, as reading waits on the disk); 1 reads in order.
    """
    out = np.empty((len(examples), N_SAMPLES), np.float32)

    def one(i: int) -> None:
        out[i] = examples[i].audio()

    n_workers = n_workers or 2 * (os.cpu_count() or 1)
    if n_workers == 1 or len(examples) < 2:
        for i in range(len(examples)):
            one(i)
    else:
        with ThreadPoolExecutor(n_workers, thread_name_prefix="read_audio") as pool:
            for _ in pool.map(one, range(len(examples)), chunksize=32):
                pass
    return out


def label_array(examples: Iterable[Example]) -> np.ndarray:
    """Class indices of `examples` as int64 [N]."""
    return np.array([e.label for e in examples], dtype=np.int64)


def speaker_of(file_name: str) -> str:
    """Speaker id of a Speech Commands file name: the part before ``_nohash_``.

    The dev layout's unknown clips are named ``<word>_<speaker>_nohash_<n>.wav``; the word
    prefix is dropped (speaker ids hold no ``_``). Names without ``_nohash_`` give their stem.
    """
    stem = Path(file_name).name
    if "_nohash_" not in stem:
        return Path(stem).stem
    return stem.split("_nohash_")[0].split("_")[-1]


# --- layouts ------------------------------------------------------------------
def _label_of_word(word: str) -> int:
    return LABELS.index(word) if word in KEYWORDS else LABELS.index(UNKNOWN)


def _example(root: Path, rel: str, label: int, speaker: str | None = None) -> Example:
    return Example(path=root / rel, label=label, label_name=LABELS[label],
                   speaker=speaker if speaker is not None else speaker_of(rel))


def _wavs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.wav") if p.is_file())


def _index_full(root: Path) -> dict[str, Example]:
    """relpath -> Example for every clip of a full download (word folders, not _background_noise_)."""
    clips = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        label = _label_of_word(folder.name)
        for wav in _wavs(folder):
            rel = f"{folder.name}/{wav.name}"
            clips[rel] = _example(root, rel, label)
    return clips


def _index_dev(root: Path) -> dict[str, Example]:
    """relpath -> Example for every clip of the dev layout (12 class folders + extra_v001/<word>/)."""
    speakers = {}
    if (root / MANIFEST).is_file():
        with open(root / MANIFEST, newline="") as f:
            speakers = {row["relpath"]: row["speaker"] for row in csv.DictReader(f)}
    clips = {}
    for i, name in enumerate(LABELS):
        for wav in _wavs(root / name):
            rel = f"{name}/{wav.name}"
            clips[rel] = _example(root, rel, i, speakers.get(rel))
    extra = root / EXTRA_DIR
    if extra.is_dir():
        for folder in sorted(p for p in extra.iterdir() if p.is_dir()):
            label = _label_of_word(folder.name)
            for wav in _wavs(folder):
                rel = f"{EXTRA_DIR}/{folder.name}/{wav.name}"
                clips[rel] = _example(root, rel, label, speakers.get(rel))
    return clips


def _read_list(root: Path, list_path: Path, clips: dict[str, Example], required: bool = False) -> list[str]:
    """Relative paths of a list file, each checked to be a clip of the dataset."""
    if not list_path.is_file():
        hint = "" if required else " (the splits of a Speech Commands folder come from it; use split='all' without it)"
        raise DatasetError(f"list file {str(list_path)!r} does not exist{hint}")
    rels = []
    for n, line in enumerate(list_path.read_text().splitlines(), start=1):
        rel = line.split("#", 1)[0].strip().replace("\\", "/")
        if not rel:
            continue
        if rel not in clips:
            why = "does not exist" if not (root / rel).is_file() else "is not a clip of a class folder"
            raise DatasetError(f"{list_path.name} line {n}: {rel!r} {why} under {str(root)!r}; "
                               "list paths relative to the dataset root, like 'yes/0a7c2a8d_nohash_0.wav'")
        rels.append(rel)
    if required and not rels:
        raise DatasetError(f"list file {str(list_path)!r} names no clips; put one relative path per line")
    return rels


# --- silence from background noise ------------------------------------------
def _noise_lengths(root: Path) -> list[tuple[Path, int]]:
    """(noise file, length in samples at 16 kHz) for each file in _background_noise_/."""
    out = []
    for wav in _wavs(root / NOISE_DIR):
        info = sf.info(str(wav))
        out.append((wav, int(info.frames * SAMPLE_RATE // info.samplerate)))
    return out


def _silence_segments(root: Path, split: str, n: int, seed: int) -> list[Example]:
    """`n` seeded 1-second windows from the split's region of the noise files."""
    if n <= 0:
        return []
    lo, hi = NOISE_REGIONS[split]
    spans = []                                                     # (file, first start, last start)
    for wav, length in _noise_lengths(root):
        a, b = int(lo * length), int(hi * length) - N_SAMPLES
        if b >= a:
            spans.append((wav, a, b))
    if not spans:
        raise DatasetError(f"cannot cut {split} silence: no file in {str(root / NOISE_DIR)!r} has a "
                           f"{N_SAMPLES}-sample window in its {split} region; pass n_silence=0 to skip silence")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    label = LABELS.index(SILENCE)
    out = []
    for _ in range(n):
        wav, a, b = spans[rng.integers(len(spans))]
        out.append(Example(path=wav, label=label, label_name=SILENCE, speaker=wav.stem,
                           offset=int(rng.integers(a, b + 1))))
    return out


def _noise_segment(path: Path, offset: int) -> np.ndarray:
    """float32 [16000]: samples offset..offset+16000 (at 16 kHz) of a noise file, mono."""
    info = sf.info(str(path))
    if info.samplerate == SAMPLE_RATE:                              # read only the window
        y, _ = sf.read(str(path), start=offset, frames=N_SAMPLES, dtype="float32", always_2d=True)
        y = y.mean(axis=1, dtype=np.float32) if y.shape[1] > 1 else y[:, 0]
    else:
        y = load_audio(path)[offset:offset + N_SAMPLES]
    return fix_length(np.ascontiguousarray(y, dtype=np.float32), N_SAMPLES)
