"""Service settings: one dataclass, every field read from a ``PYNQ_SPARSE_<FIELD>`` environment variable.

Usage::

    from pynq_sparse.service.core.config import Settings
    settings = Settings.from_env()                     # PYNQ_SPARSE_API_KEY=... etc.
    settings = Settings(API_KEY="secret", QUEUE_LIMIT=16)
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from typing import Mapping

ENV_PREFIX = "PYNQ_SPARSE_"


@dataclass
class Settings:
    """Everything an operator can tune. Each field ``X`` comes from ``PYNQ_SPARSE_X``."""

    # model and device
    MODEL: str | None = None            # path of a .pskw model file; None: the shipped model
    BACKEND: str = "auto"               # backend name passed to KeywordSpotter ("auto", "emulated", "cpu", ...)
    TOP_K: int = 3                      # scores listed in each answer (best first)

    # micro-batching queue
    DEVICE_BATCH: int = 32              # most words in one device batch
    BATCH_DEADLINE_MS: float = 2.0      # longest wait after the first queued clip before its batch starts
    QUEUE_LIMIT: int = 128              # clips waiting for the device; more answer 503
    RETRY_AFTER_S: int = 1              # Retry-After header of 503 answers, seconds

    # input limits
    MAX_UPLOAD_BYTES: int = 4 * 1024 * 1024   # one clip's upload (file or raw PCM), bytes
    MAX_BATCH_FILES: int = 64                 # clips in one batch request
    MAX_BATCH_BYTES: int = 32 * 1024 * 1024   # a whole batch request, bytes
    MAX_CLIP_SECONDS: float = 10.0            # longest clip accepted, seconds (only the first second is classified)

    # authentication: off while empty; when set, /v1/* and /metrics need "X-API-Key: <key>"
    API_KEY: str = ""

    # streaming detector (None: the detector's own defaults)
    STREAM_WINDOW_S: float | None = None
    STREAM_HOP_S: float | None = None
    STREAM_THRESHOLD: float | None = None
    STREAM_MAX_CHUNK_BYTES: int = 1024 * 1024  # one WebSocket message of PCM, bytes
    MAX_STREAMS: int = 16               # WebSocket streams open at once

    # telemetry
    POWER_SOURCE: str = "auto"          # "auto", "pynq-rails", "alveo-xrt", "rapl" or "none"
    TELEMETRY_INTERVAL_S: float = 1.0   # seconds between power samples

    # shutdown
    SHUTDOWN_TIMEOUT_S: float = 30.0    # longest wait for in-flight work on SIGTERM, seconds

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Settings from ``PYNQ_SPARSE_*`` variables, then `overrides` (those that are not None)."""
        env = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name)
            if raw is not None:
                values[f.name] = _parse(raw, hints[f.name], ENV_PREFIX + f.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __post_init__(self) -> None:
        for name in ("DEVICE_BATCH", "QUEUE_LIMIT", "MAX_UPLOAD_BYTES", "MAX_BATCH_FILES", "MAX_BATCH_BYTES", "TOP_K"):
            if getattr(self, name) < 1:
                raise ValueError(f"{ENV_PREFIX}{name} must be at least 1, got {getattr(self, name)}")
        for name in ("BATCH_DEADLINE_MS", "RETRY_AFTER_S", "SHUTDOWN_TIMEOUT_S"):
            if getattr(self, name) < 0:
                raise ValueError(f"{ENV_PREFIX}{name} must not be negative, got {getattr(self, name)}")
        if self.MAX_CLIP_SECONDS <= 0 or self.TELEMETRY_INTERVAL_S <= 0:
            raise ValueError(f"{ENV_PREFIX}MAX_CLIP_SECONDS and {ENV_PREFIX}TELEMETRY_INTERVAL_S must be positive")

    @property
    def auth_enabled(self) -> bool:
        return bool(self.API_KEY)


def _parse(raw: str, hint, name: str):
    """Turn an environment string into the field's type (int, float, str, optional)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    target = args[0] if args else hint
    if args and raw.strip().lower() in ("", "none"):
        return None
    try:
        if target is bool:
            return raw.strip().lower() in ("1", "true", "yes", "on")
        return target(raw)
    except ValueError as err:
        raise ValueError(f"{name}={raw!r} is not a valid {target.__name__}") from err
