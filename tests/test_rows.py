"""Bounded memory: rows read from disk answer like resident tensors, a streamed run trains to the same
weights as a resident one, and the budget decides which path a data set takes."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from test_audioset_clips import SR, _both_layouts, _data, _segments
from test_train import TOY_RECIPE, _objective, _toy

from asc_lib.data import rows, unlabeled
from asc_lib.models.cpmobile import build_cp_mobile
from asc_lib.training import loop


def _npy(tmp_path, array) -> rows.DiskRows:
    path = tmp_path / "rows.npy"
    np.save(path, array)
    return rows.DiskRows(path, "test")


def test_disk_rows_answer_like_a_tensor(tmp_path):
    array = np.arange(60, dtype=np.float16).reshape(12, 5)
    disk, resident = _npy(tmp_path, array), torch.from_numpy(array)
    index = torch.tensor([7, 2, 2, 11, 0])
    assert torch.equal(disk[index], resident[index])
    assert torch.equal(disk[3:9], resident[3:9]) and disk.shape == (12, 5) and disk.nbytes == array.nbytes
    assert torch.equal(disk.resident(chunk=5), resident)
    again = pickle.loads(pickle.dumps(disk))  # what a DataLoader worker receives: the file reopened
    assert again._fd is None and torch.equal(again[index], resident[index])
    with pytest.raises(IndexError, match="out of range"):
        disk[torch.tensor([12])]


def test_pieces_view_and_concatenation(tmp_path):
    clips = np.arange(3 * 8, dtype=np.int16).reshape(3, 8)
    path = tmp_path / "clips.npy"
    np.save(path, clips)
    counts = np.array([2, 1, 2])
    pieces = rows.DiskRows(path, "c", unlabeled.piece_layout(counts, 4))
    assert len(pieces) == 5
    assert pieces.resident().tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [16, 17, 18, 19],
                                          [20, 21, 22, 23]]
    head = torch.full((2, 4), -1, dtype=torch.int16)
    both = rows.concat([head, pieces])
    assert isinstance(both, rows.ConcatRows) and len(both) == 7
    assert both[torch.tensor([6, 0, 2])].tolist() == [[20, 21, 22, 23], [-1, -1, -1, -1], [0, 1, 2, 3]]
    assert torch.equal(rows.concat([head, head]), torch.cat([head, head]))


def test_the_budget_decides_resident_or_streamed(tmp_path):
    segments = _segments([2.0, 2.0, 0.6, 2.0, 1.5])
    _both_layouts(tmp_path, segments)
    data = _data(tmp_path, "files")
    resident = unlabeled.subset_pieces(segments, data, SR)
    streamed = unlabeled.subset_pieces(segments, data, SR, budget=resident.waves.numel() // 10)
    assert isinstance(resident.waves, torch.Tensor) and isinstance(streamed.waves, rows.DiskRows)
    assert torch.equal(streamed.waves.resident(), resident.waves)
    assert streamed.waves.nbytes == resident.waves.numel() * resident.waves.element_size()


def test_budget_and_workers_from_the_environment(monkeypatch):
    monkeypatch.setenv(rows.BUDGET_ENV, "1.5")
    assert rows.memory_budget() == int(1.5 * 2**30)
    monkeypatch.setenv(rows.BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match="ASC_MEMORY_BUDGET_GB='lots'"):
        rows.memory_budget()
    monkeypatch.delenv(rows.BUDGET_ENV)
    assert 0 < rows.memory_budget() <= rows.physical_memory() or rows.physical_memory() == 0
    monkeypatch.setenv(rows.WORKERS_ENV, "0")
    assert rows.loader_workers() == 0


@pytest.mark.parametrize("workers", [0, 1])
def test_a_streamed_run_ends_with_the_resident_weights(tmp_path, workers):
    """Same seed, data ten times the budget: the DataLoader path reads the batches the resident path
    gathers, and leaves the global RNG (augmentation draws) alone, so the weights are equal bit for bit."""
    toy = _toy(n=40)
    np.save(tmp_path / "waves.npy", toy.waves.numpy())
    streamed_waves = rows.DiskRows(tmp_path / "waves.npy", "toy")
    assert streamed_waves.nbytes >= 10 * (toy.waves[:4].numel() * 2)

    def run(data, name):
        torch.manual_seed(0)
        model = build_cp_mobile(n_classes=2)
        history = loop.fit(model, _objective(), data, {**TOY_RECIPE, "epochs": 2}, tmp_path / name, seed=3,
                            device="cpu")
        return model, history, torch.rand(1)

    import os
    os.environ[rows.WORKERS_ENV] = str(workers)
    try:
        resident, h1, after1 = run(toy, "resident")
        streamed, h2, after2 = run(loop.TrainData(streamed_waves, toy.labels), "streamed")
    finally:
        del os.environ[rows.WORKERS_ENV]
    assert [r["loss"] for r in h1] == [r["loss"] for r in h2]
    for (name, a), (_, b) in zip(resident.state_dict().items(), streamed.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(after1, after2)  # fit leaves the RNG in the same state either way


def test_feature_cache_refuses_streamed_data(tmp_path):
    toy = _toy(n=8)
    np.save(tmp_path / "w.npy", toy.waves.numpy())
    data = loop.TrainData(rows.DiskRows(tmp_path / "w.npy", "toy"), toy.labels)
    with pytest.raises(ValueError, match="feature_cache needs the training data resident"):
        loop.fit(build_cp_mobile(n_classes=2), _objective(), data, {**TOY_RECIPE, "feature_cache": True},
                  tmp_path / "r", seed=0, device="cpu")


def test_fingerprint_of_streamed_data_follows_its_identity(tmp_path):
    toy = _toy(n=8)
    np.save(tmp_path / "w.npy", toy.waves.numpy())
    a = loop.data_digest(loop.TrainData(rows.DiskRows(tmp_path / "w.npy", "key-a"), toy.labels))
    b = loop.data_digest(loop.TrainData(rows.DiskRows(tmp_path / "w.npy", "key-b"), toy.labels))
    assert a != b


class _Interrupt(Exception):
    pass


def test_teacher_outputs_resume_after_an_interruption(tmp_path, monkeypatch):
    """Killed after some saved batches, the computation continues from the last save, and the result equals
    an uninterrupted one; over the budget the outputs come back as rows on disk."""
    from asc_lib.training import distill

    torch.manual_seed(0)
    teacher, waves = torch.nn.Linear(6, 3), torch.randn(40, 6)
    straight = distill.teacher_outputs(teacher, waves, {"t": 1}, batch_size=4, cache_dir=tmp_path / "a")
    real, calls = distill.compute_logits, []

    def dies_on_the_sixth(*args, **kwargs):
        calls.append(args[-2])
        if len(calls) == 6:
            raise _Interrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(distill, "compute_logits", dies_on_the_sixth)
    with pytest.raises(_Interrupt):
        distill.teacher_outputs(teacher, waves, {"t": 1}, batch_size=4, cache_dir=tmp_path / "b",
                                save_every=2)
    calls.clear()
    monkeypatch.setattr(distill, "compute_logits", lambda *a, **k: calls.append(a[-2]) or real(*a, **k))
    resumed = distill.teacher_outputs(teacher, waves, {"t": 1}, batch_size=4, cache_dir=tmp_path / "b", budget=0)
    assert calls[1] == 16  # after the probe row: batches 0-3 were saved (two saves of two), so it restarts at row 16
    assert isinstance(resumed, rows.DiskRows) and torch.equal(resumed.resident(), straight)
    assert not list((tmp_path / "b").glob("*.partial*"))


@pytest.mark.parametrize("layout", ["files", "hdf5"])
def test_clips_over_the_budget_are_decoded_on_the_fly_like_the_cache(tmp_path, layout, monkeypatch):
    """A single pass over more clips than the budget holds decodes them in workers instead of caching them:
    the same rows, so the same teacher logits."""
    from asc_lib.data import audio
    from asc_lib.training import distill

    segments = _segments([2.0, 0.6, 2.0, 1.5, 2.0])
    _both_layouts(tmp_path, segments)
    data = _data(tmp_path, layout)
    cached = unlabeled.clip_rows(segments, data, SR)
    decoded = unlabeled.clip_rows(segments, data, SR, budget=0)
    assert isinstance(cached, torch.Tensor) and isinstance(decoded, audio.DecodedRows)
    assert torch.equal(decoded[torch.tensor([4, 1])], cached[torch.tensor([4, 1])])
    assert decoded.identity == unlabeled.clips_identity(segments, data, SR)
    monkeypatch.setenv(rows.WORKERS_ENV, "1")
    teacher = torch.nn.Linear(2 * SR, 3)
    one = distill.compute_logits(teacher, cached, None, 2, torch.device("cpu"))
    two = distill.compute_logits(teacher, decoded, None, 2, torch.device("cpu"))
    torch.testing.assert_close(one, two, rtol=0, atol=0)


def test_a_truncated_rows_file_is_named(tmp_path):
    disk = _npy(tmp_path, np.zeros((4, 100), dtype=np.float16))
    data = (tmp_path / "rows.npy").read_bytes()
    (tmp_path / "rows.npy").write_bytes(data[:-50])
    with pytest.raises(ValueError, match=r"rows.npy: the file is shorter than its header says"):
        rows.DiskRows(tmp_path / "rows.npy", "x")[torch.tensor([3])]
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"bad.npy: not a .npy array"):
        len(rows.DiskRows(tmp_path / "bad.npy", "x"))
    assert len(disk) == 4
