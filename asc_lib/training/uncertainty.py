"""How sure a score or a comparison is: bootstrap intervals over whole test recordings, paired comparisons
on the same test clips, and the one :func:`verdict` every comparing sentence of the study comes from.

The clips of the test split are not independent. TAU22 cut every 10 s recording into ten 1 s files, and
the same 10 s moment was recorded by several devices at once; its files are named
``<scene>-<city>-<location>-<segment>-<second>-<device>.wav``. Resampling single clips would count ten to
ninety strongly correlated clips as independent evidence and give intervals that are too narrow. The study
resamples **recordings** (``scene-city-location-segment``: every second and every device of one 10 s
moment), within each scene so that the macro average keeps its ten classes; ``location`` (all recordings of
one place) is available and coarser, ``clip`` only to show how much too narrow the naive interval is.

Training seeds are the unit of a method's variance. An interval adds two variances: the test sample's (a
bootstrap of the seed-averaged predictions over recordings) and the seeds' (the spread of the runs'
accuracies over their number, per method), and takes its width from Student's t with Welch-Satterthwaite
degrees of freedom, so that three seeds a side give an interval as wide as three seeds warrant. With fewer
than :data:`MIN_SEEDS` seeds on a side a comparison says nothing about the *method*: its verdict is about
*these runs* (the seed term is then left out, or is too poorly known to trust). ``tests/test_uncertainty.py``
simulates identical methods at the study's seed spreads and checks the false-verdict rate.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from asc_lib.data.dcase import SCENES, encode_labels, parse_filename
from asc_lib.training.evaluate import read_output_csv
from asc_lib.config.paths import OUTPUT

UNITS = ("recording", "location", "clip")
VERDICTS = ("better", "worse", "not distinguishable at this budget")
RUNS_ONLY = "no verdict: these runs only"  # a comparison with fewer than MIN_SEEDS seeds on a side
N_BOOT = 2000
LEVEL = 0.95
MIN_SEEDS = 3  # seeds a side below which a comparison has no verdict about the method


def unit_of(filename: str, unit: str = "recording") -> str:
    """The resampling unit a test file belongs to: its 10 s ``recording`` (``scene-city-location-segment``),
    its ``location`` (``scene-city-location``) or the ``clip`` itself."""
    if unit not in UNITS:
        raise ValueError(f"unknown resampling unit {unit!r}; choose from {UNITS}")
    parsed = parse_filename(filename)  # names the file when it is not a TAU22 name
    return {"recording": parsed["segment"], "location": f"{parsed['scene']}-{parsed['location']}",
            "clip": Path(filename).stem}[unit]


def groups_of(filenames, unit: str = "recording") -> np.ndarray:
    """Integer group codes of ``filenames`` by :func:`unit_of`."""
    _, codes = np.unique([unit_of(f, unit) for f in filenames], return_inverse=True)
    return codes.astype(np.int64)


def macro_accuracy(correct: np.ndarray, labels: np.ndarray, n_classes: int = 10) -> float:
    """Mean over classes of the share of correct clips (``correct`` may be a mean over seeds, in [0, 1])."""
    correct, labels = np.asarray(correct, dtype=np.float64), np.asarray(labels)
    present = [c for c in range(n_classes) if (labels == c).any()]
    return float(np.mean([correct[labels == c].mean() for c in present]))


@dataclass(frozen=True)
class Interval:
    """A macro accuracy (in [0, 1]) with its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    level: float
    unit: str
    seeds: int

    def text(self, digits: int = 1) -> str:
        """``57.5 % [54.1, 60.8]`` (percent)."""
        return f"{100 * self.estimate:.{digits}f} % [{100 * self.low:.{digits}f}, {100 * self.high:.{digits}f}]"


@dataclass(frozen=True)
class Comparison:
    """Method A minus method B in macro accuracy (points of [0, 1]) on the same test clips: the interval
    (test recordings and seeds, :func:`paired_comparison`), the two-sided p-value, and the verdict at
    ``level``: about the methods with at least :data:`MIN_SEEDS` seeds a side, otherwise none (*these runs
    only*). Within a family of comparisons (:func:`holm`) the verdict reads the family's adjusted p-value;
    the interval stays the comparison's own (``raw_verdict`` reads it alone)."""

    difference: float
    low: float
    high: float
    p_value: float
    level: float
    unit: str
    seeds: tuple[int, int]
    p_adjusted: float | None = None  # Holm within its family (:func:`holm`); None: a family of one
    family: str = ""

    @property
    def about_methods(self) -> bool:
        return min(self.seeds) >= MIN_SEEDS

    @property
    def raw_verdict(self) -> str:
        """The verdict of the interval alone, as if the comparison were the only one made."""
        return verdict(self.low, self.high)

    @property
    def verdict(self) -> str:
        """``better`` / ``worse`` / ``not distinguishable at this budget`` from the adjusted p-value (the
        interval's when unadjusted); ``no verdict: these runs only (1 vs 3 seeds)`` with too few seeds."""
        if not self.about_methods:
            return f"{RUNS_ONLY} ({self.seeds[0]} vs {self.seeds[1]} seeds)"
        if self.p_adjusted is None:
            return self.raw_verdict
        if self.p_adjusted >= 1 - self.level:
            return VERDICTS[2]
        return VERDICTS[0] if self.difference > 0 else VERDICTS[1]

    def text(self, digits: int = 1) -> str:
        """``+3.2 points [0.4, 6.1], p = 0.02 (Holm 0.06): not distinguishable at this budget``."""
        def with_sign(value):
            shown = p_text(value)
            return shown if shown.startswith("<") else f"= {shown}"
        p = f"p {with_sign(self.p_value)}" + (f" (Holm {with_sign(self.p_adjusted)})" if self.p_adjusted is not None else "")
        return (f"{100 * self.difference:+.{digits}f} points [{100 * self.low:+.{digits}f}, {100 * self.high:+.{digits}f}], "
                f"{p}: {self.verdict}")


