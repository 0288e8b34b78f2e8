"""The price table: packaged data, name resolution, overrides, merging and price files."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from costguard import PricingError, UnknownModelPriceError
from costguard._usage import Usage
from costguard.pricing import ModelPrice, PriceTable, Rates

REFERENCE = Path(__file__).parents[2] / "shared/reference/litellm_model_prices.json"
FIRST_PARTY = {"openai": "openai", "text-completion-openai": "openai", "anthropic": "anthropic"}
TEXT_MODES = {"chat", "responses", "completion", "embedding"}
# litellm field -> our rate name; then an optional long-context threshold and a variant.
REF_FIELD = re.compile(
    r"(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost(?:_above_1hr|_above_12hr)?)"
    r"(?:_above_(\d+)k_tokens)?(?:_(batches|flex|priority))?"
)
OUR_NAME = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write_5m",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "cache_creation_input_token_cost_above_12hr": "cache_write_1h",
}


def _doc(**entry: Any) -> dict[str, Any]:
    return {"version": "test", "models": {"m": {"provider": "openai", **entry}}}


def _pick(price: ModelPrice, above: str | None, variant: str | None) -> Rates | None:
    scope: Any = price
    if above is not None:
        scope = next(t for t in price.long_context if t.above == int(above) * 1000)
    if variant is None:
        return scope.base  # type: ignore[no-any-return]
    if variant == "batches":
        return scope.batch  # type: ignore[no-any-return]
    return scope.tiers.get(variant)  # type: ignore[no-any-return]


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference price table not present")
def test_every_first_party_text_model_in_the_reference_is_priced_at_exactly_its_rates() -> None:
    """Each first-party OpenAI/Anthropic text model resolves; every rate is reference x 1e6."""
    reference = json.loads(REFERENCE.read_text())
    table = PriceTable.default()
    checked = 0
    for name, entry in reference.items():
        if not isinstance(entry, dict) or entry.get("litellm_provider") not in FIRST_PARTY:
            continue
        if entry.get("mode") not in TEXT_MODES or "input_cost_per_token" not in entry:
            continue
        price = table.require(name)
        assert price.provider == FIRST_PARTY[entry["litellm_provider"]]
        assert price.context_window == entry.get("max_input_tokens")
        for key, value in entry.items():
            match = REF_FIELD.fullmatch(key)
            if match is None:
                continue
            rates = _pick(price, match[2], match[3])
            assert rates is not None, (name, key)
            assert getattr(rates, OUR_NAME[match[1]]) == Decimal(repr(value)) * 10**6, (name, key)
            checked += 1
    assert len(table) >= 150
    assert checked > 1000


def test_the_packaged_table_is_one_dated_file_loaded_once() -> None:
    """Exactly one prices-<date>.json ships; default() returns the same table every time."""
    data = resources.files("costguard.pricing").joinpath("data")
    files = [f.name for f in data.iterdir() if f.name.startswith("prices-")]
    assert len(files) == 1
    assert re.fullmatch(r"prices-\d{4}-\d{2}-\d{2}\.json", files[0])
    assert PriceTable.default() is PriceTable.default()
    assert PriceTable.default().version == files[0][len("prices-") : -len(".json")]


def test_a_snapshot_in_the_table_keeps_its_own_entry() -> None:
    """gpt-4o-2024-08-06 and claude-sonnet-4-5-20250929 resolve to their own entries."""
    table = PriceTable.default()
    assert table.require("gpt-4o-2024-08-06").model == "gpt-4o-2024-08-06"
    assert table.require("claude-sonnet-4-5-20250929").model == "claude-sonnet-4-5-20250929"


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("claude-sonnet-4-5-20991231", "claude-sonnet-4-5"),
        ("gpt-4o-2099-01-01", "gpt-4o"),
        ("gpt-4o-audio-preview", "gpt-4o-audio-preview-2025-06-03"),
        ("gpt-4o-mini-audio-preview-2099-01-01", "gpt-4o-mini-audio-preview-2024-12-17"),
        ("openai/gpt-4o", "gpt-4o"),
        ("anthropic/claude-opus-4-7", "claude-opus-4-7"),
        ("anthropic/claude-opus-4-7-20991231", "claude-opus-4-7"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "ft:gpt-4o-mini-2024-07-18"),
    ],
)
def test_unlisted_names_resolve_to_the_model_they_denote(name: str, family: str) -> None:
    """Unseen snapshots, aliases, provider prefixes and fine-tune ids find their price."""
    table = PriceTable.default()
    assert table.require(name).model == family
    assert name in table


@pytest.mark.parametrize(
    "name",
    ["no-such-model", "anthropic/gpt-4o", "openai/claude-opus-4-7", "azure/gpt-4o", "gpt-4o-0513"],
)
def test_an_unpriced_name_is_none_and_require_raises(name: str) -> None:
    """Unknown models, wrong provider prefixes and third-party prefixes are not priced."""
    table = PriceTable.default()
    assert table.get(name) is None
    assert name not in table
    assert table.cost(name, Usage(input_tokens=1)) is None
    with pytest.raises(UnknownModelPriceError, match=re.escape(repr(name))):
        table.require(name)


def test_iteration_and_length_cover_model_names_not_aliases() -> None:
    """iter() yields every model's own name once; aliases resolve but are not listed."""
    table = PriceTable.default()
    names = list(table)
    assert len(names) == len(table) == len(set(names))
    assert "gpt-4o" in names
    assert "gpt-4o-audio-preview" not in names
    assert table.aliases["gpt-4o-audio-preview"] == "gpt-4o-audio-preview-2025-06-03"


