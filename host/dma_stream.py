"""Stream words through one AXI DMA engine and the sparse_kws core behind it, never hanging.

`DmaStream` owns four buffers allocated once per batch size (two input, two
output: double buffering). `run(words)` cuts the words into chunks of
`batch_size` and pipelines them: while chunk i is computed and received, chunk
i+1 is packed and sent, and the results of chunk i are copied out while chunk
i+1 is in flight. Results come back in input order (checked with the core's
sequence numbers).

Every wait is guarded. PYNQ's `_SDMAChannel.wait()` spins until DMASR says idle,
forever if a transfer stalls. Here the status is polled with a deadline that
moves only while the core makes progress (its WORDS_IN/WORDS_OUT counters
change), and the core's STATUS is read every few polls so that a framing or
parity error ends the wait at once. On a timeout or error the engine is reset,
its channels restarted and the core soft-reset (its weights stay loaded), then a
specific error is raised: `DmaTimeoutError` (naming the engine, channel and
bytes), `DmaError` (DMA error bits, wrong length, TLAST framing) or `CoreError`
(weight parity, no model). The engine is usable again right away.

Usage::

    stream = DmaStream(overlay.axi_dma_0, overlay.sparse_kws_0, batch_size=256, timeout_s=0.5)
    results = stream.run(words)           # Results: .scores int32 [B, 12], .classes, .seq
    stream.batch_size = 1024              # re-allocates the four buffers
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields

import numpy as np
import pynq

from pynq_sparse import core_interface as ci
from pynq_sparse.core_interface import REG
from pynq_sparse.errors import CoreError, DeviceError, DmaError, DmaTimeoutError, PynqSparseError
from pynq_sparse.overlays.block_design.axi_dma import (CR_RESET, CR_RS, DMA_REG, MM2S_OFFSET, S2MM_OFFSET,
                                                       SR_ERRORS, SR_HALTED, SR_IDLE, describe_status)

from .packing import PACKER, Results, as_words, dma_view

BASE_TIMEOUT_S = 0.5        # a transfer may show no progress for this long (plus the per-word allowance)
PER_WORD_TIMEOUT_S = 1e-3   # allowance per word of the transfer (covers a slow core at batch 65,535)
CORE_CHECK_POLLS = 64       # read the core's STATUS every this many DMASR polls while waiting


def core_error(flags: int, where: str) -> PynqSparseError:
    """The error to raise for the core's ERROR flags: DmaError for framing, CoreError otherwise."""
    names = [text for bit, text in ci.ERROR_NAMES.items() if flags & bit]
    detail = ", ".join(names) or f"flags 0x{flags:x}"
    if flags & ci.ERR_WEIGHT_PARITY:
        return CoreError(f"{where}: {detail}: a weight memory is corrupt; reload the model "
                         "(overlay.load_model(...)) after the reset")
    if flags & ci.ERR_NO_MODEL:
        return CoreError(f"{where}: {detail}: load a model first (overlay.load_model(...))")
    if flags & (ci.ERR_WEIGHT_CRC | ci.ERR_WEIGHT_SHAPE):
        return CoreError(f"{where}: {detail}")
    if flags & ci.ERR_TLAST:
        return DmaError(f"{where}: framing error: {detail}; every transfer must hold whole words "
                        f"({ci.WORD_BYTES} bytes each), check the stream's TLAST and the transfer length")
    return CoreError(f"{where}: core error {detail}")


def reset_dma_engine(dma, name: str = "dma", timeout_s: float = 0.1) -> None:
    """Soft-reset an AXI DMA engine (both channels) and restart its channels, each step with a timeout.

    Leaves PYNQ's channel objects ready for their next `transfer()`.
    """
    mmio = dma.mmio
    mmio.write(MM2S_OFFSET + DMA_REG.DMACR, CR_RESET)
    deadline = time.perf_counter() + timeout_s
    while mmio.read(MM2S_OFFSET + DMA_REG.DMACR) & CR_RESET:
        if time.perf_counter() > deadline:
            raise DeviceError(f"{name}: the DMA soft reset did not complete; reload the overlay")
    for ch, offset in ((dma.sendchannel, MM2S_OFFSET), (dma.recvchannel, S2MM_OFFSET)):
        if ch is None:
            continue
        mmio.write(offset + DMA_REG.DMACR, CR_RS)
        deadline = time.perf_counter() + timeout_s
        while mmio.read(offset + DMA_REG.DMASR) & SR_HALTED:
            if time.perf_counter() > deadline:
                raise DeviceError(f"{name}: the DMA channel did not restart after reset")
        ch.start()                  # PYNQ's own bookkeeping (first transfer after start)
        ch._active_buffer = None


