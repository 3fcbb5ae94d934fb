"""asc_lib: the thin, tested library behind the DCASE 2024 Task 1 reproduction study.

Its subpackages are its layers, each importing only those below it (``asc_lib/README.md`` has the map):
``config`` < ``data`` < ``features`` < ``models`` < ``training`` < ``methods`` < ``study``.
"""

__version__ = "0.1.0"

from asc_lib.config import allocator

allocator.tune()
