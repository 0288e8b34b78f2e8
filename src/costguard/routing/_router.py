"""Model routing: which model a call is sent to, and why.

:class:`Router` is a pure policy: :meth:`Router.plan` looks at one call and returns the
:class:`Route` to take; ``RouteLayer`` (``costguard.layers.route``) sends the call that way
and records the reason on the Outcome. The order of decisions is fixed:

1. **Rule** by ``scope.feature``: ``rules[feature]`` names the model. A rule wins over the
   complexity router (which is then not consulted).
2. **Complexity**, when no rule applied: the provider's :class:`ComplexityRouter` scores the
   request and picks its ``cheap`` or ``strong`` model.
3. **Tier** by ``scope.tier``: ``tiers[tier]`` maps the model chosen so far (or the requested
   one) to a cheaper sibling. A tier the router does not list, or a model the tier does not
   map, leaves the model alone: ``scope.tier`` may also name rate-limit plans such as
   ``"free"`` and ``"pro"`` (unless the rate limits read them from a tag: ``tier_tag``).
4. **Fit**: when steps 1-3 changed the model, the new model must hold the request: the prompt
   (counted offline) plus the output limit within its context window, and the output limit
   within its maximum output. If it cannot, the cheapest model (input + output list price)
   of the router's pool that can is sent instead: the pool is every model the router names,
   its ``fallbacks`` and the requested model, of the call's provider, priced, and able to
   serve the API called. If none can, :class:`~costguard.InvalidRequestError` is raised
   before anything is sent.

Routing stays within the provider of the client the call goes through: a rule, tier entry or
complexity router naming another provider's model does not apply to the call at all (sending a
Chat Completions request to Claude needs request translation, which routing does not do).
Only generation calls are routed (not embeddings), and only calls that name a model.

A :class:`Route`'s ``reason`` lists the steps that changed the model, joined by ``+``:
``"rule:classify"``, ``"complexity:0.31"``, ``"tier:draft"``, ``"fit:context"`` (or
``"fit:output"``), e.g. ``"rule:hero-image-copy+tier:draft"``. It is ``None`` whenever the
model sent is the one requested, even if steps changed it and later ones changed it back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from .._call import Call
from .._errors import ConfigurationError, InvalidRequestError
from .._estimate import prompt_tokens
from .._tokens import counting_model, encoding_for_model
from ..pricing import ModelPrice, PriceTable
from ._complexity import ComplexityRouter

__all__ = ["Route", "Router"]

_SNAPSHOT: Final = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_ROUTABLE_MODES: Final = frozenset({"chat", "responses"})
#: The price-table modes each operation can send to (others: chat models only).
_MODES_BY_OPERATION: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {"responses.create": frozenset({"chat", "responses"})}
)
_CHAT_ONLY: Final = frozenset({"chat"})
#: How many price tables' indexes a router keeps (one per guard, in practice).
_INDEXES_KEPT: Final = 8


@dataclass(frozen=True, slots=True)
class Route:
    """Where one call goes: ``model`` (the requested one when nothing changed it) and the
    steps that changed it, in order (empty when ``model`` is the requested one)."""

    requested: str | None
    model: str | None
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str | None:
        """The reasons joined by ``+``, as the ledger's ``route`` column records them."""
        return "+".join(self.reasons) if self.reasons else None


@dataclass(frozen=True, slots=True)
class _Index:
    """A router's configuration resolved against one price table, by provider."""

    rules: Mapping[str, Mapping[str, str]]  # provider -> feature -> model
    tiers: Mapping[str, Mapping[str, Mapping[str, str]]]  # provider -> tier -> from -> to
    complexity: Mapping[str, ComplexityRouter]  # provider -> router
    pool: Mapping[str, tuple[tuple[str, ModelPrice], ...]]  # provider -> models, cheapest first


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"Router {where} must be a non-empty name, got {value!r}")
    return value


def _mapping(value: object, where: str) -> Mapping[object, object]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"Router {where} must be a mapping, not {type(value).__name__}")
    return value


