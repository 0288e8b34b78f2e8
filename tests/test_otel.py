"""OpenTelemetry: each guarded call is a GenAI client span, with duration, token, cost metrics."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import costguard
from costguard._otel import OTel
from costguard.testing import FakeProvider

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
HI: Any = [{"role": "user", "content": "hi"}]


class Ticker:
    """A clock for the layer: every reading is half a second after the previous one."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


@dataclass
class Telemetry:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    otel: OTel

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def only_span(self) -> ReadableSpan:
        [span] = self.spans()
        return span

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def unit(self, name: str) -> str | None:
        data = self.reader.get_metrics_data()
        assert data is not None
        units = {
            metric.unit
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
        }
        [unit] = units
        return unit


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    otel = OTel(tracer_provider=tracer_provider, meter_provider=meter_provider, clock=Ticker())
    yield Telemetry(exporter, reader, tracer_provider, otel)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
def costguard_otel(telemetry: Telemetry) -> OTel:
    return telemetry.otel


@pytest.fixture
def guard(tmp_path: Path, costguard_otel: OTel) -> Iterator[costguard.CostGuardClient]:
    g = costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=costguard.ExactCache(tmp_path / "c"), otel=costguard_otel
    )
    yield g
    g.close()


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# -- spans -------------------------------------------------------------------------------


