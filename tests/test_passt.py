"""PaSST teachers through hear21passt: built without weights, strict local loading, ensembles."""
import pytest
import torch
from torch import nn

from asc_lib import config
from asc_lib.config import paths
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
    with pytest.raises(ValueError, match="cpmobile.pt: not a passt"):
        passt.load_passt(tmp_path / "cpmobile.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        passt.load_passt(tmp_path / "missing.pt")


def test_release_urls_and_the_configured_ensemble():
    assert passt.release_url("passt_s_swa_p16_128_ap476").endswith("passt-s-f128-p16-s10-ap.476-swa.pt")
    with pytest.raises(ValueError, match="no PaSST release"):
        passt.release_url("vit_base_patch16_224")
    spec = passt.ensemble_spec()
    for entry in spec:
        assert passt.release_url(entry["arch"], entry.get("url")).startswith("https://github.com/kkoutini/PaSST/")
    with pytest.raises(ValueError, match="not one of the PaSST authors' releases"):
        passt.release_url("passt_s_p16_s12_128_ap470", "https://example.com/passt.pt")


ENSEMBLE_MANY = {  # PaSST's ensemble_many (mAP .4956), the nine members Werning cites: (name, stride)
    ("passt_s_swa_p16_128_ap476", 10), ("passt_s_swa_p16_128_ap4761", 10), ("passt_s_p16_128_ap472", 10),
    ("passt_s_p16_s12_128_ap470", 12), ("passt_s_swa_p16_s12_128_ap473", 12),
    ("passt_s_p16_s14_128_ap469", 14), ("passt_s_swa_p16_s14_128_ap471", 14),
    ("passt_s_p16_s16_128_ap468", 16), ("passt_s_swa_p16_s16_128_ap473", 16)}


def test_the_ensemble_is_passts_ensemble_many():
    spec = passt.ensemble_spec()
    assert {(e["arch"], e["fstride"]) for e in spec} == ENSEMBLE_MANY and len(spec) == 9
    assert all(e["fstride"] == e["tstride"] and e["weights"] == "release" for e in spec)
    assert config.load_yaml(paths.PARAMS_DIR / "models.yaml")["passt"]["n_ensemble_paper"] == len(spec)
    # each release file is named by its stride and mAP
    for e in spec:
        ap = e["arch"].rsplit("_ap", 1)[1]
        assert f"-s{e['fstride']}-ap.{ap}" in e["url"] and e["url"].endswith("-swa.pt") == ("_swa_" in e["arch"])


def test_a_member_hear21passt_has_no_name_for_is_built_as_passt_s_with_its_stride():
    assert passt.network_arch("passt_s_p16_s12_128_ap470") == passt.PASST_S
    assert passt.network_arch("passt_s_p16_s16_128_ap468") == "passt_s_p16_s16_128_ap468"
    with pytest.raises(ValueError, match="cannot build"):
        passt.network_arch("passt_xl_p8")
    model = passt.PaSST("passt_s_p16_s12_128_ap470", fstride=12, tstride=12)
    assert model.net.patch_embed.proj.stride == (12, 12)


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
