"""Layer 2, ``data``: reading, checking and caching the study's data; nothing here knows a model.

- ``dcase``           TAU22 / DCASE2024 metadata, the official splits, labels, devices and device groups
- ``audio``           audio sources, decoding, resampling, length fitting and the on-disk waveform cache
- ``rows``            rows kept on disk when data exceed the memory budget (``ASC_MEMORY_BUDGET_GB``)
- ``audioset``        AudioSet ontology, class index, segment lists and chosen subsets of them
- ``audioset_clips``  AudioSet audio in either layout (per-clip files, HDF5 of mp3s), short and absent clips
- ``unlabeled``       AudioSet segments cut into 1 s pieces for training, within the memory budget
- ``synth``           the sound and device models behind the embedded mini dataset
- ``minidata``        the generator of the mini-DCASE and mini-AudioSet (``python -m asc_lib.data.minidata``)

May import: ``config``.
"""
