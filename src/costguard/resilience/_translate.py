"""Pure translations between OpenAI chat completions and Anthropic messages, for fallback.

Four functions, no I/O, no clock:

- :func:`chat_to_messages`: ``chat.completions.create`` kwargs -> ``messages.create`` kwargs.
- :func:`message_to_chat`: an ``anthropic.types.Message`` -> an ``openai`` ``ChatCompletion``.
- :func:`messages_to_chat`: ``messages.create`` kwargs -> ``chat.completions.create`` kwargs.
- :func:`chat_to_message`: a ``ChatCompletion`` -> an ``anthropic.types.Message``.

A request either translates faithfully or raises :class:`Untranslatable` naming the reason;
nothing that changes what the model is asked to do is dropped silently. Parameters that are
only hints about *how* the request is served (sampling, determinism, caching, tiers, stored
completions, an image part's ``detail``) are dropped, and listed in ``DROPPED_*`` below.
anthropic 2.x has no sampling parameters, so OpenAI ``temperature`` and ``top_p`` are
dropped, not mapped. Any parameter not known here is refused, so a new SDK argument never
vanishes unnoticed.

Usage is carried over exactly: Anthropic ``input_tokens`` excludes cache reads and writes,
OpenAI ``prompt_tokens`` includes them (``prompt_tokens_details.cached_tokens`` = reads,
``cache_write_tokens`` = writes). The translated answer names the model that served it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import anthropic.types
import openai.types.chat

__all__ = [
    "DROPPED_ANTHROPIC_PARAMS",
    "DROPPED_OPENAI_PARAMS",
    "Untranslatable",
    "chat_to_message",
    "chat_to_messages",
    "message_to_chat",
    "messages_to_chat",
]

DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires ``max_tokens``; used when the OpenAI request has none and no default."""

DROPPED_OPENAI_PARAMS = frozenset(
    {
        "seed",  # a best-effort determinism hint
        "store",  # OpenAI stored completions
        "metadata",  # tags for OpenAI stored completions, not for the model
        "service_tier",  # serving tier; Anthropic's tiers differ
        "prompt_cache_key",  # caching hint
        "prompt_cache_retention",  # caching hint
        "prompt_cache_options",  # caching hint
        "verbosity",  # only when "medium" (the default); other values are refused
        # anthropic 2.x's messages.create has no sampling parameters at all (no temperature,
        # top_p or top_k): the model samples as it always does.
        "temperature",
        "top_p",
    }
)
"""OpenAI kwargs that ``chat_to_messages`` drops: serving hints, not instructions."""

DROPPED_ANTHROPIC_PARAMS = frozenset(
    {
        "cache_control",  # prompt-caching breakpoints (OpenAI caches automatically)
        "service_tier",  # serving tier
        "speed",  # serving speed tier
    }
)
"""Anthropic kwargs that ``messages_to_chat`` drops: serving hints, not instructions.

``cache_control`` is also dropped from system blocks, content blocks and tools.
"""

_PASS_THROUGH = ("timeout",)
_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
_STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


class Untranslatable(Exception):
    """The request or answer has no faithful equivalent on the other provider.

    ``str(e)`` is the reason, e.g. ``"n=2 has no Anthropic equivalent"``.
    """


def _refuse(reason: str) -> Untranslatable:
    return Untranslatable(reason)


# -- OpenAI request -> Anthropic request ----------------------------------------------------


