"""Kubernetes quantities (``16Gi``, ``500m``, ``1e3``, ``1.5``): the one parser of the project.

The grammar is Kubernetes' own (``resource.Quantity`` in k8s.io/apimachinery, documented at
https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/):

    quantity  ::= sign? number suffix?          (no spaces anywhere)
    number    ::= digits | digits "." digits? | "." digits
    suffix    ::= binary | decimal | ("e" | "E") sign? digits
    binary    ::= Ki | Mi | Gi | Ti | Pi | Ei   (powers of 1024)
    decimal   ::= n | u | m | k | M | G | T | P | E   (powers of 1000)

So ``1k`` is 1000 and ``1Ki`` 1024, while ``1K``, ``40GiB`` and ``16 Gi`` are no quantities. The
value is exact (a :class:`~fractions.Fraction`): ``0.1Gi`` is 107374182.4, not a float near it.
The catalog, the node allocatable the placement reads and anything else that reads a quantity
use :func:`parse_quantity`; what a quantity may be in one place (whole bytes, positive cores)
is that place's rule.
"""

from __future__ import annotations

import re
from fractions import Fraction

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_SUFFIX = r"(?:[KMGTPE]i|[eE][+-]?[0-9]+|[numkMGTPE])"
#: The grammar above, as a regular expression.
PATTERN = rf"^[+-]?{_NUMBER}{_SUFFIX}?$"
#: The quantities without a minus sign (the catalog schema's ``pattern`` for sizes and CPU).
NON_NEGATIVE_PATTERN = rf"^\+?{_NUMBER}{_SUFFIX}?$"

_QUANTITY = re.compile(
    rf"(?P<number>[+-]?{_NUMBER})"
    r"(?:(?P<binary>[KMGTPE]i)|[eE](?P<exponent>[+-]?[0-9]+)|(?P<decimal>[numkMGTPE]))?"
)
_BINARY = {prefix: 1024**power for power, prefix in enumerate("KMGTPE", start=1)}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
#: Exponents beyond this are refused rather than computed (``1e999999999`` is no size).
MAX_EXPONENT = 100


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity; the message says why, in one line."""


def parse_quantity(text: str) -> Fraction:
    """The exact value of a Kubernetes quantity.

    Raises:
        QuantityError: ``text`` does not follow Kubernetes' quantity grammar.
    """
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise QuantityError(_why_not(text))
    value = Fraction(match["number"])
    binary: str | None = match["binary"]
    if binary:
        return value * Fraction(_BINARY[binary[0]])
    exponent = _DECIMAL[match["decimal"]] if match["decimal"] else int(match["exponent"] or 0)
    if abs(exponent) > MAX_EXPONENT:
        raise QuantityError(f"the exponent of {text} is beyond ±{MAX_EXPONENT}")
    scale = Fraction(10**exponent) if exponent >= 0 else Fraction(1, 10**-exponent)
    return value * scale


def _why_not(text: str) -> str:
    """Say what is wrong with a text that is no quantity, naming the usual slips."""
    if text != text.strip() or " " in text:
        return f"{text!r} has spaces (write the number and its suffix together)"
    slip = re.fullmatch(r"([+-]?[0-9.]+)([KMGTPE])(i?)B", text)
    if slip:
        number, prefix, binary = slip.groups()
        return f"{text} is not a Kubernetes quantity (write {number}{prefix}{binary})"
    if re.fullmatch(r"[+-]?[0-9.]+K", text):
        return (
            f"{text} is not a Kubernetes quantity (write {text[:-1]}k for a thousand, "
            f"{text}i for 1024)"
        )
    return f"{text!r} is not a Kubernetes quantity"
