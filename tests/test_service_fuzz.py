"""Schemathesis fuzzes the service's OpenAPI schema against the real server: no 5xx, answers match the schema.

The server runs with an API key, so the fuzzer also checks that requests without it, or with a
wrong one, are refused. (schemathesis.pytest.from_fixture does not run under pytest 9, so each
operation's strategy is driven with hypothesis directly.)
"""
from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from pynq_sparse.service.api.deps import get_recognizer
from pynq_sparse.service.core.config import Settings
from pynq_sparse.service.main import create_app
from pynq_sparse.service.testing import make_recognizer, running_server

EXAMPLES = 20                 # generated cases per operation and mode
KEY = "fuzz-key"
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
CASES = [("POST", "/v1/recognize", POSITIVE), ("POST", "/v1/recognize", NEGATIVE),
         ("POST", "/v1/recognize/batch", POSITIVE), ("POST", "/v1/recognize/batch", NEGATIVE),
         ("GET", "/v1/model", POSITIVE), ("GET", "/v1/model", NEGATIVE),
         ("GET", "/v1/telemetry", POSITIVE), ("GET", "/v1/telemetry", NEGATIVE),
         ("GET", "/metrics", POSITIVE), ("GET", "/metrics", NEGATIVE),
         ("GET", "/healthz", POSITIVE), ("GET", "/readyz", POSITIVE)]   # the probes take no input to negate
# A schema cannot say "bytes of a decodable audio file", so schema-valid random bytes are rightly
# refused (422) by the audio endpoints: the positive-data-acceptance check does not apply to them.
AUDIO_PATHS = {"/v1/recognize", "/v1/recognize/batch"}
# A negated binary body is still bytes on the wire; when they read as a long raw PCM clip, 413 is the right
# refusal, so it counts as rejecting the negative data (with schemathesis' default statuses).
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]}}})


@pytest.fixture(scope="module")
def server():
    recognizer = make_recognizer()
    app = create_app(Settings(MAX_UPLOAD_BYTES=64 * 1024, MAX_BATCH_FILES=4, POWER_SOURCE="none", API_KEY=KEY))
    app.dependency_overrides[get_recognizer] = lambda: recognizer
    with running_server(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(server.url + "/openapi.json", config=CONFIG)


def test_schema_covers_every_operation(api_schema):
    found = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert found == {(m, p) for m, p, _ in CASES}


def test_schema_declares_the_api_key_only_when_one_is_set(api_schema, server):
    r = httpx.get(server.url + "/openapi.json")
    assert r.status_code == 200
    assert "APIKeyHeader" in r.json()["components"]["securitySchemes"]
    schema = create_app(Settings(POWER_SOURCE="none")).openapi()      # no key set: nothing to declare
    assert "securitySchemes" not in schema.get("components", {})
    assert all("security" not in op for ops in schema["paths"].values() for op in ops.values())


@pytest.mark.parametrize("method,path,mode", CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_no_server_errors_and_answers_match_the_schema(api_schema, server, method, path, mode):
    operation = api_schema[path][method]
    seen: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case):
        excluded = [schemathesis.checks.positive_data_acceptance] if path in AUDIO_PATHS else []
        response = case.call_and_validate(base_url=server.url, timeout=30, headers={"X-API-Key": KEY},
                                          excluded_checks=excluded)
        seen.append(response.status_code)
        assert response.status_code < 500, response.text

    fuzz()
    assert seen and max(seen) < 500
