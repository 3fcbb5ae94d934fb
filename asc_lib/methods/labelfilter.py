"""Surkov's AudioSet label filter: segments carrying any of the 14 labels of his Table 1, and seeded
random subsets of them (10K "small", 20K "large") written as official segment lists.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from asc_lib.config import table1_labels  # noqa: F401 (labelfilter.table1_labels: the set it filters by)
from asc_lib.data import audioset


def expand_labels(mids, ontology: audioset.Ontology | None = None, include_descendants: bool = False) -> set[str]:
    """The label set to match: ``mids`` themselves, plus their ontology descendants if asked."""
    mids = set(mids)
    if not include_descendants:
        return mids
    if ontology is None:
        raise ValueError("include_descendants needs the AudioSet ontology")
    out = set(mids)
    for m in mids:
        out |= set(ontology.descendants(m))
    return out


def matches(segments: pd.DataFrame, labels: set[str]) -> pd.Series:
    """Boolean mask: the segments carrying at least one of ``labels``."""
    return segments["positive_labels"].map(lambda ls: not labels.isdisjoint(ls))


def label_table(lists: dict[str, pd.DataFrame], mids: dict[str, str], ontology: audioset.Ontology | None = None,
                include_descendants: bool = False) -> pd.DataFrame:
    """Segments selected per label (rows: each label, then their union and the list size) in each
    segment list. With ``include_descendants`` a label also matches its ontology descendants."""
    rows = {}
    for mid, name in mids.items():
        own = expand_labels({mid}, ontology, include_descendants)
        rows[f"{name} ({mid})"] = {lst: int(matches(seg, own).sum()) for lst, seg in lists.items()}
    union = expand_labels(mids, ontology, include_descendants)
    rows["any of them (union)"] = {lst: int(matches(seg, union).sum()) for lst, seg in lists.items()}
    rows["all segments"] = {lst: len(seg) for lst, seg in lists.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("label")


def draw_subset(pool: pd.DataFrame, size: int, seed: int, allow_smaller: bool = False) -> pd.DataFrame:
    """A seeded random subset of ``size`` segments of ``pool`` (same seed and pool, same subset).

    When the pool is smaller than ``size`` this raises, unless ``allow_smaller``: then the whole pool is
    returned (the cap is reported by the caller)."""
    if size > len(pool):
        if not allow_smaller:
            raise ValueError(f"asked for {size} segments but the filtered pool holds only {len(pool)}; "
                             "lower the subset size or pass allow_smaller=True to take the whole pool")
        size = len(pool)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(pool), size=size, replace=False))
    return pool.iloc[chosen].reset_index(drop=True)


def filtered_pool(lists: dict[str, pd.DataFrame], labels: set[str]) -> pd.DataFrame:
    """All matching segments of ``lists``, with a ``list`` column naming the segment list of each."""
    parts = [seg[matches(seg, labels)].assign(list=name) for name, seg in lists.items()]
    pool = pd.concat(parts, ignore_index=True)
    return pool.drop_duplicates(subset=["YTID", "start_seconds"], ignore_index=True)
