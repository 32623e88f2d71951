"""Quoting untrusted input in error messages without letting the message grow with it."""

from __future__ import annotations

#: The longest quotation of someone else's input in a message, in characters.
MAX_QUOTE = 40


def brief(value: object, limit: int = MAX_QUOTE) -> str:
    """``repr(value)`` cut to about ``limit`` characters.

    Strings are cut before ``repr`` sees them, containers are described by their size and huge
    integers by their digit count, so quoting costs little whatever the value's size or depth.
    """
    if isinstance(value, str):
        text = repr(value[: limit + 1])
    elif isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    elif isinstance(value, dict):
        return f"an object of {len(value)} entries"
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**limit:
        return f"an integer of about {value.bit_length() * 3 // 10} digits"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