def _rules(value: object) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    checked = {
        _name(feature, "rules keys (features)"): _name(model, f"rules[{feature!r}]")
        for feature, model in _mapping(value, "rules").items()
    }
    return MappingProxyType(checked)


def _tiers(value: object) -> Mapping[str, Mapping[str, str]]:
    if value is None:
        return MappingProxyType({})
    checked: dict[str, Mapping[str, str]] = {}
    for tier, mapping in _mapping(value, "tiers").items():
        name = _name(tier, "tiers keys (tier names)")
        entries = {
            _name(old, f"tiers[{name!r}] keys"): _name(new, f"tiers[{name!r}][{old!r}]")
            for old, new in _mapping(mapping, f"tiers[{name!r}]").items()
        }
        checked[name] = MappingProxyType(entries)
    return MappingProxyType(checked)


def _complexity(value: object) -> tuple[ComplexityRouter, ...]:
    if value is None:
        return ()
    routers = (value,) if isinstance(value, ComplexityRouter) else value
    if isinstance(routers, str | bytes) or not isinstance(routers, Sequence):
        raise ConfigurationError(
            f"Router complexity must be a ComplexityRouter or a list of them, got {value!r}"
        )
    for router in routers:
        if not isinstance(router, ComplexityRouter):
            raise ConfigurationError(
                f"Router complexity must be a ComplexityRouter or a list of them, got {router!r}"
            )
    return tuple(routers)


def _fallbacks(value: object) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigurationError(f"Router fallbacks must be a list of model names, got {value!r}")
    return tuple(_name(model, "fallbacks") for model in value)


def _list_price(price: ModelPrice) -> Decimal:
    return price.base.input + price.base.output


