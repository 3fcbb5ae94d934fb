"""The benchmark's parts measure what they claim: the reference loader feeds the same audio as the study's
cache, the scaling runs in a fresh process on official-format lists, projections follow the papers' work."""
from __future__ import annotations

import pytest
import torch

from asc_lib.config import data_paths
from asc_lib.data import audioset
from asc_lib.data.audio import build_waveform_cache
from asc_lib.data.dcase import load_split
from asc_lib.methods import labelfilter
from asc_lib.study import benchmark
from asc_lib.training import experiment


@pytest.fixture(scope="module")
def split5():
    data = data_paths("mini")
    return data, load_split(data, 5)


def test_reference_loader_reads_the_same_audio_as_the_cache(split5, tmp_path):
    data, frame = split5
    reference = benchmark.WavDataset(frame["filename"][:4], frame["label"][:4], data.tau22_dir, 32_000, 32_000)
    cache = build_waveform_cache(list(frame["filename"][:4]), data.tau22_dir, 32_000, 32_000,
                                 cache_dir=tmp_path)
    for i in range(4):
        wave, label = reference[i]
        assert wave.shape == (32_000,) and label == frame["label"].iloc[i]
        torch.testing.assert_close(wave, cache[i].float(), atol=2e-3, rtol=0)


def test_both_data_paths_train_and_report_a_rate(split5):
    data, frame = split5
    from asc_lib.config import profile_recipe
    from asc_lib.training.experiment import split_waves

    recipe = profile_recipe("mini", "baseline", batch_size=16)
    waves = split_waves(frame, data, 32_000)
    table = benchmark.training_comparison(frame, data.tau22_dir, waves, recipe, steps=1,
                                          device=torch.device("cpu"), workers=0, rounds=1)
    assert list(table["relative"].round(6))[0] == 1.0
    assert (table["samples/s"] > 0).all() and len(table) == 2


