"""Host driver: DMA streaming, batching and map-reduce dispatch into the sparse-kws overlay (pynq_sparse.host).

* `DmaStream`: one AXI DMA engine and its core; buffers allocated once per batch size,
  double buffering, every wait guarded by a timeout (the engine is reset on failure).
* `Dispatcher`: several engines (one per SLR on the U250): split a batch, gather in order.
* `packing`: words into DMA buffers (`Packer`: big chunks split over the cores), result rows into scores and
  classes (`Results`).
* `throughput_test`: FINN's throughput keys plus per-stage times.

Usage::

    from pynq_sparse.host import Dispatcher, DmaStream
    disp = Dispatcher([DmaStream(ol.axi_dma_0, ol.sparse_kws_0, batch_size=256)])
    results = disp.run(words)              # results.scores int32 [B, 12], in input order
"""
from .dispatch import Dispatcher
from .dma_stream import DmaStream, StageTimes, core_error, reset_dma_engine
from .packing import PACKER, Packer, Results, as_words, pack_words, unpack_results
from .throughput import throughput_test

__all__ = ["PACKER", "Dispatcher", "DmaStream", "Packer", "Results", "StageTimes", "as_words",
           "core_error", "pack_words", "reset_dma_engine", "throughput_test", "unpack_results"]
