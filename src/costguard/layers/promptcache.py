"""Provider prompt caching: Anthropic ``cache_control`` breakpoints placed where they pay off,
and OpenAI's ``prompt_cache_key`` set from the scope.

Opt in with ``CostGuardClient(prompt_caching="auto")`` (or a :class:`PromptCaching`), or per
scope (``Scope.prompt_caching="auto"``); ``"off"`` in a scope turns it off inside a guard that
has it on. The layer sits after the exact cache and before budgets, so budgets reserve the
cache-write premium of the breakpoints it places.

Anthropic (``messages.create``, ``messages.stream``). The *stable prefix* of a request is its
tools, its system prompt and the turns before the last user message. Up to three breakpoints
are candidates, longest first: the end of those earlier turns, the end of the system prompt,
the end of the tools. A candidate is placed only when

- it comes after every breakpoint the caller placed (theirs are never moved or changed, and
  nothing is placed before or on them),
- the request then has at most 4 breakpoints, counting the caller's and a top-level
  ``cache_control`` (Anthropic's automatic caching, which uses one),
- its prefix, counted offline, reaches the model's minimum cacheable length
  (:func:`min_cacheable_tokens`), and
- the expected saving is positive (:func:`breakpoint_saving`)::

      saving = tokens * (expected_reads * (input - cache_read) - (cache_write - input)) / 1e6

  with the model's rates from the price table and ``cache_write`` the rate of the chosen TTL.
  So a 5-minute write (1.25x input, reads 0.1x) pays from 0.28 expected reads; a 1-hour write
  (2x input) only from 1.12, i.e. not at the default ``expected_reads=1``.

A TTL must also fit the caller's breakpoints: Anthropic wants 1-hour entries before 5-minute
ones, so after a 5-minute breakpoint of the caller's only 5-minute ones are placed, and before
a 1-hour top-level ``cache_control`` only 1-hour ones. Unpriced models get no breakpoints.

OpenAI (``chat.completions.create``, ``responses.create``). OpenAI caches prefixes of 1024+
tokens by itself; ``prompt_cache_key`` makes requests that share a prefix meet on the same
cache. When the caller set none, it becomes ``costguard:tenant:<tenant>`` (else
``costguard:feature:<feature>``), hashed when long or unusual, so it never carries a secret.
Nothing that changes the answer is touched.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final

from .._call import Call, Outcome
from .._chain import AsyncHandler, Handler
from .._errors import ConfigurationError, CostGuardWarning, InvalidRequestError
from .._scope import PROMPT_CACHING_MODES, Scope, check_prompt_caching
from .._tokens import count_tokens, counting_model
from ..pricing import PriceTable, Rates

__all__ = [
    "DEFAULT_MIN_CACHEABLE_TOKENS",
    "MAX_BREAKPOINTS",
    "MIN_CACHEABLE_TOKENS",
    "MODES",
    "TTLS",
    "PromptCacheLayer",
    "PromptCaching",
    "breakpoint_saving",
    "check_mode",
    "min_cacheable_tokens",
    "model_family",
    "prompt_cache_key",
]

MODES: Final = PROMPT_CACHING_MODES
"""What ``prompt_caching=`` may say, for a guard and for a scope."""

TTLS: Final = ("5m", "1h")
"""Anthropic cache lifetimes: ``{"type": "ephemeral", "ttl": "5m" | "1h"}``."""

MAX_BREAKPOINTS: Final = 4
"""Anthropic's limit of ``cache_control`` blocks per request (a top-level one counts)."""

MIN_CACHEABLE_TOKENS: Final[Mapping[str, int]] = MappingProxyType(
    {
        # Anthropic's prompt-caching guide, "Cache limitations" (as quoted in
        # anthropics/anthropic-sdk-python#1194, 2026-02). A user there measured Sonnet 4.6
        # caching only from 2048, and orq.ai's table says 2048; Anthropic's text, LiteLLM's
        # and other tables say 1024. A breakpoint under the real minimum costs nothing (the
        # request is simply not cached), so the documented value is kept.
        "claude-opus-4-6": 4096,
        "claude-opus-4-5": 4096,
        "claude-haiku-4-5": 4096,
        "claude-sonnet-4-6": 1024,
        "claude-sonnet-4-5": 1024,
        "claude-opus-4-1": 1024,
        "claude-opus-4": 1024,
        "claude-opus-4-0": 1024,
        "claude-sonnet-4": 1024,
        "claude-sonnet-4-0": 1024,
        "claude-3-7-sonnet": 1024,
        "claude-3-5-haiku": 2048,
        "claude-3-haiku": 2048,
        # Older models, from the same guide's earlier table (e.g. TrueFoundry's copy of it).
        "claude-3-5-sonnet": 1024,
        "claude-3-opus": 1024,
        # Later models, from LiteLLM's prompt-caching docs (2026-10) and model write-ups.
        # Opus 4.7: 4096 there and in two guides; one post says 2048: the higher is kept.
        "claude-opus-4-7": 4096,
        "claude-opus-4-8": 1024,
        "claude-sonnet-5": 1024,
        "claude-opus-5": 512,
        "claude-fable-5": 512,
        "claude-mythos-5": 512,
    }
)
"""The shortest prefix, in tokens, that Anthropic caches, by model family (see
:func:`model_family`). Shorter prefixes are processed uncached, without an error."""

