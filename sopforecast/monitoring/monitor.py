"""The monitor: one entry point that judges the published plans against the actuals.

For every published version of a plan and every lag, the statistical forecast and the
final (consensus) plan are scored against the actuals per series, level, segment and cycle
(:mod:`.accuracy`, :mod:`.segments`); breaches of the targets become exceptions ranked by
the money at stake (:mod:`.exceptions`); demand, drivers and forecast errors are checked
for drift per segment (:mod:`.drift`); the manager report is written (:mod:`.report`).
Pure computation up to :func:`run_monitor`, which also writes the report files and the
monitoring record in the plan store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..data.hierarchy import parse_chains, split_path
from ..errors import SopforecastError
from ..exports import inside, safe_name
from ..planning import service
from ..planning.finance import revenue
from ..planning.fva import fva_table, with_lags
from ..planning.workflow import actuals_by_level
from ..store.plans import PlanStore, PlanVersion
from .accuracy import accuracy_table, mase_scale
from .drift import DriftResult, DriftSettings, drift_monitor
from .exceptions import EXCEPTION_COLUMNS, Target, check_targets, default_targets
from .report import ReportData, has_chromium, write_report
from .rules import BIAS_BAND, TRACKING_BOUND, bias_status, stake_members, status_of
from .segments import segment_accuracy, segment_table, with_segments
from .sop_review import read_review, review_page

__all__ = ["MonitorSettings", "MonitorResult", "NothingToMonitor", "scored_lines", "run_monitor"]

logger = logging.getLogger(__name__)


class NothingToMonitor(SopforecastError):
    """No published plan, or no actual for any planned month yet."""


class MonitorSettings(BaseModel):
    """What the monitor measures and holds the plan to."""

    model_config = ConfigDict(extra="forbid")

    lags: list[int] = Field(default_factory=lambda: [1, 3, 6], description="Lags (months ahead) to score.")
    interval: int = Field(80, gt=0, lt=100, description="Interval level whose coverage is checked.")
    targets: list[Target] | None = Field(
        None, description="Targets per level or segment; default: sensible ones for every level."
    )
    drift: DriftSettings = Field(default_factory=DriftSettings)
    drift_level: str | None = Field(
        None, description="Level whose series are the drift segments; default the one below the top."
    )
    top: int = Field(10, ge=1, description="Exceptions shown in the report.")
    pdf: bool = Field(True, description="Print the report as PDF too (needs Chromium).")
    currency: str = Field(
        "EUR",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code of the plan's prices, shown wherever money is (report, CLI, exports).",
    )


@dataclass
class MonitorResult:
    """What one monitoring run found and wrote."""

    plan: str
    cycle: str
    levels: pd.DataFrame  # accuracy per level and lag, all cycles pooled
    trend: pd.DataFrame  # per cycle and level
    series: pd.DataFrame  # per series
    segments: pd.DataFrame  # per segment (demand class, ABC, XYZ)
    exceptions: pd.DataFrame
    kpis: pd.DataFrame
    fva: pd.DataFrame
    drift: DriftResult | None
    currency: str = "EUR"
    stake_members: dict[str, frozenset] = field(default_factory=dict)  # rules.count_once
    drift_threshold: float | None = None
    report: Path | None = None
    pdf: Path | None = None
    run_id: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def scored_lines(plans: PlanStore, plan: str) -> tuple[pd.DataFrame, PlanVersion]:
    """Every published line of ``plan`` that has its actual, with ``lag`` and ``y``."""
    scored, latest, _, _ = _read(plans, plan)
    return scored, latest


def _read(plans: PlanStore, plan: str):
    """The published lines (with lags), the actuals of every level, and the two joined;
    read once for everything the monitor computes. Only the months up to the latest actual
    are read (in the database), so versions that plan later months only are not read."""
    if not plans.has_published(plan):
        raise NothingToMonitor(
            f"plan {plan!r} has no published version yet; publish one (sopforecast plan publish CYCLE)."
        )
    latest = plans.version(None, plan)
    actual = actuals_by_level(plans, latest)
    if actual is None:
        raise NothingToMonitor(
            f"plan {plan!r} has no actuals yet; load them (sopforecast actuals load FILE)."
        )
    # a version's first month stays in (its lags count from it): months after the actuals go
    stacked = plans.published_lines(plan, through=actual["ds"].max())
    if stacked.empty:
        raise NothingToMonitor(
            f"no published month of plan {plan!r} has its actuals yet (actuals run to "
            f"{actual['ds'].max():%Y-%m}); load them with sopforecast actuals load FILE."
        )
    stacked = with_lags(stacked)
    scored = stacked.merge(actual, on=["unique_id", "ds"], how="inner")
    if scored.empty:
        raise NothingToMonitor(
            f"no published month of plan {plan!r} has its actuals yet (actuals run to "
            f"{actual['ds'].max():%Y-%m}); load them with sopforecast actuals load FILE."
        )
    return scored, latest, stacked, actual


def run_monitor(
    plans: PlanStore,
    plan: str,
    settings: MonitorSettings | None = None,
    folder: str | Path = "reports",
    *,
    mlflow_url: str | None = None,
    budget: pd.DataFrame | None = None,
) -> MonitorResult:
    """Score, check, look for drift, report, and keep the record in the plan store.

    The report's S&OP review pages show the plan's latest balance review; ``budget`` (the
    annual operating plan, :func:`~sopforecast.planning.finance.read_budget`) adds the gap to
    it."""
    import time

    settings = settings or MonitorSettings()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    scored, latest, stacked, actual_all = _read(plans, plan)
    S, levels_of = service.structure(plans, latest)
    order = list(dict.fromkeys(levels_of))
    bottom_level = order[-1]
    history = service.history(plans, latest)  # bottom, monthly
    # money at each version's own prices: a version added later does not move the figures
    money = revenue(plans.lines(int(scored["version_id"].max())), S)
    per_series_revenue = money[money["unique_id"].isin(S.columns)].groupby("unique_id")["revenue"].sum()
    segments = segment_table(history, per_series_revenue)
    scored = with_segments(scored, segments)
    scale = mase_scale(actual_all)
    lags, interval = list(settings.lags), settings.interval
    levels = accuracy_table(scored, by=("level",), lags=lags, scale=scale, interval=interval)
    trend = accuracy_table(scored, by=("cycle", "level"), lags=lags, scale=scale, interval=interval)
    series = accuracy_table(scored, by=("unique_id", "level"), lags=lags, scale=scale, interval=interval)
    history_metrics = accuracy_table(
        scored, by=("cycle", "unique_id", "level"), lags=lags, scale=scale, interval=interval
    )
    by_segment = segment_accuracy(scored, lags=lags, scale=scale, interval=interval)
    # segment exceptions get their trend over the cycles too
    segment_history = segment_accuracy(scored, by=("cycle",), lags=lags, scale=scale, interval=interval)
    history_metrics = pd.concat([history_metrics, segment_history], ignore_index=True)
    seconds["accuracy"] = time.perf_counter() - clock

    clock = time.perf_counter()
    # by default the levels a manager reviews: the aggregates of at most 50 series each
    counts = levels_of.value_counts()
    reviewed = [lv for lv in order[:-1] if counts[lv] <= 50] or order[:1]
    targets = settings.targets or default_targets([*reviewed, order[-1]])
    stake = _at_stake(scored, S, segments, bottom_level)
    exceptions = check_targets(series, by_segment, targets, history_metrics=history_metrics, at_stake=stake)
    cycle = pd.Timestamp(scored["ds"].max()).strftime("%Y-%m")
    folder = Path(folder)
    drift = None
    if len(history):
        drift_frame = _drift_frame(plans, plan, latest, scored, bottom_level, settings.drift_level)
        drift_folder = inside(folder, folder / safe_name(f"drift_{cycle}"))
        drift = drift_monitor(drift_frame, "segment", settings.drift, drift_folder)
        exceptions = _with_drift(exceptions, drift, settings.drift, stake)
    seconds["exceptions_and_drift"] = time.perf_counter() - clock

    kpis = _kpis(levels, series, targets)
    fva = fva_table(stacked, actual_all, lags)
    result = MonitorResult(
        plan,
        cycle,
        levels,
        trend,
        series,
        by_segment,
        exceptions,
        kpis,
        fva,
        drift,
        currency=settings.currency,
        stake_members=stake_members(S, segments),
        drift_threshold=settings.drift.threshold if drift is not None else None,
        seconds=seconds,
    )
    clock = time.perf_counter()
    pdf = settings.pdf and has_chromium()
    if settings.pdf and not pdf:
        logger.warning(
            "Chromium not found: the manager report is written as HTML only (apt-get install chromium)"
        )
    data = _report_data(result, trend, history_metrics, targets, order, folder, mlflow_url)
    data.sop = review_page(read_review(plans, plan, budget=budget), settings.currency)
    result.report, result.pdf = write_report(data, folder, pdf=pdf)
    seconds["report"] = time.perf_counter() - clock
    result.run_id = plans.record_monitor(result, versions=int(scored["version_id"].nunique()))
    logger.info(
        "Monitored %s up to %s: %d exception(s); report %s",
        plan,
        cycle,
        len(exceptions),
        result.report,
    )
    return result


def _at_stake(scored, S, segments, bottom_level) -> pd.Series:
    """Money at stake per key: the net revenue gap of the plan, |sum (final - actual) x
    price|, over the latest three months with actuals (lag 1 plans), summed from the bottom
    series to every aggregate and segment before the absolute value is taken. Random errors
    cancel; a plan that is systematically off (a demand shift it missed) does not.

    Each month is priced as the version that planned it priced it (its line's ``price``), so
    the figures of a cycle stay the same when later versions bring new prices."""
    recent = scored[(scored["ds"] > scored["ds"].max() - pd.DateOffset(months=3)) & (scored["lag"] == 1)]
    bottom = recent[recent["level"] == bottom_level]
    price = bottom["price"].astype(float) if "price" in bottom else pd.Series(np.nan, index=bottom.index)
    error = (bottom["final"] - bottom["y"]) * price.fillna(0.0)
    per_series = error.groupby(bottom["unique_id"]).sum().reindex(S.columns).fillna(0.0)
    stake = pd.Series(S.S @ per_series.to_numpy(), index=S.index)
    parts = [stake]
    owner = segments.set_index("unique_id")
    for col in ("demand_class", "abc", "xyz"):
        if col in owner:
            grouped = per_series.groupby(owner[col].reindex(per_series.index), observed=True).sum()
            parts.append(grouped.rename(lambda v, c=col: f"{c}={v}"))
    parts.append(pd.Series({"all": per_series.sum()}))
    return pd.concat(parts).abs()


def _drift_frame(plans, plan, latest, scored, bottom_level, drift_level) -> pd.DataFrame:
    """Bottom demand with its drivers and lag-1 forecast errors, each series in its segment."""
    actual = plans.actuals(plan, drivers=True).drop(columns="revision")
    first = scored[(scored["level"] == bottom_level) & (scored["lag"] == 1)]
    first = first.sort_values("version_id").drop_duplicates(["unique_id", "ds"], keep="last")
    residual = (first["y"] - first["final"]).rename("residual")
    frame = actual.merge(
        pd.concat([first[["unique_id", "ds"]], residual], axis=1), on=["unique_id", "ds"], how="left"
    )
    keys = plans.keys(latest)
    chain = parse_chains(latest.hierarchy)[0] if latest.hierarchy else []
    level = split_path(drift_level) if drift_level else chain[: max(1, min(2, len(chain) - 1))]
    if level:
        segment = keys[level].astype(str).agg("/".join, axis=1)
        frame["segment"] = frame["unique_id"].map(segment)
    else:
        frame["segment"] = "all"
    return frame


def _with_drift(exceptions, drift: DriftResult, settings: DriftSettings, stake: pd.Series) -> pd.DataFrame:
    """Drifted demand or forecast errors of a segment become exceptions too."""
    scores = drift.scores
    hit = scores[scores["drifted"] & scores["column"].isin(["y", settings.residual])]
    if hit.empty:
        return exceptions
    what = hit["column"].map({"y": "demand", settings.residual: "forecast errors"})
    rows = pd.DataFrame(
        {
            "key": hit["segment"].to_numpy(),
            "level": "drift",
            "metric": ("drift of " + what).to_numpy(),
            "forecast": "final",
            "lag": 1,
            "value": hit["score"].to_numpy(),
            "target": f"<= {settings.threshold:g}",
            "breach": (hit["score"] - settings.threshold).to_numpy(),
            "trend": [_drift_trend(r) for r in hit.itertuples(index=False)],
            "direction": "worsening",
            "action": [
                f"The {w} of {k} shifted in the latest months: check for a structural change "
                "(new listing, lost customer, competitor) and re-fit or override the plan"
                for w, k in zip(what, hit["segment"], strict=True)
            ],
            "at_stake": hit["segment"].map(stake).to_numpy(),
        }
    )
    both = pd.concat([exceptions.drop(columns="rank", errors="ignore"), rows], ignore_index=True)
    both = both.sort_values(["at_stake", "breach"], ascending=False, na_position="last", kind="stable")
    both["rank"] = np.arange(1, len(both) + 1)
    return both.reindex(columns=EXCEPTION_COLUMNS).reset_index(drop=True)


def _drift_trend(row) -> str:
    """How a drifted column moved, in words: demand by its relative change, forecast errors
    (a share of demand, near zero before) by their mean before and now."""
    if row.column == "y" and row.change_pct == row.change_pct:
        return f"demand {row.change_pct / 100:+.0%} vs the reference months"
    return f"errors {row.mean_current:+.2f} of demand, were {row.mean_reference:+.2f}"


def _kpis(levels: pd.DataFrame, series: pd.DataFrame, targets: list[Target]) -> pd.DataFrame:
    """A tile per level target: the level's pooled value against it. The tracking signal
    is a property of one series (it grows with the number of errors summed), so its tile
    is the mean of the level's series' signals, judged by the rule it shares with bias
    (:func:`~.rules.bias_status`: off target only when the level's bias is off its band and
    persists)."""
    bands = {(t.level, t.lag, t.forecast): t.within for t in targets if t.metric == "bias" and t.within}
    rows = []
    for t in targets:
        if t.level is None:
            continue
        source = series if t.metric == "tracking_signal" else levels
        hit = source[
            (source["level"] == t.level) & (source["lag"] == t.lag) & (source["forecast"] == t.forecast)
        ]
        if hit.empty or t.metric not in hit:
            continue
        value = float(hit[t.metric].mean())
        if np.isnan(value):
            continue
        target, status = t.bound_text, status_of(value, t.min, t.max, t.within)
        if t.metric == "tracking_signal":
            band = bands.get((t.level, t.lag, t.forecast), BIAS_BAND)
            pooled = levels[
                (levels["level"] == t.level) & (levels["lag"] == t.lag) & (levels["forecast"] == t.forecast)
            ]
            bias = float(pooled["bias"].iloc[0]) if len(pooled) else float("nan")
            bound = t.within if t.within is not None else TRACKING_BOUND
            status = bias_status(bias, value, float(hit["n"].median()), band=band, bound=bound)
            target = f"|x| <= {bound:g} or bias within ±{band:.0%}"
        rows.append(
            {
                "name": t.metric.replace("_", " "),
                "level": t.level,
                "lag": t.lag,
                "value": value,
                "target": target,
                "status": status,
                "unit": "" if t.metric in ("mase", "tracking_signal") else "%",
            }
        )
    return pd.DataFrame(rows, columns=["name", "level", "lag", "value", "target", "status", "unit"])


BIAS_GROUPS = 8  # bars per cycle in the report's bias chart


def _bias_by_group(history_metrics: pd.DataFrame, order: list[str]) -> tuple[pd.DataFrame, str]:
    """Bias by cycle of the series of one level, for the report's chart, and that level.

    A level's pooled bias is the same at every coherent level (the same errors summed), so
    the chart draws the series of the first level below the top with 2 to
    :data:`BIAS_GROUPS` series (else the largest :data:`BIAS_GROUPS` of the level below the
    top): where the bias comes from."""
    rows = history_metrics[(history_metrics["forecast"] == "final") & history_metrics["unique_id"].notna()]
    if rows.empty or not len(order):
        return pd.DataFrame(columns=["cycle", "level", "bias"]), ""
    rows = rows[rows["lag"] == rows["lag"].min()]
    counts = rows.groupby("level")["unique_id"].nunique()
    below = [lv for lv in order[1:-1] if lv in counts.index] or [lv for lv in order if lv in counts.index]
    level = next((lv for lv in below if 2 <= counts[lv] <= BIAS_GROUPS), below[0] if below else None)
    if level is None:
        return pd.DataFrame(columns=["cycle", "level", "bias"]), ""
    part = rows[rows["level"] == level]
    largest = part.groupby("unique_id")["actual"].sum().sort_values(ascending=False).index[:BIAS_GROUPS]
    part = part[part["unique_id"].isin(largest)]
    frame = part[["cycle", "unique_id", "bias"]].rename(columns={"unique_id": "level"})
    return frame.reset_index(drop=True), level


def _report_data(
    result: MonitorResult,
    trend: pd.DataFrame,
    history_metrics: pd.DataFrame,
    targets: list[Target],
    order: list[str],
    folder: Path,
    mlflow_url,
) -> ReportData:
    final = trend[trend["forecast"] == "final"]
    reports = {}
    if result.drift is not None:
        reports = {name: str(Path(p).relative_to(folder)) for name, p in result.drift.reports.items()}
    drift = result.drift.scores if result.drift is not None else pd.DataFrame()
    bias, bias_level = _bias_by_group(history_metrics, order)
    band = next((t.within for t in targets if t.metric == "bias" and t.level == bias_level), None)
    return ReportData(
        plan=result.plan,
        cycle=result.cycle,
        generated_at=pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC"),
        kpis=result.kpis,
        trend=final[["cycle", "level", "lag", "accuracy"]],
        bias=bias,
        bias_level=bias_level,
        bias_band=band,
        exceptions=result.exceptions,  # all of them: the page counts them, shows the top
        stake_members=result.stake_members,
        fva=result.fva,
        drift=drift,
        drift_reports=reports,
        drift_threshold=result.drift_threshold,
        mlflow_url=mlflow_url,
        currency=result.currency,
    )
