"""load_audio / fix_length: every input kind, rate and channel count, and every error class."""
from __future__ import annotations

import io

import librosa
import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from pynq_sparse.audio import SAMPLE_RATE, fix_length, load_audio
from pynq_sparse.errors import (AudioError, EmptyAudioError, NonFiniteAudioError, ShapeError,
                                UndecodableAudioError)

RATES = [8000, 22050, 44100, 48000]


def tone(freq: float, sr: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def tone_error(y: np.ndarray, freq: float, amp: float = 0.5) -> float:
    """Max deviation from the ideal 16 kHz tone away from the ends (resampler edge effects)."""
    ideal = tone(freq, SAMPLE_RATE, len(y) / SAMPLE_RATE, amp)
    return float(np.abs(y[400:-400] - ideal[400:-400]).max())


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
@pytest.mark.parametrize("sr", RATES)
def test_file_any_rate_becomes_16k_float32_mono(tmp_path, fmt, sr):
    path = tmp_path / f"tone_{sr}.{fmt.lower()}"
    sf.write(path, tone(440.0, sr), sr, format=fmt, subtype="PCM_16")
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1 and y.flags.c_contiguous
    assert len(y) == SAMPLE_RATE                         # one second stays one second
    assert tone_error(y, 440.0) < 2e-3                   # same tone, 16-bit + resampler error only


def test_16k_file_is_read_without_change(tmp_path):
    pcm = (np.random.default_rng(0).integers(-32768, 32768, 16000)).astype(np.int16)
    path = tmp_path / "pcm.wav"
    sf.write(path, pcm, 16000, subtype="PCM_16")
    np.testing.assert_array_equal(load_audio(path), pcm.astype(np.float32) / 32768)
    np.testing.assert_array_equal(load_audio(str(path)), load_audio(path))


@pytest.mark.parametrize("sr", [16000, 44100])
def test_stereo_channels_are_averaged(tmp_path, sr):
    left, right = tone(440.0, sr), tone(1000.0, sr, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), sr, subtype="FLOAT")
    y = load_audio(path)
    expected = load_audio((left + right) / 2, sample_rate=sr)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    if sr == 16000:
        np.testing.assert_allclose(y, (left + right) / 2, atol=1e-7)


def test_bytes_input_equals_path_input(tmp_path):
    path = tmp_path / "clip.flac"
    sf.write(path, tone(300.0, 22050), 22050, format="FLAC", subtype="PCM_16")
    data = path.read_bytes()
    np.testing.assert_array_equal(load_audio(data), load_audio(path))
    np.testing.assert_array_equal(load_audio(bytearray(data)), load_audio(path))
    np.testing.assert_array_equal(load_audio(memoryview(data)), load_audio(path))


def test_ogg_vorbis_bytes():
    buf = io.BytesIO()
    sf.write(buf, tone(440.0, 48000), 48000, format="OGG", subtype="VORBIS")
    y = load_audio(buf.getvalue())
    assert y.dtype == np.float32 and abs(len(y) - SAMPLE_RATE) <= 2
    ideal = tone(440.0, SAMPLE_RATE, len(y) / SAMPLE_RATE)
    assert np.corrcoef(y[1000:-1000], ideal[1000:-1000])[0, 1] > 0.99     # lossy, but the same tone


def test_int16_arrays_are_scaled():
    y = load_audio(np.array([16384, -32768, 0, 32767], np.int16), sample_rate=16000)
    np.testing.assert_array_equal(y, np.array([0.5, -1.0, 0.0, 32767 / 32768], np.float32))
    stereo = np.stack([np.full(100, 16384, np.int16), np.zeros(100, np.int16)], axis=1)  # [samples, channels]
    np.testing.assert_array_equal(load_audio(stereo, sample_rate=16000), np.full(100, 0.25, np.float32))


@pytest.mark.parametrize("sr", RATES)
def test_int16_array_any_rate(sr):
    pcm = (tone(440.0, sr) * 32768).astype(np.int16)
    y = load_audio(pcm, sample_rate=sr)
    assert y.dtype == np.float32 and len(y) == SAMPLE_RATE
    assert tone_error(y, 440.0) < 2e-3


