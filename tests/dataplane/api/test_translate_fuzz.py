"""Any JSON body of the Responses, Messages or embeddings APIs is either translated or refused with a ValueError
naming the field (a 400 in the client's shape): never another exception, which would be a 500. And what a
translation accepts, every adapter can send."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.anthropic import to_messages_request
from adapters.gemini import to_generate_request
from dataplane.api import embeddings, messages_translate, responses_translate

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=10,
)
part = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["input_text", "output_text", "text", "input_image", "image", "tool_use", "tool_result", "x"]
            )
        },
        optional={
            "text": json_values,
            "image_url": json_values,
            "source": json_values,
            "id": json_values,
            "name": json_values,
            "input": json_values,
            "tool_use_id": json_values,
            "content": json_values,
        },
    ),
)
item = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(
                ["message", "function_call", "function_call_output", "reasoning", "web_search_call"]
            ),
            "role": st.sampled_from(["user", "assistant", "system", "developer", "tool", ""]),
            "content": st.one_of(st.lists(part, max_size=3), json_values),
            "call_id": json_values,
            "name": json_values,
            "arguments": json_values,
            "output": json_values,
        },
    ),
)
responses_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": json_values,
        "input": st.one_of(st.lists(item, max_size=3), json_values),
        "instructions": json_values,
        "tools": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"type": st.just("function")}, optional={"name": json_values, "parameters": json_values}
                ),
                max_size=2,
            ),
            json_values,
        ),
        "tool_choice": json_values,
        "max_output_tokens": json_values,
        "temperature": json_values,
        "text": json_values,
        "parallel_tool_calls": json_values,
    },
)
messages_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": json_values,
        "max_tokens": st.one_of(st.integers(1, 100), json_values),
        "system": json_values,
        "messages": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "role": st.sampled_from(["user", "assistant", "x"]),
                        "content": st.one_of(st.lists(part, max_size=3), json_values),
                    }
                ),
                max_size=3,
            ),
            json_values,
        ),
        "stop_sequences": json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "metadata": json_values,
        "temperature": json_values,
    },
)


def _adapters_accept(chat: dict[str, Any]) -> None:
    """A translated body is one every adapter can send (or refuses by ValueError, named)."""
    for build in (lambda b: to_messages_request(b, "m", stream=False), to_generate_request):
        try:
            build(chat)
        except ValueError:
            pass


@settings(max_examples=120, deadline=None)
@given(responses_bodies)
def test_any_responses_body_translates_or_names_the_field(body: dict[str, Any]) -> None:
    try:
        chat = responses_translate.to_chat_body(body, responses_translate.input_items(body))
    except ValueError as exc:
        assert str(exc)
        return
    _adapters_accept(chat)


@settings(max_examples=120, deadline=None)
@given(messages_bodies)
def test_any_messages_body_translates_or_names_the_field(body: dict[str, Any]) -> None:
    try:
        chat = messages_translate.to_chat_body(body)
    except ValueError as exc:
        assert str(exc)
        return
    _adapters_accept(chat)


@settings(max_examples=100, deadline=None)
@given(
    st.fixed_dictionaries(
        {}, optional={"input": json_values, "dimensions": json_values, "encoding_format": json_values}
    )
)
def test_any_embeddings_body_is_checked_without_raising(body: dict[str, Any]) -> None:
    problem = embeddings._check(body)
    assert problem is None or ":" in problem


@pytest.mark.parametrize("completion", [{}, {"choices": []}, {"choices": [None]}, {"choices": [{"message": None}]}])
def test_odd_completions_still_give_a_response_and_a_message(completion: dict[str, Any]) -> None:
    assert responses_translate.from_chat_completion({"model": "r"}, completion, rid="r")["object"] == "response"
    assert messages_translate.from_chat_completion(completion, mid="m", model="r")["type"] == "message"
