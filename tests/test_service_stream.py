"""WebSocket /v1/stream against the real server: a recorded session of real keywords at known offsets."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soxr
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from pynq_sparse.service.api.deps import get_recognizer
from pynq_sparse.service.core.config import Settings
from pynq_sparse.service.main import create_app
from pynq_sparse.service.testing import is_trained, keyword_session, make_recognizer, running_server
from pynq_sparse.spotter import StreamingDetector

RATE = 16000
session = keyword_session          # quiet noise with "yes", "stop", "right" at known offsets


@pytest.fixture(scope="module")
def recognizer():
    return make_recognizer()


@pytest.fixture(scope="module")
def server(recognizer):
    app = create_app(Settings(POWER_SOURCE="none"))
    app.dependency_overrides[get_recognizer] = lambda: recognizer
    with running_server(app) as srv:
        yield srv


def stream(url: str, pcm: bytes, chunk_bytes: int, query: str = "") -> list[dict]:
    """Send `pcm` in chunks, then "end"; every JSON message the server pushed, in order."""
    messages = []
    with connect(url + "/v1/stream" + query, max_size=None) as ws:
        messages.append(json.loads(ws.recv(timeout=30)))
        for a in range(0, len(pcm), chunk_bytes):
            ws.send(pcm[a:a + chunk_bytes])
        ws.send(json.dumps({"type": "end"}))
        try:
            while True:
                messages.append(json.loads(ws.recv(timeout=60)))
                if messages[-1]["type"] == "end":
                    break
        except ConnectionClosed:
            pass
    return messages


def offline(recognizer, y: np.ndarray, rate: int = RATE, chunk: int = 1600) -> list[tuple[str, float]]:
    """The detections the same StreamingDetector gives in-process (no service)."""
    det = StreamingDetector(recognizer.spotter())
    out = []
    for a in range(0, len(y), chunk):
        out += [(d.label, d.time_s) for d in det.feed(y[a:a + chunk], rate)]
    return out


def test_stream_detects_the_keywords_of_a_recording_at_the_right_times(server, recognizer):
    y, marks = session()
    pcm = (np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()
    msgs = stream(server.ws_url, pcm, 3200)                    # 0.1 s chunks of int16
    ready, end = msgs[0], msgs[-1]
    assert ready["type"] == "ready" and ready["sample_rate"] == 16000 and ready["labels"] == recognizer.model.labels
    assert ready["backend"] == recognizer.backend_name
    assert end["type"] == "end" and end["time_s"] == pytest.approx(len(y) / RATE, abs=1e-3)
    levels = [m for m in msgs if m["type"] == "level"]
    assert levels and max(m["rms_dbfs"] for m in levels) > -40        # the audio arrived, not silence
    got = [(m["label"], m["time_s"]) for m in msgs if m["type"] == "detection"]
    assert end["detections"] == len(got)

    # the service streams exactly what the detector finds in-process
    want = offline(recognizer, y)
    errors = [m for m in msgs if m["type"] == "error"]
    assert not errors, errors
    assert [label for label, _ in got] == [label for label, _ in want], (got, want)
    assert [t for _, t in got] == pytest.approx([t for _, t in want], abs=1e-6)

    if is_trained(recognizer.model):
        # a trained model finds each keyword once, while (not before, not long after) it is spoken
        assert [label for label, _ in got] == [label for label, _ in marks], got
        for (label, t), (_, start) in zip(got, marks):
            assert start + 0.3 <= t <= start + 1.8, (label, t, start)


def test_stream_takes_any_rate_channels_and_encoding(server, recognizer):
    y, marks = session()
    y44 = soxr.resample(y, RATE, 44100).astype(np.float32)
    stereo = np.stack([y44, y44], axis=1)
    msgs = stream(server.ws_url, stereo.astype("<f4").tobytes(), 4410 * 2 * 4,
                  "?sample_rate=44100&channels=2&encoding=pcm_f32le")
    assert msgs[0]["type"] == "ready" and msgs[0]["sample_rate"] == 44100 and msgs[0]["channels"] == 2
    assert msgs[-1]["type"] == "end" and msgs[-1]["time_s"] == pytest.approx(len(y) / RATE, abs=0.01)
    got = [m["label"] for m in msgs if m["type"] == "detection"]
    if is_trained(recognizer.model):
        assert got == [label for label, _ in marks]


def test_stream_refuses_bad_pcm_and_huge_chunks_with_close_codes(server):
    with connect(server.ws_url + "/v1/stream?channels=2") as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        ws.send(b"\x00" * 6)                                  # not whole 2-channel int16 frames
        err = json.loads(ws.recv(timeout=30))
        assert err["type"] == "error" and err["code"] == "bad_pcm" and "whole number" in err["detail"]
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=30)
    assert info.value.rcvd.code == 1007

    with connect(server.ws_url + "/v1/stream?encoding=pcm_f32le") as ws:
        ws.recv(timeout=30)
        ws.send(np.array([0.0, np.nan], "<f4").tobytes())
        err = json.loads(ws.recv(timeout=30))
        assert err["code"] == "non_finite_audio"

    with connect(server.ws_url + "/v1/stream", max_size=None) as ws:
        ws.recv(timeout=30)
        ws.send(b"\x00" * (2 * 1024 * 1024))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=30)
    assert info.value.rcvd.code == 1009

    from websockets.exceptions import InvalidStatus
    with pytest.raises(InvalidStatus) as info:                 # bad query parameters: refused at the handshake
        connect(server.ws_url + "/v1/stream?sample_rate=-5")
    assert info.value.response.status_code == 403


def test_stream_and_requests_share_the_device_queue(server):
    import httpx
    y, _ = session()
    pcm = (np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()
    before = httpx.get(server.url + "/v1/telemetry").json()["words_total"]
    stream(server.ws_url, pcm, 16000)
    after = httpx.get(server.url + "/v1/telemetry").json()["words_total"]
    windows = int((len(y) - RATE) / 1600) + 1                 # 1 s windows every 0.1 s
    assert after - before == windows
    text = httpx.get(server.url + "/metrics").text
    assert "pynq_sparse_stream_connections 0.0" in text
