"""The manager report: status rules, a self-contained page, and what a real browser makes of it.

The browser tests open the page in headless Chromium (DOM after scripts, console errors,
a screenshot) and print the PDF; they are skipped when ``chromium`` or ``pdftoppm`` is not
installed (Debian packages ``chromium`` and ``poppler-utils``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sopforecast.errors import ConfigError, DataError, SopforecastError
from sopforecast.monitoring.report import (
    ReportData,
    bias_chart_svg,
    find_chromium,
    fva_summary,
    render_html,
    report_name,
    sparkline_svg,
    status_of,
    trend_chart_svg,
    write_report,
)

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
PDFTOPPM = shutil.which("pdftoppm")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium)"
)
needs_pdftoppm = pytest.mark.skipif(
    PDFTOPPM is None, reason="pdftoppm not installed (apt-get install -y poppler-utils)"
)
MLFLOW = "http://127.0.0.1:5000/#/experiments/1/runs/4f2a9c"
LEVELS = ["total", "category", "sku"]
LAGS = [1, 3, 6]
CYCLES = [f"2024-{m:02d}" for m in range(1, 7)]
TOP_KEY = "SKU-10442 / DE / retail"


def make_data(folder: Path | None = None) -> ReportData:
    """A realistic cycle: 6 cycles, 3 levels, lags 1/3/6, 12 exceptions, one drifted segment."""
    rng = np.random.default_rng(7)
    base = {"total": 0.9, "category": 0.8, "sku": 0.62}
    trend = pd.DataFrame(
        [
            {
                "cycle": c,
                "level": level,
                "lag": lag,
                "accuracy": base[level]
                - 0.025 * LAGS.index(lag)
                + 0.02 * np.sin(i + LAGS.index(lag))
                + rng.normal(0, 0.006),
            }
            for i, c in enumerate(CYCLES)
            for level in LEVELS
            for lag in LAGS
        ]
    )
    bias = pd.DataFrame(
        [
            {"cycle": c, "level": level, "bias": b + rng.normal(0, 0.012)}
            for i, c in enumerate(CYCLES)
            for level, b in zip(LEVELS, (0.01 + 0.004 * i, 0.035, -0.05 + 0.006 * i), strict=True)
        ]
    )
    kpis = pd.DataFrame(
        [
            ["Forecast accuracy", "total", 3, 0.873, "≥ 85%", status_of(0.873, target_min=0.85), "%"],
            ["Forecast accuracy", "sku", 3, 0.581, "≥ 65%", status_of(0.581, target_min=0.65), "%"],
            ["Bias", "total", 1, 0.034, "within ±3%", status_of(0.034, within=0.03), "%"],
            ["Forecast value added", "sku", 1, 0.012, "≥ 0 pts", status_of(0.012, target_min=0.0), "%"],
        ],
        columns=["name", "level", "lag", "value", "target", "status", "unit"],
    )
    actions = [
        "Review the promotion uplift with Sales before the next cycle",
        "Lower the baseline: the last three months came in under plan",
        "Check the customer's order pattern; a tender may have ended",
        "Align with Marketing on the relaunch date",
        "Remove the one-off order from history",
        "Raise the forecast: new listing at a large retailer",
        "Confirm the phase-out date with Product Management",
        "Investigate the data feed: sales dropped to zero for two weeks",
        "Review the manual override made in March",
        "Shorten the planning horizon for this new item",
        "Check the seasonal profile against last year",
        "Agree safety stock with Supply for this volatile item",
    ]
    exceptions = pd.DataFrame(
        [
            {
                "rank": r,
                "key": TOP_KEY if r == 1 else f"SKU-{10000 + 37 * r} / {('FR', 'IT', 'ES')[r % 3]} / online",
                "level": "sku" if r != 4 else "category",
                "metric": ("wape", "bias", "accuracy", "tracking_signal")[r % 4],
                "lag": LAGS[r % 3],
                "value": (0.62, 0.21, 0.48, 5.2)[r % 4] - 0.01 * r,
                # numbers or bound texts as sopforecast.monitoring.exceptions writes them
                "target": (0.35, 0.05, ">= 0.65", "|x| <= 4")[r % 4],
                # recent values as a list or as text, or a word; a new item has none
                "trend": (
                    list(np.round(0.3 + 0.05 * np.arange(5) + rng.normal(0, 0.03, 5), 3)),
                    " → ".join(f"{v:.2f}" for v in 0.3 + 0.04 * np.arange(3)),
                    "",
                )[r % 3],
                "direction": ("worsening", "over-forecast", "steady", "new" if r % 3 == 2 else "worsening")[
                    r % 4
                ],
                "action": actions[r - 1],
                "at_stake": round(250_000 / r + rng.uniform(1000, 5000), 2),
            }
            # shuffled: the report orders by rank
            for r in (5, 1, 12, 3, 8, 2, 11, 4, 7, 10, 6, 9)
        ]
    )
    fva = pd.DataFrame(
        [
            {
                "level": level,
                "lag": lag,
                "wape_naive": w + 0.08,
                "wape_statistical": w,
                "wape_final": w - d,
                "fva_statistical": 0.08,
                "fva_consensus": d,
            }
            for level, w0 in zip(LEVELS, (0.1, 0.2, 0.38), strict=True)
            for lag, d in zip(LAGS, (0.015, 0.006, -0.012), strict=True)
            for w in [w0 + 0.02 * LAGS.index(lag)]
        ]
    )
    drift = pd.DataFrame(
        [
            ["Germany retail", "y", 0.41, 23.5, True],
            ["Germany retail", "price", 0.12, 1.2, False],
            ["France online", "y", 0.05, -2.1, False],
            ["Italy wholesale", "y", 0.07, 3.4, False],
        ],
        columns=["segment", "column", "score", "change_pct", "drifted"],
    )
    reports = {"Germany retail": "drift/germany_retail.html", "France online": "drift/france_online.html"}
    if folder is not None:
        for link in reports.values():
            path = folder / link
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("<!DOCTYPE html><html><body><h1>Evidently data drift</h1></body></html>")
    return ReportData(
        plan="EU consumer demand plan",
        cycle="2024-06",
        generated_at=datetime(2024, 6, 5, 8, 30),
        kpis=kpis,
        trend=trend,
        bias=bias,
        exceptions=exceptions,
        fva=fva,
        drift=drift,
        drift_reports=reports,
        mlflow_url=MLFLOW,
        notes=["Germany retail: a new discounter listing started in May & is not in the history yet."],
        currency="€",
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, Path | None]:
    """The report written once (with its PDF when Chromium is there) for the browser tests."""
    folder = tmp_path_factory.mktemp("report")
    return write_report(make_data(folder), folder, pdf=CHROMIUM is not None)


# ---------------------------------------------------------------------------------------------
# status rules


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (0.85, {"target_min": 0.85}, "green"),  # on the bound meets it
        (0.90, {"target_min": 0.85}, "green"),
        (0.83, {"target_min": 0.85}, "amber"),
        (0.80, {"target_min": 0.85}, "red"),  # missed by exactly the tolerance
        (0.70, {"target_min": 0.85}, "red"),
        (0.1 + 0.2, {"target_max": 0.3}, "green"),  # float noise is not a miss
        (0.33, {"target_max": 0.30}, "amber"),
        (0.40, {"target_max": 0.30}, "red"),
        (-0.03, {"within": 0.05}, "green"),
        (0.07, {"within": 0.05}, "amber"),
        (-0.07, {"within": 0.05}, "amber"),
        (-0.12, {"within": 0.05}, "red"),
        (0.33, {"target_max": 0.30, "tolerance": 0.01}, "red"),
        (4.5, {"target_max": 4.0, "tolerance": 1.0}, "amber"),  # units other than fractions
        (0.5, {"target_min": 0.4, "target_max": 0.6}, "green"),
        (0.62, {"target_min": 0.4, "target_max": 0.6}, "amber"),
        (0.7, {"target_max": 0.9, "within": 0.6}, "red"),  # the largest miss counts
        (0.84, {"target_min": 0.85, "tolerance": 0.0}, "red"),
    ],
)
def test_status_of(value, kwargs, expected):
    assert status_of(value, **kwargs) == expected


def test_status_of_rejects_bad_targets_and_missing_values():
    with pytest.raises(ConfigError, match="needs a target"):
        status_of(0.5)
    with pytest.raises(ConfigError, match="tolerance"):
        status_of(0.5, target_min=0.4, tolerance=-0.1)
    with pytest.raises(ConfigError, match="within"):
        status_of(0.5, within=-0.1)
    with pytest.raises(ConfigError, match="above target_max"):
        status_of(0.5, target_min=0.8, target_max=0.6)
    with pytest.raises(ConfigError, match="finite"):
        status_of(0.5, target_min=float("nan"))
    with pytest.raises(DataError, match="KPI value"):
        status_of(float("nan"), target_min=0.5)
    with pytest.raises(DataError, match="KPI value"):
        status_of(None, target_min=0.5)


# ---------------------------------------------------------------------------------------------
# the page


def _links(html: str) -> list[str]:
    """Every link out of the page (fragments inside the inline SVG charts stay in it)."""
    found = re.findall(r"""\b(?:src|href|xlink:href)\s*=\s*["']([^"']*)["']""", html, flags=re.I)
    return [u for u in found if not u.startswith("#")]


def test_html_is_self_contained():
    html = render_html(make_data())
    # opened from an e-mail, a link to this machine or a file beside the report leads nowhere:
    # the local MLflow run and the drift reports are named, not linked, and the footer says so
    assert _links(html) == []
    assert "MLflow run 4f2a9c" in html and "drift/germany_retail.html" in html
    footer = html[html.index("<footer>") : html.index("</footer>")]
    assert "self-contained" in footer and "named rather than linked" in footer
    assert "the detailed drift reports" in footer and "MLflow run 4f2a9c" in footer
    # a tracking server others reach stays a link, the only one
    served = "https://mlflow.example.com/#/experiments/1/runs/4f2a9c"
    data = make_data()
    data.mlflow_url = served
    html_served = render_html(data)
    assert _links(html_served) == [served]
    assert "The only link leaves this file for the MLflow server" in html_served
    # nothing to fetch: no tag that loads a resource, no CSS import or url() to the network
    assert not re.search(r"<(?:link|img|iframe|object|embed)\b", html, flags=re.I)
    assert not re.search(r"@import|url\((?!#)", html)
    assert "@media print" in html and "size: A4 landscape" in html
    assert html.count("<svg") >= 2 and "<?xml" not in html and "<!DOCTYPE svg" not in html


def test_html_tiles_exceptions_and_sections():
    data = make_data()
    html = render_html(data)
    tiles = re.findall(r'<div class="tile \w+" data-status="(\w+)" data-kpi="([^"]+)"', html)
    assert [s for s, _ in tiles] == ["green", "red", "amber", "green"]
    assert [s for s, _ in tiles] == list(data.kpis["status"])
    assert "87.3%" in html and "≥ 85%" in html
    # top ten, most urgent first, whatever the input order
    ranks = re.findall(r'<tr data-rank="(\d+)">', html)
    assert ranks == [str(r) for r in range(1, 11)]
    body = html[html.index('id="exceptions-table"') :]
    assert body.index(TOP_KEY) < body.index("SKU-10074")
    assert "Showing the top 10 of 12" in html
    assert "€" in html and "Review the promotion uplift" in html
    # targets and trends in a manager's terms; the top item's bias target is ±5%
    assert "±5.0%" in body and "≥ 65.0%" in body and "within ±4" in body
    assert body.count('class="spark"') == 7 and "30% → 34% → 38%" in body
    assert '<td class="bad">worsening</td>' in body
    # ids of the inline charts do not clash
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    # user text is escaped
    assert "May &amp; is not" in html
    for title in ("At a glance", "accuracy over time", "Bias", "Top exceptions", "adjustments", "drift"):
        assert title in html
    assert "Germany retail" in html[html.index('id="drift-table"') :]
    assert "France online" not in html[html.index('id="drift-table"') : html.index("Detailed drift reports")]


def test_fva_summary_answers_the_question():
    data = make_data()
    text = fva_summary(data.fva)
    assert text.startswith("Yes:") and "6 of 9" in text and "lowered the error by 0.3 pts" in text
    assert "largest loss is at total, 6 months ahead" in text
    worse = data.fva.assign(fva_consensus=-data.fva["fva_consensus"].abs())
    assert fva_summary(worse).startswith("No:")
    assert "No plan" in fva_summary(pd.DataFrame())


def test_render_rejects_bad_input():
    data = make_data()
    data.kpis.loc[0, "status"] = "yellow"
    with pytest.raises(DataError, match="yellow"):
        render_html(data)
    data = make_data()
    data.exceptions = data.exceptions.drop(columns="at_stake")
    with pytest.raises(DataError, match="at_stake"):
        render_html(data)
    data = make_data()
    data.mlflow_url = "javascript:alert(1)"
    with pytest.raises(ConfigError, match="mlflow_url"):
        render_html(data)
    data = make_data()
    data.drift_reports = {"x": "https://example.com/drift.html"}
    with pytest.raises(ConfigError, match="relative"):
        render_html(data)


def test_empty_cycle_renders():
    html = render_html(ReportData(plan="New plan", cycle="2024-07", generated_at="today"))
    assert "No key measures this cycle" in html and "No accuracy history yet" in html
    assert "No exception this cycle" in html and "No drift check" in html
    assert 'class="tile' not in html


def test_charts_and_names():
    data = make_data()
    svg = trend_chart_svg(data.trend)
    assert svg.startswith("<svg") and 'role="img"' in svg and ">sku<" in svg and "6 months ahead" in svg
    assert svg == trend_chart_svg(data.trend)  # deterministic
    assert bias_chart_svg(data.bias, band=0.05).startswith("<svg")
    assert trend_chart_svg(data.trend.iloc[0:0]) == ""
    assert sparkline_svg([1, 2, 3]).count("<polyline") == 1 and sparkline_svg([1]) == ""
    assert report_name("2024-06") == "manager_report_2024-06.html"
    assert report_name("2024/06 draft", ".pdf") == "manager_report_2024_06_draft.pdf"


def test_write_report_html_only_and_missing_chromium(tmp_path):
    html, pdf = write_report(make_data(tmp_path), tmp_path, pdf=False)
    assert html == tmp_path / "manager_report_2024-06.html" and pdf is None
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not list(tmp_path.glob(".*tmp*"))
    with pytest.raises(SopforecastError, match=r"no-such-chromium.*apt-get install -y chromium"):
        find_chromium("no-such-chromium")
    with pytest.raises(SopforecastError, match="no-such-chromium"):
        write_report(make_data(), tmp_path / "other", chromium="no-such-chromium")
    assert (tmp_path / "other" / "manager_report_2024-06.html").is_file()  # HTML first


# ---------------------------------------------------------------------------------------------
# in a real browser


def _chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _ink(png: Path) -> float:
    """Share of pixels that are not (nearly) white."""
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("L"))
    return float((pixels < 245).mean())


def _console(stderr: str) -> list[str]:
    """Console messages in Chromium's log: ``CONSOLE(12)`` in older builds, ``CONSOLE:12]`` in
    newer ones, which no longer say the level (an error logs as INFO); plus uncaught errors."""
    return [line for line in stderr.splitlines() if re.search(r"CONSOLE[(:]|Uncaught", line)]


def _dump_dom(page: Path, profile: Path) -> subprocess.CompletedProcess:
    return _chromium(
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    )


@needs_chromium
def test_browser_runs_the_page_without_errors(written, tmp_path):
    html, _ = written
    proc = _dump_dom(html, tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert 'data-ready="1"' in dom, "the inline script did not finish"
    assert re.findall(r'class="tile \w+" data-status="(\w+)"', dom) == ["green", "red", "amber", "green"]
    assert '<button type="button" class="sort"' in dom  # the script made the headings sortable
    # the page writes nothing to the console: any message is an error, a warning or a blocked fetch
    console = _console(proc.stderr)
    assert not console, "\n".join(console)


@needs_chromium
def test_console_check_sees_errors(tmp_path):
    # guards the test above against a Chromium whose log format no longer matches
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        "<img src=\"https://example.com/x.png\"><script>console.error('boom'); missing();</script>"
        "</body></html>"
    )
    console = _console(_dump_dom(page, tmp_path / "profile").stderr)
    assert any("Uncaught" in line for line in console), console
    assert any("boom" in line for line in console), console
    assert any("example.com" in line for line in console), console  # the blocked fetch


@needs_chromium
def test_browser_screenshot_is_not_blank(written, tmp_path):
    html, _ = written
    png = tmp_path / "report.png"
    proc = _chromium(
        f"--user-data-dir={tmp_path / 'profile'}",
        "--hide-scrollbars",
        f"--screenshot={png}",
        "--window-size=1400,1800",
        html.as_uri(),
    )
    assert proc.returncode == 0 and png.is_file(), proc.stderr[-2000:]
    assert _ink(png) > 0.05


@needs_chromium
@needs_pdftoppm
def test_pdf_pages_are_not_blank(written, tmp_path):
    html, pdf = written
    assert pdf == html.with_suffix(".pdf") and pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run([PDFTOPPM, "-png", "-r", "50", str(pdf), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= 5  # a section per page
    inks = [_ink(p) for p in pages]
    assert all(ink > 0.01 for ink in inks), inks
    from PIL import Image

    width, height = Image.open(pages[0]).size
    assert width > height  # A4 landscape
