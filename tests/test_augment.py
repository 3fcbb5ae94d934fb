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


def test_the_baseline_masks_before_mixstyle_with_the_log_floor(monkeypatch):
    """CPJKU's baseline masks the mel power (masked bins become log(0 + 1e-5) after the log), then applies
    Freq-MixStyle on the log-mel: the spectrogram MixStyle receives already holds bands at log(1e-5)."""
    recipe = load_recipe("baseline")
    cfg = augment.AugmentConfig.from_recipe(recipe)
    assert (cfg.mask_order, cfg.mask_fill, cfg.mask_widths) == ("before_mixstyle", "floor", "up_to")
    aug = augment.Augment(build_frontend("baseline"), cfg).train()
    floor = float(torch.log(torch.tensor(1e-5)))
    assert aug.frontend.floor == floor
    seen = []
    real = augment.freq_mixstyle
    monkeypatch.setattr(augment, "freq_mixstyle", lambda x, *a: seen.append(x.clone()) or real(x, *a))
    torch.manual_seed(0)
    out = aug(torch.randn(16, 32000) * 0.1)
    masked = (seen[0] == floor).all(dim=3).squeeze(1)  # (batch, mels): whole rows at the floor
    assert masked.sum(1).max() > 0 and (masked.sum(1) < 48).all()
    assert out.shape == seen[0].shape
    # after MixStyle the other order would have put them there instead
    monkeypatch.setattr(augment, "freq_mixstyle", lambda x, *a: x + 1.0)
    aug.config = augment.AugmentConfig(**{**cfg.__dict__, "mask_order": "after_mixstyle"})
    torch.manual_seed(0)
    after = aug(torch.randn(16, 32000) * 0.1)
    assert ((after == floor).all(dim=3).sum() > 0)
    aug.config = cfg
    torch.manual_seed(0)
    before = aug(torch.randn(16, 32000) * 0.1)
    assert (before == floor + 1.0).all(dim=3).sum() > 0 and (before == floor).all(dim=3).sum() == 0


def test_mask_fill_values_of_the_front_ends():
    log_floor = float(torch.log(torch.tensor(1e-5)))
    assert augment.mask_value(build_frontend("baseline"), "floor") == log_floor
    assert augment.mask_value(build_frontend("surkov16k"), "zero") == 0.0
    assert augment.mask_value(build_frontend("efficientat"), "floor") == pytest.approx((log_floor + 4.5) / 5)
    with pytest.raises(ValueError, match="unknown mask fill 'nan'"):
        augment.mask_value(build_frontend("baseline"), "nan")
    with pytest.raises(ValueError, match="mask_order 'late' unknown"):
        augment.AugmentConfig(mask_order="late")


def _widths(out, value):
    freq = (out == value).all(dim=3).squeeze(1).sum(1).float()
    time = (out == value).all(dim=2).squeeze(1).sum(1).float()
    return freq, time


def test_a_15_percent_mask_under_each_reading():
    """Surkov's "mask 15 %": `exact` covers 15 % of each axis on every clip (19 of 128 mels, 15 of 101
    frames), `mean` 15 % on average, `up_to` (SpecAugment's own parameter) below 15 %, 7.5 % on average."""
    recipe = load_recipe("mean_teacher", source="surkov")
    assert recipe["mask_widths"] == "exact"
    cfg = augment.AugmentConfig.from_recipe(recipe, spec_shape=(128, 101))
    assert (cfg.freq_mask, cfg.time_mask) == (19, 15)
    x = torch.ones(4000, 1, 128, 101)
    torch.manual_seed(0)
    freq, time = _widths(augment.mask(x, 19, 15, widths="exact", value=-1.0), -1.0)
    assert (freq == 19).all() and (time == 15).all()
    torch.manual_seed(0)
    freq, time = _widths(augment.mask(x, 19, 15, widths="mean", value=-1.0), -1.0)
    assert freq.mean() / 128 == pytest.approx(0.15, abs=0.01) and time.mean() / 101 == pytest.approx(0.15, abs=0.01)
    assert freq.max() > 19
    torch.manual_seed(0)
    freq, time = _widths(augment.mask(x, 19, 15, widths="up_to", value=-1.0), -1.0)
    assert freq.max() < 19 and freq.mean() / 128 == pytest.approx(0.075, abs=0.01)
    with pytest.raises(ValueError, match="unknown mask widths"):
        augment.mask(x[:1], 19, widths="wide")
