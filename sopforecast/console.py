"""Terminal output: logging through rich, progress bars that ``--quiet`` turns off."""

from __future__ import annotations

import logging
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = ["console", "err_console", "setup_logging", "progress", "is_quiet"]

console = Console()
err_console = Console(stderr=True)
_state = {"quiet": False}


def setup_logging(*, quiet: bool = False, verbose: bool = False) -> None:
    """Send the package's logs to stderr via rich; quiet shows warnings only."""
    _state["quiet"] = quiet
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = RichHandler(console=err_console, show_path=False, show_time=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("sopforecast")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # the libraries are chatty at INFO; their warnings still get through
    for name in ("statsforecast", "mlforecast", "hierarchicalforecast", "mlflow", "numba"):
        logging.getLogger(name).setLevel(logging.WARNING)


def is_quiet() -> bool:
    """Whether ``--quiet`` was given."""
    return _state["quiet"]


@contextmanager
def progress(enabled: bool | None = None):
    """A rich progress display on stderr; disabled (but still usable) when quiet."""
    disable = is_quiet() if enabled is None else not enabled
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=disable,
        transient=False,
    )
    with bar:
        yield bar
