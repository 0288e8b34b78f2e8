"""Provider usage reports become one disjoint ``Usage``, whatever the provider's convention."""

from __future__ import annotations

from typing import Any

import anthropic.types
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types import CompletionUsage, CreateEmbeddingResponse
from openai.types.responses import ResponseUsage

from costguard._normalise import (
    usage_from_anthropic,
    usage_from_openai_chat,
    usage_from_openai_embeddings,
    usage_from_openai_responses,
)
from costguard._usage import Usage
from costguard.pricing import PriceTable, compute_cost

counts = st.integers(min_value=0, max_value=10**7)


def test_openai_chat_prompt_tokens_include_cached_and_written_tokens() -> None:
    """Chat: uncached input = prompt - cached - cache writes; writes are short-lived (30m)."""
    raw = {
        "prompt_tokens": 1000,
        "completion_tokens": 300,
        "total_tokens": 1300,
        "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 200},
    }
    expected = Usage(
        input_tokens=300,
        cache_read_tokens=600,
        cache_write_5m_tokens=100,
        output_tokens=300,
        reasoning_tokens=200,
    )
    assert usage_from_openai_chat(raw) == expected
    assert usage_from_openai_chat(CompletionUsage.model_validate(raw)) == expected


def test_openai_responses_usage_splits_cache_writes_by_lifetime() -> None:
    """Responses: input includes cached and written tokens; 12h writes go to the 1h class."""
    raw = {
        "input_tokens": 1000,
        "input_tokens_details": {
            "cached_tokens": 500,
            "cache_write_tokens": 300,
            "cache_write_tokens_details": {"ttl_30m_tokens": 100, "ttl_12h_tokens": 200},
        },
        "output_tokens": 50,
        "output_tokens_details": {"reasoning_tokens": 40},
        "total_tokens": 1050,
    }
    expected = Usage(200, 500, 100, 200, output_tokens=50, reasoning_tokens=40)
    assert usage_from_openai_responses(raw) == expected
    assert usage_from_openai_responses(ResponseUsage.model_validate(raw)) == expected


def test_openai_responses_writes_without_a_lifetime_split_are_short_lived() -> None:
    """Responses without cache_write_tokens_details: every write is in the short-lived class."""
    raw = {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 60},
        "output_tokens": 1,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 101,
    }
    assert usage_from_openai_responses(raw) == Usage(40, 0, 60, 0, output_tokens=1)


def test_openai_embeddings_usage_is_all_input() -> None:
    """Embeddings report only prompt tokens, all billed as input."""
    response = CreateEmbeddingResponse.model_validate(
        {
            "data": [],
            "model": "m",
            "object": "list",
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        }
    )
    assert usage_from_openai_embeddings(response.usage) == Usage(input_tokens=8)
    assert usage_from_openai_embeddings({"prompt_tokens": 8}) == Usage(input_tokens=8)


def test_anthropic_input_tokens_exclude_cache_reads_and_writes() -> None:
    """Anthropic: input, cache reads and 5m/1h writes are already disjoint; thinking is output."""
    raw = {
        "input_tokens": 10,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 700,
        "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 400},
        "output_tokens": 90,
        "output_tokens_details": {"thinking_tokens": 60},
    }
    expected = Usage(10, 2000, 300, 400, output_tokens=90, reasoning_tokens=60)
    assert usage_from_anthropic(raw) == expected
    assert usage_from_anthropic(anthropic.types.Usage.model_validate(raw)) == expected


def test_anthropic_cache_writes_without_a_breakdown_are_five_minute_writes() -> None:
    """Anthropic usage with only cache_creation_input_tokens bills them all as 5m writes."""
    raw = {"input_tokens": 5, "cache_creation_input_tokens": 700, "output_tokens": 1}
    assert usage_from_anthropic(raw) == Usage(5, 0, 700, 0, output_tokens=1)


@pytest.mark.parametrize(
    "normalise",
    [
        usage_from_openai_chat,
        usage_from_openai_responses,
        usage_from_openai_embeddings,
        usage_from_anthropic,
    ],
)
@pytest.mark.parametrize("usage", [None, {}, {"prompt_tokens": None, "input_tokens": None}])
def test_missing_or_null_fields_count_as_zero(normalise: Any, usage: Any) -> None:
    """A missing usage, missing fields or null fields give zero counts rather than an error."""
    assert normalise(usage) == Usage()


def test_nonsense_counts_are_treated_as_zero_and_parts_never_exceed_the_whole() -> None:
    """Negative, non-integer or inconsistent counts never produce a negative token class."""
    raw = {
        "prompt_tokens": 10,
        "completion_tokens": -4,
        "prompt_tokens_details": {"cached_tokens": 50},
    }
    assert usage_from_openai_chat(raw) == Usage(input_tokens=0, cache_read_tokens=50)
    assert usage_from_anthropic({"input_tokens": "12", "output_tokens": True}) == Usage()


@given(uncached=counts, cached=counts, written=counts, output=counts, reasoning=counts)
def test_chat_usage_and_its_sdk_object_agree_and_keep_every_prompt_token(
    uncached: int, cached: int, written: int, output: int, reasoning: int
) -> None:
    """The dict and the SDK object normalise alike, and no prompt token is lost or doubled."""
    raw = {
        "prompt_tokens": uncached + cached + written,
        "completion_tokens": output,
        "total_tokens": uncached + cached + written + output,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "completion_tokens_details": {"reasoning_tokens": min(reasoning, output)},
    }
    usage = usage_from_openai_chat(raw)
    assert usage == usage_from_openai_chat(CompletionUsage.model_validate(raw))
    assert usage.prompt_tokens == raw["prompt_tokens"]
    assert usage.total_tokens == raw["total_tokens"]


@given(
    model=st.sampled_from(["gpt-5.4", "gpt-6-sol", "claude-opus-4-7", "claude-haiku-5-5"]),
    uncached=counts,
    cached=counts,
    written=counts,
    output=counts,
)
def test_openai_and_anthropic_reports_of_the_same_tokens_cost_the_same(
    model: str, uncached: int, cached: int, written: int, output: int
) -> None:
    """OpenAI (inclusive) and Anthropic (exclusive) reports of one call price identically."""
    price = PriceTable.default().require(model)
    chat = usage_from_openai_chat(
        {
            "prompt_tokens": uncached + cached + written,
            "completion_tokens": output,
            "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        }
    )
    responses = usage_from_openai_responses(
        {
            "input_tokens": uncached + cached + written,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
            "output_tokens": output,
        }
    )
    claude = usage_from_anthropic(
        {
            "input_tokens": uncached,
            "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": written,
            "output_tokens": output,
        }
    )
    assert chat == responses == claude
    assert compute_cost(price, chat) == compute_cost(price, claude)
