"""asc_lib: the thin, tested library behind the DCASE 2024 Task 1 reproduction study.

One module per concern:

- ``allocator`` glibc's allocator tuned for large tensors (applied on import; ``ASC_TUNE_MALLOC=0`` opts out)
- ``paths``     where everything lives (project root, data, caches, reports, shared real data)
- ``params``    parameter profiles (``params/*.yaml``) and notebook-parameter validation
- ``atomic``    atomic writes of files, JSON and arrays
- ``provenance`` digests of code, data, modules and tensors (run fingerprints, cache keys) and safe loading
- ``dcase``     TAU22 / DCASE2024 metadata, splits, label encoding, device groups, datasets
- ``rows``      training rows kept on disk when data exceed the memory budget (``ASC_MEMORY_BUDGET_GB``)
- ``audio``     audio sources (one file per clip), decoding, resampling and the on-disk waveform cache
- ``audioset``  AudioSet ontology, class index and segment lists
- ``audioset_clips`` AudioSet audio in either layout (per-clip files, the anchors' HDF5 of mp3s), short and
  absent clips
- ``frontend``  the three log-mel front ends of the study
- ``synth``     the sound and device models behind the embedded mini dataset
- ``minidata``  the generator of the embedded mini-DCASE and mini-AudioSet
- ``explore``   tables for the data-exploration notebook
- ``plots``     seaborn / matplotlib figures
- ``report``    runs the notebooks headless and renders ``reports/index.html``
- ``complexity`` DCASE2024 parameter and MAC counts (torchinfo) and the limits
- ``models``    CP-Mobile and EfficientAT (official state-dict names)
"""

__version__ = "0.1.0"

from asc_lib.config import allocator

allocator.tune()
