"""Audio input: any file, bytes or array -> float32 mono at 16 kHz (docs/golden_model.md section 1, step 1).

Usage::

    from pynq_sparse.audio import load_audio, fix_length
    y = fix_length(load_audio("clip.wav"))                  # float32 [16000]
    y = load_audio(open("clip.flac", "rb").read())          # bytes of a WAV/FLAC/OGG file
    y = load_audio(pcm_int16, sample_rate=44100)            # array [samples] or [samples, channels]
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError, EmptyAudioError, NonFiniteAudioError, ShapeError, UndecodableAudioError

SAMPLE_RATE = 16000          # Hz, the only rate the front end accepts
N_SAMPLES = 16000            # samples per word: one second at SAMPLE_RATE
MAX_CHANNELS = 64            # a 2-D array with more columns than this is taken to be [channels, samples]
RESAMPLE_QUALITY = "HQ"      # soxr quality preset used for every rate conversion

AudioSource = Union[str, Path, bytes, bytearray, memoryview, np.ndarray]

_SUPPORTED = "WAV, FLAC or OGG/Vorbis (anything libsndfile decodes)"


def load_audio(source: AudioSource, sample_rate: float | None = None) -> np.ndarray:
    """Load audio as float32 mono at 16 kHz.

    Channels are averaged; any other sample rate is converted with soxr ("HQ").
    The length is left as it is: use :func:`fix_length` to get one word's 16,000 samples.

    Parameters
    ----------
    source : str, Path, bytes or np.ndarray
        A path to an audio file, the raw bytes of a WAV/FLAC/OGG file, or an array of
        samples: 1-D mono or 2-D ``[samples, channels]``; float arrays are taken as they
        are (full scale +-1), int16 arrays are scaled by 1/32768 and int32 by 1/2**31.
    sample_rate : float > 0, optional
        Sample rate of an array ``source`` in Hz (required for arrays). For files and
        bytes the rate comes from the file; if given it must agree with it.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        Mono samples at :data:`SAMPLE_RATE`.

    Raises
    ------
    EmptyAudioError
        The source holds no samples (also a zero-byte file).
    NonFiniteAudioError
        The samples hold NaN or inf.
    UndecodableAudioError
        libsndfile cannot decode the file or bytes.
    ShapeError
        An array of the wrong shape or dtype, an array without ``sample_rate``, or
        ``sample_rate <= 0``.
    FileNotFoundError
        A path that does not exist.

    Examples
    --------
    >>> y = load_audio(np.zeros((8000, 2), np.int16), sample_rate=8000)
    >>> y.dtype, y.shape
    (dtype('float32'), (16000,))
    """
    if sample_rate is not None:
        _check_rate(sample_rate)
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise ShapeError("an audio array needs its sample rate: load_audio(samples, sample_rate=16000)")
        samples, rate = _from_array(source), float(sample_rate)
        name = f"array of shape {list(source.shape)}"
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no audio file at {str(path)!r}")
        if path.stat().st_size == 0:
            raise EmptyAudioError(f"{str(path)!r} is an empty file (0 bytes): it holds no samples")
        samples, rate = _decode(path, repr(str(path)))
        name = repr(str(path))
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise EmptyAudioError("the audio bytes are empty (0 bytes): they hold no samples")
        name = f"{len(data)} bytes of audio"
        samples, rate = _decode(io.BytesIO(data), name)
    else:
        raise TypeError(f"load_audio takes a path, file bytes or a numpy array, not {type(source).__name__}")

    if not isinstance(source, np.ndarray) and sample_rate is not None and float(sample_rate) != rate:
        raise AudioError(f"{name} is recorded at {rate:g} Hz but sample_rate={sample_rate:g} was passed; "
                         "leave sample_rate out for files and bytes (it is read from the file)")
    if samples.shape[0] == 0:
        raise EmptyAudioError(f"{name} holds no samples")
    if not np.isfinite(samples).all():
        raise NonFiniteAudioError(f"{name} holds NaN or infinite samples; replace them (e.g. np.nan_to_num) first")

    y = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)  # (n,)
    if rate != SAMPLE_RATE:
        y = soxr.resample(y, rate, SAMPLE_RATE, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(y, dtype=np.float32)


def fix_length(y: np.ndarray, n: int = N_SAMPLES) -> np.ndarray:
    """Cut the end off, or zero-pad the end of, the last axis of `y` to exactly `n` samples.

    Same rule as ``librosa.util.fix_length(y, size=n)``; returns `y` itself when it already
    has `n` samples.

    Parameters
    ----------
    y : np.ndarray [shape=(..., m)]
    n : int >= 0

    Returns
    -------
    y_fixed : np.ndarray [shape=(..., n)], same dtype as `y`

    Examples
    --------
    >>> fix_length(np.ones(3, np.float32), 5)
    array([1., 1., 1., 0., 0.], dtype=float32)
    """
    y = np.asarray(y)
    if y.ndim == 0:
        raise ShapeError("fix_length needs an array of samples, got a scalar")
    if n < 0:
        raise ShapeError(f"fix_length needs n >= 0, got {n}")
    m = y.shape[-1]
    if m > n:
        return y[..., :n]
    if m < n:
        pad = [(0, 0)] * (y.ndim - 1) + [(0, n - m)]
        return np.pad(y, pad, mode="constant")
    return y


def _check_rate(sample_rate: float) -> None:
    try:
        ok = math.isfinite(float(sample_rate)) and float(sample_rate) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ShapeError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")


def _from_array(a: np.ndarray) -> np.ndarray:
    """Return float32 [samples, channels] from a 1-D or 2-D array of samples."""
    if a.ndim == 1:
        a = a[:, None]
    elif a.ndim != 2:
        raise ShapeError(f"an audio array must be 1-D [samples] or 2-D [samples, channels], got shape {list(a.shape)}")
    elif a.shape[1] > MAX_CHANNELS:
        raise ShapeError(f"an audio array must be [samples, channels]; shape {list(a.shape)} has more than "
                         f"{MAX_CHANNELS} channels (pass array.T if it is [channels, samples])")
    if a.dtype == np.int16:
        return a.astype(np.float32) * np.float32(1 / 32768)
    if a.dtype == np.int32:
        return (a.astype(np.float64) * (1 / 2**31)).astype(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float32, copy=False)
    raise ShapeError(f"audio samples must be float, int16 or int32, got dtype {a.dtype}")


def _decode(file: Path | io.BytesIO, name: str) -> tuple[np.ndarray, float]:
    """Decode with libsndfile: float32 [samples, channels] and the file's rate."""
    try:
        samples, rate = sf.read(file, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise UndecodableAudioError(f"cannot decode {name} as audio ({err}); use {_SUPPORTED}") from err
    return samples, float(rate)
