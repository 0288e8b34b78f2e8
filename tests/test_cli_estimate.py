"""`costguard estimate`: monthly projections, side by side, exact, with shell-friendly errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import costguard
from costguard._projection import DAYS_PER_MONTH, project_monthly_cost
from costguard.cli import main
from costguard.pricing import PriceTable, compute_cost

WORKLOAD = ["--requests-per-day", "1000", "--input-tokens", "1200", "--output-tokens", "300"]


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["estimate", *args, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def _models(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["model"]: m for m in out["models"]}


def _per_request(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    price = PriceTable.default().require(model)
    usage = costguard.Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return compute_cost(price, usage).usd


def test_several_models_side_by_side_are_priced_exactly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Repeated --model and comma lists compare models; each month is exact per-request x 30k."""
    out = _json(capsys, "--model", "gpt-4o,gpt-4o-mini", "-m", "claude-sonnet-4-6", *WORKLOAD)
    models = _models(out)
    assert list(models) == ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-6"]
    assert out["days_per_month"] == DAYS_PER_MONTH == 30
    for name, row in models.items():
        expected = _per_request(name, 1200, 300) * 1000 * 30
        assert Decimal(row["monthly_usd"]) == expected
        assert row["requests_per_month"] == "30000"
    assert models["gpt-4o"]["monthly_usd"] == "180"  # (1200 x 2.5 + 300 x 10) / 1e6 x 30,000


def test_repeated_models_are_listed_once(capsys: pytest.CaptureFixture[str]) -> None:
    """A model named twice (flag and comma list) gets one row."""
    out = _json(capsys, "-m", "gpt-4o", "-m", "gpt-4o,", *WORKLOAD)
    assert [m["model"] for m in out["models"]] == ["gpt-4o"]


