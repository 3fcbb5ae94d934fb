"""AudioSet ontology, class index and official segment lists, on the real files and the mini pool."""
import json

import pandas as pd
import pytest
from conftest import shared_file

from asc_lib.config import paths
from asc_lib.data import audioset
from asc_lib.data.audioset_clips import clip_name

VEHICLE, BUS, RAIL, SUBWAY = "/m/07yv9", "/m/01bjv", "/m/06d_3", "/m/0195fx"


def test_real_ontology_hierarchy():
    onto = audioset.read_ontology(shared_file("audioset", "ontology.json"))
    assert len(onto) == 632
    below = onto.descendants(VEHICLE)
    assert below[0] == VEHICLE and {BUS, RAIL, SUBWAY} <= set(below)
    assert VEHICLE not in onto.descendants(VEHICLE, include_self=False)
    assert onto.children(RAIL) == ["/m/07jdr", "/m/01g50p", "/t/dd00048", SUBWAY]
    assert onto.name(SUBWAY) == "Subway, metro, underground"
    with pytest.raises(KeyError, match="/m/nope"):
        onto.descendants("/m/nope")


def test_real_class_index():
    index = audioset.read_class_index(shared_file("audioset", "class_labels_indices.csv"))
    assert len(index) == 527 and index.loc[0, "display_name"] == "Speech"


@pytest.mark.parametrize("name,rows", [("balanced_train_segments.csv", 22160), ("eval_segments.csv", 20371)])
def test_real_segment_lists(name, rows):
    path = shared_file("audioset", name)
    seg = audioset.read_segments(path)
    assert len(seg) == rows and seg["YTID"].is_unique
    header = path.read_text().splitlines()[1]
    assert header == audioset.segments_header(seg, "x")[1], "counts recomputed from rows match the header"
    index = audioset.read_class_index(shared_file("audioset", "class_labels_indices.csv"))
    targets = audioset.multi_hot(seg["positive_labels"], index)
    assert targets.shape == (rows, 527) and (targets.sum(1) >= 1).all()
    assert int(targets.sum()) == sum(len(x) for x in seg["positive_labels"])


def test_embedded_subset_agrees_with_the_real_ontology():
    subset = json.loads((paths.RESOURCES_DIR / "audioset_subset.json").read_text())
    real = audioset.read_ontology(shared_file("audioset", "ontology.json"))
    index = audioset.read_class_index(shared_file("audioset", "class_labels_indices.csv"))
    names = dict(zip(index["mid"], index["display_name"]))
    ids = {e["id"] for e in subset["ontology"]}
    for e in subset["ontology"]:
        assert real.name(e["id"]) == e["name"]
        assert e["child_ids"] == [c for c in real.children(e["id"]) if c in ids]
    for mid, display in subset["class_labels"]:
        assert names[mid] == display
    order = [index.index[index["mid"] == m][0] for m, _ in subset["class_labels"]]
    assert order == sorted(order), "the subset keeps the real class order"
    # where the released 527-class taggers (mn04_as, PaSST) put each class: their logits are read there
    assert subset["audioset_index"] == {m: int(index.index[index["mid"] == m][0]) for m, _ in subset["class_labels"]}


def test_write_and_read_back_the_official_format(tmp_path):
    frame = pd.DataFrame({"YTID": ["--abc", "x_Y-z"], "start_seconds": [30.0, 0.0], "end_seconds": [40.0, 10.0],
                          "positive_labels": [["/m/09x0r", "/t/dd00088"], ["/m/012xff"]]})
    path = audioset.write_segments(tmp_path / "s.csv", frame, created="Sun Mar  5 10:54:31 2017")
    lines = path.read_text().splitlines()
    assert lines[:3] == ["# Segments csv created Sun Mar  5 10:54:31 2017",
                         "# num_ytids=2, num_segs=2, num_unique_labels=3, num_positive_labels=3",
                         "# YTID, start_seconds, end_seconds, positive_labels"]
    assert lines[3] == '--abc, 30.000, 40.000, "/m/09x0r,/t/dd00088"'
    back = audioset.read_segments(path)
    assert back["positive_labels"].tolist() == frame["positive_labels"].tolist()


def test_bad_segment_line_names_file_and_line(tmp_path):
    (tmp_path / "s.csv").write_text("# a\n# b\n# c\nabc, 1.0, 2.0\n")
    with pytest.raises(ValueError, match=r"s\.csv:4: expected 4 fields"):
        audioset.read_segments(tmp_path / "s.csv")


def test_multi_hot_unknown_label():
    index = pd.DataFrame({"index": [0, 1], "mid": ["/m/a", "/m/b"], "display_name": ["A", "B"]})
    assert audioset.multi_hot([["/m/b"], ["/m/a", "/m/b"]], index).tolist() == [[0, 1], [1, 1]]
    with pytest.raises(KeyError, match="/m/c"):
        audioset.multi_hot([["/m/c"]], index)
    assert audioset.multi_hot([["/m/c"]], index, strict=False).sum() == 0


def test_mini_pool_is_in_the_official_format(mini_data):
    root = mini_data.audioset_dir
    onto = audioset.read_ontology(root / "ontology.json")
    index = audioset.read_class_index(root / "class_labels_indices.csv")
    truth = pd.read_csv(root / "mini_truth.csv")
    for name in audioset.SEGMENT_LISTS:
        path = root / f"{name}.csv"
        lines = path.read_text().splitlines()
        assert lines[0].startswith("# Segments csv created") and lines[2] == "# YTID, start_seconds, end_seconds, positive_labels"
        seg = audioset.read_segments(path)
        assert lines[1] == audioset.segments_header(seg, "x")[1]
        assert audioset.multi_hot(seg["positive_labels"], index).sum(1).min() >= 1  # every label is a real class
        assert all(m in onto for ls in seg["positive_labels"] for m in ls)
        part = truth[truth["list"] == name]
        assert part["YTID"].tolist() == seg["YTID"].tolist()
        assert 0.15 < part["in_domain"].mean() < 0.45
        assert (mini_data.audioset_audio_dir / clip_name("files", name, seg["YTID"].iloc[0])).is_file()
