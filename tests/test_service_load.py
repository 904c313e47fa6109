"""Concurrency: micro-batching, overload (503 + Retry-After), graceful shutdown that drains in-flight work."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from pynq_sparse.architecture import random_model
from pynq_sparse.model_file import save_model
from pynq_sparse.service.api.deps import get_recognizer
from pynq_sparse.service.core.batcher import MicroBatcher, QueueFull, ShuttingDown
from pynq_sparse.service.core.config import Settings
from pynq_sparse.service.main import create_app
from pynq_sparse.service.testing import free_loopback_socket, make_recognizer, running_server

REPO = Path(__file__).resolve().parents[1]
YES = REPO / "pynq_sparse" / "data" / "samples" / "yes__370844f7_nohash_0.wav"


class SlowRecognizer:
    """A real recognizer whose device takes `delay_s` longer per batch (to build a queue on purpose)."""

    def __init__(self, inner, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.model, self.backend_name = inner.model, inner.backend_name
        self.batch_sizes: list[int] = []

    def words(self, clips):
        return self.inner.words(clips)

    def scores(self, words):
        self.batch_sizes.append(len(words))
        time.sleep(self.delay_s)
        return self.inner.scores(words)

    def counters(self):
        return None

    def spotter(self):
        return None


@pytest.fixture(scope="module")
def recognizer():
    return make_recognizer()


async def post_many(url: str, n: int, body: bytes) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        return await asyncio.gather(*[c.post("/v1/recognize", files={"file": ("yes.wav", body, "audio/wav")})
                                      for _ in range(n)])


# --- the batcher itself ------------------------------------------------------------------------
def test_batcher_gathers_concurrent_items_into_batches_and_bounds_its_queue():
    sizes = []
    gate = threading.Event()

    def process(items):
        gate.wait(5)
        sizes.append(len(items))
        return [x * 2 if x >= 0 else ValueError(f"bad {x}") for x in items]

    async def scenario():
        b = MicroBatcher(process, max_batch=4, deadline_s=0.05, limit=6).start()
        try:
            first = b.submit(1)                     # the worker takes it and blocks on the gate
            await asyncio.sleep(0.1)
            futs = b.submit_many([2, 3, -4, 5, 6, 7])  # queue: 6 of 6
            with pytest.raises(QueueFull):
                b.submit(8)
            gate.set()
            results = await asyncio.gather(first, *futs, return_exceptions=True)
        finally:
            b.stop()
        with pytest.raises(ShuttingDown):
            b.submit(9)
        return results

    results = asyncio.run(scenario())
    assert [r[0] if isinstance(r, tuple) else type(r) for r in results] == [2, 4, 6, ValueError, 10, 12, 14]
    assert results[1][1].size == 4 and results[5][1].size == 2          # batches of 4 then 2
    assert sizes == [1, 4, 2]


def test_batcher_stop_drains_queued_items():
    def process(items):
        time.sleep(0.05)
        return items

    async def scenario():
        b = MicroBatcher(process, max_batch=2, deadline_s=0.001, limit=100).start()
        futs = b.submit_many(list(range(10)))
        await asyncio.sleep(0.01)
        await asyncio.get_running_loop().run_in_executor(None, b.stop)      # drain=True
        return await asyncio.gather(*futs)

    assert [r[0] for r in asyncio.run(scenario())] == list(range(10))


# --- the real server -------------------------------------------------------------------------------
def test_concurrent_requests_are_gathered_into_device_batches(recognizer):
    slow = SlowRecognizer(recognizer, 0.05)
    app = create_app(Settings(DEVICE_BATCH=16, BATCH_DEADLINE_MS=5, QUEUE_LIMIT=256))
    app.dependency_overrides[get_recognizer] = lambda: slow
    with running_server(app) as srv:
        slow.batch_sizes.clear()                      # forget the warm-up batch of the engine's start
        responses = asyncio.run(post_many(srv.url, 40, YES.read_bytes()))
    assert [r.status_code for r in responses] == [200] * 40
    labels = {r.json()["label"] for r in responses}
    assert len(labels) == 1
    assert max(r.json()["batch_size"] for r in responses) > 1
    assert sum(slow.batch_sizes) == 40 and max(slow.batch_sizes) <= 16 and len(slow.batch_sizes) < 40


def test_overload_answers_503_with_retry_after_and_recovers(recognizer):
    slow = SlowRecognizer(recognizer, 0.25)
    app = create_app(Settings(DEVICE_BATCH=2, BATCH_DEADLINE_MS=1, QUEUE_LIMIT=4, RETRY_AFTER_S=2))
    app.dependency_overrides[get_recognizer] = lambda: slow
    with running_server(app) as srv:
        responses = asyncio.run(post_many(srv.url, 24, YES.read_bytes()))
        codes = [r.status_code for r in responses]
        assert set(codes) == {200, 503}, codes
        assert codes.count(200) >= 4 and codes.count(503) >= 8
        for r in responses:
            if r.status_code == 503:
                assert r.headers["retry-after"] == "2"
                assert r.json()["code"] == "overloaded" and "busy" in r.json()["detail"]
        # the queue emptied: the service answers again, and counted what it refused
        r = httpx.post(srv.url + "/v1/recognize", files={"file": ("yes.wav", YES.read_bytes(), "audio/wav")},
                       timeout=30)
        assert r.status_code == 200
        metrics = httpx.get(srv.url + "/metrics").text
        assert 'pynq_sparse_rejected_total{reason="queue_full"}' in metrics


def test_a_device_failure_is_a_503_for_its_batch_and_the_worker_goes_on(recognizer):
    from pynq_sparse.errors import DmaTimeoutError

    class FailOnce(SlowRecognizer):
        failed = False

        def scores(self, words):
            if not self.failed and len(self.batch_sizes) >= 1:       # after the engine's warm-up batch
                FailOnce.failed = True
                raise DmaTimeoutError("S2MM transfer did not complete within 1.0 s")
            return super().scores(words)

    flaky = FailOnce(recognizer, 0.0)
    app = create_app(Settings())
    app.dependency_overrides[get_recognizer] = lambda: flaky
    with running_server(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        files = {"file": ("yes.wav", YES.read_bytes(), "audio/wav")}
        r = c.post("/v1/recognize", files=files)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["code"] == "device_error" and "S2MM" in r.json()["detail"]
        r = c.post("/v1/recognize", files=files)
        assert r.status_code == 200 and c.get("/readyz").status_code == 200


def test_in_thread_shutdown_drains_requests_already_queued(recognizer):
    slow = SlowRecognizer(recognizer, 0.2)
    app = create_app(Settings(DEVICE_BATCH=2, BATCH_DEADLINE_MS=1, QUEUE_LIMIT=64))
    app.dependency_overrides[get_recognizer] = lambda: slow
    results: list = []
    with running_server(app) as srv:
        slow.batch_sizes.clear()                      # forget the warm-up batch of the engine's start
        t = threading.Thread(target=lambda: results.extend(asyncio.run(post_many(srv.url, 8, YES.read_bytes()))))
        t.start()
        deadline = time.monotonic() + 10
        while not slow.batch_sizes and time.monotonic() < deadline:   # the first batch is on the device
            time.sleep(0.01)
        srv.server.should_exit = True                 # what uvicorn's SIGTERM handler does
        t.join(30)
    assert [r.status_code for r in results] == [200] * 8


def test_sigterm_drains_in_flight_work_then_exits_cleanly(tmp_path):
    """`pynq-sparse serve` in its own process: clips queued when SIGTERM arrives all get their answer.

    A long batch deadline (2 s) keeps six requests waiting in the queue; SIGTERM must neither drop
    them nor wait out the deadline.
    """
    model_path = save_model(random_model(0), tmp_path / "random.pskw")
    sock = free_loopback_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = dict(os.environ, PYNQ_SPARSE_MODEL=str(model_path), PYNQ_SPARSE_BATCH_DEADLINE_MS="2000",
               PYNQ_SPARSE_DEVICE_BATCH="64", PYNQ_SPARSE_POWER_SOURCE="none")
    proc = subprocess.Popen([sys.executable, "-m", "pynq_sparse.service", "serve", "--port", str(port),
                             "--backend", "cpu", "--log-level", "warning"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        results: list = []
        t = threading.Thread(target=lambda: results.extend(asyncio.run(post_many(url, 6, YES.read_bytes()))))
        t.start()
        deadline = time.monotonic() + 30                  # wait until the six clips wait in the queue
        while time.monotonic() < deadline:
            text = httpx.get(url + "/metrics", timeout=5).text
            depth = [line for line in text.splitlines() if line.startswith("pynq_sparse_queue_depth ")]
            if depth and float(depth[0].split()[1]) >= 6:
                break
            time.sleep(0.02)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        t.join(60)
        answered_after = time.monotonic() - sent
        out = proc.communicate(timeout=60)[0].decode()
        assert proc.returncode == 0, out
        assert [r.status_code for r in results] == [200] * 6, out
        assert all(r.json()["batch_size"] == 6 for r in results)     # drained as one batch, at once
        assert answered_after < 1.5                                   # without waiting out the 2 s deadline
        with pytest.raises(httpx.TransportError):           # and it no longer listens
            httpx.get(url + "/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
