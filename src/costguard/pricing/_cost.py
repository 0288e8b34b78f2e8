"""What a price is, and how a call's cost follows from it.

Rates are exact ``Decimal`` USD per million tokens, each a whole multiple of 0.000001, so a
rate is an integer number of micro-dollars per million tokens and ``count * rate / 1_000_000``
is an integer number of picodollars (1e-12 USD). ``compute_cost`` works in those integers, so
costs are exact, additive and never touched by float or ``Decimal`` context rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from types import MappingProxyType

from .._errors import PricingError
from .._usage import Usage

__all__ = ["Cost", "LongContextRates", "ModelPrice", "RateValue", "Rates", "compute_cost"]

RateValue = Decimal | int | str | float
"""What a rate may be given as. Floats go through ``Decimal(repr(x))`` (their shortest exact
decimal form, so ``2.5`` is ``Decimal("2.5")``), and then must pass the same checks."""

_QUANTUM_EXP = 6  # rates are whole multiples of 10**-6 USD per million tokens
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)  # never rounds our sizes
_BASE_TIERS = frozenset({"", "auto", "default", "standard"})
_EMPTY: Mapping[str, Rates] = MappingProxyType({})


def to_rate(value: object, where: str) -> Decimal:
    """``value`` as a checked rate; else ``PricingError`` naming ``where`` (model and field)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        raise PricingError(f"{where}: must be a number or numeric string, got {value!r}")
    try:
        rate = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise PricingError(f"{where}: {value!r} is not a number") from None
    if not rate.is_finite():
        raise PricingError(f"{where}: must be finite, got {value!r}")
    if rate < 0:
        raise PricingError(f"{where}: must not be negative, got {value!r}")
    scaled = rate.scaleb(_QUANTUM_EXP, _EXACT)
    if scaled != scaled.to_integral_value(context=_EXACT):
        raise PricingError(
            f"{where}: {value!r} is finer than 0.000001 USD per million tokens "
            "(costs must be whole picodollars)"
        )
    return rate.copy_abs()  # turns -0 into 0


def _micro(rate: Decimal) -> int:
    """Micro-dollars per million tokens (exact: rates are checked multiples of 10**-6)."""
    return int(rate.scaleb(_QUANTUM_EXP, _EXACT))


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens for each token class of ``Usage``.

    Values may be given as anything ``RateValue`` allows; they are stored as checked ``Decimal``.
    """

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    # The same rates in integer micro-dollars per million tokens, in _CLASSES order: the cost
    # of every call is computed from these, in integers, exactly.
    micro: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.init:
                value = to_rate(getattr(self, f.name), f"Rates.{f.name}")
                object.__setattr__(self, f.name, value)
        micro = tuple(_micro(getattr(self, rate)) for rate, _ in _CLASSES)
        object.__setattr__(self, "micro", micro)


@dataclass(frozen=True, slots=True)
class LongContextRates:
    """Rates for requests whose prompt exceeds ``above`` tokens (the whole request pays them)."""

    above: int
    base: Rates
    batch: Rates | None = None
    tiers: Mapping[str, Rates] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", MappingProxyType(dict(self.tiers)))


def _variant(
    base: Rates, batch: Rates | None, tiers: Mapping[str, Rates], tier: str, batched: bool
) -> Rates | None:
    if batched:
        return batch
    return base if tier in _BASE_TIERS else tiers.get(tier)


def _higher(a: Rates, b: Rates) -> Rates:
    return Rates(*(max(getattr(a, f.name), getattr(b, f.name)) for f in fields(Rates) if f.init))


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Everything costguard knows about one model's price.

    ``tiers`` holds service-tier rates (``"flex"``, ``"priority"``); ``long_context`` holds the
    rates that replace all of the above once a prompt is long enough, sorted by threshold.
    ``derived`` names the rates that were not in the source but filled in by a provider rule
    (e.g. ``"base.cache_write_1h"``, ``"long_context[272000].batch.cache_read"``).
    """

    model: str
    provider: str
    mode: str
    context_window: int | None
    max_output_tokens: int | None
    base: Rates
    batch: Rates | None = None
    tiers: Mapping[str, Rates] = field(default_factory=lambda: _EMPTY)
    long_context: tuple[LongContextRates, ...] = ()
    deprecation_date: str | None = None
    derived: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", MappingProxyType(dict(self.tiers)))
        object.__setattr__(
            self, "long_context", tuple(sorted(self.long_context, key=lambda t: t.above))
        )
        object.__setattr__(self, "derived", frozenset(self.derived))

    def rates_for(
        self, *, prompt_tokens: int, service_tier: str | None = None, batch: bool = False
    ) -> Rates:
        """The rates one request pays.

        ``batch=True`` (or ``service_tier="batch"``, as Anthropic reports it) picks the batch
        rates, else a service tier (``"flex"``, ``"priority"``) picks its rates; ``None``,
        ``"auto"``, ``"default"`` and ``"standard"`` mean the standard rates, and so do
        variants the model does not price (unknown tiers, batch without batch rates).

        When ``prompt_tokens`` exceeds a long-context threshold (the highest one exceeded
        wins), that tier's rates replace all of the above for the whole request. If it lacks
        the variant asked for, each rate is the higher of its standard long-context rate and
        the variant's normal rate, so a longer prompt never pays a lower rate.
        """
        tier = (service_tier or "").lower()
        batched = batch or tier == "batch"
        short = _variant(self.base, self.batch, self.tiers, tier, batched) or self.base
        for long in reversed(self.long_context):
            if prompt_tokens > long.above:
                found = _variant(long.base, long.batch, long.tiers, tier, batched)
                return found or _higher(long.base, short)
        return short


