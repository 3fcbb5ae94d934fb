"""PaSST teachers through the field's own package, ``hear21passt`` (no reimplementation).

:class:`PaSST` pairs a hear21passt network with hear21passt's own mel front end (``AugmentMelSTFT``,
the efficientat preset: 32 kHz, 128 mels, window 800, hop 320) so that it maps raw 32 kHz waveforms to
527 AudioSet logits. :func:`load_passt` loads official weights from a local file or from the authors'
release URL, strictly. :class:`TeacherEnsemble` averages the logits of several teachers (Werning's
teacher is PaSST's nine-checkpoint ``ensemble_many``, listed in ``params/models.yaml``).
"""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch
from torch import nn

from asc_lib.config import load_yaml
from asc_lib.config.paths import PARAMS_DIR
from asc_lib.config.provenance import load_state, load_torch
from asc_lib.models.pretrained import record_hash, resolve_file, verify_sha256

DEFAULT_ARCH = "passt_s_swa_p16_128_ap476"
SAMPLE_RATE = 32000
RELEASES = "https://github.com/kkoutini/PaSST/releases/download/"
# hear21passt's constructor of the PaSST-S network (patch 16, 128 mels, 998 frames): the network of every
# PaSST-S AudioSet release, whatever its stride, including those hear21passt has no name for.
PASST_S = "passt_s_swa_p16_128_ap476"


@contextlib.contextmanager
def _quiet():
    """hear21passt prints model summaries and shapes on build and on its first forward pass."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def release_url(arch: str, url: str | None = None) -> str:
    """The authors' release URL of ``arch``'s AudioSet weights: ``url`` (the ensemble entry's, checked to
    be one of the authors' releases) or hear21passt's model table."""
    if url is None:
        from hear21passt.models.passt import default_cfgs  # lazy: hear21passt loads timm (~5 s)

        url = default_cfgs.get(arch, {}).get("url", "")
        if not url.startswith(RELEASES):
            raise ValueError(f"hear21passt lists no PaSST release for arch {arch!r}; give its url or a local "
                             "weights file")
    if not url.startswith(RELEASES):
        raise ValueError(f"{arch}: {url!r} is not one of the PaSST authors' releases ({RELEASES}...)")
    return url


def network_arch(arch: str) -> str:
    """The hear21passt constructor that builds ``arch``: itself when hear21passt knows the name, the PaSST-S
    network for the other PaSST-S AudioSet releases (``passt_s_…_p16_…128_ap…``: same network, own stride)."""
    from hear21passt.models.passt import default_cfgs  # lazy: hear21passt loads timm (~5 s)

    if arch in default_cfgs or arch.startswith("passt_deit"):
        return arch
    if arch.startswith("passt_s_") and "_p16_" in arch and "_128_" in arch:
        return PASST_S
    raise ValueError(f"hear21passt cannot build PaSST arch {arch!r}")


class PaSST(nn.Module):
    """A hear21passt PaSST with its mel front end: ``(batch, samples)`` at 32 kHz -> ``(batch, 527)`` logits."""

    sample_rate = SAMPLE_RATE

    def __init__(self, arch: str = DEFAULT_ARCH, n_classes: int = 527, fstride: int = 10, tstride: int = 10,
                 input_tdim: int = 998):
        super().__init__()
        from hear21passt.models.passt import get_model  # lazy: hear21passt loads timm (~5 s)
        from hear21passt.models.preprocess import AugmentMelSTFT  # lazy: hear21passt loads timm (~5 s)

        self.arch = arch
        net_arch = network_arch(arch)
        with _quiet():
            self.mel = AugmentMelSTFT(n_mels=128, sr=SAMPLE_RATE, win_length=800, hopsize=320, n_fft=1024,
                                      freqm=0, timem=0, htk=False, fmin=0.0, fmax=None, norm=1,
                                      fmin_aug_range=10, fmax_aug_range=2000)
            self.net = get_model(arch=net_arch, pretrained=False, n_classes=n_classes, fstride=fstride,
                                 tstride=tstride, input_tdim=input_tdim)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        with _quiet():
            logits, _features = self.net(self.mel(waves.float()).unsqueeze(1))
        return logits


def download_release(arch: str, sha256: str | None = None, url: str | None = None) -> Path:
    """The release weights of ``arch``: ``data/weights/``, the shared folder or a download from the authors'
    release URL, checked against ``sha256`` (:func:`asc_lib.models.pretrained.resolve_file`)."""
    url = release_url(arch, url)
    return Path(resolve_file(Path(url).name, url, sha256, arch).path)


def load_passt(weights: str | Path | None = None, arch: str = DEFAULT_ARCH, sha256: str | None = None,
               url: str | None = None, **kwargs) -> PaSST:
    """A :class:`PaSST` in eval mode with official weights loaded strictly and safely (``weights_only``).

    ``weights`` is a local state-dict file, ``"release"`` (downloaded once from the authors' release URL
    into ``data/weights/``, from ``url`` or hear21passt's table; needs network unless the file is already
    there) or None (random initialisation, for tests and dry runs).
    ``sha256``, when given, must match the file.
    """
    model = PaSST(arch, **kwargs)
    if weights is not None:
        from hear21passt.models.passt import checkpoint_filter_fn  # lazy: hear21passt loads timm (~5 s)

        if str(weights) == "release":
            path, source = download_release(arch, sha256, url), release_url(arch, url)
        else:
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"PaSST weights not found: {path}")
            source = str(path)
            if sha256:
                verify_sha256(path, sha256)
        state = load_torch(path, f"PaSST {arch} weights")
        try:
            state = checkpoint_filter_fn(state, model.net)
        except (RuntimeError, KeyError, ValueError, AttributeError, TypeError) as err:
            raise ValueError(f"{source}: not a {arch} state dict ({type(err).__name__}: {err})") from None
        load_state(model.net, state, source, f"a PaSST {arch} state dict")
        record_hash(path)  # loaded: its hash may now be recorded (trust on first use)
    return model.eval()


class TeacherEnsemble(nn.Module):
    """Averages the logits of its members (each maps the same waveforms to logits)."""

    def __init__(self, members):
        super().__init__()
        if not members:
            raise ValueError("a teacher ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        rates = {getattr(m, "sample_rate", None) for m in members}
        self.sample_rate = rates.pop() if len(rates) == 1 else None

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        total = None
        for member in self.members:
            out = member(waves)
            out = out[0] if isinstance(out, tuple) else out
            total = out.float() if total is None else total + out.float()
        return total / len(self.members)


def ensemble_spec() -> list[dict]:
    """The teacher ensemble of ``params/models.yaml`` (``passt.ensemble``)."""
    return list(load_yaml(PARAMS_DIR / "models.yaml")["passt"]["ensemble"])


def load_ensemble(entries: list[dict] | None = None, with_weights: bool = True) -> TeacherEnsemble:
    """A :class:`TeacherEnsemble` of PaSSTs from ``entries`` (default: :func:`ensemble_spec`); each entry
    has ``arch``, ``weights`` (file or ``"release"``) and optional ``url``, ``sha256``,
    ``fstride``/``tstride``/``input_tdim``."""
    entries = ensemble_spec() if entries is None else entries
    members = []
    for entry in entries:
        extra = {k: entry[k] for k in ("fstride", "tstride", "input_tdim", "n_classes") if k in entry}
        members.append(load_passt(entry.get("weights") if with_weights else None, entry["arch"],
                                  sha256=entry.get("sha256"), url=entry.get("url"), **extra))
    return TeacherEnsemble(members).eval()
