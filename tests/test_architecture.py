"""The library's architecture holds (asc_lib/README.md): layers import only the layers below them, no
package's modules import each other in a cycle (import-linter, the contracts in pyproject.toml), imports
sit at module level, and each layer says what it holds and what it may import."""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from asc_lib.config import paths

LINT = Path(sys.executable).with_name("lint-imports")
LAYERS = ("config", "data", "features", "models", "training", "methods", "study")   # bottom to top
LAZY = ("hear21passt",)   # imported inside functions on purpose: ~5 s of start-up (timm), commented there


def _lint(cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True, env=env)


def test_the_layer_and_cycle_contracts_hold():
    done = _lint(paths.ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def _copy_as(tmp_path: Path, name: str) -> Path:
    """The package copied under another name (imports renamed) with the project's contracts for it, so
    that a violation can be planted without touching the real package."""
    target = tmp_path / name
    shutil.copytree(paths.PACKAGE_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "resources"))
    for path in target.rglob("*.py"):
        path.write_text(re.sub(r"\basc_lib\b", name, path.read_text()))
    contracts = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    lines = ["[importlinter]", f"root_package = {name}"]
    for i, contract in enumerate(contracts):
        lines.append(f"[importlinter:contract:{i}]")
        for key, value in contract.items():
            if key == "ancestors":
                value = [name]
            if key == "containers":
                value = [name]
            text = "\n    " + "\n    ".join(value) if isinstance(value, list) else str(value)
            lines.append(f"{key} = {text}")
    (tmp_path / ".importlinter").write_text("\n".join(lines) + "\n")
    return target


@pytest.mark.parametrize("plant, broken", [
    (("config/paths.py", "from {pkg}.study import results  # noqa\n"), "Layers"),     # a lower layer imports a higher one
    (("data/audioset.py", "from {pkg}.training import loop  # noqa\n"), "Layers"),
    (("methods/pruning.py", "from {pkg}.methods import registry  # noqa\n"), "cycles"),  # registry -> ... -> pruning
])
def test_the_contracts_catch_a_planted_violation(tmp_path, plant, broken):
    name = "archcheck_pkg"
    target = _copy_as(tmp_path, name)
    assert _lint(tmp_path, {**os.environ, "PYTHONPATH": str(tmp_path)}).returncode == 0  # the copy itself is clean
    file, line = plant
    path = target / file
    text = path.read_text()
    anchor = text.index("\n\n", text.index("from __future__"))  # after the first import
    path.write_text(text[:anchor + 1] + line.format(pkg=name) + text[anchor + 1:])
    done = _lint(tmp_path, {**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode != 0
    assert re.search(rf"{broken}[^\n]*BROKEN", done.stdout), done.stdout[-2000:]


def _modules():
    return sorted(p for p in paths.PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def test_imports_sit_at_module_level():
    """No import inside a function hides who depends on whom; the one lazy import (PaSST's package, which
    pulls in timm) says why on its line."""
    hidden = []
    for path in _modules():
        source = path.read_text()
        tree = ast.parse(source)
        top = {id(node) for node in tree.body}
        lines = source.splitlines()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                if module.startswith(LAZY) and "lazy" in lines[node.lineno - 1]:
                    continue
                hidden.append(f"{path.relative_to(paths.ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not hidden, "imports inside functions:\n" + "\n".join(hidden)


def test_each_layer_says_what_it_holds_and_may_import():
    packages = sorted(p.parent.name for p in paths.PACKAGE_DIR.glob("*/__init__.py"))
    assert packages == sorted(LAYERS)
    assert not [p.name for p in paths.PACKAGE_DIR.glob("*.py") if p.name != "__init__.py"], \
        "every module belongs to a layer"
    for index, layer in enumerate(LAYERS):
        doc = ast.get_docstring(ast.parse((paths.PACKAGE_DIR / layer / "__init__.py").read_text())) or ""
        assert "May import" in doc, f"asc_lib/{layer}/__init__.py: the docstring does not say what it may import"
        for module in (paths.PACKAGE_DIR / layer).iterdir():
            if module.name != "__init__.py" and (module.suffix == ".py" or (module / "__init__.py").is_file()):
                assert f"``{module.stem}``" in doc, f"asc_lib/{layer}/__init__.py does not list {module.stem}"
        allowed = doc.split("May import", 1)[1]
        assert all(f"``{lower}``" in allowed for lower in LAYERS[:index]), (layer, allowed)
    readme = (paths.PACKAGE_DIR / "README.md").read_text()
    assert all(f"{layer}/" in readme for layer in LAYERS)
