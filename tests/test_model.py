"""The registered forecaster: loaded from the registry in a fresh process, it predicts
without re-fitting, carries its input signature and example, reads future drivers per
month, returns exactly the series asked for (their aggregates only when asked) and names a
series it does not know.

The demo pipeline runs once on tiny data (6 bottom series, one backtest window); one
fresh Python process then loads ``models:/monthly_demand_plan@champion`` with the model
libraries' fit methods replaced by ones that raise, and writes what it predicted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from sopforecast.demo import run_demo
from sopforecast.pipeline.registry import load_champion
from sopforecast.pipeline.tracking import resolve_store
from sopforecast.workdir import Workdir

MODEL = "monthly_demand_plan"
KEYS = ["category", "family", "sku", "region", "channel"]
HORIZON = 12
PROMO_MONTH = 3

# Runs in the fresh process: every way statsforecast or mlforecast could fit is made to fail
# before the model is even loaded, so a re-fit anywhere in load or predict fails the test.
_FRESH = """
import json, sys, time
from pathlib import Path
import mlflow, pandas as pd
import mlforecast, statsforecast

def refuse(*args, **kwargs):
    raise AssertionError("the registered model re-fitted")

for cls, names in (
    (statsforecast.StatsForecast, ("fit", "forecast", "cross_validation")),
    (mlforecast.MLForecast, ("fit", "cross_validation")),
):
    for name in names:
        setattr(cls, name, refuse)

tracking_uri, uri, out = sys.argv[1:4]
mlflow.set_tracking_uri(tracking_uri)
signature = mlflow.models.get_model_info(uri).signature
model = mlflow.pyfunc.load_model(uri)
clock = time.perf_counter()
plain = model.predict(pd.DataFrame({"horizon": [HORIZON]}))
seconds = time.perf_counter() - clock
plain.to_parquet(f"{out}/plain.parquet")
for name, params in (("no_promo", None), ("promo", None), ("some", None), ("some_up", {"aggregates": True})):
    future = pd.read_parquet(f"{out}/{name.removesuffix('_up')}_input.parquet")
    model.predict(future, params=params).to_parquet(f"{out}/{name}.parquet")
try:
    model.predict(pd.DataFrame({"unique_id": ["Nope/X"], "horizon": [3]}))
    unknown = None
except Exception as exc:
    unknown = f"{type(exc).__name__}: {exc}"
example = model.input_example
model.predict(example).to_parquet(f"{out}/example.parquet")
root = Path(mlflow.artifacts.download_artifacts(uri, dst_path=f"{out}/model"))
files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
params = signature.params.to_dict() if signature is not None and signature.params else None
inputs = signature.inputs.input_names() if signature is not None else None
with open(f"{out}/meta.json", "w") as fh:
    json.dump({"seconds": seconds, "inputs": inputs, "params": params, "unknown": unknown,
               "example": sorted(example["unique_id"].unique()), "files": files}, fh)
