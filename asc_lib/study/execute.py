"""One notebook run of the plan, as a workflow job: papermill into a temporary file, progress bars collapsed,
the notebook and its HTML page written atomically; on a machine with several GPUs, a device of its own.

    python -m asc_lib.study.execute NOTEBOOK OUT.ipynb OUT.html --parameters '{"split": 5}' --threads 1

A run that fails writes its executed notebook (with the error) and its page to ``failed/`` beside the outputs,
prints the error and exits with 1, so the engine marks the job failed and writes no output for it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
import papermill
from filelock import FileLock, Timeout
from nbconvert import HTMLExporter

from asc_lib.config import paths
from asc_lib.config.atomic import atomic_path, write_text
from asc_lib.study.notebooks import tidy_progress
from asc_lib.study.report import failed_dir

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def one_device(devices: list[str], lock_dir: Path, poll: float = 1.0):
    """Hold one of ``devices`` (GPU ids) for the duration: the first whose lock file in ``lock_dir`` is free.
    The engine starts at most as many GPU jobs as there are devices (``--resources gpu=N``), so a device is
    free when a job starts; a job waits if another still holds them all. Yields the id, or None when
    ``devices`` is empty (a CPU, or a cluster's job that already sees its own device)."""
    if not devices:
        yield None
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for device in devices:
            lock = FileLock(str(lock_dir / f"gpu-{device}.lock"))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                yield device
            finally:
                lock.release()
            return
        time.sleep(poll)


class _Failed(Exception):
    """A cell raised (the error line)."""


def render_html(notebook_path: Path, html_path: Path) -> None:
    """Render an executed notebook to a standalone HTML page (images embedded)."""
    body, _ = HTMLExporter(template_name="lab").from_filename(str(notebook_path))
    write_text(html_path, body)


def run(notebook: Path, out: Path, page: Path, parameters: dict, threads: int | None = None,
        devices: list[str] | None = None) -> bool:
    """Execute ``notebook`` with ``parameters`` into ``out`` and render it to ``page`` (both atomically).
    ``threads`` caps the kernel's CPU threads, ``devices`` are the GPUs to choose one from. Returns whether it succeeded; a failed
    run's notebook and page go to :func:`failed_dir`."""
    env = {}
    if threads:
        env.update({k: str(threads) for k in THREAD_VARIABLES})
    with one_device(devices or [], out.parent / ".devices") as device:
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        os.environ.update(env)  # the kernel papermill starts inherits this process's environment
        try:
            with atomic_path(out, suffix=".ipynb") as tmp:
                error = None
                try:
                    papermill.execute_notebook(str(notebook), str(tmp), parameters=parameters, kernel_name="python3",
                                               cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False, log_output=False)
                except papermill.PapermillExecutionError as err:
                    error = f"{err.ename}: {err.evalue}"
                nbformat.write(tidy_progress(nbformat.read(tmp, as_version=4), keep_final=True), tmp)
                if error:  # kept for reading, beside the outputs (the engine writes none for a failed job)
                    failed = failed_dir(out)
                    failed.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(tmp, failed / out.name)
                    render_html(failed / out.name, failed / page.name)
                    raise _Failed(error)
        except _Failed as failure:
            print(f"{notebook.stem} failed: {failure}\n(executed notebook: {failed_dir(out) / out.name})",
                  file=sys.stderr)
            return False
        render_html(out, page)
        for stale in (failed_dir(out) / out.name, failed_dir(out) / page.name):
            stale.unlink(missing_ok=True)
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Execute one notebook of the plan and render its page.")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("out", type=Path, help="the executed notebook (.ipynb)")
    parser.add_argument("page", type=Path, help="its HTML page")
    parser.add_argument("--parameters", default="{}", help="the notebook's parameters as JSON")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the kernel")
    parser.add_argument("--devices", default="", help="GPU ids to take one from, comma-separated")
    args = parser.parse_args(argv)
    devices = [d for d in args.devices.split(",") if d.strip()]
    ok = run(args.notebook, args.out, args.page, json.loads(args.parameters), args.threads, devices=devices)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
