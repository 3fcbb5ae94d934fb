"""The notebooks' kernel, quiet under papermill: ``python -m asc_lib.config.kernel`` (run by ``make install``)
writes an IPython kernel configuration into the environment (``<sys.prefix>/etc/ipython``), which every
IPython kernel started from this environment reads.

ipykernel 7 warns on every start that the kernel "is running over TCP without encryption". JupyterLab and
papermill start it on the loopback interface (127.0.0.1), as they always have; papermill has no switch for
jupyter_client's CurveZMQ keys (``KernelManager.transport_encryption``), so a plain ``papermill`` run, as
the README shows it, would print the warning before every notebook. The configuration drops exactly that
log record and nothing else.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asc_lib.config.atomic import atomic_path

CONFIG_NAME = "ipython_kernel_config.py"
MARKER = "# asc_lib.config.kernel"
SILENCED = "Kernel is running over TCP without encryption"

CONFIG = f'''{MARKER}: written by `make install` (python -m asc_lib.config.kernel); see that module.
import logging


class _LoopbackTcpNotice(logging.Filter):
    """Drops ipykernel's start-up notice that the loopback connection is not encrypted."""

    def filter(self, record):
        return {SILENCED!r} not in record.getMessage()


logging.getLogger("IPKernelApp").addFilter(_LoopbackTcpNotice())
'''


def config_path(prefix: str | Path | None = None) -> Path:
    """Where IPython kernels of the environment at ``prefix`` (default: this one) read their configuration."""
    return Path(prefix or sys.prefix) / "etc" / "ipython" / CONFIG_NAME


def install(prefix: str | Path | None = None) -> Path:
    """Write :data:`CONFIG` (atomically; a file written by someone else is left alone and named)."""
    path = config_path(prefix)
    if path.is_file() and not path.read_text().startswith(MARKER):
        raise FileExistsError(f"{path} exists and is not the study's: add the filter of {__name__} to it by hand")
    if not path.is_file() or path.read_text() != CONFIG:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".py") as tmp:
            Path(tmp).write_text(CONFIG)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Install the study's IPython kernel configuration.")
    parser.add_argument("--prefix", default=None, help="environment prefix (default: this Python's)")
    print(install(parser.parse_args(argv).prefix))


if __name__ == "__main__":
    main()