def test_missing_anthropic_cache_rates_follow_the_documented_multipliers() -> None:
    """Unpriced Anthropic cache rates are 0.1x / 1.25x / 2x input, and marked derived."""
    table = PriceTable.from_mapping(
        {"claude-x": {"provider": "anthropic", "base": {"input": "3", "output": "15"}}}
    )
    price = table.require("claude-x")
    assert price.base == Rates(Decimal(3), Decimal(15), Decimal("0.3"), Decimal("3.75"), Decimal(6))
    assert price.derived == {"base.cache_read", "base.cache_write_5m", "base.cache_write_1h"}
    sonnet = PriceTable.default().require("claude-sonnet-4-5")
    assert sonnet.batch is not None
    assert sonnet.batch.cache_write_1h == 2 * sonnet.batch.input
    assert "batch.cache_write_1h" in sonnet.derived


def test_unpublished_openai_cache_rates_carry_no_discount_or_surcharge() -> None:
    """An OpenAI model without a published cache rate bills those tokens at its input rate."""
    gpt4o = PriceTable.default().require("gpt-4o")
    assert gpt4o.base.cache_read == Decimal("1.25")
    assert gpt4o.base.cache_write_5m == gpt4o.base.cache_write_1h == gpt4o.base.input
    assert {"base.cache_write_5m", "base.cache_write_1h"} <= gpt4o.derived
    assert "base.cache_read" not in gpt4o.derived


def test_derived_rates_round_up_to_the_smallest_rate_step() -> None:
    """A derived rate finer than 0.000001 is rounded up, never down."""
    table = PriceTable.from_mapping(
        {"claude-tiny": {"base": {"input": "0.000003", "output": "0.000003"}}}
    )
    assert table.require("claude-tiny").base.cache_read == Decimal("0.000001")


def test_override_returns_a_new_table_and_leaves_the_old_one_alone() -> None:
    """override() prices the model in a new '+custom' table and keeps its metadata."""
    table = PriceTable.default()
    custom = table.override("gpt-4o", input="1", output=Decimal(2), cache_read=0.5)
    assert custom is not table
    assert table.require("gpt-4o").base.input == Decimal("2.5")
    price = custom.require("gpt-4o")
    assert (
        price.base.input == 1 and price.base.output == 2 and price.base.cache_read == Decimal("0.5")
    )
    assert price.batch is None and not price.tiers
    assert (price.provider, price.context_window) == ("openai", 128000)
    assert custom.version == f"{table.version}+custom"
    assert custom.override("gpt-4o", input=1, output=1).version == f"{table.version}+custom"


def test_override_adds_a_new_model_with_tiers_and_long_context() -> None:
    """A new model can carry batch, tier and long-context rates; claude* names are Anthropic."""
    table = PriceTable.default().override(
        "claude-house",
        input=2,
        output=8,
        batch={"input": 1, "output": 4},
        tiers={"Priority": {"input": 4, "output": 16}},
        long_context=[{"above": 1000, "base": {"input": 3, "output": 9}}],
        context_window=5000,
    )
    price = table.require("claude-house")
    assert price.provider == "anthropic"
    assert price.tiers["priority"].output == 16
    assert price.rates_for(prompt_tokens=1001).input == 3
    assert price.context_window == 5000


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input": "-1"}, "base.input"),
        ({"input": Decimal("NaN")}, "base.input"),
        ({"input": float("inf")}, "base.input"),
        ({"input": "cheap"}, "base.input"),
        ({"input": True}, "base.input"),
        ({"output": "0.0000001"}, "base.output"),
        ({"cache_read": -0.5}, "base.cache_read"),
        ({"batch": {"input": 1}}, "batch.output"),
        ({"tiers": {"flex": {"input": 1, "output": "x"}}}, "tiers.flex.output"),
        ({"tiers": {"default": {"input": 1, "output": 1}}}, "tiers.default"),
        ({"long_context": [{"above": 0, "base": {"input": 1, "output": 1}}]}, "long_context"),
    ],
)
def test_override_rejects_bad_rates_naming_model_and_field(
    kwargs: dict[str, Any], field: str
) -> None:
    """Negative, NaN, infinite, non-numeric, too-fine or incomplete rates raise PricingError."""
    args: dict[str, Any] = {"input": 1, "output": 1} | kwargs
    with pytest.raises(PricingError, match=rf"'my-model'.*{re.escape(field)}"):
        PriceTable.default().override("my-model", **args)


