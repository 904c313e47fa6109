"""The notebooks: stored clean, each with check cells, and executed top to bottom on the emulated overlay.

Each notebook runs in a fresh kernel (nbclient) in its own temporary folder, with
PYNQ_SPARSE_EMULATION=1 (the emulated overlay even on a board) and no live microphone. A
failing `# check:` cell fails the test with the cell's assertion. The executed copies are
left in pytest's temporary folder (`<tmp>/<notebook>.ipynb`) for inspection.

The clips are the shared Speech Commands folder (PYNQ_SPARSE_SHARED, as the Makefile sets it);
the notebooks whose story changes without it (01, 03, 04) also run on the bundled samples only.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PYNQ_SPARSE_SHARED", REPO.parent / "shared"))     # as in conftest.py
GSC_DEV = SHARED / "data" / "gsc_v2_dev"
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600
CHECK = re.compile(r"^# check:", re.M)


def read(name: str):
    return nbformat.read(NOTEBOOK_DIR / name, as_version=4)


def test_the_four_stories_are_there():
    from pynq_sparse.notebooks import NOTEBOOKS as DECLARED
    assert NOTEBOOKS == sorted(DECLARED) == ["01_getting_started.ipynb", "02_throughput_and_power.ipynb",
                                             "03_live_microphone.ipynb", "04_train_your_keywords.ipynb"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_without_outputs(name):
    nb = read(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, \
                f"{name}: store notebooks with cleared outputs (Jupyter: Edit > Clear All Outputs)"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_story_shape(name):
    """A title, prose between the code, and check cells that assert on results."""
    nb = read(name)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {name[:2]} ")
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 4
    checks = [c for c in nb.cells if c.cell_type == "code" and CHECK.search(c.source)]
    assert len(checks) >= 2, f"{name}: needs `# check:` cells"
    for cell in checks:
        assert "assert " in cell.source, f"{name}: a check cell must assert something:\n{cell.source}"


def execute(name: str, folder: Path, monkeypatch, shared: str | None) -> nbformat.NotebookNode:
    """Run notebook `name` in `folder` (a fresh kernel); returns the executed notebook (also written there)."""
    monkeypatch.setenv("PYNQ_SPARSE_EMULATION", "1")
    monkeypatch.setenv("PYNQ_SPARSE_NB_MICROPHONE", "0")
    monkeypatch.delenv("PYNQ_SPARSE_TRAIN_DATA", raising=False)
    monkeypatch.setenv("PYNQ_SPARSE_SHARED", shared if shared is not None else str(SHARED))
    nb = read(name)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    finally:
        nbformat.write(nb, folder / name)
        print(f"{name}: {time.perf_counter() - t0:.1f} s, executed copy in {folder / name}")
    return nb


def assert_ran_clean(nb, name: str) -> None:
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name}: not every cell ran"
    for cell in code:
        for out in cell.outputs:
            assert out.output_type != "error", f"{name}: {out.ename}: {out.evalue}"
            if out.output_type == "stream" and out.name == "stderr":
                assert "Traceback" not in out.text, f"{name}: traceback on stderr:\n{out.text}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_on_the_emulated_overlay(name, tmp_path, monkeypatch):
    assert GSC_DEV.is_dir(), f"shared data missing: {GSC_DEV}"
    nb = execute(name, tmp_path, monkeypatch, shared=None)
    assert_ran_clean(nb, name)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "emulated" in text                       # the story says which engine ran it
    if name.startswith("01"):
        assert str(GSC_DEV) in text                  # ... and which clips
    if name.startswith("03"):
        assert (tmp_path / "recording.wav").is_file()
    if name.startswith("04"):
        assert (tmp_path / "my_keywords.pskw").is_file()


@pytest.mark.parametrize("name", ["01_getting_started.ipynb", "03_live_microphone.ipynb",
                                  "04_train_your_keywords.ipynb"])
def test_notebook_runs_with_only_the_bundled_samples(name, tmp_path, monkeypatch):
    """A board with no shared folder: the notebooks fall back to the twelve bundled clips."""
    nb = execute(name, tmp_path, monkeypatch, shared="")
    assert_ran_clean(nb, name)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert str(GSC_DEV) not in text
    if name.startswith("04"):
        assert sorted(p.name for p in (tmp_path / "bundled_clips").iterdir()) == sorted(
            ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_"])


def test_delivered_copy_matches_source(tmp_path):
    """What `pynq get-notebooks` copies is notebooks/ minus __init__.py (pynqutils' deliver_notebooks)."""
    from pynqutils.setup_utils import deliver_notebooks
    deliver_notebooks(None, str(NOTEBOOK_DIR), str(tmp_path), "pynq-sparse", folder=True, overlays_res_lookup=False)
    delivered = tmp_path / "pynq-sparse"
    assert sorted(p.name for p in delivered.glob("*.ipynb")) == NOTEBOOKS
    assert not (delivered / "__init__.py").exists()
    for name in NOTEBOOKS:
        assert (delivered / name).read_bytes() == (NOTEBOOK_DIR / name).read_bytes()
    shutil.rmtree(delivered)