def p_text(p: float | None) -> str:
    """``0.03``, ``< 0.001``, or ``–`` without a p-value."""
    if p is None or not np.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def holm(comparisons: dict, family: str) -> dict:
    """The ``comparisons`` (a dict of :class:`Comparison`, None allowed) as one family: Holm's step-down
    adjustment of the p-values of those about the methods (at least :data:`MIN_SEEDS` seeds a side), which
    then read their verdict from it; comparisons of these runs only stay outside the family."""
    members = [k for k, c in comparisons.items() if c is not None and c.about_methods]
    adjusted = (multipletests([comparisons[k].p_value for k in members], method="holm")[1] if members else [])
    out = {k: (replace(c, family=family) if c is not None else None) for k, c in comparisons.items()}
    for k, p in zip(members, adjusted):
        out[k] = replace(out[k], p_adjusted=float(p))
    return out


def verdict(low: float, high: float) -> str:
    """``better`` when the whole interval of A − B lies above zero, ``worse`` when below, otherwise ``not
    distinguishable at this budget``: never from a bare difference of two numbers."""
    if low > 0:
        return VERDICTS[0]
    if high < 0:
        return VERDICTS[1]
    return VERDICTS[2]


def _as_seeds(correct) -> np.ndarray:
    correct = np.asarray(correct, dtype=np.float64)
    return correct[None] if correct.ndim == 1 else correct


def _group_sums(correct: np.ndarray, labels: np.ndarray, groups: np.ndarray):
    """Per class: the per-seed sums of correct clips of each of its groups ``(seeds, groups)`` and the group
    sizes. A group never spans two classes (recordings and locations belong to one scene)."""
    out = []
    for c in np.unique(labels):
        inside = labels == c
        codes, index = np.unique(groups[inside], return_inverse=True)
        sums = np.zeros((correct.shape[0], len(codes)))
        np.add.at(sums.T, index, correct[:, inside].T)
        out.append((sums, np.bincount(index, minlength=len(codes)).astype(np.float64)))
    return out


