"""OpenTelemetry spans and metrics for guarded calls, after the GenAI semantic conventions.

``CostGuardClient(otel=True)`` (the global providers) or ``otel=OTel(tracer_provider=...,
meter_provider=...)`` puts an :class:`OTelLayer` right inside the ledger layer: outermost but
for the ledger, so its span covers the whole call as the caller made it (cache hits, routing,
fallbacks and retries included) and ends when the answer is complete (for a stream: when the
stream ends or is closed).

Each call is one ``CLIENT`` span named ``"{gen_ai.operation.name} {gen_ai.request.model}"``
with the ``gen_ai.*`` attributes of the conventions and costguard's own ``costguard.*`` ones
(exact cost, savings, cache, attempts, route, scope). It also records the histograms
``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage`` and the counters
``costguard.client.cost`` and ``costguard.client.saved``.

Never on a span or a metric: prompt or answer text, tool arguments, stop sequences, provider
error messages (they can echo parts of a request or of an API key), API keys or their hashes.

opentelemetry is imported when the layer is built, never when this module is: ``OTel`` can be
named (and ``import costguard`` stays light) without the ``otel`` extra installed. Telemetry
never fails a call: a failure is logged on the ``costguard`` logger and the call goes on.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeGuard
from urllib.parse import urlsplit

from ._call import Call, Outcome, attempts_made
from ._chain import AsyncHandler, Handler
from ._errors import ConfigurationError, require_callable
from ._streams import StreamOutcome
from .layers._pricing import price_outcome
from .pricing import PriceTable

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider
    from opentelemetry.util.types import AttributeValue

__all__ = ["OTel", "OTelLayer"]

logger = logging.getLogger("costguard")

_SCOPE_NAME = "costguard"

#: costguard's operation names -> ``gen_ai.operation.name`` (any other keeps its own name).
_OPERATIONS: Mapping[str, str] = {
    "chat.completions.create": "chat",
    "responses.create": "chat",
    "messages.create": "chat",
    "messages.stream": "chat",
    "embeddings.create": "embeddings",
}

#: Request parameters recorded as they are, when given as numbers: parameter -> attribute.
_FLOAT_PARAMS: Mapping[str, str] = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
}

# Bucket boundaries the conventions advise for the two histograms.
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                  16777216, 67108864)  # fmt: skip
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                     40.96, 81.92)  # fmt: skip

_HITS = frozenset({"exact", "semantic"})
_ZERO = Decimal(0)


@dataclass(frozen=True)
class OTel:
    """Where a guard's spans and metrics go.

    :param tracer_provider: an OpenTelemetry ``TracerProvider``; ``None``: the global one
        (``opentelemetry.trace.set_tracer_provider``, which may be called after the guard is
        built).
    :param meter_provider: an OpenTelemetry ``MeterProvider``; ``None``: the global one.
    :param clock: a monotonic clock in seconds for ``gen_ai.client.operation.duration``
        (``time.perf_counter``); inject one in tests.

    >>> guard = costguard.CostGuardClient(otel=costguard.OTel(tracer_provider=provider))
    """

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    clock: Callable[[], float] = time.perf_counter

    def __post_init__(self) -> None:
        require_callable("OTel(clock=...)", self.clock)


class _Started:
    """A call's span in flight: when it started and the attributes its metrics share."""

    __slots__ = ("common", "operation", "span", "start")

    def __init__(
        self, span: Span, start: float, operation: str, common: dict[str, AttributeValue]
    ) -> None:
        self.span = span
        self.start = start
        self.operation = operation
        self.common = common


