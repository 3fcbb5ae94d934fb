"""Seed 002 (Werning) glue: teacher embeddings, the pruned-subset manifests, the multi-label distillation
objective and the 527 -> 10 class fine-tuning. Settings: ``params/werning.yaml``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from asc_lib.data import audioset
from asc_lib.features.augment import mixup
from asc_lib.config.atomic import atomic_path
from asc_lib.training.distill import full_key, is_cached, teacher_outputs
from asc_lib.training.experiment import run_dir, runs_dir
from asc_lib.models.cpmobile import CPMobile
from asc_lib.models.passt import load_ensemble
from asc_lib.config.params import DataPaths
from asc_lib.data.rows import held
from asc_lib.methods.tagger import load_standin, read_lists, tagging_data
from asc_lib.training.loop import Objective, TrainData, logits_of
from asc_lib.data.audioset_clips import spans, usable_segments
from asc_lib.data.unlabeled import clip_rows, clips_identity, nominal_samples, reader

SELECTIONS = ("pruned", "random")
STUDENT_FILE = "student527.pt"


# --- the teacher and its embeddings -----------------------------------------------------------------------

def load_teacher(embedding: str, profile: str, data: DataPaths, device="cpu", progress: bool = True) -> nn.Module:
    """Raw waveforms -> 527 logits: the PaSST ensemble of ``params/models.yaml`` (``passt_ensemble``), or
    the mini stand-in AudioSet tagger (``standin``)."""
    if embedding == "passt_ensemble":
        return load_ensemble().to(device).eval()
    if embedding == "standin":
        return load_standin(profile, data, device=device, progress=progress)
    raise ValueError(f"unknown embedding {embedding!r}; choose passt_ensemble or standin")


def teacher_sample_rate(teacher: nn.Module) -> int:
    return int(getattr(teacher, "sample_rate", 32000))


def embed(teacher: nn.Module, waves: torch.Tensor, key: dict, device="cpu", progress: bool = True,
          cache_dir=None, data_id: str | None = None) -> torch.Tensor:
    """Teacher logits of ``waves`` (one row per clip), computed once per key and cached on disk."""
    return teacher_outputs(teacher, waves, key, device=device, batch_size=32, progress=progress, cache_dir=cache_dir,
                           data_id=data_id)


def clip_waves(segments: pd.DataFrame, data: DataPaths, sample_rate: int, device="cpu", progress: bool = True):
    """Whole AudioSet clips of (present) ``segments``, padded or cut to the nominal length, at ``sample_rate``:
    a tensor, or decoded on the fly when they exceed the memory budget (one pass: the teacher's logits)."""
    return clip_rows(segments, data, sample_rate, device, progress=progress)


def embedding_key(embedding: str, what: str, items, teacher_id: str) -> dict:
    """Cache key of an embedding table: teacher, which clips (their names, hashed) and the input."""
    import hashlib

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
                      teacher_id: str, device="cpu", progress: bool = True) -> dict:
    """Teacher logits of the three sets the pruning needs, each cached on disk: the challenge training
    split (positives, fed as ``recipe["challenge_input"]`` says), AudioSet's eval list (negatives) and the
    pool to prune (AudioSet training lists), absent AudioSet clips dropped.
    Returns ``{"challenge", "negatives", "pool": tensors, "negatives_segments", "pool_segments": frames}``."""
    from asc_lib.data.dcase import load_split
    from asc_lib.training.experiment import split_waves

    rate = teacher_sample_rate(teacher)
    train = load_split(data, split)
    out = {}
    waves = split_waves(train, data, rate, progress=progress)
    key = embedding_key(recipe["embedding"], f"split{split}-{recipe['challenge_input']}", train["filename"], teacher_id)
    out["challenge"] = embed(challenge_teacher(teacher, recipe, data), waves, key, device, progress)
    for name, lists in (("negatives", [recipe["negatives"]]), ("pool", recipe["pool"])):
        segments = usable_segments(read_lists(data, lists), reader(data), "+".join(lists) + " clips")
        key = embedding_key(recipe["embedding"], "+".join(lists), segments["YTID"], teacher_id)
        data_id = clips_identity(segments, data, rate)
        cached = is_cached(full_key(teacher, key, data_id=data_id))
        waves = _placeholder(len(segments)) if cached else clip_waves(segments, data, rate, progress=progress)
        out[name] = embed(teacher, waves, key, device, progress, data_id=data_id)
        out[f"{name}_segments"] = segments
    return out


def _placeholder(n: int) -> torch.Tensor:
    """Stands in for waveforms when the logits are read from the cache (only their count is checked)."""
    return torch.empty(n, 0)