DEFAULT_MIN_CACHEABLE_TOKENS: Final = 4096
"""For a Claude family not in the table: the highest minimum published for any model."""

_SNAPSHOT = re.compile(r"(?:-\d{8}|-\d{4}-\d{2}-\d{2})?(?:-v\d+(?::\d+)?)?(?:-latest)?$")

# Content blocks that accept cache_control (anthropic.types.ContentBlockParam minus thinking
# and redacted_thinking; tests pin this against the installed SDK).
_CACHEABLE_BLOCKS: Final = frozenset(
    {
        "bash_code_execution_tool_result",
        "code_execution_tool_result",
        "container_upload",
        "document",
        "image",
        "search_result",
        "server_tool_use",
        "text",
        "text_editor_code_execution_tool_result",
        "tool_result",
        "tool_search_tool_result",
        "tool_use",
        "web_fetch_tool_result",
        "web_search_tool_result",
    }
)
_ANTHROPIC_OPERATIONS: Final = frozenset({"messages.create", "messages.stream"})
_OPENAI_OPERATIONS: Final = frozenset({"chat.completions.create", "responses.create"})
_MILLION: Final = Decimal(1_000_000)

# prompt_cache_key: readable when short and plain, else hashed. Anything that looks like a
# secret is hashed too, so a key never carries one.
_KEY_LIMIT: Final = 64
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SECRETISH = re.compile(r"(?i)(?:^|[^a-z0-9])(?:sk|rk|pk)[-_]|key|secret|token|passw")


