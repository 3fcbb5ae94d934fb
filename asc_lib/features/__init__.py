"""Layer 3, ``features``: what turns waveforms into network inputs.

- ``frontend``  the study's log-mel front ends (presets in ``params/frontends.yaml``), torchaudio-based
- ``augment``   roll, Freq-MixStyle, masking and MixUp, batched on the training device

May import: ``data``, ``config``.
"""
