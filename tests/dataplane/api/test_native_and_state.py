"""Pass-through stream translators (classification with the upstream's bytes kept), the stored Responses
conversations (retention on the injected clock, the cap), and the client API modules' public names."""

from __future__ import annotations

import importlib

import pytest

from adapters.native import NativeMessagesStream, NativeResponsesStream, serves_responses_natively
from controlplane.config import ProviderConfig, ResponsesStateConfig
from dataplane.api.responses_state import ResponseStore
from tests.fakes import FakeClock


def _ev(kind: str, data: str) -> bytes:
    return f"event: {kind}\ndata: {data}\n\n".encode()


def test_native_responses_events_keep_their_bytes_and_mark_content_and_the_end() -> None:
    tr = NativeResponsesStream()
    created = _ev("response.created", '{"type":"response.created","sequence_number":0,"response":{"id":"r"}}')
    delta = _ev("response.output_text.delta", '{"type":"response.output_text.delta","sequence_number":1,"delta":"Hi"}')
    done = _ev(
        "response.completed",
        '{"type":"response.completed","sequence_number":2,"response":{"usage":{"input_tokens":3,"output_tokens":1}}}',
    )
    items = tr.feed(created + delta + done)
    assert [i.kind for i in items] == ["keepalive", "chunk", "chunk", "done"]
    assert items[0].raw == created and items[1].raw == delta and items[1].content
    assert items[2].usage == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


@pytest.mark.parametrize(
    ("event", "data", "error_class"),
    [
        ("error", '{"type":"error","code":"server_error","message":"boom"}', "server_error"),
        (
            "response.failed",
            '{"type":"response.failed","response":{"error":{"code":"rate_limit_exceeded","message":"slow down"}}}',
            "rate_limited",
        ),
        ("response.output_text.delta", '{"type":"response.output_text.delta","delta":"ab', "bad_response"),
    ],
)
def test_native_responses_failures_are_classified(event: str, data: str, error_class: str) -> None:
    items = NativeResponsesStream().feed(_ev(event, data))
    assert items[-1].kind == "error" and items[-1].classification is not None
    assert str(items[-1].classification.error_class) == error_class


def test_a_native_responses_stream_closed_without_completed_is_truncated() -> None:
    tr = NativeResponsesStream()
    tr.feed(_ev("response.output_text.delta", '{"type":"response.output_text.delta","delta":"Hi"}'))
    [end] = tr.close()
    assert end.kind == "error" and end.classification is not None and end.classification.code == "truncated"


def test_native_messages_events_keep_their_bytes_and_anthropic_s_classes() -> None:
    tr = NativeMessagesStream("m")
    start = _ev("message_start", '{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":2}}}')
    delta = _ev(
        "content_block_delta", '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}'
    )
    err = _ev("error", '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
    items = tr.feed(start + delta + err)
    assert items[0].raw == start and items[1].raw == delta and items[1].content
    assert items[2].kind == "error" and items[2].classification is not None
    assert str(items[2].classification.error_class) == "overloaded"


@pytest.mark.parametrize(
    ("fields", "native"),
    [
        ({"base_url": "https://api.openai.com/v1"}, True),
        ({"base_url": "http://vllm:8000/v1"}, False),
        ({"base_url": "https://x.openai.azure.com/openai", "flavor": "azure"}, True),
        ({"base_url": "http://vllm:8000/v1", "responses_api": "native"}, True),
        ({"base_url": "https://api.openai.com/v1", "responses_api": "translate"}, False),
        ({"base_url": "https://api.anthropic.com", "adapter": "anthropic"}, False),
    ],
)
def test_which_hosts_serve_the_responses_api_natively(fields: dict[str, str], native: bool) -> None:
    p = ProviderConfig.model_validate({"id": "p", "adapter": "openai", "models": [{"name": "m"}], **fields})
    assert serves_responses_natively(p) is native


def test_stored_responses_expire_after_the_retention_and_the_oldest_go_beyond_the_cap() -> None:
    clock = FakeClock()
    store = ResponseStore(clock, ResponsesStateConfig(store=True, retention=60, max_entries=2))
    out = [{"type": "message", "role": "assistant", "content": []}, {"type": "reasoning"}]
    store.put({"id": "a", "output": out}, [{"role": "user", "content": "1"}])
    got = store.get("a")
    assert got is not None and got.conversation == [{"role": "user", "content": "1"}, out[0]]  # reasoning dropped
    store.put({"id": "b", "output": []}, [])
    store.put({"id": "c", "output": []}, [])
    assert store.get("a") is None and len(store) == 2
    clock.advance(61)
    assert store.get("b") is None and store.get("c") is None


def test_nothing_is_stored_while_the_setting_is_off() -> None:
    store = ResponseStore(FakeClock(), ResponsesStateConfig())
    store.put({"id": "a", "output": []}, [])
    assert not store.enabled and store.get("a") is None


@pytest.mark.parametrize(
    "module",
    [
        "dataplane.api.pipeline",
        "dataplane.api.intake",
        "dataplane.api.responses",
        "dataplane.api.responses_translate",
        "dataplane.api.responses_stream",
        "dataplane.api.responses_state",
        "dataplane.api.messages",
        "dataplane.api.messages_translate",
        "dataplane.api.messages_stream",
        "dataplane.api.embeddings",
        "dataplane.api.models",
        "adapters.native",
        "adapters.embeddings",
    ],
)
def test_all_lists_only_existing_public_names(module: str) -> None:
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ lists missing {name}"
        assert not name.startswith("_")
