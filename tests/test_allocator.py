"""The allocator setting applied when asc_lib is imported (asc_lib.config.allocator)."""
import platform
import subprocess
import sys

import pytest

CHECK = "import asc_lib, asc_lib.config.allocator as a; print(a.tune())"


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_importing_asc_lib_tunes_glibc_and_the_variable_opts_out():
    tuned = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert tuned.stdout.strip() == "True"
    kept = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True,
                          env={"ASC_TUNE_MALLOC": "0", "PATH": ""})
    assert kept.stdout.strip() == "False"
