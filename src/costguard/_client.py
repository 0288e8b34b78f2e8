"""CostGuardClient: owns the price table, the ledger and the layer chain; wraps SDK clients."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from ._call import Call, ClientInfo, Outcome
from ._chain import Layer, fold, fold_async
from ._errors import ConfigurationError, UnknownModelPriceError, require_callable
from ._scope import Resolver, Scope, ScopeManager, current_scope
from ._streams import StreamTap, tap_async, tap_sync
from ._wrap import wrap_client
from .cache import ExactCache
from .cache._exact import check_ttl
from .layers.cache import CacheLayer
from .layers.ledger import LedgerLayer
from .layers.promptcache import PromptCaching
from .layers.scoped import ScopeLayer
from .ledger import Ledger
from .pricing import PriceTable
from .providers import Operation

if TYPE_CHECKING:  # the optional layers load only when configured
    from ._otel import OTel
    from .cache import SemanticCache
    from .layers.ratelimit import RateLimitLayer
    from .resilience import Retry
    from .routing import Cascade, Router
    from .spend import Budget, BudgetAlert, BudgetStatus, Cap, RateLimits
    from .spend._budget import BudgetBook

__all__ = ["CostGuardClient", "wrap"]

ClientT = TypeVar("ClientT")


class _Default:
    """Marks an argument left at its default (where None means "off")."""


_DEFAULT = _Default()

# A raw response is read through its (cached) parse(); a streamed one cannot be read without
# consuming it, so its row is recorded unpriced.
_READABLE_RAW = frozenset({"raw", "true"})


class CostGuardClient:
    """One guard: a price table, a spend ledger and a chain of layers, shared by every client
    it wraps.

    >>> guard = CostGuardClient()
    >>> client = guard.wrap(openai.OpenAI())   # still an openai.OpenAI
    """

    def __init__(
        self,
        *,
        prices: PriceTable | str | os.PathLike[str] | None = None,
        ledger: Ledger | str | os.PathLike[str] | None = None,
        strict_prices: bool = False,
        layers: Sequence[Layer] = (),
        cache: ExactCache | _Default | None = _DEFAULT,
        semantic: SemanticCache | None = None,
        rate_limits: RateLimits | None = None,
        max_tokens: Cap | None = None,
        router: Router | None = None,
        cascade: Cascade | None = None,
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        cooldown_s: float = 30.0,
        retry: Retry | None = None,
        budgets: Sequence[Budget] = (),
        on_alert: Callable[[BudgetAlert], object] | None = None,
        alert_at: Sequence[float | str] = ("0.5", "0.8", "1"),
        budget_timezone: str = "UTC",
        reservation_ttl: float = 900.0,
        prompt_caching: PromptCaching | str | None = None,
        otel: OTel | bool = False,
    ) -> None:
        """
        :param prices: a PriceTable, or a price file to lay over the shipped table.
        :param ledger: a Ledger, or a path for one. Default: ``$COSTGUARD_HOME/ledger.db`` or
            ``ledger.db`` in the platform's user data directory.
        :param strict_prices: refuse calls to models without a price
            (:class:`~costguard.UnknownModelPriceError`) instead of recording them unpriced.
        :param layers: your own layers: inside the ledger (which records what they do) and
            outside the cache (whose key describes the request as they leave it).
        :param cache: the exact cache; on by default (:class:`~costguard.ExactCache` in the
            user cache dir); ``None`` turns caching off.
        :param semantic: an opt-in :class:`~costguard.SemanticCache`, consulted after an exact
            miss (needs the exact cache, which holds the answers).
        :param rate_limits: per-user :class:`~costguard.RateLimits` by the scope's ``tier``,
            counted in the ledger database (shared by processes); refusals raise
            :class:`~costguard.RateLimitedError`.
        :param max_tokens: a :class:`~costguard.Cap` on output (and optionally input) size and
            per-call cost; runs before the cache and budgets, so both see the capped request.
        :param router: a :class:`~costguard.Router` choosing a cheaper model by feature rule,
            complexity or tier; runs after the cap and before the cache and budgets, so both
            see the routed request. The ledger records why (``route``).
        :param cascade: a :class:`~costguard.Cascade`: calls for its strong model try its cheap
            model first and escalate only when that answer fails the checks; both attempts are
            ledger rows, linked.
        :param fallbacks: model -> models to try, in order, when a call fails on it after its
            retries (429, 5xx, timeouts, connection errors, or a prompt too long for its
            context window). A model of the other provider is reached by translating the chat
            request and answer, through the client of that provider this guard has wrapped.
            A model that keeps failing is skipped for ``cooldown_s``. When every model fails:
            :class:`~costguard.FallbackExhaustedError`.
        :param retry: a :class:`~costguard.Retry` policy: costguard then owns retries (the
            wrapped clients' own retries are turned off for guarded calls, and their
            ``max_retries`` becomes the default number of attempts).
        :param budgets: :class:`~costguard.Budget` limits. Each call reserves its worst case
            against every budget that applies before it is sent, or is refused with
            :class:`~costguard.BudgetExceededError`; kept in the ledger database, so they hold
            across threads and processes.
        :param on_alert: called with a :class:`~costguard.BudgetAlert` the first time a
            budget reaches each of ``alert_at`` (fractions of its limit) in a period; also
            logged as a warning on the ``costguard`` logger.
        :param budget_timezone: where budget days, weeks and months begin (IANA name).
        :param reservation_ttl: seconds after which a reservation left by a process that died
            lapses.
        :param prompt_caching: use the providers' own prompt caches: ``"auto"`` (or a
            :class:`~costguard.PromptCaching`) places Anthropic ``cache_control`` breakpoints
            where they pay off and sets OpenAI's ``prompt_cache_key`` from the scope.
        :param otel: ``True`` (the global OpenTelemetry providers) or an
            :class:`~costguard.OTel`: each call becomes a span following the GenAI semantic
            conventions, with token and duration metrics (needs ``costguard[otel]``).
        """
        if prices is None:
            self.prices = PriceTable.default()
        elif isinstance(prices, PriceTable):
            self.prices = prices
        else:
            self.prices = PriceTable.default().merged(prices)
        self.ledger = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
        self.strict_prices = strict_prices
        for layer in layers:
            if not isinstance(layer, Layer):
                raise ConfigurationError(
                    f"{layer!r} is not a layer: it needs handle(call, call_next) and "
                    "ahandle(call, call_next) methods"
                )
        self.cache = ExactCache() if isinstance(cache, _Default) else cache
        if semantic is not None and self.cache is None:
            raise ConfigurationError("a semantic cache needs the exact cache (cache=None given)")
        self.semantic = semantic
        caching = () if self.cache is None else (CacheLayer(self.cache, semantic),)
        require_callable("CostGuardClient(on_alert=...)", on_alert, optional=True)
        # Always present: a scope may bring budgets of its own. Without the guard's budgets
        # the book is made when the first scope budget arrives; its options are checked now,
        # so that a mistake in them fails here and not at that call.
        from .layers.budget import BudgetLayer
        from .spend._budget import BudgetBook, book_options

        book_options(budget_timezone, reservation_ttl, alert_at)

        def budget_book() -> BudgetBook:
            self._need_ledger_file("budgets")
            return BudgetBook(
                budgets,
                self.ledger.path,
                timezone=budget_timezone,
                reservation_ttl=reservation_ttl,
                alert_at=alert_at,
                on_alert=on_alert,
            )

        self._budgeting = BudgetLayer(budget_book, self.prices, eager=bool(budgets))
        budgeting: tuple[Layer, ...] = (self._budgeting,)
        self._rate_layer: RateLimitLayer | None = None
        optional: dict[str, tuple[Layer, ...]] = {}
        if rate_limits is not None:
            from .layers.ratelimit import RateLimitLayer

            self._need_ledger_file("rate limits")
            self._rate_layer = RateLimitLayer(rate_limits, self.ledger.path)
            optional["limiting"] = (self._rate_layer,)
        if max_tokens is not None:
            from .layers.cap import CapLayer

            optional["capping"] = (CapLayer(max_tokens, self.prices),)
        if router is not None:
            from .layers.route import RouteLayer

            optional["routing"] = (RouteLayer(router, self.prices),)
        if cascade is not None:
            from .layers.cascade import CascadeLayer

            optional["cascade"] = (CascadeLayer(cascade, self.prices),)
        if fallbacks:
            from .layers.fallback import FallbackLayer
            from .resilience._bridge import Bridge

            bridge = Bridge(self, self.prices)
            optional["fallback"] = (
                FallbackLayer(
                    fallbacks,
                    self.prices,
                    cooldown_s=cooldown_s,
                    cross_provider=bridge,
                    translate_back=bridge.back,
                ),
            )
        # Always present: a scope may opt in to prompt caching where the guard did not.
        from .layers.promptcache import PromptCacheLayer

        policy = (
            prompt_caching
            if prompt_caching is None or isinstance(prompt_caching, PromptCaching)
            else PromptCaching(prompt_caching)
        )
        optional["prompt_caching"] = (PromptCacheLayer(policy, self.prices),)
        if otel:
            from ._otel import OTel, OTelLayer

            optional["telemetry"] = (
                OTelLayer(otel if isinstance(otel, OTel) else OTel(), self.prices),
            )
        if retry is not None:
            from .layers.retry import RetryLayer

            optional["retrying"] = (RetryLayer(retry),)
        self.layers: tuple[Layer, ...] = (
            LedgerLayer(self.ledger, self.prices, strict_prices=strict_prices),
            *optional.get("telemetry", ()),
            *optional.get("limiting", ()),
            ScopeLayer(self.prices),
            *optional.get("capping", ()),
            *optional.get("routing", ()),
            *optional.get("cascade", ()),
            *layers,
            *optional.get("fallback", ()),
            *caching,
            *optional.get("prompt_caching", ()),
            *budgeting,
            *optional.get("retrying", ()),
        )
        self.owns_retries = retry is not None
        #: (provider, is_async, operation) -> (Operation, SDK method, ClientInfo) of the
        #: clients wrapped so far: where cross-provider fallbacks are sent.
        self._senders: dict[
            tuple[str, bool, str], tuple[Operation, Callable[..., Any], ClientInfo]
        ] = {}
        self._handle = fold(self.layers, _send)
        self._ahandle = fold_async(self.layers, _asend)

    def _need_ledger_file(self, feature: str) -> None:
        if str(self.ledger.path) == ":memory:":
            raise ConfigurationError(
                f"{feature} are kept in the ledger database, shared by threads and processes, "
                "so they need a ledger file: CostGuardClient(ledger='path/to/ledger.db'), "
                "not ':memory:'"
            )

    def wrap(self, client: ClientT) -> ClientT:
        """A guarded copy of ``client``: same class, same options; ``client`` is left as it was."""
        return wrap_client(self, client)  # type: ignore[no-any-return]  # a copy of the same class

    def scope(
        self,
        *,
        feature: str | None = None,
        user: str | Resolver | None = None,
        tenant: str | Resolver | None = None,
        tags: Mapping[str, str] | None = None,
        model: str | None = None,
        tier: str | None = None,
        max_tokens: int | None = None,
        max_cost_usd: Decimal | int | str | float | None = None,
        cache: str | None = None,
        ttl: float | None = None,
        budget: Budget | Sequence[Budget] | None = None,
        prompt_caching: str | None = None,
    ) -> ScopeManager:
        """Attribute the calls made inside, and set the policies they run under.

        Use as ``with guard.scope(...):``, ``async with``, or ``@guard.scope(...)`` on a
        function, async function, generator or async generator (active while the caller
        iterates). Scopes nest: inner values override outer ones, tags merge, budgets add up.

        :param feature: what the calls are for, in the ledger and reports.
        :param user: who they are for. On a decorator, may be a callable of the function's
            arguments (``user=lambda request: request.user_id``).
        :param tenant: whose account they are on: also the cache partition. May be a
            callable, as ``user``.
        :param tags: more labels (str to str) for the ledger; nested scopes merge them.
        :param model: force every chat call inside to this model, of the same provider
            (routing and cascades stand aside; embeddings keep their model).
        :param tier: the caller's plan, for per-tier rate limits and tier routing.
        :param max_tokens: an output limit for every call inside (never raises the caller's).
        :param max_cost_usd: refuse or shorten any call whose worst case costs more.
        :param cache: ``"no-cache"`` (skip the lookup, still store), ``"no-store"`` (look up,
            never store), ``"off"``.
        :param ttl: seconds the cache keeps what these calls store.
        :param budget: a :class:`~costguard.Budget` (or several) for the calls inside, on top of
            the guard's. One without a ``name`` is named after the feature, so two functions
            with the same feature share it.
        :param prompt_caching: ``"auto"`` or ``"off"``: the providers' own prompt caches.
        """
        resolvers: dict[str, Resolver] = {}
        for name, value in (("user", user), ("tenant", tenant)):
            if callable(value):
                resolvers[name] = value
            elif value is not None and not isinstance(value, str):
                raise ConfigurationError(
                    f"scope {name} must be a str, a callable of the function's arguments, or "
                    f"None; got {type(value).__name__} {value!r}"
                )
        if model is not None:
            if not isinstance(model, str) or not model:
                raise ConfigurationError(f"scope model must be a model name, got {model!r}")
            if self.strict_prices and self.prices.get(model) is None:
                raise UnknownModelPriceError(model)
        cap = (
            None
            if max_tokens is None and max_cost_usd is None
            else _scope_cap(max_tokens, max_cost_usd)
        )
        return ScopeManager(
            Scope(
                feature,
                None if user is None or callable(user) else user,
                None if tenant is None or callable(tenant) else tenant,
                MappingProxyType(dict(tags)) if tags else Scope().tags,
                cache,
                check_ttl(ttl),
                tier,
                model,
                None if cap is None else cap.default,
                None if cap is None else cap.max_cost_usd,
                _scope_budgets(budget, feature),
                prompt_caching,
            ),
            resolvers,
        )

    @property
    def budgets(self) -> BudgetBook | None:
        """The budget book: the guard's budgets and the scope budgets met so far (``None``
        until there are any)."""
        return self._budgeting.made

    def budget_status(self) -> list[BudgetStatus]:
        """Each budget's current period: spent, reserved and remaining, per key."""
        return [] if self.budgets is None else self.budgets.status()

    # -- batch APIs and the deferred queue (issue 7) ------------------------------------------
    # The sync names take openai.OpenAI / anthropic.Anthropic; the a-names take their async
    # twins. One engine serves both (costguard/batch/_run.py); each refuses the other kind.

    @overload
    def batch(
        self,
        client: Any,
        requests: Sequence[Mapping[str, Any]],
        *,
        wait: Literal[True] = True,
        options: BatchOptions | None = None,
    ) -> list[Any]: ...
    @overload
    def batch(
        self,
        client: Any,
        requests: Sequence[Mapping[str, Any]],
        *,
        wait: Literal[False],
        options: BatchOptions | None = None,
    ) -> BatchHandle: ...
    @overload
    def batch(
        self,
        client: Any,
        requests: Sequence[Mapping[str, Any]],
        *,
        wait: bool,
        options: BatchOptions | None = None,
    ) -> list[Any] | BatchHandle: ...
    def batch(
        self,
        client: Any,
        requests: Sequence[Mapping[str, Any]],
        *,
        wait: bool = True,
        options: BatchOptions | None = None,
    ) -> list[Any] | BatchHandle:
        """Send ``requests`` (dicts of ``create()`` arguments; for OpenAI optionally
        ``"operation": "responses"`` or ``"embeddings"``, default chat completions) through
        the provider's batch API, at batch prices. Returns the SDK's response objects in the
        order of ``requests``, a :class:`~costguard.batch.BatchItemError` in the slot of each
        request that got no answer; with ``wait=False``, a
        :class:`~costguard.batch.BatchHandle` for :meth:`resolve`. Takes a sync client (for an
        async one, :meth:`abatch`). See docs/batch.md."""
        from .batch._api import run_batch

        return run_batch(self, client, requests, wait=wait, options=options)

    @overload
    async def abatch(
        self,
        client: Any,
        requests: Sequence[Mapping[str, Any]],
        *,
        wait: Literal[True] = True,
        options: BatchOptions | None = None,
    ) -> list[Any]: ...
    @overload
    async def abatch(
        self,
        client: Any,
        requests: Sequence[Mapping[str, Any]],
        *,
        wait: Literal[False],
        options: BatchOptions | None = None,
    ) -> BatchHandle: ...
    @overload
    async def abatch(
        self,
        client: Any,
        requests: Sequence[Mapping[str, Any]],
        *,
        wait: bool,
        options: BatchOptions | None = None,
    ) -> list[Any] | BatchHandle: ...
    async def abatch(
        self,
        client: Any,
        requests: Sequence[Mapping[str, Any]],
        *,
        wait: bool = True,
        options: BatchOptions | None = None,
    ) -> list[Any] | BatchHandle:
        """:meth:`batch` for an ``openai.AsyncOpenAI`` or ``anthropic.AsyncAnthropic`` client:
        SDK calls and waits (``options.asleep``) are awaited, database work runs in a worker
        thread."""
        from .batch._api import arun_batch

        return await arun_batch(self, client, requests, wait=wait, options=options)

    def defer(
        self,
        client: Any,
        request: Mapping[str, Any],
        *,
        priority: str = "low",
        options: BatchOptions | None = None,
    ) -> str:
        """Queue ``request`` in the ledger database for a later batch; returns its handle (a
        ULID) for :meth:`resolve`. Nothing is sent until :meth:`flush_deferred`."""
        from .batch._api import defer

        return defer(self, client, request, priority=priority, options=options)

    async def adefer(
        self,
        client: Any,
        request: Mapping[str, Any],
        *,
        priority: str = "low",
        options: BatchOptions | None = None,
    ) -> str:
        """:meth:`defer` for an async client (the queue is shared: any kind of client with the
        same provider, base URL and key may flush or resolve the request)."""
        from .batch._api import adefer

        return await adefer(self, client, request, priority=priority, options=options)

    def flush_deferred(
        self, client: Any, *, wait: bool = False, options: BatchOptions | None = None
    ) -> FlushReport:
        """Submit what is queued for ``client`` as batches, and collect batches that ended
        (``wait=True``: until every one has). Safe to run from cron, and from several
        processes at once."""
        from .batch._api import flush

        return flush(self, client, wait=wait, options=options)

    async def aflush_deferred(
        self, client: Any, *, wait: bool = False, options: BatchOptions | None = None
    ) -> FlushReport:
        """:meth:`flush_deferred` for an async client."""
        from .batch._api import aflush

        return await aflush(self, client, wait=wait, options=options)

    def resolve(
        self,
        handle: str | BatchHandle,
        client: Any,
        *,
        wait: bool = True,
        options: BatchOptions | None = None,
    ) -> Any:
        """The SDK response for a handle from :meth:`defer` (a list for one from
        :meth:`batch`), from any process: from the ledger if it has ended, else by submitting
        or polling it. A failed request raises its
        :class:`~costguard.batch.BatchItemError`; ``wait=False`` returns None if not ready."""
        from .batch._api import resolve

        return resolve(self, handle, client, wait=wait, options=options)

    async def aresolve(
        self,
        handle: str | BatchHandle,
        client: Any,
        *,
        wait: bool = True,
        options: BatchOptions | None = None,
    ) -> Any:
        """:meth:`resolve` for an async client; handles from either kind of client resolve."""
        from .batch._api import aresolve

        return await aresolve(self, handle, client, wait=wait, options=options)

    if TYPE_CHECKING:  # for the annotations above, without importing the batch package
        from .batch import BatchHandle, BatchOptions, FlushReport

    def close(self) -> None:
        """Commit pending ledger rows and close the ledger, budgets and caches."""
        batch_store = sys.modules.get("costguard.batch._store")
        if batch_store is not None:  # loaded only if batches were used
            batch_store.BatchStore.close_for(self)
        if self.budgets is not None:
            self.budgets.close()
        if self._rate_layer is not None:
            self._rate_layer.close()
        self.ledger.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> CostGuardClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(
        self, op: Operation, send: Callable[..., Any], info: ClientInfo, params: Mapping[str, Any]
    ) -> Any:
        return self._handle(Call(op, params, send, info, current_scope())).response

    async def _arun(
        self, op: Operation, send: Callable[..., Any], info: ClientInfo, params: Mapping[str, Any]
    ) -> Any:
        return (await self._ahandle(Call(op, params, send, info, current_scope()))).response