def test_float64_array_and_int32_array():
    x = tone(440.0, 16000).astype(np.float64)
    np.testing.assert_allclose(load_audio(x, sample_rate=16000), x, atol=1e-7)
    y = load_audio(np.array([2**30, -2**31], np.int32), sample_rate=16000)
    np.testing.assert_array_equal(y, np.array([0.5, -1.0], np.float32))


# --- errors ---------------------------------------------------------------
def test_empty_sources(tmp_path):
    with pytest.raises(EmptyAudioError):
        load_audio(np.zeros(0, np.float32), sample_rate=16000)
    with pytest.raises(EmptyAudioError):
        load_audio(np.zeros((0, 2), np.int16), sample_rate=16000)
    empty_file = tmp_path / "empty.wav"
    empty_file.write_bytes(b"")
    with pytest.raises(EmptyAudioError, match="empty"):
        load_audio(empty_file)
    with pytest.raises(EmptyAudioError):
        load_audio(b"")
    no_frames = tmp_path / "no_frames.wav"
    sf.write(no_frames, np.zeros(0, np.float32), 16000, subtype="PCM_16")   # valid header, zero samples
    with pytest.raises(EmptyAudioError):
        load_audio(no_frames)


def test_non_finite(tmp_path):
    for bad in (np.nan, np.inf, -np.inf):
        x = np.zeros(100, np.float32)
        x[50] = bad
        with pytest.raises(NonFiniteAudioError):
            load_audio(x, sample_rate=16000)
    path = tmp_path / "nan.wav"
    x = np.zeros(1000, np.float32)
    x[10] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError):
        load_audio(path)


def test_undecodable(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all " * 40)
    with pytest.raises(UndecodableAudioError) as err:
        load_audio(junk)
    assert "junk.wav" in str(err.value) and "WAV" in str(err.value) and "FLAC" in str(err.value)
    with pytest.raises(UndecodableAudioError, match="bytes"):
        load_audio(b"RIFF\x00\x00garbage" * 10)
    assert issubclass(UndecodableAudioError, AudioError) and issubclass(UndecodableAudioError, ValueError)


@pytest.mark.parametrize("array, rate", [
    (np.zeros((10, 2, 2), np.float32), 16000),            # 3-D
    (np.zeros((2, 16000), np.float32), 16000),            # [channels, samples] by mistake
    (np.zeros(100, np.complex64), 16000),                 # not a sample dtype
    (np.zeros(100, np.float32), None),                    # no rate
    (np.zeros(100, np.float32), 0),
    (np.zeros(100, np.float32), -16000),
    (np.zeros(100, np.float32), float("nan")),
])
def test_shape_errors(array, rate):
    with pytest.raises(ShapeError):
        load_audio(array, sample_rate=rate)


def test_other_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(TypeError):
        load_audio([0.0, 0.1])                                     # type: ignore[arg-type]
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(100, np.float32), 8000)
    with pytest.raises(AudioError, match="8000"):
        load_audio(path, sample_rate=16000)                        # contradicts the file header
    assert len(load_audio(path, sample_rate=8000)) == 200          # agreeing rate is accepted


# --- fix_length -------------------------------------------------------------
def test_fix_length_cuts_and_pads_at_the_end():
    y = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(y, 3), [1, 2, 3])
    np.testing.assert_array_equal(fix_length(y, 7), [1, 2, 3, 4, 5, 0, 0])
    assert fix_length(y, 5) is y
    assert fix_length(y, 7).dtype == np.float32
    assert fix_length(np.zeros(20000, np.float32)).shape == (16000,)
    np.testing.assert_array_equal(fix_length(np.ones((2, 3)), 4), [[1, 1, 1, 0], [1, 1, 1, 0]])
    with pytest.raises(ShapeError):
        fix_length(np.float32(1.0), 4)


@settings(max_examples=50, deadline=None)
@given(m=st.integers(0, 40), n=st.integers(0, 40))
def test_fix_length_matches_librosa(m, n):
    y = np.random.default_rng(m).standard_normal(m).astype(np.float32)
    np.testing.assert_array_equal(fix_length(y, n), librosa.util.fix_length(y, size=n))
