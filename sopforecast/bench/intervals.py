"""Are the delivered forecasts usable at every level? Non-negativity, coherence, point
accuracy and interval calibration on a held-out period, against a peer.

Two cases:

* **pbs**: PBS Scripts (Concession / Type / ATC1 / ATC2), the last 24 months held out.
* **demo**: the demo hierarchy (500 bottom series, SKU x region x channel), 60 months of
  history and the 18 months that followed, with the promotion calendar of those months.

The peer is what a data scientist would write by hand: statsforecast ``AutoETS`` with its
native 80% / 95% intervals for every series of the hierarchy, reconciled by
hierarchicalforecast's ``MinTrace(mint_shrink)`` with ``intervals_method="normality"``
(``--peer-intervals bootstrap|permbu``: its other probabilistic reconciliations).

Per level and interval level: coverage (share of held-out months inside the interval) and
the scaled interval score: ``(hi - lo) + 2/alpha * (lo - y)+ + 2/alpha * (y - hi)+`` over
the series' in-sample seasonal-naive MAE, averaged over series and months (lower is
better). Point accuracy (WAPE, MASE), negative rows and the coherence gap come with it.
Every level is scored on the demand of the items known at the origin: items launched
later are in no one's forecast (a plan takes them from the launch plan); the share of the
held-out demand they took is printed beside.

One held-out period is a small sample of errors that move together (24 months of 4 Type
series), so the cases can be repeated: ``--origins 24,36,48`` (PBS) holds out the 24
months after each of the origins 24, 36 and 48 months before the data's end, fitting on
the history known at that origin only; ``--seeds 0,1,2,3`` (demo) draws independent demo
data sets. Coverage and score ratio are printed per level and repeat, with their mean,
and the hindsight check: per level, the one width factor on our intervals that would have
been calibrated on average over the repeats, and the coverage each repeat would have had
with it. Where even that factor leaves a repeat outside the 5-point band, no calibration
from the past could have met the band at that repeat and the others together.

Run ``python -m sopforecast.bench.intervals [--case pbs|demo|all] [--origins 24,36,...]
[--seeds 0,1,...] [--peer-intervals normality|bootstrap|permbu] --output DIR``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import time

import numpy as np
import pandas as pd

from ..config import DataConfig, ForecastConfig
from ..data.datasets import generate_plan
from ..data.hierarchy import Hierarchy
from ..data.pbs import load_pbs
from ..data.schema import validate
from ..forecasting.forecaster import Forecaster
from ..forecasting.hierarchical import build_panel
from ..forecasting.reconcile import aggregate_hierarchy, coherence_gap, level_of
from ..monitoring.accuracy import mase_scale
from . import output_folder

__all__ = [
    "interval_scores",
    "width_ratios",
    "hindsight_coverage",
    "peer_forecast",
    "ours",
    "calendar_delistings",
    "run_case",
    "main",
]

logger = logging.getLogger(__name__)

LEVELS = (80, 95)
SEASON = 12


def seasonal_naive_mae(insample: pd.DataFrame, season: int = SEASON) -> pd.Series:
    """In-sample MAE of the seasonal naive forecast per series (the interval score's scale):
    the monitor's MASE scale (:func:`~sopforecast.monitoring.accuracy.mase_scale`: series
    shorter than a season use the naive forecast, a zero scale becomes 1), and 1 where it
    has none (a single observation)."""
    return mase_scale(insample, season).fillna(1.0)


def interval_scores(frame: pd.DataFrame, prefix: str, levels: pd.Series, scale: pd.Series) -> pd.DataFrame:
    """Coverage and scaled interval score per level of the hierarchy and interval level.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``unique_id, ds, y`` and ``{prefix}``, ``{prefix}-lo-L``, ``{prefix}-hi-L`` columns.
    levels : pandas.Series
        Hierarchy level of each series id.
    scale : pandas.Series
        Seasonal-naive MAE of each series id.
    """
    rows = []
    data = frame.assign(level=frame["unique_id"].map(levels), scale=frame["unique_id"].map(scale))
    y = data["y"].to_numpy(dtype=float)
    for lv in LEVELS:
        lo = data[f"{prefix}-lo-{lv}"].to_numpy(dtype=float)
        hi = data[f"{prefix}-hi-{lv}"].to_numpy(dtype=float)
        alpha = 1 - lv / 100
        score = (hi - lo) + 2 / alpha * np.clip(lo - y, 0, None) + 2 / alpha * np.clip(y - hi, 0, None)
        inside = (y >= lo - 1e-9) & (y <= hi + 1e-9)
        part = pd.DataFrame(
            {"level": data["level"], "covered": inside, "score": score / data["scale"].to_numpy()}
        )
        agg = part.groupby("level", sort=False).agg(coverage=("covered", "mean"), score=("score", "mean"))
        for level, row in agg.iterrows():
            rows.append({"level": level, "interval": lv, "coverage": row["coverage"], "score": row["score"]})
    return pd.DataFrame(rows)


def point_scores(frame: pd.DataFrame, column: str, levels: pd.Series, scale: pd.Series) -> pd.DataFrame:
    """WAPE, MASE (seasonal-naive scaled MAE) and negative rows per level."""
    data = frame.assign(
        level=frame["unique_id"].map(levels),
        err=(frame[column] - frame["y"]).abs(),
        scaled=(frame[column] - frame["y"]).abs() / frame["unique_id"].map(scale),
        negative=frame[column] < 0,
    )
    agg = data.groupby("level", sort=False).agg(
        err=("err", "sum"), y=("y", "sum"), mase=("scaled", "mean"), negative=("negative", "sum")
    )
    agg["wape"] = agg["err"] / agg["y"].abs().clip(lower=1e-9)
    return agg[["wape", "mase", "negative"]].reset_index()


PEER_INTERVALS = ("normality", "bootstrap", "permbu")


def peer_forecast(
    train: pd.DataFrame,
    structure: Hierarchy,
    tags: dict,
    h: int,
    n_jobs: int = -1,
    intervals_method: str = "normality",
) -> pd.DataFrame:
    """AutoETS with native intervals for every series, reconciled by MinTrace(mint_shrink)
    with hierarchicalforecast's probabilistic reconciliation ``intervals_method``
    (normality by default; bootstrap and permbu draw 500 samples); columns ``forecast``,
    ``forecast-lo-L``, ``forecast-hi-L``."""
    from hierarchicalforecast.core import HierarchicalReconciliation
    from hierarchicalforecast.methods import MinTrace
    from hierarchicalforecast.utils import SMatrix
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    sf = StatsForecast(models=[AutoETS(season_length=SEASON)], freq="MS", n_jobs=n_jobs)
    base = sf.forecast(df=train[["unique_id", "ds", "y"]], h=h, level=list(LEVELS), fitted=True)
    fitted = sf.forecast_fitted_values()
    rec = HierarchicalReconciliation([MinTrace(method="mint_shrink")]).reconcile(
        Y_hat_df=base,
        Y_df=fitted,
        S_df=SMatrix(structure.S, structure.ids, structure.bottom_ids),
        tags=tags,
        level=list(LEVELS),
        intervals_method=intervals_method,
        **({} if intervals_method == "normality" else {"num_samples": 500, "seed": 0}),
    )
    name = "AutoETS/MinTrace_method-mint_shrink"
    out = rec[["unique_id", "ds"]].copy()
    out["forecast"] = rec[name].to_numpy()
    for lv in LEVELS:
        for side in ("lo", "hi"):
            out[f"forecast-{side}-{lv}"] = rec[f"{name}-{side}-{lv}"].to_numpy()
    return out


def ours(
    train: pd.DataFrame,
    config: ForecastConfig,
    future: pd.DataFrame | None = None,
    delistings: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """sopforecast's delivered forecast."""
    fitted = Forecaster(config).fit(train)
    if delistings is None or "delistings" not in inspect.signature(fitted.predict).parameters:
        return fitted.predict(future=future).forecast  # (an older checkout knows no delistings)
    return fitted.predict(future=future, delistings=delistings).forecast


