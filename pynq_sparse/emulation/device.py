"""EmulatedDevice: a pynq.Device that models a board running the sparse-kws overlay, on any host.

With it, the unmodified `pynq.Overlay`, `pynq.allocate`, `pynq.MMIO` and
`pynq.lib.dma.DMA` run on x86: the device parses the overlay's .hwh with
pynqmetadata (as PYNQ does on a board), and "downloading" it builds one register
model per IP found there: AXI DMA engines (`axi_dma.AxiDmaModel`) and sparse_kws
cores (`core.SparseKwsCoreModel`), wired by the .hwh's AXI4-Stream connections,
plus the Zynq UltraScale+ clock registers PYNQ's `Clocks` programs. Buffers come
from an emulated contiguous-memory window with physical addresses.

It registers itself with PYNQ's device probing (`_probe_`, priority 5, ahead of
the real devices): PYNQ_SPARSE_EMULATION=auto (default) returns it only when no
board is present, force returns it always, off never. See `board.py` for the
board selection.

Usage::

    import pynq
    from pynq_sparse.emulation import EmulatedDevice, use_emulated_device
    device = use_emulated_device("u250")               # make it pynq.Device.active_device
    ol = pynq.Overlay(str(overlay_file("u250", ".hwh")))
    device.inject_fault("dma_stall", engine=1)          # for tests
"""
from __future__ import annotations

import bisect
import copy
import math
import struct
import warnings
from pathlib import Path

import numpy as np
from pynq.buffer import PynqBuffer
from pynq.pl_server.device import Device

from ..core_interface import VLNV
from ..errors import DeviceError
from ..overlays.block_design import load_design
from .axi_dma import AxiDmaModel
from .board import board_name, emulation_mode, hwh_topology, known_board, real_board_present
from .core import SparseKwsCoreModel
from .memory import PhysicalMemory

DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"
CRL_APB, CRF_APB, CLK_WINDOW = 0xFF5E_0000, 0xFD1A_0000, 0x100   # Zynq UltraScale+ clock controllers
PS_REF_MHZ = 33.333


class _RegisterRam:
    """Plain read/write registers (the PS clock controllers PYNQ's Clocks class programs)."""

    def __init__(self, values: dict[int, int]) -> None:
        self.values = dict(values)

    def read(self, offset: int) -> int:
        return self.values.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        self.values[offset] = value & 0xFFFF_FFFF


class RegisterWindow:
    """The uint32 register array `Device.mmap` returns: indexing reads and writes a model's registers.

    It stands where a board's mmap of /dev/mem stands, so pynq.MMIO (and RegisterMap,
    which slices and views it) reach the models at Python-call speed.
    """

    __slots__ = ("_device", "_address", "_generation", "_model", "_offset", "_n")

    def __init__(self, device: "EmulatedDevice", address: int, n_words: int) -> None:
        self._device, self._address, self._n = device, address, n_words
        self._generation = -1

    def _resolve(self) -> None:
        """Find the model behind the address again after a download replaced the models."""
        self._model, self._offset = self._device._target(self._address)
        self._generation = self._device._generation

    def __len__(self) -> int:
        return self._n

    def view(self, dtype=None, type=None) -> "RegisterWindow":
        if dtype is not None and np.dtype(dtype) != np.uint32:
            raise TypeError("emulated registers are 32-bit words (uint32)")
        return self

    def _index(self, key: int) -> int:
        if self._generation != self._device._generation:
            self._resolve()
        idx = int(key) + (self._n if key < 0 else 0)
        if not 0 <= idx < self._n:
            raise IndexError(f"register index {key} outside a window of {self._n} words")
        return self._offset + 4 * idx

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self._n)
            if step != 1:
                raise IndexError("register windows do not support strided slices")
            return RegisterWindow(self._device, self._address + 4 * start, max(0, stop - start))
        offset = self._index(key)                   # (resolves the model first)
        return self._model.read(offset) & 0xFFFF_FFFF

    def __setitem__(self, key, value) -> None:
        if isinstance(key, slice):
            if self._generation != self._device._generation:
                self._resolve()
            start, stop, _ = key.indices(self._n)
            values = np.broadcast_to(np.asarray(value, dtype=np.uint32), (stop - start,))
            for i, v in zip(range(start, stop), values):
                self._model.write(self._offset + 4 * i, int(v))
            return
        offset = self._index(key)
        self._model.write(offset, int(value) & 0xFFFF_FFFF)