def unit_draws(labels: np.ndarray, groups: np.ndarray, n_boot: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Per class, which of its groups each replicate draws ``(n_boot, groups of the class)``."""
    sizes = [len(np.unique(groups[labels == c])) for c in np.unique(labels)]
    return [rng.integers(0, n, size=(n_boot, n)) for n in sizes]


def replicate_accuracies(correct: np.ndarray, labels: np.ndarray, groups: np.ndarray, picks, seed_picks) -> np.ndarray:
    """Macro accuracy of each bootstrap replicate ``(n_boot,)`` for the given draws (:func:`draws`)."""
    per_class = []
    for (sums, sizes), pick in zip(_group_sums(correct, labels, groups), picks):
        drawn = sums[seed_picks].mean(axis=1)  # (n_boot, groups): seeds drawn with replacement, averaged
        hits = np.take_along_axis(drawn, pick, axis=1).sum(axis=1)
        per_class.append(hits / sizes[pick].sum(axis=1))
    return np.mean(per_class, axis=0)


def _prepare(correct, labels, filenames, unit):
    correct, labels = _as_seeds(correct), np.asarray(labels)
    if correct.shape[1] != len(labels) or len(filenames) != len(labels):
        raise ValueError(f"{correct.shape[1]} predictions, {len(labels)} labels and {len(filenames)} files differ")
    return correct, labels, groups_of(filenames, unit)


def per_seed_accuracies(correct: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Macro accuracy of each seed's run ``(seeds,)``."""
    return np.array([macro_accuracy(row, labels) for row in correct])


def seed_term(accuracies: np.ndarray) -> tuple[float, float]:
    """A method's share of an interval's variance from its seeds, ``s^2 / n``, and that term's degrees of
    freedom (n - 1); (0, inf) with one seed, whose spread cannot be seen."""
    n = len(accuracies)
    return (float(np.var(accuracies, ddof=1) / n), float(n - 1)) if n > 1 else (0.0, float("inf"))


def t_interval(estimate: float, parts: list[tuple[float, float]], level: float) -> tuple[float, float, float]:
    """``estimate`` with the variance terms ``parts`` ((variance, degrees of freedom) each): the interval from
    Student's t with Welch-Satterthwaite degrees of freedom, and the two-sided p-value of zero."""
    total = sum(v for v, _ in parts)
    if total <= 0:
        return estimate, estimate, 0.0 if estimate != 0 else 1.0
    denominator = sum(v * v / df for v, df in parts if v > 0 and np.isfinite(df))
    df = total * total / denominator if denominator > 0 else np.inf
    se = float(np.sqrt(total))
    half = float(stats.t.ppf((1 + level) / 2, df)) * se
    p = float(2 * stats.t.sf(abs(estimate) / se, df))
    return estimate - half, estimate + half, p


def bootstrap_accuracy(correct, labels, filenames, unit: str = "recording", n_boot: int = N_BOOT,
                       level: float = LEVEL, seed: int = 0) -> Interval:
    """Macro accuracy of ``correct`` (``(clips,)`` or ``(seeds, clips)`` of 0/1), mean over seeds, with an
    interval holding the test sample's variance (``n_boot`` replicates resampling ``unit`` within each scene,
    seeds averaged) and the seeds' (:func:`seed_term`), its width from Student's t."""
    correct, labels, groups = _prepare(correct, labels, filenames, unit)
    picks = unit_draws(labels, groups, n_boot, np.random.default_rng(seed))
    reps = replicate_accuracies(correct.mean(0, keepdims=True), labels, groups, picks, np.zeros((n_boot, 1), int))
    estimate = float(per_seed_accuracies(correct, labels).mean())
    low, high, _ = t_interval(estimate, [(float(np.var(reps, ddof=1)), np.inf),
                                         seed_term(per_seed_accuracies(correct, labels))], level)
    return Interval(estimate, low, high, level, unit, correct.shape[0])


def paired_comparison(correct_a, correct_b, labels, filenames, unit: str = "recording", n_boot: int = N_BOOT,
                      level: float = LEVEL, seed: int = 0) -> Comparison:
    """A − B in macro accuracy on the same clips, seeds as the outer unit: the difference of the methods'
    mean accuracies over their seeds; its variance the test sample's (replicates drawing the same recordings
    for both methods' seed-averaged predictions: the pairing) plus each method's seed term
    (:func:`seed_term`); the interval and p-value from Student's t (:func:`t_interval`). Symmetric: B − A is
    exactly the negative of A − B."""
    a, labels, groups = _prepare(correct_a, labels, filenames, unit)
    b, _, _ = _prepare(correct_b, labels, filenames, unit)
    picks = unit_draws(labels, groups, n_boot, np.random.default_rng(seed))
    one = np.zeros((n_boot, 1), int)
    diff = (replicate_accuracies(a.mean(0, keepdims=True), labels, groups, picks, one)
            - replicate_accuracies(b.mean(0, keepdims=True), labels, groups, picks, one))
    acc_a, acc_b = per_seed_accuracies(a, labels), per_seed_accuracies(b, labels)
    estimate = float(acc_a.mean() - acc_b.mean())
    low, high, p = t_interval(estimate, [(float(np.var(diff, ddof=1)), np.inf), seed_term(acc_a), seed_term(acc_b)],
                              level)
    return Comparison(estimate, low, high, p, level, unit, (a.shape[0], b.shape[0]))


# --- runs: which test clips each got right -------------------------------------------------------------

def run_correctness(directories) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Which test clips each run in ``directories`` got right: ``(runs, clips)`` of 0/1 from the runs'
    ``output.csv``, ordered by file name, with the true scenes and the file names."""
    frames = [read_output_csv(Path(d) / OUTPUT).sort_values("filename", ignore_index=True) for d in directories]
    if not frames:
        return np.zeros((0, 0)), np.zeros(0, dtype=int), []
    files = frames[0]["filename"].tolist()
    for directory, frame in zip(directories[1:], frames[1:]):
        if frame["filename"].tolist() != files:
            raise ValueError(f"{Path(directory) / OUTPUT}: other test clips than {Path(directories[0]) / OUTPUT}")
    labels = encode_labels([parse_filename(f)["scene"] for f in files])
    correct = np.stack([(f[list(SCENES)].to_numpy().argmax(1) == labels).astype(float) for f in frames])
    return correct, labels, files


def compare_directories(runs_a, runs_b, unit: str = "recording") -> Comparison | None:
    """A − B (:func:`paired_comparison`, resampling ``unit``) of two sets of run directories scored on the same
    test clips; None when either set is empty."""
    a, labels, files = run_correctness(list(runs_a))
    b, _, files_b = run_correctness(list(runs_b))
    if not len(a) or not len(b):
        return None
    if files != files_b:
        raise ValueError(f"{runs_a[0]} and {runs_b[0]} were scored on different test clips")
    return paired_comparison(a, b, labels, files, unit)