"""


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """Run the demo pipeline, then predict from the registered champion in a new process."""
    root = tmp_path_factory.mktemp("model")
    workdir = Workdir(root / "work")
    demo = run_demo(  # the model is the subject: no back-filled cycles, no monitor, no balance
        workdir,
        n_series=6,
        overrides=["forecast.windows=1", "balance.enabled=false", "monitor.enabled=false"],
    )
    history = demo.run.data.frame
    # the largest bottom series: the one with most signal for the promotion's effect
    bottom = history.groupby(KEYS)["y"].sum().idxmax()
    last = history[(history[KEYS] == pd.Series(bottom, index=KEYS)).all(axis=1)].sort_values("ds").iloc[-1]
    months = pd.date_range(last["ds"] + pd.offsets.MonthBegin(), periods=HORIZON, freq="MS")
    no_promo = pd.DataFrame({**dict(zip(KEYS, bottom, strict=True)), "ds": months, "price": last["price"]})
    no_promo["promo"] = 0
    promo = no_promo.assign(promo=(no_promo.index == PROMO_MONTH - 1).astype(int))
    # a calendar for three of the six series, by unique_id, from the demo's own calendar
    calendar = demo.run.data.future
    ids = calendar[KEYS].astype(str).agg("/".join, axis=1)
    known = set(history["unique_id"])
    some = sorted({i for i in ids if i in known})[:3]
    out = root / "out"
    out.mkdir()
    calendar[ids.isin(some)].drop(columns=KEYS).assign(unique_id=ids[ids.isin(some)]).to_parquet(
        out / "some_input.parquet"
    )
    no_promo.to_parquet(out / "no_promo_input.parquet")
    promo.to_parquet(out / "promo_input.parquet")
    code = textwrap.dedent(_FRESH).replace("HORIZON", str(HORIZON))
    uri = f"models:/{MODEL}@champion"
    proc = subprocess.run(
        [sys.executable, "-c", code, resolve_store(workdir).tracking_uri, uri, str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    store = resolve_store(workdir)
    champion, _ = load_champion(store.client(), MODEL, tracking_uri=store.tracking_uri)
    return {
        "champion": champion.predict(h=HORIZON).forecast,
        "series": set(demo.forecast["unique_id"]),
        "bottom": "/".join(bottom),
        "bottoms": set(history[KEYS].astype(str).agg("/".join, axis=1)),
        "meta": json.loads((out / "meta.json").read_text()),
        "some_ids": some,
        "some_months": calendar.loc[ids.isin(some), "ds"].nunique(),
        **{
            name: pd.read_parquet(out / f"{name}.parquet")
            for name in ("plain", "no_promo", "promo", "some", "some_up", "example")
        },
    }


def test_registered_model_predicts_every_series_without_refitting(fresh):
    plain = fresh["plain"]
    assert set(plain["unique_id"]) == fresh["series"]
    assert (plain.groupby("unique_id").size() == HORIZON).all()
    assert plain["forecast"].notna().all()
    assert fresh["meta"]["seconds"] < 30


def test_registered_model_has_a_signature_with_the_drivers(fresh):
    inputs = fresh["meta"]["inputs"]
    assert inputs is not None
    assert {"horizon", "unique_id", "ds", "price", "promo", *KEYS} <= set(inputs)


def test_promotion_in_month_three_lifts_that_month(fresh):
    bottom, no_promo, promo = fresh["bottom"], fresh["no_promo"], fresh["promo"]
    for frame in (no_promo, promo):
        assert set(frame["unique_id"]) == {bottom}  # the SKU given, no other series, no aggregate
    before = no_promo[no_promo["unique_id"] == bottom].sort_values("ds")["forecast"].to_numpy()
    after = promo[promo["unique_id"] == bottom].sort_values("ds")["forecast"].to_numpy()
    assert len(before) == len(after) == HORIZON
    month = PROMO_MONTH - 1
    assert after[month] > before[month]
    # the effect lands in month 3, not in the months before it
    assert after[:month] == pytest.approx(before[:month])


def _ancestors(series: set[str], bottoms: set[str], given: list[str]) -> set[str]:
    """The aggregates above the ``given`` bottom series, by their key paths: an aggregate's
    keys are a subset of its members' keys (``Total`` is above everything)."""
    parts = [set(b.split("/")) for b in given]
    return {s for s in series - bottoms if s == "Total" or any(set(s.split("/")) <= p for p in parts)}


def test_a_calendar_for_some_series_returns_exactly_those(fresh):
    some, frame = fresh["some_ids"], fresh["some"]
    assert len(some) == 3
    assert set(frame["unique_id"]) == set(some)
    assert (frame.groupby("unique_id").size() == fresh["some_months"]).all()
    assert frame["forecast"].notna().all()


def test_aggregates_come_only_when_asked_and_only_those_above(fresh):
    some, up = fresh["some_ids"], fresh["some_up"]
    expected = _ancestors(fresh["series"], fresh["bottoms"], some)
    assert "Total" in expected and len(expected) > 3
    assert set(up["unique_id"]) == set(some) | expected
    assert fresh["meta"]["params"] == [
        {"name": "aggregates", "type": "boolean", "default": False, "shape": None}
    ]
    # the series' own rows do not change when their aggregates are asked for too
    mine = up[up["unique_id"].isin(some)].sort_values(["unique_id", "ds"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, fresh["some"].sort_values(["unique_id", "ds"]).reset_index(drop=True))


def test_an_unknown_series_is_an_error_naming_it(fresh):
    message = fresh["meta"]["unknown"]
    assert message is not None, "a series the model does not know was silently dropped"
    assert message.startswith("DataError") and "'Nope/X'" in message
    assert "1 series unknown" in message and "remove it from the input" in message


def test_the_input_example_is_logged_and_predicts(fresh):
    example = fresh["meta"]["example"]
    assert example and set(example) <= fresh["bottoms"]
    assert set(fresh["example"]["unique_id"]) == set(example)


def test_the_registered_state_is_plain_files_without_pickle(fresh):
    files = fresh["meta"]["files"]
    state = [f for f in files if f.startswith("artifacts/forecaster/")]
    assert {"artifacts/forecaster/state.json", "artifacts/forecaster/history.parquet"} <= set(state)
    assert "artifacts/forecaster/hierarchy/S.npz" in state
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))]


def test_the_champion_loads_from_its_state_and_forecasts_as_served(fresh):
    pd.testing.assert_frame_equal(fresh["champion"], fresh["plain"], check_exact=True)