def teacher_for(recipe: dict, profile: str, data: DataPaths, device="cpu", progress: bool = True):
    """The recipe's embedding teacher and an identifier of its weights (for cache keys)."""
    from asc_lib.methods.surkov import file_digest
    from asc_lib.methods.tagger import standin_path

    teacher = load_teacher(recipe["embedding"], profile, data, device, progress)
    if recipe["embedding"] == "standin":
        return teacher, file_digest(standin_path(profile))
    from asc_lib.models.passt import ensemble_spec

    return teacher, json.dumps(ensemble_spec(), sort_keys=True)


def embedding_summary(emb: dict) -> pd.DataFrame:
    """Clips and embedding width per set."""
    names = {"challenge": "challenge split (label 1)", "negatives": "AudioSet eval list (label 0)",
             "pool": "AudioSet pool to prune"}
    return pd.DataFrame([{"set": names[k], "clips": emb[k].shape[0], "logits per clip": emb[k].shape[1]}
                         for k in names]).set_index("set")


def length_control(recipe: dict, data: DataPaths, emb: dict, sample_rate: int = 32000) -> pd.DataFrame:
    """What a domain classifier could learn from input length alone: the balanced accuracy of the best
    length threshold between the challenge clips (label 1) and AudioSet's eval clips (label 0), for each way
    of feeding the challenge clips. AudioSet clips count by the audio they hold (short segments are padded);
    a challenge clip holds 1 s, or the nominal length when repeated. 0.5: length tells nothing."""
    from asc_lib.methods.pruning import length_only_accuracy

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


