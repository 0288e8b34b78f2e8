"""Response caches: the exact disk cache and the opt-in semantic cache.

The semantic cache and its embedders need numpy; they load on first use, so that
``import costguard`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._exact import ExactCache

if TYPE_CHECKING:
    from ._embedders import Embedder, FakeEmbedder, OpenAIEmbedder
    from ._semantic import SemanticCache

__all__ = ["Embedder", "ExactCache", "FakeEmbedder", "OpenAIEmbedder", "SemanticCache"]

_LAZY = {
    "Embedder": "._embedders",
    "FakeEmbedder": "._embedders",
    "OpenAIEmbedder": "._embedders",
    "SemanticCache": "._semantic",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