def _scope_cap(max_tokens: object, max_cost_usd: object) -> Cap:
    """Checks a scope's output limit and cost ceiling as a Cap does (same messages)."""
    from ._validate import MAX_OUTPUT_TOKENS_LIMIT
    from .spend import Cap

    if isinstance(max_tokens, int) and max_tokens > MAX_OUTPUT_TOKENS_LIMIT:
        raise ConfigurationError(
            f"scope max_tokens={max_tokens:,} is absurd (over {MAX_OUTPUT_TOKENS_LIMIT:,} tokens)"
        )
    return Cap(max_tokens, max_cost_usd=max_cost_usd)  # type: ignore[arg-type]  # checked there


def _scope_budgets(budget: object, feature: str | None) -> tuple[Budget, ...]:
    from .spend import Budget

    if budget is None:
        return ()
    given = [budget] if isinstance(budget, Budget) else budget
    if isinstance(given, str | bytes) or not isinstance(given, Sequence):
        raise ConfigurationError(
            f"scope budget must be a costguard.Budget or a list of them, got {budget!r}"
        )
    budgets = []
    for b in given:
        if not isinstance(b, Budget):
            raise ConfigurationError(f"scope budget must be a costguard.Budget, got {b!r}")
        budgets.append(b.scoped(feature))
    return tuple(budgets)