def classifier_data(emb: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and domain labels: challenge split = 1, AudioSet eval = 0."""
    features = torch.cat([held(emb["challenge"]), held(emb["negatives"])])  # the labeled sets: small
    labels = torch.cat([torch.ones(len(emb["challenge"])), torch.zeros(len(emb["negatives"]))])
    return features, labels


def score_sets(classifier, emb: dict) -> dict:
    """Domain scores of every set."""
    from asc_lib.methods.pruning import domain_scores

    return {k: domain_scores(classifier, emb[k]) for k in ("challenge", "negatives", "pool")}


def threshold_comparison(pool_scores, thresholds) -> pd.DataFrame:
    """Kept share per threshold here, beside Werning's Table 1 (sizes and accuracy, split 100)."""
    from asc_lib.config.params import paper_results
    from asc_lib.methods.pruning import threshold_table

    table = threshold_table(pool_scores, thresholds)
    paper = paper_results()["werning_table1"]
    ref = pd.DataFrame({"Werning: relative size (%)": paper["relative_size"],
                        "Werning: accuracy (%)": paper["accuracy"]}, index=pd.Index(paper["threshold"], name="threshold"))
    return table.join(ref)


def seed_spread(emb: dict, recipe: dict, seeds, truth: pd.Series | None = None,
                pool: pd.DataFrame | None = None) -> pd.DataFrame:
    """How much the kept share depends on the classifier's seed: the classifier trained once per seed on
    the same embeddings; per threshold the share of the pool kept (mean, std, min, max over seeds) and,
    with the mini data's truth, the in-domain precision of the kept clips."""
    from asc_lib.methods.pruning import train_domain_classifier

    features, labels = classifier_data(emb)
    rows = []
    for seed in seeds:
        classifier, _ = train_domain_classifier(features, labels, recipe["lr"], recipe["batch_size"],
                                                recipe["epochs"], seed, progress=False)
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
    from asc_lib.methods.pruning import prune, random_selection

    kept = prune(pool, scores, threshold)
    if kept.empty:
        raise ValueError(f"threshold {threshold} keeps no AudioSet clip for split {split}; lower it")
    control = random_selection(pool, len(kept), seed)
    out = {}
    for name, frame in (("pruned", kept), ("random", control)):
        path = subset_file(profile, split, name, threshold, seed)
        write_selection(path, frame, f"asc_lib.methods.werning {name} selection, split {split}, threshold {threshold}")
        out[name] = frame
    return out


def selection_table(selections: dict, pool: pd.DataFrame, truth: pd.Series | None) -> pd.DataFrame:
    """Size of each selection and, on the mini data, its precision and recall of in-domain clips."""
    from asc_lib.methods.pruning import selection_quality

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


def save_pruning_report(profile: str, split: int, recipe: dict, pool_scores, quality: pd.DataFrame) -> Path:
    """``split<N>-t<threshold>-pruning.json``: threshold sweep and selection quality, for the results notebook."""
    from asc_lib.config.atomic import write_json
    from asc_lib.methods.pruning import threshold_table

    sweep = threshold_table(pool_scores, recipe["thresholds"])
    path = pruning_report_path(profile, split, recipe["threshold"])
    write_json(path, {"split": split, "threshold": recipe["threshold"],
                      "sweep": sweep.reset_index().to_dict(orient="records"),
                      "selections": quality.reset_index().to_dict(orient="records")})
    return path


# --- subsets ------------------------------------------------------------------------------------------------

def subsets_dir(profile: str) -> Path:
    return runs_dir(profile) / "pruned_subsets"


def subset_file(profile: str, split: int, selection: str, threshold: float, seed: int) -> Path:
    """Manifest of one pruning (or its random control), in the official segment-list format."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose from {SELECTIONS}")
    return subsets_dir(profile) / f"split{split}-{selection}-t{threshold:g}-seed{seed}_segments.csv"


def write_selection(path: Path, segments: pd.DataFrame, description: str) -> Path:
    """Write a selection as a segment list plus a sidecar naming each segment's source list."""
    audioset.write_segments(path, segments, created=description)
    with atomic_path(path.with_suffix(".lists.csv"), suffix=".csv") as tmp:
        segments[["YTID", "list"]].to_csv(tmp, index=False)
    return path


def read_selection(path: Path) -> pd.DataFrame:
    """A selection written by :func:`write_selection` (with its ``list`` column)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run notebooks/03_domain_pruning.ipynb for this split first")
    segments = audioset.read_segments(path)
    lists = pd.read_csv(path.with_suffix(".lists.csv"))
    if list(lists["YTID"]) != list(segments["YTID"]):
        raise ValueError(f"{path.with_suffix('.lists.csv')} does not match {path} (YTIDs differ)")
    return segments.assign(list=lists["list"].to_numpy())


def mini_truth(data: DataPaths) -> pd.Series | None:
    """Which mini AudioSet clips the generator made in-domain (YTID -> bool); None on real data."""
    path = data.audioset_dir / "mini_truth.csv"
    if not path.is_file():
        return None
    truth = pd.read_csv(path)
    return truth.set_index("YTID")["in_domain"].astype(bool)


# --- distillation -------------------------------------------------------------------------------------------

def frontend(recipe: dict, device="cpu") -> nn.Module:
    """The recipe's front end on ``device``."""
    from asc_lib.features.frontend import build_frontend

    return build_frontend(recipe["frontend"]).to(device)


def kd_data(segments: pd.DataFrame, data: DataPaths, recipe: dict, device="cpu",
            progress: bool = True) -> tuple[TrainData, pd.DataFrame]:
    """1 s pieces of the selected clips at the recipe's sample rate, with their AudioSet targets
    (``extras["targets"]``), and the clips they come from (absent ones dropped)."""
    from asc_lib.methods.tagger import class_index

    rate = frontend(recipe).sample_rate
    return tagging_data(segments, data, class_index(data), rate, device, progress)


def piece_logits(teacher: nn.Module, data: TrainData, segments: pd.DataFrame, embedding: str, teacher_id: str,
                 device="cpu", progress: bool = True) -> torch.Tensor:
    """Teacher logits for every 1 s piece of ``data`` (offline KD): computed once, then read from disk."""
    rate = teacher_sample_rate(teacher)
    key = embedding_key(embedding, f"kd-pieces-{len(data)}@{rate}", segments["YTID"], teacher_id)
    if data.waves.shape[1] != rate:
        raise ValueError(f"the teacher takes {rate} Hz but the pieces have {data.waves.shape[1]} samples per second; "
                         "Werning's student and teacher both run at 32 kHz")
    return embed(teacher, data.waves, key, device, progress)


def kd_summary(segments: pd.DataFrame, data: TrainData) -> pd.DataFrame:
    """Clips, pieces and labels of the distillation set."""
    targets = data.extras["targets"]
    return pd.DataFrame([{"AudioSet clips": len(segments), "1 s pieces": len(data),
                          "classes (student head)": targets.shape[1],
                          "labels per piece (mean)": round(float(targets.sum(1).mean()), 2)}])


class MultiLabelDistillation(Objective):
    """Werning's loss: ``λ·BCE(student, sigmoid(teacher)) + (1 - λ)·BCE(student, AudioSet labels)``, both
    multi-label, with MixUp (targets and teacher outputs mixed alike) and SpecAugment on the student input
    only. Needs ``batch["teacher_logits"]`` and ``batch["targets"]``."""

    name = "multilabel_kd"

    def __init__(self, augment: nn.Module, distillation_weight: float = 0.9, mixup_alpha: float = 0.3):
        super().__init__(augment)
        if not 0 <= distillation_weight <= 1:
            raise ValueError(f"distillation_weight must be in [0, 1], got {distillation_weight}")
        self.weight, self.mixup_alpha = distillation_weight, mixup_alpha

    def loss(self, model, batch, step):
        x = self.inputs(batch["waves"])
        soft, hard = torch.sigmoid(batch["teacher_logits"].float()), batch["targets"].float()
        if self.mixup_alpha > 0:
            x, perm, lam = mixup(x, self.mixup_alpha)
            lam = lam.view(-1, 1).float()
            soft, hard = lam * soft + (1 - lam) * soft[perm], lam * hard + (1 - lam) * hard[perm]
        logits = logits_of(model(x)).float()
        return distillation_loss(logits, soft, hard, self.weight)


def distillation_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, targets: torch.Tensor,
                      weight: float) -> tuple[torch.Tensor, dict]:
    """``weight·BCE(logits, teacher_probs) + (1 - weight)·BCE(logits, targets)`` and both terms."""
    bce = nn.functional.binary_cross_entropy_with_logits
    kd, cls = bce(logits, teacher_probs), bce(logits, targets)
    return weight * kd + (1 - weight) * cls, {"kd": float(kd.detach()), "cls": float(cls.detach())}


