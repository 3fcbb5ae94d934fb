"""The environment's kernel configuration: papermill runs print no kernel notice, and nothing else is hidden."""
import logging

import pytest

from asc_lib.config import kernel, paths


def test_install_writes_the_filter_into_the_environment(tmp_path):
    path = kernel.install(tmp_path)
    assert path == tmp_path / "etc" / "ipython" / "ipython_kernel_config.py" and path.read_text() == kernel.CONFIG
    assert kernel.install(tmp_path) == path  # idempotent
    path.write_text("c.IPKernelApp.log_level = 'DEBUG'\n")
    with pytest.raises(FileExistsError, match="not the study's"):
        kernel.install(tmp_path)


def test_the_filter_drops_only_the_tcp_notice():
    namespace = {}
    logger = logging.getLogger("IPKernelApp")
    before = list(logger.filters)
    try:
        exec(compile(kernel.CONFIG, "ipython_kernel_config.py", "exec"), namespace)
        (added,) = [f for f in logger.filters if f not in before]
    finally:
        logger.filters[:] = before

    def record(message):
        return logging.LogRecord("IPKernelApp", logging.WARNING, __file__, 1, message, None, None)

    assert not added.filter(record("Kernel is running over TCP without encryption. All communication ..."))
    assert added.filter(record("Kernel died"))


def test_make_install_installs_it():
    assert "python -m asc_lib.config.kernel" in (paths.ROOT / "Makefile").read_text()
