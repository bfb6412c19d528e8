"""M3 benchmark: sMAPE per group and overall of ``models: auto`` against the reference
ensemble, with wall time per stage and per model, and interval coverage on M3 monthly.

``auto`` runs through :class:`~sopforecast.forecasting.forecaster.Forecaster` exactly as the
product does (backtest, selection, fit, predict). The reference is the mean of AutoETS,
AutoARIMA, DynamicOptimizedTheta and AutoCES called directly on statsforecast (point
forecasts, every core), each model timed in its own call in the same benchmark run; its
wall time is the sum. Run ``python -m sopforecast.bench.m3 --output DIR`` (all 3003
series) or ``--group monthly``. Results land in ``--output`` as CSV and JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import pandas as pd

from ..config import ForecastConfig
from ..data.competitions import FREQ, CompetitionData, load_m3, to_dates
from ..forecasting.forecaster import Forecaster
from ..forecasting.metrics import smape
from ..forecasting.models import CATALOGUE, build_stats_model
from . import output_folder

__all__ = ["smape", "coverage", "to_dates", "run_auto", "run_reference", "frames", "main", "REFERENCE"]

logger = logging.getLogger(__name__)

REFERENCE = ("ets", "arima", "theta", "ces")  # the public reference ensemble


def coverage(actual: pd.DataFrame, forecast: pd.DataFrame, level: int) -> float:
    """Share of actuals inside the ``level`` interval, in percent."""
    joined = actual.merge(forecast, on=["unique_id", "ds"], how="left")
    lo, hi = joined[f"forecast-lo-{level}"], joined[f"forecast-hi-{level}"]
    if lo.isna().all():
        return float("nan")  # the forecast carries no interval
    return float(((joined["y"] >= lo) & (joined["y"] <= hi)).mean() * 100.0)


def _config(data: CompetitionData, group: str, models, **kw) -> ForecastConfig:
    return ForecastConfig(
        horizon=data.horizon[group],
        freq=FREQ[group],
        models=models,
        season_length=data.season_length[group],
        **kw,
    )


def frames(data: CompetitionData, group: str):
    train = to_dates(data.train[data.train["group"] == group].drop(columns="group"), group)
    full = pd.concat([data.train, data.test])
    test = to_dates(full[full["group"] == group].drop(columns="group"), group)
    test = test.merge(
        data.test.loc[data.test["group"] == group, ["unique_id"]].drop_duplicates(), on="unique_id"
    )
    last = train.groupby("unique_id")["ds"].max()
    return train, test[test["ds"] > test["unique_id"].map(last)]


def run_auto(data: CompetitionData, group: str, windows: int = 1, n_jobs: int = -1) -> dict:
    """``models: auto`` on one group: sMAPE, chosen strategies, coverage, time per stage."""
    train, test = frames(data, group)
    config = _config(data, group, "auto", windows=windows, n_jobs=n_jobs, level=[80, 95])
    start = time.perf_counter()
    result = Forecaster(config).fit(train).predict()
    seconds = time.perf_counter() - start
    scores = smape(test, result.forecast)
    strategies = result.backtest.selection.per_series.groupby("demand_class")["strategy"].first()
    return {
        "group": group,
        "model": "auto",
        "series": int(scores.size),
        "smape": float(scores.mean()),
        "seconds": seconds,
        **{f"seconds_{k}": v for k, v in result.timings.items()},
        "coverage_80": coverage(test, result.forecast, 80),
        "coverage_95": coverage(test, result.forecast, 95),
        "chosen": result.forecast.groupby("unique_id")["model"].first().value_counts().to_dict(),
        "strategy": strategies.to_dict(),
        "_forecast": result.forecast,
    }


def run_reference(data: CompetitionData, group: str, n_jobs: int = -1) -> list[dict]:
    """Each reference model called directly on statsforecast (own timed call), then their mean."""
    from statsforecast import StatsForecast

    train, test = frames(data, group)
    season = data.season_length[group]
    rows, points = [], []
    for name in REFERENCE:
        alias = CATALOGUE[name].alias
        sf = StatsForecast(models=[build_stats_model(name, season)], freq=FREQ[group], n_jobs=n_jobs)
        start = time.perf_counter()
        fcst = sf.forecast(df=train[["unique_id", "ds", "y"]], h=data.horizon[group])
        seconds = time.perf_counter() - start
        point = fcst[["unique_id", "ds", alias]].rename(columns={alias: "forecast"})
        points.append(point.set_index(["unique_id", "ds"])["forecast"])
        scores = smape(test, point)
        rows.append(
            {
                "group": group,
                "model": alias,
                "series": int(scores.size),
                "smape": float(scores.mean()),
                "seconds": seconds,
            }
        )
        logger.info("M3 %s %s: sMAPE %.3f in %.0f s", group, alias, rows[-1]["smape"], seconds)
    mean = pd.concat(points, axis=1).mean(axis=1).rename("forecast").reset_index()
    scores = smape(test, mean)
    rows.append(
        {
            "group": group,
            "model": "reference mean(ETS,ARIMA,Theta,CES)",
            "series": int(scores.size),
            "smape": float(scores.mean()),
            "seconds": float(sum(r["seconds"] for r in rows)),
        }
    )
    return rows


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
                **{c: float(part[c].sum()) for c in part.columns if c.startswith("seconds_")},
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.m3", description=__doc__)
    parser.add_argument("--group", default="all", help="yearly, quarterly, monthly, other or all")
    parser.add_argument("--windows", type=int, default=1, help="backtest windows for auto")
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/m3")
    args = parser.parse_args(argv)
    out = output_folder(args.output)
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
        row["_forecast"].to_parquet(out / f"m3_{group}_auto_forecast.parquet")
        rows.append(row)
        logger.info("M3 %s auto sMAPE %.3f in %.0f s", group, row["smape"], row["seconds"])
        rows.extend(run_reference(data, group, n_jobs=args.n_jobs))
        save()
    table = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    print(table.drop(columns=["chosen", "strategy"], errors="ignore").to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
