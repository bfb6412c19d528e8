"""The planning-cycle commands as a planner runs them on the demo's published plan:
``plan list|show|publish|diff|export|fva|finance``, ``override apply|list|revert``,
``actuals load`` and ``db upgrade``.

The demo runs once per module on a small panel; every test works on its own copy of the
work directory, so tests are independent and can run in any order.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sopforecast.cli import main
from sopforecast.planning import service
from sopforecast.planning.lines import is_coherent
from sopforecast.store import schema
from sopforecast.store.plans import PlanStore

# the planning commands on a plan of their own: no monitoring, so no back-filled past cycles
FAST = [
    "--set",
    "forecast.models=[ets,theta]",
    "--set",
    "forecast.windows=1",
    "--set",
    "monitor.enabled=false",
    "--set",
    "balance.enabled=false",  # the supply balance is tested in test_balance_*.py
]
PLAN = "monthly_demand_plan"
BOTTOM = "category/family/sku/region/channel"


@pytest.fixture(scope="module")
def demo_workdir(tmp_path_factory) -> Path:
    """The demo run once on 30 series: it ends with a published plan."""
    workdir = tmp_path_factory.mktemp("plan_cli") / "demo"
    code = main(["--quiet", "demo", "--workdir", str(workdir), "--series", "30", *FAST])
    assert code == 0
    versions = PlanStore(f"sqlite:///{workdir}/sopforecast.db").versions()
    assert versions[["id", "status"]].to_dict("records") == [{"id": 1, "status": "published"}]
    return workdir


@pytest.fixture
def work(demo_workdir, tmp_path) -> Path:
    """A private copy of the demo's work directory."""
    return Path(shutil.copytree(demo_workdir, tmp_path / "work"))


@pytest.fixture(autouse=True)
def _user(monkeypatch):
    """Who acts, for created_by / published_by / reverted_by."""
    monkeypatch.setenv("SOPFORECAST_USER", "planner")
    monkeypatch.delenv("SOPFORECAST_STORE_URI", raising=False)


def store(work: Path) -> PlanStore:
    return PlanStore(f"sqlite:///{work}/sopforecast.db")


def run(capsys, *args) -> tuple[int, str, str]:
    """Run the CLI; exit code, stdout and stderr (tables flattened to words)."""
    capsys.readouterr()
    code = main(list(map(str, args)))
    captured = capsys.readouterr()
    return code, flat(captured.out), captured.err


def flat(text: str) -> str:
    """Text with table borders dropped and whitespace collapsed."""
    for border in "│┃":
        text = text.replace(border, " ")
    return " ".join(text.split())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def indexed(lines: pd.DataFrame) -> pd.DataFrame:
    return lines.set_index(["unique_id", "ds"])


def first_category(lines: pd.DataFrame) -> str:
    return lines.loc[lines["level"] == "category", "unique_id"].iloc[0]


def plan_months(lines: pd.DataFrame) -> list[pd.Timestamp]:
    return sorted(pd.to_datetime(lines["ds"].unique()))


def write_overrides(path: Path, rows: list[tuple]) -> Path:
    frame = pd.DataFrame(rows, columns=["key", "month", "value", "author", "reason"])
    frame.to_csv(path, index=False)
    return path


def category_override(work: Path, capsys, factor: float = 1.2) -> tuple[str, pd.Timestamp, float]:
    """Override the first category in the plan's third month to ``factor`` x its statistical."""
    lines = store(work).lines(1)
    cat, month = first_category(lines), plan_months(lines)[2]
    value = factor * indexed(lines).loc[(cat, month), "statistical"]
    path = write_overrides(
        work / "overrides.csv", [(cat, f"{month:%Y-%m}", repr(float(value)), "ana", "promo")]
    )
    code, out, err = run(capsys, "override", "apply", path, "--workdir", work)
    assert code == 0, err
    return cat, month, value


# --- 1. list and show ----------------------------------------------------------------------


