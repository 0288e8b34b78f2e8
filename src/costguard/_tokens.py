"""Offline token counting for OpenAI and Anthropic requests.

OpenAI models are counted exactly with tiktoken, using BPE rank files shipped inside the
package (``costguard/pricing/encodings/*.tiktoken``). They are read lazily, once per encoding,
checked against a pinned sha256, and turned into a ``tiktoken.Encoding`` directly: nothing is
downloaded, ever (``tiktoken.get_encoding`` would fetch the files from the internet, so it is
never called). Importing this module reads no file and does not import tiktoken.

Chat messages follow the OpenAI cookbook "How to count tokens with tiktoken": 3 tokens per
message, 1 more per ``name``, every string value encoded, 3 to prime the reply; tools follow
its ``num_tokens_for_tools`` rules. The cookbook calls these counts estimates that may drift
between model snapshots; they matched the API for gpt-3.5-turbo, gpt-4, gpt-4o and gpt-4o-mini
when it was published.

Anthropic does not publish Claude's tokenizer, so ``claude-*`` counts are ESTIMATES (see
``count_tokens``); ``count_tokens_via_provider`` asks Anthropic for the exact number.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

from ._errors import InvalidRequestError, PricingError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    import tiktoken
    from anthropic import Anthropic, AsyncAnthropic

__all__ = [
    "ANTHROPIC_ESTIMATE_FACTOR",
    "ANTHROPIC_TOOLS_OVERHEAD",
    "acount_tokens_via_provider",
    "count_text_tokens",
    "count_tokens",
    "count_tokens_via_provider",
    "counting_model",
    "encoding_for_model",
]

EncodingName = Literal["cl100k_base", "o200k_base"]


# sha256 of each rank file: the ``expected_hash`` tiktoken itself pins in
# tiktoken_ext/openai_public.py (tiktoken 0.14.0).
_SHA256: Final[Mapping[EncodingName, str]] = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

# Split patterns and special tokens, as in tiktoken_ext/openai_public.py. They are defined
# there inside the functions that download the rank files, so they cannot be imported without
# a download; tests/test_tokens.py pins these copies to the installed tiktoken's.
_PAT_STR: Final[Mapping[EncodingName, str]] = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
        r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}
_SPECIAL_TOKENS: Final[Mapping[EncodingName, Mapping[str, int]]] = {
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}

# Model-name prefixes, checked in order (the first match wins, so "gpt-4o" precedes "gpt-4").
_O200K_PREFIXES: Final = (
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "o1",
    "o3",
    "o4",
    "chatgpt-4o",
    "gpt-oss",
    "codex",
)
_CL100K_PREFIXES: Final = (
    "gpt-4",
    "gpt-3.5",
    "gpt-35",  # Azure deployment spelling
    "text-embedding-3-",
    "text-embedding-ada-002",
)
# Other names that look like OpenAI models; they get o200k_base, the current encoding.
_OPENAI_PREFIXES: Final = ("gpt-", "chatgpt-", "text-embedding-", "omni-", "computer-use-")

# Chat framing, from the cookbook (identical for every model it covers).
_TOKENS_PER_MESSAGE: Final = 3
_TOKENS_PER_NAME: Final = 1
_REPLY_PRIMING: Final = 3

# The cookbook's num_tokens_for_tools constants: gpt-4o / gpt-4o-mini (o200k_base) and
# gpt-4 / gpt-3.5-turbo (cl100k_base). Newer o200k models reuse the gpt-4o values.
_FUNC_INIT: Final[Mapping[EncodingName, int]] = {"o200k_base": 7, "cl100k_base": 10}
_PROP_INIT: Final = 3
_PROP_KEY: Final = 3
_ENUM_INIT: Final = -3
_ENUM_ITEM: Final = 3
_FUNC_END: Final = 12

ANTHROPIC_ESTIMATE_FACTOR: Final = 1.25
"""Claude tokens per cl100k_base token assumed by the offline Claude estimate.

Claude's tokenizer splits text into more tokens than OpenAI's: third-party measurements put
it 20-30% above gpt-4o on the same prompts, and tiktoken-based proxies 20-50% under
Anthropic's own ``count_tokens``. 1.25 sits in that range; erring high is the safe side for
budgets.
"""

ANTHROPIC_TOOLS_OVERHEAD: Final = 530
"""Tokens added once when a Claude request has tools: Anthropic's tool-use system prompt.

