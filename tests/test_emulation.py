"""The emulated PYNQ device: block design and .hwh, probing, memory, DMA and core register models.

Everything goes through the real pynq.Overlay, pynq.MMIO and pynq.lib.dma.DMA.
"""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import zlib

import numpy as np
import pynq
import pytest
from pynq.lib.dma import DMA

from pynq_sparse import core_interface as ci
from pynq_sparse.architecture import random_model
from pynq_sparse.core_interface import REG, weight_image
from pynq_sparse.emulation import (EmulatedDevice, board_name, dma_core_pairs, emulation_mode, overlay_file)
from pynq_sparse.emulation.memory import PhysicalMemory
from pynq_sparse.errors import CoreError, DeviceError
from pynq_sparse.model_file import model_from_bytes, model_to_bytes
from pynq_sparse.overlay import SparseKwsCore, SparseKwsOverlay
from pynq_sparse.overlays.block_design import BOARDS, load_design, total_copies
from pynq_sparse.overlays.block_design.axi_dma import DMA_REG, S2MM_OFFSET, SR_DEC_ERR, SR_HALTED, SR_INT_ERR
from pynq_sparse.overlays.block_design.hwh import hwh_path, hwh_text


@pytest.fixture(scope="module")
def model():
    return model_from_bytes(model_to_bytes(random_model(11)))


@pytest.fixture(scope="module")
def overlay(model):
    device = EmulatedDevice("ultra96v2", compute=False)
    return SparseKwsOverlay(device=device, model=model, timeout_s=0.3)


# --- block design ----------------------------------------------------------------------
@pytest.mark.parametrize("board", list(BOARDS))
def test_committed_hwh_is_what_the_design_generates(board):
    assert hwh_path(board).read_text(encoding="utf-8") == hwh_text(load_design(board)), \
        f"overlays/{board}/sparse_kws.hwh drifted: run python -m pynq_sparse.overlays.block_design.hwh --all"


@pytest.mark.parametrize("board", list(BOARDS))
def test_hwh_parses_like_vivado_output(board):
    from pynqmetadata.frontends import Metadata
    from pynqmetadata.views.runtime import RuntimeMetadataParser
    design = load_design(board)
    p = RuntimeMetadataParser(Metadata(input=str(hwh_path(board))))
    for dma in design["dmas"]:
        ip = p.ip_dict[dma["name"]]
        assert ip["type"] == "xilinx.com:ip:axi_dma:7.1"
        assert (ip["phys_addr"], ip["addr_range"]) == (dma["base_address"], dma["range"])
        params = ip["parameters"]
        assert params["c_include_sg"] == "0" and params["c_sg_length_width"] == "26"
        assert params["c_m_axi_mm2s_data_width"] == params["c_m_axi_s2mm_data_width"] == "64"
        assert params["c_include_mm2s"] == params["c_include_s2mm"] == "1"
        assert ip["interrupts"] == {}           # the driver polls; no interrupt pins to bind
    for core in design["cores"]:
        ip = p.ip_dict[core["name"]]
        assert ip["type"] == ci.VLNV
        assert ip["addr_range"] == REG.ADDR_RANGE
        assert int(ip["parameters"]["N_COPIES"]) == core["n_copies"]
        assert ip["registers"]["WLOAD_DATA"]["address_offset"] == REG.WLOAD_DATA
    assert p.clock_dict[0]["enable"] == 1
    assert p.clock_dict[0]["frequency"] == pytest.approx(design["fclk_mhz"])
    assert dma_core_pairs(hwh_path(board)) == {d["name"]: d["core"] for d in design["dmas"]}


def test_designs_have_the_planned_shape():
    u250 = load_design("u250")
    assert len(u250["dmas"]) == 4 and total_copies(u250) == 20
    assert sorted(d["slr"] for d in u250["dmas"]) == [0, 1, 2, 3]
    assert all(c["n_copies"] == 5 for c in u250["cores"])
    ultra = load_design("Ultra96-V2")
    assert ultra["board"] == "ultra96v2" and len(ultra["dmas"]) == 1 and total_copies(ultra) == 1
    assert ultra["modeled"]["words_per_s"] == 50_000 and u250["modeled"]["words_per_s"] == 4_000_000
    assert total_copies(load_design("zcu104")) == 2
    with pytest.raises(ValueError, match="u250"):
        load_design("pynq-z2")


