"""The manager report of a planning cycle: one self-contained HTML page and its PDF.

The page is meant for managers who do not speak S&OP: every measure says what it means,
colours say whether a target is met, and the first lines answer "are we on track?". It
holds, in order: the header (plan, cycle, date, a link to the model run in MLflow), KPI tiles
held against their targets, the accuracy trend by lag and level, the bias trend, the top ten
exceptions with their action and the money at stake, forecast value added (do planners'
adjustments help?), data drift with links to the Evidently reports, the S&OP review (the plan
against supply, money and scenarios, decisions to take; :mod:`.sop_review`), and notes.

Everything is inline (styles, the small sorting script, charts as SVG, a system font
stack), so the file opens offline and can be mailed as it is; a print stylesheet lays it out
on A4 landscape pages. :func:`write_report` writes the HTML and prints the PDF with headless
Chromium (Debian package ``chromium``).

Conventions of the frames in :class:`ReportData`: ratios are fractions, as everywhere in the
package (accuracy ``0.82`` is shown as 82.0%, bias ``-0.04`` as -4.0%); a KPI with unit
``"%"`` is a fraction too. ``drift.change_pct`` is already in percent (``12.5`` = +12.5%).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, SopforecastError, format_examples
from ..exports import inside, safe_name
from .rules import STAKE_RULE, count_once, status_of

__all__ = [
    "STATUSES",
    "KPI_COLUMNS",
    "TREND_COLUMNS",
    "BIAS_COLUMNS",
    "EXCEPTION_COLUMNS",
    "FVA_COLUMNS",
    "DRIFT_COLUMNS",
    "CHROMIUM_NAMES",
    "has_chromium",
    "ReportData",
    "status_of",
    "fva_summary",
    "chart_svg",
    "trend_chart_svg",
    "bias_chart_svg",
    "sparkline_svg",
    "money_text",
    "report_figure",
    "tidy_axes",
    "render_html",
    "report_name",
    "find_chromium",
    "print_pdf",
    "write_report",
]

logger = logging.getLogger(__name__)

STATUSES = ("green", "amber", "red")
KPI_COLUMNS = ["name", "level", "lag", "value", "target", "status", "unit"]
TREND_COLUMNS = ["cycle", "level", "lag", "accuracy"]
BIAS_COLUMNS = ["cycle", "level", "bias"]
EXCEPTION_COLUMNS = [
    "rank",
    "key",
    "level",
    "metric",
    "lag",
    "value",
    "target",
    "trend",
    "direction",
    "action",
    "at_stake",
]
FVA_COLUMNS = [
    "level",
    "lag",
    "wape_naive",
    "wape_statistical",
    "wape_final",
    "fva_statistical",
    "fva_consensus",
]
DRIFT_COLUMNS = ["segment", "column", "score", "change_pct", "drifted"]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
TOP_EXCEPTIONS = 10
TREND_VALUES = 3  # recent values written out beside an exception's sparkline
_NO_CHANGE = 1e-9  # an FVA gain smaller than this is the same plan scored twice

_TEMPLATE = "manager_report.html.j2"
_STATUS_LABELS = {"green": "On target", "amber": "Close to target", "red": "Off target"}
# Okabe-Ito: tells lines apart for colour-blind readers too
_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
_FONTS = ["Segoe UI", "Helvetica Neue", "Arial", "Liberation Sans", "DejaVu Sans"]
# metrics whose values are fractions, shown as percentages
_RATIO_WORDS = ("wape", "mape", "accuracy", "bias", "fva", "coverage", "error", "share", "rate", "%")
_CURRENCY_UNITS = ("€", "$", "£", "¥", "CHF", "EUR", "USD", "GBP")
# the measures of sopforecast.monitoring.accuracy in words a manager reads
_METRIC_NAMES = {
    "wape": "Error (WAPE)",
    "accuracy": "Accuracy",
    "bias": "Bias",
    "mase": "Scaled error (MASE)",
    "tracking_signal": "Persistent bias (tracking signal)",
    "coverage": "Range coverage",
    "coverage_gap": "Range coverage gap",
}
_DIRECTIONS = {
    "worsening": ("worsening", "bad"),
    "improving": ("improving", "good"),
    "steady": ("steady", "zero"),
    "new": ("new this cycle", "zero"),
}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# input columns of the package's data contract in words
_COLUMN_NAMES = {"y": "sales (demand)", "ds": "dates", "unique_id": "series"}


@dataclass
class ReportData:
    """Everything the manager report of one planning cycle shows.

    Parameters
    ----------
    plan : str
        The plan's name (``"EU consumer demand plan"``).
    cycle : str
        The planning cycle (``"2024-06"``); it names the files, so odd characters become ``_``.
    generated_at : datetime or date or str
        When the figures were produced.
    kpis : pandas.DataFrame
        ``name, level, lag, value, target, status, unit``: ``target`` is text (``"≥ 80%"``),
        ``status`` one of ``green`` (target met), ``amber`` (missed by less than the
        tolerance) or ``red`` (see :func:`status_of`); ``level`` and ``lag`` may be blank for
        a KPI over every level or lag.
    trend : pandas.DataFrame
        ``cycle, level, lag, accuracy``: accuracy (``1 - WAPE``) of past cycles.
    bias : pandas.DataFrame
        ``cycle, level, bias``: ``sum(forecast - actual) / sum(actual)``, positive = too much
        was planned.
    exceptions : pandas.DataFrame
        ``rank, key, level, metric, lag, value, target, trend, direction, action, at_stake``;
        ``trend`` is text, a number or a sequence of recent values (drawn as a sparkline);
        ``at_stake`` is money. The ten best ranked (1 = most urgent) are shown.
    fva : pandas.DataFrame
        ``level, lag, wape_naive, wape_statistical, wape_final, fva_statistical,
        fva_consensus``, as :func:`sopforecast.planning.fva.fva_table` computes them.
    drift : pandas.DataFrame
        ``segment, column, score, change_pct, drifted``: one row per segment and input
        column checked for data drift; ``change_pct`` in percent.
    drift_reports : dict of str to str
        Report name (a segment for the drifted rows to link to) -> path of its Evidently HTML
        file, relative to the report's folder.
    mlflow_url : str, optional
        ``http(s)`` link to the MLflow run that made the forecast. A link to this machine
        (``localhost``, ``127.0.0.1``) does not resolve where the mailed page is opened: the
        page then names the run instead of linking it.
    notes : list of str
        Free text notes shown at the end (planner comments, data caveats).
    currency : str, default ""
        Shown before money amounts (``"€"``, ``"EUR"``); none by default.
    bias_level : str, default ""
        The level whose series the ``bias`` rows are (their ``level`` column then holds a
        series: one bar each); empty when ``bias`` holds levels.
    bias_band : float, optional
        The bias target's band, shaded in the chart.
    stake_members : dict of str to frozenset, optional
        Bottom series under each key (:func:`sopforecast.monitoring.rules.stake_members`), so
        the total at stake counts overlapping items once; without it a key overlaps only
        itself.
    drift_threshold : float, optional
        The drift score from which a segment counts as drifted, shown beside the scores.
    sop : dict, optional
        The S&OP review pages (supply, money and scenarios, decisions) as
        :func:`sopforecast.monitoring.sop_review.review_page` lays them out; ``None`` leaves
        them out.
    """

    plan: str
    cycle: str
    generated_at: datetime | date | str
    kpis: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=KPI_COLUMNS))
    trend: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TREND_COLUMNS))
    bias: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=BIAS_COLUMNS))
    exceptions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EXCEPTION_COLUMNS))
    fva: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FVA_COLUMNS))
    drift: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DRIFT_COLUMNS))
    drift_reports: dict[str, str] = field(default_factory=dict)
    mlflow_url: str | None = None
    notes: list[str] = field(default_factory=list)
    currency: str = ""
    bias_level: str = ""
    bias_band: float | None = None
    stake_members: Mapping[str, frozenset] | None = None
    drift_threshold: float | None = None
    sop: Mapping[str, object] | None = None


def fva_summary(fva: pd.DataFrame) -> str:
    """A short plain answer to "do the planners' adjustments help?" from an FVA table.

    Parameters
    ----------
    fva : pandas.DataFrame
        ``level, lag, fva_statistical, fva_consensus`` (positive = the step lowered the
        error), one row per level and lag.

    Returns
    -------
    str
        Two or three sentences: the verdict on adjustments with how often they helped, the
        average change, the largest loss (or gain) and whether the statistical forecast beats
        the naive one. A fixed sentence when there is nothing to score.
    """
    if fva is None or fva.empty:
        return "No plan of this cycle can be compared with actual sales yet."
    _require(fva, ["level", "lag", "fva_statistical", "fva_consensus"], "fva")
    rows = fva.dropna(subset=["fva_consensus"])
    parts = []
    gains = rows["fva_consensus"].astype(float)
    gains = gains.where(gains.abs() > _NO_CHANGE, 0.0)  # an unchanged plan scores the same
    helped, hurt, n = int((gains > 0).sum()), int((gains < 0).sum()), len(rows)
    if rows.empty:
        parts.append("No adjusted plan can be compared with actual sales yet.")
    elif helped == 0 and hurt == 0:
        parts.append(
            "No overrides yet: the final plan equals the statistical forecast in all "
            f"{n} combinations of product level and horizon, so there is nothing to judge."
        )
    else:
        mean = float(gains.mean())
        if mean > 0 and helped >= hurt:
            verdict = "Yes: planners' adjustments made the forecast more accurate"
        elif mean < 0 and hurt >= helped:
            verdict = "No: planners' adjustments made the forecast less accurate"
        else:
            verdict = "Mixed: planners' adjustments helped in some places and hurt in others"
        if mean == 0:
            average = "on average the error did not change"
        else:
            moved = "lowered" if mean > 0 else "raised"
            average = f"on average they {moved} the error by {_points(mean, signed=False)}"
        parts.append(
            f"{verdict} ({helped} of {n} combinations of product level and horizon better, {hurt} worse; "
            f"{average})."
        )
        worst, best = rows.loc[gains.idxmin()], rows.loc[gains.idxmax()]
        if gains.min() < 0:
            parts.append(
                f"The largest loss is at {_level_text(worst['level'])}, {_lag_text(worst['lag'])} "
                f"(error up {_points(-float(worst['fva_consensus']), signed=False)})."
            )
        elif gains.max() > 0:
            parts.append(
                f"The largest gain is at {_level_text(best['level'])}, {_lag_text(best['lag'])} "
                f"(error down {_points(float(best['fva_consensus']), signed=False)})."
            )
    stat = fva["fva_statistical"].dropna().astype(float)
    if len(stat):
        beat = int((stat > 0).sum())
        parts.append(
            f"The statistical forecast beats the simple 'same as last month' forecast in {beat} of "
            f"{len(stat)} combinations."
        )
    return " ".join(parts)


def chart_svg(fig, *, label: str) -> str:
    """A matplotlib figure as SVG markup to put inline in an HTML page.

    The XML prolog, doctype and metadata are dropped, the fixed size gives way to the
    ``viewBox`` (the page's CSS sets the width), and every ``id`` gets a prefix unique to
    the drawing, so several charts can share one page.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure (drawn with Agg; pyplot is not needed).
    label : str
        What the chart shows, for screen readers (``aria-label``).

    Returns
    -------
    str
        ``<svg ...>...</svg>``; the same figure gives the same text.
    """
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    prefix = "c" + hashlib.sha1(svg.encode()).hexdigest()[:8] + "-"
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    if ids:
        pattern = re.compile(
            r"#(" + "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)) + r")\b"
        )
        svg = pattern.sub(lambda m: f"#{prefix}{m.group(1)}", svg)
    head_end = svg.index(">")
    head = svg[:head_end]
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    attrs = f' role="img" aria-label="{_attr(label)}" preserveAspectRatio="xMidYMid meet"'
    return head + attrs + svg[head_end:]


def trend_chart_svg(trend: pd.DataFrame) -> str:
    """Accuracy by planning cycle: one small chart per level, one line per lag.

    Parameters
    ----------
    trend : pandas.DataFrame
        ``cycle, level, lag, accuracy`` (fractions).

    Returns
    -------
    str
        Inline SVG (see :func:`chart_svg`); an empty string for an empty ``trend``.
    """
    prepared = _chart_frame(trend, TREND_COLUMNS, "trend", "accuracy")
    if prepared is None:
        return ""
    frame, cycles, levels = prepared
    from matplotlib.ticker import PercentFormatter

    lags = sorted(frame["lag"].unique())
    ncols = min(len(levels), 3)
    nrows = math.ceil(len(levels) / ncols)
    fig = report_figure((3.3 * ncols + 0.5, 2.4 * nrows + 0.75))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    x_of = {c: i for i, c in enumerate(cycles)}
    for ax, level in zip(axes.ravel(), levels, strict=False):
        part = frame[frame["level"] == level]
        for i, lag in enumerate(lags):
            line = part[part["lag"] == lag].assign(x=lambda f: f["cycle_text"].map(x_of)).sort_values("x")
            if line.empty:
                continue
            ax.plot(
                line["x"],
                line["accuracy"],
                color=_PALETTE[i % len(_PALETTE)],
                marker=_MARKERS[i % len(_MARKERS)],
                markersize=3.5,
                linewidth=1.6,
                label=_lag_text(lag),
            )
        ax.set_title(_level_text(level), fontsize=10.5, loc="left", fontweight="bold")
        _cycle_axis(ax, cycles, most=4)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlim(-0.4, len(cycles) - 0.4)
        tidy_axes(ax)
    for ax in axes.ravel()[len(levels) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("Accuracy (higher is better)", fontsize=9)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=len(lags), fontsize=9.5, frameon=False)
    fig.tight_layout(rect=(0, 0.38 / fig.get_figheight(), 1, 1))
    return chart_svg(fig, label="Forecast accuracy by planning cycle, per product level and months ahead")


def _chart_frame(table: pd.DataFrame | None, columns, name: str, value: str):
    """The rows of a chart's table that have a ``value``, with the cycle as text, and the
    cycles and levels in the order they are drawn; ``None`` when nothing is left to draw."""
    if table is None or table.empty:
        return None
    _require(table, columns, name)
    frame = table.dropna(subset=[value]).copy()
    if frame.empty:
        return None
    frame["cycle_text"] = frame["cycle"].map(_cycle_text)
    return frame, _cycle_order(frame["cycle"]), list(dict.fromkeys(frame["level"]))


def bias_chart_svg(bias: pd.DataFrame, band: float | None = None) -> str:
    """Bias by planning cycle: bars per level around zero (above = too much planned).

    Parameters
    ----------
    bias : pandas.DataFrame
        ``cycle, level, bias`` (fractions).
    band : float, optional
        Shade ``±band`` as the acceptable range.

    Returns
    -------
    str
        Inline SVG (see :func:`chart_svg`); an empty string for an empty ``bias``.
    """
    prepared = _chart_frame(bias, BIAS_COLUMNS, "bias", "bias")
    if prepared is None:
        return ""
    frame, cycles, levels = prepared
    from matplotlib.ticker import PercentFormatter

    fig = report_figure((10, 3.1))
    ax = fig.add_subplot()
    x = np.arange(len(cycles))
    width = 0.8 / len(levels)
    if band:
        ax.axhspan(-band, band, color="#e8f5ec", zorder=0, label=f"acceptable (±{band:.0%})")
    for i, level in enumerate(levels):
        values = frame[frame["level"] == level].groupby("cycle_text")["bias"].mean().reindex(cycles)
        ax.bar(
            x + (i - (len(levels) - 1) / 2) * width,
            values.to_numpy(dtype=float),
            width * 0.92,
            color=_PALETTE[i % len(_PALETTE)],
            label=_level_text(level),
            zorder=2,
        )
    ax.axhline(0, color="#333333", linewidth=0.9, zorder=3)
    low, high = ax.get_ylim()
    reach = max(abs(low), abs(high), 0.02) * 1.25
    ax.set_ylim(-reach, reach)
    ax.text(
        0.005,
        0.97,
        "▲ planned too much (over-forecast)",
        transform=ax.transAxes,
        fontsize=8.5,
        va="top",
        color="#555555",
    )
    ax.text(
        0.005,
        0.03,
        "▼ planned too little (under-forecast)",
        transform=ax.transAxes,
        fontsize=8.5,
        va="bottom",
        color="#555555",
    )
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("Bias (0% is best)", fontsize=9)
    _cycle_axis(ax, cycles, most=10)
    ax.set_xlim(-0.6, len(cycles) - 0.4)
    tidy_axes(ax)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=len(handles), fontsize=9.5, frameon=False)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))
    return chart_svg(fig, label="Bias by planning cycle and product level: above zero too much was planned")


def sparkline_svg(values: Sequence[float], *, width: int = 84, height: int = 22) -> str:
    """A tiny line of recent values, hand-built SVG for a table cell.

    Parameters
    ----------
    values : sequence of float
        Oldest first; missing values are skipped.
    width, height : int
        Size in CSS pixels.

    Returns
    -------
    str
        ``<svg>`` with the line and a dot on the latest value; empty with fewer than two values.
    """
    points = [float(v) for v in values if _is_number(v) and math.isfinite(float(v))]
    if len(points) < 2:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    pad = 3.0
    step = (width - 2 * pad) / (len(points) - 1)
    xy = [(pad + i * step, pad + (height - 2 * pad) * (1 - (v - low) / span)) for i, v in enumerate(points)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    lx, ly = xy[-1]
    label = "recent values: " + ", ".join(f"{v:.3g}" for v in points)
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{_attr(label)}" xmlns="http://www.w3.org/2000/svg">'
        f'<polyline points="{path}" fill="none" stroke="#5b6b7f" stroke-width="1.5" '
        f'stroke-linejoin="round" stroke-linecap="round"/>'
        f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="2.4" fill="#1b2a41"/></svg>'
    )


def render_html(data: ReportData) -> str:
    """The manager report as one self-contained HTML page.

    Parameters
    ----------
    data : ReportData
        The figures of the cycle.

    Returns
    -------
    str
        The page: inline styles, script and SVG charts, no external resource (the only
        external link is ``data.mlflow_url``). It renders fully without its script.

    Raises
    ------
    DataError
        A frame lacks a column, or a KPI status is not green, amber or red.
    ConfigError
        ``mlflow_url`` is not an http(s) link, or a drift report path is a URL or absolute.
    """
    from markupsafe import Markup

    context = _context(data)
    context["trend_svg"] = Markup(trend_chart_svg(data.trend))
    context["bias_svg"] = Markup(bias_chart_svg(data.bias, band=data.bias_band))
    return _environment().get_template(_TEMPLATE).render(**context)


def report_name(cycle: object, suffix: str = ".html") -> str:
    """The file name of a cycle's report: ``manager_report_<cycle><suffix>``, the cycle made a
    safe file-name component (:func:`sopforecast.exports.safe_name`: no ``/``, no ``..``)."""
    text = safe_name(_cycle_text(cycle)) if _cycle_text(cycle).strip("._/\\ ") else "cycle"
    return f"manager_report_{text}{suffix}"


def find_chromium(chromium: str | os.PathLike | None = None) -> str:
    """The Chromium binary to print with.

    Parameters
    ----------
    chromium : str or Path, optional
        A binary's path or name on ``PATH``; default the first of :data:`CHROMIUM_NAMES`
        found on ``PATH``.

    Returns
    -------
    str
        The binary's full path.

    Raises
    ------
    SopforecastError
        No such binary, with how to install one.
    """
    names = [os.fspath(chromium)] if chromium is not None else list(CHROMIUM_NAMES)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    looked = ", ".join(names)
    raise SopforecastError(
        f"Chromium is needed to print the manager report as PDF, but {looked} was not found on PATH. "
        "Install it (Debian/Ubuntu: apt-get install -y chromium), pass chromium='/path/to/chromium', "
        "or write the HTML only with pdf=False."
    )


def has_chromium() -> bool:
    """Whether :func:`find_chromium` finds a binary to print the PDF with."""
    try:
        find_chromium()
    except SopforecastError:
        return False
    return True


def print_pdf(
    html: str | os.PathLike,
    pdf: str | os.PathLike,
    *,
    chromium: str | os.PathLike | None = None,
    timeout: float = 120.0,
) -> Path:
    """Print an HTML file to PDF with headless Chromium (its ``@page`` rules set the paper).

    Parameters
    ----------
    html : str or Path
        The page to print.
    pdf : str or Path
        The PDF to write; written to a temporary file first and moved into place, so a failed
        print leaves any earlier PDF as it was.
    chromium : str or Path, optional
        The binary (see :func:`find_chromium`).
    timeout : float, default 120
        Seconds before Chromium is stopped.

    Returns
    -------
    Path
        ``pdf``.

    Raises
    ------
    SopforecastError
        Chromium is missing, fails, times out or writes no PDF.
    """
    binary = find_chromium(chromium)
    html, pdf = Path(html).resolve(), Path(pdf)
    if not html.is_file():
        raise SopforecastError(f"no HTML file to print at {html}")
    pdf.parent.mkdir(parents=True, exist_ok=True)
    tmp = pdf.with_name(f".{pdf.stem}.{secrets.token_hex(4)}.tmp.pdf")
    try:
        with tempfile.TemporaryDirectory(prefix="sopforecast-chromium-") as profile:
            command = [
                binary,
                "--headless",
                "--no-sandbox",  # needed as root (containers, CI); the page is our own file
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
                f"--user-data-dir={profile}",
                "--no-pdf-header-footer",
                f"--print-to-pdf={tmp.resolve()}",
                html.as_uri(),
            ]
            code, output = _run(command, timeout)
        if code != 0 or not tmp.is_file() or tmp.stat().st_size == 0 or not tmp.read_bytes()[:5] == b"%PDF-":
            tail = "\n".join(output.strip().splitlines()[-8:])
            raise SopforecastError(f"Chromium could not print {html.name} to PDF (exit code {code}):\n{tail}")
        os.replace(tmp, pdf)
    finally:
        tmp.unlink(missing_ok=True)
    return pdf


def write_report(
    data: ReportData,
    folder: str | os.PathLike,
    *,
    pdf: bool = True,
    chromium: str | os.PathLike | None = None,
    timeout: float = 120.0,
) -> tuple[Path, Path | None]:
    """Write ``manager_report_<cycle>.html`` and, beside it, its PDF.

    Parameters
    ----------
    data : ReportData
        The figures of the cycle.
    folder : str or Path
        Where to write (created); the drift report paths are relative to it.
    pdf : bool, default True
        Also print the PDF with headless Chromium.
    chromium : str or Path, optional
        The Chromium binary (see :func:`find_chromium`).
    timeout : float, default 120
        Seconds Chromium may take to print.

    Returns
    -------
    tuple of (Path, Path or None)
        The HTML file and the PDF (``None`` when ``pdf`` is false).

    Raises
    ------
    SopforecastError
        Bad data (see :func:`render_html`), or Chromium missing or failing; the HTML is then
        already written.
    """
    folder = Path(folder)
    html = render_html(data)
    html_path = inside(folder, report_name(data.cycle))  # a cycle named ../x stays in folder
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_text(html_path, html)
    for name, link in data.drift_reports.items():
        if not (folder / link).is_file():
            logger.warning("drift report %r links to %s, which is not in %s", name, link, folder)
    logger.info("manager report written to %s", html_path)
    if not pdf:
        return html_path, None
    pdf_path = print_pdf(html_path, html_path.with_suffix(".pdf"), chromium=chromium, timeout=timeout)
    logger.info("manager report printed to %s", pdf_path)
    return html_path, pdf_path


# ---------------------------------------------------------------------------------------------
# page context


def _context(data: ReportData) -> dict:
    """The template's variables: every value formatted for reading, in display order."""
    kpis = _frame(data.kpis, KPI_COLUMNS, "kpis")
    bad = sorted({str(s) for s in kpis["status"] if s not in STATUSES})
    if bad:
        raise DataError(f"kpis.status must be one of {', '.join(STATUSES)}; got {format_examples(bad)}")
    exceptions = _frame(data.exceptions, EXCEPTION_COLUMNS, "exceptions")
    fva = _frame(data.fva, FVA_COLUMNS, "fva")
    drift = _frame(data.drift, DRIFT_COLUMNS, "drift")
    mlflow_url = _check_url(data.mlflow_url)
    reports = {str(k): _check_link(str(k), v) for k, v in data.drift_reports.items()}

    tiles = [_tile(row) for row in kpis.to_dict("records")]
    counts = {s: sum(t["status"] == s for t in tiles) for s in STATUSES}
    top = (
        exceptions.sort_values("rank", kind="stable").head(TOP_EXCEPTIONS) if len(exceptions) else exceptions
    )
    once = count_once(top, data.stake_members) if len(top) else pd.DataFrame(columns=["counted", "within"])
    top = top.assign(counted=once["counted"], within=once["within"]) if len(top) else top
    rows = [_exception(row, data.currency) for row in top.to_dict("records")]
    counted = top[top["counted"].astype(bool)] if len(top) else top
    stake = pd.to_numeric(counted["at_stake"], errors="coerce").sum() if len(counted) else 0.0
    drifted = drift[drift["drifted"].fillna(False).astype(bool)] if len(drift) else drift
    drift_rows = [_drift_row(row, data.drift_threshold) for row in drifted.to_dict("records")]
    run_text = None if mlflow_url is None or not _local_url(mlflow_url) else _run_text(mlflow_url)
    segments = drift["segment"].nunique() if len(drift) else 0
    drifted_segments = drifted["segment"].nunique() if len(drifted) else 0
    return {
        "plan": _text(data.plan),
        "cycle": _cycle_text(data.cycle),
        "generated": _when(data.generated_at),
        "mlflow_url": None if run_text else mlflow_url,
        "mlflow_run": run_text,
        "tiles": tiles,
        "counts": counts,
        "headline": _headline(counts),
        "status_labels": _STATUS_LABELS,
        "exceptions": rows,
        "exceptions_total": len(exceptions),
        "items_counted": len(counted),
        "at_stake_total": money_text(stake, data.currency, compact=True),
        "at_stake_total_value": f"{float(stake):.2f}",
        "stake_rule": STAKE_RULE,
        "currency": data.currency,
        "bias_level": _text(data.bias_level),
        "fva_rows": [_fva_row(row) for row in fva.to_dict("records")],
        "fva_sentence": fva_summary(fva),
        "drift_rows": drift_rows,
        "drift_sentence": _drift_sentence(drift, drifted, segments, drifted_segments),
        "drift_checked": len(drift),
        "drift_reports": [{"name": k, "file": v} for k, v in reports.items()],
        "drift_folder": _folder_text(reports),
        "drift_threshold": _number(data.drift_threshold, 2) if data.drift_threshold else None,
        "notes": [_text(n) for n in data.notes if _text(n)],
        "sop": data.sop,
    }


def _tile(row: dict) -> dict:
    context = [t for t in (_level_text(row["level"], blank=""), _lag_text(row["lag"], blank="")) if t]
    status = row["status"]
    return {
        "name": _text(row["name"]),
        "value": _kpi_value(row["value"], _text(row["unit"])),
        "target": _text(row["target"]),
        "status": status,
        "label": _STATUS_LABELS[status],
        "context": " · ".join(context),
    }


def _exception(row: dict, currency: str) -> dict:
    from markupsafe import Markup

    metric = _text(row["metric"])
    spark, trend_text = _trend(row["trend"], metric)
    direction, direction_class = _direction(row["direction"])

    stake = pd.to_numeric(pd.Series([row["at_stake"]]), errors="coerce").iloc[0]
    value = row["value"]
    return {
        "rank": _text(row["rank"]),
        "key": _text(row["key"]),
        "level": _level_text(row["level"], blank="—"),
        "metric": _METRIC_NAMES.get(metric.lower(), metric.replace("_", " ")),
        "lag": _lag_text(row["lag"], blank="—"),
        "lag_value": _sort_value(row["lag"]),
        "value": _metric_value(value, metric),
        "value_sort": _sort_value(value),
        "target": _target_value(row["target"], metric),
        "trend_svg": Markup(spark),
        "trend": trend_text,
        "direction": direction,
        "direction_class": direction_class,
        "action": _text(row["action"]),
        "at_stake": money_text(stake, currency),
        "at_stake_sort": "" if pd.isna(stake) else f"{float(stake):.2f}",
        "counted": bool(row.get("counted", True)),
        "within": "" if _missing(row.get("within")) else _text(int(row["within"])),
    }


def _fva_row(row: dict) -> dict:
    return {
        "level": _level_text(row["level"]),
        "lag": _lag_text(row["lag"]),
        "naive": _percent(row["wape_naive"]),
        "statistical": _percent(row["wape_statistical"]),
        "final": _percent(row["wape_final"]),
        "fva_statistical": _points(row["fva_statistical"]),
        "fva_consensus": _points(row["fva_consensus"]),
        "fva_statistical_sign": _sign(row["fva_statistical"]),
        "fva_consensus_sign": _sign(row["fva_consensus"]),
    }


def _drift_row(row: dict, threshold: float | None) -> dict:
    change = row["change_pct"]
    return {
        "segment": _text(row["segment"]),
        "column": _COLUMN_NAMES.get(_text(row["column"]), _text(row["column"])),
        # one unit for every drift figure: reference standard deviations, two decimals
        "score": _drift_value(row["score"]),
        "threshold": _drift_value(threshold) if threshold else "—",
        "change": "—" if not _is_number(change) or pd.isna(change) else f"{float(change):+.1f}%",
    }


def _drift_value(value) -> str:
    return "—" if not _is_number(value) or math.isnan(float(value)) else f"{float(value):.2f}"


def _local_url(url: str) -> bool:
    """Whether ``url`` points at this machine, where a mailed copy of the page cannot follow it."""
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "0.0.0.0", "::1") or host.startswith("127.") or host.endswith(".localhost")