def _usd(picodollars: int) -> Decimal:
    return Decimal(picodollars).scaleb(-12, _EXACT)


_CLASSES = (
    ("input", "input_tokens"),
    ("cache_read", "cache_read_tokens"),
    ("cache_write_5m", "cache_write_5m_tokens"),
    ("cache_write_1h", "cache_write_1h_tokens"),
    ("output", "output_tokens"),
)


def _picodollars(rates: Rates, usage: Usage) -> dict[str, int]:
    return {
        rate: getattr(usage, count) * micro
        for (rate, count), micro in zip(_CLASSES, rates.micro, strict=True)
    }


@dataclass(frozen=True, slots=True)
class Cost:
    """The exact price of one call: ``usd`` is a whole number of picodollars."""

    usd: Decimal
    rates: Rates
    model: str
    version: str
    usage: Usage

    @property
    def picodollars(self) -> int:
        """``usd`` as an integer number of 1e-12 USD (what the ledger stores)."""
        return int(self.usd.scaleb(12, _EXACT))

    def breakdown(self) -> dict[str, Decimal]:
        """USD per token class (``input``, ``cache_read``, ``cache_write_5m``,
        ``cache_write_1h``, ``output``); the values sum to ``usd`` exactly."""
        return {k: _usd(v) for k, v in _picodollars(self.rates, self.usage).items()}


def compute_cost(
    price: ModelPrice,
    usage: Usage,
    *,
    service_tier: str | None = None,
    batch: bool = False,
    version: str = "",
) -> Cost:
    """Price ``usage`` at ``price``: the sum over token classes of ``count * rate / 1_000_000``.

    Raises ``PricingError`` if a token count is negative or not an integer.
    """
    for _, count in _CLASSES:
        value = getattr(usage, count)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PricingError(f"usage.{count} must be a non-negative integer, got {value!r}")
    rates = price.rates_for(
        prompt_tokens=usage.prompt_tokens, service_tier=service_tier, batch=batch
    )
    total = sum(
        getattr(usage, count) * micro
        for (_, count), micro in zip(_CLASSES, rates.micro, strict=True)
    )
    return Cost(_usd(total), rates, price.model, version, usage)
