"""All routes of the service in one router."""
from __future__ import annotations

from fastapi import APIRouter

from .routes import demo, health, model, recognize, stream, telemetry

api_router = APIRouter()
api_router.include_router(recognize.router)
api_router.include_router(model.router)
api_router.include_router(telemetry.router)
api_router.include_router(health.router)
api_router.include_router(stream.router)
api_router.include_router(demo.router)
