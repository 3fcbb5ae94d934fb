"""Layer 1, ``config``: everything a run is configured by, and the plumbing every layer shares.

- ``paths``       where everything lives, resolved from the package (never the working directory), and the name
                  of every file and folder the study writes (runs, teachers, subsets, caches, weights)
- ``profiles``    data profiles (``params/<profile>.yaml``), the YAML reader, front-end presets, paper numbers
- ``recipes``     training recipes as typed data: the papers' settings, sources, the mini / smoke deviations and why
- ``register``    the deviation register: every difference from the papers, generated from ``params/``
- ``parameters``  the notebooks' papermill parameters: one typed schema (pydantic) per notebook
- ``progress``    tqdm progress bars with one switch per process (shown when someone watches)
- ``atomic``      atomic writes of files, JSON, CSV and arrays
- ``provenance``  digests of code, data and tensors (run fingerprints, cache keys) and safe loading
- ``allocator``   glibc's allocator tuned for large tensors
- ``kernel``      the environment's IPython kernel configuration (quiet under papermill; ``make install``)

May import: nothing else of ``asc_lib`` (it is the bottom layer).
The names below are the layer's public interface (``from asc_lib.config import profile_recipe``).
"""
from asc_lib.config import allocator, atomic, paths, progress, provenance, register
from asc_lib.config.parameters import NOTEBOOK_PARAMETERS, SCHEMAS, check_device, notebook_params
from asc_lib.config.profiles import (
                                     SPLITS,
                                     DataPaths,
                                     available_profiles,
                                     check_split,
                                     data_paths,
                                     frontend_presets,
                                     load_profile,
                                     load_yaml,
                                     paper_results,
)
from asc_lib.config.recipes import RECIPE_SETS, TextTable, load_recipe, profile_recipe, recipe_names, recipe_table, table1_labels

__all__ = ["allocator", "atomic", "paths", "progress", "provenance", "register", "NOTEBOOK_PARAMETERS", "SCHEMAS", "check_device",
           "notebook_params", "SPLITS", "DataPaths", "available_profiles", "check_split", "data_paths",
           "frontend_presets", "load_profile", "load_yaml", "paper_results", "RECIPE_SETS", "load_recipe",
           "profile_recipe", "recipe_names", "recipe_table", "table1_labels", "TextTable"]
