"""Where and how a run computes: the device (a free GPU per job), CPU threads, fast kernels, autocast, seeds."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from poolnas.errors import UsageError

_DEVICE_LOCKS: list = []  # open lock files: held for the life of the process


def lock_path(index: int, slot: int) -> Path:
    """The lock file of one job slot of one GPU (slot 0 keeps the one-job-per-GPU name)."""
    return Path(tempfile.gettempdir()) / (f"poolnas-cuda{index}.lock" if slot == 0 else
                                          f"poolnas-cuda{index}-slot{slot}.lock")


def free_gpu(slots: int = 1) -> torch.device:
    """A CUDA device with a job slot no other poolnas process holds (a file lock per slot), so that concurrent
    Snakemake jobs on one machine share the GPUs `slots` jobs per device. Slots fill breadth first: every GPU's
    first slot before any second one. Falls back to cuda:0 when all are taken. The lock is held for the life of
    the process."""
    import fcntl

    if slots < 1:
        raise UsageError(f"gpu_slots must be >= 1, got {slots}")
    for slot in range(slots):
        for index in range(torch.cuda.device_count()):
            handle = open(lock_path(index, slot), "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            _DEVICE_LOCKS.append(handle)
            return torch.device("cuda", index)
    return torch.device("cuda", 0)


def resolve_device(spec: str, gpu_slots: int = 1) -> torch.device:
    """auto: a free GPU slot when there is a GPU, else the CPU; or exactly what was asked for."""
    if spec == "auto":
        return free_gpu(gpu_slots) if torch.cuda.is_available() else torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {spec!r} asked for, but this machine has no CUDA device; use --device cpu")
    return torch.device(spec)


def setup_runtime(device: torch.device, threads: int) -> None:
    """Threads for CPU runs; fast kernels for GPU runs (TF32, cuDNN autotuning)."""
    if device.type == "cpu":
        torch.set_num_threads(threads)
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True


def runtime_options(device: torch.device) -> dict:
    """What `setup_runtime` turns on beyond the profile, for a record's options: TF32 matmuls and convolutions
    and cuDNN autotuning on GPU (TF32 changes the numbers on Ampere and later GPUs; the release's V100 has none);
    nothing on CPU, so CPU records keep their keys."""
    return {} if device.type == "cpu" else {"tf32": True, "cudnn_benchmark": True}


def autocast(device: torch.device, precision: str):
    """bf16 autocast when asked; parameters (BatchNorm's included) stay fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# The random stream (of derive_seed) that orders every evaluation whose result depends on the batches' composition
# (BN with batch statistics): the final search-validation evaluation and, when asked, the standalone test set.
# The search's own streams (validation minibatches 1, sampler 2, random-search draw 3) are in search.base.
EVAL_ORDER = 4


def derive_seed(seed: int, stream: int) -> int:
    """An independent 32-bit seed for one random stream of a run (numpy's SeedSequence of (seed, stream))."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, np.uint32)[0])


def to_device(model: torch.nn.Module, device: torch.device, channels_last: bool) -> torch.nn.Module:
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def log(message: str) -> None:
    """Progress goes to stderr (the workflow sends it to each job's log file)."""
    print(message, file=sys.stderr, flush=True)
