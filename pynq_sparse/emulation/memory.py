"""Physical memory of the emulated board: contiguous buffers with physical addresses, as pynq.allocate gives.

Buffers are numpy arrays (`pynq.buffer.PynqBuffer`) over host memory; each one
occupies a range of a physical address window (like the CMA pool of a Zynq
board) so that a DMA model can read and write them by address. A range is
free again once the buffer and every view of it are garbage.

Usage::

    mem = PhysicalMemory(base=0x6000_0000, size=256 << 20)
    phys, backing = mem.allocate(4096)
    mem.view(phys + 64, 128)[:] = 7          # what a DMA write does
"""
from __future__ import annotations

import bisect
import threading
import weakref

import numpy as np

from ..errors import DeviceError

PAGE = 4096


class DecodeError(DeviceError):
    """An access to a physical address range that no allocated buffer covers."""


class PhysicalMemory:
    """A window [base, base + size) of physical addresses handed out page-aligned, first fit."""

    def __init__(self, base: int, size: int, align: int = PAGE) -> None:
        self.base, self.size, self.align = base, size, align
        self._starts: list[int] = []                       # sorted start addresses of live ranges
        self._ranges: dict[int, tuple[int, weakref.ref]] = {}   # start -> (end, backing array)
        self._lock = threading.RLock()

    def _sweep(self) -> None:
        dead = [s for s, (_, ref) in self._ranges.items() if ref() is None]
        for s in dead:
            del self._ranges[s]
            self._starts.remove(s)

    def allocate(self, nbytes: int) -> tuple[int, np.ndarray]:
        """Reserve `nbytes` (at least one byte) and return (physical address, zeroed uint8 backing array)."""
        span = max(1, int(nbytes))
        span = -(-span // self.align) * self.align
        with self._lock:
            self._sweep()
            cursor = self.base
            for start in self._starts:
                if start - cursor >= span:
                    break
                cursor = self._ranges[start][0]
            if cursor + span > self.base + self.size:
                raise DeviceError(
                    f"emulated contiguous memory exhausted: {self.bytes_in_use >> 20} MB of {self.size >> 20} MB "
                    f"in use, {span} bytes requested; free buffers you no longer use (del buffer)")
            backing = np.empty(span, dtype=np.uint8)
            backing.fill(0)             # touch every page now, as contiguous memory is pinned
            bisect.insort(self._starts, cursor)
            self._ranges[cursor] = (cursor + span, weakref.ref(backing))
            return cursor, backing

    def view(self, phys: int, nbytes: int) -> np.ndarray:
        """Writable uint8 view of [phys, phys + nbytes); DecodeError when no live buffer holds all of it."""
        with self._lock:
            i = bisect.bisect_right(self._starts, phys) - 1
            if i >= 0:
                start = self._starts[i]
                end, ref = self._ranges[start]
                backing = ref()
                if backing is not None and phys + nbytes <= end:
                    off = phys - start
                    return backing[off:off + nbytes]
        raise DecodeError(f"no buffer at physical address 0x{phys:x} (+{nbytes} bytes)")

    def contains(self, phys: int, nbytes: int) -> bool:
        """True when [phys, phys + nbytes) lies in the window (allocated or not)."""
        return self.base <= phys and phys + nbytes <= self.base + self.size

    @property
    def bytes_in_use(self) -> int:
        """Bytes of the window held by live buffers."""
        with self._lock:
            self._sweep()
            return sum(end - start for start, (end, _) in self._ranges.items())

    @property
    def n_buffers(self) -> int:
        """Live buffers."""
        with self._lock:
            self._sweep()
            return len(self._starts)
