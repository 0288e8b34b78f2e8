"""Precision and recall of the semantic cache's match decision on a labelled set of prompt pairs.

Run:  python scripts/eval_semantic.py [--embedder minilm|fake] [--data FILE] [--errors T]

Each line of the data file is {"a": ..., "b": ..., "same": bool, "kind": ...}; "same" means one
answer serves both prompts. A pair is predicted "same" when the cosine similarity of the two
embeddings is at least the threshold (and, with the guard, when conflicts(a, b) is None).

    precision = predicted-same pairs that are same / predicted-same pairs
    recall    = predicted-same pairs that are same / same pairs

Prints one Markdown table (no guard vs guard, at each threshold), the most permissive threshold
whose precision with the guard is at least 99%, and, with --errors T, the pairs misjudged at
threshold T. The default data file is benchmarks/data/semantic_pairs.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from costguard.cache._guard import conflicts

THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98)
TARGET_PRECISION = 0.99
DEFAULT_DATA = (
    Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "semantic_pairs.jsonl"
)


def load(path: Path) -> list[dict[str, Any]]:
    pairs = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        pair = json.loads(line)
        if not (isinstance(pair.get("a"), str) and isinstance(pair.get("b"), str)):
            sys.exit(f"{path}:{number}: a and b must be strings")
        if not isinstance(pair.get("same"), bool):
            sys.exit(f"{path}:{number}: same must be true or false")
        pairs.append(pair)
    return pairs


def embedder_for(name: str) -> Any:
    if name == "fake":
        from costguard.cache._embedders import FakeEmbedder

        return FakeEmbedder()
    from costguard.cache._minilm import MiniLMEmbedder

    return MiniLMEmbedder()


def similarities(pairs: list[dict[str, Any]], embedder: Any) -> np.ndarray:
    texts = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs})
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {text: i for i, text in enumerate(texts)}
    return np.array(
        [float(vectors[row[p["a"]]] @ vectors[row[p["b"]]]) for p in pairs], dtype=np.float64
    )


def score(predicted: np.ndarray, same: np.ndarray) -> tuple[float | None, float, int]:
    """(precision or None if nothing predicted, recall, false positives)."""
    true_positive = int(np.sum(predicted & same))
    false_positive = int(np.sum(predicted & ~same))
    made = true_positive + false_positive
    precision = true_positive / made if made else None
    return precision, true_positive / max(int(same.sum()), 1), false_positive


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", choices=("minilm", "fake"), default="minilm")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--errors", type=float, metavar="T", help="list misjudged pairs at T")
    args = parser.parse_args(argv)

    pairs = load(args.data)
    same = np.array([p["same"] for p in pairs])
    cosine = similarities(pairs, embedder_for(args.embedder))
    reasons = [conflicts(p["a"], p["b"]) for p in pairs]
    guard_ok = np.array([r is None for r in reasons])
    kinds = Counter(p["kind"] for p in pairs)

    print(
        f"{len(pairs)} pairs ({int(same.sum())} same, {int((~same).sum())} different; "
        + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        + f"); embedder: {args.embedder}"
    )
    for split in sorted({p.get("split", "dev") for p in pairs}):
        part = np.array([p.get("split", "dev") == split for p in pairs])
        refused, different = int((~guard_ok & ~same & part).sum()), int((~same & part).sum())
        wrongly, alike = int((~guard_ok & same & part).sum()), int((same & part).sum())
        print(
            f"guard alone ({split}): refuses {refused} of {different} different pairs "
            f"and {wrongly} of {alike} same pairs"
        )
    print()
    print(
        "| threshold | precision | recall | false pos. | precision (guard) | recall (guard) "
        "| false pos. (guard) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    chosen = None
    for threshold in THRESHOLDS:
        hit = cosine >= threshold - 1e-6
        p0, r0, f0 = score(hit, same)
        p1, r1, f1 = score(hit & guard_ok, same)
        print(
            f"| {threshold:.2f} | {percent(p0)} | {percent(r0)} | {f0} "
            f"| {percent(p1)} | {percent(r1)} | {f1} |"
        )
        if chosen is None and p1 is not None and p1 >= TARGET_PRECISION:
            chosen = threshold
    print()
    if chosen is None:
        print(f"no threshold reaches {100 * TARGET_PRECISION:.0f}% precision with the guard")
    else:
        print(
            f"most permissive threshold with >= {100 * TARGET_PRECISION:.0f}% precision "
            f"(guard on): {chosen:.2f}"
        )
    at = chosen if chosen is not None else THRESHOLDS[-1]
    hit = cosine >= at - 1e-6
    print(
        f"\nat {at:.2f}, by kind: same pairs served / different pairs refused (embedding, +guard)"
    )
    print("| kind | split | pairs | served (same) | refused (different), no guard | with guard |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for kind in sorted(kinds):
        for split in sorted({p.get("split", "dev") for p in pairs}):
            rows = [
                i
                for i, p in enumerate(pairs)
                if p["kind"] == kind and p.get("split", "dev") == split
            ]
            if not rows:
                continue
            pos = [i for i in rows if same[i]]
            neg = [i for i in rows if not same[i]]
            served = sum(1 for i in pos if hit[i] and guard_ok[i])
            refused = sum(1 for i in neg if not hit[i])
            refused_guard = sum(1 for i in neg if not (hit[i] and guard_ok[i]))
            print(
                f"| {kind} | {split} | {len(rows)} | {served}/{len(pos)} | {refused}/{len(neg)} "
                f"| {refused_guard}/{len(neg)} |"
            )
    if args.errors is not None:
        hit = (cosine >= args.errors - 1e-6) & guard_ok
        print(f"\nmisjudged at {args.errors:.2f} with the guard:")
        for i in np.flatnonzero(hit != same):
            label = "false positive" if hit[i] else "missed"
            why = f" [guard: {reasons[i]}]" if reasons[i] else ""
            print(
                f"  {label:14} {cosine[i]:.3f} {pairs[i]['kind']:10} "
                f"{pairs[i]['a']!r} | {pairs[i]['b']!r}{why}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
