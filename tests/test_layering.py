"""Import layering of the package, read from the source with ``ast`` (nothing is imported).

* ``sopforecast.bench`` sits on top: benchmarks use the library, the library never uses them.
* A module uses another module's public API only: no ``from .x import _helper``.

Each module is its own test case, so a failure names the file; the message lists the line
and the name. These tests pass only once every listed import is fixed; there is no
allow-list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "sopforecast"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
MODULES = sorted(ROOT.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str, str | None]]:
    return _resolve(path.read_text(), _module_name(path), is_package=path.name == "__init__.py")


def _resolve(source: str, name: str, *, is_package: bool = False) -> list[tuple[int, str, str | None]]:
    """Every import in ``source`` (module ``name``) as ``(line, absolute module, name or None)``.

    Relative imports are resolved against the module's package; ``from pkg import name``
    yields both the module ``pkg`` with ``name`` and, as ``pkg.name``, the submodule it may be.
    Imports inside functions count too.
    """
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                found.append((node.lineno, module, alias.name))
                found.append((node.lineno, f"{module}.{alias.name}", None))
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT.parent))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _ids(paths: list[Path]) -> list[str]:
    return [_rel(p) for p in paths]


LIBRARY = [p for p in MODULES if not _within(_module_name(p), f"{PACKAGE}.bench")]


@pytest.mark.parametrize("path", LIBRARY, ids=_ids(LIBRARY))
def test_library_does_not_import_bench(path):
    bad = sorted(
        {(line, module) for line, module, _ in _imports(path) if _within(module, f"{PACKAGE}.bench")}
    )
    assert not bad, (
        f"{_rel(path)} imports the benchmarks: "
        + "; ".join(f"line {line}: {module}" for line, module in bad)
        + ". Move what it needs into the library (data/, forecasting/) and import it from there."
    )


@pytest.mark.parametrize("path", MODULES, ids=_ids(MODULES))
def test_no_private_names_across_modules(path):
    own = _module_name(path)
    bad = sorted(
        {
            (line, module, name)
            for line, module, name in _imports(path)
            if name is not None and _private(name) and _within(module, PACKAGE) and module != own
        }
    )
    assert not bad, (
        f"{_rel(path)} imports private names: "
        + "; ".join(f"line {line}: {name} from {module}" for line, module, name in bad)
        + ". Make the name public (documented, in __all__) in its module or keep the code where it is used."
    )


def test_the_walk_sees_the_package():
    # guards against a wrong ROOT making every case above vacuous
    assert len(MODULES) > 20
    names = {_module_name(p) for p in MODULES}
    assert {f"{PACKAGE}.cli", f"{PACKAGE}.bench.m3", f"{PACKAGE}.pipeline.sources"} <= names


def test_imports_resolve_relative_and_nested():
    source = (
        "import sopforecast.bench.m3\n"
        "from .. import bench\n"
        "def f():\n"
        "    from ..bench.m3 import smape\n"
        "    from .runner import _run, __version__\n"
    )
    found = set(_resolve(source, "sopforecast.pipeline.sources"))
    assert (1, "sopforecast.bench.m3", None) in found
    assert (2, "sopforecast.bench", None) in found
    assert (4, "sopforecast.bench.m3", "smape") in found
    assert (5, "sopforecast.pipeline.runner", "_run") in found
    assert (1, "sopforecast", "x") in set(_resolve("from . import x", "sopforecast", is_package=True))
    assert _private("_run") and not _private("__version__") and not _private("run")


STORE = [p for p in MODULES if _within(_module_name(p), f"{PACKAGE}.store")]
ABOVE_STORE = ("planning", "monitoring", "forecasting", "pipeline", "cli", "plan_cli", "override_cli")


@pytest.mark.parametrize("path", STORE, ids=_ids(STORE))
def test_the_store_is_a_repository(path):
    """The store moves rows in and out; summing, bucketing and replaying overrides are the
    planning layer's (``planning.service``), so the store imports nothing above it."""
    bad = sorted(
        {
            (line, module)
            for line, module, _ in _imports(path)
            if any(_within(module, f"{PACKAGE}.{layer}") for layer in ABOVE_STORE)
        }
    )
    assert not bad, (
        f"{_rel(path)} imports a layer above the store: "
        + "; ".join(f"line {line}: {module}" for line, module in bad)
        + ". Compute in planning.service and hand the store the rows to write."
    )


SUPPLY = [p for p in MODULES if _within(_module_name(p), f"{PACKAGE}.supply")]
# the supply package is pure: frames in, frames out; files, the store, MLflow are the edges'
_EDGES = (f"{PACKAGE}.store", f"{PACKAGE}.pipeline", "mlflow", "sqlalchemy")
_FILE_IO = {"read_source", "write_frame", "stage_frame", "read_file"}


def _edge(module: str, name: str | None) -> bool:
    return any(_within(module, e) for e in _EDGES) or (module == f"{PACKAGE}.data.io" and name in _FILE_IO)


@pytest.mark.parametrize("path", SUPPLY, ids=_ids(SUPPLY))
def test_supply_reads_no_files_store_or_mlflow(path):
    bad = sorted({(line, module) for line, module, name in _imports(path) if _edge(module, name)})
    assert not bad, f"{_rel(path)} imports an edge module: " + ", ".join(f"line {n}: {m}" for n, m in bad)
