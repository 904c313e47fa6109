"""GET /healthz (the process answers) and GET /readyz (the model is loaded and the device worker runs)."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...schemas import HealthPublic, ReadyPublic
from ..deps import EngineDep

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
async def healthz() -> HealthPublic:
    """Liveness: 200 while the process serves requests."""
    return HealthPublic(status="ok")


@router.get("/readyz", response_model=ReadyPublic, responses={503: {"model": ReadyPublic}})
async def readyz(engine: EngineDep):
    """Readiness: 200 when the model is loaded and the device worker runs, else 503 with the reason."""
    ok, status = engine.ready
    body = ReadyPublic(ready=ok, status=status, backend=engine.recognizer.backend_name, model_id=engine.model_id)
    return body if ok else JSONResponse(body.model_dump(), status_code=503)
