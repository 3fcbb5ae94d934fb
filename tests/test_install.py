"""The environment definitions agree, and the project layout is the design card's."""
import re

import tomllib
import yaml

from asc_lib.config import paths


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {p for p in pip if not p.startswith("-e")}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"
    assert "python=3.11" in env["dependencies"]
    assert any(p.startswith("-e .") for p in pip), "environment.yml must install the project itself"


def test_pinned_versions():
    deps = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    all_deps = deps["dependencies"] + deps["optional-dependencies"]["dev"]
    assert "torch==2.11.0" in all_deps and "torchaudio==2.11.0" in all_deps
    assert "pytest<10" in all_deps
    required = {"jupyterlab", "papermill", "nbconvert", "ipykernel", "seaborn", "pandas", "pyyaml",
                "soundfile", "tqdm", "ipywidgets", "torchinfo", "nbval"}
    assert required <= {_name(d) for d in all_deps}


def test_design_card_layout():
    for name in ("notebooks", "asc_lib", "params", "reports", "tests"):
        assert (paths.ROOT / name).is_dir(), name
    for name in ("environment.yml", "README.md", "Makefile", "pyproject.toml", ".ci/run"):
        assert (paths.ROOT / name).is_file(), name
    assert "make test" in (paths.ROOT / ".ci" / "run").read_text()
