"""Checks of command-line values that `cli` runs before any work: each bad value is one UsageError line (exit 2)
and nothing is written (a writability probe creates and removes one empty file in an existing directory).

Ranges and why:
- seeds: 0 .. 2**32 - 1. torch.manual_seed takes up to 2**64 - 1 and numpy's SeedSequence any size, but a seed is
  also the bootstrap seed and the split seed of records that other tools read; 32 bits is the range every numpy and
  torch entry point accepts (the legacy RandomState too), and far more seeds than any study runs.
- threads: 1 .. 1024. torch accepts any positive count and starts that many OpenMP threads: 100000 fails inside
  the thread library after the data is loaded. 1024 is twice the hardware threads of the largest current
  two-socket machines (2 x 128 cores x 2); a fixed bound (not this machine's CPU count) keeps a command line valid
  on every machine, e.g. a SLURM node with other CPUs than the submit host.
- devices: auto, cpu, cuda, cuda:N (the profiles' schema allows the same names).
- file names: a record's temporary `.<name>.<8 random>.tmp` is 14 bytes longer than its name, a checkpoint's
  set-aside name up to 30; both must fit the file system's NAME_MAX (255 on Linux), checked before any work.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from poolnas.errors import UsageError
from poolnas.records import TEMPORARY

SEED_MAX = 2**32 - 1
THREADS_MAX = 1024
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
SPECIAL = (Path("/proc"), Path("/sys"), Path("/dev"))  # kernel file systems: never a place for results


def seed(value: int, flag: str = "--seed") -> None:
    if not 0 <= value <= SEED_MAX:
        raise UsageError(f"{flag} must be >= 0 and <= {SEED_MAX} (2**32 - 1), got {value}")


def threads(value: int | None) -> None:
    if value is not None and not 1 <= value <= THREADS_MAX:
        raise UsageError(f"--threads must be >= 1 and <= {THREADS_MAX}, got {value}")


def device(value: str | None) -> None:
    if value is None:
        return
    if not DEVICE.fullmatch(value):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {value!r}")
    if value.startswith("cuda:"):
        import torch

        count = torch.cuda.device_count()
        if count and int(value[5:]) >= count:
            raise UsageError(f"--device {value}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")


def _nonempty(value: str, flag: str) -> Path:
    if not value or not value.strip():
        raise UsageError(f"{flag} is empty; give a path")
    path = Path(value).expanduser()
    absolute = Path(os.path.abspath(path))
    if any(absolute == s or s in absolute.parents for s in SPECIAL):
        raise UsageError(f"{flag} {value} is under {next(s for s in SPECIAL if s == absolute or s in absolute.parents)}"
                         ", a kernel file system; give a path on a normal disk")
    return path


def _writable(directory: Path, flag: str, value: str) -> None:
    """The nearest existing ancestor of `directory` (what mkdir -p starts from) is a directory we can write in."""
    existing = Path(os.path.abspath(directory))
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {value}: {existing} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".poolnas-write-test-")
    except OSError as err:
        raise UsageError(f"{flag} {value}: cannot write in {existing} ({err.strerror or err})") from None
    os.close(fd)
    os.unlink(probe)


def _name_fits(path: Path, flag: str, value: str, longer_by: int) -> None:
    """The longest name made from `path`'s (its temporary, `longer_by` bytes longer) fits the file system's
    NAME_MAX, checked in the nearest existing ancestor: else that write would fail after the work."""
    existing = Path(os.path.abspath(path.parent))
    while not existing.exists():
        existing = existing.parent
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255  # what Linux file systems allow
    size = len(os.fsencode(path.name))
    if size + longer_by > limit:
        raise UsageError(f"{flag} {value}: the name is {size} bytes and the temporary made from it {longer_by} more, "
                         f"over this file system's {limit}; give a name of at most {limit - longer_by} bytes")


def output_file(value: str | None, flag: str = "--out", longer_by: int = TEMPORARY) -> None:
    """A file the command will write atomically: not empty, not a directory, in a writable place, its temporary's
    name (`longer_by` bytes longer) not too long."""
    if value is None:
        return
    path = _nonempty(value, flag)
    if path.is_dir() or value.endswith(("/", os.sep)):
        raise UsageError(f"{flag} {value} is a directory; give a file path inside it")
    if path.exists() and not path.is_file():
        raise UsageError(f"{flag} {value} exists and is not a regular file")
    _writable(path.parent, flag, value)
    _name_fits(path, flag, value, longer_by)


def output_dir(value: str | None, flag: str = "--out") -> None:
    """A directory the command writes files into (created when missing)."""
    if value is None:
        return
    path = _nonempty(value, flag)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {value} is a file; give a directory")
    _writable(path, flag, value)


def input_dir(value: str | None, flag: str, *, created: bool = False) -> None:
    """A directory the command reads (`created`: or creates, when it is missing, e.g. --data-dir)."""
    if value is None:
        return
    path = _nonempty(value, flag)
    if not path.exists():
        if created:
            _writable(path, flag, value)
            return
        raise UsageError(f"{flag} {value} does not exist")
    if not path.is_dir():
        raise UsageError(f"{flag} {value} is not a directory")
    try:
        os.listdir(path)
    except OSError as err:
        raise UsageError(f"{flag} {value} cannot be read ({err.strerror or err})") from None


def run_arguments(args) -> Path | None:
    """`train` and `search`, before any work: values in range, the record's and checkpoint's places writable, the
    data readable. Returns the checkpoint's path when the arguments name one (else the run's default is checked)."""
    from poolnas.engine.checkpoint import SET_ASIDE, default_path  # here: it imports torch, which train needs anyway

    seed(args.seed)
    threads(args.threads)
    device(args.device)
    output_file(args.out, "--out")
    checkpoint_dir = getattr(args, "checkpoint_dir", None)
    output_dir(checkpoint_dir, "--checkpoint-dir")
    checkpoint, flag = args.checkpoint, "--checkpoint"
    if checkpoint is None and checkpoint_dir is not None:
        checkpoint, flag = str(Path(checkpoint_dir) / (Path(args.out).stem + ".pt")), "--checkpoint-dir's checkpoint"
    # the default .checkpoints/ beside --out too: a file of that name, or a directory for the .pt, would else fail
    # after the first epoch; a checkpoint's longest derived name is the one it is set aside under
    output_file(checkpoint or str(default_path(args.out)), flag if checkpoint else "the checkpoint beside --out",
                longer_by=max(TEMPORARY, len(SET_ASIDE)))
    input_dir(args.data_dir, "--data-dir", created=True)
    for sub in ("cache", "raw"):
        if args.data_dir and (Path(args.data_dir) / sub).exists():
            input_dir(str(Path(args.data_dir) / sub), f"--data-dir (its {sub}/)")
    return None if checkpoint is None else Path(checkpoint)


def results_dir(path: str) -> str:
    """A --results folder that a command reads: it must exist."""
    if not Path(path).is_dir():
        raise UsageError(f"--results {path} is not a directory")
    return path