def test_the_safety_factor_is_three_by_default_and_can_be_changed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The plan is the month times 3 unless --safety-factor says otherwise."""
    default = _models(_json(capsys, "-m", "gpt-4o-mini", *WORKLOAD))["gpt-4o-mini"]
    assert Decimal(default["planned_usd"]) == 3 * Decimal(default["monthly_usd"])
    custom = _json(capsys, "-m", "gpt-4o-mini", *WORKLOAD, "--safety-factor", "1.5")
    assert custom["safety_factor"] == "1.5"
    row = custom["models"][0]
    assert Decimal(row["planned_usd"]) == Decimal("1.5") * Decimal(row["monthly_usd"])


def test_cache_hit_rate_shows_what_the_cache_saves(capsys: pytest.CaptureFixture[str]) -> None:
    """With --cache-hit-rate 0.3, 30% of the month is saved and the rest still paid, exactly."""
    row = _json(capsys, "-m", "claude-haiku-4-5", *WORKLOAD, "--cache-hit-rate", "0.3")["models"][0]
    monthly = Decimal(row["monthly_usd"])
    assert Decimal(row["cache_saving_usd"]) == monthly * Decimal("0.3")
    assert Decimal(row["cached_monthly_usd"]) + Decimal(row["cache_saving_usd"]) == monthly


def test_without_a_hit_rate_no_cache_figures_are_given(capsys: pytest.CaptureFixture[str]) -> None:
    """No --cache-hit-rate: the cache columns are absent from the table and null in JSON."""
    row = _json(capsys, "-m", "gpt-4o", *WORKLOAD)["models"][0]
    assert row["cached_monthly_usd"] is None and row["cache_saving_usd"] is None
    assert main(["estimate", "-m", "gpt-4o", *WORKLOAD]) == 0
    assert "cached" not in capsys.readouterr().out


def test_batch_price_is_shown_where_the_table_has_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gpt-4o has Batch API rates (half price); a model without them shows '-' and null."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"my-model": {"base": {"input": 1, "output": 2}}}}))
    args = ["-m", "gpt-4o,my-model", *WORKLOAD, "--prices", str(prices)]
    models = _models(_json(capsys, *args))
    assert Decimal(models["gpt-4o"]["batch_monthly_usd"]) == Decimal("90")
    assert models["my-model"]["batch_monthly_usd"] is None
    assert Decimal(models["my-model"]["monthly_usd"]) == Decimal("54")  # 0.0018 x 30,000
    assert main(["estimate", *args]) == 0
    out = capsys.readouterr().out
    my_row = next(line for line in out.splitlines() if line.startswith("my-model"))
    assert " - " in f"{my_row} " and "$90.00" in out


def test_the_table_states_the_workload_and_the_assumptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The plain table names the monthly volume, the 3x plan, the cache share, in dollars."""
    assert main(["estimate", "-m", "gpt-4o", *WORKLOAD, "--cache-hit-rate", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "1,000 requests/day x 30 days = 30,000 requests/month" in out
    assert "plan (x3)" in out and "25% cached" in out
    assert "$180.00" in out and "$540.00" in out and "$135.00" in out and "$45.00" in out


def test_a_prompt_file_is_counted_with_each_models_tokenizer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A text prompt is one user message, counted per model, and priced from that count."""
    prompt = tmp_path / "prompt.txt"
    text = "Summarise the attached quarterly report in three bullet points, please. " * 20
    prompt.write_text(text)
    args = ["-m", "gpt-4o,gpt-4", "--requests-per-day", "10", "--output-tokens", "200"]
    models = _models(_json(capsys, *args, "--prompt-file", str(prompt)))
    message = [{"role": "user", "content": text}]
    for name in ("gpt-4o", "gpt-4"):
        counted = costguard.count_tokens(name, message)
        assert models[name]["input_tokens"] == counted
        expected = _per_request(name, counted, 200) * 10 * 30
        assert Decimal(models[name]["monthly_usd"]) == expected


def test_a_json_prompt_file_counts_messages_system_and_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .json prompt with messages and a system prompt is counted as the chat request."""
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tmp_path / "prompt.json"
    prompt.write_text(json.dumps({"system": "You are terse.", "messages": messages}))
    args = ["-m", "gpt-4o", "--requests-per-day", "5", "--output-tokens", "10"]
    row = _json(capsys, *args, "--prompt-file", str(prompt))["models"][0]
    assert row["input_tokens"] == costguard.count_tokens(
        "gpt-4o", messages, system="You are terse."
    )


def test_claude_counts_from_a_prompt_file_are_flagged_as_estimates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Counting a prompt for a Claude model says the count is an estimate."""
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("hello there")
    args = ["-m", "claude-haiku-4-5", "--requests-per-day", "1", "--output-tokens", "1"]
    assert main(["estimate", *args, "--prompt-file", str(prompt)]) == 0
    assert "estimate" in capsys.readouterr().out


def test_an_unknown_model_is_named_with_a_search_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unpriced model: one stderr line naming it and suggesting `costguard prices --search`."""
    assert main(["estimate", "-m", "gpt-4o,gpt-nine-turbo", *WORKLOAD]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no price for model 'gpt-nine-turbo'" in captured.err
    assert "costguard prices --search gpt" in captured.err
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--requests-per-day": "-5"}, "--requests-per-day must be more than 0"),
        ({"--requests-per-day": "0"}, "--requests-per-day must be more than 0"),
        ({"--requests-per-day": "nan"}, "--requests-per-day must be a finite number"),
        ({"--requests-per-day": "Infinity"}, "--requests-per-day must be a finite number"),
        ({"--requests-per-day": "lots"}, "--requests-per-day must be a number"),
        ({"--requests-per-day": "1e13"}, "--requests-per-day must be at most"),
        ({"--input-tokens": "0"}, "--input-tokens must be more than 0"),
        ({"--input-tokens": "-3"}, "--input-tokens must be more than 0"),
        ({"--input-tokens": "12.5"}, "--input-tokens must be a whole number"),
        ({"--input-tokens": "NaN"}, "--input-tokens must be a finite number"),
        ({"--output-tokens": "-1"}, "--output-tokens must be 0 or more"),
        ({"--safety-factor": "0"}, "--safety-factor must be at least 1"),
        ({"--safety-factor": "-3"}, "--safety-factor must be at least 1"),
        ({"--safety-factor": "nan"}, "--safety-factor must be a finite number"),
        ({"--cache-hit-rate": "1.5"}, "--cache-hit-rate must be between 0 and 1"),
        ({"--cache-hit-rate": "30"}, "--cache-hit-rate must be between 0 and 1"),
        ({"--cache-hit-rate": "-0.1"}, "--cache-hit-rate must be between 0 and 1"),
        ({"--cache-hit-rate": "nan"}, "--cache-hit-rate must be a finite number"),
        ({"--model": " , "}, "--model needs a model name"),
    ],
)
def test_bad_numbers_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], change: dict[str, str], message: str
) -> None:
    """Negative, zero, NaN, non-numeric or out-of-range values: one stderr line, exit 2."""
    options = {"--model": "gpt-4o", "--requests-per-day": "100"}
    options |= {"--input-tokens": "500", "--output-tokens": "100"} | change
    argv = ["estimate"] + [f"{k}={v}" for k, v in options.items()]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("costguard: ")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.txt", None, "no prompt file at"),
        ("empty.txt", "  \n", "is empty"),
        ("broken.json", "{not json", "is not valid JSON"),
        ("odd.json", '{"prompt": "hi"}', "expected a list of messages"),
        ("extra.json", '{"messages": [], "temperature": 1}', "unknown key(s) 'temperature'"),
        ("norole.json", '[{"content": "hi"}]', "role"),
        ("binary.txt", b"\xff\xfe\x00", "is not UTF-8 text"),
    ],
)
def test_prompt_file_problems_are_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | bytes | None,
    message: str,
) -> None:
    """A missing, empty, non-UTF-8 or malformed prompt file: one stderr line, exit 2."""
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    args = ["-m", "gpt-4o", "--requests-per-day", "1", "--output-tokens", "1"]
    assert main(["estimate", *args, "--prompt-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_directory_as_prompt_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pointing --prompt-file at a directory is one clear line, not a traceback."""
    args = ["-m", "gpt-4o", "--requests-per-day", "1", "--output-tokens", "1"]
    assert main(["estimate", *args, "--prompt-file", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_input_tokens_and_prompt_file_exclude_each_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Giving both token sources, or neither, is a usage error (exit 2)."""
    prompt = tmp_path / "p.txt"
    prompt.write_text("hi")
    base = ["estimate", "-m", "gpt-4o", "--requests-per-day", "1", "--output-tokens", "1"]
    for extra in (["--input-tokens", "5", "--prompt-file", str(prompt)], []):
        with pytest.raises(SystemExit) as exited:
            main([*base, *extra])
        assert exited.value.code == 2
    assert "costguard:" in capsys.readouterr().err


def test_a_bad_price_file_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreadable --prices file is reported by costguard in one line (exit 1)."""
    assert main(["estimate", "-m", "gpt-4o", *WORKLOAD, "--prices", str(tmp_path / "no")]) == 1
    err = capsys.readouterr().err
    assert "price file" in err and err.count("\n") == 1


# -- the projection maths, property-tested ------------------------------------------------

MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-6", "gpt-4.1", "text-embedding-3-small"]
per_day = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**7), places=2).filter(
    lambda d: d > 0
)
tokens = st.integers(min_value=1, max_value=400_000)
rates = st.decimals(min_value=0, max_value=1, places=3)
factors = st.decimals(min_value=1, max_value=20, places=2)


@given(
    model=st.sampled_from(MODELS),
    n=per_day,
    i=tokens,
    o=st.integers(0, 100_000),
    h=rates,
    f=factors,
)
def test_projection_is_exact_and_consistent(
    model: str, n: Decimal, i: int, o: int, h: Decimal, f: Decimal
) -> None:
    """Month = per-request x requests; plan = month x factor; cached + saved = month, exactly;
    every model here has Batch API rates, so a batch month is given, at exactly those rates."""
    price = PriceTable.default().require(model)
    p = project_monthly_cost(
        price,
        requests_per_day=n,
        input_tokens=i,
        output_tokens=o,
        safety_factor=f,
        cache_hit_rate=h,
    )
    assert p.per_request_usd == _per_request(model, i, o)
    assert p.requests_per_month == n * 30
    assert p.monthly_usd == p.per_request_usd * n * 30
    assert p.planned_usd == p.monthly_usd * f >= p.monthly_usd
    assert p.cached_usd + p.cache_saving_usd == p.monthly_usd
    assert p.cache_saving_usd == p.monthly_usd * h
    assert price.batch is not None and p.batch_monthly_usd is not None
    assert p.batch_monthly_usd <= p.monthly_usd
    usage = costguard.Usage(input_tokens=i, output_tokens=o)
    assert p.batch_monthly_usd == compute_cost(price, usage, batch=True).usd * n * 30
    assert p.batch_monthly_usd * 2 == p.monthly_usd  # every batch rate here is half price


@given(model=st.sampled_from(MODELS), n=per_day, i=tokens, o=st.integers(0, 100_000))
def test_projection_grows_with_every_input(model: str, n: Decimal, i: int, o: int) -> None:
    """More requests or more tokens never cost less; doubling the requests doubles the month."""
    price = PriceTable.default().require(model)

    def month(n: Decimal, i: int, o: int) -> Decimal:
        return project_monthly_cost(
            price, requests_per_day=n, input_tokens=i, output_tokens=o
        ).monthly_usd

    base = month(n, i, o)
    assert month(n, i + 1, o) >= base
    assert month(n, i, o + 1) >= base
    assert month(n * 2, i, o) == base * 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"requests_per_day": 0},
        {"requests_per_day": Decimal("-1")},
        {"requests_per_day": Decimal("NaN")},
        {"input_tokens": 0},
        {"output_tokens": -1},
        {"safety_factor": Decimal("0.5")},
        {"cache_hit_rate": Decimal("1.01")},
        {"days_per_month": 0},
    ],
)
def test_projection_rejects_impossible_workloads(kwargs: dict[str, Any]) -> None:
    """The library function refuses zero, negative, NaN and out-of-range inputs."""
    price = PriceTable.default().require("gpt-4o")
    args: dict[str, Any] = {"requests_per_day": 1, "input_tokens": 1, "output_tokens": 1}
    with pytest.raises(ValueError):
        project_monthly_cost(price, **(args | kwargs))


def test_projection_refuses_floats() -> None:
    """A float request rate is refused: money stays exact."""
    price = PriceTable.default().require("gpt-4o")
    with pytest.raises(TypeError):
        project_monthly_cost(
            price,
            requests_per_day=1.5,  # type: ignore[arg-type]
            input_tokens=1,
            output_tokens=1,
        )
