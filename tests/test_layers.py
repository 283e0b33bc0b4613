"""The package's layers import downward only: modalities, datasets/distributions, losses, models,
training, evaluation, plots, runs, experiments, cli (a helper needed by two layers lives in the
lower). Checked on every ``import`` of every module, those inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pixyz_zoo"

#: the rank of each top-level unit of the package (a module or a subpackage); a unit may import
#: units of its own rank or lower
LAYERS = [
    ["__init__", "checks", "modalities", "markdown", "progress", "distributed"],
    ["datasets", "distributions"],
    ["losses"],
    ["models"],
    ["training"],
    ["evaluation"],
    ["plots"],
    ["run_spec", "runs", "refinement_runs"],
    ["experiments"],
    ["cli", "__main__"],
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str:
    """``pixyz_zoo.evaluation.multimodal`` -> ``evaluation``; ``pixyz_zoo`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_units(path: Path, root: Path = PACKAGE) -> dict[str, int]:
    """The units of the package at ``root`` that its module at ``path`` imports (``from pixyz_zoo
    import plots`` counts as ``plots``), by unit, with the line of the first such import."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for name in names:
            if name == "pixyz_zoo" or not name.startswith("pixyz_zoo."):
                continue
            unit = _unit(name)
            if (root / unit).is_dir() or (root / f"{unit}.py").is_file():
                found.setdefault(unit, node.lineno)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    units = modules | {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert units == set(RANK), f"give each of {sorted(units ^ set(RANK))} a layer in LAYERS"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_go_downward(path):
    own = _unit(_module_name(path, PACKAGE))
    upward = {
        unit: line for unit, line in imported_units(path).items() if unit != own and RANK[unit] > RANK[own]
    }
    assert not upward, f"{path.name} ({own}) imports higher layers: " + ", ".join(
        f"{unit} (line {line})" for unit, line in upward.items()
    )


def test_the_check_sees_upward_imports(tmp_path):
    """A lazy absolute import inside a function and a relative one are both found."""
    root = tmp_path / "pixyz_zoo"
    (root / "evaluation").mkdir(parents=True)
    (root / "experiments").mkdir()
    (root / "plots.py").write_text("")
    module = root / "evaluation" / "tables.py"
    module.write_text("def table():\n    from pixyz_zoo.experiments import details\n\nfrom .. import plots\n")
    assert imported_units(module, root) == {"experiments": 2, "plots": 4}
