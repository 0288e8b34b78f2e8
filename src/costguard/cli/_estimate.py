"""``costguard estimate``: what a workload would cost per month, model by model.

The maths is :func:`costguard._projection.project_monthly_cost`; this module reads and checks
the options, counts a sample prompt offline when one is given, and prints the comparison.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import CLIError, add_json_option, emit_json, emit_table, plain, price_table, usd

if TYPE_CHECKING:
    from .._projection import Projection
    from ..pricing import ModelPrice, PriceTable

__all__ = ["register"]

# Far beyond any real workload, and small enough that every amount prints in a few digits.
_MAX_REQUESTS_PER_DAY = Decimal(10) ** 12
_MAX_TOKENS = 10**9
_MAX_PROMPT_BYTES = 64 * 2**20


def _decimal(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise CLIError(f"{option} must be a number, got {text!r}") from None
    if not value.is_finite():
        raise CLIError(f"{option} must be a finite number, got {text!r}")
    return value


def _requests_per_day(text: str) -> Decimal:
    value = _decimal(text, "--requests-per-day")
    if value <= 0:
        raise CLIError(f"--requests-per-day must be more than 0, got {text}")
    if value > _MAX_REQUESTS_PER_DAY:
        raise CLIError(f"--requests-per-day must be at most 1e12, got {text}")
    return value


def _token_count(text: str, option: str, *, allow_zero: bool) -> int:
    value = _decimal(text, option)
    if value != value.to_integral_value():
        raise CLIError(f"{option} must be a whole number of tokens, got {text}")
    if value < 0 or (value == 0 and not allow_zero):
        least = "0 or more" if allow_zero else "more than 0"
        raise CLIError(f"{option} must be {least}, got {text}")
    if value > _MAX_TOKENS:
        raise CLIError(f"{option} must be at most 1,000,000,000, got {text}")
    return int(value)


def _safety_factor(text: str) -> Decimal:
    value = _decimal(text, "--safety-factor")
    if value < 1:
        raise CLIError(f"--safety-factor must be at least 1 (1 = no margin), got {text}")
    if value > 1000:
        raise CLIError(f"--safety-factor must be at most 1000, got {text}")
    return value


def _hit_rate(text: str) -> Decimal:
    value = _decimal(text, "--cache-hit-rate")
    if not 0 <= value <= 1:
        raise CLIError(f"--cache-hit-rate must be between 0 and 1 (0.3 = 30%), got {text}")
    return value


def _models(given: Sequence[str]) -> list[str]:
    """``--model a --model b,c`` as ``[a, b, c]``, without repeats."""
    names = [n.strip() for item in given for n in item.split(",") if n.strip()]
    if not names:
        raise CLIError("--model needs a model name (e.g. --model gpt-4o-mini)")
    return list(dict.fromkeys(names))


def _priced(table: PriceTable, names: Sequence[str]) -> list[tuple[str, ModelPrice]]:
    found = [(name, table.get(name)) for name in names]
    unknown = [name for name, price in found if price is None]
    if unknown:
        hint = unknown[0].replace("/", "-").split("-")[0] or unknown[0]
        listed = ", ".join(repr(n) for n in unknown)
        raise CLIError(
            f"no price for model{'s' if len(unknown) > 1 else ''} {listed} "
            f"(try: costguard prices --search {hint})"
        )
    return [(name, price) for name, price in found if price is not None]


def _read_prompt(path_text: str) -> Any:
    """A prompt file's text, or for ``.json`` its messages: a list, or an object with
    ``messages`` (and optionally ``system`` and ``tools``)."""
    path = Path(path_text)
    try:
        if path.stat().st_size > _MAX_PROMPT_BYTES:
            raise CLIError(f"prompt file {path} is larger than 64 MiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CLIError(f"no prompt file at {path}") from None
    except IsADirectoryError:
        raise CLIError(f"prompt file {path} is a directory") from None
    except UnicodeDecodeError:
        raise CLIError(f"prompt file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise CLIError(f"cannot read prompt file {path}: {exc.strerror or exc}") from None
    if not text.strip():
        raise CLIError(f"prompt file {path} is empty")
    if path.suffix.lower() != ".json":
        return text
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CLIError(f"prompt file {path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "messages" in data:
        unknown = sorted(set(data) - {"messages", "system", "tools"})
        if unknown:
            raise CLIError(f"prompt file {path}: unknown key(s) {', '.join(map(repr, unknown))}")
        return data
    if isinstance(data, list):
        return {"messages": data}
    raise CLIError(f"prompt file {path}: expected a list of messages or an object with 'messages'")


def _count_prompt(prompt: Any, name: str, price: ModelPrice, path: str) -> int:
    """The sample prompt's tokens for ``name``, counted offline with its tokenizer."""
    from .._errors import InvalidRequestError
    from .._tokens import count_text_tokens, count_tokens, counting_model

    model = counting_model(name, price.provider)
    try:
        if isinstance(prompt, str):
            if price.mode == "embedding":
                return count_text_tokens(model, prompt)
            return count_tokens(model, [{"role": "user", "content": prompt}])
        return count_tokens(
            model, prompt["messages"], system=prompt.get("system"), tools=prompt.get("tools")
        )
    except InvalidRequestError as exc:
        raise CLIError(f"prompt file {path}: {exc}") from None