class Router:
    """Picks the model each call is sent to: by feature rules, a complexity score and the
    caller's tier (module docstring: order, provider boundary, fit to the context window).

    :param rules: ``{feature: model}``: calls made under ``scope(feature=...)`` go to
        ``model``.
    :param tiers: ``{tier: {model: cheaper_model}}``: under ``scope(tier=...)``, a call that
        would go to ``model`` goes to ``cheaper_model``; tiers not listed change nothing.
    :param complexity: a :class:`ComplexityRouter`, or one per provider, for calls no rule
        covers.
    :param fallbacks: more models the fit step may choose when the routed model cannot hold a
        request (besides the models named above and the requested one).

    Empty or non-string names raise :class:`~costguard.ConfigurationError` here; models the
    price table does not price raise it when the router is given to a ``RouteLayer``
    (:meth:`validate`).
    """

    __slots__ = ("_indexes", "complexity", "fallbacks", "rules", "tiers")

    def __init__(
        self,
        *,
        rules: Mapping[str, str] | None = None,
        tiers: Mapping[str, Mapping[str, str]] | None = None,
        complexity: ComplexityRouter | Sequence[ComplexityRouter] | None = None,
        fallbacks: Sequence[str] = (),
    ) -> None:
        self.rules: Mapping[str, str] = _rules(rules)
        self.tiers: Mapping[str, Mapping[str, str]] = _tiers(tiers)
        self.complexity: tuple[ComplexityRouter, ...] = _complexity(complexity)
        self.fallbacks: tuple[str, ...] = _fallbacks(fallbacks)
        self._indexes: dict[int, tuple[PriceTable, _Index]] = {}

    def __repr__(self) -> str:
        complexity = list(self.complexity) if self.complexity else None
        return (
            f"Router(rules={dict(self.rules)!r}, "
            f"tiers={ {k: dict(v) for k, v in self.tiers.items()}!r}, "
            f"complexity={complexity!r}, fallbacks={list(self.fallbacks)!r})"
        )

    # -- validation -------------------------------------------------------------------------

    def validate(self, prices: PriceTable) -> None:
        """Check every model the router names against ``prices``; raise
        :class:`~costguard.ConfigurationError` naming the first that is unpriced (or cannot
        serve chat), a complexity router whose two models belong to different providers, two
        complexity routers for one provider, or a tier mapping across providers."""
        self._index(prices)

    def _index(self, prices: PriceTable) -> _Index:
        kept = self._indexes.get(id(prices))
        if kept is not None and kept[0] is prices:
            return kept[1]
        index = self._build(prices)
        if len(self._indexes) >= _INDEXES_KEPT:
            self._indexes.clear()
        self._indexes[id(prices)] = (prices, index)
        return index

    def _build(self, prices: PriceTable) -> _Index:
        seen: dict[str, ModelPrice] = {}

        def price(model: str, where: str) -> ModelPrice:
            found = prices.get(model)
            if found is None:
                raise ConfigurationError(
                    f"Router {where} names model {model!r}, which the price table does not "
                    "price: routing never picks an unpriced model (add a price with "
                    "PriceTable.override() or a price file)"
                )
            if found.mode not in _ROUTABLE_MODES:
                raise ConfigurationError(
                    f"Router {where} names model {model!r}, a {found.mode} model: routing "
                    "sends chat and Responses requests only"
                )
            seen[model] = found
            return found

        rules: dict[str, dict[str, str]] = {}
        for feature, model in self.rules.items():
            provider = price(model, f"rules[{feature!r}]").provider
            rules.setdefault(provider, {})[feature] = model

        tiers: dict[str, dict[str, dict[str, str]]] = {}
        for tier, mapping in self.tiers.items():
            for old, new in mapping.items():
                where = f"tiers[{tier!r}]"
                old_provider = price(old, where).provider
                new_provider = price(new, f"{where}[{old!r}]").provider
                if old_provider != new_provider:
                    raise ConfigurationError(
                        f"Router {where} maps {old!r} ({old_provider}) to {new!r} "
                        f"({new_provider}): routing stays within one provider"
                    )
                tiers.setdefault(new_provider, {}).setdefault(tier, {})[old] = new

        complexity: dict[str, ComplexityRouter] = {}
        for router in self.complexity:
            cheap = price(router.cheap, "complexity cheap").provider
            strong = price(router.strong, "complexity strong").provider
            if cheap != strong:
                raise ConfigurationError(
                    f"Router complexity: cheap {router.cheap!r} ({cheap}) and strong "
                    f"{router.strong!r} ({strong}) must be models of one provider"
                )
            if cheap in complexity:
                raise ConfigurationError(
                    f"Router complexity: two ComplexityRouters for {cheap} "
                    f"({complexity[cheap]!r} and {router!r}); give one per provider"
                )
            complexity[cheap] = router

        for model in self.fallbacks:
            price(model, "fallbacks")
        pool: dict[str, list[tuple[str, ModelPrice]]] = {}
        for model, found in seen.items():
            pool.setdefault(found.provider, []).append((model, found))
        return _Index(
            rules=MappingProxyType({p: MappingProxyType(r) for p, r in rules.items()}),
            tiers=MappingProxyType(
                {
                    p: MappingProxyType({t: MappingProxyType(m) for t, m in by_tier.items()})
                    for p, by_tier in tiers.items()
                }
            ),
            complexity=MappingProxyType(complexity),
            pool=MappingProxyType(
                {
                    p: tuple(sorted(models, key=lambda mp: (_list_price(mp[1]), mp[0])))
                    for p, models in pool.items()
                }
            ),
        )

    # -- deciding ---------------------------------------------------------------------------

    def select(self, call: Call, prices: PriceTable) -> Route:
        """Steps 1-3 (rule, complexity, tier) for ``call``, without the fit check: pure and
        fast (no token counting)."""
        requested = call.model
        op = call.operation
        if requested is None or not op.output_limit_params:
            return Route(requested, requested)  # nothing named, or embeddings
        index = self._index(prices)
        provider = op.provider
        scope = call.scope
        model = requested
        reasons: list[str] = []

        rule = None
        if scope.feature is not None:
            rule = index.rules.get(provider, {}).get(scope.feature)
        if rule is not None:
            if rule != model:
                model = rule
                reasons.append(f"rule:{scope.feature}")
        else:
            router = index.complexity.get(provider)
            if router is not None:
                chosen, score = router.choose(call)
                if chosen != model:
                    model = chosen
                    reasons.append(f"complexity:{score:.2f}")

        if scope.tier is not None:
            mapping = index.tiers.get(provider, {}).get(scope.tier)
            if mapping is not None:
                cheaper = mapping.get(model) or mapping.get(_SNAPSHOT.sub("", model))
                if cheaper is not None and cheaper != model:
                    model = cheaper
                    reasons.append(f"tier:{scope.tier}")

        if model == requested:
            return Route(requested, requested)
        return Route(requested, model, tuple(reasons))

    def plan(self, call: Call, prices: PriceTable) -> Route:
        """The route for ``call``: :meth:`select`, then the fit check (step 4), which counts
        the prompt offline when the model changed.

        Raises :class:`~costguard.InvalidRequestError` when the routed model cannot hold the
        request and no model of the pool can either.
        """
        route = self.select(call, prices)
        if not route.reasons:
            return route
        assert route.model is not None
        return self._fit(call, route, prices)

    def _fit(self, call: Call, route: Route, prices: PriceTable) -> Route:
        provider = call.operation.provider
        routed = route.model
        assert routed is not None
        output = call.max_tokens
        counter = _PromptCounter(call, provider)
        price = prices.get(routed)
        assert price is not None  # validated
        misfit = _misfit(price, counter(routed), output)
        if misfit is None:
            return route
        modes = _MODES_BY_OPERATION.get(call.operation.name, _CHAT_ONLY)
        candidates = list(self._index(prices).pool.get(provider, ()))
        requested = route.requested
        own = prices.get(requested) if requested is not None else None
        if (
            requested is not None
            and own is not None
            and own.provider == provider
            and all(model != requested for model, _ in candidates)
        ):
            candidates.append((requested, own))
            candidates.sort(key=lambda mp: (_list_price(mp[1]), mp[0]))
        tried = [f"{routed} ({_capacity(price)})"]
        for model, candidate in candidates:
            if model == routed or candidate.mode not in modes:
                continue
            if _misfit(candidate, counter(model), output) is None:
                if model == requested:
                    return Route(requested, requested)
                return Route(requested, model, (*route.reasons, f"fit:{misfit}"))
            tried.append(f"{model} ({_capacity(candidate)})")
        limit = "" if output is None else f" and {output:,} output tokens"
        raise InvalidRequestError(
            f"no {provider} model the router may choose can hold this request: a "
            f"{counter(routed):,}-token prompt (counted offline){limit}. Tried: "
            f"{', '.join(tried)}. Shorten the prompt, lower the output limit, or add a "
            "larger model to Router(fallbacks=...)",
            field=call.operation.messages_param or "model",
        )


