"""Output caps: how many tokens a call may ask for, what it may cost, and how long its prompt is.

:class:`Cap` is a pure policy: :meth:`Cap.plan` looks at one call (and its model's price) and
returns the parameters to send, or raises before anything is sent. ``CapLayer`` runs it for
sync and async clients alike.

The output limit sent is the smallest of those that apply:

- the caller's own limit (``max_completion_tokens`` / ``max_tokens`` for OpenAI chat,
  ``max_output_tokens`` for the Responses API, ``max_tokens`` for Anthropic messages);
- the cap: ``per_feature[scope.feature]`` if the feature is listed, else ``default``;
- the largest limit whose worst case fits ``max_cost_usd`` (prompt counted offline);
- the model's maximum output from the price table, when known.

It fills a limit in (``max_completion_tokens`` for OpenAI chat) when the caller set none and
the cap or the cost ceiling gives one, lowers the caller's limit when it is higher, and never
raises it. Embeddings have no output limit and pass through untouched.

The Responses API refuses ``max_output_tokens`` below 16, so there a cap below 16 sends 16
(still never more than the caller asked for), and a cost ceiling that cannot pay for 16
output tokens refuses the call.

Prompts are counted with :func:`~costguard.count_tokens` (OpenAI: the cookbook count;
Claude: an estimate), including ``system``, ``instructions`` and function ``tools``. Images,
files, stored prompts (``prompt``) and earlier turns held by the server
(``previous_response_id``, ``conversation``) are not counted, and built-in tool loops that
re-send the prompt inside one call are not foreseen: for those the ceiling is a lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_FLOOR, Context, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final, Literal

from .._call import Call
from .._errors import (
    BudgetExceededError,
    ConfigurationError,
    InvalidRequestError,
    UnknownModelPriceError,
)
from .._tokens import count_tokens, counting_model
from ..pricing import ModelPrice

__all__ = ["Cap", "OnLongInput"]

OnLongInput = Literal["refuse", "trim"]

_ON_LONG_INPUT: Final = ("refuse", "trim")
_EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)  # never rounds
#: Above this many USD a ceiling can never bind (no call costs a trillion dollars), so it is
#: held as this, keeping the integer arithmetic small.
_UNBOUNDED_USD: Final = Decimal(10) ** 12
#: A cost-derived limit this large never binds: no model writes ten million tokens at once.
_UNBOUNDED_TOKENS: Final = 10_000_000
#: The smallest output limit an API accepts, where it is above 1.
_API_FLOOR: Final[Mapping[tuple[str, str], int]] = MappingProxyType(
    {("openai", "responses.create"): 16}
)
_PINNED_ROLES: Final = frozenset({"system", "developer"})


def _limit(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(
            f"{field} must be a positive integer or None, not {type(value).__name__} {value!r}"
        )
    if value < 1:
        raise ConfigurationError(f"{field} must be a positive integer or None, got {value}")
    return value


def _ceiling(value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        raise ConfigurationError(
            f"max_cost_usd must be a Decimal, int, numeric str or float, not "
            f"{type(value).__name__} {value!r}"
        )
    try:
        usd = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise ConfigurationError(f"max_cost_usd: {value!r} is not a number") from None
    if not usd.is_finite() or usd <= 0:
        raise ConfigurationError(f"max_cost_usd must be a finite amount above 0, got {value!r}")
    return usd


def _per_feature(value: object) -> Mapping[str, int | None]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"per_feature must map feature names to limits, not {type(value).__name__}"
        )
    checked: dict[str, int | None] = {}
    for name, limit in value.items():
        if not isinstance(name, str):
            raise ConfigurationError(f"per_feature keys must be feature names, got {name!r}")
        checked[name] = _limit(limit, f"per_feature[{name!r}]")
    return MappingProxyType(checked)


def _picodollars(usd: Decimal) -> int:
    """``usd`` as whole picodollars, rounded down (a cost fits iff it fits this)."""
    bounded = min(usd, _UNBOUNDED_USD)
    return int(bounded.scaleb(12, _EXACT).to_integral_value(ROUND_FLOOR, _EXACT))


def _micro(rate: Decimal) -> int:
    """A rate (USD per million tokens, a checked multiple of 1e-6) as an integer: picodollars
    per token."""
    return int(rate.scaleb(6, _EXACT))


def _usd(picodollars: int) -> Decimal:
    return Decimal(picodollars).scaleb(-12, _EXACT)


class Cap:
    """Limits on what one call may ask for: its output tokens, its worst-case cost and its
    prompt size.

    :param default: the output limit for calls whose feature is not in ``per_feature``
        (``None``: no cap).
    :param per_feature: output limits by ``scope.feature``; a ``None`` value lifts the
        ``default`` for that feature.
    :param max_cost_usd: the most one call may cost, prompt plus output at the model's rates
        (``Decimal``, ``int``, numeric ``str``; a ``float`` is read as ``Decimal(str(x))``).
        Calls to unpriced models are then refused (:class:`~costguard.UnknownModelPriceError`).
    :param max_input_tokens: the largest prompt, as counted offline.
    :param on_long_input: what to do with a longer prompt: ``"refuse"``
        (:class:`~costguard.InvalidRequestError`) or ``"trim"`` (drop the oldest turns until
        it fits).

    Bad values raise :class:`~costguard.ConfigurationError` naming the field.
    """

    __slots__ = (
        "_ceiling_pd",
        "default",
        "max_cost_usd",
        "max_input_tokens",
        "on_long_input",
        "per_feature",
    )

    def __init__(
        self,
        default: int | None = None,
        *,
        per_feature: Mapping[str, int | None] | None = None,
        max_cost_usd: Decimal | int | str | float | None = None,
        max_input_tokens: int | None = None,
        on_long_input: OnLongInput = "refuse",
    ) -> None:
        self.default: int | None = _limit(default, "default")
        self.per_feature: Mapping[str, int | None] = _per_feature(per_feature)
        self.max_cost_usd: Decimal | None = _ceiling(max_cost_usd)
        self.max_input_tokens: int | None = _limit(max_input_tokens, "max_input_tokens")
        if on_long_input not in _ON_LONG_INPUT:
            raise ConfigurationError(
                f"on_long_input must be 'refuse' or 'trim', got {on_long_input!r}"
            )
        self.on_long_input: OnLongInput = on_long_input
        self._ceiling_pd = None if self.max_cost_usd is None else _picodollars(self.max_cost_usd)

    def __repr__(self) -> str:
        return (
            f"Cap(default={self.default!r}, per_feature={dict(self.per_feature)!r}, "
            f"max_cost_usd={self.max_cost_usd!r}, max_input_tokens={self.max_input_tokens!r}, "
            f"on_long_input={self.on_long_input!r})"
        )

    def limit_for(self, feature: str | None) -> int | None:
        """The output cap for a call made under ``feature`` (``None``: no cap)."""
        if feature is not None and feature in self.per_feature:
            return self.per_feature[feature]
        return self.default

    def plan(self, call: Call, price: ModelPrice | None) -> Mapping[str, Any]:
        """The parameters to send for ``call``: ``call.params`` itself when nothing changes.

        ``price`` is the price of ``call.model`` (``None`` when unpriced). Raises, before
        anything is sent, :class:`~costguard.UnknownModelPriceError` (cost ceiling, unpriced
        model), :class:`~costguard.BudgetExceededError` (not even the smallest output limit
        fits the ceiling) or :class:`~costguard.InvalidRequestError` (the prompt is over
        ``max_input_tokens`` and cannot be trimmed to fit).
        """
        op = call.operation
        if not op.output_limit_params:
            return call.params  # embeddings: nothing to cap
        if self.max_cost_usd is not None and price is None:
            raise UnknownModelPriceError(call.model or "", provider=call.provider)
        params = call.params
        prompt_tokens = None
        if self.max_input_tokens is not None or self._ceiling_pd is not None:
            prompt = _Prompt(call)
            prompt_tokens = prompt.count()
            if self.max_input_tokens is not None and prompt_tokens > self.max_input_tokens:
                params, prompt_tokens = self._fit(call, prompt, prompt_tokens)
        return self._limited(call, params, price, prompt_tokens)

    # -- the prompt --------------------------------------------------------------------

    def _fit(self, call: Call, prompt: _Prompt, counted: int) -> tuple[Mapping[str, Any], int]:
        limit = self.max_input_tokens
        assert limit is not None
        field = call.operation.messages_param
        if self.on_long_input == "refuse":
            raise InvalidRequestError(
                f"the prompt is {counted:,} tokens (counted offline), over "
                f"max_input_tokens={limit:,}",
                field=field,
            )
        trimmed = prompt.trimmed(limit)
        if trimmed is None:
            smallest = prompt.count(prompt.kept(prompt.droppable))
            raise InvalidRequestError(
                f"the prompt is {counted:,} tokens (counted offline), over "
                f"max_input_tokens={limit:,}, and even its system messages and last user turn "
                f"are {smallest:,} tokens",
                field=field,
            )
        messages, tokens = trimmed
        assert field is not None
        return {**call.params, field: messages}, tokens

    # -- the output limit --------------------------------------------------------------

    def _limited(
        self,
        call: Call,
        params: Mapping[str, Any],
        price: ModelPrice | None,
        prompt_tokens: int | None,
    ) -> Mapping[str, Any]:
        op = call.operation
        own = {
            name: value
            for name in op.output_limit_params
            if isinstance(value := params.get(name), int) and not isinstance(value, bool)
        }
        asked = min(own.values()) if own else None
        floor = _API_FLOOR.get((op.provider, op.name), 1)
        cap = self.limit_for(call.scope.feature)
        if cap is not None:
            cap = max(cap, floor)
        by_cost = None
        if self._ceiling_pd is not None:
            assert price is not None and prompt_tokens is not None
            smallest = floor if asked is None else min(asked, floor)
            by_cost = self._by_cost(call, params, price, prompt_tokens, smallest)
        model_max = price.max_output_tokens if price is not None else None
        if cap is None and by_cost is None and (asked is None or not model_max):
            return params  # nothing to fill in, nothing to lower
        bound = min(x for x in (cap, by_cost, model_max or None) if x is not None)
        if asked is None:
            changes = {op.output_limit_params[0]: bound}
        else:
            changes = {name: bound for name, value in own.items() if value > bound}
        if not changes:
            return params
        _check_thinking(params, bound)
        return {**params, **changes}

    def _by_cost(
        self,
        call: Call,
        params: Mapping[str, Any],
        price: ModelPrice,
        prompt_tokens: int,
        smallest: int,
    ) -> int | None:
        """The largest output limit whose worst case fits the ceiling (``None``: any fits)."""
        ceiling = self._ceiling_pd
        assert ceiling is not None and self.max_cost_usd is not None
        tier = params.get("service_tier")
        rates = price.rates_for(
            prompt_tokens=prompt_tokens, service_tier=tier if isinstance(tier, str) else None
        )
        choices = params.get("n") if call.provider == "openai" else None  # each one pays
        if isinstance(choices, bool) or not isinstance(choices, int) or choices < 1:
            choices = 1
        per_output_token = _micro(rates.output) * choices
        prompt_cost = prompt_tokens * _micro(rates.input)
        fits = (
            (ceiling - prompt_cost) // per_output_token
            if per_output_token
            else (math.inf if prompt_cost <= ceiling else -1)
        )
        if fits < smallest:
            worst = prompt_cost + smallest * per_output_token
            tokens = "one output token" if smallest == 1 else f"{smallest} output tokens"
            raise BudgetExceededError(
                f"call to {call.model!r} refused: its {prompt_tokens:,}-token prompt and "
                f"{tokens} could cost ${_usd(worst).normalize(_EXACT):f}, over "
                f"max_cost_usd=${self.max_cost_usd:f}",
                budget="max_cost_usd",
                key=None,
                limit=self.max_cost_usd,
                spent=Decimal(0),
                reserved=Decimal(0),
                worst_case=_usd(worst),
            )
        return None if fits >= _UNBOUNDED_TOKENS else int(fits)


def _check_thinking(params: Mapping[str, Any], bound: int) -> None:
    """Anthropic needs ``max_tokens`` above the thinking budget: refuse rather than send a
    request the API will reject."""
    thinking = params.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and budget >= bound:
        raise InvalidRequestError(
            f"the cap lowers max_tokens to {bound:,}, which leaves no room above "
            f"thinking.budget_tokens={budget:,}: lower the thinking budget or raise the cap",
            field="thinking.budget_tokens",
        )


# -- counting and trimming the prompt -------------------------------------------------------


def _given(value: object) -> bool:
    return value is not None and type(value).__name__ not in ("Omit", "NotGiven")


def _as_mapping(item: object, field: str) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        return item
    dump = getattr(item, "model_dump", None)
    if callable(dump):  # an SDK object sent back, e.g. a previous answer's message
        dumped: Mapping[str, Any] = dump(mode="json", exclude_unset=True)
        return dumped
    raise InvalidRequestError(f"{field} must be a mapping, not {type(item).__name__}", field=field)


def _mappings(value: object, field: str) -> list[Mapping[str, Any]] | None:
    if not _given(value) or isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return None
    return [_as_mapping(item, f"{field}[{i}]") for i, item in enumerate(value)]


def _counting_model(model: str | None, provider: str) -> str:
    """``model``, or for a name whose tokenizer costguard cannot tell (a custom model), a
    current model of the same provider that counts the same way."""
    if model is None:
        raise InvalidRequestError("the request names no model to count tokens for", field="model")
    return counting_model(model, provider)


def _human(message: Mapping[str, Any]) -> bool:
    """A user turn (not an Anthropic tool_result message, which belongs to its tool_use)."""
    if message.get("role") != "user":
        return False
    content = message.get("content")
    if isinstance(content, str) or not isinstance(content, Sequence):
        return True
    return not any(isinstance(p, Mapping) and p.get("type") == "tool_result" for p in content)


def _tool_ids(message: Mapping[str, Any]) -> set[str]:
    """The tool-call ids a message opens or answers, in any of the three APIs' shapes."""
    ids: set[str] = set()
    for key in ("tool_call_id", "call_id"):  # OpenAI chat tool message; Responses items
        if isinstance(value := message.get(key), str):
            ids.add(value)
    for call in message.get("tool_calls") or ():  # OpenAI chat assistant message
        if isinstance(call, Mapping) and isinstance(call.get("id"), str):
            ids.add(call["id"])
    content = message.get("content")
    if isinstance(content, Sequence) and not isinstance(content, str):
        for part in content:  # Anthropic tool_use / tool_result blocks
            if not isinstance(part, Mapping):
                continue
            if part.get("type") == "tool_use" and isinstance(part.get("id"), str):
                ids.add(part["id"])
            elif part.get("type") == "tool_result" and isinstance(part.get("tool_use_id"), str):
                ids.add(part["tool_use_id"])
    return ids