@dataclass(frozen=True, slots=True)
class _Estimate:
    """The workload as given, and each model's projection of it."""

    projections: Sequence[tuple[str, Projection]]
    per_day: Decimal
    safety: Decimal
    hit_rate: Decimal | None  # None: no --cache-hit-rate, so no cache columns
    version: str
    days: int


def _cmd_estimate(args: argparse.Namespace) -> int:
    from .._projection import DAYS_PER_MONTH, project_monthly_cost

    names = _models(args.model)
    per_day = _requests_per_day(args.requests_per_day)
    output_tokens = _token_count(args.output_tokens, "--output-tokens", allow_zero=True)
    input_tokens: int | None = None
    if args.input_tokens is not None:
        input_tokens = _token_count(args.input_tokens, "--input-tokens", allow_zero=False)
    safety = _safety_factor(args.safety_factor)
    hit_rate = _hit_rate(args.cache_hit_rate) if args.cache_hit_rate is not None else None
    table = price_table(args.prices)
    priced = _priced(table, names)
    prompt = _read_prompt(args.prompt_file) if args.prompt_file else None

    projections: list[tuple[str, Projection]] = []
    for name, price in priced:
        tokens = input_tokens
        if tokens is None:
            tokens = _count_prompt(prompt, name, price, args.prompt_file)
        projection = project_monthly_cost(
            price,
            requests_per_day=per_day,
            input_tokens=tokens,
            output_tokens=output_tokens,
            safety_factor=safety,
            cache_hit_rate=hit_rate or 0,
        )
        projections.append((name, projection))

    estimate = _Estimate(projections, per_day, safety, hit_rate, table.version, DAYS_PER_MONTH)
    if args.json:
        _print_json(estimate)
        return 0
    _print_table(estimate)
    if prompt is not None and any(p.provider == "anthropic" for _, p in priced):
        print("Claude prompt tokens are an estimate (Anthropic's tokenizer is not public).")
    return 0


def _factor(value: Decimal) -> str:
    return f"x{plain(value)}"


def _percent(rate: Decimal) -> str:
    return f"{plain(rate * 100)}%"


