"""Every ``--store`` problem ends in one clear line and exit 2, and creates nothing: a URL
that does not parse, a driver that is not installed, a server that refuses, a file that is
not a database, a path that does not exist, a database without a store."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sopforecast.cli import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, " ".join(err.split())


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("command", [["plan", "list"], ["plan", "show"], ["override", "list"]])
def test_a_mistyped_sqlite_path_creates_nothing(command, capsys, tmp_path):
    before = _files(tmp_path)
    code, err = _run(capsys, *command, "--store", f"sqlite:///{tmp_path / 'plnas.db'}")
    assert code == 2 and "no store at" in err and "plnas.db" in err and "Traceback" not in err
    assert _files(tmp_path) == before  # no empty database, no lock file


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "cannot read the store URL"),
        ("sqlite:///{tmp}/missing/folder/plans.db", "does not exist"),
        ("postgresql+pg8000://u@127.0.0.1:5/db", "driver"),
        ("mysql+mysqldb://u@127.0.0.1:5/db", "driver"),
        ("postgresql+psycopg://nobody:secret@127.0.0.1:{port}/plans", "cannot connect to the store"),
    ],
)
def test_store_url_problems_are_one_clear_line(url, expected, capsys, tmp_path):
    url = url.format(tmp=tmp_path, port=_free_port())
    if "psycopg" in url:
        pytest.importorskip("psycopg")
    code, err = _run(capsys, "plan", "list", "--store", url)
    assert code == 2, err
    assert expected in err and err.startswith("Error:") and "Traceback" not in err
    assert "secret" not in err  # a password never reaches the screen
    assert not (tmp_path / "missing").exists()


def test_a_file_that_is_not_a_database_is_refused(capsys, tmp_path):
    notes = tmp_path / "notes.db"
    notes.write_text("key,month,value\nA,2026-01,1\n")
    code, err = _run(capsys, "plan", "list", "--store", f"sqlite:///{notes}")
    assert code == 2 and "not a SQLite database" in err
    assert notes.read_text().startswith("key,month")  # untouched
    assert _files(tmp_path) == {"notes.db"}


def test_a_postgresql_database_without_a_store_is_not_made_one(postgres_server, capsys):
    name = postgres_server.create_database()
    try:
        url = postgres_server.url(name, driver="psycopg")
        code, err = _run(capsys, "plan", "list", "--store", url)
        assert code == 2 and "holds no sopforecast store" in err
        with postgres_server.connect(name) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()[0]
        assert tables == 0  # nothing was created
    finally:
        postgres_server.drop_database(name)
