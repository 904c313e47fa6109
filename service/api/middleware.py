"""Pure ASGI middleware: request body limits and per-route request metrics.

Both are plain ASGI (no BaseHTTPMiddleware) so that they cost little per request and do
not buffer bodies.
"""
from __future__ import annotations

import json
import time
from typing import Callable

from .errors import BodyTooLarge, too_large_message

Scope = dict
ASGIApp = Callable


class BodyLimitMiddleware:
    """Refuse bodies over a per-path limit with 413, from Content-Length or while they stream in.

    Parameters
    ----------
    limits : callable(path) -> int or None
        The byte limit of a path (None: no limit).
    """

    def __init__(self, app: ASGIApp, limits: Callable[[str], int | None]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await _send_json(send, 413, {"detail": too_large_message(limit), "code": "upload_too_large"},
                                     close=True)
                    return
                break
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


class MetricsMiddleware:
    """Count requests and time them per route template (``/v1/recognize``, not the raw path)."""

    def __init__(self, app: ASGIApp, get_metrics: Callable[[], object | None]) -> None:
        self.app = app
        self.get_metrics = get_metrics

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics = self.get_metrics()
            if metrics is not None:
                route = scope.get("route")
                name = getattr(route, "path", None) or "unmatched"
                metrics.requests.labels(name, str(status)).inc()
                metrics.latency.labels(name).observe(time.perf_counter() - start)


async def _send_json(send, status: int, body: dict, close: bool = False) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
