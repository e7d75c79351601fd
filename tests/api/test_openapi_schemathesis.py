"""schemathesis against /openapi.json, in-process: no 5xx, and every response matches the document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from controlplane.clock import SystemClock
from tests.api.conftest import ADMIN
from tests.api.fakes import FakeRuntime
from tests.api.threaded import serve_in_thread

pytestmark = pytest.mark.integration
EXAMPLES = 12  # per operation and mode: enough to find shape bugs, small enough to stay fast


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_in_thread(FakeRuntime(tmp_path_factory.mktemp("schemathesis"), SystemClock())) as url:
        yield url


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _operations(base_url: str) -> list[Any]:
    doc = requests.get(f"{base_url}/openapi.json", timeout=5).json()
    schema = schemathesis.openapi.from_dict(doc)
    ops: list[Any] = []
    for r in schema.get_all_operations():
        assert isinstance(r, Ok), r  # an operation the schema cannot describe fails the test
        ops.append(r.ok())
    return ops


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_document(base_url: str, mode: GenerationMode) -> None:
    session = requests.Session()
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
    ops = _operations(base_url)
    assert len(ops) >= 20
    for op in ops:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=op.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            if case.query and "wait" in case.query:
                case.query["wait"] = 0  # long-polls would only slow the run; their logic has its own tests
            case.call_and_validate(base_url=base_url, session=session, headers=dict(ADMIN), checks=checks)

        try:
            run()
        except Unsatisfiable:
            # An operation without parameters or body has no invalid input to generate.
            assert mode is GenerationMode.NEGATIVE, op.label


def test_document_is_valid_openapi_31(base_url: str) -> None:
    doc = requests.get(f"{base_url}/openapi.json", timeout=5).json()
    assert doc["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(doc).validate()
