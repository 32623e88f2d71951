"""What a REST request that starts a server says about the user's options.

A start through the REST API either gives options (its JSON body) or reuses the ones saved
with the server, and the spawner answers a bad choice differently in each case: a 400 naming
the field for options given now, the default profile with a notice for saved options the
catalog no longer offers. JupyterHub hands ``apply_user_options`` the options only, not where
they came from, and JupyterHub 6 reads a body of ``null``, ``[]``, ``0`` or ``false`` as "no
options" before any hook runs. So this module reads the request JupyterHub passes to its
spawner as ``Spawner.handler``, through the API handler's own ``get_json_body``.

Starts from the spawn page are not judged here: their form or query went through
``options_from_form`` / ``options_from_query``, which refuse a bad field themselves.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.apihandlers.base import APIHandler

#: Body fields that name the server rather than choose it.
_SERVER_FIELDS = frozenset({"name", "display_name"})


class BodyError(ValueError):
    """A REST body that cannot carry options; the message says what it is instead."""


def json_kind(value: Any) -> str:
    """How a JSON value is called in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def options_given(handler: object) -> bool:
    """Whether the REST request ``handler`` serves gave options (else the saved ones apply).

    False for a start from the spawn page (its form or query was checked by the form hooks)
    and for one without a request.

    Raises:
        BodyError: the REST body is not a JSON object, or its ``user_options`` is neither an
            object nor null. (JupyterHub 5 passes such a body on as the options, and 6 reads
            a falsy one like ``null`` or ``[]`` as "no options"; either way the user would
            get the default profile without a word.)
    """
    if not isinstance(handler, APIHandler) or not handler.request.body:
        return False
    body = handler.get_json_body()
    if not isinstance(body, dict):
        raise BodyError(
            "The request body must be a JSON object (the user options, or "
            f'{{"user_options": {{...}}}}), not {json_kind(body)}'
        )
    if "user_options" in body:
        options = body["user_options"]
        if options is not None and not isinstance(options, dict):
            raise BodyError(f"user_options must be a JSON object or null, not {json_kind(options)}")
        return options is not None
    return bool(set(body) - _SERVER_FIELDS)
