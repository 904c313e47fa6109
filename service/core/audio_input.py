"""Request payloads -> float32 mono 16 kHz clips, with a specific error for every kind of bad input.

Two kinds of payload reach the service:

* an encoded file (WAV, FLAC, OGG: anything libsndfile decodes), any rate and channel count;
* raw PCM with its sample rate, channel count and encoding given by the client
  (``pcm_s16le``, ``pcm_s32le``, ``pcm_f32le``, or big-endian ``pcm_s16be`` for ``audio/L16``).

Usage::

    from pynq_sparse.service.core.audio_input import Payload, decode
    clip = decode(Payload(data=wav_bytes, name="yes.wav"), max_seconds=10)
    clip = decode(Payload(data=pcm, name="body", sample_rate=44100, channels=2, encoding="pcm_s16le"), 10)
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from pynq_sparse.audio import SAMPLE_RATE, load_audio
from pynq_sparse.errors import AudioError, EmptyAudioError, NonFiniteAudioError, ShapeError, UndecodableAudioError

PCM_ENCODINGS = {                       # encoding name -> numpy dtype of one sample
    "pcm_s16le": np.dtype("<i2"),
    "pcm_s16be": np.dtype(">i2"),
    "pcm_s32le": np.dtype("<i4"),
    "pcm_f32le": np.dtype("<f4"),
}
MAX_SAMPLE_RATE = 384_000               # Hz, highest rate accepted for raw PCM
MAX_CHANNELS = 32                       # channels accepted for raw PCM


class ClipTooLongError(AudioError):
    """The clip lasts longer than the service accepts."""


class BadPcmError(AudioError):
    """Raw PCM whose length, rate, channel count or encoding does not make sense."""


@dataclass
class Payload:
    """One clip as it arrived: encoded file bytes, or raw PCM when `sample_rate` is given."""

    data: bytes
    name: str = "upload"                # for messages: the file name or "request body"
    sample_rate: float | None = None    # raw PCM only
    channels: int = 1                   # raw PCM only
    encoding: str = "pcm_s16le"         # raw PCM only

    @property
    def is_raw(self) -> bool:
        return self.sample_rate is not None


def check_pcm_params(sample_rate: float | None, channels: int, encoding: str) -> None:
    """Raise BadPcmError for a rate, channel count or encoding the service does not take."""
    if sample_rate is None:
        raise BadPcmError("raw PCM needs its sample rate: add ?sample_rate=16000 (Hz) to the URL, "
                          "or send a WAV/FLAC file instead")
    if not (0 < sample_rate <= MAX_SAMPLE_RATE):
        raise BadPcmError(f"sample_rate must be in (0, {MAX_SAMPLE_RATE}] Hz, got {sample_rate:g}")
    if not (1 <= channels <= MAX_CHANNELS):
        raise BadPcmError(f"channels must be 1..{MAX_CHANNELS}, got {channels}")
    if encoding not in PCM_ENCODINGS:
        raise BadPcmError(f"unknown PCM encoding {encoding!r}; use one of {', '.join(PCM_ENCODINGS)}")


def pcm_samples(data: bytes, channels: int, encoding: str, name: str = "raw PCM") -> np.ndarray:
    """Samples [frames, channels] (int16, int32 or float32, native byte order) of raw PCM bytes."""
    dtype = PCM_ENCODINGS[encoding]
    frame = dtype.itemsize * channels
    if not data:
        raise EmptyAudioError(f"{name} is empty (0 bytes): it holds no samples")
    if len(data) % frame:
        raise BadPcmError(f"{name} has {len(data)} bytes, not a whole number of {channels}-channel {encoding} "
                          f"frames ({frame} bytes each)")
    return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="), copy=False).reshape(-1, channels)


def decode(payload: Payload, max_seconds: float) -> np.ndarray:
    """Float32 mono samples at 16 kHz of one payload.

    Raises
    ------
    EmptyAudioError, NonFiniteAudioError, UndecodableAudioError
        From :func:`pynq_sparse.audio.load_audio`, with the payload's name in the message.
    BadPcmError
        Raw PCM with a bad length, rate, channel count or encoding.
    ClipTooLongError
        More than `max_seconds` of audio.
    """
    name = payload.name
    if payload.is_raw:
        check_pcm_params(payload.sample_rate, payload.channels, payload.encoding)
        samples = pcm_samples(payload.data, payload.channels, payload.encoding, name)
        _check_duration(samples.shape[0] / float(payload.sample_rate), max_seconds, name)
        try:
            return load_audio(samples, sample_rate=float(payload.sample_rate))
        except ShapeError as err:
            raise BadPcmError(f"{name}: {err}") from err
    if not payload.data:
        raise EmptyAudioError(f"{name} is empty (0 bytes): it holds no samples")
    try:
        with sf.SoundFile(io.BytesIO(payload.data)) as f:          # one parse: header, then samples
            if f.frames == 0:
                raise EmptyAudioError(f"{name} holds no samples")
            if f.samplerate > 0:
                _check_duration(f.frames / f.samplerate, max_seconds, name)
            samples, rate = f.read(dtype="float32", always_2d=True), f.samplerate
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        reason = getattr(err, "error_string", None) or str(err)
        raise UndecodableAudioError(f"cannot decode {name} as audio ({reason.rstrip('.')}); send WAV, FLAC or "
                                    "OGG/Vorbis, or raw PCM with ?sample_rate=") from err
    try:
        return load_audio(samples, sample_rate=rate)                 # channel mean, resampling, checks
    except NonFiniteAudioError as err:
        raise NonFiniteAudioError(f"{name} holds NaN or infinite samples; replace them (e.g. np.nan_to_num) "
                                  "before sending") from err


def _check_duration(seconds: float, max_seconds: float, name: str) -> None:
    if seconds > max_seconds:
        raise ClipTooLongError(f"{name} lasts {seconds:.2f} s; the service accepts clips of at most "
                               f"{max_seconds:g} s (one word is 1 s: cut the clip or use the /v1/stream WebSocket)")


__all__ = ["BadPcmError", "ClipTooLongError", "MAX_CHANNELS", "MAX_SAMPLE_RATE", "PCM_ENCODINGS", "Payload",
           "SAMPLE_RATE", "check_pcm_params", "decode", "pcm_samples"]