Anthropic publishes 159-530 tokens depending on model and ``tool_choice``; the estimate takes
the largest published value.
"""

_ANTHROPIC_TOKENS_PER_MESSAGE: Final = 3
_ANTHROPIC_REQUEST_OVERHEAD: Final = (
    4  # a user message "a" measures 8 in count_tokens (3rd-party probe)
)


# -- encodings ---------------------------------------------------------------------------


def _encodings_dir() -> Traversable:
    """Where the packaged rank files live (tests point this at a tampered copy)."""
    from importlib import resources  # deferred, like every import only the loader needs

    return resources.files("costguard") / "pricing" / "encodings"


@functools.cache
def _load_encoding(name: EncodingName) -> tiktoken.Encoding:
    """Read, verify and build one packaged encoding (once per process)."""
    import base64
    import hashlib

    import tiktoken  # ~20 ms to import, so only on first use

    file_name = f"{name}.tiktoken"
    try:
        data = (_encodings_dir() / file_name).read_bytes()
    except OSError as exc:
        raise PricingError(f"cannot read packaged encoding file {file_name}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != _SHA256[name]:
        raise PricingError(
            f"packaged encoding file {file_name} is corrupt: sha256 {digest}, "
            f"expected {_SHA256[name]}; reinstall costguard"
        )
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name=name,
        pat_str=_PAT_STR[name],
        mergeable_ranks=ranks,
        special_tokens=dict(_SPECIAL_TOKENS[name]),
    )


@functools.lru_cache(maxsize=1024)
def _resolve(model: str) -> tuple[Literal["openai", "anthropic"], EncodingName]:
    """Map a model name to its provider family and the encoding used to count it."""
    name = model.strip().lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" -> "gpt-4o"
    if name.startswith("ft:"):  # "ft:gpt-4o-mini-2024-07-18:org::id" -> base model
        name = name[3:].split(":", 1)[0]
    if "claude" in name:  # also Bedrock ids such as "anthropic.claude-..."
        return "anthropic", "cl100k_base"
    if name.startswith(_O200K_PREFIXES):
        return "openai", "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "openai", "cl100k_base"
    if name.startswith(_OPENAI_PREFIXES):
        return "openai", "o200k_base"
    raise InvalidRequestError(f"cannot count tokens for unknown model {model!r}", field="model")


def _family(model: object) -> tuple[Literal["openai", "anthropic"], EncodingName]:
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(f"model must be a non-empty string, got {model!r}", field="model")
    return _resolve(model)


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """The tiktoken encoding costguard counts ``model`` with, loaded offline.

    o200k_base for gpt-4o*, gpt-4.1*, gpt-4.5*, gpt-5*, o1*, o3*, o4*, chatgpt-4o*, gpt-oss*,
    codex* and other OpenAI-looking names; cl100k_base for gpt-4 / gpt-4-turbo, gpt-3.5*,
    text-embedding-3-* and text-embedding-ada-002; cl100k_base also underlies the Claude
    estimate. Provider prefixes ("openai/gpt-4o") and dated snapshots are accepted.

    Raises ``InvalidRequestError`` (field ``"model"``) for an empty or unknown model and
    ``PricingError`` if the packaged encoding file fails its checksum.
    """
    return _load_encoding(_family(model)[1])


# -- counting ----------------------------------------------------------------------------


def count_text_tokens(model: str, text: str) -> int:
    """Tokens in plain ``text`` for ``model``: exact for OpenAI, an estimate for Claude.

    Special-token markers such as ``"<|endoftext|>"`` are counted as ordinary text.
    """
    family, encoding = _family(model)
    n = _length(_load_encoding(encoding).encode_ordinary, encoding, text)
    return math.ceil(n * ANTHROPIC_ESTIMATE_FACTOR) if family == "anthropic" else n


#: Strings of this many characters have their token counts remembered: system prompts, tools
#: and documents recur from call to call, and encoding them costs about 150 ns per token,
#: where a lookup costs a hash of the text (nothing for the same str object, whose hash Python
#: keeps). The memo keys on the text itself, so a count is never served for other text.
_MEMO_CHARS = range(256, 32_768 + 1)

_MEMO_BYTES = 8 * 1024 * 1024
"""How much text the memo holds at most (``sys.getsizeof`` of its strings): a count bound
alone would let 1,024 strings of 32k characters hold 32 to 128 MiB."""


class _Memo:
    """Token counts of strings, the least recently used dropped first once the strings held
    pass ``limit`` bytes. Safe to share between threads."""

    __slots__ = ("_counts", "_held", "_limit", "_lock")

    def __init__(self, limit: int) -> None:
        self._counts: OrderedDict[tuple[EncodingName, str], int] = OrderedDict()
        self._held = 0  # bytes of the strings in _counts
        self._limit = limit
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Bytes of text held now."""
        return self._held

    def length(self, encode: Callable[[str], list[int]], encoding: EncodingName, text: str) -> int:
        """``len(encode(text))``, remembered."""
        key = (encoding, text)
        counts = self._counts
        with self._lock:
            count = counts.get(key)
            if count is not None:
                counts.move_to_end(key)
                return count
        count = len(encode(text))  # outside the lock: other threads' lookups go on
        size = sys.getsizeof(text)
        if size > self._limit:
            return count
        with self._lock:
            if key not in counts:
                counts[key] = count
                self._held += size
                while self._held > self._limit:
                    (_, dropped), _ = counts.popitem(last=False)
                    self._held -= sys.getsizeof(dropped)
        return count


