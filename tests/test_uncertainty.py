"""Bootstrap intervals over whole recordings, paired comparisons and the verdict."""
import numpy as np
import pytest

from asc_lib.data.dcase import SCENES
from asc_lib.training import uncertainty as u


def _files(classes=10, recordings=20, seconds=10, devices=("a",)):
    """Test-split names: per class ``recordings`` 10 s recordings, each cut into ``seconds`` clips per device."""
    rows = []
    for c in range(classes):
        for r in range(recordings):
            for s in range(seconds):
                for d in devices:
                    rows.append((f"audio/{SCENES[c]}-city-{r % 3}-{r}-{s}-{d}.wav", c, r))
    files, labels, recs = zip(*rows)
    return list(files), np.array(labels), np.array(recs)


def test_units_of_a_tau22_file_name():
    name = "audio/airport-barcelona-203-6129-4-s2.wav"
    assert u.unit_of(name) == "airport-barcelona-203-6129"
    assert u.unit_of(name, "location") == "airport-barcelona-203"
    assert u.unit_of(name, "clip") == "airport-barcelona-203-6129-4-s2"
    with pytest.raises(ValueError, match="not a TAU22 file name"):
        u.unit_of("audio/clip.wav")
    with pytest.raises(ValueError, match="unknown resampling unit"):
        u.unit_of(name, "city")


def test_the_bootstrap_matches_a_hand_computation():
    """Same draws, computed by a plain loop: class accuracy = correct clips of the drawn recordings over their
    clips, macro = mean over classes; one seed: the interval is the estimate ± z times the replicates' spread."""
    files, labels, recs = _files(classes=2, recordings=4, seconds=3)
    rng = np.random.default_rng(5)
    correct = (rng.random(len(files)) < 0.6).astype(float)
    assert u.macro_accuracy(correct, labels) == pytest.approx(
        np.mean([correct[labels == 0].mean(), correct[labels == 1].mean()]))
    groups = u.groups_of(files)
    picks = u.unit_draws(labels, groups, 200, np.random.default_rng(0))
    fast = u.replicate_accuracies(correct[None], labels, groups, picks, np.zeros((200, 1), int))
    by_hand = []
    for b in range(200):
        accs = []
        for c, pick in zip((0, 1), picks):
            names = sorted(set(groups[labels == c]))
            hits = sum(correct[groups == names[i]].sum() for i in pick[b])
            clips = sum((groups == names[i]).sum() for i in pick[b])
            accs.append(hits / clips)
        by_hand.append(np.mean(accs))
    assert np.allclose(fast, by_hand)
    interval = u.bootstrap_accuracy(correct, labels, files, n_boot=200, seed=0)
    half = 1.959964 * np.std(by_hand, ddof=1)
    assert (interval.low, interval.high) == pytest.approx((interval.estimate - half, interval.estimate + half))
    assert interval.low <= interval.estimate <= interval.high


def test_resampling_recordings_is_wider_than_clips_on_correlated_data():
    """Every clip of a recording right or wrong together: the clips are not independent, so the per-clip
    interval is far too narrow."""
    files, labels, recs = _files(devices=("a", "b", "c"))
    rng = np.random.default_rng(1)
    right = rng.random((10, 20)) < 0.6
    correct = right[labels, recs].astype(float)
    by_recording = u.bootstrap_accuracy(correct, labels, files, "recording")
    by_clip = u.bootstrap_accuracy(correct, labels, files, "clip")
    assert by_recording.estimate == by_clip.estimate
    assert (by_recording.high - by_recording.low) > 3 * (by_clip.high - by_clip.low)


def test_paired_comparison_known_answers():
    files, labels, recs = _files()
    rng = np.random.default_rng(2)
    b = np.repeat((rng.random((1, len(files))) < 0.5).astype(float), 3, axis=0)  # three seeds that agree
    same = u.paired_comparison(b, b, labels, files)
    assert (same.difference, same.low, same.high, same.p_value) == pytest.approx((0, 0, 0, 1), abs=1e-9)
    assert same.verdict == "not distinguishable at this budget"
    a = np.ones((3, len(files)))  # right on every clip of every recording: better than b on each of them
    better = u.paired_comparison(a, b, labels, files)
    assert better.low > 0 and better.p_value < 1e-6 and better.verdict == "better"
    assert better.difference == pytest.approx(1 - u.macro_accuracy(b[0], labels))
    assert u.paired_comparison(b, a, labels, files).verdict == "worse"
    assert better.text().startswith("+") and "p < 0.001" in better.text()


