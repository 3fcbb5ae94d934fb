"""Tidying executed notebooks: progress bars collapse to their final state or disappear."""
import ast

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from asc_lib.config import paths
from asc_lib.study.notebooks import tidy_progress


def _nb():
    bar = "train:  50%|#####     | 1/2 [00:01<00:01,  1.0s/epoch]"
    done = "train: 100%|##########| 2/2 [00:02<00:00,  1.0s/epoch, loss=0.5]"
    outputs = [new_output("stream", name="stderr", text=bar + "\r"),
               new_output("stream", name="stderr", text=done + "\n"),
               new_output("stream", name="stderr", text="warning: something real\n"),
               new_output("stream", name="stdout", text="2 epochs\n"),
               new_output("stream", name="stderr", text="\n")]
    return new_notebook(cells=[new_code_cell("fit()", outputs=outputs)]), done


def test_final_state_kept_for_the_report():
    nb, done = _nb()
    outputs = tidy_progress(nb, keep_final=True).cells[0].outputs
    assert [o.name for o in outputs] == ["stderr", "stdout"]
    assert outputs[0].text == done + "\nwarning: something real\n"


def test_bars_removed_for_committed_notebooks_but_real_messages_kept():
    nb, _ = _nb()
    outputs = tidy_progress(nb, keep_final=False).cells[0].outputs
    assert [(o.name, o.text) for o in outputs] == [("stderr", "warning: something real\n"), ("stdout", "2 epochs\n")]
    nbformat.validate(nb)


METHOD_NOTEBOOKS = ("02_mean_teacher", "03_domain_pruning", "03b_pruned_kd", "04_kd")


def test_each_method_notebook_shows_the_librarys_current_lines_of_its_method():
    """The method's cell (show.source of its loss and batches) is in each method notebook, and its committed
    output is the library's source as it is now (a changed loss without a refreshed notebook fails here)."""
    for name in METHOD_NOTEBOOKS:
        nb = nbformat.read(paths.ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        cells = [c for c in nb.cells if c.cell_type == "code" and "show.source(" in c.source]
        assert len(cells) == 1, name
        tree = ast.parse(cells[0].source)
        namespace: dict = {}
        exec(compile(ast.Module(tree.body[:-1], []), name, "exec"), namespace)
        now = eval(compile(ast.Expression(tree.body[-1].value), name, "eval"), namespace)
        committed = next(o for o in cells[0].outputs if o.output_type == "execute_result").data["text/markdown"]
        assert committed == now.data, f"notebooks/{name}.ipynb: the method's lines changed; refresh the notebook"
        assert "def loss" in committed or "def balanced_batches" in committed