def model_family(model: str) -> str:
    """``model`` without provider prefixes and snapshot suffixes, lower-cased:
    ``"anthropic.claude-3-5-sonnet-20241022-v2:0"`` and ``"claude-3-5-sonnet@20241022"``
    become ``"claude-3-5-sonnet"``."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    if "anthropic." in name:  # Bedrock ids, with or without a region prefix
        name = name.split("anthropic.", 1)[1]
    name = name.split("@", 1)[0]  # Vertex AI snapshots
    return _SNAPSHOT.sub("", name)


def min_cacheable_tokens(model: str) -> int:
    """The shortest prefix Anthropic caches for ``model`` (:data:`MIN_CACHEABLE_TOKENS`,
    else :data:`DEFAULT_MIN_CACHEABLE_TOKENS`)."""
    return MIN_CACHEABLE_TOKENS.get(model_family(model), DEFAULT_MIN_CACHEABLE_TOKENS)


def breakpoint_saving(tokens: int, rates: Rates, ttl: str, expected_reads: Decimal) -> Decimal:
    """Expected USD saved by caching a ``tokens``-long prefix once at ``ttl`` and reading it
    ``expected_reads`` times within the TTL, instead of sending it uncached each time:
    ``tokens * (expected_reads * (input - cache_read) - (cache_write - input)) / 1e6``.
    Negative when the write premium outweighs the expected reads."""
    write = rates.cache_write_1h if ttl == "1h" else rates.cache_write_5m
    per_token = expected_reads * (rates.input - rates.cache_read) - (write - rates.input)
    return tokens * per_token / _MILLION


@dataclass(frozen=True, slots=True)
class PromptCaching:
    """How costguard uses the providers' prompt caches.

    :param mode: ``"auto"`` (place breakpoints, set cache keys) or ``"off"`` (a scope may
        still opt in with ``prompt_caching="auto"``, with this policy's other settings).
    :param ttl: Anthropic cache lifetime for the breakpoints costguard places, ``"5m"`` or
        ``"1h"`` (1-hour writes cost 2x input instead of 1.25x).
    :param expected_reads: how many later requests you expect to read a cached prefix
        within the TTL (a non-negative number; fractions are fine, e.g. ``0.5`` when every
        other prefix is reused). A breakpoint is placed only if
        ``expected_reads * (input - cache_read) > cache_write - input``.
    """

    mode: str = "auto"
    ttl: str = "5m"
    expected_reads: Decimal | int | float | str = 1

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise ConfigurationError(
                f"prompt_caching mode must be 'auto' or 'off', got {self.mode!r}"
            )
        if not isinstance(self.ttl, str) or self.ttl not in TTLS:
            raise ConfigurationError(f"prompt_caching ttl must be '5m' or '1h', got {self.ttl!r}")
        object.__setattr__(self, "expected_reads", _reads(self.expected_reads))

    @property
    def reads(self) -> Decimal:
        """``expected_reads`` as the checked ``Decimal`` it is stored as."""
        value = self.expected_reads
        assert isinstance(value, Decimal)  # __post_init__ stored it so
        return value


def _reads(value: object) -> Decimal:
    problem = f"prompt_caching expected_reads must be a non-negative number, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise ConfigurationError(problem)
    try:
        reads = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise ConfigurationError(problem) from None
    if not reads.is_finite() or reads < 0:
        raise ConfigurationError(problem)
    return reads


check_mode = check_prompt_caching
"""Raise ConfigurationError unless ``value`` is a scope's ``prompt_caching`` setting
(``"auto"``, ``"off"`` or ``None``); for ``guard.scope(prompt_caching=...)``."""


_DEFAULT = PromptCaching()  # what a scope's "auto" means in a guard without prompt_caching=


def prompt_cache_key(scope: Scope) -> str | None:
    """OpenAI's ``prompt_cache_key`` for calls made in ``scope``: from its tenant, else its
    feature; ``None`` when it has neither."""
    if scope.tenant:
        kind, name = "tenant", scope.tenant
    elif scope.feature:
        kind, name = "feature", scope.feature
    else:
        return None
    key = f"costguard:{kind}:{name}"
    if len(key) <= _KEY_LIMIT and _PLAIN.fullmatch(name) and not _SECRETISH.search(name):
        return key
    digest = hashlib.sha256(f"{kind}\0{name}".encode()).hexdigest()[:40]
    return f"costguard:{kind}#{digest}"


class PromptCacheLayer:
    """Applies a :class:`PromptCaching` policy (and scopes' opt-ins and opt-outs) to calls.

    Always in the chain; when neither the guard nor the scope turned prompt caching on, a call
    passes after two attribute checks.
    """

    __slots__ = ("_on", "_opt_in", "policy", "prices")

    def __init__(self, policy: PromptCaching | None, prices: PriceTable) -> None:
        if policy is not None and not isinstance(policy, PromptCaching):
            raise ConfigurationError(
                f"prompt_caching must be 'auto', 'off' or a PromptCaching, got {policy!r}"
            )
        self.policy = policy
        self.prices = prices
        self._on = policy if policy is not None and policy.mode == "auto" else None
        self._opt_in = _DEFAULT if policy is None else self._on or replace(policy, mode="auto")

    def handle(self, call: Call, call_next: Handler) -> Outcome:
        if self._on is None and call.scope.prompt_caching is None:
            return call_next(call)
        return call_next(self.prepare(call))

    async def ahandle(self, call: Call, call_next: AsyncHandler) -> Outcome:
        if self._on is None and call.scope.prompt_caching is None:
            return await call_next(call)
        return await call_next(self.prepare(call))

    def policy_for(self, scope: Scope) -> PromptCaching | None:
        """The policy in force for a call made in ``scope``, or ``None`` when it is off."""
        mode = scope.prompt_caching
        if mode is None:
            return self._on
        check_mode(mode)
        return None if mode == "off" else self._opt_in

    def prepare(self, call: Call) -> Call:
        """``call`` as it should be sent: with breakpoints or a cache key where they help,
        else ``call`` itself. Never changes the caller's own dicts and lists."""
        policy = self.policy_for(call.scope)
        if policy is None:
            return call
        name = call.operation.name
        try:
            if name in _ANTHROPIC_OPERATIONS:
                params = _with_breakpoints(call.params, call.model, policy, self.prices)
            elif name in _OPENAI_OPERATIONS:
                params = _with_cache_key(call.params, call.scope)
            else:
                return call
        except Exception as exc:  # an optimisation never breaks a call
            warnings.warn(
                f"costguard could not plan prompt caching for {call.model!r}: {exc!r}",
                CostGuardWarning,
                stacklevel=4,
            )
            return call
        return call if params is None else call.replace(params=params)


# -- OpenAI ------------------------------------------------------------------------------


def _with_cache_key(params: Mapping[str, Any], scope: Scope) -> dict[str, Any] | None:
    if "prompt_cache_key" in params:
        return None
    extra = params.get("extra_body")
    if isinstance(extra, Mapping) and "prompt_cache_key" in extra:
        return None
    key = prompt_cache_key(scope)
    return None if key is None else {**params, "prompt_cache_key": key}


# -- Anthropic ---------------------------------------------------------------------------

# A place in the prompt, in Anthropic's order: (0, tool) / (1, system block) /
# (2, message, content block); block -1 is a string system prompt or message content.
Spot = tuple[int, int, int]
_NOWHERE: Final[Spot] = (-1, -1, -1)


def _items(value: object) -> list[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return []


def _ttl_of(mark: Mapping[str, Any]) -> str:
    return "1h" if mark.get("ttl") == "1h" else "5m"


def _field(obj: object, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _block_marks(block: object) -> list[Mapping[str, Any]]:
    """The cache_control marks on a content block (and inside a tool_result's content)."""
    if not isinstance(block, Mapping):
        return []
    marks = [block["cache_control"]] if isinstance(block.get("cache_control"), Mapping) else []
    if block.get("type") == "tool_result":
        marks += [m for inner in _items(block.get("content")) for m in _block_marks(inner)]
    return marks


def _user_marks(tools: list[Any], system: object, messages: list[Any]) -> list[tuple[Spot, str]]:
    """Where the caller placed breakpoints, and their TTLs, in prompt order."""
    found: list[tuple[Spot, str]] = []
    for i, tool in enumerate(tools):
        found += [((0, i, 0), _ttl_of(m)) for m in _block_marks(tool)]
    for j, block in enumerate(_items(system)):
        found += [((1, j, 0), _ttl_of(m)) for m in _block_marks(block)]
    for m, message in enumerate(messages):
        for k, block in enumerate(_items(_field(message, "content"))):
            found += [((2, m, k), _ttl_of(mark)) for mark in _block_marks(block)]
    return found


def _can_carry(block: object, kinds: frozenset[str] = _CACHEABLE_BLOCKS) -> bool:
    if not isinstance(block, Mapping) or block.get("type") not in kinds:
        return False
    return block.get("type") != "text" or bool(block.get("text"))


def _last_spot_in(index: int, content: object, section: int) -> Spot | None:
    if isinstance(content, str):
        return (section, index, -1) if content else None
    blocks = _items(content)
    for k in range(len(blocks) - 1, -1, -1):
        if _can_carry(blocks[k]):
            return (section, index, k)
    return None


def _candidates(tools: list[Any], system: object, messages: list[Any]) -> list[Spot]:
    """Where breakpoints may go, longest prefix first: the end of the turns before the last
    user message, the end of the system prompt, the end of the tools."""
    found: list[Spot] = []
    last_user = max(
        (m for m, message in enumerate(messages) if _field(message, "role") == "user"),
        default=len(messages),
    )
    for m in range(last_user - 1, -1, -1):
        message = messages[m]
        if not isinstance(message, Mapping):  # an SDK object: leave it as it is
            continue
        spot = _last_spot_in(m, message.get("content"), 2)
        if spot is not None:
            found.append(spot)
            break
    if isinstance(system, str):
        spot = _last_spot_in(0, system, 1)
    else:
        blocks = _items(system)
        spot = next(
            ((1, j, 0) for j in range(len(blocks) - 1, -1, -1) if _can_carry(blocks[j])), None
        )
    if spot is not None:
        found.append(spot)
    for i in range(len(tools) - 1, -1, -1):
        tool = tools[i]
        if isinstance(tool, Mapping) and tool.get("defer_loading") is not True:
            found.append((0, i, 0))
            break
    return found


def _ttl_for(wanted: str, user_ttls: list[str], automatic: str | None) -> str | None:
    """A TTL for breakpoints placed after the caller's and before a top-level one: Anthropic
    wants 1-hour entries before 5-minute ones."""
    allowed = set(TTLS)
    if "5m" in user_ttls:
        allowed.discard("1h")
    if automatic == "1h":
        allowed.discard("5m")
    if wanted in allowed:
        return wanted
    return next((ttl for ttl in TTLS if ttl in allowed), None)


def _counted_tools(tools: list[Any]) -> list[Mapping[str, Any]] | None:
    """Tools as counted: a tool is counted as its JSON, where a mark is not prompt text."""
    counted: list[Mapping[str, Any]] = [
        {k: v for k, v in tool.items() if k != "cache_control"}
        for tool in tools
        if isinstance(tool, Mapping)
    ]
    return counted or None


def _counted(message: object) -> Mapping[str, Any]:
    if isinstance(message, Mapping):
        return message
    return {"role": _field(message, "role") or "user", "content": _field(message, "content")}


def _prefix_tokens(
    model: str, spot: Spot, tools: list[Any], system: object, messages: list[Any]
) -> int:
    """Prompt tokens up to and including ``spot``, counted offline (a Claude estimate)."""
    section, index, block = spot
    counted_system: Any = None
    prefix: list[Mapping[str, Any]] = []
    if section == 0:
        counted_tools = tools[: index + 1]
    else:
        counted_tools = tools
        if section == 1:
            counted_system = system if isinstance(system, str) else _items(system)[: index + 1]
        else:
            counted_system = system if isinstance(system, str) else _items(system) or None
            prefix = [_counted(m) for m in messages[:index]]
            last = _counted(messages[index])
            if block >= 0:
                last = {**last, "content": _items(last.get("content"))[: block + 1]}
            prefix.append(last)
    return count_tokens(
        counting_model(model, "anthropic"),
        prefix,
        tools=_counted_tools(counted_tools),
        system=counted_system or None,
    )


def _marked(block: Any, mark: Mapping[str, str]) -> Any:
    if isinstance(block, str):
        return [{"type": "text", "text": block, "cache_control": dict(mark)}]
    return {**block, "cache_control": dict(mark)}


def _placed(
    params: Mapping[str, Any], spots: list[Spot], mark: Mapping[str, str]
) -> dict[str, Any]:
    """New params with ``mark`` on each spot; everything else is shared with ``params``."""
    new = dict(params)
    for section, index, block in spots:
        if section == 0:
            tools = list(new["tools"])
            tools[index] = _marked(tools[index], mark)
            new["tools"] = tools
        elif section == 1:
            system = new["system"]
            if isinstance(system, str):
                new["system"] = _marked(system, mark)
            else:
                blocks = list(system)
                blocks[index] = _marked(blocks[index], mark)
                new["system"] = blocks
        else:
            messages = list(new["messages"])
            message = messages[index]
            content = message["content"]
            if block < 0:
                content = _marked(content, mark)
            else:
                content = list(content)
                content[block] = _marked(content[block], mark)
            messages[index] = {**message, "content": content}
            new["messages"] = messages
    return new


def _with_breakpoints(
    params: Mapping[str, Any], model: str | None, policy: PromptCaching, prices: PriceTable
) -> dict[str, Any] | None:
    """``params`` with breakpoints where they pay off, or ``None`` to send them as they are."""
    if model is None:
        return None
    price = prices.get(model)
    if price is None:
        return None
    tools = _items(params.get("tools"))
    system = params.get("system")
    messages = _items(params.get("messages"))
    marks = _user_marks(tools, system, messages)
    automatic = params.get("cache_control")
    auto_ttl = _ttl_of(automatic) if isinstance(automatic, Mapping) else None
    free = MAX_BREAKPOINTS - len(marks) - (auto_ttl is not None)
    if free <= 0:
        return None
    after = max((spot for spot, _ in marks), default=_NOWHERE)
    spots = [spot for spot in _candidates(tools, system, messages) if spot > after][:free]
    ttl = _ttl_for(policy.ttl, [t for _, t in marks], auto_ttl)
    if not spots or ttl is None:
        return None
    reads = policy.reads
    if breakpoint_saving(1, price.base, ttl, reads) <= 0 and not price.long_context:
        return None  # the sign does not depend on the prefix: skip the counting
    minimum = min_cacheable_tokens(model)
    try:
        rates = price.base
        if price.long_context:
            total = count_tokens(
                counting_model(model, "anthropic"),
                [_counted(m) for m in messages],
                tools=_counted_tools(tools),
                system=system if isinstance(system, str | list) and system else None,
            )
            rates = price.rates_for(prompt_tokens=total)
        chosen: list[Spot] = []
        for spot in spots:  # longest first: once one is too short, so are the rest
            tokens = _prefix_tokens(model, spot, tools, system, messages)
            if tokens < minimum:
                break
            if breakpoint_saving(tokens, rates, ttl, reads) > 0:
                chosen.append(spot)
    except InvalidRequestError:  # messages the counter cannot read: send them as they are
        return None
    if not chosen:
        return None
    return _placed(params, chosen, {"type": "ephemeral", "ttl": ttl})
