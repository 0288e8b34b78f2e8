"""Regenerate costguard's packaged price table from a litellm-shaped price JSON.

Usage::

    python scripts/build_prices.py ../shared/reference/litellm_model_prices.json --date 2026-11-21

writes ``src/costguard/pricing/data/prices-<date>.json`` and removes every other
``prices-*.json`` there, so exactly one table ships. The output schema is documented in
``costguard/pricing/_table.py``; this script only translates, and the library parses, checks
and fills in derived rates (so the rules live in one place).

Kept: entries whose ``litellm_provider`` is ``openai``, ``anthropic`` or
``text-completion-openai`` (OpenAI's own legacy completions endpoint, the only source of
``completion`` models; stored as provider ``openai``), whose ``mode`` is ``chat``,
``responses``, ``completion`` or ``embedding``, and which have per-token input and output
prices. Deprecated models are kept. Keys with a ``provider/`` prefix are kept only for a
first-party prefix (stored without it unless that name exists); the reference's one such
text entry, ``openai/container``, has no token prices and is skipped.

Translated: ``<price>[_above_<N>k_tokens][_batches|_flex|_priority]`` where ``<price>`` is
``input_cost_per_token`` -> input, ``output_cost_per_token`` -> output,
``cache_read_input_token_cost`` -> cache_read, ``cache_creation_input_token_cost`` ->
cache_write_5m (Anthropic 5-minute write; OpenAI's default 30-minute write), and
``cache_creation_input_token_cost_above_1hr`` (Anthropic) or ``..._above_12hr`` (OpenAI) ->
cache_write_1h. ``above_<N>k`` becomes a long-context tier with threshold N*1000 prompt tokens.
Prices are converted exactly: ``Decimal(repr(float)) * 10**6`` USD per million tokens.

Ignored (not token prices we bill, or niche): ``search_context_cost_per_query`` (web-search
fee per call), ``input_cost_per_audio_token`` / ``output_cost_per_audio_token`` (audio tokens),
``regional_processing_uplift_multiplier_eu`` / ``_us`` (OpenAI data-residency uplift),
``provider_specific_entry`` (Anthropic US-only-inference uplift), the ``_ultrafast`` and
``_decisions`` variants, ``code_interpreter_cost_per_session`` and every non-price field.

Aliases: a dated snapshot (``-YYYY-MM-DD`` / ``-YYYYMMDD``) whose family has no entry of its
own gets the family name as an alias of its newest snapshot (``gpt-4o-audio-preview``);
fine-tuned ``ft:`` names are left alone, as the API always names them with their snapshot.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from costguard.pricing import PriceTable

PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "text-completion-openai": "openai"}
MODES = frozenset({"chat", "responses", "completion", "embedding"})
PRICE = re.compile(
    r"(?P<price>input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost(?:_above_(?:1|12)hr)?)"
    r"(?:_above_(?P<k>\d+)k_tokens)?(?:_(?P<variant>batches|flex|priority|ultrafast|decisions))?"
)
FIELDS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write_5m",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "cache_creation_input_token_cost_above_12hr": "cache_write_1h",
}
SNAPSHOT = re.compile(r"-(\d{4}-?\d{2}-?\d{2})$")
DATA = Path(__file__).resolve().parents[1] / "src/costguard/pricing/data"


def per_million(value: float) -> str:
    return format((Decimal(repr(value)) * 10**6).normalize(), "f")


def blocks(entry: dict[str, Any]) -> dict[tuple[int | None, str | None], dict[str, str]]:
    """Group an entry's prices by (long-context threshold, variant)."""
    out: dict[tuple[int | None, str | None], dict[str, str]] = defaultdict(dict)
    for key, value in entry.items():
        match = PRICE.fullmatch(key)
        if match is None or match["variant"] in ("ultrafast", "decisions"):
            continue
        above = int(match["k"]) * 1000 if match["k"] else None
        out[above, match["variant"]][FIELDS[match["price"]]] = per_million(value)
    return out


def variants(
    found: dict[tuple[int | None, str | None], dict[str, str]], above: int | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"base": found.get((above, None))}
    if (above, "batches") in found:
        out["batch"] = found[above, "batches"]
    tiers = {t: found[above, t] for t in ("flex", "priority") if (above, t) in found}
    if tiers:
        out["tiers"] = tiers
    return out


def convert(entry: dict[str, Any], provider: str) -> dict[str, Any]:
    found = blocks(entry)
    out: dict[str, Any] = {
        "provider": provider,
        "mode": entry["mode"],
        "context_window": entry.get("max_input_tokens"),
        "max_output_tokens": entry.get("max_output_tokens", entry.get("max_tokens")),
        **variants(found, None),
    }
    if entry.get("deprecation_date"):
        out["deprecation_date"] = entry["deprecation_date"]
    thresholds = sorted({above for above, _ in found if above is not None})
    if thresholds:
        out["long_context"] = [{"above": above, **variants(found, above)} for above in thresholds]
    return out


def select(reference: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    models: dict[str, Any] = {}
    skipped: list[str] = []
    for name, entry in reference.items():
        provider = (
            PROVIDERS.get(str(entry.get("litellm_provider"))) if isinstance(entry, dict) else None
        )
        if provider is None or entry.get("mode") not in MODES:
            continue
        prefix, slash, rest = name.partition("/")
        if slash and prefix != provider:
            continue
        if "input_cost_per_token" not in entry or "output_cost_per_token" not in entry:
            skipped.append(name)
            continue
        key = rest if slash and rest not in reference else name
        models[key] = convert(entry, provider)
    return models, skipped


def aliases(models: dict[str, Any]) -> dict[str, str]:
    newest: dict[str, tuple[str, str]] = {}
    for name in models:
        match = SNAPSHOT.search(name)
        if match is None or name.startswith("ft:"):  # fine-tune names always carry the date
            continue
        family, date = name[: match.start()], match[1].replace("-", "")
        if family not in models and (family not in newest or date > newest[family][0]):
            newest[family] = (date, name)
    return {family: name for family, (_, name) in sorted(newest.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="litellm model_prices_and_context_window JSON")
    parser.add_argument("--date", required=True, help="the table's version, YYYY-MM-DD")
    parser.add_argument("--out-dir", type=Path, default=DATA)
    args = parser.parse_args(argv)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", args.date):
        parser.error("--date must be YYYY-MM-DD")

    raw = args.reference.read_bytes()
    models, skipped = select(json.loads(raw))
    table = PriceTable.from_mapping(
        {"version": args.date, "aliases": aliases(models), "models": models}
    )
    document = {
        "_schema": table.as_dict()["_schema"],
        "_source": (
            f"{args.reference.name} (BerriAI/litellm price table, MIT), sha256 "
            f"{hashlib.sha256(raw).hexdigest()}; converted by scripts/build_prices.py"
        ),
        **table.as_dict(),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    target = args.out_dir / f"prices-{args.date}.json"
    target.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for old in args.out_dir.glob("prices-*.json"):
        if old != target:
            old.unlink()
    PriceTable.from_file(target)  # what we ship must load
    print(f"wrote {target}: {len(table)} models, {len(table.aliases)} aliases")
    if skipped:
        print(f"skipped (no token prices): {', '.join(skipped)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
