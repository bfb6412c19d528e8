"""The registered model's size and load time as series grow: the pickled forecaster (what
models registered before issue 21 hold) against the state folder of plain files
(:mod:`sopforecast.forecasting.state`).

For each size the demo generator makes ``n`` bottom series (monthly, 60 periods, the demo
hierarchy ``category/family/sku x region/channel``, unique_id the key path, drivers price
and promo); a :class:`~sopforecast.forecasting.forecaster.Forecaster` is fitted (2 backtest
windows, all cores) and written both ways. Reported: artifact size on disk, write time,
load time (best of ``--repeat`` loads in this process, libraries already imported), and the
time of the first ``predict`` after loading; the reloaded state's forecast is checked to
equal the fitted one's exactly.

Run ``python -m sopforecast.bench.model_state [--sizes 1000,10000]
[--models ets,theta,snaive,lgbm] --output DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import tempfile
import time
from pathlib import Path

import pandas as pd

from ..config import DataConfig, ForecastConfig
from ..data.datasets import generate_demand
from ..data.schema import validate
from ..forecasting.forecaster import Forecaster
from ..forecasting.state import load_state, save_state
from . import output_folder

__all__ = ["measure", "main"]

logger = logging.getLogger(__name__)

HIERARCHY = ["category/family/sku", "region/channel"]
DRIVERS = ["price", "promo"]
MODELS = ["ets", "theta", "snaive", "lgbm"]


def _size(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


def _best(load, repeat: int) -> tuple[object, float]:
    best, out = float("inf"), None
    for _ in range(repeat):
        clock = time.perf_counter()
        out = load()
        best = min(best, time.perf_counter() - clock)
    return out, best


def measure(n_series: int, models: list[str], repeat: int = 2, seed: int = 0) -> list[dict]:
    """Fit on ``n_series`` demo series; size, write and load time of the pickle and the state."""
    raw = generate_demand(n_series=n_series, periods=60, seed=seed)
    history = validate(raw, DataConfig(hierarchy=HIERARCHY, drivers=DRIVERS)).frame
    config = ForecastConfig(
        horizon=18,
        windows=2,
        models=models,
        hierarchy=HIERARCHY,
        drivers=DRIVERS,
        future_fill="carry",
        n_jobs=-1,
    )
    clock = time.perf_counter()
    fitted = Forecaster(config).fit(history)
    fit_s = time.perf_counter() - clock
    series = len(fitted.panel_.hierarchy)
    logger.info("%d bottom series (%d with aggregates) fitted in %.0f s", n_series, series, fit_s)
    expected = fitted.predict().forecast
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pkl = Path(tmp) / "forecaster.pkl"
        clock = time.perf_counter()
        with pkl.open("wb") as fh:
            pickle.dump(fitted, fh, protocol=pickle.HIGHEST_PROTOCOL)
        write_s = time.perf_counter() - clock

        def unpickle():
            with pkl.open("rb") as fh:
                return pickle.load(fh)  # noqa: S301 - written just above

        loaded, load_s = _best(unpickle, repeat)
        clock = time.perf_counter()
        loaded.predict()
        predict_s = time.perf_counter() - clock
        rows.append(_row("pickle", n_series, series, fit_s, _size(pkl), write_s, load_s, predict_s, None))

        folder = Path(tmp) / "forecaster"
        clock = time.perf_counter()
        save_state(fitted, folder)
        write_s = time.perf_counter() - clock
        loaded, load_s = _best(lambda: load_state(folder), repeat)
        clock = time.perf_counter()
        got = loaded.predict().forecast
        predict_s = time.perf_counter() - clock
        equal = got.equals(expected)
        rows.append(_row("state", n_series, series, fit_s, _size(folder), write_s, load_s, predict_s, equal))
        parts = {p.name: _size(p) for p in folder.iterdir()}
        logger.info("state parts (bytes): %s", json.dumps(dict(sorted(parts.items(), key=lambda kv: -kv[1]))))
    return rows


def _row(kind, n, series, fit_s, size, write_s, load_s, predict_s, equal) -> dict:
    return {
        "bottom_series": n,
        "series": series,
        "artifact": kind,
        "size_mb": round(size / 1e6, 1),
        "write_s": round(write_s, 2),
        "load_s": round(load_s, 2),
        "first_predict_s": round(predict_s, 1),
        "fit_s": round(fit_s, 0),
        "equal_forecast": equal,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.model_state", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/model_state")
    args = parser.parse_args(argv)
    out = output_folder(args.output)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        rows.extend(measure(n, models, repeat=args.repeat))
        table = pd.DataFrame(rows)
        table.to_csv(out / "model_state.csv", index=False)
    (out / "model_state.json").write_text(json.dumps(rows, indent=2))
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
