"""Model routing: send each call to the model it needs (see ``docs/routing.md``).

:class:`Router` holds the policy (feature rules, tiers, a :class:`ComplexityRouter`);
``costguard.layers.route.RouteLayer`` applies it to every guarded call. :class:`Cascade` tries
the cheap model first and escalates when its answer does not pass.
"""

from __future__ import annotations

from ._cascade import Cascade
from ._complexity import ComplexityRouter, score_complexity
from ._router import Route, Router

__all__ = ["Cascade", "ComplexityRouter", "Route", "Router", "score_complexity"]
