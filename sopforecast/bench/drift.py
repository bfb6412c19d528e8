"""Drift monitor cost and hit rate: vectorised scores for every segment and Evidently reports
for the worst few, against one Evidently report per segment.

A synthetic monthly panel (default 2,000 series in 100 segments, 36 months; price, promo and
the residual of a forecast that knows level and promo uplift) has demand raised by 40% in the
last 3 months of 3 segments. The benchmark times :func:`drift_monitor`, checks that exactly
those segments are flagged (and, scores only, over ``--draws`` other random panels: chance
false alarms), and times ``--naive`` per-segment Evidently reports, extrapolated to every
segment (linear: each report is independent). The panel has no seasonality, which
would show as drift in ``y`` (see :mod:`sopforecast.monitoring.drift`).

Run ``python -m sopforecast.bench.drift [--segments 100] [--series 2000] [--output DIR]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import pandas as pd

from ..monitoring.drift import DriftSettings, drift_monitor, drift_scores, evidently_report, split_windows
from . import output_folder

__all__ = ["SHIFT", "synthetic_panel", "naive_seconds", "draws", "main"]

logger = logging.getLogger(__name__)
SHIFT = 1.4  # planted demand change: +40%


def synthetic_panel(
    series: int = 2000, segments: int = 100, months: int = 36, shifted: int = 3, seed: int = 0
) -> tuple[pd.DataFrame, list[str]]:
    """Monthly panel with a demand shift planted in the last 3 months of ``shifted`` segments.

    Parameters
    ----------
    series, segments, months : int
        Panel size; series go round-robin into segments ``seg000``, ``seg001``, ...
    shifted : int
        How many segments get demand x :data:`SHIFT` in the last 3 months.
    seed : int
        Random seed.

    Returns
    -------
    (pandas.DataFrame, list of str)
        ``unique_id, ds, segment, y, price, promo, residual`` and the shifted segments.
    """
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(series), months)
    seg = ids % segments
    month = np.tile(np.arange(months), series)
    level = rng.lognormal(4, 1, series)[ids]  # a few big SKUs, many small ones
    base_price = rng.uniform(2, 50, series)[ids]
    promo = (rng.random(len(ids)) < 0.1).astype(float)
    uplift = 1 + 0.3 * promo
    forecast = level * uplift
    y = np.maximum(forecast * (1 + 0.25 * rng.standard_normal(len(ids))), 0)
    planted = sorted(rng.choice(segments, shifted, replace=False).tolist())
    y = np.where(np.isin(seg, planted) & (month >= months - 3), y * SHIFT, y)
    price = base_price * (1 - 0.15 * promo) * (1 + 0.01 * rng.standard_normal(len(ids)))
    frame = pd.DataFrame(
        {
            "unique_id": [f"s{i:05d}" for i in ids],
            "ds": pd.date_range("2022-01-01", periods=months, freq="MS")[month],
            "segment": [f"seg{s:03d}" for s in seg],
            "y": np.round(y),
            "price": np.round(price, 2),
            "promo": promo,
        }
    )
    frame["residual"] = frame["y"] - forecast
    return frame, [f"seg{s:03d}" for s in planted]


def naive_seconds(frame: pd.DataFrame, settings: DriftSettings, folder, count: int) -> float:
    """Mean seconds of one Evidently report (run and HTML) per segment, over ``count`` segments."""
    reference, current = split_windows(frame, "segment", settings)
    columns = [c for c in settings.monitored() if c in reference.columns]
    chosen = sorted(reference["segment"].unique())[:count]
    start = time.perf_counter()
    for segment in chosen:
        evidently_report(
            reference[reference["segment"] == segment],
            current[current["segment"] == segment],
            columns,
            folder / f"naive_{segment}.html",
        )
    return (time.perf_counter() - start) / len(chosen)


def draws(count: int, series: int, segments: int, settings: DriftSettings) -> dict:
    """Flagged against planted segments on ``count`` random panels (seeds 1..count), scores only."""
    exact, false_alarms, missed = 0, 0, 0
    for seed in range(1, count + 1):
        frame, planted = synthetic_panel(series, segments, seed=seed)
        scores = drift_scores(frame, "segment", settings)
        flagged = set(scores.loc[scores["drifted"], "segment"])
        exact += flagged == set(planted)
        false_alarms += len(flagged - set(planted))
        missed += len(set(planted) - flagged)
    return {"draws": count, "exactly_planted": exact, "false_alarm_segments": false_alarms, "missed": missed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.drift", description=__doc__)
    parser.add_argument("--segments", type=int, default=100)
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--naive", type=int, default=5, help="segments timed one report each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=20, help="more random panels, scores only")
    parser.add_argument("--output", default="sopforecast-work/benchmarks/drift")
    args = parser.parse_args(argv)
    out = output_folder(args.output)
    frame, planted = synthetic_panel(args.series, args.segments, seed=args.seed)
    settings = DriftSettings()
    evidently_report(  # first call imports Evidently: not the monitor's cost
        frame.head(50), frame.tail(50), ["y"], out / "warmup.html"
    )
    result = drift_monitor(frame, "segment", settings, out / "reports")
    flagged = sorted(result.scores.loc[result.scores["drifted"], "segment"].unique())
    logger.info("monitor: %s; flagged %s, planted %s", result.seconds, flagged, planted)
    per_segment = naive_seconds(frame, settings, out / "naive", args.naive)
    (out / "warmup.html").unlink()
    other = draws(args.draws, args.series, args.segments, settings)
    logger.info("other draws: %s", other)
    summary = {
        "series": args.series,
        "segments": args.segments,
        "planted": planted,
        "flagged": flagged,
        "exactly_planted": flagged == planted,
        "other_draws": other,
        "flagged_columns": result.scores.loc[result.scores["drifted"], ["segment", "column"]]
        .sort_values(["segment", "column"])
        .values.tolist(),
        "monitor_s": result.seconds,
        "reports": len(result.reports),
        "report_mb": round(sum(p.stat().st_size for p in result.reports.values()) / 1e6, 1),
        "naive": {
            "timed_segments": args.naive,
            "per_segment_s": per_segment,
            "extrapolated_s": per_segment * args.segments,
            "extrapolated_from": f"{args.naive} segments, linear in the segment count",
        },
        "evidently_verdicts": result.evidently.to_dict(orient="records"),
    }
    (out / "drift.json").write_text(json.dumps(summary, indent=2, default=str))
    logger.info(
        "scores %.3f s, %d reports %.1f s; naive %.2f s x %d segments = %.0f s; exactly planted: %s",
        result.seconds["scores"],
        len(result.reports),
        result.seconds["reports"],
        per_segment,
        args.segments,
        per_segment * args.segments,
        flagged == planted,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
