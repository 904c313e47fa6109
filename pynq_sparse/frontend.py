"""Front end: 16 kHz audio -> int8 word [32 mel bands, 32 frames] (docs/golden_model.md section 1).

`reference_word` is the definition: librosa, one clip at a time, exactly the recipe of the
contract. `FastFrontend` computes the same words for a whole batch (scipy's FFT and two numba
kernels), using ~9x less CPU per clip and all cores; on the 4,560 shared real clips it matches
the reference in all but 5 of 4.67 million cells (each off by 1: a value on a rounding boundary
moved by float32 FFT rounding). `python -m pynq_sparse.bench.frontend` measures both.

Usage::

    from pynq_sparse.frontend import FastFrontend, reference_word, words_from_audio
    word = reference_word(y)                  # y: float32 [16000] at 16 kHz -> int8 [32, 32]
    words = FastFrontend()(batch)             # float32 [B, 16000] -> int8 [B, 32, 32]
    words = words_from_audio(["a.wav", "b.flac"])
"""
from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import numpy as np
import scipy.fftpack
import scipy.signal

from .architecture import FRONTEND
from .audio import AudioSource, fix_length, load_audio
from .errors import NonFiniteAudioError, ShapeError
from .frontend_kernels import mel_words, window_frames

SAMPLE_RATE = FRONTEND["sample_rate"]    # 16000 Hz
N_SAMPLES = FRONTEND["n_samples"]        # 16000 samples per word
N_FFT = FRONTEND["n_fft"]                # 2048
HOP_LENGTH = FRONTEND["hop_length"]      # 512
N_MELS = FRONTEND["n_mels"]              # 32 mel bands = word rows
AMIN = FRONTEND["amin"]                  # 1e-10, power floor before log10
TOP_DB = FRONTEND["top_db"]              # 80 dB below the clip's maximum -> word value 0
WORD_MAX = 127                           # the clip's loudest cell
N_FRAMES = 1 + N_SAMPLES // HOP_LENGTH   # 32 frames (center=True) = word columns
N_BINS = N_FFT // 2 + 1                  # 1025 rFFT bins


# --- reference (librosa, the definition) -----------------------------------
def reference_db(y: np.ndarray) -> np.ndarray:
    """Log-mel spectrogram in dB relative to the clip's maximum, exactly as the contract's librosa recipe.

    ``power_to_db(melspectrogram(y, sr=16000, n_fft=2048, hop_length=512, n_mels=32, center=True,
    pad_mode="constant", power=2.0), ref=np.max, amin=1e-10, top_db=80)``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono samples, already at 16 kHz (see :func:`pynq_sparse.audio.load_audio`); cut or
        zero-padded at the end to 16,000 samples first. Cast to float32.

    Returns
    -------
    db : np.ndarray [shape=(32, 32), dtype=float32]
        Rows are mel bands (0 = lowest), columns are frames; values in [-80, 0] up to float32
        rounding (librosa subtracts the reference in float64 and rounds to float32, so the loudest
        cell can be a few 1e-6 dB off 0).

    Examples
    --------
    >>> db = reference_db(np.random.default_rng(0).standard_normal(16000).astype(np.float32))
    >>> db.shape, abs(float(db.max())) < 1e-5      # the loudest cell is 0 dB (to float32 rounding)
    ((32, 32), True)
    """
    import librosa

    y = fix_length(_as_clip(y), N_SAMPLES)
    s = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS,
                                       center=FRONTEND["center"], pad_mode=FRONTEND["pad_mode"],
                                       power=FRONTEND["power"])
    return librosa.power_to_db(s, ref=np.max, amin=AMIN, top_db=TOP_DB).astype(np.float32, copy=False)


def quantize_db(db: np.ndarray) -> np.ndarray:
    """Quantise dB values to the word range: ``clip(floor((db + 80) * 127/80 + 0.5), 0, 127)`` in float64.

    Parameters
    ----------
    db : np.ndarray
        dB relative to the clip's maximum (normally in [-80, 0]); any shape.

    Returns
    -------
    word : np.ndarray, same shape, dtype int8, values 0..127 (one step = 80/127 = 0.630 dB)

    Examples
    --------
    >>> quantize_db(np.array([-80.0, -40.0, 0.0])).tolist()
    [0, 64, 127]
    """
    d = np.asarray(db, dtype=np.float64)
    return np.clip(np.floor((d + 80.0) * 127.0 / 80.0 + 0.5), 0, WORD_MAX).astype(np.int8)


