"""Library warnings a planner can do nothing about, summarised in the package's own words.

Model fits on flat or near-constant series make numpy divide by zero inside statsforecast,
mlforecast warns when lags leave features empty, MLflow asks for type hints on ``predict``.
Printed as they come, hundreds of such lines bury the messages that matter. While
:func:`library_warnings` is active, these known kinds are collected; at exit each kind is
logged as ONE line at INFO level, with its count and, where the warning names series, a few
ids. Every other warning is re-emitted unchanged at exit, so nothing is swallowed.

Worker processes
----------------
statsforecast fits in worker processes when ``n_jobs > 1``, and a worker's warnings never
reach this process's :mod:`warnings` module:

* spawned workers (``spawn``/``forkserver``: macOS, Windows, Linux from Python 3.14) start a
  fresh interpreter that reads ``PYTHONWARNINGS`` and prints its warnings to stderr.
  :func:`quiet_worker_warnings` therefore sets ``PYTHONWARNINGS`` for its duration to ignore
  exactly the known kinds: by category and start of message, as narrow as that syntax allows
  (its module field must name a module exactly, e.g. ``statsforecast.ets``, not a package).
  A ``PYTHONWARNINGS`` the user set keeps precedence over ours.
* forked workers (Linux up to Python 3.13) copy this process's warning state. A plain
  ``catch_warnings(record=True)`` would then record into the worker's copy of the list, lost
  when the worker ends, swallowing every warning. Instead the capture checks the process
  id: in a worker it drops the known kinds and shows all others as the worker would have.

The counts cover this process only: what workers ignored is not counted. Like
:func:`warnings.catch_warnings` and :data:`os.environ`, these context managers are
process-wide; use them around a forecast run, not from several threads at once.
"""

from __future__ import annotations

import ast
import logging
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import format_examples

