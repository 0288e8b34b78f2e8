"""The fallback layer: when a call fails on its model, tries the next model of its chain.

``FallbackLayer({"gpt-4o": ["gpt-4o-mini", "gpt-4.1-mini"]}, prices)`` sends a call for
``gpt-4o`` as asked; if it fails (after the retries of the layers inside) with an error
another model might not give (429, 5xx, timeouts, connection errors, or a prompt too long
for the context window) it sends the same call with ``model="gpt-4o-mini"``, then
``"gpt-4.1-mini"``. The decisions are :mod:`costguard.resilience._fallback`'s; each driver only
calls, catches and loops.

- A fallback's own chain follows it (``a -> [b]``, ``b -> [c]``: a call to ``a`` tries a, b,
  c); each model is tried once per call.
- After a context-length error only models with a larger context window (in ``prices``) are
  tried; the rest are skipped.
- Any other error (401, 403, 404, 422, other 400s, costguard's own decisions such as a
  budget refusal) reaches the caller unchanged, from whichever model raised it.
- A model that failed ``failures_before_cooldown`` times in a row (across calls through this
  layer) is skipped for ``cooldown_s`` by ``clock``; a success clears it.
- A fallback of another provider is skipped ("cross-provider fallback not available") unless
  the ``cross_provider`` hook returns a Call for it (see
  :data:`~costguard.resilience._fallback.CrossProvider`).
- The Outcome served by a fallback has ``route`` ``"fallback:<model>"`` (in front of any
  route an inner layer set) and ``attempts`` summed over every model sent to. For a stream
  this is the Outcome carrying the stream; an error raised while the caller reads a stream
  surfaces unchanged (only a stream that fails to start falls back).
- When no model answers: :class:`~costguard.FallbackExhaustedError` with every attempt and
  the last provider error as ``__cause__``. A call whose model has no chain passes through
  untouched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._call import Call, Outcome
from .._chain import AsyncHandler, Handler
from .._errors import ConfigurationError
from ..pricing import PriceTable
from ..resilience._fallback import (
    Cooldowns,
    CrossProvider,
    FallbackPlan,
    expand,
    validate_chains,
)

__all__ = ["FallbackLayer"]


class FallbackLayer:
    """Tries each call's fallback models, in order, when its own model fails.

    :param fallbacks: model -> the models to try after it, in order.
    :param prices: the guard's price table; every model named must be priced there (its
        provider and context window decide what may be tried).
    :param cooldown_s: how long a model that keeps failing is skipped.
    :param failures_before_cooldown: failures in a row that start a cooldown.
    :param clock: a monotonic clock in seconds (``time.monotonic``); inject one in tests.
    :param cross_provider: the hook for fallbacks of another provider (None: skip them).
    :param translate_back: turns the answer of a cross-provider attempt (the other SDK's object)
        into the type the caller expects; called as ``translate_back(call, attempt, answer)``.

    Bad values raise :class:`~costguard.ConfigurationError` naming them.
    """

    __slots__ = (
        "_chains",
        "_plans",
        "clock",
        "cooldowns",
        "cross_provider",
        "prices",
        "translate_back",
    )

    def __init__(
        self,
        fallbacks: Mapping[str, Sequence[str]],
        prices: PriceTable,
        *,
        cooldown_s: float = 30.0,
        failures_before_cooldown: int = 3,
        clock: Callable[[], float] = time.monotonic,
        cross_provider: CrossProvider | None = None,
        translate_back: Callable[[Call, Call, Any], Any] | None = None,
    ) -> None:
        if not isinstance(prices, PriceTable):
            raise ConfigurationError(f"FallbackLayer needs a PriceTable, got {prices!r}")
        if (
            isinstance(cooldown_s, bool)
            or not isinstance(cooldown_s, int | float)
            or math.isnan(cooldown_s)
            or cooldown_s < 0
        ):
            raise ConfigurationError(
                f"FallbackLayer(cooldown_s=...) must be a number >= 0, got {cooldown_s!r}"
            )
        if (
            isinstance(failures_before_cooldown, bool)
            or not isinstance(failures_before_cooldown, int)
            or failures_before_cooldown < 1
        ):
            raise ConfigurationError(
                "FallbackLayer(failures_before_cooldown=...) must be an int >= 1, "
                f"got {failures_before_cooldown!r}"
            )
        for name, value in (("clock", clock), ("cross_provider", cross_provider)):
            if value is not None and not callable(value):
                raise ConfigurationError(f"FallbackLayer({name}=...) must be callable")
        self._chains = validate_chains(fallbacks, prices)
        self._plans = {model: expand(self._chains, model) for model in self._chains}
        self.prices = prices
        self.cooldowns = Cooldowns(
            cooldown_s=float(cooldown_s), failures_before_cooldown=failures_before_cooldown
        )
        self.clock = clock
        self.cross_provider = cross_provider
        self.translate_back = translate_back

    @property
    def fallbacks(self) -> dict[str, tuple[str, ...]]:
        """The chains as configured (a copy)."""
        return dict(self._chains)

    def plan(self, call: Call) -> FallbackPlan | None:
        """A fresh walk through ``call``'s models, or None when its model has no chain."""
        model = call.model
        models = None if model is None else self._plans.get(model)
        if models is None:
            return None
        return FallbackPlan(
            call, models, self.prices, self.cooldowns, self.clock, self.cross_provider
        )

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        plan = self.plan(call)
        if plan is None:
            return call_next(call)
        while (attempt := plan.next_call()) is not None:
            try:
                outcome = call_next(attempt)
            except Exception as error:
                if not plan.failed(error):
                    raise
                continue
            return plan.succeeded(self._answer(call, attempt, outcome))
        raise plan.exhausted() from plan.last_error

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        plan = self.plan(call)
        if plan is None:
            return await call_next(call)
        while (attempt := plan.next_call()) is not None:
            try:
                outcome = await call_next(attempt)
            except Exception as error:
                if not plan.failed(error):
                    raise
                continue
            return plan.succeeded(self._answer(call, attempt, outcome))
        raise plan.exhausted() from plan.last_error

    def _answer(self, call: Call, attempt: Call, outcome: Outcome) -> Outcome:
        """The outcome, its answer in the caller's SDK type when another provider served it."""
        if attempt.provider != call.provider and self.translate_back is not None:
            outcome.response = self.translate_back(call, attempt, outcome.response)
        return outcome
