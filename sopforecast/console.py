"""Terminal output: logging through rich, progress bars that ``--quiet`` turns off.

Quiet or not is not kept here: :func:`setup_logging` sets the level of the package's
logger, :func:`is_quiet` reads it back, and :func:`progress` takes the flag explicitly
(or, without one, asks :func:`is_quiet`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, ConsoleDimensions
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = ["UNBOUNDED_WIDTH", "console", "err_console", "setup_logging", "progress", "is_quiet"]

# a pipe or a file is not a screen: as wide as the longest line, so nothing is cut
UNBOUNDED_WIDTH = 1_000_000


class _Console(Console):
    """A rich console that wraps only on a terminal.

    Without a terminal rich lays text out at ``$COLUMNS`` or 80 columns, so a table piped
    to a file or ``grep`` gets its cells ellipsized (``Person… Care/S…``) and its lines
    wrapped; here every line keeps its full length instead.
    """

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(UNBOUNDED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


console = _Console()
err_console = Console(stderr=True)

_PACKAGE_LOGGER = "sopforecast"


def setup_logging(*, quiet: bool = False, verbose: bool = False) -> None:
    """Send the package's logs to stderr via rich; quiet shows warnings only.

    Parameters
    ----------
    quiet : bool, default False
        Warnings and errors only (and no progress bars, see :func:`is_quiet`).
    verbose : bool, default False
        Debug messages too.
    """
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = RichHandler(console=err_console, show_path=False, show_time=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger(_PACKAGE_LOGGER)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # the libraries are chatty at INFO; their warnings still get through
    for name in ("statsforecast", "mlforecast", "hierarchicalforecast", "mlflow", "numba", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def is_quiet() -> bool:
    """Whether the package's logger was set to warnings only (``--quiet``).

    An unconfigured logger (level NOTSET) is not quiet.
    """
    level = logging.getLogger(_PACKAGE_LOGGER).level
    return level > logging.INFO


@contextmanager
def progress(enabled: bool | None = None) -> Iterator[Progress]:
    """A rich progress display on stderr; disabled (but still usable) when not enabled.

    Parameters
    ----------
    enabled : bool, optional
        Show the bars; default: unless :func:`is_quiet`.
    """
    show = not is_quiet() if enabled is None else enabled
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not show,
        transient=False,
    )
    with bar:
        yield bar