def test_merged_adds_and_replaces_models_from_tables_mappings_and_files(tmp_path: Path) -> None:
    """merged() takes a table, a mapping or a price file; the other side wins."""
    base = PriceTable.default()
    mine = {
        "gpt-4o": {"base": {"input": 1, "output": 2}},
        "house": {"base": {"input": 3, "output": 4}},
    }
    from_mapping = base.merged(mine)
    assert from_mapping.require("gpt-4o").base.input == 1
    assert from_mapping.require("house").base.output == 4
    assert from_mapping.require("claude-opus-4-7") == base.require("claude-opus-4-7")
    assert from_mapping.version == f"{base.version}+custom"
    path = tmp_path / "prices-house.json"
    path.write_text(json.dumps({"version": "v9", "models": mine}))
    assert base.merged(path).version == f"{base.version}+v9"
    assert base.merged(str(path)).require("house").base.input == 3
    assert base.merged(PriceTable.from_file(path)).require("gpt-4o").base.input == 1


def test_a_table_round_trips_through_its_price_file(tmp_path: Path) -> None:
    """as_dict() written as JSON reads back as an identical table."""
    table = PriceTable.default().override("house", input="0.125", output=1)
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(table.as_dict()))
    again = PriceTable.from_file(path)
    assert again.as_dict() == table.as_dict()
    assert all(again.require(name) == table.require(name) for name in table)


def test_a_price_file_without_a_version_is_versioned_by_its_name(tmp_path: Path) -> None:
    """A file's version defaults to its name minus 'prices-'; JSON numbers are read exactly."""
    path = tmp_path / "prices-2030-01-01.json"
    path.write_text('{"models": {"m": {"base": {"input": 0.1, "output": 1e-6}}}}')
    table = PriceTable.from_file(path)
    assert table.version == "2030-01-01"
    assert table.require("m").base.input == Decimal("0.1")
    assert table.require("m").base.output == Decimal("0.000001")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "Expecting property name"),
        ("[]", "expected an object"),
        ('{"version": "x"}', "models"),
        (json.dumps(_doc(base={"input": 1})), "'m'.*base.output.*missing"),
        (json.dumps(_doc(rates={"input": 1, "output": 1})), "'m'.*unknown key.*'rates'"),
        (json.dumps(_doc(base={"input": 1, "output": 1, "cache_reed": 1})), "'cache_reed'"),
        ('{"models": {"m": {"base": {"input": NaN, "output": 1}}}}', "'m'.*base.input.*finite"),
        (json.dumps(_doc(base={"input": 1, "output": 1}, context_window=-5)), "context_window"),
        (
            json.dumps({"aliases": {"a": "nowhere"}, "models": {}}),
            "alias 'a' points to unpriced model 'nowhere'",
        ),
        (json.dumps(_doc(base={"input": 1, "output": 1}, long_context=[{"base": {}}])), "above"),
    ],
)
def test_a_malformed_price_file_raises_naming_the_file_and_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    """Bad JSON, shapes, keys, rates or aliases raise PricingError naming file and problem."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(PricingError, match=rf"price file .*bad\.json.*{problem}"):
        PriceTable.from_file(path)


def test_a_missing_price_file_raises_pricing_error(tmp_path: Path) -> None:
    """Reading a price file that does not exist is a PricingError naming the path."""
    with pytest.raises(PricingError, match=r"absent\.json"):
        PriceTable.from_file(tmp_path / "absent.json")


def test_rates_built_directly_are_checked_too() -> None:
    """Rates() itself refuses negative or too-fine values, naming the field."""
    with pytest.raises(PricingError, match=r"Rates\.cache_write_1h"):
        Rates(Decimal(1), Decimal(1), Decimal(1), Decimal(1), Decimal("1e-7"))
    with pytest.raises(PricingError, match=r"Rates\.input"):
        Rates(Decimal(-1), Decimal(1), Decimal(1), Decimal(1), Decimal(1))
