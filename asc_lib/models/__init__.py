"""Models of the study, with the official state-dict names so official checkpoints load strictly."""
from .cpmobile import CPMobile, build_cp_mobile
from .efficientat import EfficientAT, build_efficientat, load_efficientat

__all__ = ["CPMobile", "EfficientAT", "build_cp_mobile", "build_efficientat", "load_efficientat"]