def _print_table(estimate: _Estimate) -> None:
    safety, hit_rate = estimate.safety, estimate.hit_rate
    headers = ["model", "in tok", "out tok", "per request", "per month"]
    headers += [f"plan ({_factor(safety)})", "batch/month"]
    if hit_rate is not None:
        headers += [f"{_percent(hit_rate)} cached", "saved"]
    rows = []
    for name, p in estimate.projections:
        row = [
            name,
            f"{p.input_tokens:,}",
            f"{p.output_tokens:,}",
            usd(p.per_request_usd),
            usd(p.monthly_usd),
            usd(p.planned_usd),
            "-" if p.batch_monthly_usd is None else usd(p.batch_monthly_usd),
        ]
        if hit_rate is not None:
            row += [usd(p.cached_usd), usd(p.cache_saving_usd)]
        rows.append(row)
    requests = estimate.projections[0][1].requests_per_month
    title = (
        f"{_count(estimate.per_day)} requests/day x {estimate.days} days"
        f" = {_count(requests)} requests/month (prices: table {estimate.version})"
    )
    emit_table(headers, rows, title=title)
    notes = [
        f"plan: per month x {plain(safety)} (--safety-factor), for peaks, retries and longer"
        " answers than planned.",
        "batch/month: the month at Batch API rates (answers within 24 h); '-' where the"
        " table has none.",
    ]
    if hit_rate is not None:
        notes.append(
            f"{_percent(hit_rate)} cached: the month if costguard's cache answers"
            f" {_percent(hit_rate)} of requests ($0 each); saved: the difference."
        )
    print("\n" + "\n".join(notes))


def _count(value: Decimal) -> str:
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return plain(value)


def _print_json(estimate: _Estimate) -> None:
    def money(value: Decimal | None) -> str | None:
        return None if value is None else plain(value)

    cached = estimate.hit_rate is not None
    out: dict[str, Any] = {
        "price_version": estimate.version,
        "requests_per_day": plain(estimate.per_day),
        "days_per_month": estimate.days,
        "safety_factor": plain(estimate.safety),
        "cache_hit_rate": None if estimate.hit_rate is None else plain(estimate.hit_rate),
        "models": [
            {
                "model": name,
                "priced_as": p.model,
                "input_tokens": p.input_tokens,
                "output_tokens": p.output_tokens,
                "requests_per_month": plain(p.requests_per_month),
                "per_request_usd": money(p.per_request_usd),
                "monthly_usd": money(p.monthly_usd),
                "planned_usd": money(p.planned_usd),
                "batch_monthly_usd": money(p.batch_monthly_usd),
                "cached_monthly_usd": money(p.cached_usd) if cached else None,
                "cache_saving_usd": money(p.cache_saving_usd) if cached else None,
            }
            for name, p in estimate.projections
        ],
    }
    emit_json(out)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command's parser to ``commands``."""
    estimate = commands.add_parser(
        "estimate",
        help="project a workload's monthly cost, one model or several side by side",
        description=(
            "Project what a steady workload costs per month (30 days) at the price table's "
            "rates: per request, per month, with a safety margin, at Batch API rates where "
            "the table has them, and with a share of requests answered by the cache."
        ),
    )
    estimate.add_argument(
        "-m",
        "--model",
        action="append",
        required=True,
        metavar="MODEL",
        help="model to price; repeat it or give a comma-separated list to compare",
    )
    estimate.add_argument(
        "--requests-per-day", required=True, metavar="N", help="requests per day (> 0)"
    )
    tokens = estimate.add_mutually_exclusive_group(required=True)
    tokens.add_argument("--input-tokens", metavar="N", help="prompt tokens per request")
    tokens.add_argument(
        "--prompt-file",
        metavar="FILE",
        help=(
            "a sample prompt, counted offline with each model's tokenizer: plain text (one "
            "user message), or .json with a list of messages or {messages, system, tools}"
        ),
    )
    estimate.add_argument(
        "--output-tokens",
        required=True,
        metavar="N",
        help="answer tokens per request (0 for embeddings)",
    )
    estimate.add_argument(
        "--safety-factor",
        default="3",
        metavar="X",
        help="multiply the monthly cost by X to plan a budget (default: 3; at least 1)",
    )
    estimate.add_argument(
        "--cache-hit-rate",
        metavar="R",
        help="share of requests answered by costguard's cache, 0 to 1 (e.g. 0.3)",
    )
    estimate.add_argument(
        "--prices", metavar="FILE", help="a price file to add to the shipped table"
    )
    add_json_option(estimate)
    estimate.set_defaults(func=_cmd_estimate)
