"""Werning's stage 1, the domain selection: the PaSST ensemble's logits of the challenge clips and of
AudioSet, the linear domain classifier's data and scores, the pruned selections (and their random
controls) as segment lists, and the pruning reports. Settings: ``params/werning.yaml``
(``domain_classifier``). The classifier itself is :mod:`asc_lib.methods.pruning`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from asc_lib.config import DataPaths, load_recipe, paper_results
from asc_lib.config.atomic import write_json
from asc_lib.data import audioset
from asc_lib.data.audioset_clips import spans, usable_segments
from asc_lib.data.dcase import load_split
from asc_lib.data.rows import held
from asc_lib.data.unlabeled import clip_rows, clips_identity, nominal_samples, reader
from asc_lib.methods.pruning import (
    domain_scores,
    length_only_accuracy,
    prune,
    random_selection,
    selection_quality,
    threshold_table,
    train_domain_classifier,
    validation_quality,
)
from asc_lib.methods.tagger import STANDIN, framed_banner, load_released, load_standin, read_lists, starting_weights
from asc_lib.models.passt import ensemble_spec, load_ensemble
from asc_lib.training.device import precision as device_precision
from asc_lib.training.distill import full_key, is_cached, teacher_outputs
from asc_lib.config.paths import pruned_subset_path, pruning_report_path
from asc_lib.training.experiment import split_waves

SELECTIONS = ("pruned", "random")


# --- the teacher and its embeddings -----------------------------------------------------------------------

def load_embedding_teacher(embedding: str, profile: str, data: DataPaths, device="cpu",
                 fallback: str | None = None) -> nn.Module:
    """Raw waveforms -> 527 logits: the PaSST ensemble of ``params/models.yaml`` (``passt_ensemble``), a
    released EfficientAT AudioSet tagger (``mn04_as``, ``mn10_as``: the mini profile's, a named deviation), or
    the mini stand-in AudioSet tagger (``standin``; also the ``fallback: standin`` of a released tagger that
    cannot be had). The teacher carries its ``checkpoint`` (which weights, their hash and origin)."""
    if embedding == "passt_ensemble":
        return load_ensemble().to(device).eval()
    checkpoint = starting_weights(embedding, profile, data, fallback)
    if checkpoint.origin == STANDIN:
        return load_standin(profile, data, device=device)
    if checkpoint.origin == "random":
        raise ValueError("the domain classifier's embedding needs a pretrained tagger, not 'none'")
    return load_released(checkpoint, device)


def teacher_sample_rate(teacher: nn.Module) -> int:
    return int(getattr(teacher, "sample_rate", 32000))


def embed(teacher: nn.Module, waves: torch.Tensor, key: dict, device="cpu",
          cache_dir=None, data_id: str | None = None, precision: str = "auto") -> torch.Tensor:
    """Teacher logits of ``waves`` (one row per clip), computed once per key and cached on disk, in the
    recipe's ``teacher_precision``."""
    return teacher_outputs(teacher, waves, key, device=device, batch_size=32, cache_dir=cache_dir,
                           data_id=data_id, precision=precision)


def clip_waves(segments: pd.DataFrame, data: DataPaths, sample_rate: int, device="cpu"):
    """Whole AudioSet clips of (present) ``segments``, padded or cut to the nominal length, at ``sample_rate``:
    a tensor, or decoded on the fly when they exceed the memory budget (one pass: the teacher's logits)."""
    return clip_rows(segments, data, sample_rate, device)


def embedding_key(embedding: str, what: str, items, teacher_id: str) -> dict:
    """Cache key of an embedding table: teacher, which clips (their names, hashed) and the input."""
    digest = hashlib.sha256("\n".join(map(str, items)).encode()).hexdigest()[:16]
    return {"kind": "domain_embedding", "teacher": embedding, "teacher_id": teacher_id, "clips": what,
            "n": len(items), "names": digest}


CHALLENGE_INPUTS = ("repeat", "as_is")


class Repeated(nn.Module):
    """``teacher`` fed each input repeated end to end up to ``num_samples`` (batch by batch, so a whole split
    never exists at the long length)."""

    def __init__(self, teacher: nn.Module, num_samples: int):
        super().__init__()
        self.teacher, self.num_samples = teacher, int(num_samples)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.teacher(repeat_to(waves, self.num_samples))


def repeat_to(waves: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Each row repeated end to end and cut to ``num_samples`` (Werning's code: a 1 s challenge clip
    becomes the length of an AudioSet clip)."""
    reps = -(-num_samples // waves.shape[-1])
    return waves.repeat(*([1] * (waves.dim() - 1)), reps)[..., :num_samples]


def challenge_teacher(teacher: nn.Module, recipe: dict, data: DataPaths) -> nn.Module:
    """The teacher as the challenge clips reach it: ``challenge_input: repeat`` repeats each 1 s clip to
    the AudioSet clips' nominal length (like for like: the domain classifier cannot tell the domains by
    input length), ``as_is`` feeds the 1 s clip."""
    mode = recipe["challenge_input"]
    if mode not in CHALLENGE_INPUTS:
        raise ValueError(f"unknown challenge_input {mode!r}; choose from {CHALLENGE_INPUTS}")
    if mode == "as_is":
        return teacher
    return Repeated(teacher, nominal_samples(data, teacher_sample_rate(teacher))).eval()


def domain_embeddings(teacher: nn.Module, recipe: dict, profile: str, data: DataPaths, split: int,
                      teacher_id: str, device="cpu") -> dict:
    """Teacher logits of the sets the pruning needs, each cached on disk: the challenge training split
    (positives, fed as ``recipe["challenge_input"]`` says), the held-out challenge clips of the validation set
    (:func:`validation_clips`, fed alike), AudioSet's eval list (negatives) and the pool to prune (AudioSet
    training lists), absent AudioSet clips dropped. Returns ``{"challenge", "validation", "negatives", "pool":
    tensors, "validation_clips", "negatives_segments", "pool_segments": frames}``."""
    rate = teacher_sample_rate(teacher)
    train = load_split(data, split)
    out = {}
    for name, lists in (("negatives", [recipe["negatives"]]), ("pool", recipe["pool"])):
        out[name], out[f"{name}_segments"] = audioset_embedding(teacher, recipe, lists, data, teacher_id, device)
    held_out = int(negative_holdout(len(out["negatives"]), recipe).sum())
    for name, frame in (("challenge", train), ("validation", validation_clips(data, split, held_out, recipe))):
        waves = split_waves(frame, data, rate)
        what = f"split{split}-{recipe['challenge_input']}" + ("" if name == "challenge" else "-validation")
        key = embedding_key(recipe["embedding"], what, frame["filename"], teacher_id)
        out[name] = embed(challenge_teacher(teacher, recipe, data), waves, key, device,
                          precision=recipe["teacher_precision"])
    out["validation_clips"] = validation_clips(data, split, held_out, recipe)
    return out


def audioset_embedding(teacher: nn.Module, recipe: dict, lists: list[str], data: DataPaths, teacher_id: str,
                       device="cpu") -> tuple[torch.Tensor, pd.DataFrame]:
    """The teacher's logits of every whole clip (padded or cut to the nominal length) of the usable segments
    of ``lists``, one row per clip, computed once and then read from the cache; with the segments."""
    rate = teacher_sample_rate(teacher)
    segments = usable_segments(read_lists(data, lists), reader(data), "+".join(lists) + " clips")
    key = embedding_key(recipe["embedding"], "+".join(lists), segments["YTID"], teacher_id)
    data_id = clips_identity(segments, data, rate)
    autocast = device_precision(recipe["teacher_precision"], torch.device(device))
    cached = is_cached(full_key(teacher, key, data_id=data_id, autocast=autocast))
    waves = _placeholder(len(segments)) if cached else clip_waves(segments, data, rate)
    return embed(teacher, waves, key, device, data_id=data_id,
                 precision=recipe["teacher_precision"]), segments


def negative_holdout(n: int, recipe: dict) -> np.ndarray:
    """Which AudioSet eval clips (of ``n``) are held out of the classifier's training for its validation set:
    ``validation_share`` of them (Werning's code: 1/5), drawn with the fixed ``validation_seed`` (his 13), so
    every classifier seed is validated on the same clips. At least one is held out and one kept."""
    share = float(recipe["validation_share"])
    if not 0 < share < 1:
        raise ValueError(f"validation_share must be in (0, 1), got {share}")
    if n < 2:
        raise ValueError(f"the domain classifier needs at least 2 AudioSet eval clips, got {n}")
    count = min(max(1, int(round(share * n))), n - 1)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(int(recipe["validation_seed"])).permutation(n)[:count]] = True
    return mask


def validation_clips(data: DataPaths, split: int, n: int, recipe: dict) -> pd.DataFrame:
    """Challenge clips the domain classifier does not train on, as many as the held-out AudioSet eval clips
    (a seeded sample): development clips outside the split, or, for split 100, which holds them all, the test
    split's clips, as Werning's code validates on TAU's test logits (a measurement only: nothing is chosen
    on it; the threshold is the report's)."""
    train = load_split(data, split)
    if int(split) == 100:
        others = load_split(data, "test")
    else:
        others = load_split(data, 100)
        others = others[~others["filename"].isin(train["filename"])]
    if others.empty:
        raise ValueError(f"no challenge clips outside split {split} to validate the domain classifier on")
    return others.sample(n=min(n, len(others)), random_state=int(recipe["validation_seed"])).reset_index(drop=True)


def _placeholder(n: int) -> torch.Tensor:
    """Stands in for waveforms when the logits are read from the cache (only their count is checked)."""
    return torch.empty(n, 0)


def teacher_for(recipe: dict, profile: str, data: DataPaths, device="cpu"):
    """The recipe's embedding teacher and an identifier of its weights (for cache keys)."""
    teacher = load_embedding_teacher(recipe["embedding"], profile, data, device, fallback=recipe.get("fallback"))
    checkpoint = getattr(teacher, "checkpoint", None)
    if checkpoint is not None:
        return teacher, checkpoint.sha256
    return teacher, json.dumps(ensemble_spec(), sort_keys=True)


def start_text(teacher: nn.Module) -> str:
    """What the embedding teacher is, in words, with the stand-in's banner when it applies."""
    checkpoint = getattr(teacher, "checkpoint", None)
    if checkpoint is None:
        return f"teacher: the PaSST ensemble of params/models.yaml ({len(ensemble_spec())} released checkpoints)"
    text = framed_banner(checkpoint)
    return f"teacher: {checkpoint.describe()}" + (f"\n{text}" if text else "")


def embedding_start(recipe: dict, profile: str, data: DataPaths) -> dict:
    """Which weights the recipe's embedding teacher starts from (resolved as :func:`load_embedding_teacher` does), for
    ``metrics.json``."""
    if recipe["embedding"] == "passt_ensemble":
        return {"name": "passt_ensemble", "spec": ensemble_spec(), "pretrained": True, "origin": "release"}
    return starting_weights(recipe["embedding"], profile, data, recipe.get("fallback")).info()


def embedding_summary(emb: dict) -> pd.DataFrame:
    """Clips and embedding width per set."""
    names = {"challenge": "challenge split (label 1)", "negatives": "AudioSet eval list (label 0)",
             "validation": "held-out challenge clips (validation)", "pool": "AudioSet pool to prune"}
    return pd.DataFrame([{"set": names[k], "clips": emb[k].shape[0], "logits per clip": emb[k].shape[1]}
                         for k in names]).set_index("set")


def length_control(recipe: dict, data: DataPaths, emb: dict, sample_rate: int = 32000) -> pd.DataFrame:
    """What a domain classifier could learn from input length alone: the balanced accuracy of the best
    length threshold between the challenge clips (label 1) and AudioSet's eval clips (label 0), for each way
    of feeding the challenge clips. AudioSet clips count by the audio they hold (short segments are padded);
    a challenge clip holds 1 s, or the nominal length when repeated. 0.5: length tells nothing."""
    nominal = data.audioset_clip_seconds
    negatives = np.minimum(spans(emb["negatives_segments"]), nominal)
    rows = []
    for mode in CHALLENGE_INPUTS:
        seconds = nominal if mode == "repeat" else 1.0
        positives = np.full(len(emb["challenge"]), seconds)
        rows.append({"challenge input": mode, "challenge clip length (s)": seconds,
                     "AudioSet clip lengths (s)": f"{negatives.min():g} to {negatives.max():g}",
                     "length-only balanced accuracy": round(length_only_accuracy(positives, negatives), 3),
                     "used here": "yes" if mode == recipe["challenge_input"] else ""})
    return pd.DataFrame(rows).set_index("challenge input")


def classifier_data(emb: dict, recipe: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Training features and domain labels: challenge split = 1, AudioSet eval = 0 (less the held-out
    clips of :func:`negative_holdout`)."""
    train = ~negative_holdout(len(emb["negatives"]), recipe)
    negatives = held(emb["negatives"])[torch.from_numpy(train)]  # the labeled sets: small
    features = torch.cat([held(emb["challenge"]), negatives])
    labels = torch.cat([torch.ones(len(emb["challenge"])), torch.zeros(len(negatives))])
    return features, labels


def validation_data(emb: dict, recipe: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out validation set: challenge clips outside the training split (1) and the held-out AudioSet
    eval clips (0)."""
    negatives = held(emb["negatives"])[torch.from_numpy(negative_holdout(len(emb["negatives"]), recipe))]
    features = torch.cat([held(emb["validation"]), negatives])
    return features, torch.cat([torch.ones(len(emb["validation"])), torch.zeros(len(negatives))])


def validation_report(classifier, emb: dict, recipe: dict) -> tuple[float, pd.DataFrame]:
    """ROC-AUC and per-threshold precision and recall on the held-out validation set (Werning's code reports
    class-weighted precision and recall there): the pruning's quality, measurable on the real data too."""
    features, labels = validation_data(emb, recipe)
    return validation_quality(domain_scores(classifier, features), labels.numpy(), recipe["thresholds"])


def validation_text(auc: float, table: pd.DataFrame, emb: dict, threshold: float) -> str:
    """One sentence on the held-out validation set at the chosen threshold."""
    row = table.loc[threshold]
    return (f"Held-out validation ({len(emb['validation'])} challenge clips outside the training split, "
            f"{int(row['kept positives'])} of them kept; the held-out AudioSet eval clips, {int(row['kept negatives'])} "
            f"kept): ROC-AUC {auc:.3f}; at threshold {threshold:g} precision {row['precision']:.3f}, "
            f"recall {row['recall']:.3f}.")


def score_sets(classifier, emb: dict) -> dict:
    """Domain scores of every set."""
    return {k: domain_scores(classifier, emb[k]) for k in ("challenge", "negatives", "pool")}


def threshold_comparison(pool_scores, thresholds) -> pd.DataFrame:
    """Kept share per threshold here, beside Werning's Table 1 (sizes and accuracy, split 100)."""
    table = threshold_table(pool_scores, thresholds)
    paper = paper_results()["werning_table1"]
    ref = pd.DataFrame({"Werning: relative size (%)": paper["relative_size"],
                        "Werning: accuracy (%)": paper["accuracy"]}, index=pd.Index(paper["threshold"], name="threshold"))
    return table.join(ref)


def fit_classifier(features: torch.Tensor, labels: torch.Tensor, recipe: dict, seed: int) -> tuple:
    """The recipe's domain classifier (``classifier``: the report's linear one or Werning's code's
    sigmoid-inputs one) trained on ``features``/``labels`` (:func:`classifier_data`); with its losses."""
    return train_domain_classifier(features, labels, recipe["lr"], recipe["batch_size"], recipe["epochs"], seed, variant=recipe["classifier"],
                                   positive_mixup=recipe["positive_mixup"], optimizer=recipe["optimizer"])


def seed_spread(emb: dict, recipe: dict, seeds, truth: pd.Series | None = None,
                pool: pd.DataFrame | None = None) -> pd.DataFrame:
    """How much the kept share depends on the classifier's seed: the classifier trained once per seed on
    the same embeddings; per threshold the share of the pool kept (mean, std, min, max over seeds) and,
    with the mini data's truth, the in-domain precision of the kept clips."""
    features, labels = classifier_data(emb, recipe)
    rows = []
    for seed in seeds:
        classifier, _ = fit_classifier(features, labels, recipe, seed)
        scores = score_sets(classifier, emb)["pool"]
        for t in recipe["thresholds"]:
            kept = scores >= t
            row = {"threshold": t, "seed": seed, "kept (%)": 100.0 * float(kept.mean())}
            if truth is not None and pool is not None:
                inside = truth.reindex(pool["YTID"]).fillna(False).astype(bool).to_numpy()
                row["in-domain precision (%)"] = 100.0 * float(inside[kept].mean()) if kept.any() else float("nan")
            rows.append(row)
    frame = pd.DataFrame(rows)
    stats = frame.drop(columns="seed").groupby("threshold").agg(["mean", "std", "min", "max"])
    stats.columns = [f"{a} {b}" for a, b in stats.columns]
    return stats.round(1)


def write_selections(profile: str, split: int, pool: pd.DataFrame, scores, threshold: float, seed: int) -> dict:
    """Write the pruned subset and a random selection of the same size; returns both frames."""
    kept = prune(pool, scores, threshold)
    if kept.empty:
        raise ValueError(f"threshold {threshold} keeps no AudioSet clip for split {split}; lower it")
    control = random_selection(pool, len(kept), seed)
    out = {}
    for name, frame in (("pruned", kept), ("random", control)):
        path = subset_file(profile, split, name, threshold, seed)
        audioset.write_subset(path, frame, f"asc_lib.methods.werning {name} selection, split {split}, threshold {threshold}")
        out[name] = frame
    return out


def selection_table(selections: dict, pool: pd.DataFrame, truth: pd.Series | None) -> pd.DataFrame:
    """Size of each selection and, on the mini data, its precision and recall of in-domain clips."""
    rows = {}
    for name, frame in selections.items():
        if truth is None:
            rows[name] = {"selected": len(frame), "share of pool (%)": round(100 * len(frame) / len(pool), 1)}
        else:
            q = selection_quality(frame, pool, truth)
            rows[name] = {"selected": q["selected"], "share of pool (%)": round(100 * len(frame) / len(pool), 1),
                          "in-domain precision": round(q["precision"], 3), "in-domain recall": round(q["recall"], 3),
                          "pool in-domain share": round(q["pool in-domain share"], 3)}
    frame = pd.DataFrame(rows).T.rename_axis("selection")
    return frame.astype({"selected": int})


def pruning_verdict(quality: pd.DataFrame) -> str:
    """One sentence: did pruning pick more in-domain clips than random selection of the same size?"""
    if "in-domain precision" not in quality.columns:
        return "In-domain truth is known only for the mini data; compare pruned and random by accuracy (03b)."
    p, r = quality.loc["pruned", "in-domain precision"], quality.loc["random", "in-domain precision"]
    word = "beat" if p > r else "did not beat"
    return (f"Pruning {word} random selection of the same size: {100 * p:.1f} % of the kept clips are in-domain "
            f"against {100 * r:.1f} % for random selection (pool: "
            f"{100 * quality.loc['pruned', 'pool in-domain share']:.1f} %), recall {100 * quality.loc['pruned', 'in-domain recall']:.1f} %.")


def save_pruning_report(profile: str, split: int, seed: int, recipe: dict, pool_scores, quality: pd.DataFrame,
                        validation: tuple[float, pd.DataFrame] | None = None) -> Path:
    """``split<N>-t<threshold>-seed<S>-pruning.json``: threshold sweep and selection quality of one pruning (each
    seed's domain classifier and random control are its own), for the results notebook."""
    sweep = threshold_table(pool_scores, recipe["thresholds"])
    path = pruning_report_path(profile, split, recipe["threshold"], seed)
    write_json(path, {"split": split, "threshold": recipe["threshold"], "seed": int(seed),
                      "sweep": sweep.reset_index().to_dict(orient="records"),
                      "selections": quality.reset_index().to_dict(orient="records"),
                      "validation": None if validation is None else {
                          "roc_auc": validation[0], "thresholds": validation[1].reset_index().to_dict(orient="records")}})
    return path


# --- subsets ------------------------------------------------------------------------------------------------

def subset_file(profile: str, split: int, selection: str, threshold: float, seed: int) -> Path:
    """Manifest of one pruning (or its random control), in the official segment-list format."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose from {SELECTIONS}")
    return pruned_subset_path(profile, split, selection, threshold, seed)


def read_selection(path: Path) -> pd.DataFrame:
    """A selection written by :func:`write_selections` (with its ``list`` column)."""
    return audioset.read_subset(path, made_by="notebooks/03_domain_pruning.ipynb for this split")


def mini_truth(data: DataPaths) -> pd.Series | None:
    """Which mini AudioSet clips the generator made in-domain (YTID -> bool); None on real data."""
    path = data.audioset_dir / "mini_truth.csv"
    if not path.is_file():
        return None
    truth = pd.read_csv(path)
    return truth.set_index("YTID")["in_domain"].astype(bool)


def paper_threshold() -> float:
    """The threshold Werning chose for all later experiments (``params/werning.yaml``)."""
    return float(load_recipe("domain_classifier", "paper", source="werning")["threshold"])


