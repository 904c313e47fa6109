"""The pynq-sparse notebooks (pynq_sparse.notebooks), and the few helpers they share.

The notebooks are stories a board user follows top to bottom:

====================================  ======================================================
01_getting_started.ipynb              load the overlay (or the emulated one), classify clips,
                                      waveform, 32x32 spectrogram word and top-k scores
02_throughput_and_power.ipynb         sparse-sparse vs dense (ONNX Runtime on the same host):
                                      words/s against batch size and copies, power, words/J,
                                      the whitepaper's figures beside ours
03_live_microphone.ipynb              the streaming detector on a microphone, or on a
                                      recording when there is none
04_train_your_keywords.ipynb          fine-tune the sparse model on a folder of clips and load
                                      it into the running overlay (no new bitstream)
====================================  ======================================================

Getting them (PYNQ's `pynq.notebooks` entry point; setup.py registers this package)::

    pynq get-notebooks pynq-sparse -p ~/jupyter_notebooks      # on a board
    pynq get-notebooks pynq-sparse -p ~/notebooks -o           # on a PC with no board

The copies land in ``<path>/pynq-sparse/``. On a machine with no PYNQ device, PYNQ's
command stops at device detection ("No device found in the system") before it looks at
any package; ``-o`` skips that lookup (these notebooks need no per-device files).

Clips (see :func:`clips_folder`): the shared Speech Commands dev folder when it is
present (``$PYNQ_SPARSE_SHARED/data/gsc_v2_dev`` or ``../shared/data/gsc_v2_dev`` beside a
source checkout), else the twelve clips bundled in ``pynq_sparse/data/samples``.

Usage::

    from pynq_sparse.notebooks import clips_folder, example_clips
    clips = example_clips(per_class=2)        # [(path, label), ...] two per class
"""
from __future__ import annotations

import os
from pathlib import Path

NOTEBOOKS = (
    "01_getting_started.ipynb",
    "02_throughput_and_power.ipynb",
    "03_live_microphone.ipynb",
    "04_train_your_keywords.ipynb",
)
ENV_SHARED = "PYNQ_SPARSE_SHARED"          # the shared folder (holds data/gsc_v2_dev), as the Makefile exports it
DEV_FOLDER = Path("data") / "gsc_v2_dev"


def notebooks_folder() -> Path:
    """The folder holding the .ipynb files (the installed package's, or notebooks/ in a checkout)."""
    return Path(__file__).resolve().parent


def samples_folder() -> Path:
    """The twelve bundled clips, one per class (pynq_sparse/data/samples)."""
    import pynq_sparse
    return Path(pynq_sparse.__file__).resolve().parent / "data" / "samples"


def shared_clips_folder() -> Path | None:
    """The shared Speech Commands dev folder, or None when this machine has none.

    With ``PYNQ_SPARSE_SHARED`` set: ``$PYNQ_SPARSE_SHARED/data/gsc_v2_dev``, or the variable's
    folder itself when it is a Speech Commands dev folder (set it to an empty string to use the
    bundled samples). Unset: ``../shared/data/gsc_v2_dev`` beside a source checkout.
    """
    env = os.environ.get(ENV_SHARED)
    if env is not None:
        candidates = [Path(env) / DEV_FOLDER, Path(env)] if env else []
    else:
        import pynq_sparse
        repo = Path(pynq_sparse.__file__).resolve().parent.parent
        candidates = [repo.parent / "shared" / DEV_FOLDER]
    for folder in candidates:
        if (folder / "testing_list.txt").is_file() and (folder / "_silence_").is_dir():
            return folder
    return None


def clips_folder() -> tuple[Path, str]:
    """(folder, kind): the shared dev folder ("shared") if present, else the bundled samples ("samples")."""
    shared = shared_clips_folder()
    if shared is not None:
        return shared, "shared"
    return samples_folder(), "samples"


def sample_label(path: str | Path) -> str:
    """Class of a bundled sample from its file name ``<class>__<original name>.wav``."""
    from pynq_sparse.architecture import LABELS
    name = Path(path).name
    for label in sorted(LABELS, key=len, reverse=True):
        if name.startswith(label + "__"):
            return label
    raise ValueError(f"{name}: not a bundled sample name (<class>__<file>.wav)")


def example_clips(per_class: int = 1, split: str = "testing") -> list[tuple[Path, str]]:
    """Up to `per_class` clips of every class as (path, label), in class order.

    From the shared dev folder's `split` list (speakers never seen in training) when it is
    present, else the bundled samples (one per class, whatever `per_class` says).
    """
    from pynq_sparse.architecture import LABELS
    folder, kind = clips_folder()
    if kind == "samples":
        clips = [(p, sample_label(p)) for p in sorted(folder.glob("*.wav"))]
    else:
        from pynq_sparse.dataset import load_split
        clips = [(ex.path, ex.label_name) for ex in load_split(folder, split)]
    out = []
    for label in LABELS:
        out += [c for c in clips if c[1] == label][:per_class]
    return out


__all__ = ["NOTEBOOKS", "clips_folder", "example_clips", "notebooks_folder", "sample_label", "samples_folder",
           "shared_clips_folder"]