def _run_text(url: str) -> str:
    """The MLflow run a local link points at, named in words (its id when the link holds one)."""
    found = re.search(r"/runs/([0-9A-Za-z]+)", url)
    return f"MLflow run {found.group(1)}" if found else f"the MLflow run at {url}"


def _folder_text(reports: Mapping[str, str]) -> str:
    folders = sorted({Path(v).parent.as_posix() for v in reports.values()} - {"."})
    return ", ".join(f"{f}/" for f in folders)


def _drift_sentence(drift: pd.DataFrame, drifted: pd.DataFrame, segments: int, n_drifted: int) -> str:
    if drift.empty:
        return "No drift check was run this cycle."
    if drifted.empty:
        return (
            f"No change worth acting on: the recent data of all {segments} segment{_s(segments)} "
            "still looks like the data the models learned from."
        )
    names = ", ".join(dict.fromkeys(_text(s) for s in drifted["segment"]))
    return (
        f"{n_drifted} of {segments} segment{_s(segments)} changed noticeably ({names}): the recent data no "
        "longer looks like the data the models learned from, so their forecasts deserve a closer look."
    )


def _headline(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    if not total:
        return "No KPI was measured this cycle."
    return (
        f"{counts['green']} of {total} measure{_s(total)} on target, {counts['amber']} close to target, "
        f"{counts['red']} off target."
    )


# ---------------------------------------------------------------------------------------------
# formatting


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # sequences
        return False


def _text(value) -> str:
    return "" if _missing(value) else str(value).strip()


def _cycle_text(value) -> str:
    if isinstance(value, pd.Period):
        return str(value)
    if isinstance(value, datetime | pd.Timestamp | date):
        stamp = pd.Timestamp(value)
        return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.isoformat()
    return _text(value)


def _cycle_order(cycles: pd.Series) -> list[str]:
    """Cycle labels in time order (sorted by their own values, which sort as time)."""
    unique = pd.Series(cycles.dropna().unique())
    try:
        unique = unique.sort_values(kind="stable")
    except TypeError:  # mixed types: keep the order of appearance
        pass
    return list(dict.fromkeys(_cycle_text(c) for c in unique))


def _when(value) -> str:
    if isinstance(value, datetime | pd.Timestamp):
        stamp = pd.Timestamp(value)
        text = f"{stamp.day} {stamp:%B %Y, %H:%M}"
        return f"{text} {stamp.tzname()}" if stamp.tzinfo else text
    if isinstance(value, date):
        return f"{value.day} {value:%B %Y}"
    return _text(value)


def _level_text(level, blank: str = "all levels") -> str:
    text = _text(level)
    return text if text else blank


def _lag_text(lag, blank: str = "all horizons") -> str:
    if _missing(lag) or _text(lag) == "":
        return blank
    try:
        months = int(float(lag))
    except (TypeError, ValueError):
        return _text(lag)
    return f"{months} month{_s(months)} ahead"


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _percent(value, signed: bool = False) -> str:
    if not _is_number(value) or math.isnan(float(value)):
        return "—"
    return f"{float(value):+.1%}" if signed else f"{float(value):.1%}"


def _points(value, signed: bool = True) -> str:
    """A change of a fraction in percentage points: ``+1.8 pts``."""
    if not _is_number(value) or math.isnan(float(value)):
        return "—"
    points = float(value) * 100
    return f"{points:+.1f} pts" if signed else f"{abs(points):.1f} pts"


def _sign(value) -> str:
    if not _is_number(value) or math.isnan(float(value)) or float(value) == 0:
        return "zero"
    return "good" if float(value) > 0 else "bad"


def _number(value, digits: int = 2) -> str:
    if not _is_number(value) or math.isnan(float(value)):
        return _text(value) or "—"
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def _kpi_value(value, unit: str) -> str:
    if not _is_number(value) or math.isnan(float(value)):
        return _text(value) or "—"
    if unit == "%":
        return f"{float(value):.1%}"
    if unit in _CURRENCY_UNITS:
        return money_text(value, unit, compact=True)
    return f"{_number(value)} {unit}".strip()


def _is_ratio(metric: str) -> bool:
    """Whether a metric is a fraction shown as a percentage; drift scores never are (they are
    distances in reference standard deviations, for demand and forecast errors alike)."""
    low = metric.lower()
    return not low.startswith("drift") and any(word in low for word in _RATIO_WORDS)


def _metric_value(value, metric: str, signed: bool = False) -> str:
    if not _is_number(value):
        return _text(value) or "—"
    if math.isnan(float(value)):
        return "—"
    if metric.lower().startswith("drift"):
        return _drift_value(value)
    if _is_ratio(metric):
        return _percent(value, signed=signed or "bias" in metric.lower())
    text = _number(value)
    return f"+{text}" if signed and float(value) > 0 else text


def _target_value(value, metric: str) -> str:
    """A target as a manager reads it: a numeric bias target is a band around zero
    (``±5.0%``); bound texts such as ``>= 0.75`` or ``|x| <= 0.05`` (as
    :class:`sopforecast.monitoring.exceptions.Target` writes them) become ``≥ 75.0%`` and
    ``within ±5.0%``."""
    if _is_number(value) and not math.isnan(float(value)) and "bias" in metric.lower():
        return f"±{abs(float(value)):.1%}"
    if isinstance(value, str) and re.fullmatch(rf"\s*(\|x\|\s*)?[<>]=?\s*{_NUMBER}(\s*,.*)?", value):
        ratio = _is_ratio(metric)
        drift = metric.lower().startswith("drift")

        def number(match: re.Match) -> str:
            if drift:
                return _drift_value(float(match.group()))
            return _percent(float(match.group())) if ratio else _number(float(match.group()))

        text = re.sub(r"\|x\|\s*<=?\s*", "within ±", value.strip())
        text = re.sub(r">=\s*", "≥ ", re.sub(r"<=\s*", "≤ ", text))
        return re.sub(_NUMBER, number, text)
    return _metric_value(value, metric)


def money_text(value, currency: str, compact: bool = False) -> str:
    """Money as the report writes it: ``€1,250``, ``EUR 542k`` (``compact``), ``—`` if missing."""
    if not _is_number(value) or math.isnan(float(value)):
        return "—"
    value = float(value)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if compact and value >= 1e6:
        text = f"{value / 1e6:.1f}M"
    elif compact and value >= 1e4:
        text = f"{value / 1e3:.0f}k"
    else:
        text = f"{value:,.0f}"
    gap = " " if len(currency) > 1 else ""  # EUR 542k, but €542k
    return f"{sign}{currency}{gap}{text}"


def _trend(trend, metric: str) -> tuple[str, str]:
    """Sparkline and text of an exception's trend: recent values (a sequence, or text such as
    ``0.81 → 0.74 → 0.62`` as :func:`sopforecast.monitoring.exceptions.find_exceptions`
    writes it), a change (a number) or any other text."""
    values = None
    if isinstance(trend, Sequence | np.ndarray | pd.Series) and not isinstance(trend, str):
        values = [float(v) for v in trend if _is_number(v) and math.isfinite(float(v))]
    elif isinstance(trend, str) and re.fullmatch(rf"\s*{_NUMBER}(\s*(→|->|,)\s*{_NUMBER})+\s*", trend):
        values = [float(v) for v in re.findall(_NUMBER, trend)]
    if values is not None:
        ratio = _is_ratio(metric)
        sign = "+" if "bias" in metric.lower() else ""
        shown = " → ".join(f"{v:{sign}.0%}" if ratio else f"{v:.2f}" for v in values[-TREND_VALUES:])
        return sparkline_svg(values), shown
    if _is_number(trend):
        return "", _metric_value(trend, metric, signed=True)
    return "", _text(trend)


def _direction(value) -> tuple[str, str]:
    """Direction text and its CSS class (``good``, ``bad`` or ``zero``)."""
    text = _text(value)
    low = text.lower()
    if low in _DIRECTIONS:
        return _DIRECTIONS[low]
    if low.startswith(("over", "up", "high", "too much", "+")):
        return f"▲ {text}", ""
    if low.startswith(("under", "down", "low", "too little", "-")):
        return f"▼ {text}", ""
    return text or "—", ""


def _sort_value(value) -> str:
    return f"{float(value):.6g}" if _is_number(value) and not math.isnan(float(value)) else ""


def _attr(text: str) -> str:
    return str(text).replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------------------------------------
# checks


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"ReportData.{name} lacks column{_s(len(missing))} {', '.join(missing)}; "
            f"expected {', '.join(columns)}"
        )


