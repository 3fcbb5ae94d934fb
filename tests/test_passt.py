"""PaSST teachers through hear21passt: built without weights, strict local loading, ensembles."""
import pytest
import torch
from torch import nn

from asc_lib.models import passt


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return passt.load_passt(None)


def test_passt_maps_waveforms_to_527_logits(model):
    assert sum(p.numel() for p in model.net.parameters()) > 80_000_000  # PaSST-S, ~86M
    with torch.no_grad():
        logits = model(torch.randn(2, 32000) * 0.1)
    assert logits.shape == (2, 527) and torch.isfinite(logits).all()


def test_local_weights_load_strictly(model, tmp_path):
    path = tmp_path / "passt.pt"
    state = {k: v.clone() for k, v in model.net.state_dict().items()}
    state["head.1.bias"] += 1.0
    torch.save(state, path)
    loaded = passt.load_passt(path)
    assert torch.equal(loaded.net.state_dict()["head.1.bias"], state["head.1.bias"])
    torch.save({"in_c.0.0.weight": torch.zeros(8, 1, 3, 3)}, tmp_path / "cpmobile.pt")
    with pytest.raises(RuntimeError, match="cpmobile.pt"):
        passt.load_passt(tmp_path / "cpmobile.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        passt.load_passt(tmp_path / "missing.pt")


def test_release_urls_and_the_configured_ensemble():
    assert passt.release_url("passt_s_swa_p16_128_ap476").endswith("passt-s-f128-p16-s10-ap.476-swa.pt")
    with pytest.raises(ValueError, match="no PaSST release"):
        passt.release_url("vit_base_patch16_224")
    spec = passt.ensemble_spec()
    assert len(spec) >= 2
    for entry in spec:
        assert passt.release_url(entry["arch"]).startswith("https://github.com/kkoutini/PaSST/")


class _Const(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full((x.shape[0], 527), float(self.value))


def test_ensemble_averages_member_logits():
    ensemble = passt.TeacherEnsemble([_Const(1.0), _Const(2.0), _Const(6.0)])
    assert torch.equal(ensemble(torch.zeros(4, 100)), torch.full((4, 527), 3.0))
    with pytest.raises(ValueError, match="at least one"):
        passt.TeacherEnsemble([])
