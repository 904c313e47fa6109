"""GET /: the live microphone demo page (its script and worklet are served under /static)."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

router = APIRouter(tags=["demo"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def demo_page() -> HTMLResponse:
    """The live microphone demo: spectrogram, detections and power."""
    return HTMLResponse((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
