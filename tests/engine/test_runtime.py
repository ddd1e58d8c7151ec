"""GPU job slots: the device locks let `gpu_slots` jobs share each GPU, filling every GPU's first slot first.

No GPU is needed: the device count is faked and the locks live in a temporary directory. flock locks of two
open() calls conflict even inside one process, so one process can stand for several jobs.
"""

import pytest
import torch

from poolnas import settings
from poolnas.engine import runtime
from poolnas.errors import UsageError


@pytest.fixture
def two_gpus(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    held = []
    monkeypatch.setattr(runtime, "_DEVICE_LOCKS", held)
    yield held
    for handle in held:
        handle.close()


def indices(n, slots):
    return [runtime.free_gpu(slots).index for _ in range(n)]


def test_one_slot_gives_each_job_its_own_gpu_then_falls_back(two_gpus):
    assert indices(3, 1) == [0, 1, 0]  # the third job finds no free GPU: cuda:0, as before
    assert len(two_gpus) == 2


def test_slots_fill_breadth_first(two_gpus):
    assert indices(4, 2) == [0, 1, 0, 1]
    assert len(two_gpus) == 4  # four distinct slots held


def test_a_released_slot_is_taken_again(two_gpus):
    indices(2, 2)
    two_gpus.pop(0).close()  # the job on GPU 0's first slot ends
    assert runtime.free_gpu(2).index == 0


def test_gpu_slots_in_the_profile():
    assert settings.resolve("smoke").gpu_slots == 1
    prof = settings.load("smoke")
    prof["gpu_slots"] = 4
    assert settings.resolve(prof).gpu_slots == 4
    prof["gpu_slots"] = 0
    with pytest.raises(UsageError, match="gpu_slots"):
        settings.resolve(prof)
    with pytest.raises(UsageError):
        runtime.free_gpu(0)


def test_runtime_options_name_tf32_on_gpu_only():
    """setup_runtime turns TF32 and cuDNN autotuning on for GPU runs; their records say so, CPU records gain no key."""
    import torch

    from poolnas.engine.runtime import runtime_options

    assert runtime_options(torch.device("cpu")) == {}
    assert runtime_options(torch.device("cuda", 0)) == {"tf32": True, "cudnn_benchmark": True}