def chat_to_messages(
    params: Mapping[str, Any], *, model: str, default_max_tokens: int | None = None
) -> dict[str, Any]:
    """Translate ``chat.completions.create`` kwargs into ``messages.create`` kwargs for ``model``.

    ``default_max_tokens`` (the target model's output limit) fills Anthropic's required
    ``max_tokens`` when the request sets neither ``max_completion_tokens`` nor
    ``max_tokens``; without it, 4096. Raises :class:`Untranslatable`.
    """
    params = {k: v for k, v in params.items() if v is not None}
    out: dict[str, Any] = {"model": model}
    handled = {"model", "messages", *DROPPED_OPENAI_PARAMS}

    _refuse_openai_only(params)
    handled |= {
        "n", "logprobs", "top_logprobs", "logit_bias", "presence_penalty",
        "frequency_penalty", "response_format", "modalities", "stream", "stream_options",
        "parallel_tool_calls", "user", "safety_identifier",
    }  # fmt: skip

    system, messages = _openai_messages_to_anthropic(params.get("messages", ()))
    if system is not None:
        out["system"] = system
    out["messages"] = messages

    handled |= {"max_completion_tokens", "max_tokens"}
    max_tokens = params.get("max_completion_tokens", params.get("max_tokens"))
    out["max_tokens"] = (
        max_tokens
        if max_tokens is not None
        else default_max_tokens
        if default_max_tokens is not None
        else DEFAULT_MAX_TOKENS
    )

    for key in _PASS_THROUGH:
        if key in params:
            out[key] = params[key]
    handled |= set(_PASS_THROUGH)

    handled.add("stop")
    stop = params.get("stop")
    if stop is not None:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)

    handled |= {"tools", "tool_choice"}
    if "tools" in params:
        out["tools"] = [_openai_tool_to_anthropic(t) for t in params["tools"]]
    tool_choice = _openai_tool_choice_to_anthropic(
        params.get("tool_choice"), params.get("parallel_tool_calls")
    )
    if tool_choice is not None:
        out["tool_choice"] = tool_choice

    user = params.get("user", params.get("safety_identifier"))
    if user is not None:
        out["metadata"] = {"user_id": user}

    unknown = sorted(set(params) - handled)
    if unknown:
        raise _refuse(f"{unknown[0]} has no Anthropic equivalent")
    return out


def _refuse_openai_only(params: Mapping[str, Any]) -> None:
    n = params.get("n", 1)
    if n != 1:
        raise _refuse(f"n={n} has no Anthropic equivalent")
    if params.get("logprobs") or params.get("top_logprobs"):
        raise _refuse("logprobs/top_logprobs have no Anthropic equivalent")
    if params.get("logit_bias"):
        raise _refuse("logit_bias has no Anthropic equivalent")
    for key in ("presence_penalty", "frequency_penalty"):
        if params.get(key):
            raise _refuse(f"{key} has no Anthropic equivalent")
    fmt = params.get("response_format")
    if fmt is not None and fmt.get("type") != "text":
        raise _refuse(
            f"response_format {fmt.get('type')} has no direct Anthropic equivalent here "
            "(Anthropic's structured output is configured and validated differently)"
        )
    modalities = params.get("modalities")
    if modalities is not None and list(modalities) != ["text"]:
        raise _refuse(f"modalities={list(modalities)} has no Anthropic equivalent")
    if params.get("stream"):
        raise _refuse("stream=True: streamed answers are not translated")
    if params.get("stream_options") and not params.get("stream"):
        raise _refuse("stream_options without stream=True")
    if params.get("verbosity", "medium") != "medium":
        raise _refuse(f"verbosity={params['verbosity']!r} has no Anthropic equivalent")