class OTelLayer:
    """Turns each guarded call into a GenAI span and records its duration, tokens and cost.

    Built by :class:`~costguard.CostGuardClient` from its ``otel=`` argument; the tracer, the
    meter and the instruments are resolved here, once. Raises
    :class:`~costguard.ConfigurationError` when opentelemetry is not installed.
    """

    def __init__(self, otel: OTel, prices: PriceTable) -> None:
        try:
            from opentelemetry import context, metrics, trace
        except ImportError:
            raise ConfigurationError(
                "otel= needs OpenTelemetry: pip install 'costguard[otel]'"
            ) from None
        self.otel = otel
        self.prices = prices
        self._clock = otel.clock
        self._context = context
        self._trace = trace
        self._client_kind = trace.SpanKind.CLIENT
        version = _version()
        try:
            self._tracer = trace.get_tracer(
                _SCOPE_NAME, version, tracer_provider=otel.tracer_provider
            )
            meter = metrics.get_meter(_SCOPE_NAME, version, meter_provider=otel.meter_provider)
            self._duration = meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
            )
            self._tokens = meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
            )
            self._cost = meter.create_counter(
                "costguard.client.cost",
                unit="USD",
                description="What guarded calls cost, as priced by costguard.",
            )
            self._saved = meter.create_counter(
                "costguard.client.saved",
                unit="USD",
                description="What cache hits saved guarded calls, as priced by costguard.",
            )
        except Exception as exc:
            raise ConfigurationError(
                f"otel=: the tracer or meter provider cannot be used: {exc!r}"
            ) from exc
        self._failed_before = False

    # -- the two drivers -----------------------------------------------------------------

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        started = self._start(call)
        if started is None:
            return call_next(call)
        try:
            token = self._activate(started.span)
            try:
                outcome = call_next(call)
            finally:
                self._deactivate(token)
        except BaseException as exc:
            self._finish(call, started, _failed(exc), None)
            raise
        self._settle(call, started, outcome)
        return outcome

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        started = self._start(call)
        if started is None:
            return await call_next(call)
        try:
            token = self._activate(started.span)
            try:
                outcome = await call_next(call)
            finally:
                self._deactivate(token)
        except BaseException as exc:
            self._finish(call, started, _failed(exc), None)
            raise
        self._settle(call, started, outcome)
        return outcome

    # -- shared by both drivers ----------------------------------------------------------

    def _start(self, call: Call) -> _Started | None:
        """The call's span, started; None if telemetry failed (the call goes on untraced)."""
        try:
            operation = _OPERATIONS.get(call.operation.name, call.operation.name)
            common = _common_attributes(call, operation)
            attributes = _request_attributes(call, operation, common)
            name = f"{operation} {call.model}" if call.model else operation
            span = self._tracer.start_span(name, kind=self._client_kind, attributes=attributes)
            return _Started(span, self._clock(), operation, common)
        except Exception as exc:
            self._failure("start a span", exc)
            return None

    def _activate(self, span: Span) -> Token[Context] | None:
        """Make ``span`` current while the inner layers run, so that spans they (or an
        instrumented HTTP client) start are its children. Returns the token to detach."""
        try:
            return self._context.attach(self._trace.set_span_in_context(span))
        except Exception as exc:
            self._failure("activate a span", exc)
            return None

    def _deactivate(self, token: Token[Context] | None) -> None:
        if token is None:
            return
        try:
            self._context.detach(token)
        except Exception as exc:
            self._failure("deactivate a span", exc)

    def _settle(self, call: Call, started: _Started, outcome: Outcome) -> None:
        stream = outcome.stream
        if stream is None:
            self._finish(call, started, outcome, outcome.response)
            return
        try:  # the span ends with the stream; its final outcome carries the id and reasons
            stream.on_finish(
                lambda final: self._finish(call, started, outcome.settled(final), final)
            )
        except Exception as exc:
            self._failure("watch a stream", exc)
            self._finish(call, started, outcome, None)

    def _finish(self, call: Call, started: _Started, outcome: Outcome, answer: Any) -> None:
        """End the span and record the metrics; ``answer`` is the SDK's object, or a
        stream's :class:`StreamOutcome`, if any."""
        try:
            self._record(call, started, outcome, answer, self._clock() - started.start)
        except Exception as exc:
            self._failure("record a call", exc)
        finally:
            try:
                started.span.end()
            except Exception as exc:
                self._failure("end a span", exc)

    def _record(
        self, call: Call, started: _Started, outcome: Outcome, answer: Any, duration: float
    ) -> None:
        operation = started.operation
        hit = outcome.cache in _HITS
        cost, saved, version = self._price(call, outcome, hit)

        attributes: dict[str, AttributeValue] = {}
        if outcome.served_model:
            attributes["gen_ai.response.model"] = outcome.served_model
        max_tokens = outcome.max_tokens_sent or call.max_tokens
        if max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = max_tokens
        _response_attributes(answer, attributes)
        usage = outcome.usage
        if usage is not None and not hit:  # a cache hit sent no tokens
            attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            if operation != "embeddings":
                attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
            if usage.cache_read_tokens:
                attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
            written = usage.cache_write_5m_tokens + usage.cache_write_1h_tokens
            if written:
                attributes["gen_ai.usage.cache_creation.input_tokens"] = written
            if usage.reasoning_tokens:
                attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
        if outcome.service_tier:
            key = "openai.response.service_tier" if call.provider == "openai" else None
            attributes[key or "costguard.service_tier"] = outcome.service_tier
        if cost is not None:
            attributes["costguard.cost_usd"] = _usd(cost)
        if version is not None:
            attributes["costguard.price_version"] = version
        attributes["costguard.saved_usd"] = _usd(saved)
        attributes["costguard.cache"] = outcome.cache
        attributes["costguard.attempts"] = outcome.attempts
        attributes["costguard.status"] = outcome.status
        if outcome.route is not None:
            attributes["costguard.route"] = outcome.route
        error_type = None
        if outcome.status == "error":
            error_type = _error_type(outcome.error)
            attributes["error.type"] = error_type
        span = started.span
        span.set_attributes(attributes)
        if error_type is not None:
            # The provider's message stays off the span: it can echo the request or a key.
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error_type))
        self._measure(call, started, outcome, hit, cost, saved, duration, error_type)

    def _measure(
        self,
        call: Call,
        started: _Started,
        outcome: Outcome,
        hit: bool,
        cost: Decimal | None,
        saved: Decimal,
        duration: float,
        error_type: str | None,
    ) -> None:
        common = started.common
        if outcome.served_model:
            common = {**common, "gen_ai.response.model": outcome.served_model}
        timing = {**common, "costguard.cache": outcome.cache}
        if error_type is not None:
            timing["error.type"] = error_type
        self._duration.record(duration, timing)
        if not hit:
            self._count_tokens(common, started.operation, outcome)
            for earlier_call, earlier in outcome.earlier:  # a cascade's cheap try, billed too
                attributes = _common_attributes(earlier_call, started.operation)
                if earlier.served_model:
                    attributes["gen_ai.response.model"] = earlier.served_model
                self._count_tokens(attributes, started.operation, earlier)
        money = {**common, "costguard.cache": outcome.cache}
        if call.scope.feature is not None:
            money["costguard.feature"] = call.scope.feature
        if cost is not None:
            self._cost.add(float(cost), money)
        if saved:
            self._saved.add(float(saved), money)

    def _count_tokens(
        self, attributes: dict[str, AttributeValue], operation: str, outcome: Outcome
    ) -> None:
        usage = outcome.usage
        if usage is None:
            return
        self._tokens.record(usage.prompt_tokens, {**attributes, "gen_ai.token.type": "input"})
        if operation != "embeddings":
            self._tokens.record(usage.output_tokens, {**attributes, "gen_ai.token.type": "output"})

    def _price(
        self, call: Call, outcome: Outcome, hit: bool
    ) -> tuple[Decimal | None, Decimal, str | None]:
        """(cost, saved, price table version) as the ledger counts them: a cache hit costs
        nothing and saves what its answer would cost; a cascade's cheap try is part of the
        cost."""
        priced = price_outcome(self.prices, call, outcome)
        cost = None if priced is None else priced.usd
        version = None if priced is None else priced.version
        saved = outcome.saved_usd
        if hit:
            if cost is not None:
                saved, cost = saved + cost, _ZERO
            return cost, saved, version
        for earlier_call, earlier in outcome.earlier:
            before = price_outcome(self.prices, earlier_call, earlier)
            if before is not None and cost is not None:
                cost += before.usd
        return cost, saved, version

    def _failure(self, doing: str, exc: Exception) -> None:
        """Telemetry never fails a call: say so once as a warning, then at debug level."""
        if self._failed_before:
            logger.debug("costguard could not %s for OpenTelemetry: %r", doing, exc)
            return
        self._failed_before = True
        logger.warning(
            "costguard could not %s for OpenTelemetry: %r (the call went on; further "
            "telemetry failures are logged at DEBUG level)",
            doing,
            exc,
        )


