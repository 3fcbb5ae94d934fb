"""AudioSet: the ontology, the class index and the official segment lists.

Segment lists (``balanced_train_segments.csv``, ``eval_segments.csv``, ``unbalanced_train_segments.csv``)
start with three comment lines, then one segment per line::

    # Segments csv created Sun Mar  5 10:54:31 2017
    # num_ytids=22160, num_segs=22160, num_unique_labels=527, num_positive_labels=52882
    # YTID, start_seconds, end_seconds, positive_labels
    --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"

Clip audio, when present, is read through :mod:`asc_lib.data.audioset_clips` (per-clip files or the anchors' HDF5).
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from asc_lib.config.atomic import atomic_path

SEGMENT_LISTS = ("balanced_train_segments", "eval_segments", "unbalanced_train_segments")
SEGMENT_COLUMNS = ("YTID", "start_seconds", "end_seconds", "positive_labels")
_MID = re.compile(r"^/[a-z]/[0-9A-Za-z_]+$")


class Ontology:
    """The AudioSet ontology (``ontology.json``): names and the parent/child hierarchy."""

    def __init__(self, entries: Sequence[dict], source: str = "ontology"):
        self.source = source
        self.entries = {e["id"]: e for e in entries}
        self.parents: dict[str, list[str]] = {}
        for e in entries:
            for child in e.get("child_ids", []):
                if child not in self.entries:
                    raise ValueError(f"{source}: {e['id']} lists unknown child {child}")
                self.parents.setdefault(child, []).append(e["id"])

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, mid: str) -> bool:
        return mid in self.entries

    def _check(self, mid: str) -> None:
        if mid not in self.entries:
            raise KeyError(f"{self.source}: unknown AudioSet class id {mid!r}")

    def name(self, mid: str) -> str:
        self._check(mid)
        return self.entries[mid]["name"]

    def children(self, mid: str) -> list[str]:
        self._check(mid)
        return list(self.entries[mid].get("child_ids", []))

    def descendants(self, mid: str, include_self: bool = True) -> list[str]:
        """All classes below ``mid`` (depth first, each once), optionally with ``mid`` itself."""
        self._check(mid)
        seen, order, stack = set(), [], [mid]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            order.append(node)
            stack.extend(reversed(self.entries[node].get("child_ids", [])))
        return order if include_self else order[1:]

    def roots(self) -> list[str]:
        return [m for m in self.entries if m not in self.parents]


def read_ontology(path: str | Path) -> Ontology:
    """Read ``ontology.json``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON: {err}") from err
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "id" in e and "name" in e for e in entries):
        raise ValueError(f"{path}: expected a list of classes with 'id' and 'name'")
    return Ontology(entries, str(path))


def read_class_index(path: str | Path) -> pd.DataFrame:
    """Read ``class_labels_indices.csv`` (index, mid, display_name); the index must be 0..N-1."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype={"mid": str, "display_name": str})
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{path}: the file is empty (expected columns index, mid, display_name)") from err
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a CSV table: {err}") from err
    missing = [c for c in ("index", "mid", "display_name") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    if not (frame["index"].to_numpy() == np.arange(len(frame))).all():
        raise ValueError(f"{path}: column 'index' must run 0..{len(frame) - 1} in order")
    if frame["mid"].duplicated().any():
        raise ValueError(f"{path}: duplicate mid {frame.loc[frame['mid'].duplicated(), 'mid'].iloc[0]!r}")
    return frame


def read_segments(path: str | Path) -> pd.DataFrame:
    """Read an official segment list into YTID, start_seconds, end_seconds, positive_labels (list)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    rows = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        while True:
            first = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                raise ValueError(f"{path}:{first}: unreadable line ({err})") from err
            lineno = first
            if not row or row[0].startswith("#"):
                continue
            if reader.line_num != first or any("\n" in field or "\r" in field for field in row):
                raise ValueError(f"{path}:{lineno}: a quote opened here is not closed on the same line "
                                 f"(the field runs on to line {reader.line_num})")
            if len(row) != 4:
                raise ValueError(f"{path}:{lineno}: expected 4 fields (YTID, start, end, \"labels\"), got {len(row)}")
            try:
                start, end = float(row[1]), float(row[2])
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: bad start/end seconds {row[1:3]}") from err
            labels = [m.strip() for m in row[3].split(",") if m.strip()]
            if not labels:
                raise ValueError(f"{path}:{lineno}: segment {row[0]} has no positive label")
            bad = [m for m in labels if not _MID.match(m)]
            if bad:
                raise ValueError(f"{path}:{lineno}: segment {row[0]} has malformed label(s) {bad[:3]} "
                                 "(expected AudioSet ids such as /m/09x0r)")
            rows.append((row[0], start, end, labels))
    if not rows:
        raise ValueError(f"{path}: no segments")
    return pd.DataFrame(rows, columns=list(SEGMENT_COLUMNS))


