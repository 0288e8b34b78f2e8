"""Exact-cache keys: a versioned hash of everything that changes the answer, and nothing else.

The key covers provider, base URL, the operation family (a streamed and a plain request share
entries), the tenant partition, and every parameter the operation lists as output-affecting
(``Operation.output_params``: model, messages/input, system, tools, tool_choice,
response_format, sampling parameters, seed, stop, n, max tokens, extra_body, ...). Parameters
listed as noise (``Operation.noise_params``: stream, stream_options, metadata, user,
service_tier, store, prompt-cache hints, timeout, extra_headers, extra_query) are left out.

Canonical JSON: keys sorted, no whitespace, SDK models dumped as they would be sent, tuples as
lists, omitted values dropped. So argument order and dict key order never change a key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._call import Call

__all__ = ["KEY_VERSION", "cache_key", "canonical"]

#: Bump when the key recipe changes: old entries then simply stop matching.
KEY_VERSION = 1

_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data, the same for every spelling of the same request."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items() if not _omitted(v)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if hasattr(value, "model_dump"):
        return canonical(value.model_dump(mode="json", exclude_unset=True))
    raise TypeError(f"cannot build a cache key from a {type(value).__name__}")


def _omitted(value: Any) -> bool:
    return type(value).__name__ in ("Omit", "NotGiven")


def cache_key(call: Call, partition: str) -> str:
    """The key for ``call`` within ``partition`` (a tenant, or a keyed hash of an API key)."""
    op = call.operation
    params = call.params
    material = {
        "v": KEY_VERSION,
        "provider": op.provider,
        "base_url": call.client.base_url,
        "family": op.family,
        "partition": partition,
        "params": {
            name: canonical(value)
            for name, value in params.items()
            if name in op.output_params and not _omitted(value)
        },
    }
    digest = hashlib.sha256(_encode(material).encode()).hexdigest()
    return f"v{KEY_VERSION}:{digest}"
