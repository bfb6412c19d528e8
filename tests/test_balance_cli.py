"""The balance review and the scenarios as a planner runs them: ``balance run``,
``scenario create|list|compare|delete``.

One small plan is made once per module, the way a pipeline makes it, in seconds: a forecaster
with a promotion driver fitted on five series, its forecast stored as a plan version in a
SQLite store, the forecaster registered as the champion in the work directory's MLflow
store, and the supply files where the demo keeps its own. Every test works on a copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sopforecast.cli import main
from sopforecast.planning.scenarios import BASE
from sopforecast.store.plans import PlanStore

HIERARCHY = ["category/family/sku", "region"]
KEYS = ["category", "family", "sku", "region"]
BOTTOM = [
    ("C1", "F1", "S1", "R1"),
    ("C1", "F1", "S1", "R2"),
    ("C1", "F2", "S2", "R1"),
    ("C2", "F3", "S3", "R1"),
]
PLAN = "demand"
MONTHS = pd.date_range("2026-01-01", periods=6, freq="MS")
# Line A runs S1 and S2 and has a shutdown in March; Line B runs S3 with room to spare
CAPACITY = {"Line A": 150.0, "Line B": 400.0}
SHUTDOWN = ("Line A", "2026-03", 40.0)
ROUTING = [("C1/F1/S1", "Line A", 0.5, 1), ("C1/F2/S2", "Line A", 0.4, 2), ("C2/F3/S3", "Line B", 0.3, 1)]
ROOT = Path(__file__).resolve().parents[1]


def _history() -> pd.DataFrame:
    """Three years of the four series; a promotion lifts demand by 60%."""
    rng = np.random.default_rng(3)
    ds = pd.date_range("2023-01-01", periods=36, freq="MS")
    parts = []
    for i, keys in enumerate(BOTTOM):
        base = 80.0 + 30 * i
        promo = (rng.random(len(ds)) < 0.25).astype(float)
        y = base * (1 + 0.6 * promo) * (1 + 0.1 * np.sin(np.arange(len(ds)) / 2)) + rng.normal(0, 2, len(ds))
        parts.append(
            pd.DataFrame({**dict(zip(KEYS, keys, strict=True)), "ds": ds, "y": y.round(1), "promo": promo})
        )
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "unique_id", frame[KEYS].agg("/".join, axis=1))
    return frame


def _register(root: Path, forecaster) -> str:
    """The fitted forecaster as the champion of the registered model ``demand``, laid out
    as a pipeline run logs it; the run id."""
    import tempfile

    from sopforecast.pipeline.model import save_artifacts
    from sopforecast.pipeline.registry import CHAMPION
    from sopforecast.pipeline.tracking import get_experiment_id, resolve_store
    from sopforecast.workdir import Workdir

    store = resolve_store(Workdir(root))
    client = store.client()
    run = client.create_run(get_experiment_id(client, PLAN, store.artifact_root))
    with tempfile.TemporaryDirectory() as tmp:
        save_artifacts(Path(tmp), forecaster)
        client.log_artifacts(run.info.run_id, tmp, "forecaster/artifacts")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(PLAN)
    version = client.create_model_version(PLAN, f"{run.info.artifact_uri}/forecaster", run.info.run_id)
    client.set_registered_model_alias(PLAN, CHAMPION, version.version)
    return run.info.run_id


def _supply(data: Path) -> None:
    rows = [(r, f"{m:%Y-%m}", cap, "hours") for r, cap in CAPACITY.items() for m in MONTHS]
    capacity = pd.DataFrame(rows, columns=["resource", "ds", "capacity", "unit"])
    capacity.loc[(capacity["resource"] == SHUTDOWN[0]) & (capacity["ds"] == SHUTDOWN[1]), "capacity"] = (
        SHUTDOWN[2]
    )
    capacity.to_csv(data / "demo_capacity.csv", index=False)
    pd.DataFrame(ROUTING, columns=["key", "resource", "rate", "priority"]).to_csv(
        data / "demo_routing.csv", index=False
    )
    ids = ["/".join(k) for k in BOTTOM]
    inventory = pd.DataFrame(
        {"key": ids, "on_hand": [60.0, 20.0, 0.0, 90.0], "lead_time": 1, "service_level": 0.95}
    )
    inventory.to_csv(data / "demo_inventory.csv", index=False)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A work directory with a draft plan, its champion, the promotion calendar and supply."""
    from sopforecast.config import ForecastConfig
    from sopforecast.forecasting.forecaster import Forecaster
    from sopforecast.planning import service
    from sopforecast.planning.plan import draft_lines

    root = tmp_path_factory.mktemp("balance_cli") / "work"
    data = root / "data"
    data.mkdir(parents=True)
    history = _history()
    config = ForecastConfig(
        horizon=len(MONTHS), models="lgbm", windows=1, level=[80], drivers=["promo"], hierarchy=HIERARCHY
    )
    config = config.model_copy(update={"reconcile": "bottom_up", "n_jobs": 1})
    forecaster = Forecaster(config).fit(history)
    calendar = pd.DataFrame(
        [(*keys, m, 0.0) for keys in BOTTOM for m in MONTHS], columns=[*KEYS, "ds", "promo"]
    )
    calendar.to_csv(data / "demo_promotion_calendar.csv", index=False)
    run_id = _register(root, forecaster)
    future = calendar.assign(unique_id=calendar[KEYS].agg("/".join, axis=1))
    lines, bottom = draft_lines(
        forecaster.predict(future=future).forecast, history, HIERARCHY, months=len(MONTHS)
    )
    lines = lines.assign(price=10.0, unit_cost=6.0)
    store = PlanStore(f"sqlite:///{root / 'sopforecast.db'}")
    service.create_version(store, PLAN, lines, bottom, HIERARCHY, source_run_id=run_id)
    store.engine.dispose()
    _supply(data)
    return root


