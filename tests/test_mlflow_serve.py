"""mlflow/serve.sh as a user starts it: from a fresh shell, no virtual environment activated."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import site
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

SERVE = Path(__file__).resolve().parents[1] / "mlflow" / "serve.sh"
BARE_PATH = "/usr/bin:/bin"  # a login shell's PATH: no venv, no pyenv shims


def _has_mlflow(python: str | None) -> bool:
    if python is None:
        return False
    # from / : in the repository, its mlflow/ folder imports as a namespace package
    return (
        subprocess.run([python, "-c", "import mlflow.server"], capture_output=True, cwd="/").returncode == 0
    )


def _repo_copy(tmp_path: Path) -> Path:
    """The script in a checkout of its own, whose .venv we control."""
    script = tmp_path / "repo" / "mlflow" / "serve.sh"
    script.parent.mkdir(parents=True)
    shutil.copy2(SERVE, script)
    return script


def _store(tmp_path: Path) -> Path:
    workdir = tmp_path / "work"
    (workdir / "mlflow").mkdir(parents=True)
    (workdir / "mlflow" / "mlflow.db").touch()  # an empty SQLite file: the server sets it up
    return workdir


def _bare_env(**extra: str) -> dict[str, str]:
    return {"HOME": os.environ.get("HOME", "/tmp"), "PATH": BARE_PATH, **extra}


def _checkout_venv(venv: Path) -> None:
    """A virtual environment at ``venv``, as `python -m venv .venv` makes it, that imports
    what the interpreter running the tests imports (MLflow among it).

    ``--system-site-packages`` would not do: when the tests themselves run in a venv (the
    README's way), it reaches the base interpreter's packages, not that venv's. A ``.pth``
    file adding the running interpreter's site directories works in both cases.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    folders = [*site.getsitepackages(), site.getusersitepackages()]
    lines = [f"import site; site.addsitedir({folder!r})\n" for folder in folders if folder in sys.path]
    (Path(purelib) / "_tests_interpreter.pth").write_text("".join(lines))


def _stop(server: subprocess.Popen) -> None:
    """Stop the server and its workers (one process group); a group already gone is fine,
    so a failure to start is reported as itself, not as ProcessLookupError."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def test_serves_with_the_repository_venv_not_activated(tmp_path):
    if _has_mlflow(shutil.which("python3", path=BARE_PATH)):
        pytest.skip("the system python3 has MLflow: the venv lookup would not be exercised")
    script = _repo_copy(tmp_path)
    # a virtual environment in the checkout (MLflow comes from the interpreter running the tests)
    venv = script.parents[1] / ".venv"
    _checkout_venv(venv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            ["bash", str(script), str(_store(tmp_path)), str(port), "--workers", "1"],
            env=_bare_env(),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the server and its workers: one process group to stop
        )
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                    assert reply.status == 200 and reply.read().strip() == b"OK"
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"the MLflow server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=5"
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert b"Default" in reply.read()  # the store, set up and served
    finally:
        _stop(server)
    assert (
        f"MLflow UI on http://127.0.0.1:{port} over {tmp_path / 'work'}/mlflow, run by {venv}/bin/python"
        in (log.read_text())
    )


def test_no_python_with_mlflow_is_a_clear_error(tmp_path):
    if _has_mlflow(shutil.which("python3", path=BARE_PATH)) or _has_mlflow(
        shutil.which("python", path=BARE_PATH)
    ):
        pytest.skip("the system python has MLflow")
    script = _repo_copy(tmp_path)
    proc = subprocess.run(
        ["bash", str(script), str(_store(tmp_path)), "5999"],
        env=_bare_env(),
        cwd=script.parents[1],  # where `import mlflow` finds the mlflow/ folder, not MLflow
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cannot find a Python with MLflow" in proc.stderr and "set SOPFORECAST_PYTHON" in proc.stderr


def test_missing_store_is_refused_before_looking_for_python(tmp_path):
    proc = subprocess.run(
        ["bash", str(SERVE), str(tmp_path / "nowhere"), "5999"],
        env=_bare_env(),
        capture_output=True,
        text=True,
    )
    assert (
        proc.returncode == 2 and f"no MLflow store at {tmp_path / 'nowhere'}/mlflow/mlflow.db" in proc.stderr
    )
    assert not (tmp_path / "nowhere").exists()
