"""The scripts in examples/ run offline and exit 0 (each in its own interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "COSTGUARD_HOME": str(tmp_path / "home"),  # nothing may touch the real data dir
        "PYTHONWARNINGS": "error",  # a deprecated model or API in an example fails here
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), "the example printed nothing"


def test_quickstart(tmp_path: Path) -> None:
    """examples/quickstart.py runs and prints its ledger rows."""
    result = _run([str(EXAMPLES / "quickstart.py")], tmp_path)
    _assert_ok(result)
    assert "spend by model" in result.stdout


def test_attribution(tmp_path: Path) -> None:
    """examples/attribution.py runs and prints spend by feature and user."""
    result = _run([str(EXAMPLES / "attribution.py")], tmp_path)
    _assert_ok(result)
    assert "support-bot" in result.stdout


def test_custom_layer(tmp_path: Path) -> None:
    """examples/custom_layer.py runs and its layer logs every call."""
    result = _run([str(EXAMPLES / "custom_layer.py")], tmp_path)
    _assert_ok(result)
    assert result.stdout.count("[log]") == 5


def test_testing_with_fake_provider(tmp_path: Path) -> None:
    """examples/testing_with_fake_provider.py passes under pytest."""
    script = str(EXAMPLES / "testing_with_fake_provider.py")
    result = _run(["-m", "pytest", "-q", script, "-p", "no:cacheprovider"], tmp_path)
    _assert_ok(result)
    assert "passed" in result.stdout
