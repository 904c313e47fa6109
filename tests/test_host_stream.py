"""The host driver (pynq_sparse.host) on the emulated device: bit-exact, in order, double-buffered, reloadable.

Real pynq.Overlay and pynq.lib.dma.DMA throughout; expected scores come from the
golden reference (pynq_sparse.golden).
"""
from __future__ import annotations

import argparse
import csv
import gc

import numpy as np
import pytest

from pynq_sparse import core_interface as ci
from pynq_sparse.architecture import random_model
from pynq_sparse.emulation import EmulatedDevice
from pynq_sparse.errors import CoreError, ShapeError
from pynq_sparse.golden import golden_scores, predict
from pynq_sparse.host import Dispatcher, DmaStream, Results, throughput_test
from pynq_sparse.model_file import DEFAULT_MODEL_PATH, load_model, model_from_bytes, model_to_bytes
from pynq_sparse.overlay import SparseKwsOverlay

N_CLIPS = 96


@pytest.fixture(scope="module")
def model():
    if DEFAULT_MODEL_PATH.is_file():
        return load_model()
    return model_from_bytes(model_to_bytes(random_model(7)))


@pytest.fixture(scope="module")
def clip_words(gsc_dev):
    """int8 words of N_CLIPS real clips, 8 per class, from the shared dev set."""
    from pynq_sparse.frontend import words_from_audio
    per_label: dict[str, list[str]] = {}
    with open(gsc_dev / "manifest.csv") as f:
        for row in csv.DictReader(f):
            per_label.setdefault(row["label"], []).append(row["relpath"])
    paths = [str(gsc_dev / p) for rows in per_label.values() if len(rows) > 50 for p in sorted(rows)[:8]]
    assert len(paths) >= N_CLIPS
    return words_from_audio(paths[:N_CLIPS])


@pytest.fixture(scope="module")
def expected(model, clip_words):
    """Golden scores of every clip word (computed once: the golden model is slow by design)."""
    return golden_scores(model, clip_words)


@pytest.fixture(scope="module")
def ultra96(model):
    return SparseKwsOverlay(device=EmulatedDevice("ultra96v2"), model=model, batch_size=16)


@pytest.fixture(scope="module")
def u250(model):
    return SparseKwsOverlay(device=EmulatedDevice("u250"), model=model, batch_size=8)


def test_real_clips_are_bit_exact_with_the_golden_model(ultra96, model, clip_words, expected):
    res = ultra96.execute_words(clip_words)
    assert np.array_equal(res.scores, expected)
    assert np.array_equal(res.classes, predict(expected))
    assert np.all(res.model_ids == model.model_id)
    assert len(np.unique(expected, axis=0)) > N_CLIPS // 2      # distinct rows: a reordering would show


def test_order_is_kept_across_engines_and_copies(u250, clip_words, expected):
    """4 engines x 5 copies, a batch that is no multiple of anything: results in input order."""
    words = clip_words[:83]
    for c in u250.cores:
        c.reset()
    res = u250.execute_words(words)
    assert np.array_equal(res.scores, expected[:83])
    slices = u250.dispatcher.split(len(words))
    assert slices == [(0, 21), (21, 21), (42, 21), (63, 20)]
    for core, (start, count) in zip(u250.cores, slices):
        c = core.counters
        assert c["words_in"] == count
        assert [x["words"] for x in c["copies"]] == [len(range(i, count, 5)) for i in range(5)]   # round robin
        assert np.array_equal(res.seq[start:start + count], np.arange(count))
    ends = [start + min(k + 8, count) - 1 for start, count in slices for k in range(0, count, 8)]
    assert list(np.flatnonzero(res.tlast)) == ends            # TLAST closes every 8-word transfer


def test_batch_sizes_and_chunking(ultra96, clip_words, expected):
    words = clip_words[:37]
    expected = expected[:37]
    device = ultra96.device
    for bs in (1, 5, 16, 37, 64):
        ultra96.batch_size = bs
        assert np.array_equal(ultra96.execute(words), expected), bs
        gc.collect()
        assert device.memory.n_buffers == 4                  # two in, two out: allocated once per size
    assert ultra96.execute_words(np.empty((0, 32, 32), np.int8)).scores.shape == (0, 12)
    assert np.array_equal(ultra96.execute(words[0]), expected[:1])          # one [32, 32] word
    with pytest.raises(ShapeError):
        ultra96.execute(np.zeros((2, 32, 31), np.int8))
    with pytest.raises(ShapeError):
        ultra96.execute(np.full((1, 32, 32), -3, np.int8))
    with pytest.raises(ValueError, match="batch_size must be 1.."):
        ultra96.batch_size = 70_000
    ultra96.batch_size = 16


