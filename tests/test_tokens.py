"""Offline token counting: packaged encodings, cookbook rules, Claude estimates, exact counts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public as openai_public  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

import costguard
from costguard import _tokens
from costguard._errors import InvalidRequestError, PricingError
from costguard._tokens import (
    ANTHROPIC_ESTIMATE_FACTOR,
    ANTHROPIC_TOOLS_OVERHEAD,
    acount_tokens_via_provider,
    count_text_tokens,
    count_tokens,
    count_tokens_via_provider,
    encoding_for_model,
)

PACKAGED = Path(costguard.__file__).parent / "pricing" / "encodings"
# The reference copies the packaged files were taken from; tiktoken's own expected_hash
# check below makes any genuine copy equivalent, so fall back to the packaged one elsewhere.
SHARED = Path("/work/shared/reference/tiktoken")
REFERENCE_DIR = SHARED if SHARED.is_dir() else PACKAGED
NAMES: tuple[_tokens.EncodingName, ...] = ("cl100k_base", "o200k_base")


class _NoNetwork(OSError):
    pass


def _refuse(*args: object, **kwargs: object) -> Any:
    raise _NoNetwork("network access attempted during a test")


@pytest.fixture(autouse=True, scope="module")
def no_network() -> Iterator[None]:
    """Every test here runs with outbound connections and tiktoken's downloader disabled.

    Sockets can still be created (asyncio's event loop needs a local socketpair), but none
    can connect, resolve a name or be opened through ``create_connection``.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _refuse)
        mp.setattr(socket.socket, "connect_ex", _refuse)
        mp.setattr(socket, "create_connection", _refuse)
        mp.setattr(socket, "getaddrinfo", _refuse)
        mp.setattr(tiktoken, "get_encoding", _refuse)
        yield


@pytest.fixture(scope="session")
def reference() -> dict[str, tiktoken.Encoding]:
    """Encodings built by tiktoken's own definitions, fed the local rank files."""
    expected: dict[str, str] = {}

    def local_ranks(url: str, expected_hash: str) -> dict[bytes, int]:
        file_name = url.rsplit("/", 1)[-1]
        expected[file_name] = expected_hash
        return tiktoken.load.load_tiktoken_bpe(
            str(REFERENCE_DIR / file_name), expected_hash=expected_hash
        )

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken: "" disables its cache directory
        mp.setattr(openai_public, "load_tiktoken_bpe", local_ranks)
        encodings: dict[str, tiktoken.Encoding] = {
            name: tiktoken.Encoding(**getattr(openai_public, name)()) for name in NAMES
        }
    assert set(expected) == {f"{name}.tiktoken" for name in NAMES}
    return encodings


def cookbook_count(enc: tiktoken.Encoding, messages: list[dict[str, Any]]) -> int:
    """The cookbook's num_tokens_from_messages, with list content counted by its text parts."""
    total = 0
    for message in messages:
        total += 3
        for key, value in message.items():
            if isinstance(value, list):
                total += sum(len(enc.encode(p["text"])) for p in value if p["type"] == "text")
            else:
                total += len(enc.encode(value))
            if key == "name":
                total += 1
    return total + 3


COOKBOOK_MESSAGES: list[dict[str, Any]] = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the "
        "client deliverable.",
    },
]

COOKBOOK_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]

COOKBOOK_TOOL_MESSAGES: list[dict[str, Any]] = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]

VARIED_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Answer briefly. Use metric units."},
    {"role": "user", "name": "alice", "content": "How far is Paris from Berlin? 🚄"},
    {"role": "assistant", "content": "About 878 km by road."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "And by train?"},
            {"type": "text", "text": "Answer in German, bitte."},
        ],
    },
]


def test_packaged_encoding_files_have_tiktokens_pinned_sha256() -> None:
    """The packaged rank files hash to the values pinned in costguard and in tiktoken."""
    for name in NAMES:
        digest = hashlib.sha256((PACKAGED / f"{name}.tiktoken").read_bytes()).hexdigest()
        assert digest == _tokens._SHA256[name]


