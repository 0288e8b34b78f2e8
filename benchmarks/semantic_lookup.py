"""Semantic-cache lookup time and memory at 10k, 100k and 1M entries in one partition.

Run:  python benchmarks/semantic_lookup.py [--sizes 10000 100000 1000000] [--queries 50]

Embedding is excluded: stored entries and queries are random 384-dimensional unit vectors (the
size of all-MiniLM-L6-v2's), passed straight to the index. Each size runs in a fresh process, so
its memory is its own. Columns:

- build: how the partition was made. Up to 100k entries it is written through the real on-disk
  index (journal appends, compactions) and then loaded by a second index, as another process
  would; 1M is built in memory only (writing 1.5 GB per compaction is not worth a benchmark).
- miss / hit: median time of one lookup (matrix-vector product, threshold, guard on the top
  candidates) for a query matching nothing, and for a stored vector plus a little noise.
- lookup via index: the same hit through ``PartitionIndex.view()`` + ``search``, i.e. including
  the per-lookup freshness check (two ``stat`` calls) a SemanticCache does; on-disk sizes only.
- RSS: resident memory of the process after loading, and its peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
THRESHOLD = 0.88
PERSIST_UP_TO = 100_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def unit_rows(rng: np.random.Generator, count: int) -> np.ndarray:
    out = np.empty((count, DIM), dtype=np.float32)
    for start in range(0, count, 65_536):  # in chunks, so no float64 copy of everything
        block = rng.standard_normal((min(65_536, count - start), DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def median_ms(function, queries) -> float:  # type: ignore[no-untyped-def]
    times = []
    for query in queries:
        started = time.perf_counter()
        function(query)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def one(size: int, queries: int) -> dict[str, object]:
    from costguard.cache._guard import conflicts
    from costguard.cache._index import PartitionIndex, Rows, search

    rng = np.random.default_rng(size)
    vectors = unit_rows(rng, size)
    texts = [f"stored question {i}" for i in range(size)]
    keys = [f"key-{i}" for i in range(size)]
    result: dict[str, object] = {"size": size}
    started = time.perf_counter()
    index = None
    if size <= PERSIST_UP_TO:
        directory = tempfile.TemporaryDirectory()
        writer = PartitionIndex(Path(directory.name), max_entries=size)
        for i in range(size):
            writer.add("tenant", "partition", vectors[i], keys[i], texts[i], None, 0.0)
        result["build"] = f"disk, {time.perf_counter() - started:.0f} s"
        del writer
        index = PartitionIndex(Path(directory.name), max_entries=size)
        started = time.perf_counter()
        view = index.view("tenant", "partition")
        assert view is not None
        result["load_s"] = time.perf_counter() - started
    else:
        expires = np.full(size, np.inf)
        view = Rows.from_arrays(vectors, expires, keys, texts, size).view()
        result["build"] = "memory"
    picks = rng.integers(0, size, queries)
    hits = [vectors[i] + 0.01 * unit_rows(rng, 1)[0] for i in picks]
    hits = [q / np.linalg.norm(q) for q in hits]
    hit_texts = [texts[i] for i in picks]
    del vectors
    misses = list(unit_rows(rng, queries))

    def accept(text: str) -> object:
        return lambda stored: conflicts(text, stored) is None

    for query in misses[:3] + hits[:3]:  # warm up
        search(view, query, threshold=THRESHOLD, now=1.0)
    result["miss_ms"] = median_ms(lambda q: search(view, q, threshold=THRESHOLD, now=1.0), misses)
    pairs = list(zip(hits, hit_texts, strict=True))
    found = [search(view, q, threshold=THRESHOLD, now=1.0, accept=accept(t)) for q, t in pairs]
    assert all(f is not None for f in found), "a planted near-duplicate was not found"
    result["hit_ms"] = median_ms(
        lambda p: search(view, p[0], threshold=THRESHOLD, now=1.0, accept=accept(p[1])), pairs
    )
    if index is not None:

        def via_index(p):  # type: ignore[no-untyped-def]
            current = index.view("tenant", "partition")
            return search(current, p[0], threshold=THRESHOLD, now=1.0, accept=accept(p[1]))

        result["index_ms"] = median_ms(via_index, pairs)
    result["rss_mb"] = rss_mb()
    result["peak_mb"] = peak_mb()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.queries)))
        return 0
    print(f"{DIM} dims, threshold {THRESHOLD}, median of {args.queries} lookups, one partition\n")
    print("| entries | build | load | miss | hit | lookup via index | RSS | peak RSS |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(size), "--queries", str(args.queries)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        load = f"{r['load_s'] * 1000:.0f} ms" if "load_s" in r else "-"
        via = f"{r['index_ms']:.2f} ms" if "index_ms" in r else "-"
        print(
            f"| {size:,} | {r['build']} | {load} | {r['miss_ms']:.2f} ms | {r['hit_ms']:.2f} ms "
            f"| {via} | {r['rss_mb']:.0f} MB | {r['peak_mb']:.0f} MB |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