def calendar_delistings(future: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The items whose promotion calendar stops before its last month, delisted after their
    last calendar month (the sales team lists only what it still sells): ``keys, last_month``."""
    last = future.groupby(keys, sort=False)["ds"].max().rename("last_month").reset_index()
    return last[last["last_month"] < future["ds"].max()].reset_index(drop=True)


def _pbs_case(origin: int | None = None) -> dict:
    """PBS with the ``HOLDOUT`` months after ``origin`` months before the end held out
    (default: the last ``HOLDOUT`` months)."""
    from .pbs import HIERARCHY, HOLDOUT

    raw = load_pbs().drop(columns="Cost")
    data = DataConfig(
        target_col="Scripts", hierarchy=HIERARCHY, freq="MS", missing="zero", short_series="report"
    )
    history = validate(raw, data, source="PBS").frame
    origin = history["ds"].max() - pd.DateOffset(months=HOLDOUT if origin is None else origin)
    history = history[history["ds"] <= origin + pd.DateOffset(months=HOLDOUT)]
    return {
        "hierarchy": HIERARCHY,
        "train": history[history["ds"] <= origin],
        "full": history,
        "future": None,
        "horizon": HOLDOUT,
        "drivers": [],
        # as pipelines/pbs_monthly.yaml: scripts are dispensed on business days (February
        # 2008 had 21 of them, 2007's 20), and 3 backtest windows calibrate the Total
        "settings": {"working_days": True, "windows": 3},
    }


def _demo_case(seed: int = 0, n_series: int = 500) -> dict:
    hierarchy = ["category/family/sku", "region/channel"]
    plan = generate_plan(n_series=n_series, periods=60, horizon=18, seed=seed)
    data = DataConfig(hierarchy=hierarchy, drivers=["price", "promo"], min_length=24)
    train = validate(plan.history, data).frame
    later = plan.actuals.merge(plan.future, on=["category", "family", "sku", "region", "channel", "ds"])
    full = validate(pd.concat([plan.history, later], ignore_index=True), data).frame
    return {
        "hierarchy": hierarchy,
        "train": train,
        "full": full,
        "future": plan.future,
        "horizon": 18,
        "drivers": ["price", "promo"],
        "settings": {"future_fill": "zero"},  # as the demo pipeline: discontinued items have no calendar
        "delistings": calendar_delistings(plan.future, ["category", "family", "sku", "region", "channel"]),
    }


CASES = {"pbs": _pbs_case, "demo": _demo_case}


def run_case(
    name: str, n_jobs: int = -1, repeat: int | None = None, peer_intervals: str = "normality", **overrides
) -> dict:
    """Ours and the peer on one case: a table per level and the timings. ``repeat``: PBS's
    holdout origin (months before the data's end), or the demo data's seed;
    ``peer_intervals``: the peer's ``intervals_method``."""
    case = CASES[name]() if repeat is None else CASES[name](repeat)
    hierarchy, train, full = case["hierarchy"], case["train"], case["full"]
    keys = [k for chain in hierarchy for k in chain.split("/")]
    settings = {
        "horizon": case["horizon"],
        "freq": "MS",
        "hierarchy": hierarchy,
        "drivers": case["drivers"],
        "level": list(LEVELS),
        "reconcile": "mint_shrink",
        "n_jobs": n_jobs,
        **case.get("settings", {}),
        **overrides,
    }
    config = ForecastConfig(**settings)
    # the series known at the origin: items launched later are forecast by no one (a plan
    # takes them from the launch plan), so every level is scored on the demand of the known
    # items; the share the later launches took is reported beside
    panel = build_panel(train, config)
    S, tags = panel.hierarchy, panel.tags
    insample = panel.Y[["unique_id", "ds", "y"]]
    later = full[full["ds"] > train["ds"].max()]
    known = later["unique_id"].isin(S.bottom_ids)
    actual, _, _ = aggregate_hierarchy(later.loc[known, ["unique_id", "ds", "y", *keys]], hierarchy)
    held = actual[actual["unique_id"].isin(S.ids)]
    launched_later = float(later.loc[~known, "y"].sum() / max(later["y"].sum(), 1e-9))
    levels, scale = level_of(tags), seasonal_naive_mae(insample)
    results, seconds = {}, {}
    start = time.perf_counter()
    results["sopforecast"] = ours(train, config, case["future"], case.get("delistings"))
    seconds["sopforecast"] = time.perf_counter() - start
    start = time.perf_counter()
    results["peer"] = peer_forecast(insample, S, tags, case["horizon"], n_jobs, peer_intervals)
    if (
        case.get("delistings") is not None
        and "delistings" in inspect.signature(Forecaster.predict).parameters
    ):
        # the peer's hand-written pipeline would drop delisted items as well
        from ..forecasting.launches import delist_forecast, read_delistings

        delisted = read_delistings(case["delistings"], keys=keys)
        results["peer"] = delist_forecast(results["peer"], delisted, hierarchy=S)
    seconds["peer"] = time.perf_counter() - start
    tables = []
    for who, fcst in results.items():
        frame = fcst.merge(held[["unique_id", "ds", "y"]], on=["unique_id", "ds"], how="inner")
        table = interval_scores(frame, "forecast", levels, scale).merge(
            point_scores(frame, "forecast", levels, scale), on="level"
        )
        table.insert(0, "forecaster", who)
        table["coherence_gap"] = coherence_gap(fcst, S, "forecast")
        bounds = [c for c in fcst.columns if c.startswith("forecast-")]
        table["interval_excludes_point"] = int(
            sum(
                ((fcst[c] > fcst["forecast"]) if "-lo-" in c else (fcst[c] < fcst["forecast"])).sum()
                for c in bounds
            )
        )
        tables.append(table)
        if who == "sopforecast":
            widths = width_ratios(frame, "forecast", levels)
    table = pd.concat(tables, ignore_index=True)
    order = {lvl: i for i, lvl in enumerate(tags)}
    table = table.sort_values(
        ["interval", "level", "forecaster"], key=lambda s: s.map(order) if s.name == "level" else s
    )
    return {
        "case": name,
        "table": table.reset_index(drop=True),
        "seconds": seconds,
        "launched_later_share": launched_later,
        "width_ratios": widths,
    }


def ratio_table(table: pd.DataFrame) -> pd.DataFrame:
    """Our score over the peer's and our coverage gap to nominal, per level and interval."""
    wide = table.pivot_table(
        index=["interval", "level"], columns="forecaster", values=["score", "coverage"], sort=False
    )
    out = pd.DataFrame(
        {
            "coverage": wide[("coverage", "sopforecast")],
            "peer_coverage": wide[("coverage", "peer")],
            "score": wide[("score", "sopforecast")],
            "peer_score": wide[("score", "peer")],
        }
    )
    out["score_ratio"] = out["score"] / out["peer_score"]
    return out.reset_index()


def repeats_summary(ratios: pd.DataFrame, by: str = "origin") -> pd.DataFrame:
    """Per interval and level: coverage and score ratio at each repeat (column ``by``:
    origin or seed), their mean, and at how many repeats the coverage was within 5 points
    of nominal."""
    wide = ratios.pivot_table(
        index=["interval", "level"], columns=by, values=["coverage", "score_ratio"], sort=False
    )
    out = wide.copy()
    out.columns = [f"{what}_{repeat}" for what, repeat in wide.columns]
    out["coverage_mean"] = wide["coverage"].mean(axis=1)
    out["score_ratio_mean"] = wide["score_ratio"].mean(axis=1)
    nominal = wide.index.get_level_values("interval").to_numpy()[:, None] / 100
    out["within_5_points"] = (abs(wide["coverage"].to_numpy() - nominal) <= 0.05 + 1e-9).sum(axis=1)
    return out.reset_index()


def width_ratios(frame: pd.DataFrame, prefix: str, levels: pd.Series) -> pd.DataFrame:
    """Per held-out row and interval level: how far the actual fell from the point, in
    interval half-widths (``|y - point| / (hi - point)``; 1 is the interval's edge).
    Assumes symmetric intervals (ours; a lower bound stopped at zero keeps the upper width)."""
    y = frame["y"].to_numpy(dtype=float)
    point = frame[prefix].to_numpy(dtype=float)
    parts = []
    for lv in LEVELS:
        half = frame[f"{prefix}-hi-{lv}"].to_numpy(dtype=float) - point
        miss = np.abs(y - point)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(half > 0, miss / half, np.where(miss > 0, np.inf, 0.0))
        parts.append(
            pd.DataFrame({"level": frame["unique_id"].map(levels).to_numpy(), "interval": lv, "ratio": ratio})
        )
    return pd.concat(parts, ignore_index=True)


def hindsight_coverage(ratios: pd.DataFrame, by: str = "origin") -> pd.DataFrame:
    """Could one width per level have been calibrated at every repeat? Per interval and
    level, the one factor on the interval's width that gives the nominal coverage on
    average over the repeats (knowable only in hindsight), and the coverage each repeat
    would have had with it.

    Parameters
    ----------
    ratios : pandas.DataFrame
        :func:`width_ratios` of every repeat, with the repeat in column ``by``.
    """
    rows = []
    for (interval, level), part in ratios.groupby(["interval", "level"], sort=False):
        nominal = interval / 100
        per = {k: np.sort(g["ratio"].to_numpy()) for k, g in part.groupby(by)}
        candidates = np.unique(part["ratio"].to_numpy())
        candidates = np.append(candidates[np.isfinite(candidates)], np.inf)
        # coverage of each repeat (rows) at each candidate factor (columns)
        covered = np.array([np.searchsorted(r, candidates, side="right") / len(r) for r in per.values()])
        at = int(np.flatnonzero(covered.mean(axis=0) >= nominal - 1e-12)[0])  # inf covers all
        row = {"interval": interval, "level": level, "factor": float(candidates[at])}
        row.update({f"coverage_{k}": float(c) for k, c in zip(per, covered[:, at], strict=True)})
        row["within_5_points"] = int((abs(covered[:, at] - nominal) <= 0.05 + 1e-9).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.intervals", description=__doc__)
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/intervals")
    parser.add_argument(
        "--origins", default=None, help="PBS: holdout origins, months before the end: 24,36,48"
    )
    parser.add_argument("--seeds", default=None, help="demo: data seeds, e.g. 0,1,2,3")
    parser.add_argument(
        "--peer-intervals",
        choices=PEER_INTERVALS,
        default="normality",
        help="the peer's probabilistic reconciliation (hierarchicalforecast intervals_method)",
    )
    parser.add_argument(
        "--bias-correction",
        choices=["on", "off"],
        default=None,
        help="forecast.bias_correction (default: as configured)",
    )
    args = parser.parse_args(argv)
    out = output_folder(args.output)
    args.overrides = {"bias_correction": args.bias_correction == "on"} if args.bias_correction else {}
    if args.origins or args.seeds:
        name, by = ("pbs", "origin") if args.origins else ("demo", "seed")
        if args.case != name or (args.origins and args.seeds):
            parser.error("--origins goes with --case pbs, --seeds with --case demo")
        return _repeats(args, out, name, by, [int(v) for v in (args.origins or args.seeds).split(",")])
    for name in CASES if args.case == "all" else [args.case]:
        result = run_case(name, n_jobs=args.n_jobs, peer_intervals=args.peer_intervals, **args.overrides)
        result["table"].to_csv(out / f"{name}_levels.csv", index=False)
        ratios = ratio_table(result["table"])
        ratios.to_csv(out / f"{name}_ratios.csv", index=False)
        (out / f"{name}_seconds.json").write_text(json.dumps(result["seconds"], indent=2))
        with pd.option_context("display.width", 220, "display.max_columns", 20, "display.precision", 3):
            print(f"== {name} ==")
            print(result["table"].to_string(index=False))
            print(ratios.to_string(index=False))
            print(result["seconds"])
            print(
                f"share of the held-out demand from items launched after the origin: "
                f"{result['launched_later_share']:.1%}"
            )
    return 0


def _repeats(args, out, name: str, by: str, values: list[int]) -> int:
    parts, widths = [], []
    for value in values:
        result = run_case(
            name, n_jobs=args.n_jobs, repeat=value, peer_intervals=args.peer_intervals, **args.overrides
        )
        result["table"].assign(**{by: value}).to_csv(out / f"{name}_levels_{by}{value}.csv", index=False)
        parts.append(ratio_table(result["table"]).assign(**{by: value}))
        widths.append(result["width_ratios"].assign(**{by: value}))
        logger.info(
            "%s %s: %.1f%% of the held-out demand from items launched later",
            by,
            value,
            100 * result["launched_later_share"],
        )
    summary = repeats_summary(pd.concat(parts, ignore_index=True), by)
    summary.to_csv(out / f"{name}_{by}s.csv", index=False)
    hindsight = hindsight_coverage(pd.concat(widths, ignore_index=True), by)
    order = pd.MultiIndex.from_frame(summary[["interval", "level"]])
    hindsight = hindsight.set_index(["interval", "level"]).reindex(order).reset_index()
    hindsight.to_csv(out / f"{name}_{by}s_hindsight.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.precision", 3):
        print(summary.to_string(index=False))
        print("one width factor per level, chosen in hindsight to be calibrated on average over the repeats:")
        print(hindsight.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