def reference_word(y: np.ndarray) -> np.ndarray:
    """The int8 word of one clip by the reference recipe: ``quantize_db(reference_db(y))``, int8 [32, 32]."""
    return quantize_db(reference_db(y))


# --- fast batched front end -------------------------------------------------
def _hann() -> np.ndarray:
    """librosa's analysis window: periodic Hann of N_FFT samples (float64)."""
    return scipy.signal.get_window("hann", N_FFT, fftbins=True)


def _packed_mel_bands(mel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each mel filter's span in the squared packed spectrum, for one short dot product per band.

    ``scipy.fftpack.rfft`` packs a real frame's spectrum as (X0, re X1, im X1, ..., re X1023,
    im X1023, X1024), 2048 floats. Squared, a filter weight applied to both halves of a bin
    gives re^2*w + im^2*w = |X|^2*w. Band m covers packed positions starts[m]..stops[m]-1
    with weights weights[offsets[m]:...] (float32); the 32 Slaney filters have 1,943 non-zero
    weights in all, 17x less work than the dense [1025 x 32] product.
    """
    packed = np.empty((mel.shape[0], N_FFT), np.float32)       # (32, 2048) weights in packed order
    packed[:, 0] = mel[:, 0]
    packed[:, 1:-1:2] = mel[:, 1:-1]
    packed[:, 2:-1:2] = mel[:, 1:-1]
    packed[:, -1] = mel[:, -1]
    starts, stops, chunks = [], [], []
    for m in range(mel.shape[0]):
        nz = np.flatnonzero(packed[m])
        starts.append(int(nz[0]))
        stops.append(int(nz[-1]) + 1)
        chunks.append(packed[m, starts[-1]:stops[-1]])
    offsets = np.cumsum([0] + [len(c) for c in chunks[:-1]])
    return (np.array(starts, np.int64), np.array(stops, np.int64), offsets.astype(np.int64),
            np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32))


class _Buffers:
    """Work buffers of one thread, for chunks of up to `chunk` clips (~2 MB at chunk 8)."""

    def __init__(self, chunk: int) -> None:
        self.frames = np.empty((chunk, N_FRAMES, N_FFT), np.float32)       # windowed frames, then their rFFT
        self.mel = np.empty((chunk * N_FRAMES, N_MELS), np.float32)        # mel power, frame-major


class FastFrontend:
    """Batched front end: the reference's int8 words, computed with numpy/scipy/numba only.

    Same arithmetic as :func:`reference_word` (zero centre padding, periodic Hann window,
    |rFFT|^2, Slaney mel bank, 10*log10 with amin, per-clip max reference, 80 dB floor,
    int8 quantisation), per chunk of clips: one numba pass writes the windowed frames into
    the FFT buffer, one float32 real FFT (scipy's pocketfft) transforms all of them in place,
    and one numba pass takes each mel band's dot product over that band's bins only, then
    the dB conversion and quantisation into the int8 words (:mod:`pynq_sparse.frontend_kernels`).
    Chunks are spread over a thread pool (pocketfft and the numba kernels release the GIL):
    every step runs on all cores. Each thread reuses its own work buffers.

    Parameters
    ----------
    n_threads : int > 0, optional
        Worker threads (default: the number of CPU cores).
    chunk : int > 0
        Clips per work item; 8 keeps an item's buffers in cache.

    Examples
    --------
    >>> fe = FastFrontend()
    >>> fe.words(np.zeros((4, 16000), np.float32)).shape
    (4, 32, 32)
    """

    def __init__(self, n_threads: int | None = None, chunk: int = 8) -> None:
        import librosa  # only to build the filter bank, once

        if chunk < 1 or (n_threads is not None and n_threads < 1):
            raise ValueError(f"n_threads and chunk must be positive, got n_threads={n_threads}, chunk={chunk}")
        self.n_threads = int(n_threads or os.cpu_count() or 1)
        self.chunk = int(chunk)
        self.window = _hann().astype(np.float32)                                           # (2048,)
        self.mel_basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)  # (32, 1025) float32
        self._bands = _packed_mel_bands(self.mel_basis)
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None

    # public -----------------------------------------------------------
    def words(self, batch: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """int8 words [B, 32, 32] of float32 clips [B, 16000] at 16 kHz (a single [16000] clip gives [32, 32]).

        Clips of another length must be cut/padded first (:func:`pynq_sparse.audio.fix_length`).
        `out` (int8 [B, 32, 32], C-contiguous; e.g. a DMA buffer from
        ``SparseKwsOverlay.allocate_words(B)``) receives the words and is returned.
        """
        x = np.asarray(batch)
        single = x.ndim == 1
        if single:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != N_SAMPLES:
            raise ShapeError(f"FastFrontend needs clips of shape [B, {N_SAMPLES}] or [{N_SAMPLES}], "
                             f"got {list(np.shape(batch))}; use fix_length(load_audio(...)) first")
        if not np.issubdtype(x.dtype, np.floating):
            raise ShapeError(f"FastFrontend needs float samples (float32 at full scale +-1), got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)     # NaN/inf are caught per chunk, see _work
        shape = (x.shape[0], N_MELS, N_FRAMES)
        if out is None:
            out = np.empty(shape, np.int8)
        elif out.shape != shape or out.dtype != np.int8 or not out.flags.c_contiguous:
            raise ShapeError(f"out must be a C-contiguous int8 array of shape {list(shape)}, got "
                             f"{out.dtype} {list(out.shape)}")
        starts = range(0, x.shape[0], self.chunk)
        if self.n_threads == 1 or len(starts) <= 1:
            for s in starts:
                self._work(x, out, s)
        else:
            for _ in self._executor().map(lambda s: self._work(x, out, s), starts):
                pass
        return out[0] if single else out

    __call__ = words

    def close(self) -> None:
        """Stop the worker threads (they also stop when the object is collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> "FastFrontend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # steps --------------------------------------------------------------
    def _work(self, x: np.ndarray, out: np.ndarray, s: int) -> None:
        """Words of clips x[s : s+chunk] into out[s : s+chunk]."""
        buf = self._buffers()
        n = min(self.chunk, x.shape[0] - s)
        frames = buf.frames[:n]                                                  # (n, 32, 2048)
        window_frames(x[s:s + n], self.window, frames)
        # scipy.fftpack.rfft is the same pocketfft real transform as scipy.fft.rfft (bit for bit),
        # but writes fftpack's packed layout in place: no 2 MB output array per chunk.
        spec = scipy.fftpack.rfft(frames.reshape(n * N_FRAMES, N_FFT), axis=-1, overwrite_x=True)
        bad = mel_words(spec, *self._bands, buf.mel[:n * N_FRAMES], out[s:s + n])
        if bad >= 0:                                     # a NaN/inf sample makes its clip's mel power NaN/inf
            raise NonFiniteAudioError(f"clip {s + bad} holds NaN or infinite samples (or samples so large that "
                                      "their power overflows float32); clips must be finite, full scale +-1")

    # plumbing -----------------------------------------------------------
    def _buffers(self) -> _Buffers:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = _Buffers(self.chunk)
        return buf

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.n_threads, thread_name_prefix="frontend")
            weakref.finalize(self, self._pool.shutdown, wait=False)
        return self._pool


def words_from_audio(sources: Iterable[AudioSource], frontend: FastFrontend | None = None) -> np.ndarray:
    """int8 words [B, 32, 32] of audio files, bytes or arrays.

    Each source is read with :func:`pynq_sparse.audio.load_audio` (arrays must then be 16 kHz,
    or be passed through load_audio with their rate first), cut/padded to 16,000 samples,
    and the batch goes through `frontend` (a new :class:`FastFrontend` when None).

    Examples
    --------
    >>> words_from_audio([np.zeros(16000, np.float32)]).shape
    (1, 32, 32)
    """
    clips = [fix_length(load_audio(s, SAMPLE_RATE if isinstance(s, np.ndarray) else None), N_SAMPLES)
             for s in sources]
    if not clips:
        return np.empty((0, N_MELS, N_FRAMES), np.int8)
    fe = frontend if frontend is not None else FastFrontend()
    return fe.words(np.stack(clips))


def _as_clip(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ShapeError(f"a clip must be 1-D mono samples at 16 kHz, got shape {list(y.shape)}; use load_audio first")
    if not np.issubdtype(y.dtype, np.floating):
        raise ShapeError(f"a clip must hold float samples (full scale +-1), got dtype {y.dtype}; use load_audio first")
    y = y.astype(np.float32, copy=False)
    if not np.isfinite(y).all():
        raise NonFiniteAudioError("the clip holds NaN or infinite samples")
    return y
