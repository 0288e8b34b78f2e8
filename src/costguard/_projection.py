"""Monthly cost projections for a steady workload: the maths behind ``costguard estimate``.

A workload is ``requests_per_day`` requests, each with ``input_tokens`` of prompt and
``output_tokens`` of answer. Its cost is priced with :func:`~costguard.pricing.compute_cost`
(so long-context tiers apply per request, as the provider bills them) and scaled up:

- ``per_request_usd``: one request at the standard rates;
- ``monthly_usd``: ``per_request_usd * requests_per_day * days_per_month`` (30 by default:
  a round month, within 1.5% of the calendar average of 30.44 days);
- ``planned_usd``: ``monthly_usd * safety_factor``, what to budget for (3x by default:
  traffic peaks, retries and longer answers than planned all push real spend up);
- ``cached_usd`` / ``cache_saving_usd``: ``monthly_usd`` split by ``cache_hit_rate``, the
  share of requests costguard's response cache would answer (a cache hit costs $0);
- ``batch_monthly_usd``: the same month at the Batch API rates, or ``None`` when the price
  table has none for the model.

Everything is exact ``Decimal`` arithmetic (multiplications and additions of exact values,
under a context that never rounds), so ``cached_usd + cache_saving_usd == monthly_usd``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal

from ._usage import Usage
from .pricing import ModelPrice, compute_cost

__all__ = ["DAYS_PER_MONTH", "DEFAULT_SAFETY_FACTOR", "Projection", "project_monthly_cost"]

DAYS_PER_MONTH = 30
DEFAULT_SAFETY_FACTOR = Decimal(3)

_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)  # never rounds our sizes


@dataclass(frozen=True, slots=True)
class Projection:
    """One model's projected monthly cost for a workload; money in exact USD."""

    model: str
    input_tokens: int
    output_tokens: int
    requests_per_month: Decimal
    per_request_usd: Decimal
    monthly_usd: Decimal
    safety_factor: Decimal
    planned_usd: Decimal
    cache_hit_rate: Decimal
    cached_usd: Decimal
    cache_saving_usd: Decimal
    batch_monthly_usd: Decimal | None


def _number(value: Decimal | int, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{name} must be a Decimal or int, got {value!r}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value}")
    return number


def _tokens(value: int, name: str, *, allow_zero: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def project_monthly_cost(
    price: ModelPrice,
    *,
    requests_per_day: Decimal | int,
    input_tokens: int,
    output_tokens: int,
    safety_factor: Decimal | int = DEFAULT_SAFETY_FACTOR,
    cache_hit_rate: Decimal | int = 0,
    days_per_month: int = DAYS_PER_MONTH,
) -> Projection:
    """Project ``price``'s model over a month of the workload (see the module docstring).

    ``requests_per_day`` must be positive (fractions allowed: 0.5 is one request every other
    day), ``input_tokens`` positive, ``output_tokens`` zero or more (zero for embeddings),
    ``safety_factor`` at least 1, ``cache_hit_rate`` within [0, 1] and ``days_per_month``
    positive; otherwise ``ValueError`` (``TypeError`` for a float: money stays exact).
    """
    per_day = _number(requests_per_day, "requests_per_day")
    if per_day <= 0:
        raise ValueError(f"requests_per_day must be > 0, got {requests_per_day}")
    _tokens(input_tokens, "input_tokens", allow_zero=False)
    _tokens(output_tokens, "output_tokens", allow_zero=True)
    _tokens(days_per_month, "days_per_month", allow_zero=False)
    safety = _number(safety_factor, "safety_factor")
    if safety < 1:
        raise ValueError(f"safety_factor must be >= 1, got {safety_factor}")
    hit_rate = _number(cache_hit_rate, "cache_hit_rate")
    if not 0 <= hit_rate <= 1:
        raise ValueError(f"cache_hit_rate must be within [0, 1], got {cache_hit_rate}")

    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    per_request = compute_cost(price, usage).usd
    requests = _EXACT.multiply(per_day, Decimal(days_per_month))
    monthly = _EXACT.multiply(per_request, requests)
    saving = _EXACT.multiply(monthly, hit_rate)
    batch: Decimal | None = None
    if price.batch is not None:
        batch = _EXACT.multiply(compute_cost(price, usage, batch=True).usd, requests)
    return Projection(
        model=price.model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        requests_per_month=requests,
        per_request_usd=per_request,
        monthly_usd=monthly,
        safety_factor=safety,
        planned_usd=_EXACT.multiply(monthly, safety),
        cache_hit_rate=hit_rate,
        cached_usd=_EXACT.subtract(monthly, saving),
        cache_saving_usd=saving,
        batch_monthly_usd=batch,
    )
