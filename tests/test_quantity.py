"""Kubernetes quantities, table-tested against the cases of Kubernetes' own grammar and tests.

The valid and invalid texts are those of k8s.io/apimachinery's ``resource.Quantity`` (its
documented grammar and the tables of ``quantity_test.go``); the values are exact.
"""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from gpu_devbox.catalog import schema
from gpu_devbox.quantity import (
    MAX_EXPONENT,
    NON_NEGATIVE_PATTERN,
    PATTERN,
    QuantityError,
    parse_quantity,
)

Ki, Mi, Gi, Ti, Pi, Ei = (1024**n for n in range(1, 7))

VALID = [
    ("0", 0),
    ("0n", 0),
    ("0m", 0),
    ("0Ki", 0),
    ("0k", 0),
    ("1", 1),
    # binary suffixes
    ("1Ki", Ki),
    ("8Ki", 8 * Ki),
    ("7Mi", 7 * Mi),
    ("6Gi", 6 * Gi),
    ("5Ti", 5 * Ti),
    ("4Pi", 4 * Pi),
    ("3Ei", 3 * Ei),
    # decimal suffixes
    ("5n", Fraction(5, 10**9)),
    ("4u", Fraction(4, 10**6)),
    ("3m", Fraction(3, 1000)),
    ("8k", 8000),
    ("50k", 50_000),
    ("7M", 7 * 10**6),
    ("6G", 6 * 10**9),
    ("5T", 5 * 10**12),
    ("2P", 2 * 10**15),
    ("1E", 10**18),
    # decimal exponents
    ("1E-3", Fraction(1, 1000)),
    ("1e3", 1000),
    ("1E6", 10**6),
    ("1e9", 10**9),
    ("1.3E+6", 1_300_000),
    ("0.5e-2", Fraction(5, 1000)),
    # fractions
    ("0.001", Fraction(1, 1000)),
    ("0.0005k", Fraction(1, 2)),
    ("100.035k", 100_035),
    ("7.123456M", 7_123_456),
    ("100.035Ki", Fraction(100_035 * Ki, 1000)),
    ("0.5Mi", Mi // 2),
    ("0.025Ti", Fraction(25 * Ti, 1000)),
    # what people write in pods and node status
    ("15900m", Fraction(159, 10)),
    ("1056089420Ki", 1056089420 * Ki),
    ("16Gi", 16 * Gi),
    # signs, and numbers without digits on one side of the point
    ("-1.025Ti", Fraction(-1025 * Ti, 1000)),
    ("+1Ki", Ki),
    (".001", Fraction(1, 1000)),
    ("1.", 1),
    ("1.G", 10**9),
]

INVALID = [
    "",
    "aoeu",
    "1.1.M",
    "1+1.0M",
    "0.1mi",
    "0.1am",
    ".5i",
    "1i",
    "-3.01i",
    "-3.01e-",
    "1e",
    "1e3Ki",
    "Ki",
    ".",
    # spaces are forbidden anywhere
    " 1",
    "1 ",
    "16 Gi",
    # what other tools accept and Kubernetes does not
    "1K",
    "40GiB",
    "2GB",
    "1.5e3.2",
]


@pytest.mark.parametrize(("text", "value"), VALID, ids=[text for text, _ in VALID])
def test_a_quantity_has_its_exact_value(text: str, value: int | Fraction) -> None:
    assert parse_quantity(text) == value
    assert re.fullmatch(PATTERN, text)


@pytest.mark.parametrize("text", INVALID, ids=[repr(t) for t in INVALID])
def test_what_kubernetes_refuses_is_refused(text: str) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(text)
    assert "\n" not in str(caught.value)
    assert not re.fullmatch(PATTERN, text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("40GiB", "40GiB is not a Kubernetes quantity (write 40Gi)"),
        ("2GB", "2GB is not a Kubernetes quantity (write 2G)"),
        ("1K", "1K is not a Kubernetes quantity (write 1k for a thousand, 1Ki for 1024)"),
        ("16 Gi", "'16 Gi' has spaces (write the number and its suffix together)"),
        ("lots", "'lots' is not a Kubernetes quantity"),
        ("1e999", f"the exponent of 1e999 is beyond ±{MAX_EXPONENT}"),
    ],
)
def test_the_usual_slips_are_named(text: str, message: str) -> None:
    with pytest.raises(QuantityError, match=re.escape(message)):
        parse_quantity(text)


def test_the_catalog_schema_uses_the_same_grammar_without_a_minus() -> None:
    definitions = schema()["$defs"]
    for name in ("size", "cores"):
        [text] = [s for s in definitions[name]["oneOf"] if s["type"] == "string"]
        assert text["pattern"] == NON_NEGATIVE_PATTERN, name
    assert re.fullmatch(NON_NEGATIVE_PATTERN, "+16Gi")
    assert not re.fullmatch(NON_NEGATIVE_PATTERN, "-16Gi")
