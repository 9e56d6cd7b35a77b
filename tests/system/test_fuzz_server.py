"""Schema-driven fuzzing of the HTTP API: schemathesis generates requests from the server's own OpenAPI
document — valid ones and deliberately invalid ones, for every operation — and every answer must be a 2xx,
or a 4xx whose JSON ``detail`` says what was wrong. Never a 5xx.

(The operations are walked in one test with a fixture-built app: schemathesis' pytest fixture loader does
not run on this pytest.)"""
from __future__ import annotations

import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from latentfuse.index import open_index
from latentfuse.serve import ServeConfig, create_app
from helpers.shapes import saved_index

EXAMPLES = int(os.environ.get("LATENTFUSE_FUZZ_EXAMPLES", "60"))  # per operation and mode


@pytest.fixture(scope="module")
def api_schema(shapes, tmp_path_factory):
    index = open_index(saved_index(shapes, tmp_path_factory.mktemp("fuzz") / "ix").directory)
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(index, ServeConfig(max_upload_mb=300_000 / 2**20,
                                                                                            max_k=20)))


def operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_request_gets_a_server_error(api_schema, mode):
    statuses: Counter = Counter()
    labels, inputless = [], []
    for operation in operations(api_schema):
        labels.append(operation.label)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            response = case.call()
            statuses[response.status_code // 100] += 1
            assert response.status_code < 500, (response.status_code, response.text[:300], case.as_curl_command())
            if response.status_code >= 400:
                assert response.json().get("detail"), (response.status_code, response.text[:300])

        try:
            check()
        except Unsatisfiable:  # nothing to make invalid: an operation without parameters or body
            assert mode is GenerationMode.NEGATIVE, operation.label
            inputless.append(operation.label)
    assert set(inputless) <= {"GET /health", "GET /indices-list"}, inputless
    assert {"POST /search", "GET /search", "POST /knn-service", "GET /indices-list"} <= set(labels)
    assert statuses[5] == 0 and sum(statuses.values()) >= 2 * len(labels)
    if mode is GenerationMode.NEGATIVE:
        assert statuses[4] > 0  # invalid input was generated, and refused
