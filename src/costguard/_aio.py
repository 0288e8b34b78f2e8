"""asyncio, loaded only where it runs: ``import costguard`` never imports it."""

from __future__ import annotations

__all__ = ["sleep"]


async def sleep(seconds: float) -> None:
    """``asyncio.sleep``, imported on first use (the default async sleep of retries and rate
    limits; tests inject their own)."""
    import asyncio

    await asyncio.sleep(seconds)