def test_plan_list_and_show_the_published_version(work, capsys):
    plans = store(work)
    version = plans.version()
    lines = plans.lines(version)
    total = lines.loc[lines["unique_id"] == "Total", "final"].sum()

    code, out, _ = run(capsys, "plan", "list", "--workdir", work)
    assert code == 0
    assert f"1 {PLAN} {version.cycle} v1 published" in out
    assert f"{total:,.0f} 0" in out  # total plan, no override

    code, out, _ = run(capsys, "plan", "show", "--workdir", work)
    assert code == 0
    assert f"{PLAN} {version.cycle} v1 (published, id 1)" in out
    assert "coherent at every level: yes" in out
    months = lines["ds"].nunique()
    assert f"Per level, {months} months" in out
    per_level = lines.groupby("level", sort=False).agg(n=("unique_id", "nunique"), s=("statistical", "sum"))
    assert len(per_level) == 12  # Total ... the bottom of the grouped demo hierarchy
    for level, row in per_level.iterrows():
        # every level adds up to the same plan: statistical = final, no change, no override
        assert f"{level} {int(row.n)} {row.s:,.0f} {row.s:,.0f} +0.0% 0" in out
    # the top level month by month
    first = lines[(lines["unique_id"] == "Total")].iloc[0]
    assert "Total by month" in out
    assert f"{first.ds:%Y-%m} {first.statistical:,.0f} {first['statistical-lo-80']:,.0f}" in out


# --- 2. an aggregate override, listed and reverted -------------------------------------------


def test_aggregate_override_spreads_over_children_and_reverts(work, capsys, monkeypatch):
    plans = store(work)
    published = plans.lines(1)
    cat, month = first_category(published), plan_months(published)[2]
    stat = indexed(published).loc[(cat, month), "statistical"]
    value = 1.2 * stat
    path = write_overrides(
        work / "overrides.csv", [(cat, f"{month:%Y-%m}", repr(float(value)), "ana", "trade promotion")]
    )

    code, out, err = run(capsys, "override", "apply", path, "--workdir", work)
    assert code == 0, err
    assert f"Applied 1 override(s) from overrides.csv to {PLAN}" in out and "v2 (draft)" in out

    versions = plans.versions()
    assert versions[["id", "status", "overrides"]].to_dict("records") == [
        {"id": 2, "status": "draft", "overrides": 1},
        {"id": 1, "status": "published", "overrides": 0},
    ]
    pd.testing.assert_frame_equal(plans.lines(1), published)  # the published version never changes
    draft = plans.version(2)
    assert draft.parent_id == 1 and draft.cycle == plans.version(1).cycle

    lines = plans.lines(draft)
    S, _ = service.structure(plans, draft)
    got = indexed(lines)
    assert got.loc[(cat, month), "final"] == pytest.approx(value, rel=1e-9)
    assert got.loc[(cat, month), "consensus"] == pytest.approx(value, rel=1e-9)
    assert got.loc[(cat, month), "author"] == "ana"
    # every series under the category (bottom and in between) moves in proportion to its statistical
    under = S.bottom_of(cat)
    inside = S.index[np.asarray(S.S[:, ~S.columns.isin(under)].sum(axis=1)).ravel() == 0]
    assert len(under) >= 2 and len(inside) > len(under)
    at_month = got.xs(month, level="ds")
    ratio = at_month.loc[inside, "final"] / at_month.loc[inside, "statistical"]
    assert np.allclose(ratio, 1.2, rtol=1e-9)
    bottom = at_month.loc[under]
    shares = bottom["final"] / bottom["final"].sum()
    assert np.allclose(shares, bottom["statistical"] / bottom["statistical"].sum(), rtol=1e-9)
    # series outside the category, and other months, keep their statistical forecast
    untouched = ~(got.index.get_level_values("ds") == month) | ~got.index.get_level_values(0).isin(inside)
    elsewhere = got[untouched & got.index.get_level_values(0).isin(S.columns)]
    assert np.allclose(elsewhere["final"], elsewhere["statistical"], rtol=1e-12)
    assert is_coherent(lines, S) and is_coherent(lines, S, "statistical")

    stored = plans.overrides(draft)
    assert len(stored) == 1
    row = stored.iloc[0]
    assert (row.key, row.ds, row.author, row.reason) == (cat, month, "ana", "trade promotion")
    assert row.value == pytest.approx(value) and pd.isna(row.reverted_at)

    capsys.readouterr()
    assert main(["override", "list", "--workdir", str(work), "--format", "csv"]) == 0
    listed = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype={"key": str})
    got = listed.iloc[0]
    assert (got["id"], got["version"], got["key"], got["month"]) == (
        row.id,
        f"{draft.cycle} v2",
        cat,
        f"{month:%Y-%m}",
    )
    assert got["value"] == pytest.approx(value) and got["author"] == "ana"
    assert (got["reason"], got["status"]) == ("trade promotion", "active")

    code, _, err = run(capsys, "override", "revert", row.id, "--workdir", work)
    assert code == 2 and "--reason" in err  # the audit says why, always
    monkeypatch.setenv("SOPFORECAST_USER", "ben")
    code, out, err = run(
        capsys, "override", "revert", row.id, "--reason", "promo cancelled", "--workdir", work
    )
    assert code == 0, err
    assert f"Reverted override {row.id}" in out and "v2 (draft) replayed without it" in out
    assert len(plans.versions()) == 2  # a draft is replayed in place
    reverted = plans.lines(2)
    assert np.allclose(reverted["final"], reverted["statistical"], rtol=1e-12)
    assert reverted["consensus"].isna().all() and reverted["author"].isna().all()
    assert plans.overrides(plans.version(2)).iloc[0].reverted_by == "ben"
    code, out, _ = run(capsys, "override", "list", "--workdir", work)
    assert "reverted by ben" in out and "promo cancelled" in out