class ShellClocks:
    """Stand-in for PYNQ's Clocks implementation on hosts whose clocks PYNQ cannot program (Alveo).

    pynq.Overlay.download() sets every PL clock through `Clocks`; on an x86 host PYNQ
    has no implementation, so the emulated device installs this one: it records the
    frequencies (the shell's kernel clocks) and reports them back.
    """

    def __init__(self, device: "EmulatedDevice", fclk_mhz: float) -> None:
        self.device = device
        self.pl_mhz = {0: fclk_mhz, 1: 100.0, 2: 100.0, 3: 100.0}

    def get_pl_clk(self, clk_idx: int) -> float:
        return self.pl_mhz[clk_idx]

    def set_pl_clk(self, clk_idx: int, div0=None, div1=None, clk_mhz: float = 100.0) -> None:
        if clk_idx not in range(4):
            raise ValueError("Valid PL clock index is 0 - 3.")
        self.pl_mhz[clk_idx] = float(clk_mhz)

    def get_cpu_mhz(self) -> float:
        return 0.0


def _pll(fbdiv: int) -> int:
    return (fbdiv << 8) | (1 << 16)          # FBDIV, DIV2 = 1, PRE_SRC = PS_REF_CLK


def _pl_clk(div0: int, div1: int) -> int:
    return (1 << 24) | (div1 << 16) | (div0 << 8)   # CLKACT, DIVISOR1, DIVISOR0, SRCSEL = IOPLL


