"""Seeded, class-stratified subsets of a real training set, and a held-out part of it that stands in for the test set.

A real dataset registered with a `Subsetting` (poolnas.data.datasets) takes three integer parameters, as the
generated sets take theirs: `train` (how many training images the cache keeps; 0: all), `seed` (which ones) and,
for a pilot variant (`holdout_only`), `holdout` (how many further training images become the cache's test split).
A pilot cache is then read by the same training and search code as the real one, while the real test images are
never opened: protocol choices made on it cannot have seen a test number (issue 31).

The draw: rows are shuffled (numpy, SeedSequence(seed)), ranked within their class, and ordered by the quantile
of that rank in its class, so every stretch of the order holds each class in proportion to its size; the first
`holdout` rows are the held-out split, the next `train` rows the training subset. The two never overlap; the
held-out images do not depend on `train` (pilots of several training sizes are scored on the same images), and a
larger `train` keeps every image of a smaller one with the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from poolnas.errors import UsageError


@dataclass(frozen=True)
class Subsetting:
    """The parameters of a real set's subset: what `datasets.prepare` fills, checks and names the cache by."""

    name: str           # the dataset's registry name, first in the cache's directory name
    full_train: int     # the size of the source's training split (Fashion-MNIST: 60,000)
    holdout_only: bool  # a pilot variant: the test split is held-out training images (`holdout` >= 1)

    @property
    def keys(self) -> tuple[str, ...]:
        return ("seed", "train", "holdout") if self.holdout_only else ("seed", "train")

    def params(self, given: dict) -> dict[str, int]:
        """Defaults filled (seed 0, train 0 = all, holdout 5,000), as ints; a UsageError naming what is allowed."""
        given = {k: v for k, v in given.items() if v is not None}
        unknown = set(given) - set(self.keys)
        if unknown:
            raise UsageError(f"{self.name} takes the parameters {', '.join(self.keys)}, not {', '.join(sorted(unknown))}")
        p = {"seed": 0, "train": 0, **({"holdout": 5000} if self.holdout_only else {}), **given}
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in p.values()):
            raise UsageError(f"{self.name} parameters must be integers, got {p}")
        p = {k: int(p[k]) for k in self.keys}
        if self.holdout_only and not 1 <= p["holdout"] <= self.full_train - 1:
            raise UsageError(f"{self.name}: holdout must be 1..{self.full_train - 1}, got {p['holdout']}")
        room = self.full_train - p.get("holdout", 0)
        if p["seed"] < 0 or not 0 <= p["train"] <= room:
            raise UsageError(f"{self.name}: seed must be >= 0 and train 0..{room} (0: all the training images"
                             + (" not held out" if self.holdout_only else "") + f"), got seed {p['seed']}, "
                             f"train {p['train']}")
        return p

    def cache_name(self, params: dict) -> str:
        return f"{self.name}-" + "-".join(f"{k}{v}" for k, v in self.params(params).items())


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """Every row index once, ordered so that each prefix holds every class in proportion (module docstring)."""
    labels = np.asarray(labels)
    order = np.random.default_rng(np.random.SeedSequence(seed)).permutation(len(labels))
    grouped = order[np.argsort(labels[order], kind="stable")]  # by class, shuffled within each class
    _, first, counts = np.unique(labels[grouped], return_index=True, return_counts=True)
    rank = np.arange(len(grouped)) - np.repeat(first, counts)
    quantile = (rank + 0.5) / np.repeat(counts, counts)
    return grouped[np.argsort(quantile, kind="stable")]


def select(labels: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """(training rows, held-out rows or None), each sorted, for the parameters of `Subsetting.params`."""
    order = stratified_order(labels, params["seed"])
    held = params.get("holdout", 0)
    train = order[held: held + params["train"]] if params["train"] else order[held:]
    return np.sort(train), (np.sort(order[:held]) if held else None)


def search_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, class-stratified 50/50 split of a training set: (search-train, search-validation) row indices.

    Within each class the rows are shuffled and the first ceil(n/2) go to search-train. Both outputs are
    sorted; the same labels and seed always give the same split.
    """
    labels = np.asarray(labels)
    order = np.random.default_rng(np.random.SeedSequence(seed)).permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]  # grouped by class, shuffled within each class
    _, first, counts = np.unique(labels[order], return_index=True, return_counts=True)
    rank = np.arange(len(order)) - np.repeat(first, counts)  # position of each row within its class
    to_train = rank < np.repeat(counts - counts // 2, counts)
    return np.sort(order[to_train]), np.sort(order[~to_train])
