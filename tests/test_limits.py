"""The request limits as plain functions: linear, bounded messages, exact parsing."""

from __future__ import annotations

import json

import pytest

from gpu_devbox.bench.devices import MAX_DEVICES, DeviceError, parse_devices
from gpu_devbox.quote import brief
from gpu_devbox.server import limits


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("x" * 10_000, "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."),
        (list(range(10**5)), "a list of 100000"),
        ({"a": 1}, "an object of 1 entries"),
        (10**100, "an integer of about 99 digits"),
        (True, "True"),
        ("quick", "'quick'"),
    ],
)
def test_brief_quotes_any_input_in_a_few_characters(value: object, text: str) -> None:
    assert brief(value) == text
    assert len(brief(value)) <= 40


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"x" * (limits.MAX_BODY_BYTES + 1), 413, "larger than 65536 bytes"),
        (b"[" * 5000, 400, "nested more than 16 levels"),
        (json.dumps([[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]).encode(), 400, "nested more than"),
        (json.dumps({"a": {"b": list(range(2000))}}).encode(), 400, "a.b has 2000 entries"),
        (json.dumps([{}, {"k": [0] * 1025}]).encode(), 400, "[1].k has 1025 entries"),
        (b"{bad", 400, "not valid JSON"),
        (b"\xff", 400, "not valid JSON"),
    ],
)
def test_bodies_over_a_limit_are_refused_with_the_status_to_answer(
    body: bytes, status: int, words: str
) -> None:
    with pytest.raises(limits.LimitError) as caught:
        limits.parse_json_body(body)
    assert caught.value.status == status
    assert words in str(caught.value)


def test_bodies_within_the_limits_parse() -> None:
    assert limits.parse_json_body(b"") is None
    assert limits.parse_json_body(b"  ") is None
    deep = json.dumps({"a": [[[[[[[[[[[[[[1]]]]]]]]]]]]]]})  # 16 levels
    assert limits.parse_json_body(deep.encode())["a"][0][0]


@pytest.mark.parametrize("raw", ["", " 5", "5 ", "1_0", "0x10", "five", "5.", ".5", "+5"])
def test_numbers_are_what_json_calls_a_number(raw: str) -> None:
    with pytest.raises(limits.LimitError, match="must be a number"):
        limits.parse_number(raw, "since")


@pytest.mark.parametrize("raw", ["nan", "inf", "-Infinity", "1e400"])
def test_numbers_must_be_finite(raw: str) -> None:
    with pytest.raises(limits.LimitError, match="finite"):
        limits.parse_number(raw, "since")


def test_an_absent_number_is_the_default() -> None:
    assert limits.parse_number(None, "since", default=2.0) == 2.0
    assert limits.parse_number("1e3", "since") == 1000.0
    assert limits.parse_number("-0.5", "x", minimum=-1) == -0.5


@pytest.mark.parametrize("raw", ["", "TRUE", " 1", "2", "y"])
def test_flags_take_only_the_documented_words(raw: str) -> None:
    with pytest.raises(limits.LimitError, match="refresh must be 1 or 0"):
        limits.parse_flag(raw, "refresh")


def test_query_values_are_single_and_short() -> None:
    assert limits.single_query_value([], "limit") is None
    assert limits.single_query_value(["5"], "limit") == "5"
    with pytest.raises(limits.LimitError, match="given 2 times"):
        limits.single_query_value(["5", "6"], "limit")
    with pytest.raises(limits.LimitError, match="65 characters long"):
        limits.single_query_value(["9" * 65], "limit")


def test_devices_are_capped_and_checked_in_one_pass() -> None:
    assert parse_devices(list(range(MAX_DEVICES))) == list(range(MAX_DEVICES))
    with pytest.raises(DeviceError, match=f"lists {MAX_DEVICES + 1} GPUs; at most"):
        parse_devices(list(range(MAX_DEVICES + 1)))
    with pytest.raises(DeviceError, match="GPU 3 is listed twice"):
        parse_devices([3, 1, 3])
    with pytest.raises(DeviceError, match="not 'xxxxx"):
        parse_devices(["x" * 100_000])
