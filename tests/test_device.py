"""The GPU paths, checked on the CPU: device choice and its loud failure, the device memory budget, teacher
passes under autocast, TF32 and the cuDNN autotuner (simulated devices where a GPU would be needed)."""
import pytest
import torch
from torch import nn

from asc_lib.data import rows
from asc_lib.training import device, distill, evaluate, loop


def test_auto_is_the_cpu_without_a_driver_and_says_so(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device.shutil, "which", lambda name: None)
    device._announce.cache_clear()
    assert device.resolve_device("auto") == torch.device("cpu")
    assert "device auto: cpu (no NVIDIA driver)" in capsys.readouterr().out
    assert device.resolve_device("cpu") == torch.device("cpu")


def test_a_driver_without_usable_cuda_stops_with_the_reason_and_the_fix(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "driver_version", lambda: "535.104.05, NVIDIA A100-SXM4-40GB, 8.0")
    monkeypatch.delenv(device.ALLOW_CPU_ENV, raising=False)
    with pytest.raises(device.DeviceError) as err:
        device.resolve_device("auto")
    text = str(err.value)
    assert "535.104.05" in text and "torch.cuda.is_available() is False" in text
    assert "driver >= 580" in text and device.CUDA12_INDEX in text and device.ALLOW_CPU_ENV in text
    # on purpose: the CPU, said so
    monkeypatch.setenv(device.ALLOW_CPU_ENV, "1")
    device._announce.cache_clear()
    assert device.resolve_device("auto") == torch.device("cpu")
    assert "ASC_ALLOW_CPU=1" in capsys.readouterr().out


def test_a_gpu_without_kernels_in_this_build_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (6, 1))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Tesla P40")
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_90"])
    assert "compute capability 6.1" in device.cuda_unusable_reason()
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (8, 0))
    assert device.cuda_unusable_reason() is None


def test_teacher_precision_settings(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert device.precision("auto", cpu) is None and device.precision("float32", gpu) is None
    assert device.precision("bfloat16", cpu) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert device.precision("auto", gpu) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # e.g. a T4
    assert device.precision("auto", gpu) == torch.float16
    with pytest.raises(ValueError, match="float16 autocast is for GPUs"):
        device.precision("float16", cpu)
    with pytest.raises(ValueError, match="not one of"):
        device.precision("fp8", cpu)


def test_configure_enables_tf32_and_the_autotuner_on_cuda_only(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    before = torch.get_float32_matmul_precision()
    device.configure(torch.device("cpu"))
    assert torch.get_float32_matmul_precision() == before and torch.backends.cudnn.benchmark is False
    try:
        device.configure(torch.device("cuda"))
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.benchmark is True
    finally:
        torch.set_float32_matmul_precision(before)


class _Probe(nn.Module):
    """A teacher that records the dtype its layer computes in."""

    def __init__(self):
        super().__init__()
        self.layer, self.seen = nn.Linear(8, 3), []

    def forward(self, x):
        y = self.layer(x)
        self.seen.append(y.dtype)
        return y


def test_teacher_passes_run_under_autocast_when_the_recipe_says_so(tmp_path):
    waves = torch.randn(10, 8)
    probe = _Probe()
    plain = distill.teacher_outputs(probe, waves, {"t": 1}, device="cpu", cache_dir=tmp_path)
    assert set(probe.seen) == {torch.float32}  # auto on the CPU: float32 (EfficientAT's inference.py)
    probe.seen.clear()
    mixed = distill.teacher_outputs(probe, waves, {"t": 1}, device="cpu", cache_dir=tmp_path,
                                    precision="bfloat16")
    assert set(probe.seen) == {torch.bfloat16} and mixed.dtype == torch.float32  # cached as float32
    assert len(list(tmp_path.glob("logits-*.npy"))) == 2  # the precision is part of the cache key
    assert torch.allclose(plain, mixed, atol=0.05) and not torch.equal(plain, mixed)


def test_the_device_budget_is_a_share_of_the_gpus_free_memory(monkeypatch):
    gib = 2**30
    monkeypatch.setenv(rows.BUDGET_ENV, "64")
    monkeypatch.delenv(rows.DEVICE_SHARE_ENV, raising=False)
    assert rows.memory_budget() == rows.memory_budget("cpu") == 64 * gib
    assert rows.memory_budget(torch.device("cuda:0"), free=40 * gib) == 20 * gib  # half of a 40 GB card's free memory
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (24 * gib, 24 * gib))  # a fake 24 GB card
    assert rows.memory_budget("cuda") == 12 * gib
    monkeypatch.setenv(rows.DEVICE_SHARE_ENV, "0.75")
    assert rows.memory_budget("cuda") == 18 * gib
    assert rows.memory_budget("cuda", free=200 * gib) == 64 * gib  # never above the host's budget
    monkeypatch.setenv(rows.DEVICE_SHARE_ENV, "2")
    with pytest.raises(ValueError, match="ASC_DEVICE_MEMORY_SHARE"):
        rows.memory_budget("cuda")


def test_what_fits_the_device_goes_there_smallest_first():
    gib = 2**30
    # Werning's KD at threshold 0.1 (about 2.9 M pieces): uint8 targets, float32 logits, float16 waves
    sizes = {"labels": 23 * 2**20, "targets": int(1.5 * gib), "teacher_logits": 6 * gib, "waves": 185 * gib}
    assert rows.placement(sizes, 12 * gib) == {"labels", "targets", "teacher_logits"}  # a 24 GB card
    assert rows.placement(sizes, 4 * gib) == {"labels", "targets"}
    assert rows.placement(sizes, 0) == set()


def test_train_data_keeps_what_exceeds_the_device_budget_in_host_memory(monkeypatch):
    data = loop.TrainData(torch.zeros(6, 100), torch.arange(6), {"targets": torch.ones(6, 4, dtype=torch.uint8)})
    moved_to = []
    monkeypatch.setattr(loop, "moved", lambda t, d: moved_to.append(tuple(t.shape)) or t)
    data.to(torch.device("cuda"), budget=6 * 8 + 24 + 10)  # labels (48 B) and targets (24 B), not the waves
    assert sorted(moved_to) == [(6,), (6, 4)]
    batch = data.batch(torch.tensor([1, 3]), torch.device("cpu"))
    assert batch["targets"].dtype == torch.uint8 and batch["waves"].shape == (2, 100)


def test_fp16_evaluation_reuses_one_twin_of_the_model():
    model = nn.Sequential(nn.Linear(8, 3))
    a = evaluate._half_twin(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    b = evaluate._half_twin(model)
    assert a is b and b[0].weight.dtype == torch.float16  # one twin, its weights refreshed
    assert torch.allclose(b[0].weight.float(), model[0].weight, atol=1e-2)
