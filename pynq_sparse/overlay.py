"""The sparse-kws overlay: `SparseKwsOverlay(pynq.Overlay)` and the core's IP driver `SparseKwsCore`.

On a board the overlay is the packaged bitstream `overlays/<board>/sparse_kws.bit`
(with its .hwh); on the emulated device (`pynq_sparse.emulation`, used
automatically when no board is present) the .hwh alone describes the design.
Either way the real `pynq.Overlay` binds `pynq.lib.dma.DMA` to each AXI DMA and
`SparseKwsCore` to each sparse_kws instance, and the overlay streams words
through all of them with `pynq_sparse.host` (double-buffered, timeout-guarded,
map-reduce over the engines).

Usage::

    from pynq_sparse.overlay import SparseKwsOverlay
    ol = SparseKwsOverlay(model="path/to/model.pskw")    # board from BOARD / PYNQ_SPARSE_BOARD
    scores = ol.execute(words)                            # int8 [B, 32, 32] -> int32 [B, 12]
    ol.batch_size = 1024
    print(ol.sparse_kws_0.counters, ol.throughput_test())
    ol.load_model(other_model)                            # hot reload, no new bitstream
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pynq
from pynq import DefaultIP

from . import core_interface as ci
from .core_interface import REG, VLNV, weight_image
from .emulation import EmulatedDevice, board_name, dma_core_pairs, overlay_file, packaged_bitstream
from .errors import CoreError, DeviceError
from .model_file import SparseModel, as_model, load_model


@dataclass(frozen=True)
class CoreStatus:
    """Decoded STATUS and ERROR registers of one core."""

    idle: bool
    model_loaded: bool
    error: bool
    loading: bool
    error_flags: int
    errors: tuple[str, ...]


class SparseKwsCore(DefaultIP):
    """Driver of one sparse_kws core: weight loading, reset, status and performance counters.

    Register offsets and flags come from `pynq_sparse.core_interface` (`REG`).
    """

    bindto = [VLNV]

    def __init__(self, description: dict) -> None:
        super().__init__(description)
        self.name = description.get("fullpath", "sparse_kws")
        params = description.get("parameters", {})
        self.n_copies = int(params.get("N_COPIES", 0)) or self.read(REG.N_COPIES)

    # --- control -----------------------------------------------------------------------
    def reset(self) -> None:
        """Soft reset: flush the pipeline, clear errors and counters, keep the weights; then enable."""
        self.write(REG.CTRL, ci.CTRL_SOFT_RESET | ci.CTRL_ENABLE)

    def enable(self) -> None:
        """Let the core accept words."""
        self.write(REG.CTRL, ci.CTRL_ENABLE)

    def clear_counters(self) -> None:
        """Zero WORDS_IN/OUT, cycle counters and the per-copy counters."""
        self.write(REG.CTRL, ci.CTRL_CLEAR_COUNTERS | ci.CTRL_ENABLE)

    def clear_errors(self, flags: int = 0xFFFF_FFFF) -> None:
        """Clear ERROR flags (write-1-to-clear)."""
        self.write(REG.ERROR, flags)

    def load_model(self, model: SparseModel | str | Path | bytes | None = None, timeout_s: float = 5.0) -> int:
        """Write `model`'s weight image through WLOAD_DATA and commit it; returns the model_id.

        Raises CoreError when the core rejects the image (CRC mismatch, or shapes this
        bitstream was not built for) or does not report the expected model_id.
        """
        model = as_model(model)
        image = weight_image(model)
        self.clear_errors(ci.ERR_WEIGHT_CRC | ci.ERR_WEIGHT_SHAPE)
        self.write(REG.WLOAD_CTRL, ci.WLOAD_BEGIN)
        for word in image.tolist():
            self.write(REG.WLOAD_DATA, word)
        count = self.read(REG.WLOAD_COUNT)
        if count != image.size:
            raise CoreError(f"{self.name}: the weight loader received {count} of {image.size} words")
        self.write(REG.WLOAD_CTRL, ci.WLOAD_COMMIT)
        deadline = time.perf_counter() + timeout_s
        while self.read(REG.STATUS) & ci.STATUS_LOADING:
            if time.perf_counter() > deadline:
                raise CoreError(f"{self.name}: weight commit did not finish within {timeout_s} s")
        status = self.status
        if status.error_flags & (ci.ERR_WEIGHT_CRC | ci.ERR_WEIGHT_SHAPE):
            raise CoreError(f"{self.name}: model rejected: {', '.join(status.errors)}")
        loaded = self.model_id
        if not status.model_loaded or loaded != model.model_id:
            raise CoreError(f"{self.name}: model_id 0x{loaded:08x} after loading, expected 0x{model.model_id:08x}")
        return loaded

    # --- status ------------------------------------------------------------------------
    @property
    def status(self) -> CoreStatus:
        """STATUS and ERROR decoded."""
        st = self.read(REG.STATUS)
        flags = self.read(REG.ERROR)
        return CoreStatus(idle=bool(st & ci.STATUS_IDLE), model_loaded=bool(st & ci.STATUS_MODEL_LOADED),
                          error=bool(st & ci.STATUS_ERROR), loading=bool(st & ci.STATUS_LOADING),
                          error_flags=flags,
                          errors=tuple(text for bit, text in ci.ERROR_NAMES.items() if flags & bit))

    @property
    def errors(self) -> tuple[str, ...]:
        """Names of the ERROR flags that are set."""
        return self.status.errors

    @property
    def model_id(self) -> int:
        """model_id of the loaded weights (0 when none)."""
        return self.read(REG.MODEL_ID)

    @property
    def version(self) -> str:
        v = self.read(REG.VERSION)
        return f"{v >> 16}.{v & 0xFFFF}"

    @property
    def counters(self) -> dict:
        """Performance counters: words in/out, busy/stall/free-running cycles, and per copy."""
        out = {"words_in": self.read(REG.WORDS_IN), "words_out": self.read(REG.WORDS_OUT),
               "busy_cycles": self.read(REG.BUSY_CYCLES), "stall_cycles": self.read(REG.STALL_CYCLES),
               "cycles": self.read(REG.CYCLES), "copies": []}
        for i in range(self.n_copies):
            base = REG.COPY_BASE + i * REG.COPY_STRIDE
            out["copies"].append({"words": self.read(base + REG.COPY_WORDS),
                                  "busy_cycles": self.read(base + REG.COPY_BUSY),
                                  "stall_cycles": self.read(base + REG.COPY_STALL)})
        return out


def resolve_bitfile(board: str | None = None, device=None) -> str:
    """The file pynq.Overlay should load for `board` on `device`: the .hwh when emulated, else the
    built bitstream (overlays/<board>/sparse_kws.bit, or .xclbin on an Alveo card)."""
    device = device if device is not None else pynq.Device.active_device
    if isinstance(device, EmulatedDevice):
        path = overlay_file(board or device.board, ".hwh")
        if not path.is_file():
            raise DeviceError(f"{path} is missing: regenerate it with "
                              "python -m pynq_sparse.overlays.block_design.hwh --all")
        return str(path)
    path = packaged_bitstream(board)
    if path is None:
        name = board_name(board)
        suffix = ".xclbin" if name == "u250" else ".bit"
        raise DeviceError(f"no sparse-kws bitstream for {name} at {overlay_file(name, suffix)}; build it with "
                          f"`make -C overlays bitstream BOARD={name}` (needs Vivado), or run on the emulated "
                          "device (PYNQ_SPARSE_EMULATION=1)")
    return str(path)


class SparseKwsOverlay(pynq.Overlay):
    """The sparse-kws overlay with its streaming driver.

    Parameters
    ----------
    bitfile_name : str, optional
        Bitstream (or, emulated, .hwh); default: the packaged one for `board`.
    board : str, optional
        Board name (default: PYNQ_SPARSE_BOARD, BOARD, ultra96v2).
    model : SparseModel | path | bytes, optional
        Model to load after download; None leaves the cores empty (call `load_model`).
    batch_size : int
        Words per DMA transfer and engine.
    timeout_s : float, optional
        No-progress timeout of every DMA wait (default 0.5 s + 1 ms per word).
    download, device, ignore_version :
        As for pynq.Overlay.
    """

    def __init__(self, bitfile_name: str | None = None, board: str | None = None,
                 model: SparseModel | str | Path | bytes | None = None, batch_size: int = 64,
                 timeout_s: float | None = None, download: bool = True, device=None, **kwargs) -> None:
        device = device if device is not None else pynq.Device.active_device
        self._streams = None
        self._dispatcher = None
        self._batch_size = batch_size
        self._timeout_s = timeout_s
        self.model: SparseModel | None = None
        if bitfile_name is None:
            bitfile_name = resolve_bitfile(board, device)
        super().__init__(bitfile_name, download=download, device=device, **kwargs)
        hwh = Path(self.bitfile_name)
        self.hwh_path = hwh if hwh.suffix == ".hwh" else hwh.with_suffix(".hwh")
        self.board = board_name(board or getattr(device, "board", None))
        self.engines = dma_core_pairs(self.hwh_path)          # {dma name: core name}
        if not self.engines:
            raise DeviceError(f"{self.hwh_path}: no AXI DMA streams into a sparse_kws core")
        if download:
            for core in self.cores:
                core.reset()
        if model is not None:
            self.load_model(model)

    def download(self, dtbo=None) -> None:
        """Program the bitstream again: DMA channels are restarted and, as the cores lost their
        weights, the model is reloaded."""
        super().download(dtbo)
        if getattr(self, "engines", None):           # not during __init__ (it does this itself)
            self.reset_hardware()
            if self.model is not None:
                self.load_model(self.model)

    # --- parts -------------------------------------------------------------------------
    @property
    def is_emulated(self) -> bool:
        """True on the emulated device."""
        return isinstance(self.device, EmulatedDevice)

    @property
    def dmas(self) -> list:
        """The DMA drivers (pynq.lib.dma.DMA), one per engine."""
        return [getattr(self, name) for name in self.engines]

    @property
    def cores(self) -> list[SparseKwsCore]:
        """The core drivers, in the order of `dmas`."""
        return [getattr(self, name) for name in self.engines.values()]

    @property
    def n_copies(self) -> int:
        """Network copies in the whole overlay."""
        return sum(core.n_copies for core in self.cores)

    @property
    def fclk_mhz(self) -> float:
        """The PL clock the cores run at."""
        if self.is_emulated:
            return self.device.fclk_mhz
        try:
            return float(pynq.Clocks.fclk0_mhz)
        except Exception:               # Alveo (no PS clocks) or an unsupported architecture
            return float("nan")

    # --- streaming ---------------------------------------------------------------------
    @property
    def dispatcher(self):
        """The `pynq_sparse.host.Dispatcher` over every engine (buffers allocated on first use)."""
        if self._dispatcher is None:
            from pynq_sparse.host import Dispatcher, DmaStream
            mid = self.model.model_id if self.model is not None else None
            self._streams = [DmaStream(dma, core, batch_size=self._batch_size, timeout_s=self._timeout_s,
                                       expected_model_id=mid) for dma, core in zip(self.dmas, self.cores)]
            self._dispatcher = Dispatcher(self._streams, copies=[core.n_copies for core in self.cores])
        return self._dispatcher

    @property
    def batch_size(self) -> int:
        """Words per DMA transfer and engine; setting it re-allocates the buffers."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        if self._dispatcher is not None:
            self._dispatcher.batch_size = value
        self._batch_size = int(value)

    def allocate_words(self, n: int):
        """A DMA buffer for n words (int8 [n, 32, 32]) that `execute_words` streams without copying.

        Fill it in place, e.g. ``fe.words(clips, out=buf)``; the engines read their slices of it
        directly (no packing into the driver's own buffers). Free it with ``buf.freebuffer()``.
        """
        return pynq.allocate((int(n), 32, 32), dtype=np.int8, target=self.device)

    def execute_words(self, words: np.ndarray, check_values: bool = True):
        """Stream words (int8 [B, 32, 32] or [32, 32]) through the overlay: a `Results` in input order."""
        if self.model is None:
            raise CoreError("no model loaded: call load_model(...) first")
        return self.dispatcher.run(words, check_values=check_values)

    def execute(self, words: np.ndarray) -> np.ndarray:
        """Scores int32 [B, 12] for words int8 [B, 32, 32] (bit-exact with pynq_sparse.golden)."""
        return np.array(self.execute_words(words).scores)

    def throughput_test(self, **kwargs) -> dict:
        """FINN-style throughput figures of the host path (see pynq_sparse.host.throughput_test)."""
        from pynq_sparse.host import throughput_test
        return throughput_test(self, **kwargs)

    # --- model and recovery ------------------------------------------------------------
    def load_model(self, model: SparseModel | str | Path | bytes | None = None) -> int:
        """Load `model` (default: the shipped one) into every core; returns its model_id.

        Hot reload: no new bitstream; words already in flight finish with the old weights
        (call between batches).
        """
        model = as_model(model)
        for core in self.cores:
            core.load_model(model)
        self.model = model
        if self._streams is not None:
            for stream in self._streams:
                stream.expected_model_id = model.model_id
        return model.model_id

    def reset_hardware(self) -> None:
        """Reset every DMA engine and core (weights stay loaded): the recovery after an error."""
        if self._dispatcher is not None:
            self._dispatcher.recover()
            return
        from pynq_sparse.host import reset_dma_engine
        for dma, core in zip(self.dmas, self.cores):
            reset_dma_engine(dma, dma.description.get("fullpath", "dma"))
            core.reset()

    def counters(self) -> list[dict]:
        """Performance counters of every core."""
        return [core.counters for core in self.cores]
