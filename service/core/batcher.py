"""Micro-batching: one bounded queue gathers the clips of many requests into device batches.

A single worker thread owns the device. It takes the oldest waiting clip, waits at most
`deadline_s` from that clip's arrival for more (or until `max_batch` are waiting), and
runs them as one batch. While it computes, new clips pile up, so under load batches form
without any waiting. The queue holds at most `limit` clips: :meth:`MicroBatcher.submit`
raises :class:`QueueFull` beyond that, and the service answers 503 with Retry-After.

Usage::

    batcher = MicroBatcher(process, max_batch=32, deadline_s=0.002, limit=128).start()
    result = await batcher.submit(item)            # from the event loop
    results = await asyncio.gather(*batcher.submit_many(items))
    batcher.stop(drain=True)                       # finish every queued clip, then stop
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


class QueueFull(Exception):
    """The queue holds `limit` clips already; try again later."""


class ShuttingDown(Exception):
    """The batcher is stopping and takes no new clips."""


@dataclass
class Job:
    item: Any
    future: asyncio.Future | concurrent.futures.Future
    loop: asyncio.AbstractEventLoop | None        # None: a thread waits on a concurrent.futures.Future
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchInfo:
    """What a processed item learns about the batch it went through."""

    size: int               # items in the device batch
    queued_s: float         # from enqueue to the start of the batch
    compute_s: float        # the batch's processing time


class MicroBatcher:
    """Bounded queue plus one worker thread that processes items in batches.

    Parameters
    ----------
    process : callable(list of items) -> list of (result or Exception)
        Runs in the worker thread; one entry per item, in order. An Exception entry fails
        only that item; an exception raised by `process` fails the whole batch.
    max_batch : int > 0
        Most items per batch.
    deadline_s : float >= 0
        Longest wait, counted from the oldest item's arrival, for a batch to fill.
    limit : int > 0
        Most items waiting (not yet in a batch).
    on_batch : callable(size, queued_s, compute_s), optional
        Called in the worker after each batch (metrics).
    """

    def __init__(self, process: Callable[[list[Any]], Sequence[Any]], max_batch: int = 32,
                 deadline_s: float = 0.002, limit: int = 128,
                 on_batch: Callable[[int, float, float], None] | None = None) -> None:
        self.process = process
        self.max_batch = int(max_batch)
        self.deadline_s = float(deadline_s)
        self.limit = int(limit)
        self.on_batch = on_batch
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._hurry = False                  # shutting down: run what is queued without waiting to fill batches
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.items = 0

    # --- event-loop side ------------------------------------------------------
    def submit(self, item: Any) -> asyncio.Future:
        """Queue one item; the future resolves to ``(result, BatchInfo)``. Raises QueueFull, ShuttingDown."""
        return self.submit_many([item])[0]

    def submit_many(self, items: Sequence[Any]) -> list[asyncio.Future]:
        """Queue all `items` or none of them (QueueFull when they do not all fit)."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._closing:
                raise ShuttingDown("the service is shutting down")
            if len(self._queue) + len(items) > self.limit:
                raise QueueFull(f"{len(self._queue)} clips are waiting for the device (limit {self.limit})")
            jobs = [Job(item, loop.create_future(), loop) for item in items]
            self._queue.extend(jobs)
            self._cond.notify()
        return [job.future for job in jobs]

    def submit_from_thread(self, item: Any, over_limit: bool = False) -> concurrent.futures.Future:
        """Queue one item from a worker thread (not the event loop); the future resolves to ``(result, BatchInfo)``.

        With `over_limit` the item is queued even when the queue is full (streams use it: their
        windows are bounded by the number of open streams, and they wait rather than fail).
        """
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._closing:
                raise ShuttingDown("the service is shutting down")
            if not over_limit and len(self._queue) >= self.limit:
                raise QueueFull(f"{len(self._queue)} clips are waiting for the device (limit {self.limit})")
            self._queue.append(Job(item, future, None))
            self._cond.notify()
        return future

    @property
    def depth(self) -> int:
        """Items waiting for a batch."""
        return len(self._queue)

    @property
    def busy(self) -> int:
        """Items in the batch being computed."""
        return self._in_flight

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- lifecycle ------------------------------------------------------------
    def start(self) -> "MicroBatcher":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="device-batcher", daemon=True)
            self._thread.start()
        return self

    def hurry(self) -> None:
        """Stop waiting for batches to fill (shutdown has begun); items are still taken."""
        with self._cond:
            self._hurry = True
            self._cond.notify_all()

    def stop(self, drain: bool = True, timeout: float | None = 30.0) -> None:
        """Take no new items; with `drain`, finish the queued ones first, else fail them with ShuttingDown."""
        with self._cond:
            self._closing = True
            if not drain:
                while self._queue:
                    self._deliver(self._queue.popleft(), ShuttingDown("the service is shutting down"), None)
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- worker side ------------------------------------------------------------
    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            deadline = self._queue[0].enqueued + self.deadline_s
            while len(self._queue) < self.max_batch and not (self._closing or self._hurry):
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            n = min(self.max_batch, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            self._in_flight = n
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            start = time.perf_counter()
            try:
                results = list(self.process([job.item for job in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"process returned {len(results)} results for {len(batch)} items")
            except Exception as err:  # noqa: BLE001 - a failing batch must not kill the worker
                results = [err] * len(batch)
            compute = time.perf_counter() - start
            for job, result in zip(batch, results):
                self._deliver(job, result, BatchInfo(len(batch), start - job.enqueued, compute))
            self.batches += 1
            self.items += len(batch)
            self._in_flight = 0
            if self.on_batch is not None:
                try:
                    self.on_batch(len(batch), sum(start - j.enqueued for j in batch) / len(batch), compute)
                except Exception:  # noqa: BLE001
                    pass

    @staticmethod
    def _deliver(job: Job, result: Any, info: BatchInfo | None) -> None:
        if job.loop is None:                           # a thread waits on a concurrent future
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result((result, info))
            return

        def settle() -> None:
            if job.future.done():          # the client went away (request cancelled)
                return
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result((result, info))
        try:
            job.loop.call_soon_threadsafe(settle)
        except RuntimeError:               # the loop is closed: nobody waits any more
            pass
