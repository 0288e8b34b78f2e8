"""Provider usage -> ``Usage``: the one place provider token conventions are handled.

Each function takes the SDK's usage object or the raw JSON dict, tolerates missing and
``None`` fields (and a ``None`` usage, which gives an all-zero ``Usage``), and treats anything
that is not a non-negative integer count as 0.

- OpenAI chat (``CompletionUsage``): ``prompt_tokens`` INCLUDES
  ``prompt_tokens_details.cached_tokens`` and ``.cache_write_tokens``; ``completion_tokens``
  includes ``completion_tokens_details.reasoning_tokens``. Chat writes are always 30-minute
  writes, billed in the short-lived (``cache_write_5m``) class.
- OpenAI Responses (``ResponseUsage``): ``input_tokens`` INCLUDES
  ``input_tokens_details.cached_tokens`` and ``.cache_write_tokens``, split by
  ``cache_write_tokens_details`` into ``ttl_30m_tokens`` (short-lived class) and
  ``ttl_12h_tokens`` (long-lived, ``cache_write_1h`` class); without the split all writes are
  short-lived. ``output_tokens`` includes ``output_tokens_details.reasoning_tokens``.
- OpenAI embeddings: ``prompt_tokens`` only.
- Anthropic (``Usage``, also a stream's merged ``message_start``/``message_delta`` usage):
  ``input_tokens`` EXCLUDES ``cache_read_input_tokens`` and ``cache_creation_input_tokens``;
  ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens`` split the
  writes (without the split all writes are 5-minute). ``output_tokens`` includes
  ``output_tokens_details.thinking_tokens``.

If a provider's parts exceed its total (never seen; a malformed report), the uncached input is
taken as 0 rather than negative.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._usage import Usage

__all__ = [
    "usage_from_anthropic",
    "usage_from_openai_chat",
    "usage_from_openai_embeddings",
    "usage_from_openai_responses",
]


def _field(obj: object, name: str) -> object:
    if type(obj) is dict:  # the common case, ahead of the slower ABC check
        return obj.get(name)
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(obj: object, *path: str) -> int:
    for name in path:
        obj = _field(obj, name)
    if isinstance(obj, bool) or not isinstance(obj, int) or obj < 0:
        return 0
    return obj


def _split_writes(total: int, short: int, long: int, has_split: bool) -> tuple[int, int]:
    """(short-lived, long-lived) writes; anything not reported as long-lived is short-lived."""
    total = max(total, short + long) if has_split else total
    return total - long, long


def _openai(prompt: int, details: object, output: int, reasoning: int, split: object) -> Usage:
    cached = _count(details, "cached_tokens")
    short, long = _split_writes(
        _count(details, "cache_write_tokens"),
        _count(split, "ttl_30m_tokens"),
        _count(split, "ttl_12h_tokens"),
        split is not None,
    )
    return Usage(
        input_tokens=max(prompt - cached - short - long, 0),
        cache_read_tokens=cached,
        cache_write_5m_tokens=short,
        cache_write_1h_tokens=long,
        output_tokens=output,
        reasoning_tokens=min(reasoning, output),
    )


def usage_from_openai_chat(usage: object) -> Usage:
    """``Usage`` from a chat completion's ``usage`` (``CompletionUsage`` or its dict)."""
    return _openai(
        _count(usage, "prompt_tokens"),
        _field(usage, "prompt_tokens_details"),
        _count(usage, "completion_tokens"),
        _count(usage, "completion_tokens_details", "reasoning_tokens"),
        None,
    )


def usage_from_openai_responses(usage: object) -> Usage:
    """``Usage`` from a Responses API ``usage`` (``ResponseUsage`` or its dict)."""
    details = _field(usage, "input_tokens_details")
    return _openai(
        _count(usage, "input_tokens"),
        details,
        _count(usage, "output_tokens"),
        _count(usage, "output_tokens_details", "reasoning_tokens"),
        _field(details, "cache_write_tokens_details"),
    )


def usage_from_openai_embeddings(usage: object) -> Usage:
    """``Usage`` from an embeddings response's ``usage``: every token is input."""
    return Usage(input_tokens=_count(usage, "prompt_tokens"))


def usage_from_anthropic(usage: object) -> Usage:
    """``Usage`` from a message's ``usage`` (``anthropic.types.Usage`` or its dict)."""
    split = _field(usage, "cache_creation")
    short, long = _split_writes(
        _count(usage, "cache_creation_input_tokens"),
        _count(split, "ephemeral_5m_input_tokens"),
        _count(split, "ephemeral_1h_input_tokens"),
        split is not None,
    )
    output = _count(usage, "output_tokens")
    return Usage(
        input_tokens=_count(usage, "input_tokens"),
        cache_read_tokens=_count(usage, "cache_read_input_tokens"),
        cache_write_5m_tokens=short,
        cache_write_1h_tokens=long,
        output_tokens=output,
        reasoning_tokens=min(_count(usage, "output_tokens_details", "thinking_tokens"), output),
    )
