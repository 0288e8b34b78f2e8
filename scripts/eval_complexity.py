"""How well the local complexity score agrees with hand labels, threshold by threshold.

Run:  python scripts/eval_complexity.py [--data FILE] [--split NAME] [--errors T]

Each line of the data file is {"prompt": ..., "label": "easy" | "hard"} (other keys, such as
"domain" and "split", are optional). A prompt is sent to the cheap model when its score is
below the threshold and to the strong one at or above it. For thresholds 0.20, 0.25, ... 0.80
it prints one Markdown table:

    cheap share  = prompts sent to the cheap model / all prompts
    accuracy     = prompts whose routing matches their label / all prompts
    precision    = "hard" prompts among those sent to the strong model
    recall       = "hard" prompts sent to the strong model / all "hard" prompts

then the threshold with the best accuracy (ties: the larger cheap share), accuracy by split
and by domain at the default threshold, and, with --errors T, the prompts misrouted at T.
The default data file is benchmarks/data/complexity_prompts.jsonl; --split keeps only the rows
of one split ("tune": the prompts the weights were set against; "holdout": prompts written
afterwards and never tuned on).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from costguard.routing import score_complexity
from costguard.routing._complexity import DEFAULT_THRESHOLD

THRESHOLDS = tuple(round(0.20 + 0.05 * i, 2) for i in range(13))  # 0.20 .. 0.80
DEFAULT_DATA = (
    Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "complexity_prompts.jsonl"
)


def load(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            sys.exit(f"{path}:{number}: prompt must be a non-empty string")
        if row.get("label") not in ("easy", "hard"):
            sys.exit(f"{path}:{number}: label must be 'easy' or 'hard'")
        rows.append(row)
    return rows


def metrics(scores: list[float], hard: list[bool], threshold: float) -> dict[str, float]:
    strong = [s >= threshold for s in scores]
    true_pos = sum(p and h for p, h in zip(strong, hard, strict=True))
    agree = sum(p == h for p, h in zip(strong, hard, strict=True))
    return {
        "cheap": 1 - sum(strong) / len(scores),
        "accuracy": agree / len(scores),
        "precision": true_pos / sum(strong) if any(strong) else float("nan"),
        "recall": true_pos / sum(hard) if any(hard) else float("nan"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default=None, metavar="NAME")
    parser.add_argument("--errors", type=float, default=None, metavar="T")
    args = parser.parse_args(argv)

    rows = load(args.data)
    if args.split is not None:
        rows = [row for row in rows if row.get("split") == args.split]
        if not rows:
            sys.exit(f"no rows with split {args.split!r} in {args.data}")
    scores = [score_complexity(row["prompt"]) for row in rows]
    hard = [row["label"] == "hard" for row in rows]
    where = args.data.name + ("" if args.split is None else f", split {args.split}")
    print(f"{len(rows)} prompts: {sum(hard)} hard, {len(rows) - sum(hard)} easy ({where})")
    print()
    print("| threshold | cheap share | accuracy | precision (hard) | recall (hard) |")
    print("|---:|---:|---:|---:|---:|")
    best = (-1.0, -1.0, 0.0)
    for threshold in THRESHOLDS:
        m = metrics(scores, hard, threshold)
        mark = " (default)" if threshold == DEFAULT_THRESHOLD else ""
        print(
            f"| {threshold:.2f}{mark} | {m['cheap']:.1%} | {m['accuracy']:.1%} "
            f"| {m['precision']:.1%} | {m['recall']:.1%} |"
        )
        best = max(best, (m["accuracy"], m["cheap"], threshold))
    print()
    print(f"best accuracy: {best[0]:.1%} at threshold {best[2]:.2f}")

    for key in ("split", "domain"):
        groups: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            groups[str(row.get(key, "-"))].append(i)
        if len(groups) < 2:
            continue
        print()
        print(f"at the default threshold {DEFAULT_THRESHOLD:.2f}, by {key}:")
        for name in sorted(groups):
            idx = groups[name]
            m = metrics([scores[i] for i in idx], [hard[i] for i in idx], DEFAULT_THRESHOLD)
            print(
                f"  {name:<16} n={len(idx):<4} accuracy {m['accuracy']:.1%}  "
                f"cheap share {m['cheap']:.1%}"
            )

    if args.errors is not None:
        print()
        print(f"misrouted at threshold {args.errors:.2f}:")
        for row, score, is_hard in zip(rows, scores, hard, strict=True):
            if (score >= args.errors) != is_hard:
                prompt = row["prompt"].replace("\n", " ")
                print(f"  {score:.3f} {row['label']:<4} {prompt[:110]}")


if __name__ == "__main__":
    main()
