"""The monitor end to end, as the demo and a planner run it: the demo back-fills six
published cycles, plants a +40% demand shift in Household/Paper and ends with the monitor
step; then ``monitor run|exceptions|report``, ``report send`` over a real SMTP server
(aiosmtpd on 127.0.0.1), the MLflow record, and the inputs that must be refused.

The demo runs once per module on a small panel that still holds the Paper family; tests
that write work on their own copy of the work directory.
"""

from __future__ import annotations

import datetime as dt
import email
import hashlib
import json
import re
import shutil
import socket
import ssl
from email import policy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sopforecast.cli import main
from sopforecast.data.datasets import generate_plan
from sopforecast.demo import demo_pipeline_path
from sopforecast.monitoring.exceptions import TARGET_METRICS
from sopforecast.monitoring.monitor import scored_lines
from sopforecast.monitoring.report import has_chromium
from sopforecast.planning import service
from sopforecast.store.plans import PlanStore

try:
    from aiosmtpd.controller import Controller
except ImportError:  # the mail tests need a real SMTP server
    Controller = None
needs_smtp = pytest.mark.skipif(Controller is None, reason="pip install aiosmtpd")

SERIES = 150  # the smallest demo panels have no Paper family; 150 has (one SKU, four outlets)
# the back-filled plans are made with the run's forecast settings (as the live cycle's), so
# the fastest set keeps this module quick
FAST = [
    "--set",
    "forecast.models=[theta]",
    "--set",
    "forecast.windows=1",
    "--set",
    "tracking.log_model=false",
    "--set",
    "balance.enabled=false",  # the supply balance is tested in test_balance_*.py
]
PLAN = "monthly_demand_plan"
BOTTOM = "category/family/sku/region/channel"
SHIFTED = "Household/Paper"
CYCLE = "2025-12"  # the demo history runs 2021-01 .. 2025-12: the last month with actuals
BACKFILLED = ["2025-07", "2025-08", "2025-09", "2025-10", "2025-11", "2025-12"]
ACCURACY_SIDE = {"bias", "accuracy", "tracking_signal"}


CHROMIUM = has_chromium()


@pytest.fixture(scope="module")
def demo_workdir(tmp_path_factory) -> Path:
    """The demo run once on 150 series: six back-filled cycles, the run's plan, one monitor run."""
    assert "Paper" in set(generate_plan(SERIES).history["family"])
    workdir = tmp_path_factory.mktemp("monitor") / "demo"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOPFORECAST_USER", "planner")
        for name in ("SOPFORECAST_STORE_URI", "SOPFORECAST_SMTP_USER", "MLFLOW_TRACKING_URI"):
            mp.delenv(name, raising=False)
        code = main(["--quiet", "demo", "--workdir", str(workdir), "--series", str(SERIES), *FAST])
    assert code == 0
    return workdir