# --- 3. a bad override file: all or nothing ---------------------------------------------------


def test_bad_override_file_exits_2_and_leaves_the_database_alone(work, capsys):
    lines = store(work).lines(1)
    cat, months = first_category(lines), plan_months(lines)
    path = write_overrides(
        work / "bad.csv",
        [
            (cat, f"{months[0]:%Y-%m}", "500", "ana", "fine"),
            ("Nope-Category", f"{months[0]:%Y-%m}", "500", "ana", "typo"),
            (cat, "2031-01", "500", "ana", "too late"),
            (cat, f"{months[1]:%Y-%m}", "lots", "ana", "not a number"),
            (cat, f"{months[2]:%Y-%m}", "-5", "ana", "negative"),
        ],
    )
    database = work / "sopforecast.db"
    before = digest(database)

    code, _, err = run(capsys, "override", "apply", path, "--workdir", work)
    assert code == 2
    text = " ".join(err.split())
    assert "Traceback" not in err
    assert "bad.csv: 4 problem(s) in the overrides; none was applied" in text
    assert "row 2: key='Nope-Category' is not a series of the plan" in text
    assert "row 3: month=2031-01 is outside the plan" in text
    assert f"(its months run {months[0]:%Y-%m} to {months[-1]:%Y-%m})" in text
    assert "row 4: value='lots' is not a number" in text
    assert "row 5: value='-5' is below zero" in text
    assert "row 1:" not in text  # the good row is no problem; it is not applied either

    assert digest(database) == before
    assert store(work).versions()["id"].tolist() == [1]


# --- 4. the planner workbook round trip --------------------------------------------------------