def _frame(frame: pd.DataFrame | None, columns: Sequence[str], name: str) -> pd.DataFrame:
    """``frame`` checked for ``columns``; ``None`` or an empty frame without columns is empty."""
    if frame is None or (frame.empty and not len(frame.columns)):
        return pd.DataFrame(columns=list(columns))
    _require(frame, columns, name)
    return frame


def _check_url(url: str | None) -> str | None:
    if url is None or _text(url) == "":
        return None
    url = _text(url)
    if not re.match(r"https?://[^\s/]+", url, flags=re.I):
        raise ConfigError(
            f"mlflow_url must be an http(s) link to the MLflow run, got {url!r}", setting="mlflow_url"
        )
    return url


def _check_link(name: str, link) -> str:
    text = Path(link).as_posix() if isinstance(link, os.PathLike) else _text(link)
    if not text or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text) or text.startswith(("/", "\\")):
        raise ConfigError(
            f"drift report {name!r} must be a path relative to the report's folder, got {text!r}",
            setting="drift_reports",
        )
    return text


# ---------------------------------------------------------------------------------------------
# charts, template, files

_RC = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, in the page's fonts
    "svg.hashsalt": "sopforecast",  # the same chart gives the same ids
    "font.family": "sans-serif",
    "font.sans-serif": _FONTS,
    "axes.edgecolor": "#9aa5b1",
    "axes.labelcolor": "#333333",
    "xtick.color": "#444444",
    "ytick.color": "#444444",
}


