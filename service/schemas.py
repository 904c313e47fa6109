"""Pydantic shapes of every answer the service gives (they become the OpenAPI schema)."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class ScorePublic(BaseModel):
    label: str
    index: int = Field(description="class index in the model's label list")
    score: int = Field(description="int32 score of the golden integer model")
    confidence: float = Field(description="softmax of score x score_scale (display only)")


class RecognitionPublic(BaseModel):
    label: str = Field(description="the best class")
    index: int
    confidence: float
    top_k: list[ScorePublic] = Field(description="the best TOP_K classes, best first")
    latency_ms: float = Field(description="from the request's arrival to its result")
    queue_ms: float = Field(description="time the clip waited for its device batch")
    compute_ms: float = Field(description="compute time of the whole device batch")
    batch_size: int = Field(description="words in the device batch this clip went through")
    backend: str = Field(description="which backend computed the scores")
    model_id: str
    duration_s: float = Field(description="length of the clip as sent; the first second is classified")


class BatchItemPublic(RecognitionPublic):
    filename: str


class BatchPublic(BaseModel):
    count: int
    results: list[BatchItemPublic]


class LayerPublic(BaseModel):
    name: str
    kind: str
    in_shape: list[int]
    out_shape: list[int]
    out_channels: int
    n_pack: int
    k: int
    nonzero_weights: int


class ModelPublic(BaseModel):
    model_id: str
    labels: list[str]
    n_classes: int
    nonzero_weights: int
    score_scale: float
    layers: list[LayerPublic]
    frontend: dict
    info: dict
    backend: str
    limits: dict = Field(description="input limits of this service")


class HealthPublic(BaseModel):
    status: str


class ReadyPublic(BaseModel):
    ready: bool
    status: str
    backend: Optional[str] = None
    model_id: Optional[str] = None


class PowerPublic(BaseModel):
    source: str = Field(description='"pynq-rails", "alveo-xrt", "rapl" or "none"')
    status: str = Field(description='"ok", "unavailable: <reason>" or "no power sensor: <reason>"')
    watts: Optional[float] = Field(description="summed power in W; null when not measured")
    rails: list[str] = Field(description="what was summed")
    per_rail_w: dict[str, float]
    interval_s: Optional[float] = None


class TemperaturePublic(BaseModel):
    celsius: float
    source: str


class QueuePublic(BaseModel):
    depth: int
    limit: int
    in_batch: int
    device_batch: int
    deadline_ms: float
    batches: int
    mean_batch_size: Optional[float]


class TelemetryPublic(BaseModel):
    power: PowerPublic
    energy_per_word_j: Optional[float] = Field(description="J per word over the last interval; null without a "
                                                           "power reading or without words")
    words_per_s: float = Field(description="words classified per second over the last interval")
    words_total: int
    temperature: Optional[TemperaturePublic] = Field(description="null where no temperature sensor exists")
    core_counters: Optional[dict[str, int]] = Field(description="counters read from the core; null when the "
                                                                "backend has none")
    core_counters_status: str
    backend: str
    queue: QueuePublic
    uptime_s: float


class ErrorPublic(BaseModel):
    detail: str
    code: str
