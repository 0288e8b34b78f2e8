"""Speed of the local MiniLM embedder (numpy, no torch) on short prompts.

Run:  python benchmarks/embedder.py [--rounds N]

Needs the ``[local]`` extra. Prints one table: the import time and the first-load time
(construction plus the first embed, which maps the weights and loads the tokenizer), both in a
fresh interpreter, then the median milliseconds per prompt for ~12-word prompts embedded one at
a time and in batches of 32. Numbers depend on the BLAS numpy uses and on its thread count
(``OPENBLAS_NUM_THREADS`` and friends).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SUBJECTS = ["the quarterly sales report", "my password", "a python function", "this contract"]
ASKS = [
    "Please summarise {} for the north east regional team today",
    "How do I safely change {} without losing any of my data",
    "Explain in plain words what is wrong with {} and why it fails",
    "Write three short bullet points about {} for a busy executive",
    "Can you translate {} into French and keep the formal tone",
    "What are the main risks in {} that we should discuss first",
    "Give me a quick checklist to review {} before the Friday meeting",
    "Why would {} be rejected by the finance department this quarter",
]
PROMPTS = [ask.format(subject) for ask in ASKS for subject in SUBJECTS]  # 32 prompts, ~12 words

_FIRST_LOAD = """
import json, time
t0 = time.perf_counter()
from costguard.cache._minilm import MiniLMEmbedder
t1 = time.perf_counter()
embedder = MiniLMEmbedder()
embedder.embed(["What is the capital of France?"])
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t2 - t1}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds (default 30)")
    args = parser.parse_args()

    from costguard.cache._minilm import MiniLMEmbedder

    load = json.loads(
        subprocess.run(
            [sys.executable, "-c", _FIRST_LOAD], capture_output=True, text=True, check=True
        ).stdout
    )
    embedder = MiniLMEmbedder()
    embedder.embed(PROMPTS)  # warm up: weights, tokenizer, BLAS buffers
    clock = time.perf_counter
    single: list[float] = []
    batched: list[float] = []
    for _ in range(args.rounds):  # interleaved, so drift on a busy machine hits both alike
        for prompt in PROMPTS[:4]:
            t0 = clock()
            embedder.embed([prompt])
            single.append((clock() - t0) * 1000)
        t0 = clock()
        embedder.embed(PROMPTS)
        batched.append((clock() - t0) * 1000 / len(PROMPTS))

    words = statistics.mean(len(p.split()) for p in PROMPTS)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(
        f"MiniLMEmbedder: prompts of {words:.1f} words, {os.cpu_count()} CPUs, "
        f"OPENBLAS_NUM_THREADS={threads}, {args.rounds} rounds"
    )
    print()
    print(f"{'measure':<44}{'ms':>10}")
    print(f"{'import costguard.cache._minilm (fresh process)':<44}{load['import'] * 1000:>10.1f}")
    print(f"{'first load: construct + first embed':<44}{load['first'] * 1000:>10.1f}")
    print(f"{'median per prompt, one at a time':<44}{statistics.median(single):>10.2f}")
    print(f"{'median per prompt, batches of 32':<44}{statistics.median(batched):>10.2f}")


if __name__ == "__main__":
    main()