def _edit_consensus(path: Path, edits: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """Set consensus cells of the 'Plan' sheet; returns the values they held."""
    from openpyxl import load_workbook

    wb = load_workbook(path)
    ws = wb["Plan"]
    rows = list(ws.iter_rows(values_only=True))
    header_row = next(i for i, r in enumerate(rows) if "unique_id" in r and "measure" in r)
    header = rows[header_row]
    uid, measure = header.index("unique_id"), header.index("measure")
    old = {}
    for (key, month), value in edits.items():
        r = next(i for i, row in enumerate(rows) if row[uid] == key and row[measure] == "consensus")
        c = header.index(month)
        old[(key, month)] = rows[r][c]
        ws.cell(row=r + 1, column=c + 1, value=value)
    wb.save(path)
    return old


def test_planner_workbook_round_trip(work, capsys):
    plans = store(work)
    lines = plans.lines(1)
    S, _ = service.structure(plans, plans.version(1))
    months = plan_months(lines)
    cat = first_category(lines)
    outside = [b for b in S.columns if b not in set(S.bottom_of(cat))][
        0
    ]  # a bottom series of another category
    got = indexed(lines)
    agg_key, agg_month = (cat, f"{months[3]:%Y-%m}"), months[3]
    bottom_key, bottom_month = (outside, f"{months[4]:%Y-%m}"), months[4]
    agg_value = round(0.9 * got.loc[(cat, agg_month), "final"], 1)
    bottom_value = round(1.5 * got.loc[(outside, bottom_month), "final"] + 10, 1)

    book = work / "plan.xlsx"
    code, out, err = run(capsys, "plan", "export", "--layout", "planner", "--output", book, "--workdir", work)
    assert code == 0, err
    assert "(planner layout)" in out and book.exists()
    old = _edit_consensus(book, {agg_key: agg_value, bottom_key: bottom_value})
    assert old[agg_key] == pytest.approx(got.loc[(cat, agg_month), "final"])  # prefilled with the plan

    code, out, err = run(
        capsys,
        "override",
        "apply",
        book,
        "--author",
        "ana",
        "--reason",
        "key account input",
        "--workdir",
        work,
    )
    assert code == 0, err
    assert "Applied 2 override(s) from plan.xlsx" in out and "v2 (draft)" in out

    draft = plans.version(2)
    stored = plans.overrides(draft)
    assert sorted(zip(stored["key"], stored["ds"], stored["value"], strict=True)) == sorted(
        [(cat, agg_month, agg_value), (outside, bottom_month, bottom_value)]
    )
    assert set(stored["author"]) == {"ana"} and set(stored["reason"]) == {"key account input"}
    assert set(stored["source"]) == {"plan.xlsx"}
    after = plans.lines(draft)
    final = indexed(after)["final"]
    assert final[(cat, agg_month)] == pytest.approx(agg_value, rel=1e-9)
    assert final[(outside, bottom_month)] == pytest.approx(bottom_value, rel=1e-9)
    assert is_coherent(after, service.structure(plans, draft)[0])
    pd.testing.assert_frame_equal(plans.lines(1), lines)


def test_unedited_workbook_changes_nothing(work, capsys):
    book = work / "plan.xlsx"
    assert main(["plan", "export", "--layout", "planner", "--output", str(book), "--workdir", str(work)]) == 0
    before = digest(work / "sopforecast.db")
    code, out, err = run(
        capsys, "override", "apply", book, "--author", "ana", "--reason", "review", "--workdir", work
    )
    assert code == 0, err
    assert "Applied 0 override(s)" in out
    assert store(work).overrides().empty
    assert store(work).versions()["id"].tolist() == [1]
    assert digest(work / "sopforecast.db") == before


# --- 5. exports --------------------------------------------------------------------------------


def test_export_long_wide_and_parquet(work, capsys):
    plans = store(work)
    version = plans.version()
    lines = plans.lines(version)
    bounds = ["statistical-lo-80", "statistical-hi-80", "statistical-lo-95", "statistical-hi-95"]

    csv = work / "out" / "plan.csv"
    code, out, err = run(capsys, "plan", "export", "--output", csv, "--workdir", work)
    assert code == 0, err
    assert f"Wrote {version.label} (long layout) to {csv}" in out
    long = pd.read_csv(csv, parse_dates=["ds"])
    assert long.columns[:6].tolist() == ["unique_id", "level", "ds", "statistical", "consensus", "final"]
    assert set(bounds) <= set(long.columns)
    assert len(long) == len(lines) and not long.duplicated(["unique_id", "ds"]).any()
    both = long.merge(lines, on=["unique_id", "ds"], suffixes=("", "_store"))
    assert len(both) == len(lines)
    for col in ["statistical", "final", *bounds]:
        assert np.allclose(both[col], both[f"{col}_store"], rtol=1e-12)
    assert long["consensus"].isna().all()

    parquet = work / "out" / "plan.parquet"
    assert run(capsys, "plan", "export", "-o", parquet, "--workdir", work)[0] == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(parquet).drop(columns="author"),
        long.drop(columns="author"),
        check_dtype=False,
    )

    xlsx = work / "out" / "wide.xlsx"
    code, out, _ = run(capsys, "plan", "export", "--layout", "wide", "-o", xlsx, "--workdir", work)
    assert code == 0 and "(wide layout)" in out
    wide = pd.read_excel(xlsx, sheet_name="Plan")
    month_cols = [f"{m:%Y-%m}" for m in plan_months(lines)]
    keys = ["category", "family", "sku", "region", "channel"]
    assert wide.columns[:2].tolist() == ["unique_id", "level"]
    assert sorted(wide.columns[2:7]) == sorted(keys)
    assert wide.columns[7:].tolist() == month_cols
    assert len(wide) == lines["unique_id"].nunique()
    expected = lines.pivot(index="unique_id", columns="ds", values="final")
    expected.columns = [f"{m:%Y-%m}" for m in expected.columns]
    shown = wide.set_index("unique_id")[month_cols]
    assert np.allclose(shown.to_numpy(), expected.loc[shown.index, month_cols].to_numpy(), rtol=1e-12)
    # keys below a series' level stay empty: the Total has none, a bottom series all
    assert wide.set_index("unique_id").loc["Total", keys].isna().all()
    assert wide.loc[wide["level"] == BOTTOM, keys].notna().all().all()

    code, _, err = run(capsys, "plan", "export", "-o", work / "out" / "plan.json", "--workdir", work)
    assert code == 2 and "Traceback" not in err
    assert "cannot write a plan as '.json' (plan.json); use one of .csv, .xlsx, .parquet" in " ".join(
        err.split()
    )
    assert not (work / "out" / "plan.json").exists()


