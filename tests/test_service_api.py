"""Service REST API against the real uvicorn server on a free loopback port: every endpoint and every bad input."""
from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from pynq_sparse.audio import fix_length, load_audio
from pynq_sparse.service.api.deps import get_recognizer
from pynq_sparse.service.core.config import Settings
from pynq_sparse.service.main import create_app
from pynq_sparse.service.testing import make_recognizer, running_server

SAMPLES = Path(__file__).resolve().parents[1] / "pynq_sparse" / "data" / "samples"
YES = SAMPLES / "yes__370844f7_nohash_0.wav"
MAX_UPLOAD = 256 * 1024                 # small limits so that the oversize tests stay quick
MAX_CLIP_S = 3.0


@pytest.fixture(scope="module")
def recognizer():
    return make_recognizer()


@pytest.fixture(scope="module")
def server(recognizer):
    app = create_app(Settings(MAX_UPLOAD_BYTES=MAX_UPLOAD, MAX_CLIP_SECONDS=MAX_CLIP_S, TELEMETRY_INTERVAL_S=0.2,
                              POWER_SOURCE="auto"))
    app.dependency_overrides[get_recognizer] = lambda: recognizer
    with running_server(app) as srv:
        yield srv


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def expected(recognizer, y16k: np.ndarray) -> tuple[str, np.ndarray]:
    """Label and scores the served recognizer gives a 16 kHz clip, computed directly (no HTTP)."""
    scores = recognizer.scores(recognizer.words(fix_length(y16k, 16000)[None, :]))[0]
    return recognizer.model.labels[int(np.argmax(scores))], scores


