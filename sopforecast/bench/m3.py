"""M3 benchmark: sMAPE per group and overall for ``auto`` and each single model, with wall
time, and the coverage of the 80% and 95% intervals on M3 monthly.

Run ``python -m sopforecast.bench.m3`` (all 3003 series; about an hour on 2 cores) or
``--group monthly`` for a part. Single models are scored from the auto run's own fits (the
same model on the same data); ``--time-singles`` also runs each alone for its wall time.
Results land in ``--output`` as CSV and JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import ForecastConfig
from ..data.competitions import CompetitionData, load_m3
from ..forecasting.engine import run_forecast
from ..forecasting.models import CATALOGUE

__all__ = ["smape", "coverage", "to_dates", "run_auto", "run_single", "main"]

logger = logging.getLogger(__name__)

# integer steps become synthetic dates so the engine's frequency logic applies;
# "other" has no calendar, so it runs as a non-seasonal yearly series
FREQ = {"yearly": "YS", "quarterly": "QS", "monthly": "MS", "other": "YS"}
START = {"yearly": "1750-01-01", "quarterly": "1900-01-01", "monthly": "1900-01-01", "other": "1750-01-01"}
SINGLES = ("ets", "arima", "theta", "ces", "snaive", "lgbm")
REFERENCE = SINGLES[:4]  # the public reference ensemble


def smape(actual: pd.DataFrame, forecast: pd.DataFrame, column: str = "forecast") -> pd.Series:
    """M3 sMAPE (0-200) per series: the mean over its horizon of 200|y-f|/(|y|+|f|)."""
    joined = actual.merge(forecast[["unique_id", "ds", column]], on=["unique_id", "ds"], how="left")
    if joined[column].isna().any():
        missing = joined.loc[joined[column].isna(), "unique_id"].unique()[:5]
        raise ValueError(f"no forecast for {list(missing)}")
    y, f = joined["y"].to_numpy(), joined[column].to_numpy()
    denom = np.abs(y) + np.abs(f)
    err = np.where(denom > 0, 200.0 * np.abs(y - f) / np.where(denom > 0, denom, 1.0), 0.0)
    return pd.Series(err).groupby(joined["unique_id"].to_numpy()).mean()


def coverage(actual: pd.DataFrame, forecast: pd.DataFrame, level: int) -> float:
    """Share of actuals inside the ``level`` interval, in percent."""
    joined = actual.merge(forecast, on=["unique_id", "ds"], how="left")
    lo, hi = joined[f"forecast-lo-{level}"], joined[f"forecast-hi-{level}"]
    if lo.isna().all():
        return float("nan")  # the forecast carries no interval
    return float(((joined["y"] >= lo) & (joined["y"] <= hi)).mean() * 100.0)


def to_dates(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """Replace the integer steps (1, 2, ...) by dates of the group's synthetic calendar."""
    calendar = pd.date_range(START[group], periods=int(frame["ds"].max()), freq=FREQ[group])
    return frame.assign(ds=calendar[frame["ds"].to_numpy() - 1])


def _config(data: CompetitionData, group: str, models, **kw) -> ForecastConfig:
    return ForecastConfig(
        horizon=data.horizon[group],
        freq=FREQ[group],
        models=models,
        season_length=data.season_length[group],
        **kw,
    )


def _frames(data: CompetitionData, group: str):
    train = to_dates(data.train[data.train["group"] == group].drop(columns="group"), group)
    full = pd.concat([data.train, data.test])
    test = to_dates(full[full["group"] == group].drop(columns="group"), group)
    test = test.merge(
        data.test.loc[data.test["group"] == group, ["unique_id"]].drop_duplicates(), on="unique_id"
    )
    last = train.groupby("unique_id")["ds"].max()
    return train, test[test["ds"] > test["unique_id"].map(last)]


def run_auto(data: CompetitionData, group: str, windows: int = 1, n_jobs: int = -1) -> dict:
    """``models: auto`` on one group; sMAPE of auto, the chosen strategies, coverage, time."""
    train, test = _frames(data, group)
    config = _config(data, group, "auto", windows=windows, n_jobs=n_jobs, level=[80, 95])
    start = time.perf_counter()
    result = run_forecast(train, config)
    seconds = time.perf_counter() - start
    scores = smape(test, result.forecast)
    strategies = result.backtest.selection.per_series.groupby("demand_class")["strategy"].first()
    return {
        "group": group,
        "model": "auto",
        "series": int(scores.size),
        "smape": float(scores.mean()),
        "seconds": seconds,
        "coverage_80": coverage(test, result.forecast, 80),
        "coverage_95": coverage(test, result.forecast, 95),
        "chosen": result.forecast.groupby("unique_id")["model"].first().value_counts().to_dict(),
        "strategy": strategies.to_dict(),
        "_forecast": result.forecast,
        "_candidates": result.candidates,
        "_cv": result.backtest.cv,
    }