@dataclass
class StageTimes:
    """Seconds spent per stage of the host path, summed over calls (see `DmaStream.stats`)."""

    pack: float = 0.0          # copying words into the DMA input buffers
    submit: float = 0.0        # programming the DMA (flush, address and length registers)
    wait: float = 0.0          # polling DMASR until transfers complete (device time + polling)
    unpack: float = 0.0        # copying result rows out of the DMA output buffers
    check: float = 0.0         # checking lengths, sequence numbers, model id and core status
    words: int = 0
    transfers: int = 0

    def add(self, other: "StageTimes") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _Wait:
    """One in-flight channel transfer and its guard."""

    __slots__ = ("chunk", "nbytes", "words", "deadline", "polls", "progress", "counter")

    def __init__(self, chunk: int, nbytes: int, words: int, deadline: float, counter: int, progress: int):
        self.chunk, self.nbytes, self.words, self.deadline = chunk, nbytes, words, deadline
        self.counter = counter           # the core counter that shows this transfer's progress
        self.polls, self.progress = 0, progress


class DmaStream:
    """One DMA engine (and its core): double-buffered, timeout-guarded streaming of words.

    Parameters
    ----------
    dma : pynq.lib.dma.DMA
        The engine (simple mode, both channels).
    core : pynq.DefaultIP, optional
        The sparse_kws core it feeds (any driver with `read`/`write`); enables the
        progress-based timeout, error decoding and core reset on recovery.
    batch_size : int > 0
        Words per DMA transfer; buffers hold this many words (max: the engine's 64 MB limit).
    timeout_s : float, optional
        Fixed no-progress timeout per transfer; default 0.5 s + 1 ms per word.
    name : str, optional
        Name used in errors (default: the DMA's instance name).
    expected_model_id : int, optional
        When set, every result must carry this model_id (checked per chunk).
    """

    def __init__(self, dma, core=None, batch_size: int = 64, timeout_s: float | None = None,
                 name: str | None = None, expected_model_id: int | None = None) -> None:
        self.dma, self.core = dma, core
        self.device = dma.device
        self.name = name or getattr(dma, "description", {}).get("fullpath", "dma")
        self.timeout_s = timeout_s
        self.expected_model_id = expected_model_id
        self._mmio = dma.mmio
        self._send, self._recv = dma.sendchannel, dma.recvchannel
        if self._send is None or self._recv is None:
            raise DeviceError(f"{self.name}: the DMA needs both MM2S and S2MM channels (C_INCLUDE_MM2S/S2MM = 1)")
        self.max_batch_size = min(dma.buffer_max_size // ci.WORD_BYTES, dma.buffer_max_size // ci.RESULT_BYTES)
        self._in: list = []
        self._out: list = []
        self._batch_size = 0
        self.stats = StageTimes()
        self.resets = 0
        self._next_seq: int | None = None
        self._arange = np.zeros(0, dtype=np.uint32)
        self.batch_size = batch_size

    # --- buffers -----------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """Words per DMA transfer; setting it re-allocates the four buffers."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        value = int(value)
        if not 1 <= value <= self.max_batch_size:
            raise ValueError(f"{self.name}: batch_size must be 1..{self.max_batch_size} "
                             f"(the DMA moves at most {self.dma.buffer_max_size} bytes per transfer), got {value}")
        if value == self._batch_size:
            return
        self.close()
        self._in = [pynq.allocate((value, 32, 32), dtype=np.int8, target=self.device) for _ in range(2)]
        self._out = [pynq.allocate((value, ci.RESULT_INTS), dtype=np.int32, target=self.device) for _ in range(2)]
        # plain ndarray views of the same memory: slicing a PynqBuffer costs microseconds each time
        self._in_np = [np.asarray(b) for b in self._in]
        self._out_np = [np.asarray(b) for b in self._out]
        self._batch_size = value

    @property
    def input_buffers(self) -> list:
        """The two int8 [batch_size, 32, 32] DMA input buffers (write words here for zero-copy use)."""
        return self._in

    @property
    def output_buffers(self) -> list:
        """The two int32 [batch_size, 16] DMA output buffers."""
        return self._out

    def close(self) -> None:
        """Release the buffers (they are re-allocated on the next batch_size change)."""
        for buf in self._in + self._out:
            if hasattr(buf, "freebuffer"):
                buf.freebuffer()
        self._in, self._out, self._batch_size = [], [], 0
        self._in_np, self._out_np = [], []

    # --- register helpers --------------------------------------------------------------
    def _status(self, offset: int) -> int:
        return self._mmio.read(offset + DMA_REG.DMASR)

    def _progress(self, counter: int) -> int:
        return 0 if self.core is None else self.core.read(counter)

    def _wait_for(self, channel: str, chunk: int, words: int) -> _Wait:
        """A guard for a transfer of `words` words on `channel` that starts now."""
        counter = REG.WORDS_IN if channel == "mm2s" else REG.WORDS_OUT
        nbytes = words * (ci.WORD_BYTES if channel == "mm2s" else ci.RESULT_BYTES)
        return _Wait(chunk, nbytes, words, time.perf_counter() + self._timeout_for(words), counter,
                     self._progress(counter))

    def _timeout_for(self, words: int) -> float:
        if self.timeout_s is not None:
            return self.timeout_s
        return BASE_TIMEOUT_S + PER_WORD_TIMEOUT_S * words

    def _core_flags(self) -> int:
        if self.core is None:
            return 0
        if self.core.read(REG.STATUS) & ci.STATUS_ERROR:
            return self.core.read(REG.ERROR)
        return 0

    def poll(self, channel: str, wait: _Wait, upstream: _Wait | None = None) -> bool:
        """One guarded poll of `channel` ("mm2s"/"s2mm"): True when its transfer completed.

        Raises (after `recover()`) on DMA error bits, core errors and timeouts. `upstream`
        is the MM2S transfer an S2MM transfer waits for: a timeout blames it if it is stuck.
        """
        offset = MM2S_OFFSET if channel == "mm2s" else S2MM_OFFSET
        status = self._status(offset)
        if status & SR_IDLE and not status & SR_ERRORS:
            return True
        what = f"{self.name} {channel.upper()} transfer of {wait.nbytes} bytes ({wait.words} words)"
        if status & (SR_ERRORS | SR_HALTED):
            flags = self._core_flags()
            self.recover()
            if flags:
                raise core_error(flags, what)
            raise DmaError(f"{what} failed: DMASR 0x{status:08x} ({describe_status(status)}); "
                           "the engine was reset")
        wait.polls += 1
        if wait.polls % CORE_CHECK_POLLS == 0:
            flags = self._core_flags()
            if flags:
                self.recover()
                raise core_error(flags, what)
        now = time.perf_counter()
        if now > wait.deadline:
            progress = self._progress(wait.counter)
            if self.core is not None and progress != wait.progress:
                wait.progress, wait.deadline = progress, now + self._timeout_for(wait.words)
                return False
            flags = self._core_flags()
            counts = self._progress(REG.WORDS_IN), self._progress(REG.WORDS_OUT)
            up_status = self._status(MM2S_OFFSET)
            if upstream is not None and not up_status & (SR_IDLE | SR_HALTED):
                what = (f"{self.name} MM2S transfer of {upstream.nbytes} bytes ({upstream.words} words), "
                        f"whose results the S2MM transfer waits for,")
                status = up_status
            self.recover()
            if flags:
                raise core_error(flags, what)
            raise DmaTimeoutError(
                f"{what} made no progress for {self._timeout_for(wait.words):.3g} s "
                f"(DMASR 0x{status:08x}: {describe_status(status)}; core words in/out {counts[0]}/{counts[1]}); "
                "the engine was reset")
        return False

    def _transfer(self, channel, buffer, nbytes: int, what: str) -> None:
        """Start a transfer with PYNQ's driver; its refusals become DmaError (after recovery).

        A channel found halted (stopped, or left in error by someone else) is recovered first.
        """
        if not channel.running:
            self.recover()
        try:
            channel.transfer(buffer, nbytes=nbytes)
        except (RuntimeError, ValueError) as err:
            self.recover()
            raise DmaError(f"{self.name} {what} transfer of {nbytes} bytes refused: {err}; "
                           "the engine was reset") from err

    def recover(self) -> None:
        """Reset the DMA engine, restart both channels and soft-reset the core (weights stay loaded)."""
        reset_dma_engine(self.dma, self.name)
        if self.core is not None:
            self.core.write(REG.CTRL, ci.CTRL_SOFT_RESET | ci.CTRL_ENABLE)
        self._next_seq = None
        self.resets += 1

    # --- streaming ---------------------------------------------------------------------
    def job(self, words: np.ndarray, out: np.ndarray, direct=None) -> "StreamJob":
        """A pipelined job for int8 words [n, 32, 32] whose result rows go to `out` (int32 [n, 16]).

        `direct`: the same words in a DMA buffer of this device (`packing.dma_view`): its chunks
        are sent in place instead of being packed into the input buffers (zero copy).
        """
        return StreamJob(self, words, out, direct)

    def run(self, words: np.ndarray, out: np.ndarray | None = None, check_values: bool = False) -> Results:
        """Stream `words` (int8 [B, 32, 32]) through the engine; results in input order.

        `out` (int32 [B, 16]) receives the rows if given. `check_values` also checks
        that the words hold 0..127 (shape and dtype are always checked).
        """
        direct = dma_view(words, self.device)
        words = as_words(words, check_values=check_values)
        rows = out if out is not None else np.empty((len(words), ci.RESULT_INTS), dtype=np.int32)
        job = self.job(words, rows, direct)
        while not job.done:
            job.step()
        return Results(rows)

    def buffer_job(self, n: int | None = None) -> "BufferJob":
        """A job that sends the first `n` words already in input buffer 0 into output buffer 0."""
        return BufferJob(self, self.batch_size if n is None else int(n))

    def execute_on_buffers(self, n: int | None = None) -> None:
        """Send the first `n` words already in input buffer 0 and receive into output buffer 0.

        The hardware-only part of the host path (FINN's execute_on_buffers): no packing,
        no unpacking, but the same guarded waits and checks.
        """
        job = self.buffer_job(n)
        while not job.done:
            job.step()

    def _check_chunk(self, buf: np.ndarray, n: int, wait: _Wait) -> None:
        """Length, TLAST, sequence and model checks of one received chunk; raises after recovery."""
        what = f"{self.name} S2MM transfer of {wait.nbytes} bytes ({n} words)"
        got = self._recv.transferred
        problem = None
        if got != n * ci.RESULT_BYTES:
            problem = DmaError(f"{what}: received {got} bytes, expected {n * ci.RESULT_BYTES} "
                               f"({n} results of {ci.RESULT_BYTES} bytes); the engine was reset")
        else:
            rows = buf[:n]
            seq = rows[:, ci.RESULT_SEQ].view(np.uint32)
            first = int(seq[0])
            if len(self._arange) < n:
                self._arange = np.arange(max(n, self.batch_size), dtype=np.uint32)
            if self._next_seq is not None and first != self._next_seq:
                problem = DmaError(f"{what}: results out of order (sequence {first}, expected {self._next_seq})")
            elif n > 1 and not np.array_equal(seq - np.uint32(first), self._arange[:n]):    # mod 2^32
                problem = DmaError(f"{what}: results out of order within the transfer")
            elif not rows[-1, ci.RESULT_FLAGS] & 1:
                problem = DmaError(f"{what}: the last result does not carry TLAST")
            elif self.expected_model_id is not None and np.any(
                    rows[:, ci.RESULT_MODEL_ID].view(np.uint32) != np.uint32(self.expected_model_id)):
                bad = int(rows[:, ci.RESULT_MODEL_ID].view(np.uint32)[0])
                problem = CoreError(f"{what}: results computed by model 0x{bad:08x}, expected "
                                    f"0x{self.expected_model_id:08x} (a model was reloaded while words were in flight)")
            else:
                self._next_seq = (int(seq[-1]) + 1) & 0xFFFF_FFFF
        flags = self._core_flags() if problem is None else 0
        if flags:
            problem = core_error(flags, what)
        if problem is not None:
            self.recover()
            raise problem


class StreamJob:
    """The pipeline state of one `DmaStream.run`; `step()` never blocks (the dispatcher interleaves jobs)."""

    def __init__(self, stream: DmaStream, words: np.ndarray, out: np.ndarray, direct=None) -> None:
        self.s = stream
        self.words, self.out = words, out
        self.direct = direct                # the words in a DMA buffer: chunks are sent in place
        bs = stream.batch_size
        self.chunks = [(i, min(bs, len(words) - i)) for i in range(0, len(words), bs)]
        self.m = len(self.chunks)
        self.packed = self.sent = self.sends_done = self.recvs_done = 0
        if direct is not None:
            self.packed = self.m                # nothing to pack: the DMA reads the words where they are
        self.send: _Wait | None = None
        self.recv: _Wait | None = None
        self.stats = StageTimes()
        stream._next_seq = None

    @property
    def done(self) -> bool:
        return self.recvs_done == self.m

    @property
    def busy(self) -> bool:
        """A transfer of this job is in flight (the engine must be reset if the job is abandoned)."""
        return self.send is not None or self.recv is not None

    def step(self) -> None:
        """Do whatever can be done now: poll, arm the receive, pack, send, unpack."""
        s, st = self.s, self.stats
        t = time.perf_counter
        if self.send is not None:
            t0 = t()
            if s.poll("mm2s", self.send):
                s._send.wait()
                self.send = None
                self.sends_done += 1
            st.wait += t() - t0
        if self.recv is not None:
            t0 = t()
            upstream = self.send if self.send is not None and self.send.chunk == self.recv.chunk else None
            finished = s.poll("s2mm", self.recv, upstream)
            if finished:
                s._recv.wait()
            t1 = t()
            st.wait += t1 - t0
            if finished:
                r = self.recv.chunk
                start, n = self.chunks[r]
                buf = s._out_np[r % 2]
                s._check_chunk(buf, n, self.recv)
                t2 = t()
                np.copyto(self.out[start:start + n], buf[:n])
                st.check += t2 - t1
                st.unpack += t() - t2
                self.recv = None
                self.recvs_done += 1
                st.words += n
        if self.recv is None and self.recvs_done < self.m:
            t0 = t()
            r = self.recvs_done
            n = self.chunks[r][1]
            s._transfer(s._recv, s._out[r % 2], n * ci.RESULT_BYTES, "S2MM")
            self.recv = s._wait_for("s2mm", r, n)
            st.submit += t() - t0
            st.transfers += 1
        if self.packed < self.m and self.packed < self.sends_done + 2:
            p = self.packed                     # buffer p % 2 is free: the send of chunk p - 2 is done
            start, n = self.chunks[p]
            st.pack += PACKER.pack(self.words[start:start + n], s._in_np[p % 2])
            self.packed += 1
        if self.send is None and self.sent < self.packed and self.sent <= self.recvs_done + 1:
            t0 = t()
            k = self.sent
            start, n = self.chunks[k]
            src = self.direct[start:start + n] if self.direct is not None else s._in[k % 2]
            s._transfer(s._send, src, n * ci.WORD_BYTES, "MM2S")
            self.send = s._wait_for("mm2s", k, n)
            self.sent += 1
            st.submit += t() - t0
        if self.done:
            s.stats.add(st)
            self.stats = StageTimes()


class BufferJob:
    """One transfer pair on pre-filled buffers (input 0 -> output 0); `step()` never blocks."""

    def __init__(self, stream: DmaStream, n: int) -> None:
        if not 1 <= n <= stream.batch_size:
            raise ValueError(f"{stream.name}: n must be 1..{stream.batch_size}, got {n}")
        self.s, self.n = stream, n
        t0 = time.perf_counter()
        stream._next_seq = None
        stream._transfer(stream._recv, stream._out[0], n * ci.RESULT_BYTES, "S2MM")
        stream._transfer(stream._send, stream._in[0], n * ci.WORD_BYTES, "MM2S")
        self.t1 = time.perf_counter()
        stream.stats.submit += self.t1 - t0
        self.send: _Wait | None = stream._wait_for("mm2s", 0, n)
        self.recv: _Wait | None = stream._wait_for("s2mm", 0, n)
        self.done = False

    @property
    def busy(self) -> bool:
        return not self.done

    def step(self) -> None:
        s = self.s
        if self.send is not None and s.poll("mm2s", self.send):
            s._send.wait()
            self.send = None
        if self.recv is not None and s.poll("s2mm", self.recv, self.send):
            s._recv.wait()
            t2 = time.perf_counter()
            s.stats.wait += t2 - self.t1
            s._check_chunk(s._out_np[0], self.n, self.recv)
            self.recv = None
            s.stats.check += time.perf_counter() - t2
        if self.send is None and self.recv is None:
            self.done = True
            s.stats.words += self.n
            s.stats.transfers += 1
