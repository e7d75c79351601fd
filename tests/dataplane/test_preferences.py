from __future__ import annotations

import pytest

from dataplane.preferences import NO_PREFERENCES, PreferenceError, parse_preferences


def test_no_preferences_is_the_shared_empty_value() -> None:
    assert parse_preferences({"model": "m"}, {}) is NO_PREFERENCES


def test_body_object_is_parsed_and_stripped_before_forwarding() -> None:
    body = {
        "model": "m",
        "turnout": {
            "order": ["a/x", "b"],
            "allow_fallbacks": False,
            "deny_jurisdictions": ["cn"],
            "require_zero_retention": True,
            "max_price": 3,
            "debug": True,
        },
    }
    p = parse_preferences(body, {})
    assert "turnout" not in body
    assert p.order == ("a/x", "b") and not p.allow_fallbacks and p.deny_jurisdictions == {"cn"}
    assert p.require_zero_retention and p.max_price == 3.0 and p.debug and p.filters


def test_headers_are_read_and_the_body_wins_over_a_header() -> None:
    headers = {
        "x-turnout-order": "a/x, b/y",
        "x-turnout-max-price": "5",
        "x-turnout-debug": "1",
        "x-turnout-tag": "team-a",
    }
    p = parse_preferences({"turnout": {"max_price": 1}}, headers)
    assert p.order == ("a/x", "b/y") and p.max_price == 1.0 and p.debug and p.tag == "team-a"


def test_user_field_is_the_caller_tag_unless_a_tag_header_is_set() -> None:
    assert parse_preferences({"user": "alice"}, {}).tag == "alice"
    assert parse_preferences({"user": "alice"}, {"x-turnout-tag": "t"}).tag == "t"


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        ({"turnout": "fast"}, {}, "turnout"),
        ({"turnout": {"colour": "red"}}, {}, "turnout.colour"),
        ({"turnout": {"max_price": -1}}, {}, "turnout.max_price"),
        ({"turnout": {"allow_fallbacks": "maybe"}}, {}, "turnout.allow_fallbacks"),
        ({"turnout": {"order": [1, 2]}}, {}, "turnout.order"),
        ({}, {"x-turnout-max-price": "cheap"}, "x-turnout-max-price"),
    ],
)
def test_malformed_preferences_name_the_field(body: dict[str, object], headers: dict[str, str], field: str) -> None:
    with pytest.raises(PreferenceError) as info:
        parse_preferences(body, headers)
    assert info.value.field == field
