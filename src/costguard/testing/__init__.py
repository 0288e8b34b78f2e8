"""Test helpers: a fake OpenAI / Anthropic API behind the real SDK clients.

``FakeProvider`` hands out real ``openai.OpenAI`` / ``anthropic.Anthropic`` clients (and their
async twins) whose HTTP goes to an in-memory fake API: scripted or deterministic default
answers, realistic JSON and streams, usage counted offline, scripted failures, and a log of
every request. The ``fake_provider`` pytest fixture (installed with costguard) gives each test
a fresh one. See docs/testing.md.
"""

from __future__ import annotations

from ._fake import FakeProvider, RecordedRequest
from ._script import Endpoint, FailureKind, Provider, ToolCall

__all__ = [
    "Endpoint",
    "FailureKind",
    "FakeProvider",
    "Provider",
    "RecordedRequest",
    "ToolCall",
]