def segments_header(frame: pd.DataFrame, created: str) -> list[str]:
    """The three comment lines of an official segment list, with counts computed from ``frame``."""
    labels = [m for ls in frame["positive_labels"] for m in ls]
    return [
        f"# Segments csv created {created}",
        f"# num_ytids={frame['YTID'].nunique()}, num_segs={len(frame)}, "
        f"num_unique_labels={len(set(labels))}, num_positive_labels={len(labels)}",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]


def write_segments(path: str | Path, frame: pd.DataFrame, created: str = "by asc_lib") -> Path:
    """Write a segment list in the official format, atomically."""
    lines = segments_header(frame, created)
    for r in frame.itertuples(index=False):
        lines.append(f'{r.YTID}, {r.start_seconds:.3f}, {r.end_seconds:.3f}, "{",".join(r.positive_labels)}"')
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)


def write_subset(path: str | Path, subset: pd.DataFrame, description: str) -> Path:
    """Write a chosen subset of segments (Surkov's label-filtered subsets, Werning's domain selections)
    as an official segment list; a sidecar ``.lists.csv`` keeps which list each segment came from (its
    audio lives under that list's name). Both files are written atomically."""
    path = Path(path)
    if "list" not in subset:
        raise ValueError(f"{path}: the subset to write has no 'list' column (the source list of each segment)")
    write_segments(path, subset, created=description)
    with atomic_path(path.with_suffix(".lists.csv"), suffix=".csv") as tmp:
        subset[["YTID", "list"]].to_csv(tmp, index=False)
    return path


def read_subset(path: str | Path, made_by: str | None = None) -> pd.DataFrame:
    """A subset written by :func:`write_subset` (segments plus their ``list`` column); ``made_by`` names
    what writes it, for the error when it is missing."""
    path = Path(path)
    if not path.is_file():
        hint = f": run {made_by} first" if made_by else ""
        raise FileNotFoundError(f"{path} is missing{hint}")
    segments = read_segments(path)
    lists_path = path.with_suffix(".lists.csv")
    if not lists_path.is_file():
        raise FileNotFoundError(f"{lists_path}: the list sidecar of {path.name} is missing")
    lists = pd.read_csv(lists_path, dtype=str)
    if list(lists["YTID"]) != list(segments["YTID"]):
        raise ValueError(f"{lists_path}: YTIDs do not match {path.name}")
    return segments.assign(list=lists["list"].to_numpy())


def label_counts(frame: pd.DataFrame) -> Counter:
    """How many segments carry each label."""
    return Counter(m for ls in frame["positive_labels"] for m in set(ls))


def multi_hot(label_lists: Iterable[Sequence[str]], class_index: pd.DataFrame, strict: bool = True) -> np.ndarray:
    """``(segments, classes)`` float32 targets; ``strict`` rejects labels absent from the class index."""
    col = {m: i for i, m in enumerate(class_index["mid"])}
    label_lists = list(label_lists)
    out = np.zeros((len(label_lists), len(col)), dtype=np.float32)
    for i, labels in enumerate(label_lists):
        for m in labels:
            j = col.get(m)
            if j is None:
                if strict:
                    raise KeyError(f"label {m!r} of segment {i} is not in the class index")
                continue
            out[i, j] = 1.0
    return out
