"""Checking batch requests before anything is sent, and turning them into request bodies.

A request is a dict of the keyword arguments the SDK's ``create()`` takes. For OpenAI it may
name its operation: ``{"operation": "responses", "model": ..., "input": ...}``; the default is
chat completions. Anything the batch endpoint would refuse is an
:class:`~costguard.InvalidRequestError` naming the request's index: an unknown operation,
``stream=True``, a missing model, a model of the other provider, parameters the SDK method
does not take, values JSON cannot carry, and per-request HTTP options.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidRequestError
from .._validate import check_params
from .._wrap import _required
from ..cache._keys import canonical
from ..pricing import PriceTable
from ..providers import Operation, operations_for

__all__ = ["Prepared", "body_of", "prepare", "request_size"]

#: operation names a request may give -> the guarded operation's name
_ALIASES = {
    "openai": {
        "chat.completions": "chat.completions.create",
        "chat.completions.create": "chat.completions.create",
        "responses": "responses.create",
        "responses.create": "responses.create",
        "embeddings": "embeddings.create",
        "embeddings.create": "embeddings.create",
    },
    "anthropic": {"messages": "messages.create", "messages.create": "messages.create"},
}
_DEFAULT = {"openai": "chat.completions.create", "anthropic": "messages.create"}
#: OpenAI: the batch ``url`` of each operation
URLS = {
    "chat.completions.create": "/v1/chat/completions",
    "responses.create": "/v1/responses",
    "embeddings.create": "/v1/embeddings",
}
_NOT_IN_BATCHES = ("extra_headers", "extra_query", "timeout", "stream_options")
_ID_PLACEHOLDER = "0" * 26  # item ids are 26-character ULIDs

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class Prepared:
    """One checked request: its operation, its parameters as JSON data, and its body."""

    index: int
    operation: Operation
    params: dict[str, Any]  # the create() kwargs as JSON data (what the queue stores)
    body: dict[str, Any]  # what is sent for it (extra_body merged in)
    size: int  # bytes it adds to a batch
    where: str = "request"  # how errors name it: requests[3], or request

    @property
    def model(self) -> str:
        return str(self.params["model"])

    @property
    def url(self) -> str:
        return URLS.get(self.operation.name, "/v1/messages")

    @property
    def embedding_inputs(self) -> int:
        if self.operation.name != "embeddings.create":
            return 0
        value = self.body.get("input")
        is_list = isinstance(value, list) and value and not isinstance(value[0], int)
        return len(value) if is_list and isinstance(value, list) else 1


def _invalid(where: str, message: str, field: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(f"{where}: {message}", field=f"{where}.{field}" if field else where)


_REQUIRED: dict[tuple[type, str], frozenset[str]] = {}


def _operation(client: Any, provider: str, name: str) -> tuple[Operation, frozenset[str]]:
    """The guarded operation and its required arguments (from the SDK method's signature)."""
    op = next(o for o in operations_for(provider) if o.name == name)
    key = (type(client), name)
    required = _REQUIRED.get(key)
    if required is None:
        resource = client
        for attr in op.path:
            resource = getattr(resource, attr)
        required = _REQUIRED[key] = _required(getattr(type(resource), op.method))
    return op, required


def prepare(
    client: Any,
    raw: object,
    index: int | None,
    provider: str,
    prices: PriceTable,
    operation: str | None = None,
) -> Prepared:
    """Check one request (``index`` names it in errors; None for a single deferred request)."""
    where = "request" if index is None else f"requests[{index}]"
    if not isinstance(raw, Mapping):
        raise _invalid(
            where, f"a request is a dict of create() arguments, not {type(raw).__name__}"
        )
    params = dict(raw)
    name = params.pop("operation", None) if operation is None else operation
    aliases = _ALIASES[provider]
    if name is None:
        name = _DEFAULT[provider]
    if name not in aliases:
        allowed = ", ".join(sorted(k for k in aliases if not k.endswith(".create")))
        raise _invalid(
            where,
            f"operation {name!r} cannot be batched through a {provider} client (use {allowed})",
            "operation",
        )
    op, required = _operation(client, provider, aliases[name])
    if params.get("stream") not in (None, False):
        raise _invalid(where, "stream=True is not accepted by the batch APIs", "stream")
    for option in _NOT_IN_BATCHES:
        if option in params:
            raise _invalid(where, f"{option} cannot be sent inside a batch", option)
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid(where, "every batch request names its model", "model")
    price = prices.get(model)
    if price is not None and price.provider != provider:
        raise _invalid(
            where,
            f"model {model!r} is a {price.provider} model; this batch goes to {provider} "
            "(one batch call per provider)",
            "model",
        )
    try:
        check_params(op, params, required)
    except InvalidRequestError as exc:
        raise _invalid(where, str(exc), exc.field) from None
    except TypeError as exc:
        raise _invalid(where, str(exc).replace(f"{op.name}()", op.name)) from None
    params = canonical(params)
    body = body_of(params)
    size = request_size(provider, op, body)
    return Prepared(index or 0, op, params, body, size, where)


def body_of(params: Mapping[str, Any]) -> dict[str, Any]:
    """What is sent for ``params`` (JSON data): the arguments, with ``extra_body`` merged in."""
    body = {k: v for k, v in params.items() if k != "extra_body"}
    extra = params.get("extra_body")
    if isinstance(extra, Mapping):
        body.update(extra)
    return body


def request_size(provider: str, op: Operation, body: Mapping[str, Any]) -> int:
    """The bytes one request adds: its JSONL line, or its entry in the create request."""
    if provider == "openai":
        entry = {
            "custom_id": _ID_PLACEHOLDER,
            "method": "POST",
            "url": URLS[op.name],
            "body": body,
        }
    else:
        entry = {"custom_id": _ID_PLACEHOLDER, "params": body}
    return len(_encode(entry).encode()) + 1  # a newline, or a comma