def test_a_chat_completion_is_a_genai_client_span_priced_like_the_ledger(
    guard: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """A chat call is one CLIENT span named "chat <model>" with the request, response, usage,
    exact cost and scope attributes, agreeing with its ledger row."""
    client = guard.wrap(FakeProvider().openai())
    with guard.scope(feature="support", user="u42", tenant="acme", tags={"team": "core"}):
        answer = client.chat.completions.create(
            model=GPT, messages=HI, max_tokens=60, temperature=0.2, top_p=0.9, seed=7
        )
    span = telemetry.only_span()
    [row] = guard.ledger.records()
    a = attrs(span)
    assert span.name == f"chat {GPT}" and span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == GPT and a["gen_ai.response.model"] == answer.model
    assert (a["gen_ai.request.max_tokens"], a["gen_ai.request.seed"]) == (60, 7)
    assert (a["gen_ai.request.temperature"], a["gen_ai.request.top_p"]) == (0.2, 0.9)
    assert a["gen_ai.request.stream"] is False
    assert a["gen_ai.response.id"] == answer.id
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == row.usage.prompt_tokens > 0
    assert a["gen_ai.usage.output_tokens"] == row.usage.output_tokens > 0
    assert (a["server.address"], a["server.port"]) == ("api.openai.com", 443)
    assert "E" not in a["costguard.cost_usd"] and Decimal(a["costguard.cost_usd"]) == row.cost_usd
    assert row.cost_usd is not None and row.cost_usd > 0
    assert a["costguard.price_version"] == row.price_version
    assert (a["costguard.saved_usd"], a["costguard.cache"], a["costguard.attempts"]) == (
        "0",
        "miss",
        1,
    )
    assert a["costguard.status"] == "ok"
    assert (a["costguard.feature"], a["costguard.user"], a["costguard.tenant"]) == (
        "support",
        "u42",
        "acme",
    )
    assert a["costguard.tag.team"] == "core"


def test_duration_token_and_cost_metrics_follow_the_conventions(
    guard: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """One call records its duration by the injected clock, its input and output tokens by
    gen_ai.token.type, and its exact cost on the cost counter."""
    client = guard.wrap(FakeProvider().openai())
    with guard.scope(feature="support", user="u42"):
        client.chat.completions.create(model=GPT, messages=HI)
    [row] = guard.ledger.records()
    [duration] = telemetry.points("gen_ai.client.operation.duration")
    assert telemetry.unit("gen_ai.client.operation.duration") == "s"
    assert (duration.count, duration.sum) == (1, 0.5)
    assert duration.attributes["gen_ai.operation.name"] == "chat"
    assert duration.attributes["gen_ai.provider.name"] == "openai"
    assert duration.attributes["gen_ai.request.model"] == GPT
    assert duration.attributes["gen_ai.response.model"] == row.served_model
    assert "error.type" not in duration.attributes
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum
        for p in telemetry.points("gen_ai.client.token.usage")
    }
    assert telemetry.unit("gen_ai.client.token.usage") == "{token}"
    assert tokens == {"input": row.usage.prompt_tokens, "output": row.usage.output_tokens}
    [cost] = telemetry.points("costguard.client.cost")
    assert cost.value == pytest.approx(float(row.cost_usd or 0))
    assert cost.attributes["costguard.feature"] == "support"
    assert "costguard.user" not in cost.attributes  # users stay off metrics (cardinality)


def test_a_responses_api_call_is_a_chat_span(
    guard: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """responses.create is a "chat" span with the response's id, and its status (or why it
    is incomplete) as the finish reason."""
    client = guard.wrap(FakeProvider().openai())
    answer = client.responses.create(model=GPT, input="hi", max_output_tokens=400)
    cut = client.responses.create(model=GPT, input="hi", max_output_tokens=3)
    whole, truncated = (attrs(span) for span in telemetry.spans())
    assert telemetry.spans()[0].name == f"chat {GPT}"
    assert whole["gen_ai.response.id"] == answer.id
    assert whole["gen_ai.response.finish_reasons"] == ("completed",)
    assert whole["gen_ai.request.max_tokens"] == 400
    assert whole["gen_ai.usage.output_tokens"] > 0
    assert truncated["gen_ai.response.id"] == cut.id
    assert truncated["gen_ai.response.finish_reasons"] == ("max_output_tokens",)


def test_an_embeddings_call_is_an_embeddings_span_with_input_tokens_only(
    guard: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """embeddings.create is an "embeddings" span; only input tokens are counted."""
    client = guard.wrap(FakeProvider().openai())
    client.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=256)
    span = telemetry.only_span()
    a = attrs(span)
    assert span.name == "embeddings text-embedding-3-small"
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["gen_ai.embeddings.dimension.count"] == 256
    assert a["gen_ai.usage.input_tokens"] > 0 and "gen_ai.usage.output_tokens" not in a
    types = [
        p.attributes["gen_ai.token.type"] for p in telemetry.points("gen_ai.client.token.usage")
    ]
    assert types == ["input"]


def test_an_anthropic_message_counts_prompt_cache_tokens_in_its_input(
    guard: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """An Anthropic call names its provider; input tokens include prompt-cache reads and
    writes, which also get their own attributes."""
    fake = FakeProvider()
    fake.reply("Bonjour.", cached_tokens=300, cache_write_tokens=40)
    claude = guard.wrap(fake.anthropic())
    answer = claude.messages.create(model=CLAUDE, max_tokens=50, messages=HI)
    [row] = guard.ledger.records()
    a = attrs(telemetry.only_span())
    assert a["gen_ai.provider.name"] == "anthropic" and a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.response.id"] == answer.id
    assert a["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.usage.cache_read.input_tokens"] == 300
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 40
    assert a["gen_ai.usage.input_tokens"] == row.usage.prompt_tokens
    assert row.usage.prompt_tokens == row.usage.input_tokens + 340
    assert a["server.address"] == "api.anthropic.com"


def test_async_calls_are_spans_under_the_callers_span(
    guard: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """Async OpenAI and Anthropic calls made inside the caller's span are its children."""
    fake = FakeProvider()
    client, claude = guard.wrap(fake.async_openai()), guard.wrap(fake.async_anthropic())
    tracer = telemetry.tracer_provider.get_tracer("app")

    async def main() -> None:
        with tracer.start_as_current_span("handler"):
            await client.chat.completions.create(model=GPT, messages=HI)
            await claude.messages.create(model=CLAUDE, max_tokens=50, messages=HI)

    asyncio.run(main())
    chat, message, handler = telemetry.spans()
    assert (chat.name, message.name, handler.name) == (f"chat {GPT}", f"chat {CLAUDE}", "handler")
    for span in (chat, message):
        assert span.parent is not None and span.parent.span_id == handler.context.span_id
        assert attrs(span)["gen_ai.usage.output_tokens"] > 0


def test_the_span_is_current_while_the_inner_layers_run(
    tmp_path: Path, telemetry: Telemetry
) -> None:
    """A span started by a layer inside the guard (or an instrumented HTTP client) is a child
    of the call's span."""
    tracer = telemetry.tracer_provider.get_tracer("inner")

    class Inner:
        def handle(self, call: costguard.Call, call_next: costguard.Handler) -> costguard.Outcome:
            with tracer.start_as_current_span("inner"):
                return call_next(call)

        async def ahandle(
            self, call: costguard.Call, call_next: costguard.AsyncHandler
        ) -> costguard.Outcome:
            return await call_next(call)

    with costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=None, otel=telemetry.otel, layers=[Inner()]
    ) as guard:
        guard.wrap(FakeProvider().openai()).chat.completions.create(model=GPT, messages=HI)
    inner, call = telemetry.spans()
    assert inner.parent is not None and inner.parent.span_id == call.context.span_id


# -- streams -----------------------------------------------------------------------------


def test_a_streamed_call_ends_its_span_when_the_stream_ends(
    guard: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """A stream's span ends only once the caller has read it, with the stream's usage, id and
    finish reason, and its duration runs to the end of the stream."""
    client = guard.wrap(FakeProvider().openai())
    stream = client.chat.completions.create(model=GPT, messages=HI, stream=True)
    assert telemetry.spans() == []
    chunks = list(stream)
    [row] = guard.ledger.records()
    span = telemetry.only_span()
    a = attrs(span)
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.response.id"] == chunks[0].id
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.usage.output_tokens"] == row.usage.output_tokens > 0
    assert Decimal(a["costguard.cost_usd"]) == row.cost_usd
    assert a["costguard.status"] == "ok"
    [duration] = telemetry.points("gen_ai.client.operation.duration")
    assert duration.sum == 0.5


def test_a_stream_closed_early_is_an_incomplete_span_not_an_error(
    guard: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """Closing a stream before its end ends the span with status incomplete and no error."""
    client = guard.wrap(FakeProvider().openai())
    stream = client.chat.completions.create(model=GPT, messages=HI, stream=True)
    next(iter(stream))
    stream.close()
    span = telemetry.only_span()
    assert attrs(span)["costguard.status"] == "incomplete"
    assert span.status.status_code is StatusCode.UNSET and "error.type" not in attrs(span)


def test_an_anthropic_stream_error_ends_the_span_as_an_error(
    guard: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """A stream that fails mid-way ends its span with ERROR status and the SDK error's type."""
    fake = FakeProvider()
    claude = guard.wrap(fake.anthropic())
    fake.fail("stream_error")
    with (
        pytest.raises(anthropic.APIStatusError),
        claude.messages.stream(model=CLAUDE, max_tokens=50, messages=HI) as stream,
    ):
        stream.get_final_message()
    span = telemetry.only_span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "APIStatusError"


@pytest.fixture
def uncached(tmp_path: Path, costguard_otel: OTel) -> Iterator[costguard.CostGuardClient]:
    """A guard without the exact cache: nothing assembles a stream's final answer."""
    g = costguard.CostGuardClient(ledger=tmp_path / "u.db", cache=None, otel=costguard_otel)
    yield g
    g.close()


def test_a_chat_stream_without_the_cache_has_its_id_and_each_choices_finish_reason(
    uncached: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """With cache=None, a streamed chat completion's span still has the completion's id and
    one finish reason per choice, as the chunks reported them."""
    client = uncached.wrap(FakeProvider().openai())
    one = list(client.chat.completions.create(model=GPT, messages=HI, stream=True))
    two = list(
        client.chat.completions.create(
            model=GPT, messages=HI, n=2, max_completion_tokens=3, stream=True
        )
    )
    first, second = (attrs(span) for span in telemetry.spans())
    assert first["gen_ai.response.id"] == one[0].id
    assert first["gen_ai.response.finish_reasons"] == ("stop",)
    assert second["gen_ai.response.id"] == two[0].id != one[0].id
    assert second["gen_ai.response.finish_reasons"] == ("length", "length")


def test_a_responses_stream_without_the_cache_has_its_id_and_status(
    uncached: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """With cache=None, a streamed Responses call's span has the response's id and its final
    status, or why it is incomplete, as the finish reason."""
    client = uncached.wrap(FakeProvider().openai())
    whole = list(client.responses.create(model=GPT, input="hi", stream=True))
    cut = list(client.responses.create(model=GPT, input="hi", max_output_tokens=3, stream=True))
    done, truncated = (attrs(span) for span in telemetry.spans())
    assert (whole[-1].type, cut[-1].type) == ("response.completed", "response.incomplete")
    assert done["gen_ai.response.id"] == whole[-1].response.id
    assert done["gen_ai.response.finish_reasons"] == ("completed",)
    assert truncated["gen_ai.response.id"] == cut[-1].response.id
    assert truncated["gen_ai.response.finish_reasons"] == ("max_output_tokens",)


def test_an_anthropic_stream_without_the_cache_has_its_id_and_stop_reason(
    uncached: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """With cache=None, messages.create(stream=True) and messages.stream(...), sync and async,
    each give a span with the message's id and its stop reason."""
    fake = FakeProvider()
    claude = uncached.wrap(fake.anthropic())
    aclaude = uncached.wrap(fake.async_anthropic())
    events = list(claude.messages.create(model=CLAUDE, max_tokens=400, messages=HI, stream=True))
    with claude.messages.stream(model=CLAUDE, max_tokens=2, messages=HI) as stream:
        helper = stream.get_final_message()

    async def main() -> Any:
        async with aclaude.messages.stream(model=CLAUDE, max_tokens=400, messages=HI) as stream:
            return await stream.get_final_message()

    later = asyncio.run(main())
    raw, cut, from_async = (attrs(span) for span in telemetry.spans())
    assert events[0].type == "message_start"
    assert raw["gen_ai.response.id"] == events[0].message.id
    assert raw["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert cut["gen_ai.response.id"] == helper.id
    assert cut["gen_ai.response.finish_reasons"] == ("max_tokens",) == (helper.stop_reason,)
    assert from_async["gen_ai.response.id"] == later.id
    assert from_async["gen_ai.response.finish_reasons"] == ("end_turn",)


def test_a_stream_closed_early_has_its_id_but_no_finish_reason(
    uncached: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """A stream closed before its end already told its id, so the span has it; no finish
    reason came, so the span has none."""
    client = uncached.wrap(FakeProvider().openai())
    stream = client.chat.completions.create(model=GPT, messages=HI, stream=True)
    first = next(iter(stream))
    stream.close()
    a = attrs(telemetry.only_span())
    assert a["costguard.status"] == "incomplete"
    assert a["gen_ai.response.id"] == first.id
    assert "gen_ai.response.finish_reasons" not in a


# -- cache, errors, retries --------------------------------------------------------------


def test_a_cache_hit_is_a_span_that_sent_no_tokens_and_saved_the_cost(
    guard: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """A repeated request is an exact-cache span costing 0 that saved the first call's cost;
    it has no token usage and adds nothing to the token histogram."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    client.chat.completions.create(model=GPT, messages=HI)
    client.chat.completions.create(model=GPT, messages=HI)
    assert len(fake.requests) == 1
    first, hit = (attrs(s) for s in telemetry.spans())
    assert hit["costguard.cache"] == "exact"
    assert hit["costguard.cost_usd"] == "0"
    assert hit["costguard.saved_usd"] == first["costguard.cost_usd"]
    assert not any(key.startswith("gen_ai.usage.") for key in hit)
    assert hit["gen_ai.response.id"] == first["gen_ai.response.id"]
    tokens = {
        p.attributes["gen_ai.token.type"]: p.count
        for p in telemetry.points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": 1, "output": 1}
    [saved] = telemetry.points("costguard.client.saved")
    assert saved.value == pytest.approx(float(first["costguard.cost_usd"]))
    assert saved.attributes["costguard.cache"] == "exact"
    caches = sorted(
        p.attributes["costguard.cache"]
        for p in telemetry.points("gen_ai.client.operation.duration")
    )
    assert caches == ["exact", "miss"]


def test_a_provider_error_is_an_error_span_without_the_providers_message(
    guard: costguard.CostGuardClient, telemetry: Telemetry
) -> None:
    """A 429 reaches the caller unchanged; its span has ERROR status, error.type naming the
    SDK's exception, and neither the message nor an exception event."""
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    fake.fail(429, message="slow down, SECRET-ECHO")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=GPT, messages=HI)
    span = telemetry.only_span()
    a = attrs(span)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RateLimitError"
    assert a["error.type"] == "RateLimitError" and a["costguard.status"] == "error"
    assert not any(key.startswith("gen_ai.usage.") for key in a)
    assert list(span.events) == []
    [duration] = telemetry.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "RateLimitError"
    assert telemetry.points("gen_ai.client.token.usage") == []


def test_retries_are_inside_one_span(tmp_path: Path, telemetry: Telemetry) -> None:
    """A call that succeeds on its third attempt is one span with costguard.attempts == 3."""
    fake = FakeProvider()
    retry = costguard.Retry(sleep=lambda s: None, jitter=lambda: 0.0)
    with costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=None, otel=telemetry.otel, retry=retry
    ) as guard:
        client = guard.wrap(fake.openai(max_retries=2))
        fake.fail(500, times=2)
        client.chat.completions.create(model=GPT, messages=HI)
    a = attrs(telemetry.only_span())
    assert (a["costguard.attempts"], a["costguard.status"]) == (3, "ok")
    assert len(fake.requests) == 3


# -- privacy -----------------------------------------------------------------------------


def test_no_prompt_answer_or_api_key_reaches_a_span_or_a_metric(
    tmp_path: Path, telemetry: Telemetry
) -> None:
    """Across chat, stream, responses, embeddings, Anthropic and an error, no attribute, span
    name, event or metric attribute carries prompt or answer text or any part of the key."""
    fake = FakeProvider()
    secrets = ("PROMPTSECRET", "SYSTEMSECRET", "ANSWERSECRET", "KEYSECRET", "qzqzqzqz")
    key = "sk-KEYSECRET-qzqzqzqz"
    messages: Any = [
        {"role": "system", "content": "SYSTEMSECRET rules"},
        {"role": "user", "content": "PROMPTSECRET question"},
    ]
    with costguard.CostGuardClient(
        ledger=tmp_path / "l.db", cache=costguard.ExactCache(tmp_path / "c"), otel=telemetry.otel
    ) as guard:
        client = guard.wrap(fake.openai(api_key=key))
        claude = guard.wrap(fake.anthropic(api_key=key))
        fake.reply("ANSWERSECRET reply", times=4)
        client.chat.completions.create(model=GPT, messages=messages, user="PROMPTSECRET-user")
        list(client.chat.completions.create(model=GPT, messages=messages[1:], stream=True))
        client.responses.create(model=GPT, input="PROMPTSECRET", instructions="SYSTEMSECRET")
        client.embeddings.create(model="text-embedding-3-small", input="PROMPTSECRET")
        claude.messages.create(
            model=CLAUDE, max_tokens=50, system="SYSTEMSECRET", messages=messages[1:]
        )
        fake.fail(401)
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="gpt-4o", messages=messages)
    seen: list[str] = []
    for span in telemetry.spans():
        seen.append(span.name)
        seen.extend(f"{k}={v}" for k, v in attrs(span).items())
        seen.extend(str(event.attributes) for event in span.events)
        seen.append(str(span.status.description))
    for name in (
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "costguard.client.cost",
    ):
        seen.extend(str(dict(p.attributes)) for p in telemetry.points(name))
    assert len(telemetry.spans()) == 6
    leaked = [text for text in seen if any(secret in text for secret in secrets)]
    assert leaked == []


# -- configuration and failures ----------------------------------------------------------


def test_otel_true_uses_the_global_providers_which_default_to_no_ops(tmp_path: Path) -> None:
    """otel=True needs no providers: with no global provider set, calls go through."""
    with costguard.CostGuardClient(ledger=tmp_path / "l.db", cache=None, otel=True) as guard:
        guard.wrap(FakeProvider().openai()).chat.completions.create(model=GPT, messages=HI)
        assert len(guard.ledger.records()) == 1


def test_otel_without_opentelemetry_installed_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking for otel without opentelemetry raises ConfigurationError naming the extra."""
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(costguard.ConfigurationError, match=r"pip install 'costguard\[otel\]'"):
        costguard.CostGuardClient(ledger=tmp_path / "l.db", cache=None, otel=True)


def test_importing_costguard_and_its_otel_module_does_not_load_opentelemetry() -> None:
    """opentelemetry loads only when a guard with otel= is built."""
    code = (
        "import sys, costguard, costguard._otel; "
        "print(any(m.split('.')[0] == 'opentelemetry' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class _BrokenSpan:
    """A span whose attributes cannot be set; it records whether it was ended."""

    ended = False

    def set_attributes(self, attributes: Any) -> None:
        raise RuntimeError("exporter bug")

    def end(self) -> None:
        self.ended = True

    def get_span_context(self) -> Any:
        from opentelemetry.trace import INVALID_SPAN_CONTEXT

        return INVALID_SPAN_CONTEXT

    def is_recording(self) -> bool:
        return False


class _BrokenTracer:
    def __init__(self, fail_at_start: bool) -> None:
        self.fail_at_start = fail_at_start
        self.spans: list[_BrokenSpan] = []

    def start_span(self, name: str, **kwargs: Any) -> _BrokenSpan:
        if self.fail_at_start:
            raise RuntimeError("tracer bug")
        self.spans.append(_BrokenSpan())
        return self.spans[-1]


class _BrokenProvider:
    def __init__(self, tracer: _BrokenTracer) -> None:
        self.tracer = tracer

    def get_tracer(self, *args: Any, **kwargs: Any) -> _BrokenTracer:
        return self.tracer


@pytest.mark.parametrize("fail_at_start", [True, False])
def test_a_failing_tracer_never_fails_the_call(
    tmp_path: Path, telemetry: Telemetry, caplog: pytest.LogCaptureFixture, fail_at_start: bool
) -> None:
    """When the tracer breaks, the call still returns and is recorded in the ledger, a started
    span is still ended, and one warning goes to the costguard logger."""
    tracer = _BrokenTracer(fail_at_start)
    broken: Any = _BrokenProvider(tracer)
    otel = OTel(tracer_provider=broken, meter_provider=telemetry.otel.meter_provider)
    with (
        caplog.at_level(logging.DEBUG, logger="costguard"),
        costguard.CostGuardClient(ledger=tmp_path / "l.db", cache=None, otel=otel) as guard,
    ):
        client = guard.wrap(FakeProvider().openai())
        for _ in range(2):
            answer = client.chat.completions.create(model=GPT, messages=HI)
            assert answer.choices[0].message.content
        assert len(guard.ledger.records()) == 2
    assert all(span.ended for span in tracer.spans) and len(tracer.spans) == (
        0 if fail_at_start else 2
    )
    warnings = [r for r in caplog.records if r.name == "costguard" and r.levelname == "WARNING"]
    assert len(warnings) == 1 and "OpenTelemetry" in warnings[0].getMessage()
