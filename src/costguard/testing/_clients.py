"""The SDK clients FakeProvider hands out: the real classes, minus the retry back-off sleep.

Each class subclasses the SDK's own client (so ``isinstance(client, openai.OpenAI)`` holds and
every resource, helper and stream class is the SDK's) and overrides one hook,
``_calculate_retry_timeout``, which both SDKs call to decide how long to sleep before a retry.
Returning 0 means a retrying client calls ``time.sleep(0)`` / ``anyio.sleep(0)``: no test ever
waits for a back-off or a scripted ``retry-after``. ``copy()`` / ``with_options()`` build a
new client with ``self.__class__``, so the override survives them too.

The class names match the SDK's, so ``type(client).__name__`` reads as usual.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai

__all__ = ["Anthropic", "AsyncAnthropic", "AsyncOpenAI", "OpenAI"]


class _NoBackoff:
    """Mixin: the SDK's computed pause before a retry is always zero seconds."""

    def _calculate_retry_timeout(
        self, remaining_retries: int, options: Any, response_headers: Any = None
    ) -> float:
        return 0.0


class OpenAI(_NoBackoff, openai.OpenAI):
    """``openai.OpenAI`` that retries without sleeping (see the module docstring)."""


class AsyncOpenAI(_NoBackoff, openai.AsyncOpenAI):
    """``openai.AsyncOpenAI`` that retries without sleeping (see the module docstring)."""


class Anthropic(_NoBackoff, anthropic.Anthropic):
    """``anthropic.Anthropic`` that retries without sleeping (see the module docstring)."""


class AsyncAnthropic(_NoBackoff, anthropic.AsyncAnthropic):
    """``anthropic.AsyncAnthropic`` that retries without sleeping (see the module docstring)."""
