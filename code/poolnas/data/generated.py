"""What every generated dataset has in common: its five integer parameters, its version and how it is drawn.

poolnas.data.datasets registers each `Generator` next to the real datasets; the cache directory is named
`<name>-v<version>-seed..-size..-classes..-train..-test..`, so a new version never reuses an old cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from poolnas.errors import UsageError

PARAMS = ("seed", "size", "classes", "train", "test")  # the `data prepare` flags of every generated set


@dataclass(frozen=True)
class Generator:
    name: str
    version: int  # bump whenever `make`'s output changes: it names the cache
    defaults: dict[str, int]  # one value per PARAMS key
    make: Callable[..., tuple[np.ndarray, np.ndarray]]  # (n, *, seed, size, classes, split) -> images, labels
    class_names: Callable[[int], list[str]]
    check: Callable[[dict[str, int]], None]  # raises UsageError on a size or class count the set cannot draw
    source: str  # meta.json's `source`

    def params(self, given: dict[str, Any]) -> dict[str, int]:
        """The parameters with defaults filled in, as ints; a UsageError for unknown or invalid ones."""
        unknown = set(given) - set(PARAMS)
        if unknown:
            raise UsageError(f"unknown {self.name} parameter(s) {sorted(unknown)}; known: {', '.join(PARAMS)}")
        p = {**self.defaults, **{k: v for k, v in given.items() if v is not None}}
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in p.values()):
            raise UsageError(f"{self.name} parameters must be integers, got {p}")
        p = {k: int(p[k]) for k in PARAMS}
        if p["seed"] < 0:
            raise UsageError(f"--seed must be >= 0, got {p['seed']}")
        if p["train"] < 1 or p["test"] < 1:
            raise UsageError(f"--train and --test must be >= 1, got {p['train']} and {p['test']}")
        self.check(p)
        return p

    def cache_name(self, params: dict[str, int]) -> str:
        return f"{self.name}-v{self.version}-" + "-".join(f"{k}{v}" for k, v in self.params(params).items())


# The spawn key of each split's random stream is its position here: fixed, so that neither split depends on the
# other or on the order poolnas.data.datasets prepares them in.
STREAMS = ("train", "test")


def split_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAMS.index(split),)))