def save_student(directory: Path, model: CPMobile) -> Path:
    """The distilled 527-class (or mini-class) student, atomically."""
    from asc_lib.config.atomic import atomic_path

    path = Path(directory) / STUDENT_FILE
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp)
    return path


def finetune_student(student: CPMobile, n_classes: int = 10, seed: int | None = None) -> CPMobile:
    """The distilled student with its head replaced by a randomly initialised ``n_classes`` head (drawn
    from ``seed`` when given, so that it does not depend on what ran before)."""
    if seed is not None:
        torch.manual_seed(seed)
    return student.replace_head(n_classes)


def paper_threshold() -> float:
    """The threshold Werning chose for all later experiments (``params/werning.yaml``)."""
    from asc_lib.config.params import load_recipe

    return float(load_recipe("domain_classifier", "paper", source="werning")["threshold"])


def _threshold_suffix(threshold: float | None) -> str:
    return "" if threshold is None or float(threshold) == paper_threshold() else f"_t{threshold:g}"


def finetune_method(selection: str, threshold: float | None = None) -> str:
    """Run name of the fine-tuned student: ``werning`` (pruned, the paper's threshold), ``werning_random``
    (the control), with ``_t<threshold>`` appended for the other thresholds of the Table-1 sweep."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose from {SELECTIONS}")
    return ("werning" if selection == "pruned" else "werning_random") + _threshold_suffix(threshold)


def kd_run_dir(profile: str, split: int, seed: int, selection: str, threshold: float | None = None) -> Path:
    """Directory of the distillation stage (``werning_kd...``, named like :func:`finetune_method`)."""
    method = finetune_method(selection, threshold).replace("werning", "werning_kd", 1)
    return run_dir(profile, method, split, seed)


def pruning_report_path(profile: str, split: int, threshold: float) -> Path:
    return subsets_dir(profile) / f"split{split}-t{threshold:g}-pruning.json"


def pruning_report(profile: str, split: int, threshold: float | None = None) -> dict | None:
    """The pruning summary ``03_domain_pruning`` wrote for ``split`` and ``threshold`` (default: the
    paper's), or None when absent."""
    path = pruning_report_path(profile, split, paper_threshold() if threshold is None else threshold)
    return json.loads(path.read_text()) if path.is_file() else None


def compare_runs(profile: str, split: int, seed: int) -> pd.DataFrame:
    """Test accuracy of the baseline, Werning's method and its random control for one split and seed."""
    from asc_lib.training.experiment import compare_runs as compare

    return compare(profile, split, seed, {"baseline": "CP-Mobile baseline", "werning": "KD on pruned AudioSet + fine-tuning",
                                          "werning_random": "KD on random AudioSet clips + fine-tuning"})


def verdict(comparison: pd.DataFrame) -> str:
    """Pruned KD against the baseline and against the random control, in two sentences."""
    from asc_lib.training.experiment import verdict as say

    method = "KD on pruned AudioSet + fine-tuning"
    return " ".join([say(comparison, method, "CP-Mobile baseline"),
                     say(comparison, method, "KD on random AudioSet clips + fine-tuning")])