def test_loaded_encodings_equal_tiktokens_own_definitions(
    reference: dict[str, tiktoken.Encoding],
) -> None:
    """Ranks, split pattern and special tokens equal what the installed tiktoken defines."""
    for name in NAMES:
        ours, theirs = _tokens._load_encoding(name), reference[name]
        assert ours.name == theirs.name
        assert ours._pat_str == theirs._pat_str
        assert ours._special_tokens == theirs._special_tokens
        assert ours._mergeable_ranks == theirs._mergeable_ranks


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("openai/gpt-4o-mini", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-5-mini-2025-08-07", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o3", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-oss-120b", "o200k_base"),
        ("codex-mini-latest", "o200k_base"),
        ("gpt-7-preview", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-turbo-2024-04-09", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("openai/gpt-3.5-turbo-0125", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("ft:gpt-3.5-turbo-0125:acme::abc123", "cl100k_base"),
        ("claude-sonnet-4-5", "cl100k_base"),
    ],
)
def test_models_map_to_their_encoding(model: str, expected: str) -> None:
    """Each model family, prefixed or dated, is counted with its documented encoding."""
    assert encoding_for_model(model).name == expected


def test_each_encoding_is_built_once() -> None:
    """Models sharing an encoding share one cached Encoding object."""
    assert encoding_for_model("gpt-4o") is encoding_for_model("o3-mini")


@pytest.mark.parametrize("model", ["", "   ", "llama-3-70b", "mistral-large", None, 42])
def test_empty_or_unknown_model_is_rejected(model: Any) -> None:
    """An empty, non-string or unrecognised model raises InvalidRequestError on "model"."""
    with pytest.raises(InvalidRequestError) as info:
        count_tokens(model, "hello")
    assert info.value.field == "model"


@pytest.mark.parametrize(("model", "name"), [("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")])
def test_text_counts_equal_tiktoken(
    reference: dict[str, tiktoken.Encoding], model: str, name: str
) -> None:
    """A plain string counts as its tiktoken encoded length."""
    text = "tiktoken is great! お誕生日おめでとう\n\n  def f(x): return x**2"
    expected = len(reference[name].encode(text))
    assert count_tokens(model, text) == expected
    assert count_text_tokens(model, text) == expected


def test_special_token_markers_count_as_text(reference: dict[str, tiktoken.Encoding]) -> None:
    """Text containing "<|endoftext|>" is counted as ordinary text instead of raising."""
    text = "a <|endoftext|> b"
    expected = len(reference["o200k_base"].encode(text, disallowed_special=()))
    assert count_text_tokens("gpt-4o", text) == expected


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
    ],
)
def test_chat_counts_follow_the_cookbook(
    reference: dict[str, tiktoken.Encoding], model: str, name: str
) -> None:
    """Messages with names and multi-part content count as the cookbook rules say."""
    assert count_tokens(model, VARIED_MESSAGES) == cookbook_count(reference[name], VARIED_MESSAGES)


@pytest.mark.parametrize(
    ("model", "published"),
    [
        ("gpt-3.5-turbo", 129),
        ("gpt-4-0613", 129),
        ("gpt-4", 129),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
    ],
)
def test_cookbook_example_conversation_gives_published_counts(model: str, published: int) -> None:
    """The cookbook's example conversation counts what the cookbook reports from the API."""
    assert count_tokens(model, COOKBOOK_MESSAGES) == published


@pytest.mark.parametrize(
    ("model", "published"),
    [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)],
)
def test_cookbook_tools_example_gives_published_counts(model: str, published: int) -> None:
    """The cookbook's weather-tool example counts what the cookbook reports from the API."""
    assert count_tokens(model, COOKBOOK_TOOL_MESSAGES, tools=COOKBOOK_TOOLS) == published


def test_flat_responses_style_tools_count_like_chat_tools() -> None:
    """A Responses-API tool ({"type": "function", "name": ...}) counts like its nested twin."""
    flat = [{"type": "function", **COOKBOOK_TOOLS[0]["function"]}]
    assert count_tokens("gpt-4o", COOKBOOK_TOOL_MESSAGES, tools=flat) == count_tokens(
        "gpt-4o", COOKBOOK_TOOL_MESSAGES, tools=COOKBOOK_TOOLS
    )


def test_empty_tool_list_adds_nothing() -> None:
    """tools=[] counts the same as no tools (the cookbook's end marker needs a function)."""
    assert count_tokens("gpt-4o", COOKBOOK_TOOL_MESSAGES, tools=[]) == count_tokens(
        "gpt-4o", COOKBOOK_TOOL_MESSAGES
    )


def test_image_parts_are_skipped() -> None:
    """An image part adds no tokens: only text parts of list content are counted."""
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 4000}}
    text_only = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}]}]
    with_image = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}]
    assert count_tokens("gpt-4o", with_image) == count_tokens("gpt-4o", text_only)