# -- attributes ----------------------------------------------------------------------------


def _request_attributes(
    call: Call, operation: str, common: Mapping[str, AttributeValue]
) -> dict[str, AttributeValue]:
    """What is known before anything is sent: set when the span starts, for samplers."""
    attributes = dict(common)
    attributes["gen_ai.request.stream"] = call.stream
    params = call.params
    for param, attribute in _FLOAT_PARAMS.items():
        value = params.get(param)
        if _is_number(value):
            attributes[attribute] = float(value)
    seed = params.get("seed")
    if _is_int(seed):
        attributes["gen_ai.request.seed"] = seed
    choices = params.get("n")
    if _is_int(choices) and choices != 1:
        attributes["gen_ai.request.choice.count"] = choices
    output_type = _output_type(params)
    if output_type is not None:
        attributes["gen_ai.output.type"] = output_type
    if operation == "embeddings":
        dimensions = params.get("dimensions")
        if _is_int(dimensions):
            attributes["gen_ai.embeddings.dimension.count"] = dimensions
        encoding = params.get("encoding_format")
        if isinstance(encoding, str):
            attributes["gen_ai.request.encoding_formats"] = (encoding,)
    tier = params.get("service_tier")
    if call.provider == "openai" and isinstance(tier, str) and tier != "auto":
        attributes["openai.request.service_tier"] = tier
    scope = call.scope
    if scope.feature is not None:
        attributes["costguard.feature"] = scope.feature
    if scope.user is not None:
        attributes["costguard.user"] = scope.user
    if scope.tenant is not None:
        attributes["costguard.tenant"] = scope.tenant
    for key, value in scope.tags.items():
        attributes[f"costguard.tag.{key}"] = value
    return attributes


