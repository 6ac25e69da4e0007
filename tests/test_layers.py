"""The package's layers: every import goes to the same layer or one below it, never back up.

Layers, bottom-up: the foundation modules at the package root (paths, files, validation, hyperparameters, presets,
paper, plots, seeding); `envs`; `theory` (exact tiny models, on the foundation only); `learning`; `training`;
`analysis`; and the entry points on top (the package root, `__main__`, `series`, `notebook_kernels`). Imports inside
functions count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dials_lib

PACKAGE = Path(dials_lib.__file__).parent
FOUNDATION = {"paths", "files", "validation", "hyperparameters", "presets", "paper", "plots", "seeding"}
LAYERS = {"envs": 1, "theory": 1, "learning": 2, "training": 3, "analysis": 4}
TOP = {"__init__", "__main__", "series", "notebook_kernels"}


def module_name(path: Path) -> str:
    """Dotted name of a module file of the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The layer of a `dials_lib...` module (ValueError for one that belongs to none)."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in TOP:
        return 5
    if parts[0] in LAYERS:
        return LAYERS[parts[0]]
    if parts[0] in FOUNDATION:
        return 0
    raise ValueError(f"{module} belongs to no layer: add it to tests/test_layers.py")


def imports(path: Path) -> set[str]:
    """The `dials_lib` modules a file imports (a `from package import module` counts as that module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("dials_lib")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dials_lib"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists() or \
                    (PACKAGE.parent / Path(*candidate.split("."))).is_dir()
                found.add(candidate if is_module else node.module)
    return found


FILES = sorted(PACKAGE.rglob("*.py"))


def upward_imports(path: Path, module: str) -> list[str]:
    """The imports of the file at `path`, taken as the module `module`, that go to a higher layer than its own."""
    own = layer(module)
    return [target for target in imports(path) if target != "dials_lib" and layer(target) > own]


@pytest.mark.parametrize("path", FILES, ids=[module_name(p) for p in FILES])
def test_no_import_runs_back_up(path: Path) -> None:
    upward = upward_imports(path, module_name(path))
    assert not upward, f"{module_name(path)} (layer {layer(module_name(path))}) imports from higher layers: {upward}"


def test_the_checker_reports_an_upward_import(tmp_path: Path) -> None:
    """A learning module importing from training, at the top or inside a function, is reported."""
    module = tmp_path / "upward.py"
    module.write_text("from dials_lib.learning import ppo\n\n\ndef late():\n"
                      "    from dials_lib.training.dials import train\n    import dials_lib.analysis.plans\n")
    assert sorted(upward_imports(module, "dials_lib.learning.upward")) == ["dials_lib.analysis.plans",
                                                                         "dials_lib.training.dials"]
    assert upward_imports(module, "dials_lib.analysis.upward") == []  # the same imports, seen from the top layer


def test_the_layers_are_ordered(tmp_path: Path) -> None:
    """The layer function places modules as the module docstring says."""
    assert layer("dials_lib.training.dials") > layer("dials_lib.learning.ppo") > layer("dials_lib.envs.traffic")
    assert layer("dials_lib.seeding") == 0 and layer("dials_lib.series") == 5
    with pytest.raises(ValueError, match="belongs to no layer"):
        layer("dials_lib.somewhere_new")
    assert imports(PACKAGE / "training" / "dials.py") >= {"dials_lib.learning.ppo_loop",
                                                          "dials_lib.training.run_session"}
    assert imports(PACKAGE / "training" / "run_session.py") >= {"dials_lib.training.parallel"}