def run_single(data: CompetitionData, group: str, name: str, n_jobs: int = -1) -> dict:
    """One catalogue model fitted on every series of the group, no backtest."""
    train, test = _frames(data, group)
    config = _config(data, group, name, n_jobs=n_jobs, level=[80, 95])
    start = time.perf_counter()
    result = run_forecast(train, config)
    seconds = time.perf_counter() - start
    scores = smape(test, result.forecast)
    return {
        "group": group,
        "model": CATALOGUE[name].alias,
        "series": int(scores.size),
        "smape": float(scores.mean()),
        "seconds": seconds,
        "coverage_80": coverage(test, result.forecast, 80),
        "coverage_95": coverage(test, result.forecast, 95),
        "_forecast": result.forecast,
    }


def singles_from_candidates(data: CompetitionData, group: str, auto: dict) -> list[dict]:
    """Each candidate model of the auto run, scored alone: the same fits on the same
    training data as a run of that model by itself (without its own wall time)."""
    _, test = _frames(data, group)
    wide = auto["_candidates"]
    rows = []
    for name in SINGLES:
        alias = CATALOGUE[name].alias
        if alias not in wide.columns or wide[alias].isna().any():
            continue
        frame = wide[["unique_id", "ds", alias]].rename(columns={alias: "forecast"})
        for lv in (80, 95):
            for side in ("lo", "hi"):
                src = f"{alias}-{side}-{lv}"
                frame[f"forecast-{side}-{lv}"] = wide[src] if src in wide.columns else np.nan
        scores = smape(test, frame)
        rows.append(
            {
                "group": group,
                "model": alias,
                "series": int(scores.size),
                "smape": float(scores.mean()),
                "seconds": float("nan"),
                "coverage_80": coverage(test, frame, 80),
                "coverage_95": coverage(test, frame, 95),
                "_forecast": frame,
            }
        )
    return rows


def _ensemble(data: CompetitionData, group: str, singles: list[dict]) -> dict:
    """The reference: the mean of the four single models' forecasts."""
    _, test = _frames(data, group)
    frames = [r["_forecast"].set_index(["unique_id", "ds"])["forecast"] for r in singles]
    mean = pd.concat(frames, axis=1).mean(axis=1).rename("forecast").reset_index()
    scores = smape(test, mean)
    return {
        "group": group,
        "model": "mean(ETS,ARIMA,Theta,CES)",
        "series": int(scores.size),
        "smape": float(scores.mean()),
        "seconds": float(sum(r["seconds"] for r in singles)),
    }


def _overall(rows: list[dict], groups: list[str]) -> list[dict]:
    """Series-weighted mean over groups, for models run on every group."""
    table = pd.DataFrame(rows)
    out = []
    for model, part in table.groupby("model", sort=False):
        if set(part["group"]) != set(groups):
            continue
        out.append(
            {
                "group": "all",
                "model": model,
                "series": int(part["series"].sum()),
                "smape": float((part["smape"] * part["series"]).sum() / part["series"].sum()),
                "seconds": float(part["seconds"].sum()),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.m3", description=__doc__)
    parser.add_argument("--group", default="all", help="yearly, quarterly, monthly, other or all")
    parser.add_argument("--windows", type=int, default=1, help="backtest windows for auto")
    parser.add_argument(
        "--time-singles",
        action="store_true",
        help="also run each single model by itself, for its wall time (default: score the auto run's fits)",
    )
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/m3")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    data = load_m3(args.group)
    rows: list[dict] = []

    def save() -> None:
        public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        public += _overall(public, data.groups)
        pd.DataFrame(public).drop(columns=["chosen", "strategy"], errors="ignore").to_csv(
            out / "m3_results.csv", index=False
        )
        (out / "m3_results.json").write_text(json.dumps(public, indent=2, default=str))

    for group in data.groups:
        logger.info("M3 %s: auto", group)
        row = run_auto(data, group, windows=args.windows, n_jobs=args.n_jobs)
        for part in ("forecast", "candidates", "cv"):
            row[f"_{part}"].to_parquet(out / f"m3_{group}_auto_{part}.parquet")
        rows.append(row)
        logger.info("M3 %s auto sMAPE %.3f in %.0f s", group, row["smape"], row["seconds"])
        singles = singles_from_candidates(data, group, row)
        rows.extend(singles)
        reference = [r for r in singles if r["model"] in {CATALOGUE[m].alias for m in REFERENCE}]
        if len(reference) == len(REFERENCE):
            rows.append(_ensemble(data, group, reference))
        save()
    if args.time_singles:
        for group in data.groups:
            singles = []
            for name in SINGLES:
                logger.info("M3 %s: %s", group, name)
                singles.append(run_single(data, group, name, n_jobs=args.n_jobs))
                logger.info("  sMAPE %.3f in %.0f s", singles[-1]["smape"], singles[-1]["seconds"])
            for r in singles:
                r["model"] = f"{r['model']} (own run)"
            rows.extend(singles)
            save()
    print(pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