_MEMO = _Memo(_MEMO_BYTES)


def _length(encode: Callable[[str], list[int]], encoding: EncodingName, text: str) -> int:
    """``len(encode(text))``, remembered for strings of a length in :data:`_MEMO_CHARS`."""
    if len(text) in _MEMO_CHARS:
        return _MEMO.length(encode, encoding, text)
    return len(encode(text))


def count_tokens(
    model: str,
    messages_or_text: str | Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    system: str | Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """Prompt tokens that ``model`` would be billed for, counted offline.

    A ``str`` is counted as plain text (``count_text_tokens``). A list of chat messages is
    counted with the OpenAI cookbook rules: 3 tokens per message, +1 per ``name``, every
    string value encoded (role, content, name, ...; nested values such as ``tool_calls`` by
    their string leaves), +3 to prime the reply. Content given as a list of parts counts its
    text parts (``{"type": "text", "text": ...}``, Anthropic ``tool_use`` / ``tool_result``
    blocks by their text); images, audio and files are SKIPPED, since their cost depends on
    data this function does not fetch or decode, so counts for such messages are a lower
    bound. ``system`` is counted as one more leading system message.

    ``tools`` (Chat Completions ``{"type": "function", "function": {...}}`` or the flat
    Responses form) follow the cookbook's ``num_tokens_for_tools``: per function 7 tokens
    (o200k models) or 10 (cl100k models), its ``name:description`` line, 3 for a non-empty
    property list, per property 3 plus its ``name:type:description`` line, an enum -3 plus
    3 and its text per item, and 12 once at the end. Nested object properties and non-function
    tools are not counted.

    Claude models (``claude-*``): Anthropic's tokenizer is not public, so the result is an
    ESTIMATE, not an exact count: ``ceil(ANTHROPIC_ESTIMATE_FACTOR * t) + 3 * messages + 4``,
    where ``t`` is the cl100k_base count of all text gathered as above (system prompt and
    tool definitions, serialised as JSON, included), plus ``ANTHROPIC_TOOLS_OVERHEAD`` when
    tools are given. Use ``count_tokens_via_provider`` for Anthropic's exact figure.

    Raises ``InvalidRequestError`` for an empty or unknown model (field ``"model"``),
    messages that are not a list of mappings (``"messages"`` / ``"messages[i]"``), a message
    without ``role`` (``"messages[i].role"``) or a tool that is not a mapping (``"tools[i]"``).
    """
    family, encoding_name = _family(model)
    if isinstance(messages_or_text, str):
        return count_text_tokens(model, messages_or_text)
    messages = _validated_messages(messages_or_text)
    if system is not None:
        messages = [{"role": "system", "content": system}, *messages]
    tool_list = _validated_tools(tools)
    encode = _load_encoding(encoding_name).encode_ordinary

    if family == "anthropic":
        text_tokens = sum(
            _length(encode, encoding_name, s) for m in messages for s in _message_strings(m)
        )
        text_tokens += sum(
            _length(encode, encoding_name, json.dumps(t, ensure_ascii=False)) for t in tool_list
        )
        return (
            math.ceil(text_tokens * ANTHROPIC_ESTIMATE_FACTOR)
            + _ANTHROPIC_TOKENS_PER_MESSAGE * len(messages)
            + _ANTHROPIC_REQUEST_OVERHEAD
            + (ANTHROPIC_TOOLS_OVERHEAD if tool_list else 0)
        )

    total = _REPLY_PRIMING
    for message in messages:
        total += _TOKENS_PER_MESSAGE
        if "name" in message:
            total += _TOKENS_PER_NAME
        for s in _message_strings(message):
            total += _length(encode, encoding_name, s)
    if tool_list:
        total += _openai_tools_tokens(tool_list, encode, _FUNC_INIT[encoding_name])
    return total


def _validated_messages(messages: object) -> list[Mapping[str, Any]]:
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        raise InvalidRequestError(
            "messages must be a string or a list of message mappings", field="messages"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidRequestError(
                f"messages[{i}] must be a mapping, got {type(message).__name__}",
                field=f"messages[{i}]",
            )
        if "role" not in message:
            raise InvalidRequestError(f"messages[{i}] has no role", field=f"messages[{i}].role")
    return list(messages)


def _validated_tools(tools: object) -> list[Mapping[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, Sequence) or isinstance(tools, str | bytes):
        raise InvalidRequestError("tools must be a list of tool mappings", field="tools")
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise InvalidRequestError(
                f"tools[{i}] must be a mapping, got {type(tool).__name__}", field=f"tools[{i}]"
            )
    return list(tools)


def _message_strings(message: Mapping[str, Any]) -> Iterator[str]:
    """Every string of one message that the model reads (keys are not counted)."""
    for key, value in message.items():
        if key == "content":
            yield from _content_strings(value)
        else:
            yield from _leaves(value)


def _content_strings(content: object) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, Sequence) and not isinstance(content, bytes):
        for part in content:
            if isinstance(part, str):
                yield part
            elif isinstance(part, Mapping):
                yield from _part_strings(part)


def _part_strings(part: Mapping[str, Any]) -> Iterator[str]:
    text = part.get("text")
    if isinstance(text, str):  # OpenAI text / input_text / output_text, Anthropic text
        yield text
    elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
        yield part["refusal"]
    elif part.get("type") == "tool_use":  # Anthropic
        yield str(part.get("name", ""))
        yield json.dumps(part.get("input", {}), ensure_ascii=False)
    elif part.get("type") == "tool_result":  # Anthropic
        yield from _content_strings(part.get("content"))
    # images, audio, files, documents: skipped (see count_tokens)


def _leaves(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, Sequence) and not isinstance(value, bytes):
        for item in value:
            yield from _leaves(item)


def _openai_tools_tokens(
    tools: Sequence[Mapping[str, Any]], encode: Callable[[str], list[int]], func_init: int
) -> int:
    total = 0
    for tool in tools:
        function = tool.get("function", tool)
        if not isinstance(function, Mapping) or tool.get("type", "function") != "function":
            continue
        total += func_init
        total += len(
            encode(f"{function.get('name', '')}:{_strip_dot(function.get('description'))}")
        )
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
        if not isinstance(properties, Mapping) or not properties:
            continue
        total += _PROP_INIT
        for key, prop in properties.items():
            total += _PROP_KEY
            prop = prop if isinstance(prop, Mapping) else {}
            enum = prop.get("enum")
            if isinstance(enum, Sequence) and not isinstance(enum, str):
                total += _ENUM_INIT
                for item in enum:
                    total += _ENUM_ITEM + len(encode(str(item)))
            p_type = prop.get("type", "")
            if isinstance(p_type, list):
                p_type = " | ".join(map(str, p_type))
            total += len(encode(f"{key}:{p_type}:{_strip_dot(prop.get('description'))}"))
    return total + _FUNC_END


def _strip_dot(description: object) -> str:
    text = description if isinstance(description, str) else ""
    return text[:-1] if text.endswith(".") else text


# -- exact Anthropic counts through the SDK ------------------------------------------------


def _provider_kwargs(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    system: str | Sequence[Mapping[str, Any]] | None,
    tools: Sequence[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(f"model must be a non-empty string, got {model!r}", field="model")
    kwargs: dict[str, Any] = {"model": model, "messages": _validated_messages(messages)}
    if system is not None:
        kwargs["system"] = system
    if tools is not None:
        kwargs["tools"] = _validated_tools(tools)
    return kwargs


def count_tokens_via_provider(
    client: Anthropic,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    system: str | Sequence[Mapping[str, Any]] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """Exact Claude prompt tokens from Anthropic's ``messages.count_tokens`` endpoint.

    Opt-in: this makes one network request through ``client`` (an ``anthropic.Anthropic``),
    which Anthropic does not bill but does rate-limit. ``model`` is sent as given.
    """
    result = client.messages.count_tokens(**_provider_kwargs(model, messages, system, tools))
    return result.input_tokens


async def acount_tokens_via_provider(
    client: AsyncAnthropic,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    system: str | Sequence[Mapping[str, Any]] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """``count_tokens_via_provider`` for an ``anthropic.AsyncAnthropic`` client."""
    kwargs = _provider_kwargs(model, messages, system, tools)
    result = await client.messages.count_tokens(**kwargs)
    return result.input_tokens


def counting_model(model: str, provider: str) -> str:
    """``model``, or for a name whose tokenizer costguard cannot tell (a custom or fine-tuned
    name), a current model of the same provider that counts the same way."""
    try:
        encoding_for_model(model)
    except InvalidRequestError:
        return "claude-sonnet-4-6" if provider == "anthropic" else "gpt-4o"
    return model
