"""`pynq-sparse listen` (replay a recording, or a microphone that is not there) and the serve options."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pynq_sparse.model_file import save_model
from pynq_sparse.service.cli import add_listen_arguments, add_serve_arguments, run_listen
from pynq_sparse.service.listen import listen_file
from pynq_sparse.service.testing import default_model, is_trained, keyword_session


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return save_model(default_model(), tmp_path_factory.mktemp("model") / "served.pskw")


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[Path, list]:
    y, marks = keyword_session()
    path = tmp_path_factory.mktemp("rec") / "session.wav"
    sf.write(path, y, 16000, subtype="PCM_16")
    return path, marks


def listen(*argv: str) -> int:
    return run_listen(add_listen_arguments(argparse.ArgumentParser()).parse_args(list(argv)))


def test_listen_from_file_prints_the_keywords_in_order(model_file, recording, capsys):
    path, marks = recording
    assert listen("--from-file", str(path), "--fast", "--json", "--model", str(model_file), "--backend", "cpu") == 0
    out = capsys.readouterr()
    dets = [json.loads(line) for line in out.out.splitlines()]
    assert "listening to file" in out.err and f"{len(dets)} detections" in out.err
    if is_trained(default_model()):
        assert [d["label"] for d in dets] == [label for label, _ in marks]
        for d, (_, start) in zip(dets, marks):
            assert start + 0.3 <= d["time_s"] <= start + 1.8


def test_listen_from_file_replays_in_real_time():
    class Counter:
        def __init__(self):
            self.samples = 0

        def feed(self, chunk, rate):
            self.samples += len(chunk)
            return []

    y = np.zeros(16000, np.float32)
    import io
    buf = io.BytesIO()
    sf.write(buf, y, 16000, format="WAV")
    path = Path(__import__("tempfile").mkdtemp()) / "one_second.wav"
    path.write_bytes(buf.getvalue())
    det = Counter()
    t0 = time.monotonic()
    assert list(listen_file(path, det, chunk_s=0.1)) == []
    elapsed = time.monotonic() - t0
    assert det.samples == 16000
    assert 0.85 <= elapsed <= 3.0                             # ten 0.1 s chunks at their real pace


def test_listen_without_a_microphone_says_to_use_from_file(model_file, capsys):
    import sounddevice as sd
    if any(d["max_input_channels"] > 0 for d in sd.query_devices()):
        code = listen("--model", str(model_file), "--backend", "cpu", "--device", "99999", "--duration", "0.1")
    else:                                                     # this machine: no sound card at all
        code = listen("--model", str(model_file), "--backend", "cpu", "--duration", "0.1")
    err = capsys.readouterr().err
    assert code == 2
    assert "no microphone" in err and "--from-file" in err


def test_listen_reports_a_missing_file(model_file, capsys):
    assert listen("--from-file", "/nonexistent/clip.wav", "--model", str(model_file), "--backend", "cpu") == 1
    assert "no audio file" in capsys.readouterr().err


def test_serve_options_have_safe_defaults():
    args = add_serve_arguments(argparse.ArgumentParser()).parse_args([])
    assert (args.host, args.port, args.backend, args.model) == ("127.0.0.1", 8000, None, None)
    args = add_serve_arguments(argparse.ArgumentParser()).parse_args(["--host", "0.0.0.0", "--port", "9000"])
    assert (args.host, args.port) == ("0.0.0.0", 9000)
