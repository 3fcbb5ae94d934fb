"""Batched augmentations: roll, Freq-MixStyle, SpecAugment masks, MixUp, and the recipe wiring."""
import pytest
import torch

from asc_lib.config import load_recipe
from asc_lib.features import augment
from asc_lib.features.frontend import build_frontend


def test_roll_shifts_each_row_cyclically_within_bounds():
    torch.manual_seed(0)
    waves = torch.arange(40.0).repeat(6, 1)
    rolled = augment.roll(waves, max_shift=5)
    for row in rolled:
        assert any(torch.equal(row, torch.roll(waves[0], s)) for s in range(-5, 6))
    assert len({int(r[0]) for r in rolled}) > 1  # shifts differ between rows
    assert torch.equal(augment.roll(waves, 0), waves)


def test_freq_mixstyle_mixes_per_frequency_statistics():
    torch.manual_seed(0)
    x = torch.randn(8, 1, 16, 20) * torch.linspace(0.5, 3, 8).view(8, 1, 1, 1) + torch.arange(8.0).view(8, 1, 1, 1)
    assert torch.equal(augment.freq_mixstyle(x, p=0.0, alpha=0.3, eps=1e-6), x)
    out = augment.freq_mixstyle(x, p=1.0, alpha=0.3, eps=1e-6)
    assert out.shape == x.shape and not torch.allclose(out, x)
    means_in, means_out = x.mean(dim=(1, 3)), out.mean(dim=(1, 3))
    # every output mean per frequency bin is a convex combination of two input means
    assert (means_out >= means_in.min(0).values - 1e-4).all() and (means_out <= means_in.max(0).values + 1e-4).all()
    same = x[:1].repeat(8, 1, 1, 1)
    assert torch.allclose(augment.freq_mixstyle(same, 1.0, 0.3, 1e-6), same, atol=1e-4)


def test_frequency_mask_zeroes_one_band_narrower_than_its_parameter():
    torch.manual_seed(1)
    x = torch.ones(32, 1, 256, 65)
    out = augment.mask(x, freq=48)
    masked_rows = (out == 0).all(dim=3).squeeze(1).sum(1)
    assert (masked_rows < 48).all() and masked_rows.max() > 0
    assert (out[:, :, :, :] == 0).all(dim=2).sum() == 0  # no time masking asked


def test_mask_width_and_mixup():
    assert augment.mask_width(0.15, 128) == 19
    with pytest.raises(ValueError, match="fraction"):
        augment.mask_width(1.5, 128)
    torch.manual_seed(0)
    x = torch.randn(10, 1, 4, 4)
    mixed, perm, lam = augment.mixup(x, alpha=0.3)
    assert (lam >= 0.5).all()
    expected = x * lam.view(-1, 1, 1, 1) + x[perm] * (1 - lam.view(-1, 1, 1, 1))
    assert torch.allclose(mixed, expected)


def test_augment_follows_the_baseline_recipe_and_mode():
    cfg = augment.AugmentConfig.from_recipe(load_recipe("baseline"))
    assert (cfg.roll_seconds, cfg.mixstyle_p, cfg.mixstyle_alpha, cfg.mixstyle_eps, cfg.freq_mask, cfg.time_mask) \
        == (0.1, 0.4, 0.3, 1e-6, 48, 0)
    aug = augment.Augment(build_frontend("baseline"), cfg)
    waves = torch.randn(4, 32000) * 0.1
    aug.eval()
    clean = aug(waves)
    assert clean.shape == (4, 1, 256, 65)
    assert torch.equal(clean, aug.frontend(waves))
    aug.train()
    torch.manual_seed(3)
    assert not torch.allclose(aug(waves), clean)