def test_system_keyword_counts_as_a_leading_system_message() -> None:
    """system="..." counts the same as a first {"role": "system"} message."""
    user = [{"role": "user", "content": "Hi"}]
    assert count_tokens("gpt-4o", user, system="Be terse.") == count_tokens(
        "gpt-4o", [{"role": "system", "content": "Be terse."}, *user]
    )


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ({"role": "user", "content": "hi"}, "messages"),
        (b"hi", "messages"),
        ([{"role": "user", "content": "hi"}, "oops"], "messages[1]"),
        ([{"role": "user", "content": "hi"}, {"content": "no role"}], "messages[1].role"),
    ],
)
def test_malformed_messages_are_rejected(messages: Any, field: str) -> None:
    """Messages that are not a list of mappings with a role name the offending field."""
    with pytest.raises(InvalidRequestError) as info:
        count_tokens("gpt-4o", messages)
    assert info.value.field == field


def test_a_tool_that_is_not_a_mapping_is_rejected() -> None:
    """A tool given as something other than a mapping names tools[i]."""
    with pytest.raises(InvalidRequestError) as info:
        bad_tools: list[Any] = [COOKBOOK_TOOLS[0], "get_time"]
        count_tokens("gpt-4o", COOKBOOK_TOOL_MESSAGES, tools=bad_tools)
    assert info.value.field == "tools[1]"


def test_claude_text_estimate_scales_the_cl100k_count(
    reference: dict[str, tiktoken.Encoding],
) -> None:
    """A Claude text estimate is the cl100k count times the documented factor, rounded up."""
    text = "Claude's tokenizer is not public, so this is an estimate."
    expected = math.ceil(len(reference["cl100k_base"].encode(text)) * ANTHROPIC_ESTIMATE_FACTOR)
    assert count_tokens("claude-sonnet-4-5", text) == expected
    assert count_text_tokens("anthropic/claude-haiku-4-5", text) == expected


def test_claude_chat_estimate_follows_the_documented_rule(
    reference: dict[str, tiktoken.Encoding],
) -> None:
    """A Claude chat estimate is ceil(factor * text tokens) + 3 per message + 4."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Summarise this."},
        {"role": "assistant", "content": [{"type": "text", "text": "Sure, send it."}]},
    ]
    enc = reference["cl100k_base"]
    strings = ["Be terse.", "system", "user", "Summarise this.", "assistant", "Sure, send it."]
    text_tokens = sum(len(enc.encode(s)) for s in strings)
    expected = math.ceil(text_tokens * ANTHROPIC_ESTIMATE_FACTOR) + 3 * 3 + 4
    assert count_tokens("claude-opus-4-1", messages, system="Be terse.") == expected


def test_claude_tools_add_the_tool_prompt_and_their_definitions() -> None:
    """Tools on a Claude request add the tool-use system prompt plus their own text."""
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    tool = {
        "name": "get_weather",
        "description": "Get the weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    without = count_tokens("claude-sonnet-4-5", messages)
    with_tool = count_tokens("claude-sonnet-4-5", messages, tools=[tool])
    assert with_tool - without > ANTHROPIC_TOOLS_OVERHEAD


def test_a_tampered_encoding_file_raises_pricing_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rank file whose sha256 no longer matches raises PricingError naming the file."""
    shutil.copy(PACKAGED / "cl100k_base.tiktoken", tmp_path)
    with (tmp_path / "cl100k_base.tiktoken").open("r+b") as f:
        f.write(b"Jw")  # rank 0 was "IQ==" ("!"); now it decodes to something else
    monkeypatch.setattr(_tokens, "_encodings_dir", lambda: tmp_path)
    with pytest.raises(PricingError, match=r"cl100k_base\.tiktoken"):
        _tokens._load_encoding.__wrapped__("cl100k_base")  # uncached: leaves the cache alone