@pytest.fixture
def work(made, tmp_path) -> Path:
    return Path(shutil.copytree(made, tmp_path / "work"))


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("SOPFORECAST_USER", "planner")
    monkeypatch.delenv("SOPFORECAST_STORE_URI", raising=False)


def store(work: Path) -> PlanStore:
    return PlanStore(f"sqlite:///{work / 'sopforecast.db'}")


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--quiet", *map(str, args)])
    captured = capsys.readouterr()
    return code, flat(captured.out), captured.err


def flat(text: str) -> str:
    for border in "│┃":
        text = text.replace(border, " ")
    return " ".join(text.split())


def bottom_final(work: Path) -> pd.DataFrame:
    plans = store(work)
    lines = plans.lines(plans.version(None, PLAN))
    return lines[lines["unique_id"].isin(["/".join(k) for k in BOTTOM])]


def load(work: Path, resource: str, month: str) -> float:
    """Hours ``resource`` needs in ``month`` for the whole plan (rate x units routed to it)."""
    lines = bottom_final(work)
    lines = lines[lines["ds"] == pd.Timestamp(month)]
    return sum(
        rate * lines.loc[lines["unique_id"].str.startswith(key + "/"), "final"].sum()
        for key, where, rate, _ in ROUTING
        if where == resource
    )


# --- balance run -------------------------------------------------------------------------------
def test_balance_run_prints_the_review_keeps_it_and_writes_the_files(work, capsys):
    code, out, err = run(capsys, "balance", "run", "--workdir", work)
    assert code == 0, err
    march = load(work, "Line A", "2026-03")
    assert march > SHUTDOWN[2] * 2  # the shutdown month is overloaded
    assert f"Balance of {PLAN} 2026-01 v1 (draft)" in out
    assert "Allocation rule: Scarce capacity goes to priority 1 first" in out
    assert f"Line A 2026-03 overload {march / SHUTDOWN[2]:.0%}" in out
    assert "Decisions, ranked by money at stake" in out and "Inventory exceptions:" in out
    folder = work / "reports" / "balance"
    exceptions = pd.read_csv(folder / "capacity_exceptions.csv")
    row = exceptions[(exceptions["resource"] == "Line A") & (exceptions["ds"] == "2026-03-01")].iloc[0]
    assert row["kind"] == "overload" and row["load"] == pytest.approx(march)
    assert row["gap"] == pytest.approx(march - SHUTDOWN[2])
    decisions = pd.read_csv(folder / "decisions.csv")
    assert decisions["at_stake"].is_monotonic_decreasing and len(decisions) >= 1
    assert (folder / "balance.png").stat().st_size > 10_000 and not (folder / "scenarios.csv").exists()
    reviews = store(work).balances(PLAN)
    assert reviews[["source", "created_by"]].to_dict("records") == [
        {"source": "sopforecast balance run", "created_by": "planner"}
    ]
    units = reviews.iloc[0]["figures"]["units"]
    assert units == pytest.approx(bottom_final(work)["final"].sum())
    assert f"{units:,.0f}" in out