__all__ = ["library_warnings", "quiet_worker_warnings", "WarningSummary"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # MLflow colours its warnings
_SHOW = 3


@dataclass(frozen=True)
class _Kind:
    """One known kind of library warning and how to say it in our words."""

    name: str
    category: type[Warning]
    pattern: re.Pattern
    summarise: Callable[[list[re.Match]], str]
    prefixes: tuple[str, ...] = ()  # starts of message for PYTHONWARNINGS (none: not expressible)
    source: str = ""  # a part of the warning's file path it must come from ("" = any)


def _numeric(matches: list[re.Match]) -> str:
    names = {"divide by zero": "division by zero"}
    kinds = Counter(f"{names.get(m[1], m[1])} in {m[2]}" for m in matches)
    detail = ", ".join(f"{k} ×{n}" for k, n in kinds.most_common(_SHOW))
    more = ", ..." if len(kinds) > _SHOW else ""
    return (
        f"Model fits raised {len(matches)} numeric warning(s) ({detail}{more}), as flat or "
        "near-constant series do; the fits carried on, and a fit that failed used the "
        "fallback model"
    )


def _null_features(matches: list[re.Match]) -> str:
    cols = sorted({c.strip() for m in matches for c in m[1].split(",")})
    more = ", ..." if len(cols) > _SHOW else ""
    return (
        f"LightGBM met empty feature values {len(matches)} time(s) while forecasting ahead "
        f"(in {', '.join(cols[:_SHOW])}{more}), where a short history leaves lags without "
        "values; it treats them as missing"
    )


def _dropped_series(matches: list[re.Match]) -> str:
    ids, cut = [], False
    for m in matches:
        text = re.sub(r",\s*\.\.\.\s*$", "", m[1])  # mlforecast shortens long lists with ...
        cut |= text != m[1]
        try:
            found = [str(i) for i in ast.literal_eval(f"[{text}]")]
        except (ValueError, SyntaxError):
            found = [s.strip(" '\"") for s in text.split(",")]
        ids += [i for i in found if i not in ids]
    count = f"{'at least ' if cut else ''}{len(ids)}"
    return (
        f"LightGBM left {count} series out of its training in {len(matches)} fit(s): too "
        f"short for its lags, their features are all empty (e.g. {format_examples(ids, _SHOW)})"
    )


def _type_hints(matches: list[re.Match]) -> str:
    return (
        f"MLflow noted {len(matches)} time(s) that the saved model's predict method has no "
        "type hints it can check; harmless, the model takes a data frame"
    )


def _mlflow_notes(matches: list[re.Match]) -> str:
    return (
        f"MLflow made {len(matches)} remark(s) while logging the run (input examples, dataset "
        "sources); informational, the run and model are complete"
    )


# the library warnings library_warnings summarises; all others pass through unchanged
_KNOWN: tuple[_Kind, ...] = (
    _Kind(
        "numeric",
        RuntimeWarning,
        re.compile(r"(divide by zero|invalid value|overflow|underflow) encountered in (\w+)"),
        _numeric,
        prefixes=tuple(f"{w} encountered" for w in ("divide by zero", "invalid value", "overflow")),
    ),
    _Kind(
        "null_features",
        UserWarning,
        re.compile(r"Found null values in (.+?)\.?$"),
        _null_features,
        prefixes=("Found null values in",),
    ),
    _Kind(
        "dropped_series",
        UserWarning,
        re.compile(
            r"The following series were dropped completely due to the transformations "
            r"and features: \[(.*)\]\."
        ),
        _dropped_series,
        prefixes=("The following series were dropped completely",),
    ),
    _Kind("type_hints", UserWarning, re.compile(r"type hint", re.I), _type_hints, source="mlflow"),
    _Kind("mlflow_notes", UserWarning, re.compile(r"\S"), _mlflow_notes, source="mlflow"),
)


@dataclass
class WarningSummary:
    """What :func:`library_warnings` collected: counts per kind and the lines it logged.

    ``counts`` and ``lines`` are filled at exit, for a run report or MLflow tags.
    """

    counts: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def _classify(msg: warnings.WarningMessage) -> tuple[_Kind, re.Match] | None:
    text = _ANSI.sub("", str(msg.message))
    for kind in _KNOWN:
        if not issubclass(msg.category, kind.category) or kind.source not in str(msg.filename):
            continue
        found = kind.pattern.search(text)
        if found:
            return kind, found
    return None


@contextmanager
def quiet_worker_warnings() -> Iterator[None]:
    """Make worker processes started meanwhile ignore the known library warnings.

    Sets ``PYTHONWARNINGS`` (read by every new Python process at start-up) to ignore the
    known kinds that fits in workers raise (numpy's numeric warnings, mlforecast's empty
    features) by category and start of message. A value the user set comes after ours, so
    it keeps precedence; the previous value is restored at exit.
    """
    entries = [f"ignore:{p}:{k.category.__name__}" for k in _KNOWN for p in k.prefixes]
    before = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join([*entries, *([before] if before else [])])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = before


@contextmanager
def library_warnings(
    logger: logging.Logger | None = None, *, quiet_workers: bool = True
) -> Iterator[WarningSummary]:
    """Collect known library warnings during forecasting; log one line per kind at exit.

    Parameters
    ----------
    logger : logging.Logger, optional
        Where the summary lines go (INFO; where each kind came from at DEBUG); default
        this module's logger.
    quiet_workers : bool, default True
        Also apply :func:`quiet_worker_warnings`, for statsforecast's worker processes.

    Yields
    ------
    WarningSummary
        Filled at exit with the count and the logged line of each kind seen.
    """
    log = logger if logger is not None else logging.getLogger(__name__)
    summary = WarningSummary()
    seen: list[warnings.WarningMessage] = []
    main_pid = os.getpid()

    def capture(message, category, filename, lineno, file=None, line=None):
        msg = warnings.WarningMessage(message, category, filename, lineno, file, line)
        if os.getpid() == main_pid:
            seen.append(msg)
        elif _classify(msg) is None:
            # a forked worker: its copy of `seen` dies with it, so show the warning as an
            # unfiltered worker would (the parent's own hooks may record into a list too)
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # count every occurrence, not one per place
            warnings.showwarning = capture  # restored by catch_warnings
            if quiet_workers:
                with quiet_worker_warnings():
                    yield summary
            else:
                yield summary
    finally:
        _report(seen, summary, log)


def _report(seen: list[warnings.WarningMessage], summary: WarningSummary, log: logging.Logger) -> None:
    groups: dict[str, tuple[_Kind, list[re.Match], list[str]]] = {}
    for msg in seen:
        known = _classify(msg)
        if known is None:
            warnings.warn_explicit(msg.message, msg.category, msg.filename, msg.lineno)
            continue
        kind, found = known
        _, matches, origins = groups.setdefault(kind.name, (kind, [], []))
        matches.append(found)
        origin = f"{'/'.join(Path(msg.filename).parts[-2:])}:{msg.lineno}"  # package/module.py
        if origin not in origins:
            origins.append(origin)
    for name, (kind, matches, origins) in groups.items():
        line = kind.summarise(matches)
        summary.counts[name] = len(matches)
        summary.lines.append(line)
        log.info("%s", line)
        log.debug("%s warnings came from %s", name, ", ".join(origins[:_SHOW]))