# --- probing and board selection ---------------------------------------------------------
def test_probe_follows_the_environment(monkeypatch):
    import pynq_sparse.emulation.device as dev_mod
    from pynq.pl_server.device import DeviceMeta
    assert DeviceMeta._subclasses[EmulatedDevice._probe_priority_] is EmulatedDevice
    # probed before PYNQ's own devices (Versal 40, embedded 50, remote 100, XRT 200: registered
    # only when XILINX_XRT / PYNQ_REMOTE_DEVICES are set), so "force" wins even on a board
    assert EmulatedDevice._probe_priority_ < 40
    monkeypatch.setattr(dev_mod, "real_board_present", lambda: False)
    for value, expect in (("0", 0), ("off", 0), ("1", 1), ("force", 1), ("auto", 1), ("", 1)):
        monkeypatch.setenv("PYNQ_SPARSE_EMULATION", value)
        assert len(EmulatedDevice._probe_()) == expect, value
    monkeypatch.setattr(dev_mod, "real_board_present", lambda: True)      # a board: auto steps aside
    monkeypatch.setenv("PYNQ_SPARSE_EMULATION", "auto")
    assert EmulatedDevice._probe_() == []
    monkeypatch.setenv("PYNQ_SPARSE_EMULATION", "force")
    assert len(EmulatedDevice._probe_()) == 1
    monkeypatch.setenv("PYNQ_SPARSE_EMULATION", "maybe")
    with pytest.warns(UserWarning, match="auto"):
        assert emulation_mode() == "auto"


