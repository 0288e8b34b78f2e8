"""`costguard report --html`: a self-contained page whose charts draw in a real browser."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from costguard import Usage
from costguard.cli import main
from costguard.ledger import CallRecord, Ledger, new_id
from costguard.pricing import PriceTable

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
EVIL = "</script><script>alert(1)</script>"
CHARTS = ("daily", "savings", "hits", "features", "users", "models")
PRICES = PriceTable.default()
START = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _call(day: int, model: str, feature: str, user: str, **changes: Any) -> CallRecord:
    usage = changes.pop("usage", Usage(input_tokens=800 + 100 * day, output_tokens=200))
    served = changes.get("served_model") or model
    cost = PRICES.cost(served, usage)
    priced: dict[str, Any] = {}
    if cost is not None:
        rates = {n: str(getattr(cost.rates, n)) for n in ("input", "output", "cache_read")}
        rates |= {n: str(getattr(cost.rates, n)) for n in ("cache_write_5m", "cache_write_1h")}
        priced = {"cost_usd": cost.usd, "rates": rates}
    return CallRecord(
        **(
            {
                "id": new_id(),
                "ts": START + timedelta(days=day),
                "provider": "anthropic" if model.startswith("claude") else "openai",
                "operation": "messages.create"
                if model.startswith("claude")
                else "responses.create",
                "requested_model": model,
                "usage": usage,
                "feature": feature,
                "user": user,
            }
            | priced
            | changes
        )
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """Five days, three models, routing, caps, prompt caching, cache hits, a hostile name."""
    path = tmp_path / "ledger.db"
    with Ledger(path) as led:
        for day in range(5):
            for i in range(day + 2):
                led.write(_call(day, "gpt-4o", "support-bot", f"user-{i % 3}"))
                led.write(
                    _call(
                        day,
                        "gpt-4o",
                        "classify",
                        f"user-{i % 2}",
                        served_model="gpt-4o-mini",
                        route="rule:classify",
                    )
                )
            if day != 2:  # one day without Claude: a model-day with no rectangle
                led.write(
                    _call(
                        day,
                        "claude-sonnet-4-6",
                        EVIL,
                        "<b>&amp;</b>",
                        usage=Usage(300, cache_read_tokens=3000, output_tokens=400),
                        requested_max_tokens=2000,
                        sent_max_tokens=400,
                    )
                )
            led.write(
                _call(
                    day,
                    "gpt-4o-mini",
                    "search",
                    "user-1",
                    usage=Usage(),
                    cost_usd=Decimal(0),
                    saved_usd=Decimal("0.0002"),
                    cache="exact",
                )
            )
    return path


def _render(ledger: Path, target: Path, *extra: str) -> str:
    assert main(["report", "--ledger", str(ledger), "--html", str(target), *extra]) == 0
    return target.read_text(encoding="utf-8")


def _embedded(page: str) -> Any:
    match = re.search(r'<script type="application/json" id="costguard-data">(.*?)</script>', page)
    assert match is not None
    return json.loads(match.group(1))


class _Dom(HTMLParser):
    """Start tags (with attributes) inside each chart figure, and every script element."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, dict[str, str | None]] = {}
        self.inside: dict[str, list[tuple[str, dict[str, str | None]]]] = {}
        self.scripts = 0
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "figure" and found.get("data-chart"):
            self._current = str(found["data-chart"])
            self.figures[self._current] = found
            self.inside[self._current] = []
        elif self._current is not None:
            self.inside[self._current].append((tag, found))

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._current = None

    def shapes(self, chart: str, tag: str, cls: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.inside[chart] if t == tag and a.get("class") == cls]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_page_is_self_contained(ledger: Path, tmp_path: Path) -> None:
    """No external resource, a CSP forbidding the network, and the data embedded as JSON."""
    page = _render(ledger, tmp_path / "r.html")
    for fetch in ("<link", " src=", "url(", "@import", "<iframe", "<img"):
        assert fetch not in page
    assert set(re.findall(r"https?://[^\s\"']*", page)) == {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page and "script-src 'sha256-" in page
    data = _embedded(page)
    assert [d["day"] for d in data["days"]] == [f"2026-11-0{d}" for d in range(1, 6)]
    assert {f["name"] for f in data["features"]} == {"support-bot", "classify", EVIL, "search"}
    assert [s["name"] for s in data["savings"]][2] == "output caps (up to)"


def test_ledger_strings_cannot_break_out_of_the_page(ledger: Path, tmp_path: Path) -> None:
    """A feature named like a closing script tag stays data: escaped in JSON and in the table."""
    page = _render(ledger, tmp_path / "r.html", "--group-by", "feature,user")
    assert EVIL not in page and "<b>&amp;</b>" not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the HTML table
    assert "\\u003c/script\\u003e" in page  # the JSON block
    assert EVIL in {f["name"] for f in _embedded(page)["features"]}


@needs_chromium
def test_every_chart_is_drawn_in_a_real_browser(ledger: Path, tmp_path: Path) -> None:
    """Headless Chromium runs the page's script: every chart is marked drawn and has shapes."""
    target = tmp_path / "report.html"
    data = _embedded(_render(ledger, target, "--group-by", "feature"))
    done = _chromium(tmp_path, "--dump-dom", target.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = _Dom()
    dom.feed(done.stdout)

    for chart in CHARTS:
        assert dom.figures[chart].get("data-drawn") == "true", chart
        assert any(tag == "svg" for tag, _ in dom.inside[chart]), chart
    with Ledger(ledger) as led:
        spend = led.summary(["day", "model"])
    expected = Counter((r.key["day"], r.key["model"]) for r in spend if r.cost_usd > 0)
    drawn = Counter((a["data-day"], a["data-model"]) for a in dom.shapes("daily", "rect", "seg"))
    assert drawn == expected and len(drawn) == 14  # 5 days x 3 models, Claude missing one day
    assert len(dom.shapes("hits", "circle", "pt")) == 5
    assert len(dom.shapes("hits", "path", "line")) == 1
    assert len(dom.shapes("savings", "rect", "bar")) == 4
    assert len(dom.shapes("features", "rect", "bar")) == len(data["features"]) == 4
    assert len(dom.shapes("users", "rect", "bar")) == len(data["users"]) == 4
    models = {a["data-model"] for a in dom.shapes("models", "rect", "seg")}
    assert models == {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-6"}
    # The hostile feature name is text in the drawn page, and no script was added.
    assert dom.scripts == 2
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in done.stdout


@needs_chromium
def test_the_page_renders_to_a_real_screenshot(ledger: Path, tmp_path: Path) -> None:
    """A 1280x2000 screenshot of the page is a sizeable PNG (kept in tmp_path)."""
    target, shot = tmp_path / "report.html", tmp_path / "report.png"
    _render(ledger, target)
    done = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", target.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png[16:20], "big") == 1280 and int.from_bytes(png[20:24], "big") == 2000
    assert len(png) > 40_000  # charts, text and colour: far from a blank page


def test_the_folded_bar_says_when_it_holds_unpriced_calls(tmp_path: Path) -> None:
    """With --top 1, the bar folding the other features is labelled `+ unpriced` when they
    include a call that had no price, as the bars it folds would be."""
    path = tmp_path / "l.db"
    with Ledger(path) as led:
        led.write(_call(0, "gpt-4o", "big", "u1", usage=Usage(input_tokens=10_000)))
        led.write(_call(0, "my-finetune", "mystery", "u2"))
        led.write(_call(0, "gpt-4o-mini", "small", "u3"))
    data = _embedded(_render(path, tmp_path / "r.html", "--top", "1"))
    assert [f["name"] for f in data["features"]] == ["big", "2 other features"]
    assert data["features"][-1]["label"].endswith(" + unpriced")
    assert data["users"][-1]["label"].endswith(" + unpriced")
