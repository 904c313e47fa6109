"""Build the FastAPI app of the keyword-spotting service.

Usage::

    from pynq_sparse.service.main import create_app
    app = create_app()                            # settings from PYNQ_SPARSE_* variables
    # uvicorn "pynq_sparse.service.main:create_app" --factory --port 8000

The model, the device queue and the telemetry sampler start in the app's lifespan and
stop (after draining queued clips) when the server shuts down.
"""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from pynq_sparse import __version__

from .api import errors
from .api.deps import get_recognizer
from .api.main import api_router
from .api.middleware import BodyLimitMiddleware, MetricsMiddleware
from .api.routes.demo import STATIC_DIR
from .core.config import Settings
from .core.engine import Engine
from .core.recognizer import build_recognizer

DESCRIPTION = """Sparse keyword spotting (12 Speech Commands classes) on a PYNQ overlay, its emulation or the CPU.

* `POST /v1/recognize`: one clip (WAV/FLAC/OGG upload, or raw PCM with `?sample_rate=`), any rate and channels.
* `POST /v1/recognize/batch`: several clips in one request.
* `WS /v1/stream`: PCM chunks in, keyword detections out.
* `GET /v1/telemetry`, `GET /metrics`: power and energy per word from a real sensor (or a clear "no sensor"),
  throughput, queue and core counters.
* `GET /`: the live microphone demo page.

When the service runs with `PYNQ_SPARSE_API_KEY` set, `/v1/*` and `/metrics` need the `X-API-Key` header.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app. Override ``get_recognizer`` in ``app.dependency_overrides`` before it starts to swap the model."""
    settings = settings if settings is not None else Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        override = app.dependency_overrides.get(get_recognizer)
        recognizer = override() if override is not None else build_recognizer(settings.MODEL, settings.BACKEND)
        engine = Engine(settings, recognizer).start()
        app.state.engine = engine
        try:
            yield
        finally:
            engine.stop()

    app = FastAPI(title="pynq-sparse keyword spotting", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.settings = settings
    app.include_router(api_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    errors.install(app)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code,
                                                                                    f"http_{exc.status_code}")
        return errors.error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body", "path", "header"))
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return errors.error_response(422, "bad_parameter", "; ".join(parts) or "invalid request")

    app.openapi = lambda: _openapi(app, settings)
    app.add_middleware(BodyLimitMiddleware, limits=_limits(settings))
    app.add_middleware(MetricsMiddleware, get_metrics=lambda: getattr(getattr(app.state, "engine", None),
                                                                      "metrics", None))
    return app


def _openapi(app: FastAPI, settings: Settings) -> dict:
    """The OpenAPI schema; the API-key scheme appears only when a key is set (else no route needs one)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        if not settings.auth_enabled:
            schema.get("components", {}).pop("securitySchemes", None)
            for ops in schema.get("paths", {}).values():
                for op in ops.values():
                    if isinstance(op, dict):
                        op.pop("security", None)
                        op.get("responses", {}).pop("401", None)
        app.openapi_schema = schema
    return app.openapi_schema


def _limits(settings: Settings):
    """Body limit of each path: one clip, a batch, or a small default for everything else."""
    one = settings.MAX_UPLOAD_BYTES + 64 * 1024          # room for multipart headers
    def limit(path: str) -> int | None:
        if path.rstrip("/") == "/v1/recognize/batch":
            return settings.MAX_BATCH_BYTES
        if path.rstrip("/") == "/v1/recognize":
            return one
        return 64 * 1024
    return limit
