"""Front end: 16 kHz audio -> int8 word [32 mel bands, 32 frames] (docs/golden_model.md section 1).

`reference_word` is the definition: librosa, one clip at a time, exactly the recipe of the
contract. `FastFrontend` computes the same words for a whole batch with numpy/scipy only,
using ~7x less CPU per clip and all cores; on the 4,560 shared real clips it matches the
reference in all but 7 of 4.67 million cells (each off by 1: a value on a rounding boundary
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
from contextlib import contextmanager
from typing import Iterable

import numpy as np
import scipy.fftpack
import scipy.signal
from numpy.lib.stride_tricks import as_strided

from .architecture import FRONTEND
from .audio import AudioSource, fix_length, load_audio
from .errors import NonFiniteAudioError, ShapeError

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
_PAD = N_FFT // 2                        # centre padding on each side (pad_mode="constant": zeros)
_N_EDGE = -(-_PAD // HOP_LENGTH)         # 2 frames at each end reach into the centre padding
_EDGE = N_FFT + (_N_EDGE - 1) * HOP_LENGTH  # 2560 samples of padded signal under those frames


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


def _packed_mel_rows(mel: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """Each mel filter's span in the squared packed spectrum, for one matrix-vector product per band.

    ``scipy.fftpack.rfft`` packs a real frame's spectrum as (X0, re X1, im X1, ..., re X1023,
    im X1023, X1024), 2048 floats. Squared, a filter weight applied to both halves of a bin
    gives re^2*w + im^2*w = |X|^2*w. Band m is (a, b, w): positions a..b-1 with weights w
    float32 [b - a]. The 32 Slaney filters cover 23..175 of the 1025 bins (1,943 weights in
    all), 17x less work than the dense [1025 x 32] product.
    """
    packed = np.empty((mel.shape[0], N_FFT), np.float32)       # (32, 2048) weights in packed order
    packed[:, 0] = mel[:, 0]
    packed[:, 1:-1:2] = mel[:, 1:-1]
    packed[:, 2:-1:2] = mel[:, 1:-1]
    packed[:, -1] = mel[:, -1]
    rows = []
    for m in range(mel.shape[0]):
        nz = np.flatnonzero(packed[m])
        a, b = int(nz[0]), int(nz[-1]) + 1
        rows.append((a, b, np.ascontiguousarray(packed[m, a:b])))
    return rows


class _Buffers:
    """Work buffers of one thread, for chunks of up to `chunk` clips (~2.5 MB at chunk 8)."""

    def __init__(self, chunk: int) -> None:
        self.head = np.zeros((chunk, _EDGE), np.float32)                   # zero padding + first samples
        self.tail = np.zeros((chunk, _EDGE), np.float32)                   # last samples + zero padding
        self.frames = np.empty((chunk, N_FRAMES, N_FFT), np.float32)       # windowed frames, then |FFT|^2
        self.mel = np.empty((N_MELS, chunk * N_FRAMES), np.float32)        # mel power, band-major
        self.db = np.empty((chunk, N_MELS, N_FRAMES), np.float32)          # dB per clip
        self.q = np.empty((chunk, N_MELS, N_FRAMES), np.float64)           # quantisation in float64


class FastFrontend:
    """Batched front end: the reference's int8 words, computed with numpy/scipy only.

    Same arithmetic as :func:`reference_word` (zero centre padding, periodic Hann window,
    |rFFT|^2, Slaney mel bank, 10*log10 with amin, per-clip max reference, 80 dB floor,
    int8 quantisation), but with one float32 real FFT over all frames of a chunk of clips,
    computed in place in the frame buffer, and one matrix-vector product per mel band over
    that band's bins only. Chunks are spread over a thread pool (numpy, pocketfft and BLAS
    release the GIL): every step runs on all cores, not only the FFT. Each thread reuses its
    own work buffers; numpy's BLAS is held to one thread during a call.

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
        self._rows = _packed_mel_rows(self.mel_basis)
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
        x = np.ascontiguousarray(x, dtype=np.float32)     # NaN/inf are caught per chunk, see _to_words
        shape = (x.shape[0], N_MELS, N_FRAMES)
        if out is None:
            out = np.empty(shape, np.int8)
        elif out.shape != shape or out.dtype != np.int8 or not out.flags.c_contiguous:
            raise ShapeError(f"out must be a C-contiguous int8 array of shape {list(shape)}, got "
                             f"{out.dtype} {list(out.shape)}")
        starts = range(0, x.shape[0], self.chunk)
        with _one_blas_thread():
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
        with np.errstate(all="ignore"):                  # NaN/inf input: raised as NonFiniteAudioError below
            mel = self._mel_power(x[s:s + n], buf)                            # (32 mels, n*32 frames)
            db = buf.db[:n]
            np.copyto(db, mel.reshape(N_MELS, n, N_FRAMES).transpose(1, 0, 2))   # (n, 32 mels, 32 frames)
            out[s:s + n] = self._to_words(db, buf.q[:n])

    def _mel_power(self, clips: np.ndarray, buf: _Buffers) -> np.ndarray:
        """Mel power of n clips, band-major: float32 [32 mels, n*32 frames] (frame index = clip*32 + t).

        Frame t covers samples [512 t - 1024, 512 t + 1024) of the clip, zeros outside it
        (centre padding). The inner frames are read straight from `clips`; only the two frames
        at each end go through small zero-padded edge buffers.
        """
        n = clips.shape[0]
        e, last = _N_EDGE, N_FRAMES - _N_EDGE                                 # frames e..last-1 are inner
        buf.head[:n, _PAD:] = clips[:, :_EDGE - _PAD]
        tail_start = last * HOP_LENGTH - _PAD                                 # clip sample under tail[0]
        buf.tail[:n, :N_SAMPLES - tail_start] = clips[:, tail_start:]
        frames = buf.frames[:n]                                               # (n, 32, 2048)
        w = self.window
        np.multiply(_frame(buf.head[:n], e), w, out=frames[:, :e])
        np.multiply(_frame(clips[:, e * HOP_LENGTH - _PAD:], last - e), w, out=frames[:, e:last])
        np.multiply(_frame(buf.tail[:n], N_FRAMES - last), w, out=frames[:, last:])
        # scipy.fftpack.rfft is the same pocketfft real transform as scipy.fft.rfft (bit for bit),
        # but writes fftpack's packed layout in place: no 2 MB output array per chunk.
        spec = scipy.fftpack.rfft(frames.reshape(n * N_FRAMES, N_FFT), axis=-1, overwrite_x=True)  # (n*32, 2048)
        np.square(spec, out=spec)
        mel = buf.mel[:, :n * N_FRAMES]
        for m, (a, b, wm) in enumerate(self._rows):
            np.matmul(spec[:, a:b], wm, out=mel[m])                           # sum_k w_mk |X_k|^2
        return mel

    @staticmethod
    def _to_words(db: np.ndarray, q: np.ndarray) -> np.ndarray:
        """power_to_db(ref=max per clip, amin, top_db) and quantisation of mel power [n, 32, 32].

        Works in place on `db` (float32) and `q` (float64, same shape) and returns int8 words.
        Follows librosa's dtypes step by step: the cell term is float32, the reference term is
        computed in float64 (numpy scalar rules) and applied in float32; the quantisation is
        the float64 formula of :func:`quantize_db`, operation by operation.
        """
        n = db.shape[0]
        ref = db.reshape(n, -1).max(axis=1).astype(np.float64)               # (n,) per-clip reference
        if not np.isfinite(ref).all():                   # a NaN/inf sample makes its clip's maximum NaN/inf
            raise NonFiniteAudioError("the clips hold NaN or infinite samples (or samples so large that "
                                      "their power overflows float32); clips must be finite, full scale +-1")
        np.maximum(db, np.float32(AMIN), out=db)
        np.log10(db, out=db)
        db *= np.float32(10.0)
        db -= (10.0 * np.log10(np.maximum(AMIN, ref))).astype(np.float32)[:, None, None]
        floor = db.reshape(n, -1).max(axis=1) - np.float32(TOP_DB)           # float32, like librosa's scalar
        np.maximum(db, floor[:, None, None], out=db)
        np.add(db, 80.0, out=q, dtype=np.float64)                             # (db + 80) * 127/80 + 0.5
        q *= 127.0
        q /= 80.0
        q += 0.5
        np.floor(q, out=q)
        np.clip(q, 0, WORD_MAX, out=q)
        return q.astype(np.int8)

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