def test_emulated_device_is_active_when_no_board_is_present():
    env = {k: v for k, v in os.environ.items() if k not in ("PYNQ_SPARSE_EMULATION", "BOARD", "PYNQ_SPARSE_BOARD")}
    code = ("import pynq, pynq_sparse.emulation; d = pynq.Device.active_device; "
            "print(type(d).__name__, d.board, d.arch)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["EmulatedDevice", "ultra96v2", "aarch64"]


def test_board_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("PYNQ_SPARSE_BOARD", raising=False)
    monkeypatch.setenv("BOARD", "Ultra96V2")
    assert board_name() == "ultra96v2"
    monkeypatch.setenv("BOARD", "Pynq-Z2")
    with pytest.warns(UserWarning, match="no sparse-kws overlay"):
        assert board_name() == "ultra96v2"
    monkeypatch.setenv("PYNQ_SPARSE_BOARD", "u250")
    assert board_name() == "u250"
    assert EmulatedDevice().arch == "x86_64"
    monkeypatch.setenv("PYNQ_SPARSE_BOARD", "zc706")
    with pytest.raises(DeviceError, match="ultra96v2"):
        board_name()
    assert board_name("KV260") == "kv260"


# --- overlay, drivers, clocks ------------------------------------------------------------
def test_real_pynq_drivers_bind_to_the_emulated_design(overlay):
    assert isinstance(overlay, pynq.Overlay) and overlay.is_loaded()
    assert type(overlay.axi_dma_0) is DMA
    assert overlay.axi_dma_0.buffer_max_size == (1 << 26) - 1
    core = overlay.sparse_kws_0
    assert isinstance(core, SparseKwsCore) and core.n_copies == 1 and core.version == "1.0"
    assert core.register_map.N_COPIES.N_COPIES == 1              # pynq's RegisterMap over the emulated window
    assert pynq.Clocks.fclk0_mhz == pytest.approx(load_design("ultra96v2")["fclk_mhz"])
    assert overlay.fclk_mhz == pytest.approx(187.498, abs=1e-3)
    pynq.Clocks.fclk0_mhz = 100                                    # PYNQ's clock API reprograms the model
    assert overlay.device.fclk_mhz == pytest.approx(100, rel=0.02)
    overlay.download()                     # restores the design's clock, re-creates the cores, reloads the model
    assert overlay.fclk_mhz == pytest.approx(187.498, abs=1e-3)
    assert overlay.sparse_kws_0.model_id == overlay.model.model_id
    assert overlay.device.core_model(0).model_loaded


def test_u250_design_has_four_engines_and_a_shell_clock():
    ol = SparseKwsOverlay(device=EmulatedDevice("u250", compute=False))
    assert len(ol.dmas) == 4 and ol.n_copies == 20
    assert [c.n_copies for c in ol.cores] == [5, 5, 5, 5]
    assert ol.fclk_mhz == pytest.approx(300, abs=0.01)


# --- memory -----------------------------------------------------------------------------
def test_allocate_gives_physically_addressed_buffers_that_are_freed():
    device = EmulatedDevice("ultra96v2", memory_mb=1)
    a = pynq.allocate((100,), dtype=np.int32, target=device)
    b = pynq.allocate((5000,), dtype=np.uint8, target=device)
    assert isinstance(a, pynq.buffer.PynqBuffer)
    assert a.physical_address % 4096 == 0 and b.physical_address >= a.physical_address + 4096
    a[:] = np.arange(100)
    assert device.memory.view(a.physical_address + 8, 4).view(np.int32)[0] == 2
    a.flush()
    b.invalidate()
    assert device.flushes == 1 and device.invalidates == 1
    assert device.memory.n_buffers == 2
    del a, b
    gc.collect()
    assert device.memory.n_buffers == 0
    with pytest.raises(DeviceError, match="exhausted"):
        pynq.allocate((2 << 20,), dtype=np.uint8, target=device)
    mem = PhysicalMemory(0x1000, 0x10000)
    p1, keep = mem.allocate(1)
    p2 = mem.allocate(1)[0]          # its backing dies at once: the range is reused
    p3 = mem.allocate(1)[0]
    assert p1 == 0x1000 and p2 == p3 == 0x2000 and keep.size == 4096


# --- AXI DMA model through the real driver ----------------------------------------------------
def test_dma_register_model_follows_pg021(overlay):
    dma = overlay.axi_dma_0
    mmio = dma.mmio
    assert not dma.sendchannel.idle and dma.sendchannel.running           # started by the driver
    mmio.write(S2MM_OFFSET + DMA_REG.DMACR, 0)                           # stop S2MM
    assert mmio.read(S2MM_OFFSET + DMA_REG.DMASR) & SR_HALTED
    mmio.write(S2MM_OFFSET + DMA_REG.DMACR, 1)
    mmio.write(S2MM_OFFSET + DMA_REG.LENGTH, 0)                          # zero length: internal error
    assert mmio.read(S2MM_OFFSET + DMA_REG.DMASR) & (SR_INT_ERR | SR_HALTED) == SR_INT_ERR | SR_HALTED
    with pytest.raises(RuntimeError, match="not started"):
        dma.recvchannel.wait()          # PYNQ's wait: an error halts the channel (PG021), so "not started"
    overlay.reset_hardware()
    mmio.write(S2MM_OFFSET + DMA_REG.ADDR, 0x1000)                      # no buffer there
    mmio.write(S2MM_OFFSET + DMA_REG.LENGTH, 64)
    assert mmio.read(S2MM_OFFSET + DMA_REG.DMASR) & SR_DEC_ERR
    overlay.reset_hardware()
    assert not mmio.read(S2MM_OFFSET + DMA_REG.DMASR) & (SR_DEC_ERR | SR_HALTED)


def test_raw_transfers_with_pynq_dma_driver(overlay, model):
    """The documented PYNQ flow: allocate, transfer, wait, then read the results."""
    dma, device = overlay.axi_dma_0, overlay.device
    words = np.random.default_rng(0).integers(0, 128, (3, 32, 32), dtype=np.int8)
    inp = pynq.allocate((3, 32, 32), dtype=np.int8, target=device)
    out = pynq.allocate((3, ci.RESULT_INTS), dtype=np.int32, target=device)
    inp[:] = words
    dma.recvchannel.transfer(out)
    dma.sendchannel.transfer(inp)
    dma.sendchannel.wait()
    dma.recvchannel.wait()
    assert dma.recvchannel.transferred == 3 * ci.RESULT_BYTES
    seq = out[:, ci.RESULT_SEQ].view(np.uint32)
    assert np.all(np.diff(seq.astype(np.int64)) == 1)
    assert list(out[:, ci.RESULT_FLAGS]) == [0, 0, 1]                    # TLAST on the last result only
    assert np.all(out[:, ci.RESULT_MODEL_ID].view(np.uint32) == model.model_id)
    # a receive buffer too small for the packet: S2MM internal error, as on hardware
    small = pynq.allocate((1, ci.RESULT_INTS), dtype=np.int32, target=device)
    dma.recvchannel.transfer(small)
    dma.sendchannel.transfer(inp)
    assert dma.recvchannel._mmio.read(S2MM_OFFSET + DMA_REG.DMASR) & SR_INT_ERR
    with pytest.raises(RuntimeError):
        dma.recvchannel.wait()
    overlay.reset_hardware()
    assert dma.recvchannel.running and overlay.sparse_kws_0.status.idle


# --- core model ------------------------------------------------------------------------
def test_weight_loader_checks_crc_and_shape(overlay, model):
    core = overlay.sparse_kws_0
    image = weight_image(model)
    core.write(REG.WLOAD_CTRL, ci.WLOAD_BEGIN)
    assert core.status.loading
    for w in image[:-1].tolist() + [int(image[-1]) ^ 1]:                  # wrong CRC
        core.write(REG.WLOAD_DATA, w)
    assert core.read(REG.WLOAD_COUNT) == image.size
    core.write(REG.WLOAD_CTRL, ci.WLOAD_COMMIT)
    st = core.status
    assert not st.model_loaded and st.errors == ("weight image CRC mismatch",) and core.model_id == 0
    bad = image.copy()
    bad[3] ^= 7 << 16                       # conv1 n_pack 8 -> 15: not what this bitstream was built for
    bad[-1] = zlib.crc32(bad[:-1].tobytes())
    core.clear_errors()
    core.write(REG.WLOAD_CTRL, ci.WLOAD_BEGIN)
    for w in bad.tolist():
        core.write(REG.WLOAD_DATA, w)
    core.write(REG.WLOAD_CTRL, ci.WLOAD_COMMIT)
    assert core.status.error_flags == ci.ERR_WEIGHT_SHAPE
    assert overlay.load_model(model) == model.model_id and core.status.model_loaded
    assert not core.status.error


def test_counters_follow_the_round_robin(model):
    overlay = SparseKwsOverlay(device=EmulatedDevice("zcu104", compute=False), model=model, timeout_s=0.3)
    core = overlay.sparse_kws_0                                    # 2 copies: words alternate
    core.reset()
    words = np.random.default_rng(1).integers(0, 128, (7, 32, 32), dtype=np.int8)
    overlay.execute(words)
    c = core.counters
    cpw = overlay.device.core_model(0).cycles_per_word
    assert (c["words_in"], c["words_out"]) == (7, 7)
    assert [x["words"] for x in c["copies"]] == [4, 3]
    assert [x["busy_cycles"] for x in c["copies"]] == [4 * cpw, 3 * cpw] and c["busy_cycles"] == 4 * cpw
    assert cpw == round(187.498125e6 / 50_000)
    core.clear_counters()
    assert core.counters["words_in"] == 0


def test_sequence_numbers_wrap_modulo_2_32(overlay):
    overlay.sparse_kws_0.reset()
    overlay.device.core_model(0).words_in = (1 << 32) - 2
    res = overlay.execute_words(np.zeros((5, 32, 32), np.int8))
    assert list(res.seq) == [(1 << 32) - 2, (1 << 32) - 1, 0, 1, 2]
    overlay.sparse_kws_0.reset()


def test_word_without_model_is_dropped_and_reported():
    ol = SparseKwsOverlay(device=EmulatedDevice("ultra96v2", compute=False), timeout_s=0.2)
    from pynq_sparse.host import DmaStream
    stream = DmaStream(ol.axi_dma_0, ol.sparse_kws_0, batch_size=4, timeout_s=0.2)
    with pytest.raises(CoreError, match="load a model first"):
        stream.run(np.zeros((2, 32, 32), np.int8))
    assert ol.sparse_kws_0.status.idle and not ol.sparse_kws_0.status.error     # reset by the driver


def test_overlay_file_paths():
    assert overlay_file("ultra96v2", ".hwh").is_file()
    with pytest.raises(DeviceError, match="no sparse-kws bitstream"):
        from pynq_sparse.overlay import resolve_bitfile

        class _Board:                                     # a real (non-emulated) device
            pass
        resolve_bitfile("zcu104", _Board())


def test_a_built_bitstream_is_found_for_a_real_board(tmp_path, monkeypatch):
    """overlays/<board>/sparse_kws.bit on Zynq boards, .xclbin on the U250; missing: the make command."""
    import pynq_sparse.emulation.board as board_mod
    from pynq_sparse.overlay import resolve_bitfile

    class _Board:                                         # a real (non-emulated) device
        pass
    monkeypatch.setattr(board_mod, "overlays_root", lambda: tmp_path)
    with pytest.raises(DeviceError, match="make -C overlays bitstream BOARD=u250") as err:
        resolve_bitfile("u250", _Board())
    assert "sparse_kws.xclbin" in str(err.value)
    (tmp_path / "u250").mkdir()
    (tmp_path / "u250" / "sparse_kws.xclbin").write_bytes(b"xclbin2")
    (tmp_path / "zcu104").mkdir()
    (tmp_path / "zcu104" / "sparse_kws.bit").write_bytes(b"bit")
    assert resolve_bitfile("u250", _Board()) == str(tmp_path / "u250" / "sparse_kws.xclbin")
    assert resolve_bitfile("zcu104", _Board()) == str(tmp_path / "zcu104" / "sparse_kws.bit")
    assert board_mod.packaged_bitstream("ultra96v2") is None