def _tied_to_next(message: Mapping[str, Any]) -> bool:
    """A message that cannot be sent without the one after it: a Responses reasoning item,
    or a legacy OpenAI ``function_call`` (answered by the next ``function`` message)."""
    return message.get("type") == "reasoning" or (
        message.get("role") == "assistant" and _given(message.get("function_call"))
    )


class _Prompt:
    """One call's prompt as the offline counter sees it, and the turns it may drop."""

    __slots__ = ("_count", "droppable", "items", "pinned", "unit", "views")

    def __init__(self, call: Call) -> None:
        op, params = call.operation, call.params
        model = _counting_model(call.model, call.provider)
        name = op.messages_param or "messages"
        raw: Any = params.get(name)
        system: str | list[Mapping[str, Any]] | None = None
        if isinstance(raw, str):
            self.items: list[Any] | None = None  # plain text input: nothing to trim
            self.views: list[Mapping[str, Any]] = [{"role": "user", "content": raw}]
        else:
            views = _mappings(raw, name)
            self.items = None if views is None else list(raw)
            self.views = views or []
        counted = [v if "role" in v else {**v, "role": "user"} for v in self.views]
        if op.provider == "anthropic":
            given = params.get("system")
            system = given if isinstance(given, str) else _mappings(given, "system")
        elif isinstance(instructions := params.get("instructions"), str):
            system = instructions  # the Responses API's system message
        tools = (_mappings(params.get("tools"), "tools") or []) + (
            _mappings(params.get("functions"), "functions") or []
        )

        def count(keep: Sequence[int]) -> int:
            return count_tokens(
                model, [counted[i] for i in keep], tools=tools or None, system=system
            )

        self._count: Callable[[Sequence[int]], int] = count
        self.pinned = [v.get("role") in _PINNED_ROLES for v in self.views]
        self.unit, self.droppable = self._units()

    def _units(self) -> tuple[list[int], int]:
        """Each message's turn number, and how many turns (the oldest) may be dropped.

        A turn starts at each user message and runs to the next; a tool call and its result,
        a reasoning item and what follows it, always share a turn. The last turn stays.
        """
        views = self.views
        starts = {0} | {i for i, v in enumerate(views) if _human(v)}
        first_seen: dict[str, int] = {}
        for i, view in enumerate(views):
            tied = [first_seen.setdefault(key, i) for key in _tool_ids(view)]
            if _tied_to_next(view):
                starts.discard(i + 1)
            for lo in tied:  # no turn may start between a call and its result
                starts.difference_update(range(lo + 1, i + 1))
        unit, turn = [], -1
        for i in range(len(views)):
            if i in starts:
                turn += 1
            unit.append(turn)
        return unit, max(turn, 0)

    def kept(self, dropped: int) -> list[int]:
        """The messages left when the ``dropped`` oldest turns go (system messages stay)."""
        return [i for i, turn in enumerate(self.unit) if turn >= dropped or self.pinned[i]]

    def count(self, keep: Sequence[int] | None = None) -> int:
        return self._count(range(len(self.views)) if keep is None else keep)

    def trimmed(self, limit: int) -> tuple[list[Any], int] | None:
        """The fewest oldest turns dropped so the prompt fits ``limit``: the messages left and
        their count, or ``None`` when even the last turn and the system messages do not fit.
        """
        if self.items is None or not self.droppable:
            return None
        lo, hi = 1, self.droppable  # counts shrink as turns go, so search for the fewest
        best = self.count(self.kept(hi))
        if best > limit:
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            tokens = self.count(self.kept(mid))
            if tokens <= limit:
                hi, best = mid, tokens
            else:
                lo = mid + 1
        return [self.items[i] for i in self.kept(hi)], best