def _openai_messages_to_anthropic(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    system_blocks: list[dict[str, Any]] = []
    system_text: str | None = None
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if message.get("name") is not None:
            raise _refuse("a message name has no Anthropic equivalent")
        if role in ("system", "developer"):
            if turns:
                raise _refuse(
                    f"a {role} message after the conversation started has no Anthropic "
                    "equivalent (Anthropic's system prompt comes first)"
                )
            content = message.get("content")
            if isinstance(content, str) and not system_blocks and system_text is None:
                system_text = content
                continue
            if system_text is not None:
                system_blocks.append({"type": "text", "text": system_text})
                system_text = None
            system_blocks.extend(_openai_text_parts(content, role))
        elif role == "user":
            _append(turns, "user", _openai_user_content(message.get("content")))
        elif role == "assistant":
            _append(turns, "assistant", _openai_assistant_content(message))
        elif role == "tool":
            _append(turns, "user", [_openai_tool_result(message)])
        else:
            raise _refuse(f"role {role!r} has no Anthropic equivalent")
    system: str | list[dict[str, Any]] | None = system_text
    if system_blocks:
        system = system_blocks
    return system, turns


def _append(turns: list[dict[str, Any]], role: str, content: str | list[dict[str, Any]]) -> None:
    """Add a turn, merging it into the previous one of the same role (Anthropic alternates)."""
    if turns and turns[-1]["role"] == role:
        previous = turns[-1]["content"]
        if isinstance(previous, str):
            previous = [{"type": "text", "text": previous}]
        added = [{"type": "text", "text": content}] if isinstance(content, str) else content
        turns[-1]["content"] = [*previous, *added]
    else:
        turns.append({"role": role, "content": content})


def _openai_text_parts(content: Any, role: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for part in content:
        if part.get("type") != "text":
            raise _refuse(f"{part.get('type')} content in a {role} message is not translated")
        blocks.append({"type": "text", "text": part["text"]})
    return blocks


def _openai_user_content(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            # The image's "detail" (a resolution/cost hint) is dropped.
            blocks.append(_image_url_to_block(part["image_url"]["url"]))
        else:
            raise _refuse(f"{kind} content has no Anthropic equivalent here")
    return blocks


def _image_url_to_block(url: str) -> dict[str, Any]:
    data_url = _DATA_URL.match(url)
    if data_url:
        source = {
            "type": "base64",
            "media_type": data_url["media"],
            "data": data_url["data"],
        }
    elif url.startswith(("http://", "https://")):
        source = {"type": "url", "url": url}
    else:
        raise _refuse("an image URL that is neither base64 data nor http(s) is not translated")
    return {"type": "image", "source": source}


def _openai_assistant_content(message: Mapping[str, Any]) -> str | list[dict[str, Any]]:
    if message.get("audio") is not None:
        raise _refuse("assistant audio has no Anthropic equivalent")
    if message.get("function_call") is not None:
        raise _refuse("legacy function_call messages are not translated; use tool_calls")
    content = message.get("content")
    tool_calls = message.get("tool_calls") or []
    if isinstance(content, str) and not tool_calls:
        return content
    blocks: list[dict[str, Any]] = []
    if content is not None:
        blocks.extend(b for b in _openai_text_parts(content, "assistant") if b["text"])
    for call in tool_calls:
        if call.get("type", "function") != "function":
            raise _refuse(f"{call.get('type')} tool calls have no Anthropic equivalent")
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": call["function"]["name"],
                "input": _parse_arguments(call["function"]["arguments"]),
            }
        )
    return blocks


def _parse_arguments(arguments: str) -> dict[str, Any]:
    try:
        parsed = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError as e:
        raise _refuse(f"tool call arguments are not valid JSON: {e}") from None
    if not isinstance(parsed, dict):
        raise _refuse("tool call arguments are not a JSON object")
    return parsed


def _openai_tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message["tool_call_id"]}
    block["content"] = content if isinstance(content, str) else _openai_text_parts(content, "tool")
    return block


