"""Run the real app under uvicorn on a free loopback port, in a thread (tests and the load benchmark).

Usage::

    from pynq_sparse.service.main import create_app
    from pynq_sparse.service.testing import running_server
    with running_server(create_app()) as server:
        httpx.get(server.url + "/healthz")
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import uvicorn

from .server import Server


@dataclass
class RunningServer:
    url: str                 # http://127.0.0.1:<port>
    ws_url: str              # ws://127.0.0.1:<port>
    port: int
    server: Server
    thread: threading.Thread

    def stop(self, timeout: float = 30.0) -> None:
        """Ask uvicorn to shut down as on SIGTERM (drain, lifespan shutdown) and wait for it."""
        self.server.should_exit = True
        self.thread.join(timeout)


def free_loopback_socket(host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to a free port on the loopback interface (not yet listening)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@contextlib.contextmanager
def running_server(app, log_level: str = "warning", timeout_graceful_shutdown: float | None = 30.0,
                   startup_timeout: float = 120.0, **config) -> Iterator[RunningServer]:
    """Serve `app` with uvicorn in a daemon thread on 127.0.0.1:<free port>; stop it on exit."""
    sock = free_loopback_socket()
    port = sock.getsockname()[1]
    cfg = uvicorn.Config(app, log_level=log_level, lifespan="on",
                         timeout_graceful_shutdown=timeout_graceful_shutdown, **config)
    server = Server(cfg, app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn stopped during startup (see its log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"uvicorn did not start within {startup_timeout} s")
        time.sleep(0.02)
    running = RunningServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", port, server, thread)
    try:
        yield running
    finally:
        running.stop()
        sock.close()


def default_model():
    """The model the service would serve: $PYNQ_SPARSE_MODEL, else the shipped model, else ``random_model(0)``.

    ``random_model(0)`` (valid, random weights) stands in only while no trained model exists;
    :func:`is_trained` tells them apart.
    """
    from pynq_sparse.architecture import random_model
    from pynq_sparse.model_file import DEFAULT_MODEL_PATH, load_model

    if os.environ.get("PYNQ_SPARSE_MODEL"):
        return load_model(os.environ["PYNQ_SPARSE_MODEL"])
    return load_model() if DEFAULT_MODEL_PATH.is_file() else random_model(0)


def is_trained(model) -> bool:
    """False for ``random_model`` stand-ins (their labels are arbitrary)."""
    return model.info.get("kind") != "random"


def make_recognizer(backend: str | None = None, model=None):
    """The recognizer the service builds: a KeywordSpotter on `backend` (default $PYNQ_SPARSE_BACKEND or "auto")
    with `model` (default :func:`default_model`).

    Without `model`, one recognizer per backend is made per process and shared (building the
    emulated overlay takes seconds); apps that use it must run one after the other.
    """
    from pynq_sparse.spotter import KeywordSpotter

    from .core.recognizer import SpotterRecognizer

    backend = backend or os.environ.get("PYNQ_SPARSE_BACKEND") or "auto"
    if model is None:
        if backend not in _SHARED:
            _SHARED[backend] = SpotterRecognizer(KeywordSpotter(model=default_model(), backend=backend))
        return _SHARED[backend]
    return SpotterRecognizer(KeywordSpotter(model=model, backend=backend))


_SHARED: dict = {}


SESSION_KEYWORDS = (("yes", "yes__370844f7_nohash_0.wav"), ("stop", "stop__370844f7_nohash_0.wav"),
                    ("right", "right__370844f7_nohash_0.wav"))


def keyword_session(gap_s: float = 1.5, seed: int = 7):
    """A recorded session: quiet noise with three real keyword clips (bundled samples) at known offsets.

    Returns float32 samples at 16 kHz and ``[(label, start_s), ...]``.
    """
    import numpy as np

    from pynq_sparse.audio import load_audio

    samples = Path(__file__).resolve().parent.parent / "pynq_sparse" / "data" / "samples"
    if not samples.is_dir():                                 # installed: the package's own data folder
        import pynq_sparse
        samples = Path(pynq_sparse.__file__).parent / "data" / "samples"
    rng = np.random.default_rng(seed)

    def noise(seconds: float):
        return (rng.standard_normal(int(seconds * 16000)) * 0.003).astype(np.float32)

    parts, marks, t = [noise(1.2)], [], 1.2
    for label, name in SESSION_KEYWORDS:
        clip = load_audio(samples / name)
        parts += [clip + noise(len(clip) / 16000), noise(gap_s)]
        marks.append((label, t))
        t += len(clip) / 16000 + gap_s
    return np.concatenate(parts), marks