def test_balance_run_for_scripts_gives_the_figures_as_json(work, capsys):
    code, out, err = run(
        capsys, "scenario", "create", "up", "--kind", "uplift", "--node", "C1", "--pct", 20, "--workdir", work
    )
    assert code == 0, err
    code, out, err = run(capsys, "balance", "run", "--scenario", "up", "--format", "json", "--workdir", work)
    assert code == 0, err
    figures = {r["figure"]: r for r in json.loads(out)}
    lines = bottom_final(work)
    c1 = lines.loc[lines["unique_id"].str.startswith("C1/"), "final"].sum()
    assert figures["units"]["base"] == pytest.approx(lines["final"].sum())
    assert figures["units"]["up vs base"] == pytest.approx(0.2 * c1)
    assert figures["revenue"]["up vs base"] == pytest.approx(10 * 0.2 * c1)
    assert figures["overloaded_resource_months"]["up"] >= figures["overloaded_resource_months"]["base"]
    assert len(store(work).balances(PLAN)) == 2


# --- scenarios ---------------------------------------------------------------------------------
def test_each_kind_of_scenario_is_created_listed_compared_and_deleted(work, capsys):
    made = {
        "up": ["--kind", "uplift", "--node", "C1/F1", "--pct", 10, "--start", "2026-02"],
        "dearer": ["--kind", "price", "--node", "C2", "--pct", 10, "--elasticity", -2],
        "new": [
            "--kind",
            "launch",
            "--item",
            "S9",
            "--like",
            "C1/F2/S2/R1",
            "--scale",
            0.5,
            "--start",
            "2026-04",
        ],
        "promo": ["--kind", "promotion", "--node", "C1/F2", "--start", "2026-05", "--end", "2026-05"],
        "line-a": ["--kind", "capacity", "--resource", "Line A", "--pct", 100],
        "late": ["--kind", "delay", "--resource", "Line B", "--months", 2, "--start", "2026-01"],
    }
    for name, options in made.items():
        code, out, err = run(capsys, "scenario", "create", name, *options, "--workdir", work)
        assert code == 0, (name, err)
        assert f"Scenario {name} on {PLAN} 2026-01 v1 (draft)" in out
    plans = store(work)
    rows = plans.scenarios(PLAN).set_index("name")
    assert rows["kind"].to_dict() == {
        "up": "uplift",
        "dearer": "price",
        "new": "launch",
        "promo": "promotion",
        "line-a": "capacity",
        "late": "delay",
    }
    # the promotion moves the promoted series in the promoted month, by the champion's reaction
    promoted = plans.scenario_lines(int(rows.loc["promo", "id"]))
    assert set(promoted["unique_id"]) == {"C1/F2/S2/R1"} and promoted["ds"].min() == pd.Timestamp(
        "2026-05-01"
    )
    base = bottom_final(work).set_index(["unique_id", "ds"])["final"]
    lift = promoted.set_index(["unique_id", "ds"])["final"] / base.reindex(
        promoted.set_index(["unique_id", "ds"]).index
    )
    assert lift.iloc[0] > 1.2  # demand was 60% higher on promotion

    code, out, _ = run(capsys, "scenario", "list", "--workdir", work)
    assert code == 0 and "+10% demand on C1/F1 from 2026-02" in out and "Line B delivers nothing" in out

    code, out, err = run(capsys, "scenario", "compare", *made, "--workdir", work)
    assert code == 0, err
    table = pd.read_csv(work / "reports" / "balance" / "scenarios.csv").set_index("figure")
    capacity = pd.read_csv(work / "data" / "demo_capacity.csv").set_index(["resource", "ds"])["capacity"]
    for name, factor in ((BASE, 1), ("line-a", 2)):  # line-a doubles Line A's capacity
        overloaded = sum(
            load(work, r, m) > factor ** (r == "Line A") * cap for (r, m), cap in capacity.items()
        )
        assert table.loc["overloaded_resource_months", name] == overloaded > 0
    assert (
        table.loc["unmet_units", "late vs base"] > 0
    )  # Line B makes nothing in the first two months: no pre-build
    assert table.loc["units", "new vs base"] > 0 and table.loc["units", "dearer vs base"] < 0
    assert f"Chart: {work / 'reports' / 'balance' / 'balance.png'}" in out
    assert "up vs base" in out and "pts" in out
    assert len(plans.balances(PLAN)) == 1 + len(made)

    code, out, _ = run(capsys, "scenario", "delete", "late", "--workdir", work)
    assert code == 0 and "Deleted scenario late" in out
    assert "late" not in set(plans.scenarios(PLAN)["name"]) and len(plans.balances(PLAN)) == len(made)