@pytest.fixture
def work(demo_workdir, tmp_path) -> Path:
    """A private copy of the demo's work directory."""
    return Path(shutil.copytree(demo_workdir, tmp_path / "work"))


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("SOPFORECAST_USER", "planner")
    for name in ("SOPFORECAST_STORE_URI", "SOPFORECAST_SMTP_USER", "SOPFORECAST_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def store(work: Path) -> PlanStore:
    return PlanStore(f"sqlite:///{work}/sopforecast.db")


def tracking(work: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{work}/mlflow/mlflow.db")


def run(capsys, *args) -> tuple[int, str, str]:
    """Run the CLI; exit code, stdout and stderr."""
    capsys.readouterr()
    code = main(list(map(str, args)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def flat(text: str) -> str:
    """Text with table borders dropped and whitespace collapsed."""
    for border in "│┃":
        text = text.replace(border, " ")
    return " ".join(text.split())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def latest_run(plans: PlanStore) -> pd.Series:
    runs = plans.monitor_runs(PLAN)
    assert len(runs)
    return runs.iloc[0]


def shifted(exceptions: pd.DataFrame) -> pd.DataFrame:
    """The exceptions of the shifted family or a series under it."""
    keys = exceptions["key"].astype(str)
    return exceptions[(keys == SHIFTED) | keys.str.startswith(SHIFTED + "/")]


def level_metric(metrics: pd.DataFrame, key: str, lag: int, cycle: str | None = None) -> pd.Series:
    """The stored metrics of the final plan of ``key`` at ``lag``, pooled or of one cycle."""
    rows = metrics[(metrics["key"] == key) & (metrics["lag"] == lag) & (metrics["forecast"] == "final")]
    rows = rows[rows["cycle"].isna()] if cycle is None else rows[rows["cycle"] == cycle]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# --- 1. the demo's monitor step ---------------------------------------------------------------


def test_demo_monitored_the_backfilled_cycles(demo_workdir):
    plans = store(demo_workdir)
    versions = plans.versions(PLAN).sort_values("id")
    # six back-filled cycles and the run's own plan, all published (the demo signs it off)
    assert versions["cycle"].tolist() == [*BACKFILLED, "2026-01"]
    assert set(versions["status"]) == {"published"}

    runs = plans.monitor_runs(PLAN)
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["versions"] == 6  # the back-filled cycles: the run's plan has no actual yet
    assert row["cycle"] == CYCLE
    assert pd.Timestamp(row["actuals_to"]) == pd.Timestamp(f"{CYCLE}-01")

    html = demo_workdir / "reports" / f"manager_report_{CYCLE}.html"
    assert Path(row["report"]) == html and html.is_file()
    text = html.read_text(encoding="utf-8")
    assert PLAN in text and SHIFTED in text
    pdf = html.with_suffix(".pdf")
    if CHROMIUM:
        assert pdf.read_bytes()[:5] == b"%PDF-"
    else:
        assert not pdf.exists()

    exceptions = plans.monitor_exceptions(int(row["id"]))
    assert len(exceptions) > 0
    assert exceptions["rank"].tolist() == list(range(1, len(exceptions) + 1))
    stake = exceptions["at_stake"].dropna().to_numpy()
    assert (np.diff(stake) <= 1e-9).all()  # most money at stake first

    # a tile per level target; the Total's lag-3 accuracy tile is the pooled level metric
    kpis = plans.monitor_kpis(int(row["id"]))
    tile = kpis[(kpis["name"] == "accuracy") & (kpis["level"] == "Total") & (kpis["lag"] == 3)]
    assert len(tile) == 1
    metrics = plans.monitor_metrics(int(row["id"]), "level")
    assert tile["value"].iloc[0] == pytest.approx(level_metric(metrics, "Total", 3)["accuracy"], rel=1e-9)


def test_planted_shift_is_caught_by_both_monitors(demo_workdir):
    plans = store(demo_workdir)
    run_id = int(latest_run(plans)["id"])
    paper = shifted(plans.monitor_exceptions(run_id))

    # the accuracy monitor: the plans missed the shift, an under-forecast of the family
    accuracy = paper[paper["metric"].isin(ACCURACY_SIDE) & (paper["forecast"] == "final")]
    assert len(accuracy), paper
    bias = accuracy[(accuracy["metric"] == "bias") & (accuracy["key"] == SHIFTED)]
    assert len(bias) == 1
    assert bias["value"].iloc[0] < -0.2  # most of the +40% missed at lag 3
    assert bias["breach"].iloc[0] > 0

    # the drift monitor: the family's demand (and its forecast errors) drifted
    drift = paper[(paper["level"] == "drift") & (paper["key"] == SHIFTED)]
    assert len(drift), paper
    assert drift["metric"].str.startswith("drift").all()
    assert (drift["breach"] > 0).all()
    # the worst drifted segment is the planted one: its Evidently report comes first
    reports = sorted(p.name for p in (demo_workdir / "reports" / f"drift_{CYCLE}").glob("drift_1_*.html"))
    assert reports == ["drift_1_Household_Paper.html"]

    # money at stake, by hand: |sum (final - actual) x price| of the family's bottom series
    # over the last three months at lag 1, each month at the price of the version that planned it
    scored, latest = scored_lines(plans, PLAN)
    recent = scored[
        (scored["level"] == BOTTOM)
        & (scored["lag"] == 1)
        & (scored["ds"] > pd.Timestamp(f"{CYCLE}-01") - pd.DateOffset(months=3))
        & scored["unique_id"].str.startswith(SHIFTED + "/")
    ]
    assert sorted(recent["cycle"].unique()) == BACKFILLED[-3:]
    gap = ((recent["final"] - recent["y"]) * recent["price"]).sum()
    assert gap < 0  # under-forecast
    stakes = paper.loc[paper["key"] == SHIFTED, "at_stake"]
    assert stakes.to_numpy() == pytest.approx(np.full(len(stakes), abs(gap)), rel=1e-9)


@pytest.mark.slow
def test_the_default_demo_puts_the_planted_shift_among_the_top_exceptions(tmp_path):
    # the default demo (500 series, about 2.5 minutes): the shift's family carries enough
    # money to head the list; at 150 series (above) one SKU of it is outweighed by aggregates
    workdir = tmp_path / "work"
    assert main(["--quiet", "demo", "--workdir", str(workdir)]) == 0
    plans = store(workdir)
    found = plans.monitor_exceptions(int(latest_run(plans)["id"]))
    paper = shifted(found)
    assert paper["rank"].min() <= 10, found[["rank", "key", "metric", "at_stake"]].head(12)
    assert {"drift"} <= set(paper["level"]) and paper["metric"].isin(["bias", "accuracy"]).any()


# --- 2. accuracy numbers by hand --------------------------------------------------------------


def test_total_accuracy_recomputed_by_hand(demo_workdir):
    plans = store(demo_workdir)
    metrics = plans.monitor_metrics(int(latest_run(plans)["id"]), "level")
    scored, _ = scored_lines(plans, PLAN)
    total = scored[scored["unique_id"] == "Total"]

    first = total[total["lag"] == 1]
    assert sorted(first["cycle"]) == BACKFILLED  # one lag-1 month per back-filled cycle
    error = first["final"] - first["y"]
    wape = error.abs().sum() / first["y"].abs().sum()
    stored = level_metric(metrics, "Total", 1)
    assert stored["n"] == 6
    assert stored["actual"] == pytest.approx(first["y"].sum(), rel=1e-12)
    assert stored["wape"] == pytest.approx(wape, rel=1e-9)
    assert stored["accuracy"] == pytest.approx(1 - wape, rel=1e-9)
    assert stored["bias"] == pytest.approx(error.sum() / first["y"].abs().sum(), rel=1e-9)
    assert stored["tracking_signal"] == pytest.approx(error.sum() / error.abs().mean(), rel=1e-9)
    assert 0.8 < stored["accuracy"] < 1.0

    # the trend: each cycle's own lag-1 month
    for row in first.itertuples(index=False):
        one = level_metric(metrics, "Total", 1, row.cycle)
        assert one["wape"] == pytest.approx(abs(row.final - row.y) / row.y, rel=1e-9)

    # lag 3: the four cycles whose third month has its actual
    third = total[total["lag"] == 3]
    assert sorted(third["cycle"]) == BACKFILLED[:4]
    wape3 = (third["final"] - third["y"]).abs().sum() / third["y"].sum()
    assert level_metric(metrics, "Total", 3)["wape"] == pytest.approx(wape3, rel=1e-9)


# --- 3. the MLflow record ---------------------------------------------------------------------


def test_pipeline_run_logs_the_monitor_to_mlflow(demo_workdir, tmp_path):
    plans = store(demo_workdir)
    run_id = plans.version(None, PLAN).source_run_id
    assert run_id
    client = tracking(demo_workdir)
    run = client.get_run(run_id)
    assert run.data.tags["sopforecast.monitor_cycle"] == CYCLE
    assert client.get_experiment(run.info.experiment_id).name == PLAN

    monitor = latest_run(plans)
    metrics = plans.monitor_metrics(int(monitor["id"]), "level")
    history = client.get_metric_history(run_id, "monitor_accuracy_lag1/Total")
    steps = {m.step: m.value for m in history}
    assert sorted(steps) == [int(c.replace("-", "")) for c in BACKFILLED]  # 202507 ... 202512
    for cycle in BACKFILLED:
        expected = level_metric(metrics, "Total", 1, cycle)["accuracy"]
        assert steps[int(cycle.replace("-", ""))] == pytest.approx(expected, rel=1e-9)
    bias3 = client.get_metric_history(run_id, "monitor_bias_lag3/category/family")
    assert sorted(m.step for m in bias3) == [202507, 202508, 202509, 202510]

    exceptions = plans.monitor_exceptions(int(monitor["id"]))
    counted = client.get_metric_history(run_id, "monitor_exceptions")
    assert [(m.step, m.value) for m in counted] == [(202512, float(len(exceptions)))]

    artifacts = {a.path for a in client.list_artifacts(run_id, "monitor")}
    assert {"monitor/exceptions.json", f"monitor/manager_report_{CYCLE}.html"} <= artifacts
    assert (f"monitor/manager_report_{CYCLE}.pdf" in artifacts) == CHROMIUM
    drift = {a.path for a in client.list_artifacts(run_id, "monitor/drift")}
    assert "monitor/drift/drift_1_Household_Paper.html" in drift

    table = json.loads(
        Path(client.download_artifacts(run_id, "monitor/exceptions.json", str(tmp_path))).read_text()
    )
    logged = pd.DataFrame(table["data"], columns=table["columns"])
    assert len(logged) == len(exceptions)
    assert logged["key"].tolist() == exceptions["key"].tolist()
    assert logged["rank"].tolist() == exceptions["rank"].tolist()


def test_monitor_run_names_its_mlflow_run(demo_workdir):
    plans = store(demo_workdir)
    assert latest_run(plans)["mlflow_run_id"] == plans.version(None, PLAN).source_run_id


# --- 4. the monitor commands ------------------------------------------------------------------


def test_exceptions_and_report_commands(demo_workdir, capsys):
    database = demo_workdir / "sopforecast.db"
    before = digest(database)
    plans = store(demo_workdir)
    exceptions = plans.monitor_exceptions(int(latest_run(plans)["id"]))

    code, out, err = run(capsys, "monitor", "exceptions", "--top", 5, "--workdir", demo_workdir)
    assert code == 0, err
    assert f"Top 5 of {len(exceptions)} exceptions" in flat(out)
    ranks = [int(m.group(1)) for m in re.finditer(r"^│\s*(\d+)\s*│", out, flags=re.MULTILINE)]
    assert ranks == [1, 2, 3, 4, 5]
    for key in exceptions["key"].head(5):
        assert key in out

    code, out, err = run(capsys, "monitor", "report", "--workdir", demo_workdir)
    assert code == 0, err
    html = demo_workdir / "reports" / f"manager_report_{CYCLE}.html"
    assert f"Manager report of {PLAN}, cycle {CYCLE}: {html}" in out
    if CHROMIUM:
        assert f"PDF: {html.with_suffix('.pdf')}" in out
    else:
        assert "PDF: (none: Chromium was not found)" in out
    assert digest(database) == before  # reading changes nothing


def test_monitor_run_again_records_a_second_run(work, capsys):
    client = tracking(work)
    experiment = client.get_experiment_by_name(PLAN).experiment_id
    monitor_runs = "tags.`sopforecast.role` = 'monitor'"
    assert client.search_runs([experiment], monitor_runs) == []
    first = store(work).monitor_exceptions(1)

    code, out, err = run(capsys, "monitor", "run", "--workdir", work)
    assert code == 0, err
    html = work / "reports" / f"manager_report_{CYCLE}.html"
    assert f"Report: {html}" in out

    plans = store(work)
    runs = plans.monitor_runs(PLAN)
    assert runs["id"].tolist() == [2, 1]
    assert runs["versions"].tolist() == [6, 6]  # the run's plan (2026-01) has no actual yet
    assert runs["cycle"].tolist() == [CYCLE, CYCLE]
    assert Path(runs["report"].iloc[0]) == html
    # the same plans and actuals: the same exceptions
    second = plans.monitor_exceptions(2)
    columns = ["rank", "key", "level", "metric", "forecast", "lag", "value", "breach", "at_stake"]
    pd.testing.assert_frame_equal(second[columns], first[columns])

    found = client.search_runs([experiment], monitor_runs)
    assert len(found) == 1
    mlflow_run = found[0]
    assert f"MLflow run {mlflow_run.info.run_id} (step 202512)" in flat(out)
    assert mlflow_run.data.tags["sopforecast.plan"] == PLAN
    assert mlflow_run.data.tags["sopforecast.monitor_cycle"] == CYCLE
    assert mlflow_run.info.status == "FINISHED"
    pipeline_run = plans.version(None, PLAN).source_run_id
    key = "monitor_accuracy_lag1/Total"
    again = {m.step: m.value for m in client.get_metric_history(mlflow_run.info.run_id, key)}
    before = {m.step: m.value for m in client.get_metric_history(pipeline_run, key)}
    assert again == pytest.approx(before, rel=1e-12)
    artifacts = {a.path for a in client.list_artifacts(mlflow_run.info.run_id, "monitor")}
    assert {"monitor/exceptions.json", f"monitor/manager_report_{CYCLE}.html"} <= artifacts


# --- 5. e-mailing the report ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler keeping every envelope it receives."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


def _tls_context(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def starttls_server(tmp_path):
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=_free_port(),
        tls_context=_tls_context(tmp_path),
        require_starttls=True,
    )
    controller.start()
    yield controller, inbox
    controller.stop()


@needs_smtp
def test_report_send_delivers_tiles_and_attachments(demo_workdir, smtp_server, capsys):
    controller, inbox = smtp_server
    plans = store(demo_workdir)
    run_id = int(latest_run(plans)["id"])
    code, out, err = run(
        capsys,
        *("report", "send", "--to", "a@example.com", "--to", "b@example.com"),
        *("--host", "127.0.0.1", "--port", controller.port, "--sender", "sop@example.com"),
        *("--workdir", demo_workdir),
    )
    assert code == 0, err
    assert f"Sent the {CYCLE} report of {PLAN} to a@example.com, b@example.com" in flat(out)

    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "sop@example.com"
    assert sorted(envelope.rcpt_tos) == ["a@example.com", "b@example.com"]
    msg = email.message_from_bytes(envelope.content, policy=policy.default)
    assert msg["Subject"] == f"S&OP accuracy report {PLAN} {CYCLE}"
    assert msg["From"] == "sop@example.com"

    body = msg.get_body(preferencelist=("html",)).get_content()
    kpis = plans.monitor_kpis(run_id)
    assert len(kpis) > 0
    for tile in kpis.itertuples(index=False):
        value = f"{tile.value:.1%}" if tile.unit == "%" else f"{tile.value:.2f}"
        assert f"lag {tile.lag}, {tile.level}<br>" in body
        assert f'<span style="font-size:20px">{value}</span>' in body
    top = plans.monitor_exceptions(run_id).iloc[0]
    assert "Top exceptions" in body and f"<li>{top['key']}: {top['metric']}" in body

    html = demo_workdir / "reports" / f"manager_report_{CYCLE}.html"
    attached = list(msg.iter_attachments())
    expected = [(html.name, "text/html")] + (
        [(html.with_suffix(".pdf").name, "application/pdf")] if CHROMIUM else []
    )
    assert [(p.get_filename(), p.get_content_type()) for p in attached] == expected
    assert attached[0].get_content() == html.read_text(encoding="utf-8")
    if CHROMIUM:
        assert attached[1].get_content() == html.with_suffix(".pdf").read_bytes()


@needs_smtp
def test_report_send_without_starttls_to_a_server_that_requires_it(demo_workdir, starttls_server, capsys):
    controller, inbox = starttls_server
    code, out, err = run(
        capsys,
        *("report", "send", "--to", "a@example.com", "--host", "127.0.0.1", "--port", controller.port),
        *("--sender", "sop@example.com", "--workdir", demo_workdir),
    )
    assert code == 2
    message = flat(err)
    assert f"127.0.0.1:{controller.port}" in message and "requires STARTTLS" in message
    assert "Traceback" not in err
    assert inbox.envelopes == []


# --- 6. bad input: exit 2 and nothing changed --------------------------------------------------


def test_bad_target_in_the_pipeline_is_refused(work, capsys):
    raw = yaml.safe_load(demo_pipeline_path().read_text())
    assert raw["plan"]["enabled"] is True
    raw["monitor"] = {"enabled": True, "targets": [{"metric": "accurcy", "level": "Total", "min": 0.8}]}
    bad = work / "BAD.yaml"
    bad.write_text(yaml.safe_dump(raw))
    watched = [work / "sopforecast.db", work / "mlflow" / "mlflow.db"]
    before = [digest(p) for p in watched]
    reports = sorted((work / "reports").rglob("*"))

    code, out, err = run(capsys, "monitor", "run", "--pipeline", bad, "--workdir", work)
    assert code == 2
    message = flat(err)
    assert "'accurcy'" in message and "monitor.targets.0.metric" in message
    assert ", ".join(TARGET_METRICS) in message  # the valid metrics, named
    assert "Traceback" not in err
    assert [digest(p) for p in watched] == before
    assert sorted((work / "reports").rglob("*")) == reports
    assert len(store(work).monitor_runs(PLAN)) == 1


def test_bad_actuals_are_refused_whole(work, capsys):
    history = pd.read_csv(work / "data" / "demo_demand.csv")
    month = history[history["ds"] == history["ds"].max()].assign(ds="2026-01-01")
    text = month.astype({"y": object})
    text.iloc[3, text.columns.get_loc("y")] = "twelve"
    text.to_csv(work / "text_demand.csv", index=False)
    month.drop(columns="channel").to_csv(work / "no_channel.csv", index=False)
    database = work / "sopforecast.db"
    before = digest(database)
    stored = len(store(work).actuals(PLAN))

    code, _, err = run(capsys, "actuals", "load", work / "text_demand.csv", "--workdir", work)
    assert code == 2
    assert "column 'y' must hold numbers" in flat(err) and "y='twelve'" in err
    assert digest(database) == before

    code, _, err = run(capsys, "actuals", "load", work / "no_channel.csv", "--workdir", work)
    assert code == 2
    assert "missing column(s) ['channel']" in flat(err)
    assert digest(database) == before
    assert len(store(work).actuals(PLAN)) == stored

    # the same month, whole and numeric, loads (so the checks above did guard something)
    month.to_csv(work / "good.csv", index=False)
    code, out, err = run(capsys, "actuals", "load", work / "good.csv", "--workdir", work)
    assert code == 0, err
    assert f"{month.shape[0]:,} new month(s)" in flat(out)
    assert len(store(work).actuals(PLAN)) == stored + len(month)


# --- 7. nothing to monitor --------------------------------------------------------------------


def test_draft_only_plan_has_nothing_to_monitor(demo_workdir, tmp_path, capsys):
    source = store(demo_workdir)
    version = source.version(None, PLAN)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    plans = store(fresh)
    draft = service.create_version(
        plans, PLAN, source.lines(version), source.bottom(version), version.hierarchy, cycle=version.cycle
    )
    assert draft.status == "draft"
    before = digest(fresh / "sopforecast.db")

    code, out, err = run(capsys, "monitor", "run", "--workdir", fresh)
    assert code == 2
    message = flat(err)
    assert f"plan {PLAN!r} has no published version yet" in message
    assert "sopforecast plan publish" in message and "Traceback" not in err
    assert digest(fresh / "sopforecast.db") == before
    assert plans.monitor_runs(PLAN).empty
    assert not (fresh / "reports").exists() or not any((fresh / "reports").iterdir())

    code, out, err = run(capsys, "monitor", "exceptions", "--workdir", fresh)
    assert code == 2
    assert f"plan {PLAN!r} has not been monitored yet" in flat(err)


# --- 8. money, counts and output a manager and a script can trust (issue 19) ----------------


def _top_members(plans: PlanStore) -> dict[str, frozenset]:
    """The bottom series under every hierarchy key, read from the store's summing frame."""
    S, _ = service.structure(plans, plans.version(None, PLAN))
    return {key: frozenset(S.bottom_of(key)) for key in S.index}


def test_report_total_at_stake_is_recomputed_by_hand(demo_workdir):
    plans = store(demo_workdir)
    row = latest_run(plans)
    exceptions = plans.monitor_exceptions(int(row["id"]))
    top = exceptions.head(10)
    members = _top_members(plans)
    # by hand: one figure per item; broadest item first; an item sharing series with one
    # already counted (its parent, or a region it is sold in) adds nothing
    firsts = top.drop_duplicates("key")
    assert len(firsts) < len(top)  # the same key under several measures: the old sum double counted
    by_breadth = sorted(firsts.itertuples(), key=lambda r: (-len(members[r.key]), r.rank))
    taken: list[frozenset] = []
    total = 0.0
    for r in by_breadth:
        if all(members[r.key].isdisjoint(m) for m in taken):
            taken.append(members[r.key])
            total += r.at_stake
    assert total < top["at_stake"].sum()

    html = Path(row["report"]).read_text(encoding="utf-8")
    shown = re.search(r'<strong data-total="([0-9.]+)">([^<]+)</strong>', html)
    assert float(shown.group(1)) == pytest.approx(total, abs=0.01)
    assert shown.group(2) == f"EUR {total / 1e3:.0f}k" if total >= 1e4 else f"EUR {total:,.0f}"
    assert f"counting {len(taken)} item" in html and "only the broadest counts" in html
    assert "At stake (EUR)" in html


def test_one_exception_count_everywhere(demo_workdir, capsys, tmp_path):
    plans = store(demo_workdir)
    row = latest_run(plans)
    stored = len(plans.monitor_exceptions(int(row["id"])))
    assert stored > 50  # the report used to count only the first 50
    html = Path(row["report"]).read_text(encoding="utf-8")
    assert f"Showing the top 10 of {stored}." in html
    code, out, err = run(capsys, "monitor", "exceptions", "--workdir", demo_workdir)
    assert code == 0, err
    assert f"Top 20 of {stored} exceptions" in flat(out)
    counted = tracking(demo_workdir).get_metric_history(row["mlflow_run_id"], "monitor_exceptions")
    assert [m.value for m in counted] == [float(stored)]


def test_exceptions_as_csv_and_json_list_the_planted_shift_in_full(demo_workdir, capsys, tmp_path):
    import csv
    import io

    plans = store(demo_workdir)
    stored = plans.monitor_exceptions(int(latest_run(plans)["id"]))
    code, out, err = run(capsys, "monitor", "exceptions", "--format", "csv", "--workdir", demo_workdir)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(stored)  # every exception, not a top
    assert [r["key"] for r in rows] == stored["key"].tolist()
    assert {r["currency"] for r in rows} == {"EUR"}
    assert latest_run(plans)["currency"] == "EUR"  # kept with the run: its money's currency
    paper = [r for r in rows if r["key"] == SHIFTED]
    assert {"drift of demand", "bias"} <= {r["metric"] for r in paper}
    assert [line for line in out.splitlines() if line.split(",")[1] == SHIFTED]  # grep-able

    # the table, piped (capsys is no terminal): the longest key is never cut
    longest = max(stored["key"], key=len)
    code, out, err = run(capsys, "monitor", "exceptions", "--top", len(stored), "--workdir", demo_workdir)
    assert code == 0 and longest in out and "…" not in out

    target = tmp_path / "exceptions.json"
    code, out, err = run(
        capsys, "monitor", "exceptions", "--format", "json", "-o", target, "--workdir", demo_workdir
    )
    assert code == 0, err
    records = json.loads(target.read_text(encoding="utf-8"))
    assert [r["key"] for r in records] == stored["key"].tolist()
    assert records[0]["at_stake"] == pytest.approx(stored["at_stake"].iloc[0])


def test_tracking_signal_and_bias_agree(demo_workdir):
    plans = store(demo_workdir)
    run_id = int(latest_run(plans)["id"])
    exceptions = plans.monitor_exceptions(run_id)
    series = plans.monitor_metrics(run_id, "series")
    final = series[(series["forecast"] == "final") & series["cycle"].isna()].set_index(["key", "lag"])
    ts = exceptions[exceptions["metric"] == "tracking_signal"]
    bias = exceptions[exceptions["metric"] == "bias"].set_index(["key", "lag"])
    assert len(ts)
    for r in ts.itertuples():  # a tracking-signal exception always has its bias beside it
        assert (r.key, r.lag) in bias.index
    # every key whose bias is off target and all of whose errors fall one way (|TS| = n, the
    # signal's maximum: 4 errors cannot pass 4) has its tracking-signal exception too
    one_sided = final[(final["tracking_signal"].abs() >= final["n"] - 1e-9) & (final["n"] <= 4)]
    off = one_sided[one_sided.index.isin(bias.index)]
    assert len(off)
    flagged = set(zip(ts["key"], ts["lag"], strict=True))
    assert set(off.index) <= flagged
    kpis = plans.monitor_kpis(run_id)
    for tile in kpis[kpis["name"] == "tracking signal"].itertuples():
        level_bias = kpis[(kpis["name"] == "bias") & (kpis["level"] == tile.level)]["status"]
        assert tile.status == "green" or tile.status == level_bias.iloc[0]


def test_money_keeps_the_monitored_versions_prices(work):
    from sopforecast.monitoring.monitor import MonitorSettings, run_monitor

    plans = store(work)
    settings = MonitorSettings(pdf=False)
    before = run_monitor(plans, PLAN, settings, work / "reports")
    # a new plan of the current cycle at three times the prices, published
    current = plans.version(None, PLAN)
    lines = plans.lines(current)
    dearer = lines.assign(price=lines["price"] * 3, unit_cost=lines["unit_cost"] * 3)
    draft = service.create_version(
        plans, PLAN, dearer, plans.bottom(current), current.hierarchy, cycle=current.cycle
    )
    service.publish(plans, draft.id, PLAN)
    assert plans.version(None, PLAN).id == draft.id
    after = run_monitor(plans, PLAN, settings, work / "reports")
    columns = ["key", "metric", "lag", "at_stake"]
    pd.testing.assert_frame_equal(after.exceptions[columns], before.exceptions[columns])
    assert before.currency == after.currency == "EUR"


def test_monitor_files_stay_in_the_reports_folder(work):
    from sopforecast.monitoring.monitor import MonitorSettings, run_monitor

    plans = store(work)
    with plans.engine.begin() as conn:  # a plan named to escape, as a careless import would
        from sqlalchemy import text

        for table in ("plan_versions", "actuals"):
            conn.execute(text(f"UPDATE {table} SET plan = :bad"), {"bad": "../../escaped/x"})
    before = {p for p in work.parent.rglob("*") if "escaped" in p.name}
    result = run_monitor(plans, "../../escaped/x", MonitorSettings(pdf=False), work / "reports")
    reports = (work / "reports").resolve()
    written = [result.report, *result.drift.reports.values()]
    assert all(reports in Path(p).resolve().parents for p in written)
    assert {p for p in work.parent.rglob("*") if "escaped" in p.name} == before