def test_fewer_than_three_seeds_a_side_give_no_verdict_about_the_method():
    """One seed against three: the interval is shown, the verdict is about these runs only."""
    files, labels, _ = _files()
    rng = np.random.default_rng(6)
    a, b = np.ones((1, len(files))), (rng.random((3, len(files))) < 0.5).astype(float)
    c = u.paired_comparison(a, b, labels, files)
    assert c.low > 0 and c.raw_verdict == "better" and not c.about_methods
    assert c.verdict == "no verdict: these runs only (1 vs 3 seeds)"
    assert u.holm({"x": c}, "f")["x"].p_adjusted is None  # outside every family


def test_seed_spread_widens_the_interval_by_students_t():
    """The seed term: s^2/n with n - 1 degrees of freedom; with the test term it sets Welch's degrees of freedom."""
    accuracies = np.array([0.50, 0.55, 0.60])
    variance, df = u.seed_term(accuracies)
    assert variance == pytest.approx(np.var(accuracies, ddof=1) / 3) and df == 2
    assert u.seed_term(np.array([0.5])) == (0.0, float("inf"))
    low, high, p = u.t_interval(0.1, [(variance, df)], 0.95)
    assert high - 0.1 == pytest.approx(4.302653 * np.sqrt(variance), rel=1e-6)  # t(0.975, 2)
    low2, high2, _ = u.t_interval(0.1, [(variance, np.inf)], 0.95)
    assert high2 - low2 < high - low  # a known variance (normal) is narrower than one from 3 seeds


def test_holm_within_a_family():
    """Holm's step-down over the family's p-values (statsmodels): the smallest times the family's size, then
    monotone; the verdict follows the adjusted p-value while the interval stays the comparison's own."""
    def comparison(p, difference=0.05):
        return u.Comparison(difference, 0.01, 0.09, p, 0.95, "recording", (3, 3))
    family = u.holm({"a": comparison(0.01), "b": comparison(0.02), "c": comparison(0.04), "d": None}, "claims")
    assert [family[k].p_adjusted for k in "abc"] == pytest.approx([0.03, 0.04, 0.04])
    assert family["d"] is None and family["a"].family == "claims"
    assert [family[k].verdict for k in "abc"] == ["better", "better", "better"]
    family = u.holm({"a": comparison(0.02), "b": comparison(0.03), "c": comparison(0.5)}, "claims")
    assert family["a"].raw_verdict == "better" and family["a"].verdict == "not distinguishable at this budget"
    assert "(Holm = 0.06)" in family["a"].text()


def test_a_comparison_asked_the_other_way_round_gives_the_negated_interval():
    """B − A is exactly −(A − B): each method's seed draws follow from its predictions, not from its place in
    the call, so 02b (variant − mean teacher) and 05 (mean teacher − variant) print the same interval."""
    files, labels, _ = _files()
    rng = np.random.default_rng(4)
    a = (rng.random((3, len(files))) < 0.6).astype(float)
    b = (rng.random((2, len(files))) < 0.5).astype(float)
    ab, ba = u.paired_comparison(a, b, labels, files), u.paired_comparison(b, a, labels, files)
    assert (ba.difference, ba.low, ba.high) == pytest.approx((-ab.difference, -ab.high, -ab.low), abs=1e-12)
    assert ba.p_value == ab.p_value and ab.seeds == (3, 2) and ba.seeds == (2, 3)


def test_seeds_widen_the_interval():
    """Three seeds that disagree: drawing seeds in each replicate widens the interval beyond their mean's."""
    files, labels, recs = _files()
    rng = np.random.default_rng(3)
    seeds = np.stack([(rng.random(len(files)) < p).astype(float) for p in (0.4, 0.6, 0.8)])
    mean_only = u.bootstrap_accuracy(seeds.mean(0), labels, files)
    with_seeds = u.bootstrap_accuracy(seeds, labels, files)
    assert with_seeds.seeds == 3 and with_seeds.estimate == pytest.approx(mean_only.estimate)
    assert with_seeds.high - with_seeds.low > 2 * (mean_only.high - mean_only.low)
    with pytest.raises(ValueError, match="differ"):
        u.bootstrap_accuracy(seeds[:, :5], labels, files)