def report_figure(size: tuple[float, float]):
    """A bare Agg figure with the report's style (no pyplot state)."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        return Figure(figsize=size)


def tidy_axes(ax) -> None:
    """The report's look of a chart's axes: no top or right spine, light horizontal grid."""
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e3e7ec", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=8.5, length=2.5)


def _cycle_axis(ax, cycles: list[str], most: int) -> None:
    """Label at most about 8 cycles (always the latest); tilt them beyond ``most`` labels."""
    step = max(1, math.ceil(len(cycles) / 8))
    ticks = list(range(len(cycles) - 1, -1, -step))[::-1]
    tilt = len(ticks) > most
    ax.set_xticks(
        ticks, [cycles[i] for i in ticks], rotation=30 if tilt else 0, ha="right" if tilt else "center"
    )


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("sopforecast.monitoring", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _atomic_text(path: Path, text: str) -> None:
    # same folder so os.replace is a rename; open(..., "x") keeps the usual permissions
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _run(command: list[str], timeout: float) -> tuple[int, str]:
    """Run ``command`` in its own process group, which is killed whole on timeout."""
    posix = os.name == "posix"
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        start_new_session=posix,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if posix:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.communicate()
        raise SopforecastError(
            f"Chromium did not finish printing the PDF within {timeout:g} s; try again or raise timeout"
        ) from None
    return proc.returncode, output
