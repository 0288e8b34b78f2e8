"""Every example in examples/ runs offline and exits 0, each in its own interpreter.

Examples are discovered, not listed: every ``examples/*.py`` and every directory under
``examples/`` that holds ``test_*.py`` files. A script runs with ``python`` and must print
something; a module that defines ``test_`` functions (and a test-suite directory) runs under
pytest and must pass. Each run gets a temporary ``COSTGUARD_HOME`` and sandboxed user
directories, so nothing can touch the real ledger or cache; and an example must not need
that protection: it keeps its own files in temporary paths.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

SCRIPTS = sorted(EXAMPLES.glob("*.py"))
SUITES = sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and any(p.glob("test_*.py")))

#: Text an example's output must contain, for examples that say what they show.
EXPECTED_OUTPUT = {
    "quickstart.py": ["spend by model"],
    "attribution.py": ["support-bot"],
    "custom_layer.py": ["[log]"],
    "fastapi_style_handler.py": ["-> 200", "-> 402", "BudgetExceededError"],
    "decorated_summarise.py": ["max tokens sent=200", "summarise  alice"],
    "batch_classification.py": ["served=gpt-4o-mini", "routing saved"],
}

#: (text, times) for output that must appear an exact number of times.
EXPECTED_COUNTS = {"custom_layer.py": ("[log]", 5)}  # one log line per call


def _is_test_module(path: Path) -> bool:
    return path.name.startswith("test_") or bool(
        re.search(r"^(async )?def test_", path.read_text(encoding="utf-8"), re.MULTILINE)
    )


def _env(home: Path, user: Path) -> dict[str, str]:
    """The environment of one run: ``COSTGUARD_HOME=home``, user directories under ``user``."""
    return {
        **os.environ,
        "HOME": str(user),
        "XDG_DATA_HOME": str(user / "data"),
        "XDG_CACHE_HOME": str(user / "cache"),
        "XDG_CONFIG_HOME": str(user / "config"),
        "XDG_STATE_HOME": str(user / "state"),
        "COSTGUARD_HOME": str(home),  # nothing may touch the real data dir
        "PYTHONWARNINGS": "error",  # a deprecated model or API in an example fails here
    }


def _run(example: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if example.is_dir() or _is_test_module(example):
        args = ["-m", "pytest", "-q", str(example), "-p", "no:cacheprovider"]
    else:
        args = [str(example)]
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_ok(example: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), "the example printed nothing"
    if example.is_dir() or _is_test_module(example):
        assert re.search(r"\d+ passed", result.stdout), result.stdout
    for text in EXPECTED_OUTPUT.get(example.name, []):
        assert text in result.stdout, f"{text!r} not in the output:\n{result.stdout}"
    if example.name in EXPECTED_COUNTS:
        text, times = EXPECTED_COUNTS[example.name]
        assert result.stdout.count(text) == times, result.stdout


@pytest.mark.parametrize("example", SCRIPTS + SUITES, ids=lambda p: p.name)
def test_example_runs(example: Path, tmp_path: Path) -> None:
    """The example exits 0 with a temporary COSTGUARD_HOME, prints what it shows, and keeps
    its ledger and cache in temporary paths of its own.

    Whatever costguard writes to its default locations lands in COSTGUARD_HOME here; run by
    hand, it would land in the user's real data and cache directories.
    """
    home = tmp_path / "home"
    _assert_ok(example, _run(example, _env(home, tmp_path / "user")))

    written = sorted(str(p.relative_to(home)) for p in home.rglob("*")) if home.exists() else []
    # Examples keep their files in temporary paths, never in the user's real directories.
    assert not written, f"written to the default (user's) directories: {written}"


def test_every_example_is_found() -> None:
    """Discovery sees the examples the docs point to, including the test-suite example."""
    names = {p.name for p in SCRIPTS + SUITES}
    assert {"quickstart.py", "testing_with_fake_provider.py", "test_suite_example"} <= names
    assert set(EXPECTED_OUTPUT) <= names, set(EXPECTED_OUTPUT) - names