# --- 6. publish and diff -------------------------------------------------------------------------


def test_publish_the_new_draft_once_and_diff_it(work, capsys, monkeypatch):
    cat, month, value = category_override(work, capsys)
    plans = store(work)
    cycle = plans.version(1).cycle

    monkeypatch.setenv("SOPFORECAST_USER", "carla")
    code, out, err = run(capsys, "plan", "publish", cycle, "--workdir", work)
    assert code == 0, err
    assert f"Published {PLAN} {cycle} v2 (published)" in out
    v2 = plans.version(2)
    assert v2.status == "published" and v2.published_by == "carla"
    assert plans.version(1).status == "published"

    code, _, err = run(capsys, "plan", "publish", cycle, "--workdir", work)
    assert code == 2 and "Traceback" not in err
    assert f"{PLAN} {cycle} v2 (published) is published already" in " ".join(err.split())

    code, out, err = run(capsys, "plan", "diff", "1", "2", "--workdir", work)
    assert code == 0, err
    first, second = plans.lines(1), plans.lines(2)
    assert f"{cycle} v1 -> {cycle} v2" in out
    a = first.loc[first["unique_id"] == "Total", "final"].sum()
    b = second.loc[second["unique_id"] == "Total", "final"].sum()
    assert f"Total {a:,.0f} {b:,.0f} {b - a:,.0f} {(b - a) / a:+.1%}" in out
    # the changed lines are the category's month and what lies above and below it
    changed = first.merge(second, on=["unique_id", "ds"], suffixes=("_a", "_b"))
    changed = changed[~np.isclose(changed["final_a"], changed["final_b"], rtol=1e-12)]
    assert set(changed["ds"]) == {month}
    assert cat in set(changed["unique_id"]) and "Total" in set(changed["unique_id"])
    stat = indexed(first).loc[(cat, month), "final"]
    assert f"{cat} {month:%Y-%m} {stat:,.0f} {value:,.0f} {value - stat:,.0f} ana" in out
    assert "Largest line changes (top 10)" in out


# --- 7. actuals and forecast value added --------------------------------------------------------


def _actuals_month(work: Path, month: pd.Timestamp) -> pd.DataFrame:
    """The demo data's last month, dated ``month``: one row per series, the demo's columns."""
    history = pd.read_csv(work / "data" / "demo_demand.csv")
    last = history[history["ds"] == history["ds"].max()].copy()
    return last.assign(ds=f"{month:%Y-%m-%d}").reset_index(drop=True)


def _a_few(month_rows: pd.DataFrame) -> pd.DataFrame:
    """Four series whose channels each sit in one region (a handful of rows would otherwise look
    like broken master data to the nesting check)."""
    picked, seen = [], {}
    for i, row in month_rows.iterrows():
        if seen.setdefault(row["channel"], row["region"]) == row["region"]:
            picked.append(i)
        if len(picked) == 4:
            break
    return month_rows.loc[picked]