def _send(call: Call) -> Outcome:
    """The innermost handler: the SDK method itself."""
    outcome = _call_sdk(call)
    outcome.max_tokens_sent = call.max_tokens
    return outcome


async def _asend(call: Call) -> Outcome:
    outcome = await _acall_sdk(call)
    outcome.max_tokens_sent = call.max_tokens
    return outcome


def _call_sdk(call: Call) -> Outcome:
    if call.stream:
        stream = call.send(**_stream_params(call))
        return _tapped(call, stream, tap_sync)
    response = call.send(**call.params)
    mode = call.raw_response
    if mode is None:
        return _outcome(call.operation, response)
    if mode not in _READABLE_RAW:
        return Outcome(response)
    return _outcome(call.operation, response, response.parse())


async def _acall_sdk(call: Call) -> Outcome:
    if call.stream:
        stream = await call.send(**_stream_params(call))
        return _tapped(call, stream, tap_async)
    response = await call.send(**call.params)
    mode = call.raw_response
    if mode is None:
        return _outcome(call.operation, response)
    if mode not in _READABLE_RAW:
        return Outcome(response)
    parsed = response.parse()  # cached by the SDK: the caller's own parse() gets the same object
    return _outcome(
        call.operation, response, await parsed if inspect.isawaitable(parsed) else parsed
    )


def _stream_params(call: Call) -> Mapping[str, Any]:
    prepare = call.operation.prepare_stream
    return prepare(call.params) if prepare else call.params


def _tapped(call: Call, stream: Any, install: Callable[[Any, StreamTap], None]) -> Outcome:
    tap = StreamTap(call.operation.accumulator(call.params, call.collect))
    install(stream, tap)
    return Outcome(response=stream, stream=tap)


def _outcome(op: Operation, response: Any, parsed: Any = None) -> Outcome:
    """``response`` goes back to the caller; usage is read from ``parsed`` when it differs."""
    return op.read(response if parsed is None else parsed).outcome(response)


@functools.cache
def _default_guard() -> CostGuardClient:
    return CostGuardClient()


def wrap(client: ClientT) -> ClientT:
    """Wrap ``client`` with the default guard (shipped prices, ledger in the user data dir)."""
    return _default_guard().wrap(client)
