"""Calibration of the study's verdicts (``asc_lib.training.uncertainty``), by simulation.

Two methods are simulated on a mini-sized test split (10 scenes x 18 recordings x 10 one-second clips, one
device per recording, as ``asc_lib.data.minidata`` lays it out) with the clips of one recording strongly
correlated: clip ``c`` of recording ``r`` has the latent ease ``d = mu + g_r + e_c``. A run gets clip ``c``
right when ``d + shift + noise_c > 0``: ``shift`` is the run's seed (one shift of the whole run, drawn per
run, spread to the asked number of accuracy points), ``noise`` its own per-clip disagreement with other runs.

Measured on these simulations (AMD EPYC; 200 simulations per cell, 100 bootstrap replicates; a verdict = the 95 %
interval excludes zero), 3 vs 3 seeds, by the seed spreads the study measures on splits 5 and 100 (std over 3
seeds, points: baseline 2.2 / 1.8, mean-teacher teacher 1.3 / 1.0, KD student 2.7 / 2.5, Werning 0.7 / 0.3,
random selection 1.2 / 0.2):

| seed spreads A / B | identical methods: false verdicts | A 5 points better: detected |
|---|---|---|
| 1.3 / 2.2 (teacher vs baseline) | 2.5 % | 63 % |
| 2.7 / 2.2 (student vs baseline) | 2.5 % | 36 % |
| 0.7 / 2.2 (Werning vs baseline) | 3.5 % | 69 % |
| 0.7 / 1.2 (pruned vs random) | 2.5 % | 94 % |
| 1.0 / 1.8 (split 100: teacher vs baseline) | 3.0 % | 75 % |
| 2.5 / 1.8 (split 100: student vs baseline) | 2.5 % | 44 % |
| 6.8 / 6.1 (the stand-in era's spreads) | 2.5 % | 5 % |

The intervals are conservative (the test term also holds the runs' per-clip disagreement); three seeds resolve
5 points only where the seeds agree within about 2 points. Without the seed term, the interval of the test
sample alone gives identical methods a verdict in 53 % of simulations at 1 vs 1 seed and 21 % at 1 vs 3
(spreads 2.2 / 2.7): why a comparison with fewer than 3 seeds a side gets no verdict.
"""
import numpy as np
from scipy import stats

from asc_lib.data.dcase import SCENES
from asc_lib.training import uncertainty as u

RECORDING_SD, CLIP_SD, RUN_NOISE_SD, MU = 0.8, 0.5, 0.7, 0.45  # accuracy about 0.6, as the study's mini runs


def simulated_split(recordings_per_scene: int = 18, clips: int = 10):
    """File names and labels of a simulated test split."""
    names, labels = [], []
    for s, scene in enumerate(SCENES):
        for r in range(recordings_per_scene):
            for c in range(clips):
                names.append(f"{scene}-city{r % 2}-{r}-{r}-{c}-a.wav")
                labels.append(s)
    return names, np.array(labels)


def points_per_unit(ease: np.ndarray) -> float:
    """How many accuracy points one unit of the latent shift moves a run's expected accuracy (at no shift)."""
    return 100 * float(stats.norm.pdf(ease / RUN_NOISE_SD).mean() / RUN_NOISE_SD)


def ease_of(labels: np.ndarray, rng: np.random.Generator, clips: int = 10) -> np.ndarray:
    """Latent ease of every clip of a test split drawn once (shared by both methods)."""
    n = len(labels)
    recording = np.repeat(rng.normal(0, RECORDING_SD, n // clips), clips)
    return MU + recording + rng.normal(0, CLIP_SD, n)


def runs(ease: np.ndarray, seeds: int, spread_points: float, rng: np.random.Generator,
         difference_points: float = 0.0) -> np.ndarray:
    """``(seeds, clips)`` of 0/1: the runs of a method whose seeds spread by ``spread_points`` and whose
    expected accuracy lies ``difference_points`` above the ease's."""
    scale = points_per_unit(ease)
    shift = difference_points / scale + rng.normal(0, spread_points / scale, (seeds, 1))
    return (ease + shift + rng.normal(0, RUN_NOISE_SD, (seeds, len(ease))) > 0).astype(float)


def verdict_rate(spread_a: float, spread_b: float, difference: float, simulations: int, seed: int) -> float:
    """Share of simulations in which A − B (3 seeds a side) gets a better/worse verdict."""
    names, labels = simulated_split()
    rng, hits = np.random.default_rng(seed), 0
    for i in range(simulations):
        ease = ease_of(labels, rng)
        a, b = runs(ease, 3, spread_a, rng, difference), runs(ease, 3, spread_b, rng)
        hits += u.paired_comparison(a, b, labels, names, n_boot=100, seed=i).verdict in u.VERDICTS[:2]
    return hits / simulations


def test_the_simulated_runs_spread_as_asked():
    names, labels = simulated_split()
    rng = np.random.default_rng(0)
    spreads = [100 * u.per_seed_accuracies(runs(ease_of(labels, rng), 3, 2.2, rng), labels).std(ddof=1)
               for _ in range(100)]
    assert 1.5 < np.mean(spreads) < 2.9  # the sample std of 3 runs scatters widely; its mean is near the asked 2.2


def test_identical_methods_rarely_get_a_verdict():
    """Nominal 5 %; at most 7 % at 3 vs 3 seeds with the widest seed spreads the study measures (the KD student
    2.7, the baseline 2.2 points). 300 simulations: a true 7 % would exceed 10 % in under 3 % of such sets."""
    assert verdict_rate(2.7, 2.2, 0.0, 300, seed=0) <= 0.07


def test_a_five_point_difference_is_detected_in_most_simulations():
    """At the seed spreads of the study's teacher-vs-baseline comparison (1.3 and 2.2 points), 5 points are
    detected in most simulations (measured: 63 % of 200; 36 % at the student's 2.7 against 2.2, see above)."""
    assert verdict_rate(1.3, 2.2, 5.0, 200, seed=1) > 0.5
