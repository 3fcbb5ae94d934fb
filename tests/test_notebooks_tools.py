"""Tidying executed notebooks: progress bars collapse to their final state or disappear."""
import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

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