def wav_bytes(y: np.ndarray, rate: int = 16000, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def assert_error(r: httpx.Response, status: int, code: str, *words: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code, body
    for w in words:
        assert w in body["detail"], body
    return body


# --- recognition --------------------------------------------------------------------------
def test_recognize_a_wav_upload_gives_label_confidence_top_k_latency_and_backend(client, recognizer):
    r = client.post("/v1/recognize", files={"file": ("yes.wav", YES.read_bytes(), "audio/wav")})
    assert r.status_code == 200, r.text
    body = r.json()
    label, scores = expected(recognizer, load_audio(YES))
    assert body["label"] == label
    assert body["index"] == recognizer.model.labels.index(label)
    assert body["backend"] == recognizer.backend_name
    assert 0.0 < body["confidence"] <= 1.0
    assert [t["label"] for t in body["top_k"]][0] == label and len(body["top_k"]) == 3
    assert [t["score"] for t in body["top_k"]] == sorted(scores.tolist(), reverse=True)[:3]
    assert body["latency_ms"] > 0 and body["batch_size"] >= 1 and body["duration_s"] == pytest.approx(1.0)


def test_recognize_takes_any_rate_and_channel_count_as_file_or_raw_pcm(client, recognizer):
    y = load_audio(YES)
    stereo_44k = np.stack([y, y], axis=1)
    stereo_44k = load_audio(stereo_44k, 16000)  # (n,) mono again, just to check the helper round-trips
    import soxr
    y44 = soxr.resample(y, 16000, 44100).astype(np.float32)
    two = np.stack([y44, y44], axis=1)

    r = client.post("/v1/recognize", content=wav_bytes(two, 44100, "FLAC"), headers={"content-type": "audio/flac"})
    assert r.status_code == 200, r.text
    assert r.json()["duration_s"] == pytest.approx(1.0, abs=1e-3)

    pcm = (np.clip(two, -1, 1) * 32767).astype("<i2").tobytes()
    r = client.post("/v1/recognize?sample_rate=44100&channels=2", content=pcm,
                    headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.json()["duration_s"] == pytest.approx(1.0, abs=1e-3)

    r = client.post("/v1/recognize?sample_rate=16000&encoding=pcm_f32le", content=y.astype("<f4").tobytes(),
                    headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == expected(recognizer, y)[0]          # 16 kHz float: exactly the clip

    l16 = (np.clip(y, -1, 1) * 32767).astype(">i2").tobytes()
    r = client.post("/v1/recognize", content=l16, headers={"content-type": "audio/L16; rate=16000; channels=1"})
    assert r.status_code == 200, r.text
    assert r.json()["duration_s"] == pytest.approx(1.0)

    r = client.post("/v1/recognize", content=YES.read_bytes(), headers={"content-type": "audio/wav"})
    assert r.status_code == 200 and r.json()["label"] == expected(recognizer, y)[0]


def test_batch_endpoint_keeps_the_order_and_matches_single_requests(client, recognizer):
    paths = sorted(SAMPLES.glob("*.wav"))[:6]
    files = [("files", (p.name, p.read_bytes(), "audio/wav")) for p in paths]
    r = client.post("/v1/recognize/batch", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(paths)
    assert [x["filename"] for x in body["results"]] == [p.name for p in paths]
    for item, p in zip(body["results"], paths):
        assert item["label"] == expected(recognizer, load_audio(p))[0]
        assert item["backend"] == recognizer.backend_name
    assert max(x["batch_size"] for x in body["results"]) >= 2       # they went to the device together


def test_model_info(client, recognizer):
    r = client.get("/v1/model")
    assert r.status_code == 200
    body = r.json()
    m = recognizer.model
    assert body["labels"] == m.labels and body["n_classes"] == 12
    assert body["nonzero_weights"] == m.nonzero_weights
    assert [layer["name"] for layer in body["layers"]] == [layer.name for layer in m.layers]
    assert body["backend"] == recognizer.backend_name
    assert body["limits"]["max_upload_bytes"] == MAX_UPLOAD


def test_health_and_readiness(client, recognizer):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["ready"] is True and r.json()["backend"] == recognizer.backend_name


def test_telemetry_names_its_power_source_and_counts_words(client):
    client.post("/v1/recognize", files={"file": ("yes.wav", YES.read_bytes(), "audio/wav")})
    r = client.get("/v1/telemetry")
    assert r.status_code == 200
    t = r.json()
    p = t["power"]
    assert p["source"] in ("pynq-rails", "alveo-xrt", "rapl", "none")
    if p["source"] == "none":                       # this machine: no sensor, and the answer says so
        assert p["watts"] is None and p["status"].startswith("no power sensor: ")
        assert t["energy_per_word_j"] is None
    assert t["words_total"] >= 1
    assert t["queue"]["limit"] > 0 and t["queue"]["batches"] >= 1
    assert "core_counters" in t and t["core_counters_status"]


def test_prometheus_metrics(client):
    client.post("/v1/recognize", files={"file": ("yes.wav", YES.read_bytes(), "audio/wav")})
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ("pynq_sparse_http_requests_total{route=\"/v1/recognize\",status=\"200\"}",
                 "pynq_sparse_batch_size_bucket", "pynq_sparse_words_total", "pynq_sparse_queue_depth",
                 "pynq_sparse_power_sensor_available", "pynq_sparse_model_info",
                 "pynq_sparse_http_request_duration_seconds_bucket"):
        assert name in text, name


def test_openapi_docs_are_served(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert {"/v1/recognize", "/v1/recognize/batch", "/v1/model", "/v1/telemetry", "/healthz", "/readyz",
            "/metrics"} <= set(paths)
    assert set(paths["/v1/recognize"]["post"]["requestBody"]["content"]) >= {"multipart/form-data",
                                                                            "application/octet-stream"}
    r = client.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()


def test_demo_page_and_its_assets_are_served(client):
    r = client.get("/")
    assert r.status_code == 200 and 'id="keyword"' in r.text
    for asset in ("/static/app.js", "/static/pcm-worklet.js", "/static/style.css"):
        assert client.get(asset).status_code == 200, asset


# --- bad input: a specific 4xx each, and the worker keeps serving ----------------------------
def test_oversize_upload_is_413_by_content_length_and_while_streaming(client):
    big = np.zeros(MAX_UPLOAD, np.int16)                              # 2x the limit in bytes
    r = client.post("/v1/recognize", files={"file": ("big.wav", wav_bytes(big), "audio/wav")})
    assert_error(r, 413, "upload_too_large", "limit", str(MAX_UPLOAD + 64 * 1024))

    def chunks():                                                     # no Content-Length: chunked upload
        for _ in range(8):
            yield b"\0" * (64 * 1024)
    r = client.post("/v1/recognize?sample_rate=16000", content=chunks(),
                    headers={"content-type": "application/octet-stream"})
    assert_error(r, 413, "upload_too_large")


def test_undecodable_audio_is_422(client):
    r = client.post("/v1/recognize", files={"file": ("junk.wav", b"RIFF....WAVEjunkjunkjunk" * 10, "audio/wav")})
    assert_error(r, 422, "undecodable_audio", "cannot decode", "WAV, FLAC")
    r = client.post("/v1/recognize", content=b"\x00\x01" * 500, headers={"content-type": "application/octet-stream"})
    assert_error(r, 422, "undecodable_audio", "sample_rate")           # no rate: taken as a file, and says so


def test_empty_audio_is_422(client):
    r = client.post("/v1/recognize", files={"file": ("empty.wav", b"", "audio/wav")})
    assert_error(r, 422, "empty_audio", "empty")
    r = client.post("/v1/recognize", files={"file": ("zero.wav", wav_bytes(np.zeros(0, np.float32)), "audio/wav")})
    assert_error(r, 422, "empty_audio", "no samples")
    r = client.post("/v1/recognize?sample_rate=16000", content=b"", headers={"content-type": "application/octet-stream"})
    assert_error(r, 422, "empty_audio")


def test_non_finite_samples_are_422(client):
    y = load_audio(YES)
    y[100] = np.nan
    r = client.post("/v1/recognize", files={"file": ("nan.wav", wav_bytes(y, subtype="FLOAT"), "audio/wav")})
    assert_error(r, 422, "non_finite_audio", "NaN")
    y[100] = np.inf
    r = client.post("/v1/recognize?sample_rate=16000&encoding=pcm_f32le", content=y.astype("<f4").tobytes(),
                    headers={"content-type": "application/octet-stream"})
    assert_error(r, 422, "non_finite_audio")


def test_wrong_content_type_is_415(client):
    r = client.post("/v1/recognize", content=b"hello", headers={"content-type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type", "text/plain", "multipart/form-data")
    r = client.post("/v1/recognize", content=json.dumps({"file": "x"}), headers={"content-type": "application/json"})
    assert_error(r, 415, "unsupported_media_type")
    r = client.post("/v1/recognize/batch", content=YES.read_bytes(), headers={"content-type": "audio/wav"})
    assert_error(r, 415, "unsupported_media_type", "files")


def test_clip_longer_than_allowed_is_413(client):
    long = np.zeros(int(16000 * (MAX_CLIP_S + 1)), np.int16)
    r = client.post("/v1/recognize", files={"file": ("long.wav", wav_bytes(long), "audio/wav")})
    assert_error(r, 413, "clip_too_long", f"at most {MAX_CLIP_S:g} s")
    r = client.post("/v1/recognize?sample_rate=8000", content=np.zeros(8000 * 5, "<i2").tobytes(),
                    headers={"content-type": "application/octet-stream"})
    assert_error(r, 413, "clip_too_long", "5.00 s")


def test_missing_field_bad_pcm_and_bad_parameters_are_4xx(client):
    r = client.post("/v1/recognize", files={"other": ("yes.wav", YES.read_bytes(), "audio/wav")})
    assert_error(r, 422, "missing_file", "'file'")
    r = client.post("/v1/recognize", files={"file": (None, "not a file")})          # a text field, not a file
    assert_error(r, 422, "missing_file", "text")
    r = client.post("/v1/recognize?sample_rate=16000&channels=2", content=b"\0" * 6,
                    headers={"content-type": "application/octet-stream"})
    assert_error(r, 422, "bad_pcm", "whole number")
    r = client.post("/v1/recognize?sample_rate=0", content=b"\0" * 6, headers={"content-type": "application/octet-stream"})
    assert_error(r, 422, "bad_parameter", "sample_rate")
    r = client.post("/v1/recognize?sample_rate=16000&encoding=mp3", content=b"\0" * 6,
                    headers={"content-type": "application/octet-stream"})
    assert_error(r, 422, "bad_parameter", "encoding")
    r = client.post("/v1/recognize/batch", files=[("files", ("a.wav", b"", "audio/wav"))])
    assert_error(r, 422, "empty_audio", "file 0")
    r = client.post("/v1/recognize/batch", data={"x": "1"}, files=[("other", ("a.wav", b"1", "audio/wav"))])
    assert_error(r, 422, "missing_file", "'files'")


def test_bad_batch_item_is_named_and_batch_limits_hold(client):
    files = [("files", ("good.wav", YES.read_bytes(), "audio/wav")), ("files", ("bad.wav", b"xx", "audio/wav"))]
    r = client.post("/v1/recognize/batch", files=files)
    assert_error(r, 422, "undecodable_audio", "file 1 ('bad.wav')")
    big = wav_bytes(np.zeros(MAX_UPLOAD, np.int16))
    r = client.post("/v1/recognize/batch", files=[("files", ("big.wav", big, "audio/wav"))])
    assert_error(r, 413, "upload_too_large", "file 0")


def test_nothing_above_crashed_the_worker(client, recognizer):
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True
    r = client.post("/v1/recognize", files={"file": ("yes.wav", YES.read_bytes(), "audio/wav")})
    assert r.status_code == 200 and r.json()["label"] == expected(recognizer, load_audio(YES))[0]
    text = client.get("/metrics").text
    assert 'pynq_sparse_bad_input_total{code="undecodable_audio"}' in text


# --- authentication ---------------------------------------------------------------------------
def test_api_key_authentication_when_a_key_is_set(recognizer):
    app = create_app(Settings(API_KEY="s3cret-key"))
    app.dependency_overrides[get_recognizer] = lambda: recognizer
    with running_server(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        files = {"file": ("yes.wav", YES.read_bytes(), "audio/wav")}
        r = c.post("/v1/recognize", files=files)
        assert_error(r, 401, "unauthorized", "missing API key", "X-API-Key")
        assert r.headers["www-authenticate"] == "X-API-Key"
        r = c.post("/v1/recognize", files=files, headers={"X-API-Key": "wrong"})
        assert_error(r, 401, "unauthorized", "wrong API key")
        r = c.post("/v1/recognize", files=files, headers={"X-API-Key": "s3cret-key"})
        assert r.status_code == 200 and r.json()["label"]
        for path in ("/v1/model", "/v1/telemetry", "/metrics"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"X-API-Key": "s3cret-key"}).status_code == 200, path
        for path in ("/healthz", "/readyz", "/"):                      # probes and the page stay open
            assert c.get(path).status_code == 200, path

        from websockets.sync.client import connect
        from websockets.exceptions import ConnectionClosed
        with connect(srv.ws_url + "/v1/stream") as ws:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        assert info.value.rcvd.code == 1008 and "API key" in info.value.rcvd.reason


def test_authentication_is_off_by_default():
    assert Settings().auth_enabled is False
    assert Settings.from_env({"PYNQ_SPARSE_API_KEY": "k"}).auth_enabled is True
