"""Every refusal the API gives: a status, a machine-readable code and a message that says how to fix it.

Bodies look like ``{"detail": "<message>", "code": "<code>"}``.
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from pynq_sparse.errors import AudioError, DeviceError, EmptyAudioError, NonFiniteAudioError, ShapeError, UndecodableAudioError

from ..core.audio_input import BadPcmError, ClipTooLongError
from ..core.batcher import QueueFull, ShuttingDown


class ApiError(Exception):
    """An answer other than 2xx, with its status, code, message and extra headers."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}


# (exception class, status, code): the first match wins, so subclasses come first
AUDIO_ERRORS: list[tuple[type[Exception], int, str]] = [
    (ClipTooLongError, 413, "clip_too_long"),
    (EmptyAudioError, 422, "empty_audio"),
    (NonFiniteAudioError, 422, "non_finite_audio"),
    (UndecodableAudioError, 422, "undecodable_audio"),
    (BadPcmError, 422, "bad_pcm"),
    (ShapeError, 422, "bad_audio_shape"),
    (AudioError, 422, "bad_audio"),
]


def from_audio_error(err: Exception, prefix: str = "") -> ApiError:
    """The ApiError for an AudioError (or a ShapeError) raised while reading a clip."""
    for cls, status, code in AUDIO_ERRORS:
        if isinstance(err, cls):
            return ApiError(status, code, prefix + str(err))
    return ApiError(422, "bad_audio", prefix + str(err))


def overloaded(err: Exception, retry_after_s: int) -> ApiError:
    """503 with Retry-After for a full queue or a service that is shutting down."""
    code = "shutting_down" if isinstance(err, ShuttingDown) else "overloaded"
    msg = (f"the service is busy: {err}; retry after {retry_after_s} s" if isinstance(err, QueueFull)
           else "the service is shutting down; retry on another instance or after the restart")
    return ApiError(503, code, msg, {"Retry-After": str(max(1, int(retry_after_s)))})


class BodyTooLarge(Exception):
    """The request body grew past the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


def error_response(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn ApiError, BodyTooLarge and stray AudioErrors into JSON answers."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        _count(request, exc.status, exc.code)
        return error_response(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        _count(request, 413, "upload_too_large")
        return error_response(413, "upload_too_large", too_large_message(exc.limit), {"Connection": "close"})

    @app.exception_handler(DeviceError)
    async def _device(request: Request, exc: DeviceError) -> JSONResponse:
        return error_response(503, "device_error", f"the device failed on this batch ({exc}); it was reset, "
                              "retry the request", {"Retry-After": "1"})

    @app.exception_handler(AudioError)
    async def _audio(request: Request, exc: AudioError) -> JSONResponse:
        e = from_audio_error(exc)
        _count(request, e.status, e.code)
        return error_response(e.status, e.code, e.detail)


def _count(request: Request, status: int, code: str) -> None:
    """Count refusals for bad input (4xx other than 401) in the bad_input metric."""
    engine = getattr(request.app.state, "engine", None)
    if engine is not None and 400 <= status < 500 and status != 401:
        engine.metrics.bad_input.labels(code).inc()


def too_large_message(limit: int) -> str:
    return (f"the request body is larger than this endpoint's limit of {limit} bytes; send a shorter clip "
            "(PYNQ_SPARSE_MAX_UPLOAD_BYTES / PYNQ_SPARSE_MAX_BATCH_BYTES set the limits)")
