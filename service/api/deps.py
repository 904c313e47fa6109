"""Dependencies of the routes, as ``Annotated`` aliases so that endpoint signatures stay short.

Tests swap the model/backend with ``app.dependency_overrides[get_recognizer] = lambda: my_recognizer``
before the app starts: the lifespan builds the engine (and its queue) around that recognizer.
"""
from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader
from starlette.requests import HTTPConnection

from ..core.config import Settings
from ..core.engine import Engine
from ..core.recognizer import Recognizer
from .errors import ApiError

API_KEY_HEADER = "X-API-Key"
API_KEY_QUERY = "api_key"            # WebSocket only: browsers cannot set headers on a WebSocket

_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                               description="needed only when the service runs with PYNQ_SPARSE_API_KEY set")


# Dependencies are `async def`: FastAPI would run plain functions in its thread pool, one hop each.
async def get_settings(conn: HTTPConnection) -> Settings:
    """The app's settings."""
    return conn.app.state.settings


async def get_engine(conn: HTTPConnection) -> Engine:
    """The app's engine (recognizer, queue, telemetry, metrics)."""
    return engine_of(conn)


async def get_recognizer(conn: HTTPConnection) -> Recognizer:
    """The recognizer serving this app; override it (zero-argument callable) to swap model or backend."""
    return engine_of(conn).recognizer


def engine_of(conn: HTTPConnection) -> Engine:
    """The app's engine, outside dependency injection (WebSocket routes)."""
    return conn.app.state.engine


def key_matches(settings: Settings, given: str | None) -> bool:
    """True when authentication is off, or `given` is the configured key (constant-time compare)."""
    if not settings.auth_enabled:
        return True
    return given is not None and hmac.compare_digest(given.encode(), settings.API_KEY.encode())


async def require_api_key(conn: HTTPConnection,
                          key: Annotated[str | None, Security(_api_key_header)] = None) -> None:
    """401 unless authentication is off or the X-API-Key header holds the key."""
    settings: Settings = conn.app.state.settings
    if key_matches(settings, key):
        return
    detail = (f"missing API key: send it in the {API_KEY_HEADER} header" if not key
              else f"wrong API key in the {API_KEY_HEADER} header")
    raise ApiError(401, "unauthorized", detail, {"WWW-Authenticate": API_KEY_HEADER})


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
RecognizerDep = Annotated[Recognizer, Depends(get_recognizer)]
ApiKeyDep = Depends(require_api_key)
