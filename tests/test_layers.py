"""Layers point one way: datasets -> cleansing -> models -> evaluation -> tracking (with the registered
POS model, `pos_model`) -> serving (the POS servers) and the dashboard.

Read from the source with `ast`, so an import hidden inside a function (to dodge a cycle at import
time) counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "workbench"

# the layers from the bottom up; a module may import its own layer and those below it only
LAYERS = ("datasets", "cleansing", "models", "evaluation")
# above every layer checked here: the pipeline's records, the tuning runs, serving and the UI
ABOVE_ALL = ("tracking", "tuning", "serving", "pos_server", "local_server", "dashboard")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, at any depth (functions included);
    relative imports resolved against `module`."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "workbench":  # `from workbench import evaluation` names the layer in the alias
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return found


def _layer_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "workbench" else None


def imports_of(module: str) -> list[tuple[str, str]]:
    """('path:line', absolute module name) of every import of a module (`tuning.py`), or of every
    module of a package (`models`)."""
    root = SOURCE / module
    found = []
    for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
        for line, name in imported_modules(path.read_text(), _module_name(path), path.name == "__init__.py"):
            found.append((f"{path.relative_to(SOURCE.parent)}:{line}", name))
    return found


def forbidden_imports(layer: str) -> list[str]:
    """'path:line imports name' for every import from a module of `layer` into a higher layer."""
    higher = set(LAYERS[LAYERS.index(layer) + 1 :]) | set(ABOVE_ALL)
    return sorted({f"{where} imports {name}" for where, name in imports_of(layer) if _layer_of(name) in higher})


@pytest.mark.parametrize("layer", ["datasets", "cleansing", "models"])
def test_lower_layers_never_import_higher_ones(layer):
    assert forbidden_imports(layer) == []


# the registry's layer: the MLflow records and the registered model's format, below what serves it
RECORDS = ("tracking", "tuning.py", "pos_model.py")
SERVING = ("serving", "pos_server", "local_server", "dashboard", "runner", "cli")


@pytest.mark.parametrize("module", RECORDS)
def test_tracking_never_imports_what_serves_the_model(module):
    imports = imports_of(module)
    assert imports
    assert [f"{where} imports {name}" for where, name in imports if _layer_of(name) in SERVING] == []


def test_the_check_sees_imports_inside_functions_and_relative_ones():
    source = (
        "import numpy\n"
        "def fit():\n"
        "    from workbench.evaluation.protocol import build_cases\n"
        "    from ..evaluation import metrics\n"
        "    from workbench import tracking\n"
    )
    names = [name for _, name in imported_modules(source, "workbench.models.champion")]
    assert "workbench.evaluation.protocol" in names
    assert "workbench.evaluation" in names  # `..` from workbench.models.champion is workbench
    assert "workbench.tracking" in names
    assert {_layer_of(n) for n in names} >= {"evaluation", "tracking"}


def test_tracking_records_runs_and_never_chooses():
    """Choosing (splits, windows, cases, which model serves a page) is `workbench.evaluation`'s;
    `workbench.tracking` only records runs and registers the chosen model, so it needs nothing of evaluation."""
    found = [f"{where} imports {name}" for where, name in imports_of("tracking") if _layer_of(name) == "evaluation"]
    assert found == []
    defined = {node.name for path in (SOURCE / "tracking").rglob("*.py") for node in ast.parse(path.read_text()).body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert "register_champion" in defined
    assert not defined & {"choose_champion", "default_split_time", "algorithm_hyperparameters"}