@pytest.mark.parametrize(
    ("name", "options", "said"),
    [
        ("../x", ["--kind", "uplift", "--node", "C1", "--pct", 5], "contains a path separator"),
        (
            "=cmd()",
            ["--kind", "uplift", "--node", "C1", "--pct", 5],
            "read it (a column of the comparison) as a formula",
        ),
        ("base", ["--kind", "uplift", "--node", "C1", "--pct", 5], "names the plan itself"),
        ("x", ["--kind", "uplift", "--node", "C1"], "invalid uplift scenario: --pct: required"),
        (
            "x",
            ["--kind", "uplift", "--node", "C1", "--pct", 5, "--months", 2],
            "--months: not a setting of uplift",
        ),
        ("x", ["--kind", "uplift", "--node", "C7", "--pct", 5], "'C7' is not a series of the plan"),
        ("x", ["--kind", "capacity", "--resource", "Line Z", "--pct", 5], "name one of ['Line A', 'Line B']"),
        ("x", ["--kind", "uplift", "--node", "C1", "--pct", 5, "--start", "2026-13"], "--start: '2026-13'"),
    ],
)
def test_a_bad_scenario_is_refused_and_nothing_is_kept(work, capsys, name, options, said):
    code, out, err = run(capsys, "scenario", "create", name, *options, "--workdir", work)
    assert code == 2 and said in err and "Traceback" not in err
    assert store(work).scenarios(PLAN).empty


def test_an_unknown_scenario_fails_the_comparison_before_any_review(work, capsys):
    code, _, err = run(capsys, "scenario", "compare", "nope", "--workdir", work)
    assert code == 2 and "has no scenario named 'nope'" in err
    assert store(work).balances(PLAN).empty


def test_a_promotion_without_a_champion_says_where_it_looked(work, capsys):
    promotion = ["scenario", "create", "p", "--kind", "promotion", "--node", "C1", "--start", "2026-02"]
    shutil.rmtree(work / "mlflow")
    code, _, err = run(capsys, *promotion, "--workdir", work)
    assert code == 2 and "no mlflow/mlflow.db" in err.replace("\n", " ")
    (work / "data" / "demo_promotion_calendar.csv").unlink()
    code, _, err = run(capsys, *promotion, "--workdir", work)
    assert code == 2 and "no promotion calendar at" in err and "--pipeline" in err
    assert store(work).scenarios(PLAN).empty


# --- bad supply files, as a planner meets them: a real process, a real SQLite store ------------
def _bad(data: Path, what: str) -> tuple[str, Path]:
    if what == "missing column":
        path = data / "capacity_no_hours.csv"
        pd.read_csv(data / "demo_capacity.csv").drop(columns="capacity").to_csv(path, index=False)
        return "--capacity", path
    if what == "negative capacity":
        path = data / "capacity_negative.csv"
        frame = pd.read_csv(data / "demo_capacity.csv")
        frame.loc[[2, 7], "capacity"] = -10.0
        frame.to_csv(path, index=False)
        return "--capacity", path
    path = data / "routing_unknown.csv"
    frame = pd.read_csv(data / "demo_routing.csv")
    frame.loc[1, "key"] = "C1/F9/S9"
    frame.to_csv(path, index=False)
    return "--routing", path


@pytest.mark.parametrize(
    ("what", "said"),
    [
        ("missing column", ["missing column(s) ['capacity']", "Columns found: ['resource', 'ds', 'unit']"]),
        (
            "negative capacity",
            [
                "column 'capacity' has negative values in 2 row(s)",
                "row 3:",
                "row 8:",
                "write 0 for a shutdown",
            ],
        ),
        ("unknown key", ["column 'key' names series that are not in the plan", "row 2: key='C1/F9/S9'"]),
    ],
)
def test_a_bad_supply_file_fails_clearly_and_stores_nothing(work, what, said):
    option, path = _bad(work / "data", what)
    env = {**os.environ, "SOPFORECAST_USER": "planner", "COLUMNS": "200"}
    env.pop("SOPFORECAST_STORE_URI", None)
    done = subprocess.run(
        [sys.executable, "-m", "sopforecast", "balance", "run", option, str(path), "--workdir", str(work)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("Error: ") == 1 and "Traceback" not in done.stderr
    error = done.stderr[done.stderr.index("Error: ") :]  # after the log lines: one message, said once
    assert error.startswith(f"Error: {path}: ")
    for text in said:
        assert text in error
    assert store(work).balances(PLAN).empty
    assert not (work / "reports" / "balance").exists()


def test_create_with_compare_balances_the_new_scenario_beside_the_base(work, capsys):
    code, out, err = run(
        capsys,
        "scenario",
        "create",
        "more",
        "--kind",
        "uplift",
        "--node",
        "C1",
        "--pct",
        20,
        "--compare",
        "--workdir",
        work,
    )
    assert code == 0, err
    assert "units" in out and "more vs base" in out and "Chart:" in out
    reviews = store(work).balances(PLAN)
    assert len(reviews) == 2 and reviews["scenario_id"].notna().sum() == 1
    store(work).delete_scenario(PLAN, "more")
