"""Models of the study, with the official state-dict names so official checkpoints load strictly."""
from .cpmobile import CPMobile, build_cp_mobile

__all__ = ["CPMobile", "build_cp_mobile"]
