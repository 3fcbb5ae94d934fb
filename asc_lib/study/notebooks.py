"""Housekeeping of executed notebooks: tidy progress bars, refresh the committed notebooks in place.

tqdm writes every refresh of a bar into a cell's stderr; an executed notebook would keep hundreds of
such lines, with timings that change on every run. :func:`tidy_progress` keeps each bar's final state
(for the report) or drops the bars (for the committed notebooks, whose outputs should be deterministic).

    python -m asc_lib.study.notebooks notebooks/*.ipynb     # what `make notebooks` runs
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbconvert.preprocessors import ExecutePreprocessor

from asc_lib.config import paths
from asc_lib.config.atomic import atomic_path

_BAR = re.compile(r"\d+%\|")


def _final_bars(text: str) -> str:
    """The last state of every progress bar in ``text`` (bars told apart by their description), in
    order of first appearance, plus every line that is not a bar."""
    order, bars = [], {}
    for segment in re.split(r"[\r\n]", text):
        if not segment.strip():
            continue
        if _BAR.search(segment):
            desc = segment.split(":", 1)[0]
            if desc not in bars:
                order.append(("bar", desc))
            bars[desc] = segment
        else:
            order.append(("line", segment))
    return "\n".join(bars[v] if kind == "bar" else v for kind, v in order) + "\n"


def _coalesce_streams(outputs: list) -> list:
    """Merge consecutive stream outputs of the same name (the kernel sends one per write)."""
    merged = []
    for out in outputs:
        if (out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1]["name"] == out["name"]):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(out)
    return merged


def tidy_progress(nb, keep_final: bool = True):
    """Collapse progress bars in stderr to their final state (``keep_final``) or remove them, in place."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in _coalesce_streams(cell.get("outputs", [])):
            if out.get("output_type") == "stream" and out.get("name") == "stderr" and not out["text"].strip():
                continue
            if out.get("output_type") == "stream" and out.get("name") == "stderr" and _BAR.search(out["text"]):
                text = _final_bars(out["text"])
                if not keep_final:
                    text = "".join(line + "\n" for line in text.splitlines() if not _BAR.search(line))
                if not text.strip():
                    continue
                out["text"] = text
            outputs.append(out)
        cell["outputs"] = outputs
    return nb


def relative_paths(nb):
    """Stream outputs (warnings name the library file they come from) with the project root's absolute
    path dropped, so that committed outputs do not depend on where the checkout lives."""
    root = f"{paths.ROOT}/"
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "stream":
                out["text"] = out["text"].replace(root, "")
    return nb


def _strip_timing(nb):
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
    return nb


def kernelspec(name: str = "python3") -> dict:
    """The notebook metadata of the installed kernel ``name`` (its display name as JupyterLab shows it), so
    that a committed notebook opens without being marked modified."""
    spec = KernelSpecManager().get_kernel_spec(name)
    return {"display_name": spec.display_name, "language": spec.language, "name": name}


def refresh(path: str | Path, timeout: int | None = None) -> Path:
    """Execute a committed notebook in place with its default parameters, drop progress bars and
    execution timestamps, and write it back atomically (a failing cell leaves the file untouched)."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(paths.NOTEBOOKS_DIR)}})
    _strip_timing(relative_paths(tidy_progress(nb, keep_final=False)))
    nb.metadata["kernelspec"] = kernelspec()
    with atomic_path(path, suffix=".ipynb") as tmp:
        nbformat.write(nb, tmp)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Re-execute committed notebooks in place (tidy outputs).")
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for nb in args.notebooks:
        print(f"refreshing {nb}", flush=True)
        refresh(nb)


if __name__ == "__main__":
    main()
