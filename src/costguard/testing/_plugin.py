"""pytest plugin (entry point ``pytest11: costguard``): the ``fake_provider`` fixture.

pytest loads this module at start-up in every project that has costguard installed, so it
imports nothing heavy: the SDKs load only when a test asks for the fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._fake import FakeProvider

__all__ = ["fake_provider"]


@pytest.fixture
def fake_provider() -> FakeProvider:
    """A fresh :class:`costguard.testing.FakeProvider` (seed 0) for one test."""
    from ._fake import FakeProvider

    return FakeProvider()