def test_the_benchmark_trains_through_fit_and_its_step(split5, monkeypatch):
    """The benchmark must time the study's own training code: fit for the study's path, fit's step for the
    reference path. A copy of the loop in the benchmark would let fit improve or regress unseen."""
    from asc_lib.config import profile_recipe
    from asc_lib.training import loop
    from asc_lib.training.experiment import split_waves

    data, frame = split5
    calls = {"step": 0, "fit": 0}
    real_step, real_fit = loop.train_step, loop.fit

    def counting_step(*args, **kwargs):
        calls["step"] += 1
        return real_step(*args, **kwargs)

    def counting_fit(*args, **kwargs):
        calls["fit"] += 1
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", counting_step)
    monkeypatch.setattr(loop, "fit", counting_fit)
    recipe = profile_recipe("mini", "baseline", batch_size=16)
    waves = split_waves(frame, data, 32_000)
    benchmark.training_comparison(frame, data.tau22_dir, waves, recipe, steps=1, device=torch.device("cpu"),
                                  workers=0, rounds=1)
    per_epoch = -(-len(frame) // 16)
    assert calls["fit"] == 1
    assert calls["step"] == (2 + 1) + per_epoch  # reference: 2 warm-up + 1 timed; study: fit's one epoch


def test_generated_segment_lists_are_official_and_filterable(tmp_path):
    path = benchmark.write_generated_segments(tmp_path / "seg.csv", 500)
    segments = audioset.read_segments(path)
    assert len(segments) == 500
    assert path.read_text().startswith("# Segments csv created")
    matched = labelfilter.matches(segments, set(labelfilter.table1_labels())).sum()
    assert 0 < matched < 500  # the 14 labels and others both occur


def test_scaling_measures_each_size_in_a_fresh_process():
    table = benchmark.scaling("domain scoring", [1000, 20_000])
    assert list(table["items"]) == [1000, 20_000]
    assert (table["seconds"] > 0).all() and (table["peak MB"] >= 0).all()
    assert benchmark.extrapolate(table, 40_000) == pytest.approx(2 * table["seconds"].iloc[-1])
    with pytest.raises(ValueError, match="unknown scaling task"):
        benchmark.scaling("sorting", [10])


def test_scaling_sizes_are_ten_fold_up_to_the_largest():
    assert benchmark.scaling_sizes(2_000_000, torch.device("cpu")) == [1000, 10_000, 100_000, 1_000_000, 2_000_000]
    assert benchmark.scaling_sizes(None, torch.device("cpu"))[-1] == 100_000


def test_projections_follow_the_papers_work():
    settings = benchmark.paper_settings()
    assert settings["surkov"]["kd_epochs"] == 750 and settings["surkov"]["subsets"]["large"] == 20_000
    assert settings["werning"]["ensemble_size"] == 9 and settings["werning"]["kd"]["min_steps"] == 100_000
    assert settings["werning"]["pruned_share"] == pytest.approx(0.142)  # Table 1 at threshold 0.3
    rates = {"cp_mobile_train": 1000.0, "efficientat_train": 100.0, "efficientat_infer": 500.0, "passt_infer": 10.0}
    table = benchmark.projections(rates, **settings)
    kd = table.loc[("Surkov", "KD into CP-Mobile, large subset")]
    assert kd["items"] == 750 * (139_620 + 20_000)
    assert kd["hours"] == pytest.approx(kd["items"] / 1000.0 / 3600)
    # whole 10 s clips (Werning's code): ten 1 s clips' work per item, and no second teacher pass over pieces
    assert table.loc[("Werning", "KD into CP-Mobile (527 classes)"), "items"] == 100_000 * 32 * 10
    assert ("Werning", "PaSST-ensemble logits of the pruned 1 s pieces") not in table.index
    pieces = {**settings, "werning": {**settings["werning"], "kd": {**settings["werning"]["kd"], "input": "pieces"}}}
    table = benchmark.projections(rates, **pieces)
    assert table.loc[("Werning", "KD into CP-Mobile (527 classes)"), "items"] == 100_000 * 32
    assert table.loc[("Werning", "PaSST-ensemble logits of the pruned 1 s pieces"), "items"] == \
        pytest.approx(9 * 0.142 * 2_000_000)
    assert table.loc[("baseline", "CP-Mobile, split 100"), "items"] == 150 * 139_620


def test_real_resources_follow_the_data_sizes_and_the_budget():
    settings = benchmark.paper_settings()
    rates = {k: 1.0 for k in ("cp_mobile_train", "efficientat_train", "efficientat_infer", "passt_infer")}
    gpu = dict.fromkeys(("cp_mobile_train", "cp_mobile_527_train", "efficientat_train", "efficientat_infer",
                         "passt_infer"), 1.0)
    table = benchmark.real_resources(rates, gpu, **settings)
    kd = table.loc[("Werning", "KD into CP-Mobile (527 classes)")]
    pieces = settings["werning"]["pruned_share"] * benchmark.AUDIOSET_SEGMENTS * 10
    assert kd["data GB"] == pytest.approx(pieces * 32_000 * 2 / 2**30)  # the pruned clips, float16 at 32 kHz
    assert kd["disk GB"] == pytest.approx(169.3, abs=0.1)  # threshold 0.3: 14.2 % of 2 M clips of 10 s
    assert kd["data path"] == "streamed from disk" and kd["held in RAM GB"] == 0  # 185 GB > the 64 GB budget
    assert table.loc[("Werning", "PaSST-ensemble logits of AudioSet (domain classifier)"), "data path"] \
        == "decoded on the fly"
    assert table.loc[("baseline", "CP-Mobile, split 100"), "data path"] == "resident"
    everything_resident = benchmark.real_resources(rates, gpu, **settings, budget_gb=10_000)
    assert (everything_resident["data path"] == "resident").all()


def test_the_autocast_teacher_pass_is_measured_against_float32(smoke_data):
    task = experiment.SceneTask(smoke_data, 5, "baseline", "cpu")
    table = benchmark.teacher_agreement(task.train_waves, torch.device("cpu"), clips=8, batch_size=4)
    row = table.iloc[0]
    assert list(table.columns[:3]) == ["clips", "float32 clips/s", "bfloat16 clips/s"] and row["clips"] == 8
    assert 0 <= row["top-1 agreement"] <= 1 and 0 <= row["mean |Δ probability|"] <= row["max |Δ probability|"] < 0.5
