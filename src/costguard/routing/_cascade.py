"""Cascade: ask the cheap model first, and the strong one only if the answer does not pass.

``Cascade(cheap="gpt-4o-mini", strong="gpt-4o")`` applies to calls asking for the strong model.
The cheap model's answer is checked: by your ``validator(answer) -> bool`` if given, and always
by the built-in checks (not empty, not a refusal or filtered, not cut off by the output limit,
valid JSON when the request asks for JSON). If it passes, it is the answer. If not (or the
cheap call fails), the strong model is asked, and both attempts are priced in the ledger:
the cheap one as its own row, the final row linked to it (``linked_to``), with the reason in
``route``. Streamed calls are not cascaded: an answer cannot be checked before it streams.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigurationError, require_callable
from ..pricing import PriceTable

__all__ = ["Cascade", "check_answer"]


@dataclass(frozen=True)
class Cascade:
    cheap: str
    strong: str
    validator: Callable[[Any], bool] | None = None
    features: Collection[str] | None = None  # only calls with these scope features; None: all

    def __post_init__(self) -> None:
        require_callable("Cascade(validator=...)", self.validator, optional=True)

    def validate(self, prices: PriceTable) -> None:
        found = []
        for role in ("cheap", "strong"):
            model = getattr(self, role)
            price = prices.get(model) if isinstance(model, str) and model else None
            if price is None:
                raise ConfigurationError(f"Cascade {role} model {model!r} has no price")
            found.append(price.provider)
        if found[0] != found[1]:
            raise ConfigurationError(
                f"Cascade models must share a provider: {self.cheap!r} is {found[0]}, "
                f"{self.strong!r} is {found[1]}"
            )


def check_answer(answer: Any, params: Any, validator: Callable[[Any], bool] | None) -> str | None:
    """Why ``answer`` should be escalated, or None when it passes."""
    text, stop, refused = _read(answer)
    if refused:
        return "refusal"
    if stop in ("length", "max_tokens", "incomplete"):
        return "cut off"
    if not text.strip() and not _has_tool_calls(answer):
        return "empty"
    if _wants_json(params) and not _is_json(text):
        return "not JSON"
    if validator is not None and not validator(answer):
        return "validator"
    return None


def _read(answer: Any) -> tuple[str, str | None, bool]:
    """(text, stop reason, refused) for a ChatCompletion, a Message or a Response."""
    choices = getattr(answer, "choices", None)
    if choices is not None:
        if not choices:
            return "", None, False
        message = choices[0].message
        reason = choices[0].finish_reason
        return message.content or "", reason, bool(message.refusal) or reason == "content_filter"
    content = getattr(answer, "content", None)
    if isinstance(content, list):  # an Anthropic Message
        text = "".join(getattr(block, "text", "") or "" for block in content)
        reason = answer.stop_reason
        return text, reason, reason == "refusal"
    status = getattr(answer, "status", None)  # a Responses API Response
    refused = any(
        getattr(part, "type", None) == "refusal"
        for item in getattr(answer, "output", None) or []
        for part in getattr(item, "content", None) or []
    )
    stop = "incomplete" if status not in (None, "completed") else None
    return getattr(answer, "output_text", "") or "", stop, refused


def _has_tool_calls(answer: Any) -> bool:
    choices = getattr(answer, "choices", None)
    if choices:
        return bool(choices[0].message.tool_calls)
    content = getattr(answer, "content", None)
    if isinstance(content, list):
        return any(getattr(block, "type", None) == "tool_use" for block in content)
    return any(
        getattr(item, "type", None) == "function_call"
        for item in getattr(answer, "output", None) or []
    )


def _wants_json(params: Any) -> bool:
    fmt = params.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        return True
    text = params.get("text")
    inner = text.get("format") if isinstance(text, dict) else None
    return isinstance(inner, dict) and inner.get("type") in ("json_object", "json_schema")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
