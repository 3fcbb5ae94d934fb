"""Werning's target-specific dataset pruning (section 2.1 of his report).

Every clip is embedded as the 527 logits of a teacher ensemble. A linear domain classifier learns to
tell the challenge's training split (1) from AudioSet's eval list (0) with balanced batches drawn as his
code draws them; AudioSet training clips scoring at least a threshold are kept. A held-out validation set
measures how well it separates the domains. Settings: ``params/werning.yaml``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.stats import mannwhitneyu
from torch import nn
from asc_lib.config.progress import bar as progress_bar

from asc_lib.training.loop import build_optimizer


def balanced_batches(labels: torch.Tensor, batch_size: int, generator: torch.Generator,
                     positive_mixup: float = 0.5) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of Werning's balanced batches (``domain_classifier/logit_dataset.py``): (positives +
    negatives) // ``batch_size`` iterations, each drawing ``batch_size / 2`` positives (label 1) and as many
    negatives (label 0) uniformly *with replacement*. Returns ``(index, partner)`` per batch: ``partner`` holds,
    for the first ``positive_mixup`` share of the positives, a second positive whose logits are max-mixed into
    theirs (his "positive mixup"; half of the positives in his code). ``batch_size`` must be even."""
    if batch_size < 2 or batch_size % 2:
        raise ValueError(f"balanced batches need an even batch size >= 2, got {batch_size}")
    if not 0 <= positive_mixup <= 1:
        raise ValueError(f"positive_mixup must be a share in [0, 1], got {positive_mixup}")
    labels = torch.as_tensor(labels)
    pos, neg = torch.nonzero(labels == 1).flatten(), torch.nonzero(labels == 0).flatten()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"balanced batches need both classes; got {len(pos)} positives, {len(neg)} negatives")
    half, n_mixed = batch_size // 2, int(batch_size // 2 * positive_mixup)
    batches = []
    for _ in range(max(1, len(labels) // batch_size)):
        draw = lambda index, n: index[torch.randint(len(index), (n,), generator=generator)]  # noqa: E731
        batches.append((torch.cat([draw(pos, half), draw(neg, half)]), draw(pos, n_mixed)))
    return batches


def mixed_features(features: torch.Tensor, index: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """The batch's features with the first ``len(partner)`` rows (positives) replaced by their element-wise
    maximum with their partner's (Werning's positive mixup: a clip holding both sound sources)."""
    x = features[index].float()
    if len(partner):
        x[:len(partner)] = torch.maximum(x[:len(partner)], features[partner].float())
    return x


CLASSIFIERS = ("linear", "sigmoid_inputs")


class DomainClassifier(nn.Module):
    """A linear classifier on teacher logits: one logit, > 0 means "like the challenge data".

    ``variant`` ``linear`` is the report's "linear classifier on the logits"; ``sigmoid_inputs`` is Werning's
    code (``domain_classifier/model.py``: Sigmoid -> Linear(527, 1) -> Sigmoid), the last sigmoid being the
    one of the loss and of :func:`domain_scores`."""

    def __init__(self, n_features: int = 527, variant: str = "linear"):
        super().__init__()
        if variant not in CLASSIFIERS:
            raise ValueError(f"unknown domain classifier {variant!r}; choose from {CLASSIFIERS}")
        self.variant = variant
        self.linear = nn.Linear(n_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.variant == "sigmoid_inputs":
            x = torch.sigmoid(x)
        return self.linear(x).squeeze(-1)


def train_domain_classifier(features: torch.Tensor, labels: torch.Tensor, lr: float = 1e-4, batch_size: int = 600,
                            epochs: int = 400, seed: int = 0, variant: str = "linear",
                            positive_mixup: float = 0.5, optimizer: str = "adam") -> tuple[DomainClassifier, list[float]]:
    """Fit :class:`DomainClassifier` (``variant``) with ``optimizer`` (Werning's: Adam) on Werning's balanced batches
    (:func:`balanced_batches`, positive mixup on ``positive_mixup`` of the positives); returns it with the mean
    loss per epoch."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    features, labels = features.float(), torch.as_tensor(labels).float()
    model = DomainClassifier(features.shape[1], variant)
    optimizer = build_optimizer(model.parameters(), {"optimizer": optimizer, "lr": lr})
    losses = []
    for _ in progress_bar(range(epochs), desc="domain classifier", unit="epoch", mininterval=2.0):
        total, count = 0.0, 0
        for index, partner in balanced_batches(labels, batch_size, generator, positive_mixup):
            loss = nn.functional.binary_cross_entropy_with_logits(model(mixed_features(features, index, partner)),
                                                                  labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(index), count + len(index)
        losses.append(total / count)
    return model.eval(), losses


@torch.no_grad()
def domain_scores(model: DomainClassifier, features: torch.Tensor, batch: int = 65536) -> np.ndarray:
    """Probability that each clip is like the challenge data (``features`` a tensor or rows on disk, read
    ``batch`` rows at a time)."""
    parts = [torch.sigmoid(model(features[i:i + batch].float())).numpy() for i in range(0, len(features), batch)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def validation_quality(scores: np.ndarray, labels: np.ndarray, thresholds) -> tuple[float, pd.DataFrame]:
    """How well the domain classifier tells held-out challenge clips (label 1) from held-out AudioSet eval
    clips (label 0): the ROC-AUC of its scores (the Mann-Whitney U statistic over both counts) and, per
    threshold, the clips kept of each class, precision and recall. Werning's code reports precision
    class-weighted (each class's counts divided by its size, ``domain_classifier/train.py``); on a validation
    set with as many clips of each class, as :mod:`asc_lib.methods.domain_selection` builds it, the two are
    the same."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError(f"validation needs both classes; got {int(labels.sum())} of {len(labels)} positive")
    auc = float(mannwhitneyu(scores[labels], scores[~labels]).statistic / (labels.sum() * (~labels).sum()))
    rows = []
    for t in thresholds:
        kept = scores >= t
        tp, fp = int((kept & labels).sum()), int((kept & ~labels).sum())
        rows.append({"threshold": t, "kept positives": tp, "kept negatives": fp,
                     "precision": tp / (tp + fp) if tp + fp else float("nan"), "recall": tp / labels.sum()})
    return auc, pd.DataFrame(rows).set_index("threshold").round(3)


def threshold_table(scores: np.ndarray, thresholds) -> pd.DataFrame:
    """Werning's Table 1 columns from the scores: clips kept (score >= threshold) and their share."""
    scores = np.asarray(scores)
    rows = [{"threshold": t, "kept clips": int((scores >= t).sum()),
             "relative size of pruned set (%)": round(100.0 * float((scores >= t).mean()), 1)} for t in thresholds]
    return pd.DataFrame(rows).set_index("threshold")


def prune(segments: pd.DataFrame, scores: np.ndarray, threshold: float) -> pd.DataFrame:
    """The segments whose score is at least ``threshold``, with their score."""
    if len(scores) != len(segments):
        raise ValueError(f"{len(scores)} scores for {len(segments)} segments")
    return segments.assign(domain_score=scores)[np.asarray(scores) >= threshold].reset_index(drop=True)


def random_selection(segments: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """A seeded random subset of ``size`` segments (the control for pruning)."""
    return segments.sample(n=min(size, len(segments)), random_state=seed).reset_index(drop=True)


def selection_quality(selected: pd.DataFrame, pool: pd.DataFrame, in_domain: pd.Series) -> dict:
    """Precision and recall of a selection against the known in-domain clips of ``pool`` (mini data only:
    ``in_domain`` is a boolean Series indexed by YTID, from the generator's ``mini_truth.csv``)."""
    truth = in_domain.reindex(pool["YTID"]).fillna(False).astype(bool)
    chosen = in_domain.reindex(selected["YTID"]).fillna(False).astype(bool)
    hits = int(chosen.sum())
    return {"selected": len(selected), "in-domain selected": hits,
            "precision": hits / len(selected) if len(selected) else float("nan"),
            "recall": hits / int(truth.sum()) if truth.sum() else float("nan"),
            "pool in-domain share": float(truth.mean())}


def length_only_accuracy(positive: np.ndarray, negative: np.ndarray) -> float:
    """Balanced accuracy of the best rule "label 1 when the length is above (or below) t" separating
    ``positive`` from ``negative`` lengths: what a classifier could reach from length alone (0.5: nothing)."""
    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    if not len(positive) or not len(negative):
        raise ValueError("length_only_accuracy needs lengths of both classes")
    cuts = np.unique(np.concatenate([positive, negative]))
    cuts = np.concatenate([[cuts[0] - 1.0], cuts])
    above = np.array([(positive > t).mean() + (negative <= t).mean() for t in cuts]) / 2
    return float(max(above.max(), 1.0 - above.min()))
