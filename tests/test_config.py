"""Settings are checked at the door: a bad one is a ConfigError naming the setting (the CLI
its option) before any data is read or any run is tracked."""

from __future__ import annotations

import sys

import pytest

import sopforecast as sf
from sopforecast import cli
from sopforecast.cli import main
from sopforecast.config import MAX_HORIZON_MONTHS, ForecastConfig
from sopforecast.data.datasets import generate_demand
from sopforecast.errors import ConfigError, DataError, SopforecastError
from sopforecast.pipeline import spec as spec_module
from sopforecast.pipeline.spec import check_columns, load_pipeline

HIERARCHY = "[category/family/sku, region/channel]"


@pytest.fixture(scope="module")
def demand():
    return generate_demand(n_series=5, periods=36, seed=0)


@pytest.fixture
def sales_csv(tmp_path, demand):
    path = tmp_path / "sales.csv"
    demand.to_csv(path, index=False)
    return path


def _pipeline(tmp_path, text: str):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\n" + text)
    return path


def _raises_config(match: str):
    return pytest.raises(ConfigError, match=match)


# -- ForecastConfig and the Python API -----------------------------------------------------


def test_errors_carry_the_setting():
    exc = ConfigError("bad", setting="hierarchy")
    assert isinstance(exc, ValueError) and isinstance(exc, SopforecastError)
    assert exc.setting == "hierarchy" and str(exc) == "bad"
    assert DataError("no setting").setting is None


def test_unknown_model_refused_at_construction_with_valid_names():
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['nope'\]; valid names: auto, ets"):
        ForecastConfig(models="ets,nope")
    with pytest.raises(ValueError, match="models"):
        ForecastConfig(models=["ets", "nope"])
    assert ForecastConfig(models="auto").models == "auto"
    assert ForecastConfig(models=["ets", "lgbm"]).models == ["ets", "lgbm"]


def test_unknown_model_refused_by_the_api_before_any_fit(demand):
    with _raises_config("unknown model"):
        sf.forecast(demand.rename(columns={"sku": "unique_id"}), h=6, models="nope")


def test_bad_stats_params_refused():
    with pytest.raises(
        ValueError, match=r"params[\s\S]*model 'ets' \(AutoETS\).*unexpected keyword argument 'foo'"
    ):
        ForecastConfig(params={"ets": {"foo": 1}})
    with pytest.raises(ValueError, match=r"'nope' is not a model; params take model names: ets"):
        ForecastConfig(params={"nope": {"alpha": 0.1}})
    assert ForecastConfig(params={"tsb": {"alpha_d": 0.1}}).params == {"tsb": {"alpha_d": 0.1}}


def test_bad_lgbm_params_refused_feature_keys_accepted():
    with pytest.raises(
        ValueError, match=r"unknown parameter\(s\) \['leaves'\] for lgbm; valid: .*num_leaves"
    ):
        ForecastConfig(params={"lgbm": {"leaves": 8}})
    good = {"lgbm": {"num_leaves": 8, "lags": [1, 12], "windows": [3], "date_features": ["month"]}}
    assert ForecastConfig(params=good).params == good


@pytest.mark.parametrize("level", [0, 100, -5, 120])
def test_levels_outside_0_100_refused(level):
    with pytest.raises(ValueError, match="interval levels must lie between 0 and 100"):
        ForecastConfig(level=[80, level])


def test_monthly_horizon_capped_weekly_not():
    assert MAX_HORIZON_MONTHS == spec_module.MAX_HORIZON_MONTHS == 36
    for freq in ("MS", "ME"):
        with pytest.raises(
            ValueError, match="a horizon of 37 months is beyond the S&OP range; use at most 36"
        ):
            ForecastConfig(horizon=37, freq=freq)
    assert ForecastConfig(horizon=36, freq="MS").horizon == 36
    assert ForecastConfig(horizon=37, freq="W-MON").horizon == 37


def test_monthly_horizon_capped_in_the_api(demand):
    with _raises_config("horizon"):
        sf.forecast(demand.rename(columns={"sku": "unique_id"}), h=37, freq="MS")


def test_from_validation_names_the_setting():
    with pytest.raises(ValueError) as info:
        ForecastConfig(horizon=37)
    exc = ConfigError.from_validation(info.value)
    assert exc.setting == "horizon"
    assert str(exc).startswith("horizon: a horizon of 37 months")


# -- pipeline YAML --------------------------------------------------------------------------


def test_unknown_model_in_yaml_names_the_key(tmp_path):
    path = _pipeline(tmp_path, "forecast: {models: [ets, nope]}\n")
    with _raises_config(r"forecast\.models: unknown model\(s\) \['nope'\]") as info:
        load_pipeline(path)
    assert info.value.setting == "forecast.models"


def test_yaml_horizon_checked_against_the_data_frequency(tmp_path):
    with _raises_config(r"forecast\.horizon: a horizon of 37 months") as info:
        load_pipeline(_pipeline(tmp_path, "forecast: {horizon: 37}\n"))
    assert info.value.setting == "forecast.horizon"
    weekly = load_pipeline(_pipeline(tmp_path, "data: {freq: W-MON}\nforecast: {horizon: 37}\n"))
    assert weekly.forecast.horizon == 37 and weekly.forecast.freq == "W-MON"


