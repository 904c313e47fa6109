"""GET /v1/model: the served model, its labels and layers, and the service's input limits."""
from __future__ import annotations

from fastapi import APIRouter

from ...schemas import ErrorPublic, LayerPublic, ModelPublic
from ..deps import ApiKeyDep, EngineDep

router = APIRouter(prefix="/v1/model", tags=["model"], dependencies=[ApiKeyDep])


@router.get("", response_model=ModelPublic, responses={401: {"model": ErrorPublic}})
async def model_info(engine: EngineDep) -> ModelPublic:
    """Describe the served model (id, labels, layers, non-zero weights) and the backend running it."""
    model = engine.recognizer.model
    s = engine.settings
    layers = [LayerPublic(name=layer.name, kind=layer.kind, in_shape=list(layer.in_shape),
                          out_shape=list(layer.out_shape), out_channels=layer.out_channels, n_pack=layer.n_pack,
                          k=layer.k, nonzero_weights=layer.nonzero_weights) for layer in model.layers]
    limits = {"max_upload_bytes": s.MAX_UPLOAD_BYTES, "max_clip_seconds": s.MAX_CLIP_SECONDS,
              "max_batch_files": s.MAX_BATCH_FILES, "max_batch_bytes": s.MAX_BATCH_BYTES,
              "queue_limit": s.QUEUE_LIMIT, "device_batch": s.DEVICE_BATCH, "batch_deadline_ms": s.BATCH_DEADLINE_MS}
    return ModelPublic(model_id=engine.model_id, labels=list(model.labels), n_classes=model.n_classes,
                       nonzero_weights=model.nonzero_weights, score_scale=model.score_scale, layers=layers,
                       frontend=dict(model.frontend), info=_jsonable(model.info),
                       backend=engine.recognizer.backend_name, limits=limits)


def _jsonable(info: dict) -> dict:
    """The model's info dict with anything JSON cannot hold turned into text."""
    out = {}
    for key, value in info.items():
        out[str(key)] = value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)
    return out