def _common_attributes(call: Call, operation: str) -> dict[str, AttributeValue]:
    """The low-cardinality attributes of the span that every metric carries too."""
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": call.provider,
    }
    if call.model is not None:
        attributes["gen_ai.request.model"] = call.model
    server = _server(call.client.base_url)
    if server is not None:
        attributes["server.address"], attributes["server.port"] = server
    return attributes


@functools.lru_cache(maxsize=64)
def _server(base_url: str) -> tuple[str, int] | None:
    """``(host, port)`` of an API base URL; never its user info, path or query."""
    try:
        parts = urlsplit(base_url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return host, port if port is not None else (80 if parts.scheme == "http" else 443)


def _output_type(params: Mapping[str, Any]) -> str | None:
    """``gen_ai.output.type``: ``"json"`` or ``"text"`` when the request names a format."""
    fmt = params.get("response_format")  # chat completions
    if fmt is None:
        text = params.get("text")  # the Responses API
        fmt = text.get("format") if isinstance(text, Mapping) else None
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind in ("json_schema", "json_object"):
        return "json"
    return "text" if kind == "text" else None


def _response_attributes(answer: Any, attributes: dict[str, AttributeValue]) -> None:
    """``gen_ai.response.id`` and ``finish_reasons`` from the SDK's answer, when it is one (a
    raw HTTP response says nothing here), or from what a stream's accumulator noted."""
    if answer is None:
        return
    if isinstance(answer, StreamOutcome):
        response_id: object = answer.response_id
        reasons = answer.finish_reasons
    else:
        response_id = getattr(answer, "id", None)
        reasons = _finish_reasons(answer)
    if isinstance(response_id, str) and response_id:
        attributes["gen_ai.response.id"] = response_id
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons


def _finish_reasons(answer: Any) -> tuple[str, ...]:
    choices = getattr(answer, "choices", None)
    if isinstance(choices, list):  # a chat completion: one per choice
        return tuple(r for c in choices if isinstance(r := getattr(c, "finish_reason", None), str))
    stop = getattr(answer, "stop_reason", None)  # an Anthropic message
    if isinstance(stop, str):
        return (stop,)
    status = getattr(answer, "status", None)  # a Responses API response
    if isinstance(status, str) and getattr(answer, "object", None) == "response":
        reason = getattr(getattr(answer, "incomplete_details", None), "reason", None)
        return (reason if isinstance(reason, str) else status,)
    return ()


def _error_type(error: BaseException | None) -> str:
    """The exception's class name (``RateLimitError``), else the conventions' ``_OTHER``."""
    return type(error).__qualname__ if error is not None else "_OTHER"


def _failed(error: BaseException) -> Outcome:
    """What a call that raised is recorded as: nothing came back, nothing was billed."""
    return Outcome(response=None, status="error", error=error, attempts=attempts_made(error))


def _usd(amount: Decimal) -> str:
    """An exact USD amount in plain notation: ``"0.0000288"``, ``"0"``."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("costguard")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"