def _openai_tool_to_anthropic(tool: Mapping[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise _refuse(f"{tool.get('type')} tools have no Anthropic equivalent")
    function = tool["function"]
    out: dict[str, Any] = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description") is not None:
        out["description"] = function["description"]
    if function.get("strict") is not None:
        out["strict"] = function["strict"]
    return out


def _openai_tool_choice_to_anthropic(choice: Any, parallel: bool | None) -> dict[str, Any] | None:
    if choice is None:
        out: dict[str, Any] | None = None
    elif choice in ("auto", "required", "none"):
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise _refuse(f"tool_choice {choice!r} has no Anthropic equivalent")
    if parallel is False:
        if out is None:
            out = {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


# -- Anthropic answer -> OpenAI answer ------------------------------------------------------


def message_to_chat(
    message: Any, *, requested_model: str, created: int = 0
) -> openai.types.chat.ChatCompletion:
    """Translate an ``anthropic.types.Message`` into an OpenAI ``ChatCompletion``.

    The completion's ``model`` is the model that served (``message.model``), so it is priced
    right; ``requested_model`` is used only when the message names none. ``created`` is the
    completion's timestamp (Anthropic sends none; this function reads no clock).
    """
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            tool_calls.append(
                {
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": json.dumps(block.input)},
                }
            )
        else:
            raise _refuse(f"{block.type} blocks in an Anthropic answer are not translated")
    if message.stop_reason == "pause_turn":
        raise _refuse("stop_reason pause_turn has no OpenAI equivalent")
    finish = _STOP_TO_FINISH.get(message.stop_reason or "end_turn", "stop")
    usage = message.usage
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    prompt = usage.input_tokens + cache_read + cache_write
    return openai.types.chat.ChatCompletion.model_validate(
        {
            "id": f"chatcmpl-{message.id}",
            "object": "chat.completion",
            "created": created,
            "model": message.model or requested_model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish,
                    "logprobs": None,
                    "message": {
                        "role": "assistant",
                        "content": "".join(texts) if texts else None,
                        "refusal": None,
                        "tool_calls": tool_calls or None,
                    },
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": usage.output_tokens,
                "total_tokens": prompt + usage.output_tokens,
                "prompt_tokens_details": {
                    "cached_tokens": cache_read,
                    "cache_write_tokens": cache_write,
                },
            },
        }
    )


# -- Anthropic request -> OpenAI request ----------------------------------------------------


def messages_to_chat(params: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    """Translate ``messages.create`` kwargs into ``chat.completions.create`` kwargs for ``model``.

    ``max_tokens`` becomes ``max_completion_tokens``. Raises :class:`Untranslatable`.
    """
    params = {k: v for k, v in params.items() if v is not None}
    out: dict[str, Any] = {"model": model}
    handled = {"model", "messages", "system", "max_tokens", *DROPPED_ANTHROPIC_PARAMS}

    thinking = params.get("thinking")
    if thinking is not None and thinking.get("type") != "disabled":
        raise _refuse("thinking has no OpenAI chat completions equivalent")
    if params.get("stream"):
        raise _refuse("stream=True: streamed answers are not translated")
    handled |= {"thinking", "stream"}

    messages: list[dict[str, Any]] = []
    system = params.get("system")
    if system is not None:
        if isinstance(system, str):
            messages.append({"role": "system", "content": system})
        else:
            messages.append({"role": "system", "content": _anthropic_text_parts(system)})
    for turn in params.get("messages", ()):
        messages.extend(_anthropic_turn_to_openai(turn))
    out["messages"] = messages
    if "max_tokens" in params:
        out["max_completion_tokens"] = params["max_tokens"]

    for key in _PASS_THROUGH:
        if key in params:
            out[key] = params[key]
    handled |= set(_PASS_THROUGH)

    handled |= {"stop_sequences", "tools", "tool_choice", "metadata"}
    stop = params.get("stop_sequences")
    if stop is not None:
        stop = list(stop)
        if len(stop) > 4:
            raise _refuse(f"{len(stop)} stop_sequences exceed OpenAI's limit of 4")
        if stop:
            out["stop"] = stop
    if "tools" in params:
        out["tools"] = [_anthropic_tool_to_openai(t) for t in params["tools"]]
    if "tool_choice" in params:
        out.update(_anthropic_tool_choice_to_openai(params["tool_choice"]))
    metadata = params.get("metadata") or {}
    if set(metadata) - {"user_id"}:
        raise _refuse(f"metadata keys {sorted(set(metadata) - {'user_id'})} are not translated")
    if metadata.get("user_id") is not None:
        out["user"] = metadata["user_id"]

    unknown = sorted(set(params) - handled)
    if unknown:
        raise _refuse(f"{unknown[0]} has no OpenAI chat completions equivalent")
    return out


def _anthropic_text_parts(blocks: Any) -> list[dict[str, Any]]:
    parts = []
    for block in blocks:
        if block.get("type") != "text":
            raise _refuse(f"{block.get('type')} blocks are not translated here")
        if block.get("citations"):
            raise _refuse("text citations have no OpenAI equivalent")
        parts.append({"type": "text", "text": block["text"]})
    return parts


def _anthropic_turn_to_openai(turn: Mapping[str, Any]) -> list[dict[str, Any]]:
    role = turn["role"]
    content = turn["content"]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if role == "assistant":
        return [_anthropic_assistant_to_openai(content)]
    # A user turn: tool results become "tool" messages first (they must directly follow the
    # assistant's tool calls), then the rest of the content as one user message.
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type")
        if kind == "tool_result":
            if parts:
                out.append({"role": "user", "content": parts})
                parts = []
            out.append(_anthropic_tool_result_to_openai(block))
        elif kind == "text":
            parts.extend(_anthropic_text_parts([block]))
        elif kind == "image":
            parts.append(_image_block_to_url(block))
        else:
            raise _refuse(f"{kind} content has no OpenAI chat completions equivalent here")
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _image_block_to_url(block: Mapping[str, Any]) -> dict[str, Any]:
    source = block["source"]
    if source.get("type") == "base64":
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif source.get("type") == "url":
        url = source["url"]
    else:
        raise _refuse(f"{source.get('type')} image sources have no OpenAI equivalent")
    return {"type": "image_url", "image_url": {"url": url}}


def _anthropic_tool_result_to_openai(block: Mapping[str, Any]) -> dict[str, Any]:
    if block.get("is_error"):
        raise _refuse("a tool_result with is_error has no OpenAI equivalent")
    content = block.get("content", "")
    return {
        "role": "tool",
        "tool_call_id": block["tool_use_id"],
        "content": content if isinstance(content, str) else _anthropic_text_parts(content),
    }


def _anthropic_assistant_to_openai(blocks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") == "tool_use":
            tool_calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": json.dumps(block["input"])},
                }
            )
        else:
            parts.extend(_anthropic_text_parts([block]))
    message: dict[str, Any] = {"role": "assistant", "content": parts or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _anthropic_tool_to_openai(tool: Mapping[str, Any]) -> dict[str, Any]:
    if tool.get("type", "custom") != "custom":
        raise _refuse(f"Anthropic server tool {tool.get('type')} has no OpenAI equivalent")
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _anthropic_tool_choice_to_openai(choice: Mapping[str, Any]) -> dict[str, Any]:
    kind = choice.get("type")
    out: dict[str, Any]
    if kind in ("auto", "any", "none"):
        out = {"tool_choice": {"auto": "auto", "any": "required", "none": "none"}[kind]}
    elif kind == "tool":
        out = {"tool_choice": {"type": "function", "function": {"name": choice["name"]}}}
    else:
        raise _refuse(f"tool_choice {kind!r} has no OpenAI equivalent")
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False
    return out


# -- OpenAI answer -> Anthropic answer ------------------------------------------------------


def chat_to_message(completion: Any, *, requested_model: str) -> anthropic.types.Message:
    """Translate an OpenAI ``ChatCompletion`` into an ``anthropic.types.Message``.

    The message's ``model`` is the model that served (``completion.model``);
    ``requested_model`` is used only when the completion names none.
    """
    if len(completion.choices) != 1:
        raise _refuse(f"{len(completion.choices)} choices have no Anthropic equivalent")
    choice = completion.choices[0]
    message = choice.message
    if getattr(message, "audio", None) is not None:
        raise _refuse("audio answers have no Anthropic equivalent")
    content: list[dict[str, Any]] = []
    if message.content:
        content.append({"type": "text", "text": message.content, "citations": None})
    if message.refusal:
        content.append({"type": "text", "text": message.refusal, "citations": None})
    for call in message.tool_calls or ():
        if call.type != "function":
            raise _refuse(f"{call.type} tool calls have no Anthropic equivalent")
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": _parse_arguments(call.function.arguments),
            }
        )
    stop_reason = "refusal" if message.refusal else _FINISH_TO_STOP[choice.finish_reason]
    usage = completion.usage
    details = usage.prompt_tokens_details if usage is not None else None
    cache_read = (details.cached_tokens or 0) if details is not None else 0
    cache_write = (getattr(details, "cache_write_tokens", None) or 0) if details else 0
    return anthropic.types.Message.model_validate(
        {
            "id": completion.id,
            "type": "message",
            "role": "assistant",
            "model": completion.model or requested_model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": (usage.prompt_tokens if usage else 0) - cache_read - cache_write,
                "output_tokens": usage.completion_tokens if usage else 0,
                "cache_read_input_tokens": cache_read,
                "cache_creation_input_tokens": cache_write,
            },
        }
    )