def test_yaml_forecast_drivers_refused_data_drivers_copied(tmp_path):
    text = "data: {drivers: [price]}\nforecast: {drivers: [price]}\n"
    with _raises_config(r"forecast\.drivers: give the drivers once, under data\.drivers"):
        load_pipeline(_pipeline(tmp_path, text))
    spec = load_pipeline(_pipeline(tmp_path, "data: {drivers: [price, promo]}\n"))
    assert spec.forecast.drivers == ["price", "promo"]


def test_yaml_bad_level_and_params_listed_one_per_line(tmp_path):
    path = _pipeline(tmp_path, "forecast: {level: [0, 95], params: {ets: {foo: 1}}}\n")
    with _raises_config("invalid pipeline") as info:
        load_pipeline(path)
    lines = str(info.value).splitlines()
    assert lines[1].startswith("  forecast.level: interval levels must lie between 0 and 100")
    assert lines[2].startswith("  forecast.params.ets: bad parameters for model 'ets'")


def _csv_pipeline(tmp_path, drivers="[price, promo]", extra=""):
    return _pipeline(
        tmp_path, f"data:\n  path: sales.csv\n  hierarchy: {HIERARCHY}\n  drivers: {drivers}\n{extra}"
    )


def test_columns_of_a_csv_checked_at_load(tmp_path, sales_csv):
    spec = load_pipeline(_csv_pipeline(tmp_path))
    assert spec.data.path == str(sales_csv.resolve())
    with _raises_config(r"data\.drivers names column\(s\) \['discount'\] not in the file") as info:
        load_pipeline(_csv_pipeline(tmp_path, drivers="[price, discount]"))
    assert info.value.setting == "data.drivers"
    assert "Columns found: ['category', 'family', 'sku'" in str(info.value)


@pytest.mark.parametrize(
    ("extra", "setting", "column"),
    [
        ("  time_col: date\n", "data.time_col", "date"),
        ("  target_col: qty\n", "data.target_col", "qty"),
    ],
)
def test_time_and_target_columns_checked(tmp_path, sales_csv, extra, setting, column):
    with _raises_config(rf"{setting} names column\(s\) \['{column}'\]") as info:
        load_pipeline(_csv_pipeline(tmp_path, extra=extra))
    assert info.value.setting == setting


def test_hierarchy_columns_of_a_parquet_checked(tmp_path, demand):
    demand.drop(columns="channel").to_parquet(tmp_path / "sales.parquet")
    path = _pipeline(tmp_path, f"data:\n  path: sales.parquet\n  hierarchy: {HIERARCHY}\n")
    with _raises_config(r"data\.hierarchy names column\(s\) \['channel'\]") as info:
        load_pipeline(path)
    assert info.value.setting == "data.hierarchy"


def test_check_columns_skips_sources_without_a_cheap_header(tmp_path):
    spec = load_pipeline(_pipeline(tmp_path, "data: {dataset: demo, drivers: [nothing]}\n"))
    check_columns(spec)  # built-in data: checked when read


# -- the command line -----------------------------------------------------------------------


def test_cli_unknown_model_one_line_names_the_option(tmp_path, capsys, sales_csv):
    out = tmp_path / "out.csv"
    code = main(["forecast", "--data", str(sales_csv), "--output", str(out), "--models", "nope"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("Error: ")
    assert "--models: unknown model(s) ['nope']; valid names: auto, ets" in err
    assert not out.exists()


def test_cli_horizon_beyond_range_names_the_option(tmp_path, capsys, sales_csv):
    out = tmp_path / "out.csv"
    code = main(["forecast", "--data", str(sales_csv), "--output", str(out), "--horizon", "37"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--horizon: a horizon of 37 months" in err


def _fail_with(exc):
    def app(*args, **kwargs):
        raise exc

    return app


def test_cli_translates_a_library_setting_to_its_option(monkeypatch, capsys):
    message = "hierarchy columns ['sku'] are not in the data " + "x" * 200
    monkeypatch.setattr(cli, "app", _fail_with(ConfigError(message, setting="hierarchy")))
    assert main(["forecast"]) == 2
    err = capsys.readouterr().err
    assert err == f"Error: {message} (option --hierarchy)\n"  # unwrapped, one line


def test_cli_leaves_pipeline_settings_alone(monkeypatch, capsys):
    monkeypatch.setattr(
        cli, "app", _fail_with(ConfigError("p.yaml: bad [b]drivers[/b]", setting="data.drivers"))
    )
    assert main(["run", "p.yaml"]) == 2
    assert capsys.readouterr().err == "Error: p.yaml: bad [b]drivers[/b]\n"  # no markup either


def test_cli_keeps_rich_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(cli, "app", _fail_with(ConfigError("no such model", setting="models")))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["forecast"]) == 2
    assert "no such model (option --models)" in capsys.readouterr().err
