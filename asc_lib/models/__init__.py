"""Models of the study, with the official state-dict names so official checkpoints load strictly."""
from asc_lib.models.cpmobile import CPMobile, build_cp_mobile
from asc_lib.models.efficientat import EfficientAT, build_efficientat, load_efficientat

__all__ = ["CPMobile", "EfficientAT", "build_cp_mobile", "build_efficientat", "load_efficientat"]