def test_a_missing_encoding_file_raises_pricing_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A packaged rank file that cannot be read raises PricingError naming the file."""
    monkeypatch.setattr(_tokens, "_encodings_dir", lambda: tmp_path)
    with pytest.raises(PricingError, match=r"o200k_base\.tiktoken"):
        _tokens._load_encoding.__wrapped__("o200k_base")


def test_sockets_are_disabled_in_this_module() -> None:
    """The no-network fixture is active, so every count here was computed offline."""
    with socket.socket() as sock, pytest.raises(_NoNetwork):
        sock.connect(("127.0.0.1", 9))
    with pytest.raises(_NoNetwork):
        socket.create_connection(("api.openai.com", 443))


_LAZY_PROBE = textwrap.dedent(
    """
    import json, socket, sys

    opened = []
    sys.addaudithook(
        lambda event, args: opened.append(str(args[0]))
        if event == "open" and str(args[0]).endswith(".tiktoken") else None
    )
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")
    socket.socket = socket.create_connection = socket.getaddrinfo = refuse

    import costguard
    import costguard._tokens as tokens
    after_import = {"opened": list(opened), "tiktoken": "tiktoken" in sys.modules}
    count = tokens.count_tokens("gpt-4o", [{"role": "user", "content": "hello"}])
    print(json.dumps({"after_import": after_import, "opened": opened, "count": count}))
    """
)


def test_import_reads_no_encoding_until_first_use() -> None:
    """Importing costguard opens no rank file and no tiktoken; the first count opens one."""
    out = subprocess.run(
        [sys.executable, "-c", _LAZY_PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TIKTOKEN_CACHE_DIR": "/nonexistent"},
    )
    result = json.loads(out.stdout)
    assert result["after_import"] == {"opened": [], "tiktoken": False}
    assert [Path(p).name for p in result["opened"]] == ["o200k_base.tiktoken"]
    assert result["count"] == 3 + 1 + 1 + 3  # framing + "user" + "hello" + reply priming


def _anthropic_transport(seen: list[httpx2.Request]) -> httpx2.MockTransport:
    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"input_tokens": 42})

    return httpx2.MockTransport(handler)


def test_provider_count_asks_anthropic_and_returns_its_number() -> None:
    """count_tokens_via_provider posts the request to messages/count_tokens and returns it."""
    seen: list[httpx2.Request] = []
    client = anthropic.Anthropic(
        api_key="test",
        max_retries=0,
        http_client=httpx2.Client(transport=_anthropic_transport(seen)),
    )
    tool = {"name": "t", "input_schema": {"type": "object"}}
    messages = [{"role": "user", "content": "hi"}]
    n = count_tokens_via_provider(
        client, "claude-sonnet-4-5", messages, system="Be terse.", tools=[tool]
    )
    assert n == 42
    assert [r.url.path for r in seen] == ["/v1/messages/count_tokens"]
    assert json.loads(seen[0].content) == {
        "model": "claude-sonnet-4-5",
        "messages": messages,
        "system": "Be terse.",
        "tools": [tool],
    }


def test_async_provider_count_asks_anthropic_and_returns_its_number() -> None:
    """acount_tokens_via_provider does the same through AsyncAnthropic, omitting unset keys."""
    seen: list[httpx2.Request] = []

    async def run() -> int:
        async with httpx2.AsyncClient(transport=_anthropic_transport(seen)) as http:
            client = anthropic.AsyncAnthropic(api_key="test", max_retries=0, http_client=http)
            return await acount_tokens_via_provider(
                client, "claude-haiku-4-5", [{"role": "user", "content": "hi"}]
            )

    assert asyncio.run(run()) == 42
    assert json.loads(seen[0].content) == {
        "model": "claude-haiku-4-5",
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_provider_count_validates_before_sending() -> None:
    """A message without a role is rejected before any request is made."""
    seen: list[httpx2.Request] = []
    client = anthropic.Anthropic(
        api_key="test",
        max_retries=0,
        http_client=httpx2.Client(transport=_anthropic_transport(seen)),
    )
    with pytest.raises(InvalidRequestError) as info:
        count_tokens_via_provider(client, "claude-sonnet-4-5", [{"content": "hi"}])
    assert info.value.field == "messages[0].role"
    assert seen == []


MODELS = st.sampled_from(["gpt-4o", "gpt-4", "gpt-3.5-turbo", "o3-mini", "claude-sonnet-4-5"])
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=80)},
    optional={"name": st.from_regex(r"[a-z_]{1,12}", fullmatch=True)},
)


@given(model=MODELS, text=st.text(max_size=200))
def test_text_counts_are_non_negative_and_deterministic(model: str, text: str) -> None:
    """Any text counts to the same non-negative number every time."""
    first = count_tokens(model, text)
    assert first >= 0
    assert count_tokens(model, text) == first == count_text_tokens(model, text)


@given(model=MODELS, messages=st.lists(MESSAGE, max_size=5), extra=MESSAGE)
def test_a_longer_conversation_never_counts_fewer_tokens(
    model: str, messages: list[dict[str, str]], extra: dict[str, str]
) -> None:
    """Appending a message adds at least the per-message framing."""
    assert count_tokens(model, [*messages, extra]) >= count_tokens(model, messages) + 3


@given(st.text(min_size=200, max_size=2000), st.text(max_size=50))
def test_remembered_counts_equal_fresh_counts(text: str, suffix: str) -> None:
    """Counting the same long text twice, or a slightly different one, matches tiktoken."""
    enc = _tokens._load_encoding("o200k_base")
    for s in (text, text, text + suffix, text + suffix):
        assert costguard.count_tokens("gpt-4o", s) == len(enc.encode_ordinary(s))
