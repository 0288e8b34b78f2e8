"""Grouping requests into provider batches, within each API's limits.

OpenAI: one batch per endpoint and model (a batch has one endpoint; one model per input file
is the documented safe rule). Anthropic: one batch may mix models. Either way a group is cut
into batches of at most ``max_requests`` requests and ``max_bytes`` bytes (and, for OpenAI
embeddings, ``max_embedding_inputs`` inputs), keeping the requests' order.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._requests import Prepared
from ._types import BatchLimits

__all__ = ["split"]

#: Bytes of the create request around the entries (Anthropic: ``{"requests":[...]}``).
_ENVELOPE = 64


def split(
    requests: Sequence[Prepared], provider: str, limits: BatchLimits
) -> list[tuple[str, list[Prepared]]]:
    """(endpoint, requests) for each batch to create."""
    groups: dict[tuple[str, str], list[Prepared]] = {}
    for request in requests:
        one_batch = ("/v1/messages/batches", "")  # Anthropic: models may mix
        key = (request.url, request.model) if provider == "openai" else one_batch
        groups.setdefault(key, []).append(request)
    batches: list[tuple[str, list[Prepared]]] = []
    for (endpoint, _), members in groups.items():
        batches.extend((endpoint, chunk) for chunk in _chunks(members, limits))
    return batches


def _chunks(requests: Sequence[Prepared], limits: BatchLimits) -> list[list[Prepared]]:
    chunks: list[list[Prepared]] = []
    current: list[Prepared] = []
    size = inputs = 0
    budget = limits.max_bytes - _ENVELOPE
    for request in requests:
        more_inputs = request.embedding_inputs
        full = current and (
            len(current) >= limits.max_requests
            or size + request.size > budget
            or (
                limits.max_embedding_inputs is not None
                and inputs + more_inputs > limits.max_embedding_inputs
            )
        )
        if full:
            chunks.append(current)
            current, size, inputs = [], 0, 0
        current.append(request)
        size += request.size
        inputs += more_inputs
    if current:
        chunks.append(current)
    return chunks
