"""Layer 4, ``models``: the networks, with the official state-dict names so official checkpoints load
strictly, and their DCASE complexity.

- ``layers``      building blocks shared by CP-Mobile and EfficientAT
- ``cpmobile``    CP-Mobile (the DCASE2024 baseline network, the students)
- ``efficientat``  EfficientAT MobileNetV3 (mn04 / mn10), the teacher of Surkov's method
- ``passt``       PaSST through hear21passt: the single model and Werning's ensemble
- ``pretrained``  the one resolver of released checkpoints (data/weights, the shared folder, a download; SHA-256)
- ``complexity``  parameter and MAC counts (torchinfo) against the DCASE2024 limits

May import: ``features``, ``data``, ``config``.
"""
from asc_lib.models.cpmobile import CPMobile, build_cp_mobile
from asc_lib.models.efficientat import EfficientAT, build_efficientat, load_efficientat

__all__ = ["CPMobile", "EfficientAT", "build_cp_mobile", "build_efficientat", "load_efficientat"]
