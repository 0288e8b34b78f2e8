"""Per-call cost of the scope, telemetry, budget and prompt-caching features, for bench.py.

Each row pairs the ledger-only guarded call (a CostGuardClient with a SQLite ledger in a temp
dir and the cache off) with the same call using one feature, on the same fake transport,
interleaved by bench.py's ``_measure``. OpenAI sync (``chat.completions.create``) unless noted:

- scope(feature=, user=): ``with guard.scope(feature=..., user=...)`` around the call,
  entered per call: attribution only;
- scope(max_tokens=200): a scope cap (sends ``max_completion_tokens=200``);
- scope(model=gpt-4o): the scope forces gpt-4o on a call asking for gpt-4o-mini;
- @scope(user=lambda r: ...): the call inside a decorated function whose user is resolved
  from its argument;
- scope(budget=Budget(1000, total)): a scope budget (reserve, settle in the ledger database),
  the guard itself having none; the Budget is made once, the scope per call;
- otel, SDK in-memory: ``otel=OTel(...)`` with the OpenTelemetry SDK's TracerProvider +
  SimpleSpanProcessor(InMemorySpanExporter) and MeterProvider(InMemoryMetricReader);
- otel, no-op providers: the same layer with the API's no-op providers, i.e. costguard's own
  part of the row above;
- anthropic prompt_caching=auto: ``messages.create`` (claude-haiku-4-5) with a ~5,000-token
  system prompt, on a guard with ``prompt_caching="auto"`` (it counts the prompt offline and
  places one breakpoint) vs a guard without; the fake then also simulates the cache read for
  the marked request, as the API would;
- anthropic auto vs by hand: the same, but the ledger-only side sends the breakpoint placed by
  hand, so both sides send identical requests and the difference is costguard's planning.

``prepare_us`` times ``PromptCacheLayer.prepare`` alone on that Claude call: costguard's own
planning (one offline count of the prompt, then the placement), with no SDK or transport.

``fast_paths`` times the ``handle()`` of the layers every guard has (scope, prompt caching,
budget) when they have nothing to do, each folded with a trivial ``call_next`` as the chain
folds it (``functools.partial(layer.handle, call_next=...)``), minus calling that
``call_next`` directly; a do-nothing layer (``return call_next(call)``) shows what the fold
itself costs per layer. Also ``guard.scope(...)`` enter + exit, with no call inside.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from costguard import CostGuardClient

HI = [{"role": "user", "content": "Say hello in one short sentence."}]
#: About 5,000 prompt tokens by costguard's offline Claude estimate.
SYSTEM = " ".join(
    f"Rule {i}: when a customer asks about order {i * 7919 % 10007}, check the ledger, quote "
    f"policy section {i % 37}, and answer in at most three sentences."
    for i in range(125)
)
CLAUDE = "claude-haiku-4-5"

Measure = Callable[[int, Callable[[], Any], Callable[[], Any]], tuple[float, float]]
Row = tuple[str, float, float]


def _chat(client: Any, model: str = "gpt-4o-mini") -> Any:
    return client.chat.completions.create(model=model, messages=HI)


def _scoped(guard: Any, client: Any, **scope: Any) -> Callable[[], Any]:
    def call() -> Any:
        with guard.scope(**scope):
            return _chat(client)

    return call


def _otel_sdk() -> tuple[Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return (tracer_provider, meter_provider), exporter


def feature_rows(calls: int, tmp: Path, measure: Measure) -> list[Row]:
    """(case, ledger-only µs, with-feature µs) per feature, medians of ``calls`` pairs."""
    import costguard
    from costguard.testing import FakeProvider

    rows: list[Row] = []
    fake = FakeProvider()
    guards: list[CostGuardClient] = []

    def guard(name: str, **options: Any) -> CostGuardClient:
        made = costguard.CostGuardClient(ledger=tmp / f"{name}.db", cache=None, **options)
        guards.append(made)
        return made

    def last_sent() -> dict[str, Any]:
        sent: dict[str, Any] = fake.requests[-1].json
        fake.reset()  # recorded requests would pile up (20 kB each for the Claude rows)
        return sent

    # Scope-level features: the same guard and client on both sides of a row.
    g = guard("scope")
    client = g.wrap(fake.openai())
    plain = functools.partial(_chat, client)
    _scoped(g, client, feature="bench", user="u1")()
    assert g.ledger.records()[-1].user == "u1"
    rows.append(
        (
            "scope(feature=, user=)",
            *measure(calls, plain, _scoped(g, client, feature="bench", user="u1")),
        )
    )
    _scoped(g, client, max_tokens=200)()
    assert last_sent()["max_completion_tokens"] == 200
    rows.append(
        ("scope(max_tokens=200)", *measure(calls, plain, _scoped(g, client, max_tokens=200)))
    )
    _scoped(g, client, model="gpt-4o")()
    assert last_sent()["model"] == "gpt-4o"
    rows.append(
        (
            "scope(model=gpt-4o), asks mini",
            *measure(calls, plain, _scoped(g, client, model="gpt-4o")),
        )
    )

    @g.scope(feature="bench", user=lambda request: request["user"])
    def handler(request: dict[str, str]) -> Any:
        return _chat(client)

    handler({"user": "u2"})
    assert g.ledger.records()[-1].user == "u2"
    rows.append(
        (
            "@scope(user=lambda r: ...)",
            *measure(calls, plain, functools.partial(handler, {"user": "u2"})),
        )
    )
    fake.reset()

    g = guard("scope-budget")
    client = g.wrap(fake.openai())
    budget = costguard.Budget(1000, period="total")
    budgeted = _scoped(g, client, budget=budget)
    budgeted()
    assert g.budget_status() and g.budget_status()[0].spent > 0
    rows.append(
        (
            "scope(budget=Budget(1000, total))",
            *measure(calls, functools.partial(_chat, client), budgeted),
        )
    )
    fake.reset()

    # Guard-level features: a ledger-only guard vs one with the feature.
    ledger_only = guard("otel-base").wrap(fake.openai())
    providers, exporter = _otel_sdk()
    traced = guard("otel", otel=costguard.OTel(*providers)).wrap(fake.openai())
    _chat(traced)
    assert len(exporter.get_finished_spans()) == 1
    rows.append(
        (
            "otel, SDK in-memory",
            *measure(
                calls, functools.partial(_chat, ledger_only), functools.partial(_chat, traced)
            ),
        )
    )
    exporter.clear()
    fake.reset()
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    noop = costguard.OTel(NoOpTracerProvider(), NoOpMeterProvider())
    traced = guard("otel-noop", otel=noop).wrap(fake.openai())
    rows.append(
        (
            "otel, no-op providers",
            *measure(
                calls, functools.partial(_chat, ledger_only), functools.partial(_chat, traced)
            ),
        )
    )
    fake.reset()

    def claude(client: Any, system: Any) -> Callable[[], Any]:
        return functools.partial(
            client.messages.create, model=CLAUDE, max_tokens=64, system=system, messages=HI
        )

    mark = {"type": "ephemeral", "ttl": "5m"}
    by_hand = [{"type": "text", "text": SYSTEM, "cache_control": mark}]
    base = guard("claude-base").wrap(fake.anthropic())
    auto = claude(guard("claude-auto", prompt_caching="auto").wrap(fake.anthropic()), SYSTEM)
    auto()
    assert last_sent()["system"] == by_hand
    rows.append(("anthropic prompt_caching=auto", *measure(calls, claude(base, SYSTEM), auto)))
    fake.reset()
    rows.append(("anthropic auto vs by hand", *measure(calls, claude(base, by_hand), auto)))
    fake.reset()
    for made in guards:
        made.close()
    return rows


def _chat_call(provider: str, params: dict[str, Any]) -> Any:
    from costguard._call import Call, ClientInfo
    from costguard._scope import Scope
    from costguard.providers import operations_for

    name = "chat.completions.create" if provider == "openai" else "messages.create"
    operation = next(op for op in operations_for(provider) if op.name == name)
    client = ClientInfo(provider, f"https://api.{provider}.com/v1", is_async=False)
    return Call(operation, params, lambda **_: None, client, Scope())


def prepare_us(runs: int) -> float:
    """Median µs of ``PromptCacheLayer.prepare`` placing the breakpoint on the Claude call."""
    import costguard
    from costguard.layers.promptcache import PromptCacheLayer, PromptCaching

    layer = PromptCacheLayer(PromptCaching("auto"), costguard.PriceTable.default())
    call = _chat_call(
        "anthropic", {"model": CLAUDE, "max_tokens": 64, "system": SYSTEM, "messages": HI}
    )
    assert layer.prepare(call) is not call
    samples = []
    clock = time.perf_counter
    for _ in range(runs):
        t0 = clock()
        layer.prepare(call)
        samples.append(clock() - t0)
    return statistics.median(samples) * 1e6


def print_feature_rows(calls: int, rows: list[Row], prepare: float) -> None:
    from costguard._tokens import count_tokens

    tokens = count_tokens(CLAUDE, HI, system=SYSTEM)
    print("per-call cost of this session's features (openai sync unless noted), vs the")
    print(f"ledger-only guarded call, median of {calls}")
    print(f"{'case':<36}{'ledger µs':>10}{'feature µs':>12}{'ratio':>8}{'added µs':>10}")
    for name, r, g in rows:
        print(f"{name:<36}{r:>10.1f}{g:>12.1f}{g / r:>8.3f}{g - r:>10.1f}")
    print(f"anthropic rows: messages.create ({CLAUDE}), {tokens:,}-token system prompt (estimate);")
    print(f"PromptCacheLayer.prepare alone on that call (count + place): {prepare:.1f} µs")


def _per_call_ns(fn: Callable[[Any], Any], arg: Any, n: int) -> float:
    clock = time.perf_counter_ns
    t0 = clock()
    for _ in range(n):
        fn(arg)
    return (clock() - t0) / n


def fast_paths(rounds: int, n: int = 20_000) -> tuple[list[tuple[str, float]], float]:
    """(layer, ns per call) with nothing to do, and the bare ``call_next`` ns it includes."""
    import costguard
    from costguard._call import Call, Outcome
    from costguard.layers.budget import BudgetLayer
    from costguard.layers.promptcache import PromptCacheLayer
    from costguard.layers.scoped import ScopeLayer

    prices = costguard.PriceTable.default()
    call = _chat_call("openai", {"model": "gpt-4o-mini", "messages": HI})
    outcome = Outcome(response=None)

    def terminal(call: Call) -> Outcome:
        return outcome

    def no_book() -> Any:
        raise AssertionError("the budget book is made only when a scope brings a budget")

    class PassThrough:
        def handle(self, call: Call, call_next: Callable[[Call], Outcome]) -> Outcome:
            return call_next(call)

    layers: dict[str, Any] = {
        "do-nothing layer (fold cost)": PassThrough(),
        "ScopeLayer": ScopeLayer(prices),
        "PromptCacheLayer": PromptCacheLayer(None, prices),
        "BudgetLayer": BudgetLayer(no_book, prices, eager=False),
    }
    guard = costguard.CostGuardClient(ledger=":memory:", cache=None)
    manager = guard.scope(feature="bench", user="u1")

    def enter_exit(_: Any) -> None:
        with manager:
            pass

    def build_enter_exit(_: Any) -> None:
        with guard.scope(feature="bench", user="u1"):
            pass

    cases: dict[str, Callable[[Any], Any]] = {"call_next alone": terminal}
    cases |= {
        name: functools.partial(layer.handle, call_next=terminal) for name, layer in layers.items()
    }
    cases["scope enter+exit (manager reused)"] = enter_exit
    cases["guard.scope(...) + enter + exit"] = build_enter_exit
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
            samples[name].append(_per_call_ns(cases[name], call, n))
    guard.close()
    medians = [(name, statistics.median(samples[name])) for name in names]
    return medians[1:], medians[0][1]


def print_fast_paths(paths: list[tuple[str, float]], bare: float, guarded_us: float) -> None:
    print("always-present layers with nothing to do: handle() folded on a trivial call_next")
    print(f"(ns per call; net = minus calling call_next directly, {bare:.0f} ns)")
    print(f"{'layer':<36}{'ns':>10}{'net ns':>10}")
    net_layers = 0.0
    for name, ns in paths:
        print(f"{name:<36}{ns:>10.0f}{ns - bare:>10.0f}")
        if name.endswith("Layer"):
            net_layers += ns - bare
    share = net_layers / (guarded_us * 1e3)
    print(
        f"the three layers: {net_layers:.0f} ns net, {share:.2%} of a ledger-only guarded call "
        f"({guarded_us:.0f} µs)"
    )