def test_double_buffering_overlaps_send_and_receive(ultra96, clip_words):
    """Chunk i+1 is sent before chunk i has been received; never more than two in flight."""
    stream = ultra96.dispatcher.streams[0]
    events = []
    send, recv = stream._send.transfer, stream._recv.transfer

    def log_send(buf, **kw):
        events.append(("send", int(kw["nbytes"]) // ci.WORD_BYTES))
        return send(buf, **kw)

    def log_recv(buf, **kw):
        events.append(("recv", int(kw["nbytes"]) // ci.RESULT_BYTES))
        return recv(buf, **kw)

    stream._send.transfer, stream._recv.transfer = log_send, log_recv
    ultra96.device.dma_model(0).set_latency(mm2s=1, s2mm=4)       # results take longer than input
    try:
        stream.run(clip_words[:40])                # chunks of 16, 16, 8
    finally:
        del stream._send.transfer, stream._recv.transfer
        ultra96.device.dma_model(0).set_latency(0, 0)
    assert events[:3] == [("recv", 16), ("send", 16), ("send", 16)]       # send 1 before receive 1 is armed
    assert [e for e in events if e[0] == "send"] == [("send", 16), ("send", 16), ("send", 8)]
    st = stream.stats
    assert st.words >= 40 and st.pack > 0 and st.unpack > 0


def test_hot_reload_and_stale_model_detection(ultra96, model, clip_words, expected):
    words = clip_words[:10]
    other = model_from_bytes(model_to_bytes(random_model(99)))
    ultra96.load_model(other)
    res = ultra96.execute_words(words)
    assert np.array_equal(res.scores, golden_scores(other, words)) and np.all(res.model_ids == other.model_id)
    ultra96.sparse_kws_0.load_model(model)          # behind the overlay's back: results carry another id
    with pytest.raises(CoreError, match="reloaded while words were in flight"):
        ultra96.execute(words)
    ultra96.load_model(model)
    assert np.array_equal(ultra96.execute(words), expected[:10])


def test_dispatcher_splits_by_copies_and_checks_inputs(u250):
    disp = Dispatcher(u250.dispatcher.streams, copies=[1, 3, 0 + 1, 1])
    assert disp.split(12) == [(0, 2), (2, 6), (8, 2), (10, 2)]
    assert disp.split(2) == [(0, 1), (1, 1), (2, 0), (2, 0)]
    with pytest.raises(ValueError):
        Dispatcher([])
    with pytest.raises(ValueError):
        Dispatcher(u250.dispatcher.streams, copies=[1])


def test_throughput_test_reports_finn_keys(model):
    ol = SparseKwsOverlay(device=EmulatedDevice("ultra96v2", compute=False), model=model)
    res = throughput_test(ol, batch_size=256, repeats=1)
    for key in ("runtime[ms]", "throughput[words/s]", "DRAM_in_bandwidth[MB/s]", "DRAM_out_bandwidth[MB/s]",
                "fclk[mhz]", "batch_size", "fold_input[ms]", "pack_input[ms]", "copy_input_data_to_device[ms]",
                "copy_output_data_from_device[ms]", "unpack_output[ms]", "unfold_output[ms]", "host_path[words/s]"):
        assert key in res, key
    assert res["batch_size"] == 256 and res["fclk[mhz]"] == pytest.approx(187.498, abs=1e-3)
    assert res["DRAM_in_bandwidth[MB/s]"] == pytest.approx(res["throughput[words/s]"] * 1024 / 1e6)
    assert res["throughput[words/s]"] > 1000 and res["host_path[words/s]"] > 1000
    res = ol.execute_words(np.zeros((3, 32, 32), np.int8))          # compute off: zero scores, real framing
    assert isinstance(res, Results) and not res.scores.any() and list(res.tlast) == [False, False, True]


def test_stream_without_core_still_guards_its_waits(model):
    ol = SparseKwsOverlay(device=EmulatedDevice("ultra96v2", compute=False), model=model)
    stream = DmaStream(ol.axi_dma_0, batch_size=4, timeout_s=0.1)     # no core: fixed deadline
    assert stream.run(np.zeros((6, 32, 32), np.int8)).scores.shape == (6, 12)
    ol.device.inject_fault("dma_stall", channel="s2mm")
    from pynq_sparse.errors import DmaTimeoutError
    with pytest.raises(DmaTimeoutError):
        stream.run(np.zeros((2, 32, 32), np.int8))
    stream.close()


def test_host_bench_runs(tmp_path, model):
    from pynq_sparse.bench import host as bench
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = tmp_path / "host.md"
    args = parser.parse_args(["--boards", "ultra96v2", "--batches", "64", "--e2e-batches", "1",
                              "--repeats", "1", "--out", str(out)])
    assert bench.run(args) == 0
    text = out.read_text()
    assert "Host path, compute off" in text and "| ultra96v2 | 1 | 1 | 64 |" in text and "End to end" in text


@pytest.fixture
def eager_packer(monkeypatch):
    """The shared packer with a threshold low enough that test-sized chunks are split over threads."""
    from pynq_sparse.host import PACKER
    monkeypatch.setattr(PACKER, "split_bytes", 32 * ci.WORD_BYTES)
    monkeypatch.setattr(PACKER, "workers", 3)
    return PACKER


def test_packer_splits_big_chunks_over_threads_and_reports_errors():
    from pynq_sparse.host import Packer
    rng = np.random.default_rng(3)
    words = rng.integers(0, 128, (1500, 32, 32), dtype=np.int8)          # 1.5 MB: split into parts
    packer = Packer(workers=3)
    try:
        buf = np.zeros((2000, 32, 32), np.int8)
        assert packer.pack(words, buf) > 0
        assert packer._pool is not None                                 # the workers took parts
        assert np.array_equal(buf[:1500], words) and not buf[1500:].any()
        packer.pack(words[:3], buf[1500:])                               # small: the caller's thread only
        assert np.array_equal(buf[1500:1503], words[:3])
        with pytest.raises(ShapeError, match="cannot pack"):
            packer.pack(words, buf[:100])
        frozen = np.zeros((1500, 32, 32), np.int8)
        frozen.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):                # a part fails: the error comes back
            packer.pack(words, frozen)
    finally:
        packer.close()


def test_threaded_packing_is_bit_exact_across_engines(model, clip_words, expected, eager_packer):
    """Chunks split over 3 threads while 4 engines stream: exact and in input order."""
    ol = SparseKwsOverlay(device=EmulatedDevice("u250"), model=model, batch_size=40)
    words = np.concatenate([clip_words, clip_words[::-1], clip_words[:50]])          # 242 words
    want = np.concatenate([expected, expected[::-1], expected[:50]])
    res = ol.execute_words(words)
    assert np.array_equal(res.scores, want)
    assert eager_packer._pool is not None
    st = ol.dispatcher.stats
    assert st.words == len(words) and st.pack > 0


def test_a_fault_while_packing_in_parts_is_reported_in_time(model, clip_words, expected, eager_packer):
    """An engine stalls while the others pack in parts: its error comes in time, the next run is exact."""
    from pynq_sparse.errors import DmaTimeoutError
    ol = SparseKwsOverlay(device=EmulatedDevice("u250"), model=model, batch_size=40, timeout_s=0.25)
    ol.device.inject_fault("dma_stall", engine=1, channel="mm2s")
    with pytest.raises(DmaTimeoutError, match="axi_dma_1 MM2S"):
        ol.execute_words(np.concatenate([clip_words, clip_words]))
    assert np.array_equal(ol.execute_words(clip_words).scores, expected)


def test_words_in_a_dma_buffer_are_sent_in_place(model, clip_words, expected):
    """overlay.allocate_words: the engines read their slices of it; nothing is packed."""
    ol = SparseKwsOverlay(device=EmulatedDevice("u250"), model=model, batch_size=8)
    buf = ol.allocate_words(len(clip_words))
    buf[:] = clip_words
    disp = ol.dispatcher
    for stream in disp.streams:                     # the driver's own input buffers must stay unused
        for b in stream.input_buffers:
            b[:] = 99
    res = ol.execute_words(buf)
    assert np.array_equal(res.scores, expected)
    assert disp.stats.pack == 0 and disp.stats.words == len(clip_words)
    assert all((np.asarray(b) == 99).all() for stream in disp.streams for b in stream.input_buffers)
    # a buffer of another device is no DMA buffer here: packed as any array, same results
    other = SparseKwsOverlay(device=EmulatedDevice("u250"), model=model, batch_size=8).allocate_words(10)
    other[:] = clip_words[:10]
    disp.reset_stats()
    assert np.array_equal(ol.execute(other), expected[:10]) and disp.stats.pack > 0


def test_a_stall_in_place_is_reported_and_recovered(model, clip_words, expected):
    from pynq_sparse.errors import DmaTimeoutError
    ol = SparseKwsOverlay(device=EmulatedDevice("ultra96v2"), model=model, batch_size=16, timeout_s=0.25)
    buf = ol.allocate_words(len(clip_words))
    buf[:] = clip_words
    ol.device.inject_fault("dma_stall", engine=0, channel="mm2s")
    with pytest.raises(DmaTimeoutError, match="MM2S"):
        ol.execute_words(buf)
    assert np.array_equal(ol.execute(buf), expected)