def test_actuals_load_restatement_and_fva(work, capsys):
    plans = store(work)
    lines = plans.lines(1)
    month = plan_months(lines)[0]  # the first month after the history
    rows = _actuals_month(work, month)
    few = _a_few(rows)
    path = work / "actuals.csv"
    few.to_csv(path, index=False)

    code, out, err = run(capsys, "actuals", "load", path, "--workdir", work)
    assert code == 0, err
    assert "Loaded actuals.csv: 4 series; 4 new month(s), 0 restated (kept as revisions), 0 unchanged" in out

    restated = few.copy()
    restated.loc[restated.index[0], "y"] += 7
    restated.to_csv(work / "restated.csv", index=False)
    code, out, err = run(capsys, "actuals", "load", work / "restated.csv", "--workdir", work)
    assert code == 0, err
    assert "4 series; 0 new month(s), 1 restated (kept as revisions), 3 unchanged" in out
    ids = ["/".join(r) for r in few[["category", "family", "sku", "region", "channel"]].to_numpy()]
    revisions = plans.actual_revisions(PLAN)
    revisions = revisions[revisions["ds"] == month]
    assert sorted(revisions["unique_id"]) == sorted([*ids, ids[0]])
    latest = plans.actuals(PLAN).set_index(["unique_id", "ds"])
    assert latest.loc[(ids[0], month), "y"] == restated["y"].iloc[0]
    assert latest.loc[(ids[0], month), "revision"] == 2

    database = work / "sopforecast.db"
    before = digest(database)
    few.rename(columns={"region": "regoin"}).to_csv(work / "bad.csv", index=False)
    code, _, err = run(capsys, "actuals", "load", work / "bad.csv", "--workdir", work)
    assert code == 2 and "Traceback" not in err
    text = " ".join(err.split())
    assert "missing column(s) ['region']" in text and "column 'regoin' looks like 'region'" in text
    assert digest(database) == before

    code, out, err = run(capsys, "plan", "fva", "--workdir", work)
    assert code == 0, err
    reports = work / "reports"
    table = pd.read_csv(reports / f"{PLAN}_fva.csv")
    assert (reports / f"{PLAN}_fva_by_author.csv").exists()
    assert (reports / f"{PLAN}_fva.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Tables and chart: {reports / f'{PLAN}_fva.csv'}, {reports / f'{PLAN}_fva.png'}" in out
    assert set(table["lag"]) == {1}  # one month of actuals: lag 1 only
    # a few series of the month: their own lines are scored, aggregates wait for all their series
    assert "Total" not in set(table["level"])
    assert table.set_index("level").loc[BOTTOM, "actual"] == pytest.approx(
        latest.xs(month, level="ds").loc[ids, "y"].sum()
    )

    # the rest of the month arrives: every line of the month is scored against the plan
    rest = rows[~rows.index.isin(few.index)]
    rest.to_csv(work / "rest.csv", index=False)
    code, out, err = run(capsys, "actuals", "load", work / "rest.csv", "--workdir", work)
    assert code == 0, err
    assert f"{len(rest)} series; {len(rest)} new month(s), 0 restated" in out
    assert run(capsys, "plan", "fva", "--workdir", work)[0] == 0
    table = pd.read_csv(reports / f"{PLAN}_fva.csv").set_index("level")
    actual = plans.actuals(PLAN)
    actual = actual.loc[actual["ds"] == month, "y"].sum()
    plan_total = indexed(lines).loc[("Total", month)]
    total = table.loc["Total"]
    assert total["n"] == 1 and total["actual"] == pytest.approx(actual)
    assert total["wape_statistical"] == pytest.approx(abs(plan_total["statistical"] - actual) / actual)
    assert total["wape_naive"] == pytest.approx(abs(plan_total["naive"] - actual) / actual)
    assert total["bias_statistical"] == pytest.approx((plan_total["statistical"] - actual) / actual)
    assert table.loc[BOTTOM, "n"] == len(rows)
    assert table.index.tolist() == list(dict.fromkeys(lines["level"]))
    assert np.allclose(table["fva_consensus"], 0.0)  # no override: the consensus is the statistical
    assert np.allclose(table["fva_statistical"], table["wape_naive"] - table["wape_statistical"])


def test_fva_scores_only_the_series_with_actuals(work, capsys):
    month = plan_months(store(work).lines(1))[0]
    few = _a_few(_actuals_month(work, month))
    few.to_csv(work / "actuals.csv", index=False)
    assert run(capsys, "actuals", "load", work / "actuals.csv", "--workdir", work)[0] == 0
    assert run(capsys, "plan", "fva", "--workdir", work)[0] == 0
    table = pd.read_csv(work / "reports" / f"{PLAN}_fva.csv").set_index("level")
    assert table.loc[BOTTOM, "n"] == len(few)


# --- 8. the plan in money ---------------------------------------------------------------------


def test_finance_revenue_and_budget_gap(work, capsys):
    plans = store(work)
    version = plans.version()
    lines = plans.lines(version)
    S, _ = service.structure(plans, version)
    months = plan_months(lines)
    budget = pd.DataFrame({"key": "Total", "month": [f"{m:%Y-%m}" for m in months], "revenue": 50_000.0})
    budget.to_csv(work / "budget.csv", index=False)

    code, out, err = run(capsys, "plan", "finance", "--budget", work / "budget.csv", "--workdir", work)
    assert code == 0, err
    bottom = lines[lines["unique_id"].isin(S.columns)]
    assert bottom["price"].notna().all()  # the demo prices every bottom series
    by_month = (bottom["final"] * bottom["price"]).groupby(bottom["ds"]).sum()
    units = bottom["final"].sum()
    assert f"{version.label}: plan in money, all months" in out
    # the demo pipeline's unit cost is 62% of the price (plan.prices.cost_share)
    margin = (bottom["final"] * (bottom["price"] - bottom["unit_cost"])).sum()
    assert margin == pytest.approx(0.38 * by_month.sum(), rel=1e-9)
    assert f"Total {units:,.0f} {by_month.sum():,.0f} {margin:,.0f} 0" in out
    assert f"{BOTTOM} {units:,.0f} {by_month.sum():,.0f} {margin:,.0f} 0" in out

    reports = work / "reports"
    prefix = f"{version.plan}_{version.cycle}"
    view = pd.read_csv(reports / f"{prefix}_revenue.csv", parse_dates=["ds"])
    total = view[view["unique_id"] == "Total"].set_index("ds")["revenue"]
    assert np.allclose(total.loc[by_month.index], by_month, rtol=1e-9)
    level_sums = view.groupby("level")["revenue"].sum()
    assert np.allclose(level_sums, by_month.sum(), rtol=1e-9)  # every level adds up to the Total

    gaps = {p: pd.read_csv(reports / f"{prefix}_budget_gap_{p}.csv") for p in ("month", "quarter", "year")}
    month = gaps["month"]
    assert len(month) == len(months) and set(month["key"]) == {"Total"}
    assert np.allclose(month["plan"], by_month.to_numpy(), rtol=1e-9)
    assert np.allclose(month["gap"], by_month.to_numpy() - 50_000.0, rtol=1e-9)
    years = by_month.groupby(by_month.index.year).sum()
    year = gaps["year"].set_index("period")
    assert year.index.tolist() == years.index.tolist()
    assert year["months"].tolist() == [int((by_month.index.year == y).sum()) for y in years.index]
    assert np.allclose(year["plan"], years.to_numpy(), rtol=1e-9)
    assert np.allclose(year["budget"], 50_000.0 * year["months"])
    assert np.allclose(year["gap_pct"], years.to_numpy() / (50_000.0 * year["months"].to_numpy()) - 1)
    quarters = by_month.groupby(by_month.index.to_period("Q")).sum()
    quarter = gaps["quarter"]
    assert quarter["period"].tolist() == [f"{q.year}-Q{q.quarter}" for q in quarters.index]
    assert np.allclose(quarter["plan"], quarters.to_numpy(), rtol=1e-9)
    assert quarter["months"].sum() == len(months)
    first = gaps["year"].iloc[0]
    assert f"Total revenue {first.period} {first.plan:,.0f} {first.budget:,.0f} {first.gap:,.0f}" in out


# --- 9. schema ---------------------------------------------------------------------------------


def test_db_upgrade_on_a_current_store_does_nothing(work, capsys):
    before = digest(work / "sopforecast.db")
    code, out, err = run(capsys, "db", "upgrade", "--workdir", work)
    assert code == 0, err
    assert f"The store is at schema revision {schema.head_revision()} already; nothing to do." in out
    assert digest(work / "sopforecast.db") == before


# --- 10. no store ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["plan", "list"],
        ["plan", "show"],
        ["plan", "export", "-o", "plan.csv"],
        ["override", "list"],
        ["override", "apply", "overrides.csv"],
        ["actuals", "load", "actuals.csv"],
    ],
    ids=lambda c: "-".join(c[:2]),
)
@pytest.mark.parametrize("exists", [True, False], ids=["empty-dir", "no-dir"])
def test_commands_without_a_store_exit_2_and_create_nothing(tmp_path, capsys, monkeypatch, command, exists):
    empty = tmp_path / "empty"
    if exists:
        empty.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOPFORECAST_HOME", raising=False)
    code, out, err = run(capsys, *command, "--workdir", empty)
    assert code == 2
    text = " ".join(err.split())
    assert "Traceback" not in err
    assert f"no sopforecast store at {empty};" in text
    assert "run 'sopforecast demo' or 'sopforecast run PIPELINE.yaml' to create one" in text
    assert "(option --workdir)" in text
    assert sorted(tmp_path.rglob("*")) == ([empty] if exists else [])