class EmulatedDevice(Device):
    """A PYNQ device whose programmable logic is a Python model of the sparse-kws overlay.

    Parameters
    ----------
    board : str, optional
        Board to emulate (default: `board.board_name()`); it sets `name`, `arch` and the
        memory window. Any sparse-kws .hwh can be downloaded onto it.
    compute : bool
        False: cores return zero scores (to measure the host path alone).
    backend : str
        Scoring backend of the cores ("auto", "cpu", "golden"); always bit-exact.
    memory_mb : int, optional
        Size of the contiguous-memory window buffers are allocated from (default 512 MB,
        a Zynq board's CMA pool; 4 GB on Alveo, whose cards have 64 GB of DDR4).
    fifo_words_per_copy : int
        Results a core buffers per copy before its input stream stalls.
    """

    _probe_priority_ = 5

    @classmethod
    def _probe_(cls):
        try:
            mode = emulation_mode()
            if mode == "off" or (mode == "auto" and real_board_present()):
                return []
            return [cls()]
        except Exception as err:           # a failing probe must not break PYNQ for everyone
            warnings.warn(f"pynq-sparse emulated device not available: {err}", stacklevel=2)
            return []

    def __init__(self, board: str | None = None, compute: bool = True, backend: str = "auto",
                 memory_mb: int | None = None, fifo_words_per_copy: int = 32, tag: str | None = None) -> None:
        self.board = board_name(board)
        design = load_design(self.board)
        super().__init__(tag or f"emulated_{self.board}")
        self.name = self.board
        self.arch = design["ps"]["arch"]
        # MEMORY_MAPPED: pynq.MMIO indexes the array mmap() returns (as on a Zynq board);
        # read_registers/write_registers (REGISTER_RW) serve the same models too.
        self.capabilities = {"MEMORY_MAPPED": True, "REGISTER_RW": True, "CALLABLE": False}
        self.timestamp = ""
        self.bitfile_name = None
        self.compute = compute
        self.backend = backend
        self.fifo_words_per_copy = fifo_words_per_copy
        ps_mem = design["ps"]["memory"]
        cma_base = ps_mem["base_address"] + (0x6000_0000 if self.arch == "aarch64" else 0x1_0000_0000)
        if memory_mb is None:
            memory_mb = 512 if self.arch == "aarch64" else 4096
        self.memory = PhysicalMemory(cma_base, int(memory_mb) << 20)
        self.dmas: dict[str, AxiDmaModel] = {}
        self.cores: dict[str, SparseKwsCoreModel] = {}
        self._starts: list[int] = []
        self._windows: list[tuple[int, int, object]] = []
        self._ps_clocks: dict[str, _RegisterRam] = {}
        self._metadata: dict[tuple[str, float], object] = {}
        self.flushes = self.invalidates = 0
        self._shell_clocks = ShellClocks(self, float(design["fclk_mhz"]))
        self._reset_ps_clocks(design)
        self._map([])

    def __repr__(self) -> str:
        loaded = Path(self.bitfile_name).name if self.bitfile_name else "nothing"
        compute = "on" if self.compute else "off"
        return f"<EmulatedDevice {self.board} ({self.arch}), {loaded} loaded, compute={compute}>"

    # --- address map -------------------------------------------------------------------
    def _reset_ps_clocks(self, design: dict) -> None:
        if self.arch != "aarch64":
            self._ps_clocks = {}
            return
        crl = {0x20: _pll(90), 0x30: _pll(90)}
        for i, clk in design["ps"]["pl_clocks"].items():
            crl[0xC0 + 4 * i] = _pl_clk(clk["divisor0"], clk["divisor1"])
        crf = {0x20: _pll(72), 0x2C: _pll(64), 0x38: _pll(90), 0x60: (1 << 8)}
        self._ps_clocks = {"crl": _RegisterRam(crl), "crf": _RegisterRam(crf)}

    def _map(self, windows: list[tuple[int, int, object]]) -> None:
        wins = list(windows)
        if self._ps_clocks:
            wins += [(CRL_APB, CLK_WINDOW, self._ps_clocks["crl"]), (CRF_APB, CLK_WINDOW, self._ps_clocks["crf"])]
        wins.sort(key=lambda w: w[0])
        self._generation = getattr(self, "_generation", 0) + 1
        self._windows = wins
        self._starts = [w[0] for w in wins]

    def _target(self, address: int) -> tuple[object, int]:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0:
            base, size, model = self._windows[i]
            if address < base + size:
                return model, address - base
        raise DeviceError(f"emulated bus error: nothing is mapped at 0x{address:x} "
                          "(is the overlay downloaded, and is the address inside an IP's window?)")

    def mmap(self, base_addr: int, length: int) -> RegisterWindow:
        """The register window at `base_addr` as a uint32 array (what pynq.MMIO indexes)."""
        self._target(base_addr)                     # bus error now if nothing is mapped there
        return RegisterWindow(self, base_addr, length // 4)

    def read_registers(self, address: int, length: int) -> bytes:
        """Read `length` bytes (whole 32-bit registers) at physical `address`."""
        model, offset = self._target(address)
        if length == 4:
            return struct.pack("<I", model.read(offset) & 0xFFFF_FFFF)
        words = [model.read(offset + 4 * i) & 0xFFFF_FFFF for i in range(math.ceil(length / 4))]
        return struct.pack(f"<{len(words)}I", *words)[:length]

    def write_registers(self, address: int, data: bytes) -> None:
        """Write `data` (whole 32-bit registers, consecutive addresses) at physical `address`."""
        model, offset = self._target(address)
        if len(data) % 4:
            raise DeviceError("emulated bus: register writes must be whole 32-bit words")
        for i, value in enumerate(struct.unpack(f"<{len(data) // 4}I", data)):
            model.write(offset + 4 * i, value)

    # --- PL clock ----------------------------------------------------------------------
    @property
    def fclk_mhz(self) -> float:
        """PL clock 0 as the PS clock registers set it (Zynq), or the design's clock (Alveo)."""
        if not self._ps_clocks:
            return float(self._shell_clocks.get_pl_clk(0))
        crl = self._ps_clocks["crl"]
        pll = crl.read(0x20)
        pll_mhz = PS_REF_MHZ * ((pll >> 8) & 0x7F) / (2 if pll >> 16 & 1 else 1)
        ctrl = crl.read(0xC0)
        return round(pll_mhz / max(1, (ctrl >> 8) & 0x3F) / max(1, (ctrl >> 16) & 0x3F), 6)

    # --- bitstreams and metadata -------------------------------------------------------
    @staticmethod
    def _hwh_for(bitfile_name: str) -> Path:
        path = Path(bitfile_name)
        hwh = path if path.suffix == ".hwh" else path.with_suffix(".hwh")
        if not hwh.is_file():
            raise DeviceError(f"no .hwh next to {bitfile_name}: the emulated device builds the design from it")
        return hwh

    def get_bitfile_metadata(self, bitfile_name: str, partial: bool = False):
        """Parse the .hwh of `bitfile_name` (a .bit or the .hwh itself) with pynqmetadata, as PYNQ does."""
        from pynqmetadata.frontends import Metadata
        from pynqmetadata.views.runtime import RuntimeMetadataParser
        hwh = self._hwh_for(bitfile_name)
        key = (str(hwh.resolve()), hwh.stat().st_mtime)
        if key not in self._metadata:
            self._metadata[key] = RuntimeMetadataParser(Metadata(input=str(hwh)))
        cached = self._metadata[key]
        parser = copy.copy(cached)
        for attr in ("ip_dict", "gpio_dict", "interrupt_controllers", "interrupt_pins", "hierarchy_dict",
                     "mem_dict", "clock_dict"):
            setattr(parser, attr, copy.deepcopy(getattr(cached, attr)))
        self._install_clocks()
        return parser

    def _install_clocks(self) -> None:
        """Point PYNQ's process-wide Clocks at this device before pynq.Overlay programs them.

        Zynq boards: PYNQ's own implementation over the emulated CRL/CRF registers (a
        cached one bound to another device is dropped). Alveo: `ShellClocks`.
        """
        from pynq.ps import Clocks
        inst = Clocks.__dict__.get("_real_instance")
        if not self._ps_clocks:
            Clocks._real_instance = self._shell_clocks
        elif isinstance(inst, ShellClocks) or (
                inst is not None and getattr(getattr(inst, "_crl_mmio", None), "device", None) is not self):
            del Clocks._real_instance
        Clocks.device = self

    def download(self, bitstream, parser=None) -> None:
        """'Program' the emulated PL: build the register models of the design in the .hwh."""
        if parser is None:
            parser = self.get_bitfile_metadata(bitstream.bitfile_name)
        self._build(parser, self._hwh_for(bitstream.bitfile_name))
        self.post_download(bitstream, parser, self.name)

    def gen_cache(self, bitstream, parser=None) -> None:
        """PYNQ's metadata cache: nothing to cache for the emulation."""

    def _build(self, parser, hwh: Path) -> None:
        topo = hwh_topology(hwh)
        design = load_design(known_board(topo["board"]) or self.board)
        # the PS clock registers survive a download (the PL is reprogrammed, not the PS)
        rate = design["modeled"]["words_per_s_per_copy"]
        fclk = self.fclk_mhz if self._ps_clocks else float(design["fclk_mhz"])
        self.dmas, self.cores = {}, {}
        windows = []
        for name, ip in sorted(parser.ip_dict.items()):
            params = ip.get("parameters", {})
            if ip.get("type") == DMA_VLNV:
                model = AxiDmaModel(name, self.memory, windows=topo["windows"].get(name, []),
                                    addr_width=int(params.get("C_M_AXI_MM2S_ADDR_WIDTH", 32)),
                                    length_width=int(params.get("c_sg_length_width", 26)))
                self.dmas[name] = model
            elif ip.get("type") == VLNV:
                model = SparseKwsCoreModel(name, n_copies=int(params.get("N_COPIES", 1)), fclk_mhz=fclk,
                                           cycles_per_word=max(1, round(fclk * 1e6 / rate)), compute=self.compute,
                                           backend=self.backend, fifo_words_per_copy=self.fifo_words_per_copy)
                self.cores[name] = model
            else:
                continue
            windows.append((ip["phys_addr"], ip["addr_range"], model))
        for name, dma in self.dmas.items():
            sink = topo["streams"].get(f"{name}/M_AXIS_MM2S")
            source = next((src.split("/")[0] for src, dst in topo["streams"].items()
                           if dst == (name, "S_AXIS_S2MM")), None)
            dma.connect(sink=self.cores.get(sink[0]) if sink else None, source=self.cores.get(source))
        self._map(windows)

    # --- memory ------------------------------------------------------------------------
    def allocate(self, shape, dtype, **kwargs) -> PynqBuffer:
        """A PynqBuffer with a physical address in the emulated contiguous-memory window."""
        dtype = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        phys, backing = self.memory.allocate(nbytes)
        coherent = not kwargs.get("cacheable", True)
        return PynqBuffer(shape, dtype, buffer=backing, device_address=phys, device=self, bo=phys,
                          coherent=coherent)

    def flush(self, bo, offset, ptr, size) -> None:
        """Cache flush before a device read (nothing to do: host and emulated PL share memory)."""
        self.flushes += 1

    def invalidate(self, bo, offset, ptr, size) -> None:
        """Cache invalidate after a device write (nothing to do here)."""
        self.invalidates += 1

    # --- modes and faults --------------------------------------------------------------
    def set_compute(self, compute: bool) -> None:
        """Switch the cores' scoring on or off (off: zero scores, to measure the host path)."""
        self.compute = bool(compute)
        for core in self.cores.values():
            core.set_compute(self.compute)

    def dma_model(self, engine: int | str = 0) -> AxiDmaModel:
        """The model of DMA engine `engine` (index in name order, or instance name)."""
        return self._pick(self.dmas, engine, "DMA engine")

    def core_model(self, core: int | str = 0) -> SparseKwsCoreModel:
        """The model of sparse_kws instance `core` (index in name order, or instance name)."""
        return self._pick(self.cores, core, "sparse_kws core")

    @staticmethod
    def _pick(models: dict, key: int | str, what: str):
        if not models:
            raise DeviceError("no overlay is downloaded on the emulated device")
        if isinstance(key, str):
            if key not in models:
                raise DeviceError(f"no {what} named {key!r}; have {', '.join(models)}")
            return models[key]
        names = sorted(models)
        if not 0 <= key < len(names):
            raise DeviceError(f"{what} index {key} out of range (0..{len(names) - 1})")
        return models[names[key]]

    def inject_fault(self, kind: str, engine: int | str = 0, **params) -> None:
        """Arm a fault for tests.

        kind "dma_stall": the next transfer of `engine` on `channel` ("mm2s" or "s2mm",
            default "s2mm") never completes, until the engine is reset.
        kind "tlast": the next MM2S transfer of `engine` asserts TLAST after `at_byte`
            bytes (default 40, inside the first word): a framing error for the core.
        kind "weight_corruption": flip a bit of a weight memory of the core behind `engine`
            (or `core=`); keywords of `SparseKwsCoreModel.corrupt_weights` (copy, layer,
            field_name, index, bit, parity).
        """
        if kind == "dma_stall":
            self.dma_model(engine).inject_stall(params.get("channel", "s2mm"))
        elif kind == "tlast":
            self.dma_model(engine).inject_early_tlast(params.get("at_byte", 40))
        elif kind == "weight_corruption":
            core = params.pop("core", None)
            if core is None:
                dma = self.dma_model(engine)
                core = next(n for n, c in self.cores.items() if c is dma.sink)
            self.core_model(core).corrupt_weights(**params)
        else:
            raise ValueError(f"unknown fault {kind!r}; choose dma_stall, tlast or weight_corruption")


def reset_pynq_devices() -> None:
    """Forget PYNQ's probed devices so that the next `pynq.Device.active_device` probes again.

    Use after changing PYNQ_SPARSE_EMULATION or the board in a running process.
    """
    for cls in [Device] + Device.__subclasses__():
        for attr in ("_devices", "_active_device"):
            if attr in cls.__dict__:
                delattr(cls, attr)


def use_emulated_device(board: str | None = None, **kwargs) -> EmulatedDevice:
    """Create an EmulatedDevice for `board` and make it pynq.Device.active_device."""
    device = EmulatedDevice(board, **kwargs)
    Device.active_device = device
    return device
