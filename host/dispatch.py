"""Map-reduce over several DMA engines: split a batch across engines, gather the results in order.

On the U250 there is one DMA engine (and one 5-copy core) per SLR. A batch of B
words is cut into contiguous slices, one per engine, sized in proportion to the
copies behind each engine; all engines run their double-buffered pipelines at
once (one thread interleaves their non-blocking steps, so there is no locking);
the slices' results are written straight into one output array, so the
reduce is just the array itself: input order by construction, checked per
engine by the cores' sequence numbers. Within an engine the core itself maps
words round-robin onto its copies and returns them in order.

If any engine fails, every engine with a transfer in flight is reset before the
error propagates, so the dispatcher is usable again at once.

Usage::

    disp = Dispatcher([DmaStream(ol.axi_dma_0, ol.sparse_kws_0), DmaStream(ol.axi_dma_1, ol.sparse_kws_1)],
                      copies=[5, 5])
    results = disp.run(words)            # Results in input order
    disp.batch_size = 1024               # per engine and transfer
"""
from __future__ import annotations

import numpy as np

from pynq_sparse import core_interface as ci

from .dma_stream import DmaStream, StageTimes
from .packing import Results, as_words, dma_view


class Dispatcher:
    """Several `DmaStream`s behind one `run(words)`.

    Parameters
    ----------
    streams : list of DmaStream
        One per engine, in the order slices are assigned.
    copies : list of int, optional
        Network copies behind each engine (slice sizes follow them); default equal.
    """

    def __init__(self, streams: list[DmaStream], copies: list[int] | None = None) -> None:
        if not streams:
            raise ValueError("a dispatcher needs at least one DmaStream")
        self.streams = list(streams)
        self.copies = list(copies) if copies is not None else [1] * len(self.streams)
        if len(self.copies) != len(self.streams) or min(self.copies) < 1:
            raise ValueError("copies must give a positive count per stream")

    @property
    def batch_size(self) -> int:
        """Words per DMA transfer of each engine."""
        return self.streams[0].batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        for s in self.streams:
            s.batch_size = value

    @property
    def stats(self) -> StageTimes:
        """Stage times summed over the engines."""
        total = StageTimes()
        for s in self.streams:
            total.add(s.stats)
        return total

    def reset_stats(self) -> None:
        for s in self.streams:
            s.stats = StageTimes()

    def split(self, n: int) -> list[tuple[int, int]]:
        """(start, count) of each engine's contiguous slice of n words, proportional to its copies."""
        total = sum(self.copies)
        counts = [n * c // total for c in self.copies]
        for i in range(n - sum(counts)):          # hand out the remainder, first engines first
            counts[i % len(counts)] += 1
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)
        return [(int(s), int(c)) for s, c in zip(starts, counts)]

    def run(self, words: np.ndarray, out: np.ndarray | None = None, check_values: bool = False) -> Results:
        """Stream `words` (int8 [B, 32, 32]) through all engines; results in input order."""
        source = words if isinstance(words, np.ndarray) and words.ndim == 3 else None
        words = as_words(words, check_values=check_values)
        rows = out if out is not None else np.empty((len(words), ci.RESULT_INTS), dtype=np.int32)
        # words in a DMA buffer (overlay.allocate_words) are sent in place: each engine its slice
        jobs = [s.job(words[a:a + c], rows[a:a + c], dma_view(source[a:a + c], s.device) if source is not None
                      else None)
                for s, (a, c) in zip(self.streams, self.split(len(words))) if c > 0]
        self._drive(jobs)
        return Results(rows)

    def _drive(self, jobs: list) -> None:
        """Step the jobs until all are done; on any error reset every engine with work in flight."""
        current = None
        try:
            while True:
                pending = [j for j in jobs if not j.done]
                if not pending:
                    return
                for current in pending:
                    current.step()
        except BaseException:
            for job in jobs:            # the failing job's engine was already reset by its stream
                if job is not current and job.busy:
                    try:
                        job.s.recover()
                    except Exception:      # the first error is the one to report
                        pass
            raise

    def execute_on_buffers(self, n: int | None = None) -> None:
        """All engines at once send `n` words (default a full buffer) already in input buffer 0."""
        self._drive([s.buffer_job(n) for s in self.streams])

    def recover(self) -> None:
        """Reset every engine and core (weights stay loaded)."""
        for s in self.streams:
            s.recover()