def _capacity(price: ModelPrice) -> str:
    window = "unknown" if price.context_window is None else f"{price.context_window:,}"
    most = "" if price.max_output_tokens is None else f", {price.max_output_tokens:,} out"
    return f"{window} context{most}"


def _misfit(price: ModelPrice, prompt: int, output: int | None) -> str | None:
    """Why ``price``'s model cannot take the request (``"output"``, ``"context"``), or None.
    Unknown limits are taken to fit."""
    if output is not None and price.max_output_tokens and output > price.max_output_tokens:
        return "output"
    if price.context_window and prompt + (output or 0) > price.context_window:
        return "context"
    return None


class _PromptCounter:
    """The call's prompt counted for a model, counted once per tokenizer."""

    __slots__ = ("_call", "_counts", "_provider")

    def __init__(self, call: Call, provider: str) -> None:
        self._call = call
        self._provider = provider
        self._counts: dict[str, int] = {}

    def _key(self, model: str) -> str:
        if self._provider == "anthropic":
            return "anthropic"  # every Claude model is estimated the same way
        return encoding_for_model(counting_model(model, self._provider)).name

    def __call__(self, model: str) -> int:
        key = self._key(model)
        count = self._counts.get(key)
        if count is None:
            call = self._call
            as_sent = call.replace(params={**call.params, "model": model})
            count = self._counts[key] = prompt_tokens(as_sent, self._provider)
        return count
