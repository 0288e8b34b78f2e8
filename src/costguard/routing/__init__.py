"""Model routing: send each call to the model it needs (see ``docs/routing.md``).

:class:`Router` holds the policy (feature rules, tiers, a :class:`ComplexityRouter`);
``costguard.layers.route.RouteLayer`` applies it to every guarded call.
"""

from __future__ import annotations

from ._complexity import ComplexityRouter, score_complexity
from ._router import Route, Router

__all__ = ["ComplexityRouter", "Route", "Router", "score_complexity"]
