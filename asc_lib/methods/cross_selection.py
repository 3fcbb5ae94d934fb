"""The experiment neither report ran: each method fed by the other's choice of AudioSet clips, at the size of
the selection it replaces (``notebooks/04b_cross_selection.ipynb``).

Surkov picks unlabeled clips by 14 hand-chosen labels (``01``), Werning by a domain classifier on teacher
logits (``03``). Here

- **Surkov's pipeline** (mean teacher, then distillation) is fed by Werning's pruned clips, a seeded draw of
  as many as Surkov's small subset holds: runs :data:`SURKOV_TEACHER` and :data:`SURKOV_STUDENT`, compared with
  ``efficientat_mt`` and ``kd_small`` (the small label-filtered subset);
- **Werning's pipeline** (distillation, then fine-tuning) is fed by Surkov's label-filtered pool, a seeded
  draw of as many clips as Werning's pruned selection holds: run :data:`WERNING`, compared with ``werning``.

When a pool holds fewer clips than asked, all of it is used and :func:`cross_selection_table` says so. Each run is
compared with its reference on the same test clips by the paired comparison over test recordings and seeds (:mod:`asc_lib.training.uncertainty`).
"""
from __future__ import annotations


import pandas as pd

from asc_lib.config import DataPaths, load_profile, load_recipe, table1_labels
from asc_lib.data import audioset
from asc_lib.data.unlabeled import subset_pieces
from asc_lib.methods import domain_selection, labelfilter, surkov, werning
from asc_lib.config.paths import run_dir, selection_path
from asc_lib.training.experiment import RunSpec, SceneTask

SURKOV_TEACHER = "efficientat_mt_xpruned"   # mean teacher fed by the pruned clips
SURKOV_STUDENT = "kd_small_xpruned"         # its distilled CP-Mobile (same clips)
WERNING = "werning_xlabelfilter"            # Werning's distillation + fine-tuning fed by label-filtered clips
WERNING_KD = "werning_kd_xlabelfilter"      # ... its distillation stage


def label_filtered_pool(profile: str, data: DataPaths) -> pd.DataFrame:
    """Every AudioSet segment Surkov's filter keeps (his Table 1 labels over the recipe's source lists), with
    its ``list``: the pool his subsets are drawn from (``01_audioset_label_filtering``)."""
    settings = load_recipe("audioset_filter", load_profile(profile).get("recipes", "paper"), "surkov")
    ontology = audioset.read_ontology(data.audioset_dir / "ontology.json")
    labels = labelfilter.expand_labels(table1_labels(), ontology, settings["include_descendants"])
    return labelfilter.filtered_pool(surkov.source_lists(data, settings["source_lists"]), labels)


def selections(profile: str, data: DataPaths, split: int, threshold: float, seed: int) -> dict[str, pd.DataFrame]:
    """The four selections of the experiment for ``split``: each method's own (``labelfilter``: Surkov's small
    subset; ``pruned``: Werning's selection at ``threshold``) and the cross ones drawn with ``seed`` at the size
    of the one they replace (``pruned_for_surkov``, ``labelfilter_for_werning``), the cross ones written to
    :func:`selection_path`."""
    own = {"labelfilter": surkov.load_subset(profile, "small"),
           "pruned": domain_selection.read_selection(
               domain_selection.subset_file(profile, split, "pruned", threshold, seed))}
    cross = {"pruned_for_surkov": labelfilter.draw_subset(own["pruned"], len(own["labelfilter"]), seed, True),
             "labelfilter_for_werning": labelfilter.draw_subset(label_filtered_pool(profile, data), len(own["pruned"]),
                                                                seed, True)}
    for name, frame in cross.items():
        audioset.write_subset(selection_path(profile, split, name, seed), frame,
                              f"asc_lib.methods.cross_selection {name}, split {split}, seed {seed}")
    return {**own, **cross}


def cross_selection_table(chosen: dict[str, pd.DataFrame], truth: pd.Series | None = None) -> pd.DataFrame:
    """Clips per selection, the size each cross selection was asked for, overlap with the other method's own
    selection and, on the mini data, the share of in-domain clips."""
    asked = {"pruned_for_surkov": len(chosen["labelfilter"]), "labelfilter_for_werning": len(chosen["pruned"])}
    other = {"labelfilter": "pruned", "pruned": "labelfilter", "pruned_for_surkov": "labelfilter",
             "labelfilter_for_werning": "pruned"}
    rows = {}
    for name, frame in chosen.items():
        ids = set(frame["YTID"])
        row = {"clips": len(frame), "asked": asked.get(name, len(frame)),
               "shared with the other method's own": len(ids & set(chosen[other[name]]["YTID"]))}
        if truth is not None:
            row["in-domain share (%)"] = round(100 * float(truth.reindex(list(ids)).fillna(False).astype(bool).mean()), 1)
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("selection")
    table["capped"] = (table["clips"] < table["asked"]).map({True: "yes (whole pool)", False: ""})
    return table


def train_surkov(profile: str, data: DataPaths, split: int, seed: int, clips: pd.DataFrame, mt: dict, kd: dict,
                 weights: str | None, device="auto") -> dict:
    """Surkov's two stages on ``clips`` instead of his label-filtered subset: mean teacher (run
    :data:`SURKOV_TEACHER`), then its distillation into CP-Mobile on the same clips (:data:`SURKOV_STUDENT`).
    Returns both runs' metrics (``teacher``, ``student``)."""
    info = {"unlabeled": "pruned_for_surkov", "unlabeled_clips": len(clips)}
    task = SceneTask(data, split, mt["frontend"], device)
    pieces = subset_pieces(clips, data, task.frontend.sample_rate, task.device).waves
    teacher = surkov.train_teacher(task, RunSpec(profile, SURKOV_TEACHER, split, seed), "mean_teacher", mt, weights,
                                   pieces, info=info)
    task = SceneTask(data, split, kd["frontend"], device)
    pieces = subset_pieces(clips, data, task.frontend.sample_rate, task.device).waves
    train = surkov.with_unlabeled(task.train_data(), pieces)
    probs, _ = surkov.kd_teacher_probs(task, train, profile, SURKOV_TEACHER, seed, clips, kd)
    student, cost = surkov.kd_student(kd, seed)
    metrics, _ = surkov.train_student(task, RunSpec(profile, SURKOV_STUDENT, split, seed), student, cost, train, probs,
                                      kd, info={"teacher": SURKOV_TEACHER, **info})
    return {"teacher": teacher.metrics, "student": metrics}


def train_werning(profile: str, data: DataPaths, split: int, seed: int, clips: pd.DataFrame, prune: dict, kd: dict,
                  finetune: dict, device="auto") -> dict:
    """Werning's stages 2 and 3 on ``clips`` instead of his pruned selection: distillation of the embedding
    teacher (run :data:`WERNING_KD`), then fine-tuning on the split (:data:`WERNING`); returns its metrics."""
    task = SceneTask(data, split, finetune["frontend"], device)
    pieces, found = werning.distillation_data(clips, prune, kd, profile, data, task.device)
    student, history = werning.distil(pieces, kd, run_dir(profile, WERNING_KD, split, seed), seed, task.device)
    metrics, _, _ = werning.finetune(task, RunSpec(profile, WERNING, split, seed), student, finetune,
                                     info={"kd_recipe": kd, "selection": "labelfilter_for_werning",
                                           "kd_clips": len(found), "kd_fit": history.info()})
    return metrics
