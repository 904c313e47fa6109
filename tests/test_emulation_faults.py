"""Injected faults end in their specific errors within their timeouts; the device works again afterwards.

Real pynq.Overlay and pynq.lib.dma.DMA on the emulated device; PYNQ's own wait()
would spin forever on the stalled and framing cases.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from pynq_sparse.architecture import random_model
from pynq_sparse.emulation import EmulatedDevice
from pynq_sparse.errors import CoreError, DmaError, DmaTimeoutError
from pynq_sparse.golden import golden_scores
from pynq_sparse.model_file import model_from_bytes, model_to_bytes
from pynq_sparse.overlay import SparseKwsOverlay

TIMEOUT = 0.25


@pytest.fixture(scope="module")
def model():
    return model_from_bytes(model_to_bytes(random_model(21)))


@pytest.fixture(scope="module")
def words():
    return np.random.default_rng(5).integers(0, 128, (12, 32, 32), dtype=np.int8)


@pytest.fixture(scope="module")
def expected(model, words):
    return golden_scores(model, words)


@pytest.fixture(scope="module")
def overlay(model):
    """The ZCU104 design: one DMA engine, 2 copies (a fault can hit one copy of the round robin)."""
    return SparseKwsOverlay(device=EmulatedDevice("zcu104"), model=model, batch_size=4, timeout_s=TIMEOUT)


FAULTS = [
    ("dma_stall", {"channel": "s2mm"}, DmaTimeoutError, "axi_dma_0 S2MM transfer of 256 bytes"),
    ("dma_stall", {"channel": "mm2s"}, DmaTimeoutError, "axi_dma_0 MM2S transfer of 4096 bytes"),
    ("tlast", {"at_byte": 40}, DmaError, "framing error: TLAST inside a word"),
    ("weight_corruption", {"copy": 1}, CoreError, "weight memory parity error"),
]


@pytest.mark.parametrize("kind,params,error,message", FAULTS, ids=[f[0] + "-" + str(f[1]) for f in FAULTS])
def test_fault_raises_its_error_in_time_and_device_recovers(overlay, model, words, expected, kind, params, error,
                                                            message):
    assert np.array_equal(overlay.execute(words), expected)
    overlay.device.inject_fault(kind, engine=0, **params)
    t0 = time.perf_counter()
    with pytest.raises(error, match=message) as info:
        overlay.execute(words)
    elapsed = time.perf_counter() - t0
    # no-progress timeout: at most two windows (the first may end while words still flow)
    assert elapsed < 2 * TIMEOUT + 1.0, f"{kind} took {elapsed:.2f} s"
    if error is DmaTimeoutError:
        assert elapsed >= TIMEOUT and "the engine was reset" in str(info.value)
    if kind == "weight_corruption":
        with pytest.raises(CoreError, match="parity"):     # the memory stays corrupt until reloaded
            overlay.execute(words)
        overlay.load_model(model)
    assert np.array_equal(overlay.execute(words), expected)
    assert not overlay.sparse_kws_0.status.error


def test_silent_corruption_changes_only_that_copys_results(overlay, model, words, expected):
    """The emulated core computes from the weights it holds: copy 1 gets words 1, 3, 5, ..."""
    overlay.sparse_kws_0.reset()                                   # sequence numbers restart at 0
    overlay.device.inject_fault("weight_corruption", copy=1, parity=False, field_name="bias", index=3, bit=20)
    got = overlay.execute(words)                                   # no parity error: nothing is flagged
    differs = np.flatnonzero((got != expected).any(axis=1))
    assert list(differs) == list(range(1, len(words), 2))
    assert np.array_equal(got[::2], expected[::2])
    assert np.all(np.abs(got[1::2, 3] - expected[1::2, 3]) == 1 << 20)     # exactly the flipped bias bit
    overlay.load_model(model)
    assert np.array_equal(overlay.execute(words), expected)


def test_fault_on_one_engine_of_four_resets_all_and_recovers(model, words, expected):
    ol = SparseKwsOverlay(device=EmulatedDevice("u250"), model=model, batch_size=2, timeout_s=TIMEOUT)
    assert np.array_equal(ol.execute(words), expected)
    ol.device.inject_fault("dma_stall", engine=2, channel="s2mm")
    with pytest.raises(DmaTimeoutError, match="axi_dma_2 S2MM"):
        ol.execute(words)
    assert ol.dispatcher.streams[2].resets == 1
    assert np.array_equal(ol.execute(words), expected)
    assert [c.status.error for c in ol.cores] == [False] * 4


def test_mis_sized_receive_buffer_is_a_dma_error(overlay, model, words, expected):
    from pynq_sparse.host import DmaStream
    stream = DmaStream(overlay.axi_dma_0, overlay.sparse_kws_0, batch_size=4, timeout_s=TIMEOUT)
    stream.run(words[:4])
    # receive room for 2 results while 4 are sent: the S2MM packet is longer than its buffer
    stream._transfer(stream._recv, stream._out[0], 2 * 64, "S2MM")
    stream._transfer(stream._send, stream._in[0], 4 * 1024, "MM2S")
    wait = stream._wait_for("s2mm", 0, 2)
    with pytest.raises(DmaError, match="internal error"):
        while not stream.poll("s2mm", wait):
            pass
    assert np.array_equal(overlay.execute(words), expected)
