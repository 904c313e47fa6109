"""cocotb testbench of sk_loader against a Python model (weight_image / the load-bus writes it implies).

Synthesised for a tiny 4-layer network (HDR parameter) so that Icarus runs it in seconds: odd entry
counts (padding), shifts packed four per word, k written from the header; then a corrupt CRC
(ERR_WEIGHT_CRC), a wrong shape (ERR_WEIGHT_SHAPE) and a truncated image.
"""
import random
from types import SimpleNamespace

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

# kind, pool, n_pack, in_shape, out_channels, kernel_size, k, fan_in
TINY = [(0, 2, 2, (1, 6, 6), 4, 3, 5, 9), (0, 1, 2, (4, 4, 4), 4, 3, 7, 36),
        (1, 1, 3, (7,), 3, 1, 2, 7), (1, 1, 1, (7,), 5, 1, 0, 7)]


def _hdr_words():
    out = []
    for kind, pool, n_pack, shape, oc, ks, k, fan in TINY:
        shape = list(shape) + [1] * (3 - len(shape))
        out.append([kind | pool << 8 | n_pack << 16, *shape, oc, ks, 0, fan])
    return out


TINY_HDR_PARAM = "1024'h%0256x" % sum(w << ((li * 8 + i) * 32) for li, h in enumerate(_hdr_words())
                                      for i, w in enumerate(h))


def tiny_model(seed):
    rng = np.random.default_rng(seed)
    layers = []
    for kind, pool, n_pack, shape, oc, ks, k, fan in TINY:
        g = oc // n_pack
        layers.append(SimpleNamespace(
            kind="conv" if kind == 0 else "fc", pool=pool, n_pack=n_pack, in_shape=shape, out_channels=oc,
            kernel_size=ks, k=k, fan_in=fan,
            packed_weights=rng.integers(-127, 128, size=(g, fan)).astype(np.int8),
            owner=rng.integers(0, n_pack, size=(g, fan)).astype(np.uint8),
            bias=rng.integers(-2**31, 2**31, size=oc).astype(np.int32),
            requant_mult=rng.integers(2**14, 2**15, size=oc).astype(np.int32),
            requant_shift=rng.integers(1, 63, size=oc).astype(np.uint8)))
    return SimpleNamespace(model_id=int(rng.integers(0, 2**32)), layers=layers)


def expected_writes(model):
    exp = {}
    for li, layer in enumerate(model.layers):
        entries = layer.packed_weights.astype(np.uint8).astype(np.int64) | (layer.owner.astype(np.int64) << 8)
        for g in range(entries.shape[0]):
            for f in range(entries.shape[1]):
                exp[(li, 0, g, f)] = int(entries[g, f])
        for o in range(layer.out_channels):
            exp[(li, 1, 0, o)] = int(layer.bias[o]) & 0xFFFFFFFF
            exp[(li, 2, 0, o)] = int(layer.requant_mult[o])
            exp[(li, 3, 0, o)] = int(layer.requant_shift[o])
        exp[(li, 4, 0, 0)] = layer.k
    return exp


async def monitor(dut, store):
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.ld_we.value):
            sel = int(dut.ld_sel.value)
            key = (int(dut.ld_layer.value), sel, int(dut.ld_group.value) if sel == 0 else 0,
                   int(dut.ld_addr.value) if sel < 4 else 0)
            store.append((key, int(dut.ld_data.value)))


async def pulse(dut, name):
    getattr(dut, name).value = 1
    await RisingEdge(dut.clk)
    getattr(dut, name).value = 0


async def send(dut, image, rng):
    for w in image:
        while rng.random() < 0.2:
            dut.s_valid.value = 0
            await RisingEdge(dut.clk)
        dut.s_word.value = int(w)
        dut.s_valid.value = 1
        while True:
            await ReadOnly()
            ok = int(dut.s_ready.value)
            await RisingEdge(dut.clk)
            if ok:
                break
    dut.s_valid.value = 0


async def load(dut, image, rng):
    """BEGIN, the words, COMMIT; returns (err_crc, err_shape) pulses seen."""
    await pulse(dut, "begin_load")
    await send(dut, image, rng)
    await ClockCycles(dut.clk, 6)
    assert int(dut.loading.value) == 1
    assert int(dut.word_count.value) == len(image)
    dut.commit.value = 1
    await RisingEdge(dut.clk)
    dut.commit.value = 0
    await ReadOnly()                      # the error pulses follow the COMMIT edge
    res = int(dut.err_crc.value), int(dut.err_shape.value)
    await RisingEdge(dut.clk)
    return res


@cocotb.test()
async def test_loader(dut):
    from pynq_sparse.core_interface import weight_image
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for n in ("begin_load", "commit", "s_valid", "s_word"):
        getattr(dut, n).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    rng = random.Random(1)
    writes = []
    cocotb.start_soon(monitor(dut, writes))

    model = tiny_model(1)
    image = weight_image(model)
    assert await load(dut, image, rng) == (0, 0)
    assert int(dut.loaded.value) == 1 and int(dut.loading.value) == 0
    assert int(dut.model_id.value) == model.model_id
    exp = expected_writes(model)
    got = dict(writes)
    assert len(writes) == len(exp), f"{len(writes)} load-bus writes, expected {len(exp)}"
    bad = [(k, got.get(k), v) for k, v in exp.items() if got.get(k) != v]
    assert not bad, f"load-bus writes differ (key, rtl, model): {bad[:5]}"

    # corrupt CRC: ERR_WEIGHT_CRC, not loaded
    bad_image = image.copy()
    bad_image[20] ^= 0x100
    assert await load(dut, bad_image, rng) == (1, 0)
    assert int(dut.loaded.value) == 0
    # a header that does not match the synthesised shapes: ERR_WEIGHT_SHAPE
    m2 = tiny_model(2)
    m2.layers[1].out_channels = 6
    m2.layers[1].bias = np.zeros(6, np.int32)
    m2.layers[1].requant_mult = np.full(6, 2**14, np.int32)
    m2.layers[1].requant_shift = np.ones(6, np.uint8)
    m2.layers[1].packed_weights = np.zeros((3, 36), np.int8)
    m2.layers[1].owner = np.zeros((3, 36), np.uint8)
    assert (await load(dut, weight_image(m2), rng))[1] == 1
    assert int(dut.loaded.value) == 0
    # truncated image: ERR_WEIGHT_SHAPE
    assert (await load(dut, image[:-5], rng))[1] == 1
    # a second model loads cleanly after the errors
    writes.clear()
    m3 = tiny_model(3)
    assert await load(dut, weight_image(m3), rng) == (0, 0)
    assert int(dut.loaded.value) == 1 and int(dut.model_id.value) == m3.model_id
    assert dict(writes) == expected_writes(m3)
