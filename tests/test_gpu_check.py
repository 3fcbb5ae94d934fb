"""make gpu-check on a machine without a GPU: it says so and exits 0; its stages run on the CPU through the same
code (--device cpu); what counts as a fallback is named."""
import pandas as pd
import torch

from asc_lib.study import gpu_check
from asc_lib.training import device


def _no_gpu(monkeypatch, driver=None):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "driver_version", lambda: driver)
    monkeypatch.delenv(device.ALLOW_CPU_ENV, raising=False)


def test_without_a_gpu_it_says_so_and_passes(monkeypatch, capsys):
    _no_gpu(monkeypatch)
    assert gpu_check.main([]) == 0
    assert "No usable GPU on this machine" in capsys.readouterr().out


def test_a_driver_without_usable_cuda_fails_before_any_stage(monkeypatch, capsys):
    _no_gpu(monkeypatch, driver="470.82.01, Tesla T4, 7.5")
    assert gpu_check.main([]) == 1
    out = capsys.readouterr().out
    assert "GPU check FAILED before any stage" in out and "470.82.01" in out


def test_every_stage_runs_through_the_same_code_on_the_cpu(capsys):
    assert gpu_check.main(["--device", "cpu", "--steps", "1", "--teacher-clips", "8"]) == 0
    out = capsys.readouterr().out
    assert "GPU check passed" in out
    for stage in ("baseline", "mean teacher", "MSE on probabilities", "527-class", "teacher pass"):
        assert stage in out


def test_a_fallback_is_named():
    table = pd.DataFrame([{"stage": "baseline", "on device": "cpu", "precision": "float32", "expected": "bfloat16",
                           "loss": float("nan")}]).set_index("stage")
    found = gpu_check.problems(table, torch.device("cuda"))
    assert found == ["baseline: the model is on cpu, not cuda",
                     "baseline: computed in float32, the recipe asks for bfloat16", "baseline: the loss is nan"]
