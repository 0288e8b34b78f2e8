"""Overhead of a guarded call vs the raw SDK call, on the same in-memory fake transport.

Run:  python benchmarks/bench.py [--calls N] [--quick]

Prints median µs per call for the raw SDK client and for the same client wrapped by a
CostGuardClient with only the ledger layer (a real SQLite ledger in a temp dir), and the ratio;
the same for exact-cache hits; budgets and router + retry vs the ledger-only guarded call; this
session's features (scopes, OpenTelemetry, prompt caching) vs the ledger-only guarded call and
the always-present layers' fast paths in ns (benchmarks/features.py); then `import costguard`
vs `import openai` time and memory, each in a fresh interpreter. Raw and guarded calls are
interleaved so that drift on a busy machine hits both alike. ``--quick``: 500 calls per case
(unless --calls is given) and fewer repeats, about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from features import fast_paths, feature_rows, prepare_us, print_fast_paths, print_feature_rows

HI = [{"role": "user", "content": "Say hello in one short sentence."}]


def _sync_pair(
    raw: Any, guarded: Any, provider: str
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    if provider == "openai":
        return (
            lambda: raw.chat.completions.create(model="gpt-4o-mini", messages=HI),
            lambda: guarded.chat.completions.create(model="gpt-4o-mini", messages=HI),
        )
    return (
        lambda: raw.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=HI),
        lambda: guarded.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=HI),
    )


def _measure(calls: int, raw: Callable[[], Any], guarded: Callable[[], Any]) -> tuple[float, float]:
    for _ in range(min(200, calls)):
        raw()
        guarded()
    t_raw, t_guard = [], []
    clock = time.perf_counter
    for _ in range(calls):
        t0 = clock()
        raw()
        t1 = clock()
        guarded()
        t2 = clock()
        t_raw.append(t1 - t0)
        t_guard.append(t2 - t1)
    return statistics.median(t_raw) * 1e6, statistics.median(t_guard) * 1e6


async def _ameasure(
    calls: int, raw: Callable[[], Awaitable[Any]], guarded: Callable[[], Awaitable[Any]]
) -> tuple[float, float]:
    for _ in range(min(200, calls)):
        await raw()
        await guarded()
    t_raw, t_guard = [], []
    clock = time.perf_counter
    for _ in range(calls):
        t0 = clock()
        await raw()
        t1 = clock()
        await guarded()
        t2 = clock()
        t_raw.append(t1 - t0)
        t_guard.append(t2 - t1)
    return statistics.median(t_raw) * 1e6, statistics.median(t_guard) * 1e6


def _import_cost(module: str, runs: int = 7) -> tuple[float, float]:
    """Median wall time (ms) and resident-memory growth (MiB) of `import module`, fresh process."""
    code = (
        "import os, time\n"
        "page = os.sysconf('SC_PAGE_SIZE')\n"
        "def rss(): return int(open('/proc/self/statm').read().split()[1]) * page\n"
        f"r = rss(); t = time.perf_counter(); import {module}\n"
        "print(time.perf_counter() - t, rss() - r)"
    )
    samples = [
        tuple(map(float, subprocess.check_output([sys.executable, "-c", code], text=True).split()))
        for _ in range(runs)
    ]
    ms = statistics.median(s[0] for s in samples) * 1e3
    return ms, statistics.median(s[1] for s in samples) / 2**20


def _table(title: str, rows: list[tuple[str, float, float]]) -> None:
    print(title)
    print(f"{'case':<18}{'raw µs':>10}{'guarded µs':>12}{'ratio':>8}")
    for name, r, g in rows:
        print(f"{name:<18}{r:>10.1f}{g:>12.1f}{g / r:>8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=None, help="default 2000, --quick 500")
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    args = parser.parse_args()
    if args.calls is None:
        args.calls = 500 if args.quick else 2000

    import costguard
    from costguard.testing import FakeProvider

    rows: list[tuple[str, float, float]] = []
    hits: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        guard = costguard.CostGuardClient(ledger=Path(tmp) / "bench.db", cache=None)
        cached = costguard.CostGuardClient(
            ledger=Path(tmp) / "hits.db", cache=costguard.ExactCache(Path(tmp) / "cache")
        )
        fake = FakeProvider()
        for provider in ("openai", "anthropic"):
            raw = getattr(fake, provider)()
            rows.append(
                (
                    f"{provider} sync",
                    *_measure(args.calls, *_sync_pair(raw, guard.wrap(raw), provider)),
                )
            )
            hits.append(
                (
                    f"{provider} sync",
                    *_measure(args.calls, *_sync_pair(raw, cached.wrap(raw), provider)),
                )
            )
            araw = getattr(fake, f"async_{provider}")()
            for target, client in ((rows, guard.wrap(araw)), (hits, cached.wrap(araw))):
                pair = _sync_pair(araw, client, provider)
                target.append((f"{provider} async", *asyncio.run(_ameasure(args.calls, *pair))))
        budgeted: list[tuple[str, float, float]] = []
        plain = guard.wrap(fake.openai())
        for count in (1, 3, 10):
            budgets = [costguard.Budget(10**6, name=f"b{i}") for i in range(count)]
            with costguard.CostGuardClient(
                ledger=Path(tmp) / f"budget{count}.db", cache=None, budgets=budgets
            ) as held:
                pair = _sync_pair(plain, held.wrap(fake.openai()), "openai")
                budgeted.append((f"{count} budget(s)", *_measure(args.calls, *pair)))
        router = costguard.Router(
            rules={"classify": "gpt-4o-mini"},
            complexity=costguard.ComplexityRouter(cheap="gpt-4o-mini", strong="gpt-4o"),
        )
        with costguard.CostGuardClient(
            ledger=Path(tmp) / "routed.db", cache=None, router=router, retry=costguard.Retry()
        ) as routed:
            pair = _sync_pair(plain, routed.wrap(fake.openai()), "openai")
            budgeted.append(("router + retry", *_measure(args.calls, *pair)))
        features = feature_rows(args.calls, Path(tmp), _measure)
        guard.close()
        cached.close()

    _table(f"guarded call (ledger layer, cache off) vs raw SDK call, median of {args.calls}", rows)
    print("target: ratio <= 1.15\n")
    _table("exact-cache hit (ledger on) vs raw SDK call on the same fake transport", hits)
    print("target: ratio <= 0.5\n")
    print("budgets, or router + retry (no failures), per call (openai sync) vs the ledger-only")
    print("guarded call")
    print(f"{'case':<18}{'ledger µs':>10}{'budgeted µs':>13}{'ratio':>8}{'added µs':>10}")
    for name, r, g in budgeted:
        print(f"{name:<18}{r:>10.1f}{g:>13.1f}{g / r:>8.3f}{g - r:>10.1f}")
    print()
    print_feature_rows(args.calls, features, prepare_us(args.calls))
    print()
    print_fast_paths(*fast_paths(rounds=9 if args.quick else 31), guarded_us=rows[0][2])
    runs = 3 if args.quick else 7
    t_cg, m_cg = _import_cost("costguard", runs)
    t_oa, m_oa = _import_cost("openai", runs)
    print(f"\n{'import':<18}{'ms':>10}{'MiB':>12}")
    print(f"{'costguard':<18}{t_cg:>10.1f}{m_cg:>12.1f}")
    print(f"{'openai':<18}{t_oa:>10.1f}{m_oa:>12.1f}")
    print(f"{'ratio':<18}{t_cg / t_oa:>10.3f}{m_cg / m_oa:>12.3f}")


if __name__ == "__main__":
    main()
