"""uvicorn's Server, told about the engine: when shutdown begins, queued clips run at once.

uvicorn's graceful shutdown (SIGTERM/SIGINT) closes the listening sockets, waits for the
requests in flight, then runs the app's lifespan shutdown. Requests in flight wait for their
device batch, so the engine must learn that shutdown began before uvicorn waits for them;
otherwise they would wait out the batch deadline first.

Usage::

    server = Server(uvicorn.Config(app, port=8000), app)
    server.run()
"""
from __future__ import annotations

import uvicorn
from fastapi import FastAPI


class Server(uvicorn.Server):
    """A uvicorn server that calls ``app.state.engine.begin_shutdown()`` as its shutdown starts."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets=None) -> None:
        engine = getattr(self.app.state, "engine", None)
        if engine is not None:
            engine.begin_shutdown()
        await super().shutdown(sockets=sockets)
