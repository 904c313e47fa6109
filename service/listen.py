"""`pynq-sparse listen`: keyword detections from a local microphone (sounddevice) or a replayed recording.

Both paths feed the same :class:`pynq_sparse.spotter.StreamingDetector` in chunks of
`chunk_s` seconds; a recording is replayed at its real pace unless ``fast=True``.

Usage::

    from pynq_sparse.service.listen import listen_file, listen_microphone
    for det in listen_file("session.wav", detector):          # real time
        print(det.time_s, det.label, det.confidence)
"""
from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from pynq_sparse.audio import SAMPLE_RATE, load_audio
from pynq_sparse.errors import DeviceError


class NoMicrophoneError(DeviceError):
    """sounddevice finds no input device (or PortAudio is missing)."""


def listen_file(path: str | Path, detector: Any, chunk_s: float = 0.1, fast: bool = False,
                clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> Iterator[Any]:
    """Replay a recording through `detector` in chunks, at real pace unless `fast`; yields detections."""
    y = load_audio(path)                                 # float32 mono 16 kHz
    step = max(1, int(round(chunk_s * SAMPLE_RATE)))
    start = clock()
    for i, a in enumerate(range(0, len(y), step)):
        if not fast:
            wait = start + i * step / SAMPLE_RATE - clock()
            if wait > 0:
                sleep(wait)
        yield from detector.feed(y[a:a + step], SAMPLE_RATE)


def listen_microphone(detector: Any, device: int | str | None = None, chunk_s: float = 0.1,
                      duration_s: float | None = None) -> Iterator[Any]:
    """Capture 16 kHz mono from a sounddevice input and yield the detector's detections.

    Raises NoMicrophoneError when PortAudio or an input device is missing.
    """
    try:
        import sounddevice as sd
    except OSError as err:                                # libportaudio2 missing
        raise NoMicrophoneError(f"PortAudio is not installed ({err}); apt-get install libportaudio2, or use "
                                "--from-file FILE") from err
    try:
        info = sd.query_devices(device, kind="input")
    except (ValueError, sd.PortAudioError) as err:
        raise NoMicrophoneError(f"no microphone: sounddevice finds no input device ({err}); plug one in, pick one "
                                "with --device, or replay a recording with --from-file FILE") from err
    chunks: queue.Queue[np.ndarray] = queue.Queue()
    block = max(1, int(round(chunk_s * SAMPLE_RATE)))

    def callback(indata, frames, time_info, status) -> None:
        chunks.put(indata[:, 0].copy())

    end = None if duration_s is None else time.monotonic() + duration_s
    with sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32", blocksize=block,
                        device=info.get("index", device), callback=callback):
        while end is None or time.monotonic() < end:
            try:
                chunk = chunks.get(timeout=1.0)
            except queue.Empty:
                continue
            yield from detector.feed(chunk, SAMPLE_RATE)


def format_detection(det: Any) -> str:
    return f"{det.time_s:8.2f} s  {det.label:10} {det.confidence:.2f}"
