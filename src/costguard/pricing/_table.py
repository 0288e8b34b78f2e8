"""The price table: where prices come from, and how a model name finds its price.

Price file schema (JSON; the packaged ``data/prices-<date>.json`` is one)::

    {
      "_schema": ..., "_source": ...,      keys starting with "_" are comments
      "version": "2026-11-21",             optional; a file's name stem otherwise
      "aliases": {"family": "snapshot"},   optional; extra names for a priced model
      "models": {
        "<model>": {
          "provider": "openai" | "anthropic" | ...,   optional: "claude*" -> anthropic, else openai
          "mode": "chat" | "responses" | "completion" | "embedding",   optional, default "chat"
          "context_window": int | null, "max_output_tokens": int | null,
          "deprecation_date": "YYYY-MM-DD",           optional
          "base":  RATES,                             required
          "batch": RATES,                             optional: Batch API rates
          "tiers": {"flex": RATES, "priority": RATES},  optional: service tiers
          "long_context": [                           optional: prompts above a threshold
            {"above": 272000, "base": RATES, "batch": RATES, "tiers": {...}}
          ],
          "derived": ["base.cache_write_1h", ...]     optional: rates filled in by a rule
        }
      }
    }
    RATES = {"input": r, "output": r, "cache_read": r, "cache_write_5m": r, "cache_write_1h": r}

Rates are USD per million tokens, written as strings (``"2.5"``) or JSON numbers (read as exact
decimals, never floats), each a multiple of 0.000001. ``input`` and ``output`` are required;
a missing cache rate is derived from the same block's ``input`` and listed in ``derived``:

- Anthropic (documented prompt-caching multipliers): ``cache_read`` 0.1x, ``cache_write_5m``
  1.25x, ``cache_write_1h`` 2x input.
- Everyone else (OpenAI): a rate that is not published carries no discount or surcharge, so
  ``cache_read`` and ``cache_write_5m`` equal input and ``cache_write_1h`` equals
  ``cache_write_5m``. (OpenAI's short-lived "30m" cache writes are billed in the ``5m`` class
  and its "12h" writes in the ``1h`` class.)

Derived rates are rounded up to the next 0.000001 (never under-billed). Unknown keys are
errors, so a typo cannot silently price a token class at zero.

Name resolution in ``PriceTable.get``: the exact name, then an alias; for a fine-tuned
``ft:<base>:<org>:<suffix>:<id>`` the ``ft:<base>`` entry; then the name without a trailing
``-YYYY-MM-DD`` / ``-YYYYMMDD`` snapshot date (so unseen snapshots price as their family);
then, for ``openai/<name>`` or ``anthropic/<name>``, ``<name>`` if that provider prices it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from importlib import resources
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .._errors import PricingError, UnknownModelPriceError
from .._usage import Usage
from ._cost import (
    _EXACT,
    Cost,
    LongContextRates,
    ModelPrice,
    Rates,
    RateValue,
    compute_cost,
    to_rate,
)

__all__ = ["PriceTable"]

_RATE_FIELDS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
_MODEL_KEYS = frozenset(
    {"provider", "mode", "context_window", "max_output_tokens", "deprecation_date", "base", "batch"}
    | {"tiers", "long_context", "derived"}
)
_LONG_KEYS = frozenset({"above", "base", "batch", "tiers"})
_RESERVED_TIERS = frozenset({"", "auto", "batch", "default", "standard"})
_PREFIXES = frozenset({"openai", "anthropic"})
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_STEP = Decimal("0.000001")
SCHEMA_NOTE = (
    "costguard price table: USD per 1M tokens as exact decimal strings; "
    "schema in costguard/pricing/_table.py"
)


def _guess_provider(model: str) -> str:
    return "anthropic" if model.startswith("claude") else "openai"


def _derive(provider: str, rates: dict[str, Decimal], name: str) -> Decimal:
    base = rates["input"]
    if provider == "anthropic":
        factor = {"cache_read": "0.1", "cache_write_5m": "1.25", "cache_write_1h": "2"}[name]
        return _EXACT.multiply(base, Decimal(factor)).quantize(_STEP, ROUND_CEILING, _EXACT)
    return rates["cache_write_5m"] if name == "cache_write_1h" else base


def _obj(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        got = "nothing" if value is None else repr(value)
        raise PricingError(f"{where}: expected an object, got {got}")
    return value


def _check_keys(raw: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise PricingError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")


def _count(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PricingError(f"{where}: must be a non-negative integer or null, got {value!r}")
    return value


def _rates(raw: object, provider: str, where: str, path: str, derived: set[str]) -> Rates:
    block = _obj(raw, f"{where}: {path}")
    _check_keys(block, _RATE_FIELDS, f"{where}: {path}")
    values: dict[str, Decimal] = {}
    for name in _RATE_FIELDS:
        if block.get(name) is not None:
            values[name] = to_rate(block[name], f"{where}: {path}.{name}")
        elif name in ("input", "output"):
            raise PricingError(f"{where}: {path}.{name}: missing (input and output are required)")
        else:
            values[name] = _derive(provider, values, name)
            derived.add(f"{path}.{name}")
    return Rates(**values)


def _variants(
    raw: Mapping[str, Any], provider: str, where: str, path: str, derived: set[str]
) -> tuple[Rates, Rates | None, dict[str, Rates]]:
    prefix = f"{path}." if path else ""
    if raw.get("base") is None:
        raise PricingError(f"{where}: {prefix}base: missing (the standard rates are required)")
    base = _rates(raw["base"], provider, where, f"{prefix}base", derived)
    batch = raw.get("batch")
    batch_rates = (
        None if batch is None else _rates(batch, provider, where, f"{prefix}batch", derived)
    )
    tiers: dict[str, Rates] = {}
    for name, block in _obj(raw.get("tiers") or {}, f"{where}: {prefix}tiers").items():
        key = str(name).lower()
        if key in _RESERVED_TIERS:
            raise PricingError(
                f"{where}: {prefix}tiers.{name}: reserved tier name (use base/batch)"
            )
        tiers[key] = _rates(block, provider, where, f"{prefix}tiers.{key}", derived)
    return base, batch_rates, tiers


def _model(model: str, raw_entry: object, where: str) -> ModelPrice:
    where = f"{where}price for {model!r}"
    raw = _obj(raw_entry, where)
    _check_keys(raw, _MODEL_KEYS, where)
    provider = raw.get("provider") or _guess_provider(model)
    mode = raw.get("mode") or "chat"
    deprecation = raw.get("deprecation_date")
    for key, value in (("provider", provider), ("mode", mode), ("deprecation_date", deprecation)):
        if value is not None and not isinstance(value, str):
            raise PricingError(f"{where}: {key}: must be a string, got {value!r}")
    listed = raw.get("derived") or []
    if not isinstance(listed, list) or not all(isinstance(d, str) for d in listed):
        raise PricingError(f"{where}: derived: must be a list of rate names")
    derived = set(listed)
    base, batch, tiers = _variants(raw, provider, where, "", derived)
    long_context: list[LongContextRates] = []
    for item in raw.get("long_context") or ():
        long = _obj(item, f"{where}: long_context")
        _check_keys(long, _LONG_KEYS, f"{where}: long_context")
        above = _count(long.get("above"), f"{where}: long_context.above")
        if not above or any(t.above == above for t in long_context):
            raise PricingError(f"{where}: long_context.above: need a distinct positive threshold")
        parts = _variants(long, provider, where, f"long_context[{above}]", derived)
        long_context.append(LongContextRates(above, *parts))
    return ModelPrice(
        model=model,
        provider=provider,
        mode=mode,
        context_window=_count(raw.get("context_window"), f"{where}: context_window"),
        max_output_tokens=_count(raw.get("max_output_tokens"), f"{where}: max_output_tokens"),
        base=base,
        batch=batch,
        tiers=tiers,
        long_context=tuple(long_context),
        deprecation_date=deprecation,
        derived=frozenset(derived),
    )


def _rates_json(rates: Rates) -> dict[str, str]:
    return {name: format(getattr(rates, name).normalize(_EXACT), "f") for name in _RATE_FIELDS}


def _variants_json(base: Rates, batch: Rates | None, tiers: Mapping[str, Rates]) -> dict[str, Any]:
    out: dict[str, Any] = {"base": _rates_json(base)}
    if batch is not None:
        out["batch"] = _rates_json(batch)
    if tiers:
        out["tiers"] = {name: _rates_json(tiers[name]) for name in sorted(tiers)}
    return out


def _model_json(price: ModelPrice) -> dict[str, Any]:
    out: dict[str, Any] = {
        "provider": price.provider,
        "mode": price.mode,
        "context_window": price.context_window,
        "max_output_tokens": price.max_output_tokens,
    }
    if price.deprecation_date is not None:
        out["deprecation_date"] = price.deprecation_date
    out |= _variants_json(price.base, price.batch, price.tiers)
    if price.long_context:
        out["long_context"] = [
            {"above": t.above, **_variants_json(t.base, t.batch, t.tiers)}
            for t in price.long_context
        ]
    if price.derived:
        out["derived"] = sorted(price.derived)
    return out


def _custom(version: str) -> str:
    return version if version.endswith("+custom") else f"{version}+custom"


class PriceTable:
    """An immutable set of model prices, with the table's ``version`` (its date).

    ``override`` and ``merged`` return new tables; ``default()`` is the packaged table.
    ``model in table`` and ``table.get(model)`` use the same name resolution (module
    docstring); ``iter`` and ``len`` see only the models' own names, not aliases.
    """

    __slots__ = ("_aliases", "_models", "_resolved", "version")

    def __init__(
        self,
        prices: Iterable[ModelPrice],
        *,
        version: str = "custom",
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        models = {}
        for price in prices:
            if not isinstance(price, ModelPrice):
                raise TypeError(f"PriceTable wants ModelPrice objects, got {price!r}")
            models[price.model] = price
        self._models: Mapping[str, ModelPrice] = MappingProxyType(dict(sorted(models.items())))
        self._resolved: dict[str, ModelPrice | None] = {}
        self._aliases: Mapping[str, str] = MappingProxyType(dict(aliases or {}))
        for alias, target in self._aliases.items():
            if target not in models:
                raise PricingError(f"alias {alias!r} points to unpriced model {target!r}")
        self.version = version

    # -- construction -------------------------------------------------------------------

    @classmethod
    def default(cls) -> PriceTable:
        """The packaged price table (read once per process, then shared)."""
        return _default_table()

    @classmethod
    def from_file(cls, path: str | PathLike[str]) -> PriceTable:
        """Read a price file in the schema above; ``PricingError`` names the file and problem."""
        path = Path(path)
        try:
            data = json.loads(path.read_bytes(), parse_float=Decimal, parse_constant=Decimal)
        except (OSError, ValueError) as exc:
            raise PricingError(f"price file {path}: {exc}") from exc
        version = path.stem.removeprefix("prices-")
        return cls._from_document(data, where=f"price file {path}: ", version=version)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, version: str = "custom") -> PriceTable:
        """A table from a parsed price document, or from a plain ``{model: entry}`` mapping."""
        if "models" not in data:
            data = {"models": data}
        return cls._from_document(data, where="", version=version)

    @classmethod
    def _from_document(cls, data: object, *, where: str, version: str) -> PriceTable:
        doc = _obj(data, where.rstrip(": ") or "price document")
        models = _obj(doc.get("models"), f"{where}models")
        aliases = _obj(doc.get("aliases") or {}, f"{where}aliases")
        version = doc.get("version", version)
        if not isinstance(version, str) or not all(isinstance(v, str) for v in aliases.values()):
            raise PricingError(f"{where}version and alias targets must be strings")
        prices = [_model(str(name), entry, where) for name, entry in models.items()]
        try:
            return cls(prices, version=version, aliases=aliases)
        except PricingError as exc:
            raise PricingError(f"{where}{exc}") from None

    def override(
        self,
        model: str,
        *,
        input: RateValue,
        output: RateValue,
        cache_read: RateValue | None = None,
        cache_write_5m: RateValue | None = None,
        cache_write_1h: RateValue | None = None,
        batch: Mapping[str, RateValue] | None = None,
        tiers: Mapping[str, Mapping[str, RateValue]] | None = None,
        long_context: Sequence[Mapping[str, Any]] | None = None,
        provider: str | None = None,
        mode: str | None = None,
        context_window: int | None = None,
        max_output_tokens: int | None = None,
    ) -> PriceTable:
        """A new table in which ``model`` (exactly this name) costs what is given here.

        The given rates replace the model's rates entirely: batch, tier and long-context
        rates are only kept if passed again (``batch``/``tiers`` take RATES mappings,
        ``long_context`` a list in the file schema). Unset cache rates are derived from
        ``input`` by the provider's rule. Metadata not given is kept from the price
        ``model`` resolved to before. Rates may be ``Decimal``, ``int``, numeric ``str`` or
        ``float`` (read as ``Decimal(repr(x))``); negative, NaN, infinite, non-numeric or
        finer-than-0.000001 values raise ``PricingError`` naming the model and field.
        The new table's version is this one's plus ``"+custom"``.
        """
        old = self.get(model)

        def kept(value: object, name: str) -> object:
            return getattr(old, name) if value is None and old is not None else value

        raw = {
            "provider": kept(provider, "provider"),
            "mode": kept(mode, "mode"),
            "context_window": kept(context_window, "context_window"),
            "max_output_tokens": kept(max_output_tokens, "max_output_tokens"),
            "deprecation_date": kept(None, "deprecation_date"),
            "base": {"input": input, "output": output, "cache_read": cache_read}
            | {"cache_write_5m": cache_write_5m, "cache_write_1h": cache_write_1h},
            "batch": batch,
            "tiers": tiers,
            "long_context": long_context,
        }
        price = _model(model, raw, "")
        aliases = {k: v for k, v in self._aliases.items() if k != model}
        return PriceTable(
            [*self._models.values(), price], version=_custom(self.version), aliases=aliases
        )

    def merged(self, other: PriceTable | Mapping[str, Any] | str | PathLike[str]) -> PriceTable:
        """A new table with ``other``'s models added, replacing same-named ones here.

        ``other`` may be a table, a price file path, or a mapping (see ``from_mapping``).
        The version becomes ``"<this>+<other's>"``.
        """
        if isinstance(other, str | PathLike):
            other = PriceTable.from_file(other)
        elif not isinstance(other, PriceTable):
            other = PriceTable.from_mapping(other)
        models = {**self._models, **other._models}
        aliases = {k: v for k, v in self._aliases.items() if k not in other._models}
        return PriceTable(
            models.values(),
            version=f"{self.version}+{other.version}",
            aliases=aliases | dict(other._aliases),
        )

    # -- lookup -------------------------------------------------------------------------

    def _lookup(self, model: str) -> ModelPrice | None:
        candidates = [model]
        if model.startswith("ft:") and model.count(":") > 1:
            candidates.append("ft:" + model.split(":")[1])
        candidates += [_SNAPSHOT.sub("", name) for name in candidates]
        for name in candidates:
            price = self._models.get(name) or self._models.get(self._aliases.get(name, ""))
            if price is not None:
                return price
        return None

    def get(self, model: str) -> ModelPrice | None:
        """The price of ``model``, resolved as the module docstring says, or ``None``."""
        try:
            return self._resolved[model]  # the table never changes: resolve each name once
        except KeyError:
            price = self._resolve(model)
        if len(self._resolved) < 4096:
            self._resolved[model] = price
        return price

    def _resolve(self, model: str) -> ModelPrice | None:
        price = self._lookup(model)
        if price is None:
            prefix, slash, rest = model.partition("/")
            if slash and prefix in _PREFIXES:
                price = self._lookup(rest)
                return price if price is not None and price.provider == prefix else None
        return price

    def require(self, model: str) -> ModelPrice:
        """Like ``get``, but raises ``UnknownModelPriceError`` when ``model`` is unpriced."""
        price = self.get(model)
        if price is None:
            raise UnknownModelPriceError(model)
        return price

    def cost(
        self, model: str, usage: Usage, *, service_tier: str | None = None, batch: bool = False
    ) -> Cost | None:
        """The cost of one call to ``model``, or ``None`` when the model is unpriced."""
        price = self.get(model)
        if price is None:
            return None
        return compute_cost(
            price, usage, service_tier=service_tier, batch=batch, version=self.version
        )

    @property
    def aliases(self) -> Mapping[str, str]:
        """Extra names (usually a family without its own entry) and the model each means."""
        return self._aliases

    def as_dict(self) -> dict[str, Any]:
        """This table as a JSON-ready price document (``from_mapping`` reads it back)."""
        return {
            "_schema": SCHEMA_NOTE,
            "version": self.version,
            "aliases": dict(sorted(self._aliases.items())),
            "models": {name: _model_json(price) for name, price in self._models.items()},
        }

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.get(model) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"<PriceTable version={self.version!r} models={len(self._models)}>"


@functools.cache
def _default_table() -> PriceTable:
    folder = resources.files("costguard.pricing").joinpath("data")
    files = sorted(f.name for f in folder.iterdir() if re.fullmatch(r"prices-.+\.json", f.name))
    if not files:
        raise PricingError(
            "costguard is installed without its price file (pricing/data/prices-*.json)"
        )
    name = files[-1]
    try:
        data = json.loads(folder.joinpath(name).read_bytes(), parse_float=Decimal)
    except (OSError, ValueError) as exc:
        raise PricingError(f"packaged price file {name}: {exc}") from exc
    version = name.removeprefix("prices-").removesuffix(".json")
    return PriceTable._from_document(data, where=f"packaged price file {name}: ", version=version)
