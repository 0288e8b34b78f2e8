"""Checks a guarded call's parameters before anything is sent or recorded.

The SDKs validate little on the client side (messages are TypedDicts): a malformed request goes
out, is billed nothing but wastes a round trip, and fails with a server-side 400. costguard
refuses it up front with an :class:`~costguard.InvalidRequestError` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._errors import InvalidRequestError
from .providers import REQUEST_OPTIONS, Operation

__all__ = ["MAX_OUTPUT_TOKENS_LIMIT", "check_params"]

#: No model produces anywhere near this many tokens in one response; a larger limit is a bug.
MAX_OUTPUT_TOKENS_LIMIT = 10_000_000

_SCALARS = (str, int, bool, type(None))


def check_params(op: Operation, params: Mapping[str, Any], required: frozenset[str]) -> None:
    unknown = params.keys() - op.params
    if unknown:
        name = sorted(unknown)[0]
        raise TypeError(f"{op.name}() got an unexpected keyword argument {name!r}")
    missing = required - params.keys()
    if missing:
        raise TypeError(f"{op.name}() missing required keyword argument {sorted(missing)[0]!r}")
    for name, value in params.items():
        if name in REQUEST_OPTIONS:
            continue
        bad = _first_unjsonable(value)
        if bad is not None:
            where, culprit = bad
            field = name + where
            raise InvalidRequestError(
                f"parameter {field} is not JSON-serialisable: {culprit}", field=field
            )
    for name in op.output_limit_params:
        _check_limit(name, params.get(name))
    if op.messages_param is not None:
        _check_messages(op, op.messages_param, params.get(op.messages_param))


def _first_unjsonable(value: Any) -> tuple[str, str] | None:
    """Where the first value JSON cannot carry sits (a path suffix) and what it is."""
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else ("", repr(value))
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return (f"[{key!r}]", f"key of type {type(key).__name__}")
            bad = _first_unjsonable(item)
            if bad is not None:
                return (f".{key}{bad[0]}", bad[1])
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            bad = _first_unjsonable(item)
            if bad is not None:
                return (f"[{index}]{bad[0]}", bad[1])
        return None
    if hasattr(value, "model_dump") or type(value).__name__ in ("Omit", "NotGiven"):
        return None  # SDK models and sentinels: the SDK serialises them itself
    return ("", f"a value of type {type(value).__name__}")


def _check_limit(name: str, value: Any) -> None:
    if value is None or type(value).__name__ in ("Omit", "NotGiven"):
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(
            f"{name} must be a positive integer, not {type(value).__name__} {value!r}", field=name
        )
    if value < 1:
        raise InvalidRequestError(f"{name} must be at least 1, got {value}", field=name)
    if value > MAX_OUTPUT_TOKENS_LIMIT:
        raise InvalidRequestError(
            f"{name}={value} is absurd (over {MAX_OUTPUT_TOKENS_LIMIT:,} tokens)", field=name
        )


def _check_messages(op: Operation, name: str, messages: Any) -> None:
    if messages is None or isinstance(messages, str):
        if isinstance(messages, str) and name == "input":
            return  # the Responses API takes plain text input
        raise InvalidRequestError(f"{name} must be a list of messages", field=name)
    if not isinstance(messages, (list, tuple)):
        raise InvalidRequestError(
            f"{name} must be a list of messages, not {type(messages).__name__}", field=name
        )
    if not messages and name == "messages":
        raise InvalidRequestError(f"{name} must not be empty", field=name)
    role_required = name == "messages"
    for index, message in enumerate(messages):
        field = f"{name}[{index}]"
        if hasattr(message, "model_dump"):
            role = getattr(message, "role", None)
        elif isinstance(message, Mapping):
            role = message.get("role")
        else:
            raise InvalidRequestError(
                f"{field} must be a message object, not {type(message).__name__}", field=field
            )
        if role is None and not role_required:
            continue  # Responses input items such as function_call_output have no role
        if role not in op.roles:
            allowed = ", ".join(sorted(op.roles))
            raise InvalidRequestError(
                f"{field}.role must be one of {allowed}; got {role!r}", field=f"{field}.role"
            )