_blas_lock = threading.Lock()
_blas_state: dict = {"users": 0, "libs": None, "saved": []}


@contextmanager
def _one_blas_thread():
    """Hold numpy's BLAS to one thread while any FastFrontend call runs (the chunks already use every core).

    Only the BLAS that numpy links is touched (other libraries in the process, e.g. torch's,
    keep their settings). Calls may overlap from several threads: the first one in saves the
    thread count and the last one out restores it.
    """
    with _blas_lock:
        st = _blas_state
        if st["libs"] is None:
            from threadpoolctl import ThreadpoolController
            libs = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
            st["libs"] = [lib for lib in libs if "numpy" in lib.filepath] or libs
        if st["users"] == 0:
            st["saved"] = [lib.num_threads for lib in st["libs"]]
            for lib in st["libs"]:
                lib.set_num_threads(1)
        st["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            st["users"] -= 1
            if st["users"] == 0:
                for lib, n in zip(st["libs"], st["saved"]):
                    lib.set_num_threads(n)


def _frame(y: np.ndarray, n_frames: int) -> np.ndarray:
    """Read-only view [n, n_frames, N_FFT] of frames starting every HOP_LENGTH samples of rows y [n, m]."""
    return as_strided(y, shape=(y.shape[0], n_frames, N_FFT), strides=(y.strides[0], HOP_LENGTH * y.strides[1],
                                                                       y.strides[1]), writeable=False)


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
