"""Front-end presets: the papers' numbers, output shapes, and behaviour on bad input."""
import pytest
import torch

from asc_lib.features import frontend


def test_presets_hold_the_papers_numbers():
    b = frontend.load_preset("baseline")
    assert (b["sample_rate"], b["n_fft"], b["win_length"], b["hop_length"], b["n_mels"]) == (32000, 4096, 3072, 500, 256)
    s = frontend.load_preset("surkov16k")
    assert (s["sample_rate"], s["win_length"], s["hop_length"], s["n_mels"]) == (16000, 2048, 160, 128)
    assert s["win_length"] / s["sample_rate"] == 0.128 and s["hop_length"] / s["sample_rate"] == 0.010
    e = frontend.load_preset("efficientat")
    assert (e["sample_rate"], e["n_fft"], e["win_length"], e["hop_length"], e["n_mels"]) == (32000, 1024, 800, 320, 128)
    assert e["preemphasis"] == [-0.97, 1.0] and (e["norm_shift"], e["norm_scale"]) == (4.5, 5.0)
    assert e["f_max"] == 15000.0 and e["fmin_aug_range"] == 10 and e["fmax_aug_range"] == 2000


@pytest.mark.parametrize("name,shape", [("baseline", (256, 65)), ("surkov16k", (128, 101)), ("efficientat", (128, 100))])
def test_output_shapes_for_one_second(name, shape):
    assert frontend.output_shape(name, 1.0) == shape


def test_batch_layout_and_finite_values():
    fe = frontend.build_frontend("baseline").eval()
    x = torch.randn(3, 32000) * 0.1
    y = fe(x)
    assert y.shape == (3, 1, 256, 65) and torch.isfinite(y).all()
    assert torch.allclose(fe(torch.zeros(1, 32000)), torch.full((1, 1, 256, 65), torch.log(torch.tensor(1e-5))))


def test_efficientat_randomises_band_edges_only_in_training():
    fe = frontend.build_frontend("efficientat")
    x = torch.randn(1, 32000) * 0.1
    fe.eval()
    assert torch.equal(fe(x), fe(x))
    fe.train()
    torch.manual_seed(0)
    outs = [fe(x) for _ in range(4)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown front end 'mfcc'"):
        frontend.build_frontend("mfcc")
