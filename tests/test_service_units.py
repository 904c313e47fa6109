"""Pieces of the service without a server: settings from the environment, PCM payloads, counters."""
from __future__ import annotations

import numpy as np
import pytest

from pynq_sparse.errors import EmptyAudioError
from pynq_sparse.service.core.audio_input import BadPcmError, ClipTooLongError, Payload, decode, pcm_samples
from pynq_sparse.service.core.config import Settings
from pynq_sparse.service.core.recognizer import flatten_counters


def test_settings_come_from_prefixed_environment_variables_with_their_types():
    s = Settings.from_env({"PYNQ_SPARSE_QUEUE_LIMIT": "7", "PYNQ_SPARSE_BATCH_DEADLINE_MS": "0.5",
                           "PYNQ_SPARSE_MODEL": "/m.pskw", "PYNQ_SPARSE_STREAM_HOP_S": "none",
                           "QUEUE_LIMIT": "99"})                      # unprefixed: ignored
    assert (s.QUEUE_LIMIT, s.BATCH_DEADLINE_MS, s.MODEL, s.STREAM_HOP_S) == (7, 0.5, "/m.pskw", None)
    assert Settings.from_env({"PYNQ_SPARSE_BACKEND": "cpu"}, BACKEND="golden", MODEL=None).BACKEND == "golden"
    with pytest.raises(ValueError, match="PYNQ_SPARSE_QUEUE_LIMIT='many' is not a valid int"):
        Settings.from_env({"PYNQ_SPARSE_QUEUE_LIMIT": "many"})
    with pytest.raises(ValueError, match="PYNQ_SPARSE_DEVICE_BATCH must be at least 1"):
        Settings(DEVICE_BATCH=0)


def test_raw_pcm_payloads_decode_in_any_layout_and_refuse_nonsense():
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stereo = np.stack([tone, tone], axis=1)
    for enc, arr in (("pcm_s16le", (stereo * 32767).astype("<i2")), ("pcm_s16be", (stereo * 32767).astype(">i2")),
                     ("pcm_s32le", (stereo * 2**31 * 0.999).astype("<i4")), ("pcm_f32le", stereo.astype("<f4"))):
        y = decode(Payload(arr.tobytes(), "body", 8000, 2, enc), max_seconds=2)
        assert y.dtype == np.float32 and y.shape == (16000,)                # resampled to 16 kHz, channels averaged
        assert np.abs(y).max() == pytest.approx(0.5, abs=0.01)
    with pytest.raises(BadPcmError, match="whole number of 2-channel pcm_s16le frames"):
        pcm_samples(b"\0" * 6, 2, "pcm_s16le")
    with pytest.raises(EmptyAudioError):
        decode(Payload(b"", "body", 16000), max_seconds=1)
    with pytest.raises(BadPcmError, match="sample_rate"):
        decode(Payload(b"\0\0", "body", 0.0), max_seconds=1)
    with pytest.raises(ClipTooLongError, match="1.50 s"):
        decode(Payload(b"\0\0" * 24000, "body", 16000), max_seconds=1)


def test_core_counters_are_flattened_with_core_and_copy_in_the_name():
    cores = [{"words_in": 5, "busy_cycles": 9, "copies": [{"words": 3}, {"words": 2}]}]
    assert flatten_counters(cores) == {"core0.words_in": 5, "core0.busy_cycles": 9, "core0.copy0.words": 3,
                                       "core0.copy1.words": 2}
