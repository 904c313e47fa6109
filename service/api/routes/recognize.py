"""POST /v1/recognize (one clip) and POST /v1/recognize/batch (many clips in one request)."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile

from ...core.audio_input import MAX_CHANNELS, MAX_SAMPLE_RATE, Payload
from ...core.batcher import QueueFull, ShuttingDown
from ...core.engine import Engine, Recognition
from ...schemas import BatchPublic, ErrorPublic, RecognitionPublic
from ..deps import ApiKeyDep, EngineDep
from ..errors import ApiError, from_audio_error, overloaded

router = APIRouter(prefix="/v1/recognize", tags=["recognize"], dependencies=[ApiKeyDep])

FILE_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/flac", "audio/x-flac",
              "audio/ogg"}
RAW_TYPES = {"application/octet-stream"}          # raw PCM with ?sample_rate= (or an encoded file without it)
L16_TYPES = {"audio/l16"}                         # RFC 2586: big-endian int16, ;rate= ;channels=
ACCEPTED = "multipart/form-data (field 'file'), audio/wav, audio/flac, audio/ogg, application/octet-stream " \
           "(raw PCM with ?sample_rate=) or audio/L16;rate=<Hz>"

_binary = {"schema": {"type": "string", "format": "binary"}}
ONE_CLIP_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "a WAV/FLAC/OGG file, any rate and channels"}}}},
    "audio/wav": _binary,
    "audio/flac": _binary,
    "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                            "description": "raw PCM (give ?sample_rate=), or an encoded file"}},
}}}
BATCH_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "WAV/FLAC/OGG files, one field 'files' per clip"}}}},
}}}
ERRORS = {status: {"model": ErrorPublic, "description": text} for status, text in {
    400: "malformed multipart body",
    401: "missing or wrong API key (only when PYNQ_SPARSE_API_KEY is set)",
    413: "upload larger than the limit, or a clip longer than allowed",
    415: "unsupported content type",
    422: "bad audio (undecodable, empty, non-finite samples, bad PCM parameters) or bad parameters",
    503: "queue full, shutting down, or a device failure; see Retry-After",
}.items()}

SampleRate = Annotated[float | None, Query(gt=0, le=MAX_SAMPLE_RATE,
                                           description="raw PCM only: sample rate in Hz (any rate)")]
Channels = Annotated[int, Query(ge=1, le=MAX_CHANNELS, description="raw PCM only: interleaved channels")]
Encoding = Annotated[Literal["pcm_s16le", "pcm_s32le", "pcm_f32le"],
                     Query(description="raw PCM only: sample format (little-endian)")]


@router.post("", response_model=RecognitionPublic, responses=ERRORS, openapi_extra=ONE_CLIP_BODY)
async def recognize(request: Request, engine: EngineDep, sample_rate: SampleRate = None, channels: Channels = 1,
                    encoding: Encoding = "pcm_s16le") -> RecognitionPublic:
    """Classify one clip: a WAV/FLAC/OGG upload (multipart field `file` or the body) or raw PCM."""
    payload = await _one_payload(request, engine, sample_rate, channels, encoding)
    [result] = await _recognize(engine, [payload])
    if not isinstance(result, Recognition):
        raise from_audio_error(result)
    return RecognitionPublic(**vars(result))


@router.post("/batch", response_model=BatchPublic, responses=ERRORS, openapi_extra=BATCH_BODY)
async def recognize_batch(request: Request, engine: EngineDep) -> BatchPublic:
    """Classify several clips sent as repeated multipart fields `files`; results keep their order."""
    s = engine.settings
    if _media_type(request) != "multipart/form-data":
        raise _unsupported(request, "multipart/form-data with one field 'files' per clip")
    async with request.form(max_files=s.MAX_BATCH_FILES + 1, max_fields=s.MAX_BATCH_FILES + 16) as form:
        uploads = form.getlist("files")
        if not uploads:
            raise ApiError(422, "missing_file", "no clip in the request: send each clip as a multipart file field "
                                               "named 'files'")
        if len(uploads) > s.MAX_BATCH_FILES:
            raise ApiError(413, "too_many_files", f"{len(uploads)} clips in one request; at most "
                                                  f"{s.MAX_BATCH_FILES} (PYNQ_SPARSE_MAX_BATCH_FILES)")
        payloads = []
        for i, upload in enumerate(uploads):
            if not isinstance(upload, UploadFile):
                raise ApiError(422, "missing_file", f"field 'files' number {i} is text, not a file upload")
            name = f"file {i} ({upload.filename or 'unnamed'!r})"
            data = await upload.read(s.MAX_UPLOAD_BYTES + 1)
            if len(data) > s.MAX_UPLOAD_BYTES:
                raise ApiError(413, "upload_too_large", f"{name} is larger than {s.MAX_UPLOAD_BYTES} bytes "
                                                        "(PYNQ_SPARSE_MAX_UPLOAD_BYTES)")
            payloads.append(Payload(data, name))
    results = await _recognize(engine, payloads)
    for result in results:
        if not isinstance(result, Recognition):
            raise from_audio_error(result)
    items = [dict(vars(r), filename=u.filename or "") for r, u in zip(results, uploads)]
    return BatchPublic(count=len(items), results=items)


async def _recognize(engine: Engine, payloads: list[Payload]) -> list:
    try:
        return await engine.recognize(payloads)
    except (QueueFull, ShuttingDown) as err:
        engine.metrics.rejected.labels("shutting_down" if isinstance(err, ShuttingDown) else "queue_full").inc()
        raise overloaded(err, engine.settings.RETRY_AFTER_S) from None


async def _one_payload(request: Request, engine: Engine, sample_rate: float | None, channels: int,
                       encoding: str) -> Payload:
    """The clip of a single-clip request, by its content type."""
    media = _media_type(request)
    limit = engine.settings.MAX_UPLOAD_BYTES
    if media == "multipart/form-data":
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get("file")
            if upload is None:
                raise ApiError(422, "missing_file", "no field 'file' in the form: send the clip as a multipart "
                                                    "file field named 'file'")
            if not isinstance(upload, UploadFile):
                raise ApiError(422, "missing_file", "field 'file' is text, not a file upload")
            data = await upload.read(limit + 1)
            if len(data) > limit:
                raise ApiError(413, "upload_too_large", f"the file is larger than {limit} bytes "
                                                        "(PYNQ_SPARSE_MAX_UPLOAD_BYTES)")
            return Payload(data, repr(upload.filename) if upload.filename else "the uploaded file")
    if media in FILE_TYPES:
        return Payload(await request.body(), "the request body")
    if media in RAW_TYPES:
        body = await request.body()
        if sample_rate is None:                    # no rate: it must be an encoded file
            return Payload(body, "the request body")
        return Payload(body, "the raw PCM body", sample_rate, channels, encoding)
    if media in L16_TYPES:
        params = _media_params(request)
        try:
            rate = float(params.get("rate", sample_rate or 0)) or None
            n_ch = int(params.get("channels", channels))
        except ValueError:
            raise ApiError(422, "bad_pcm", "audio/L16 needs numeric rate= and channels= parameters") from None
        return Payload(await request.body(), "the audio/L16 body", rate, n_ch, "pcm_s16be")
    raise _unsupported(request, ACCEPTED)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _media_params(request: Request) -> dict[str, str]:
    parts = request.headers.get("content-type", "").split(";")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in parts)}


def _unsupported(request: Request, accepted: str) -> ApiError:
    got = request.headers.get("content-type") or "no Content-Type"
    return ApiError(415, "unsupported_media_type", f"cannot read a clip from {got}; send {accepted}")
