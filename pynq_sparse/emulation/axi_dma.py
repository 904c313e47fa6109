"""Model of the AXI DMA engine (PG021) in simple mode, as seen through its registers.

Enough of the engine is modelled for the real `pynq.lib.dma.DMA` driver: run/stop
and soft reset in DMACR, halted/idle/error/IOC bits in DMASR, buffer address and
length registers, transfers that start when LENGTH is written, S2MM's LENGTH
read-back of the bytes received, and the errors a driver must handle (zero
length, decode error, an S2MM packet longer than its buffer). Data moves
between emulated physical memory and the connected stream endpoints whenever
a register is accessed, so a transfer completes while the host polls DMASR.

Injected faults (for tests): a channel can stall (its next transfer never
completes) and MM2S can assert TLAST early (a framing error for the core).

Usage::

    dma = AxiDmaModel("axi_dma_0", memory, windows=[(0, 1 << 31)])
    dma.connect(sink=core, source=core)
    dma.write(0x00, 1); dma.write(0x18, phys); dma.write(0x28, nbytes)   # MM2S transfer
    while not dma.read(0x04) & 0x2: pass
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from ..overlays.block_design.axi_dma import (CR_RESET, CR_RESET_VALUE, CR_RS, DMA_REG, MM2S_OFFSET, S2MM_OFFSET,
                                             SR_DEC_ERR, SR_ERR_IRQ, SR_ERRORS, SR_HALTED, SR_IDLE, SR_INT_ERR,
                                             SR_IOC_IRQ, SR_RESET_VALUE)
from .memory import DecodeError, PhysicalMemory


class StreamSink(Protocol):
    """What MM2S streams into (the core's s_axis)."""

    def accept(self, data: np.ndarray, tlast: bool, credit: int = 0) -> int:
        """Take a prefix of `data` (uint8; `tlast` on its last byte); return the bytes taken.

        `credit`: results a receiving S2MM transfer will take at once beyond those already
        waiting (the sink may run that far ahead of its own output FIFO).
        """
        ...


class StreamSource(Protocol):
    """What S2MM drains (the core's m_axis)."""

    unit_bytes: int     # the source emits whole units of this size (one result)

    def drain(self, dest: np.ndarray) -> tuple[int, bool]:
        """Write pending output into `dest` (uint8); return (bytes written, ended with TLAST)."""
        ...

    def pending_bytes(self) -> int:
        """Output bytes waiting."""
        ...


class _Channel:
    def __init__(self, name: str, offset: int) -> None:
        self.name, self.offset = name, offset
        self.reset()

    def reset(self) -> None:
        self.cr, self.sr = CR_RESET_VALUE & ~CR_RS, SR_RESET_VALUE
        self.addr = self.addr_msb = self.length = 0
        self.active = False
        self.done = 0                 # bytes moved in the current/last transfer
        self.phys = 0
        self.segments: list[tuple[int, int, bool]] = []   # MM2S: (start, end, tlast) packets
        self.stall_next = False       # injected fault, armed for the next transfer
        self.stalled = False
        self.tlast_at: int | None = None   # injected fault (MM2S): TLAST after this many bytes
        self.transfers = 0
        self.bytes_total = 0
        self.latency_polls = getattr(self, "latency_polls", 0)   # kept across resets (a test knob)
        self.polls_left = 0

    @property
    def running(self) -> bool:
        return not self.sr & SR_HALTED

    def fail(self, bits: int) -> None:
        """An error halts the channel until the engine is reset (PG021)."""
        self.sr = (self.sr | bits | SR_HALTED | SR_ERR_IRQ) & ~SR_IDLE
        self.cr &= ~CR_RS
        self.active = False

    def complete(self) -> None:
        self.active = False
        self.sr |= SR_IOC_IRQ
        if self.polls_left <= 0:
            self.sr |= SR_IDLE
        self.transfers += 1
        self.bytes_total += self.done


class AxiDmaModel:
    """One AXI DMA engine: an MM2S and an S2MM channel between physical memory and two streams."""

    def __init__(self, name: str, memory: PhysicalMemory, windows: list[tuple[int, int]],
                 addr_width: int = 32, length_width: int = 26) -> None:
        self.name = name
        self.memory = memory
        self.windows = list(windows)          # (base, size) ranges its masters can address
        self.addr_width = addr_width
        self.length_mask = (1 << length_width) - 1
        self.mm2s = _Channel("mm2s", MM2S_OFFSET)
        self.s2mm = _Channel("s2mm", S2MM_OFFSET)
        self.sink: StreamSink | None = None
        self.source: StreamSource | None = None

    def connect(self, sink: StreamSink | None, source: StreamSource | None) -> None:
        """Wire M_AXIS_MM2S to `sink` and S_AXIS_S2MM to `source`."""
        self.sink, self.source = sink, source

    # --- register interface -------------------------------------------------------------
    def _channel(self, offset: int) -> tuple[_Channel, int]:
        if offset >= S2MM_OFFSET:
            return self.s2mm, offset - S2MM_OFFSET
        return self.mm2s, offset

    def reset(self) -> None:
        """Soft reset: both channels back to their reset state (faults disarmed)."""
        self.mm2s.reset()
        self.s2mm.reset()

    def read(self, offset: int) -> int:
        ch, reg = self._channel(offset)
        if reg == DMA_REG.DMASR:
            self.pump()
            if ch.polls_left > 0:
                ch.polls_left -= 1
                if ch.polls_left == 0 and not ch.active and ch.sr & SR_IOC_IRQ:
                    ch.sr |= SR_IDLE
            return ch.sr
        if reg == DMA_REG.DMACR:
            return ch.cr
        if reg == DMA_REG.ADDR:
            return ch.addr
        if reg == DMA_REG.ADDR_MSB:
            return ch.addr_msb
        if reg == DMA_REG.LENGTH:
            self.pump()
            if ch is self.s2mm and ch.sr & SR_IDLE:
                return ch.done          # S2MM reports the bytes it actually received
            return ch.length
        return 0

    def write(self, offset: int, value: int) -> None:
        ch, reg = self._channel(offset)
        if reg == DMA_REG.DMACR:
            if value & CR_RESET:
                self.reset()
                return
            ch.cr = value
            if value & CR_RS:
                if not ch.sr & SR_ERRORS:
                    ch.sr &= ~SR_HALTED
            else:
                ch.sr |= SR_HALTED
                ch.active = False
        elif reg == DMA_REG.DMASR:
            ch.sr &= ~(value & (SR_IOC_IRQ | SR_ERR_IRQ | (1 << 13)))
        elif reg == DMA_REG.ADDR:
            ch.addr = value
        elif reg == DMA_REG.ADDR_MSB:
            ch.addr_msb = value
        elif reg == DMA_REG.LENGTH:
            self._start(ch, value & self.length_mask)
        self.pump()

    # --- transfers ----------------------------------------------------------------------
    def _start(self, ch: _Channel, nbytes: int) -> None:
        ch.length = nbytes
        if not ch.running or ch.active:
            return                      # ignored, as by the hardware (programming error)
        if nbytes == 0:
            ch.fail(SR_INT_ERR)
            return
        phys = ch.addr | (ch.addr_msb << 32 if self.addr_width > 32 else 0)
        if not any(base <= phys and phys + nbytes <= base + size for base, size in self.windows):
            ch.fail(SR_DEC_ERR)
            return
        try:
            self.memory.view(phys, nbytes)
        except DecodeError:
            ch.fail(SR_DEC_ERR)
            return
        ch.phys, ch.done, ch.active = phys, 0, True
        ch.sr &= ~(SR_IDLE | SR_IOC_IRQ)
        ch.polls_left = ch.latency_polls
        ch.stalled, ch.stall_next = ch.stall_next, False
        if ch is self.mm2s:
            cut = ch.tlast_at
            ch.tlast_at = None
            if cut is not None and 0 < cut < nbytes:
                ch.segments = [(0, cut, True), (cut, nbytes, True)]
            else:
                ch.segments = [(0, nbytes, True)]

    def pump(self) -> None:
        """Move data until neither channel can make progress."""
        progress = True
        while progress:
            progress = self._pump_mm2s() | self._pump_s2mm()

    def _pump_mm2s(self) -> bool:
        ch = self.mm2s
        if not ch.active or ch.stalled or self.sink is None:
            return False
        moved = False
        while ch.segments:
            start, end, tlast = ch.segments[0]
            pos = max(start, ch.done)
            data = self.memory.view(ch.phys + pos, end - pos)
            taken = self.sink.accept(data, tlast, self._credit())
            if taken:
                moved = True
                ch.done = pos + taken
            if ch.done < end:
                break                   # back-pressure: the core's FIFOs are full
            ch.segments.pop(0)
        if not ch.segments:
            ch.complete()
            moved = True
        return moved

    def _credit(self) -> int:
        """Results our own S2MM transfer can still take beyond those the sink already holds."""
        ch = self.s2mm
        if not ch.active or ch.stalled or self.source is not self.sink:
            return 0
        room = (ch.length - ch.done) // self.source.unit_bytes
        return max(0, room - self.source.pending_bytes() // self.source.unit_bytes)

    def _pump_s2mm(self) -> bool:
        ch = self.s2mm
        if not ch.active or ch.stalled or self.source is None:
            return False
        room = ch.length - ch.done
        nbytes, tlast = self.source.drain(self.memory.view(ch.phys + ch.done, room)) if room else (0, False)
        ch.done += nbytes
        if tlast:
            ch.complete()
            return True
        if self.source.pending_bytes() and ch.length - ch.done < self.source.unit_bytes:
            ch.fail(SR_INT_ERR)        # the packet is longer than the buffer
            return True
        return nbytes > 0

    def set_latency(self, mm2s: int = 0, s2mm: int = 0) -> None:
        """Transfers report Idle only after this many DMASR reads (a stand-in for transfer time)."""
        self.mm2s.latency_polls, self.s2mm.latency_polls = int(mm2s), int(s2mm)

    # --- faults -------------------------------------------------------------------------
    def inject_stall(self, channel: str = "mm2s") -> None:
        """The next transfer on `channel` never completes (until the engine is reset)."""
        self._by_name(channel).stall_next = True

    def inject_early_tlast(self, at_byte: int = 40) -> None:
        """The next MM2S transfer asserts TLAST after `at_byte` bytes (and again at its end)."""
        self.mm2s.tlast_at = at_byte

    def _by_name(self, channel: str) -> _Channel:
        if channel not in ("mm2s", "s2mm"):
            raise ValueError(f"channel must be 'mm2s' or 's2mm', got {channel!r}")
        return self.mm2s if channel == "mm2s" else self.s2mm
