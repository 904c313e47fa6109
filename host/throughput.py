"""throughput_test(): FINN's throughput figures for the sparse-kws host path, plus per-stage times.

Keys (units in the names, as in FINN's `FINNExampleOverlay.throughput_test`):

* ``runtime[ms]``: one batch on pre-filled buffers (`execute_on_buffers`: DMA programming,
  transfers, waits and result checks; no packing), all engines at once
* ``throughput[words/s]``, ``DRAM_in_bandwidth[MB/s]``, ``DRAM_out_bandwidth[MB/s]``: from it
* ``fclk[mhz]``, ``batch_size`` (words per engine and transfer), ``n_engines``, ``n_copies``
* ``fold_input[ms]`` (shape and dtype checks), ``pack_input[ms]`` (copy into the DMA buffers),
  ``copy_input_data_to_device[ms]`` (cache flush), ``copy_output_data_from_device[ms]`` (cache
  invalidate), ``unpack_output[ms]`` (copy result rows out), ``unfold_output[ms]`` (scores and
  classes from the rows): each for the same batch
* ``host_path[words/s]``: the whole pipelined `run(words)` (pack, submit, wait, check, unpack)

Usage::

    res = throughput_test(overlay, batch_size=1024)
    res["throughput[words/s]"], res["host_path[words/s]"]
"""
from __future__ import annotations

import time

import numpy as np

from pynq_sparse import core_interface as ci

from .dispatch import Dispatcher
from .packing import Results, as_words, pack_words


def _best(fn, repeats: int) -> float:
    """Shortest wall time of `repeats` calls of fn (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def throughput_test(target, batch_size: int | None = None, repeats: int = 3, seed: int = 0,
                    fclk_mhz: float | None = None) -> dict:
    """Measure the host path of `target` (a SparseKwsOverlay or a Dispatcher) on random words.

    One batch is `batch_size` words per engine (default: the current batch size), so every
    engine moves one full buffer. The overlay's model must be loaded (any model: with the
    emulated device's compute switched off the scores are zeros, and the figures are those
    of the host path alone).
    """
    if isinstance(target, Dispatcher):
        disp, fclk = target, fclk_mhz
    else:
        disp, fclk = target.dispatcher, (fclk_mhz if fclk_mhz is not None else target.fclk_mhz)
    if batch_size is not None:
        disp.batch_size = batch_size
    bs = disp.batch_size
    n_engines = len(disp.streams)
    n = bs * n_engines
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 128, size=(n, 32, 32), dtype=np.int8)
    for s, (a, c) in zip(disp.streams, disp.split(n)):
        pack_words(words[a:a + c], s.input_buffers[0])

    runtime = _best(disp.execute_on_buffers, repeats)
    res = {
        "runtime[ms]": runtime * 1e3,
        "throughput[words/s]": n / runtime,
        "DRAM_in_bandwidth[MB/s]": n * ci.WORD_BYTES / runtime / 1e6,
        "DRAM_out_bandwidth[MB/s]": n * ci.RESULT_BYTES / runtime / 1e6,
        "fclk[mhz]": float(fclk) if fclk is not None else float("nan"),
        "batch_size": bs,
        "n_engines": n_engines,
        "n_copies": sum(disp.copies),
    }
    res["fold_input[ms]"] = _best(lambda: as_words(words, check_values=False), repeats) * 1e3
    res["pack_input[ms]"] = _best(          # as the pipeline packs (split over the cores)
        lambda: [pack_words(words[a:a + c], np.asarray(s.input_buffers[0]))
                 for s, (a, c) in zip(disp.streams, disp.split(n))],
        repeats) * 1e3
    res["copy_input_data_to_device[ms]"] = _best(lambda: [s.input_buffers[0].flush() for s in disp.streams],
                                                 repeats) * 1e3
    res["copy_output_data_from_device[ms]"] = _best(
        lambda: [s.output_buffers[0].invalidate() for s in disp.streams], repeats) * 1e3
    rows = np.empty((n, ci.RESULT_INTS), dtype=np.int32)
    res["unpack_output[ms]"] = _best(
        lambda: [np.copyto(rows[a:a + c], s.output_buffers[0][:c]) for s, (a, c) in zip(disp.streams, disp.split(n))],
        repeats) * 1e3
    res["unfold_output[ms]"] = _best(lambda: (np.array(Results(rows).scores), np.array(Results(rows).classes)),
                                     repeats) * 1e3
    host = _best(lambda: disp.run(words, out=rows), repeats)
    res["host_path[words/s]"] = n / host
    return res
