"""Search spaces: the single source of truth for configuration names, numbering and codes.

A configuration says where a network downsamples. The network is a chain of `n_units` units (for ResNet20 the
stem and 9 residual blocks; for ResNet18 the stem and 8 blocks; for ResNet50 its 16 bottleneck blocks) and a
configuration splits that chain into `n_parts` consecutive stages, each at half the resolution of the one
before. So a configuration is a composition of `n_units` into `n_parts` positive parts:

    name  "[4,3,3]"    units at full, half and quarter resolution (ResNet20 counts the stem as a unit)
    code  "0000100100" bit i = 1 when unit i downsamples its input (the stem never does)
    index 24           1-based position in lexicographic order of the parts (= of the downsampling positions)

The relaxed ResNet20 space (DARTS baselines) lets each of the 9 blocks pick a resolution level 0/1/2 freely;
its paths are written as 9 digits, e.g. "000111222" (= [4,3,3]).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import cached_property

from poolnas.errors import UsageError


@dataclass(frozen=True)
class Config:
    """One downsampling placement in a space."""

    space: str
    parts: tuple[int, ...]
    index: int  # 1-based, paper numbering

    @property
    def positions(self) -> tuple[int, ...]:
        """Unit indices whose input is downsampled (cumulative sums of all parts but the last)."""
        return tuple(itertools.accumulate(self.parts[:-1]))

    @property
    def name(self) -> str:
        return "[" + ",".join(map(str, self.parts)) + "]"

    @property
    def slug(self) -> str:
        """File-name form, e.g. 4-3-3."""
        return "-".join(map(str, self.parts))

    @property
    def code(self) -> str:
        n_units = sum(self.parts)
        return "".join("1" if i in self.positions else "0" for i in range(n_units))

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Space:
    """All compositions of `n_units` into `n_parts` positive parts, numbered lexicographically from 1."""

    name: str
    n_units: int
    n_parts: int
    default_parts: tuple[int, ...]
    units: str  # what a unit is, for messages and docs

    @cached_property
    def configs(self) -> tuple[Config, ...]:
        cuts = itertools.combinations(range(1, self.n_units), self.n_parts - 1)
        all_parts = [tuple(b - a for a, b in zip((0, *c), (*c, self.n_units))) for c in cuts]
        return tuple(Config(self.name, p, i) for i, p in enumerate(sorted(all_parts), start=1))

    @cached_property
    def _by_parts(self) -> dict[tuple[int, ...], Config]:
        return {c.parts: c for c in self.configs}

    def __len__(self) -> int:
        return len(self.configs)

    def __iter__(self):
        return iter(self.configs)

    @property
    def default(self) -> Config:
        return self._by_parts[self.default_parts]

    @property
    def rule(self) -> str:
        example = ",".join(map(str, self.default_parts))
        return (f"{self.name} configs are {self.n_parts} positive parts summing to {self.n_units} ({self.units}), "
                f"written like [{example}] or {example.replace(',', '-')}, an index 1..{len(self)}, "
                f"or a {self.n_units}-bit code with {self.n_parts - 1} ones")

    def by_index(self, index: int) -> Config:
        if not 1 <= index <= len(self):
            raise UsageError(f"index {index} is out of range: {self.name} has configs 1..{len(self)}")
        return self.configs[index - 1]

    def from_parts(self, parts: tuple[int, ...]) -> Config:
        name = "[" + ",".join(map(str, parts)) + "]"
        if len(parts) != self.n_parts:
            raise UsageError(f"config {name} has {len(parts)} parts; {self.rule}")
        if any(p < 1 for p in parts):
            raise UsageError(f"config {name} has a part below 1; {self.rule}")
        if sum(parts) != self.n_units:
            raise UsageError(f"config {name} sums to {sum(parts)}; {self.rule}")
        return self._by_parts[tuple(parts)]

    def from_code(self, code: str) -> Config:
        ones = [i for i, bit in enumerate(code) if bit == "1"]
        if len(ones) != self.n_parts - 1 or (ones and ones[0] == 0):
            raise UsageError(f"code {code} sets bits {ones}; {self.name} codes have {self.n_parts - 1} ones "
                             f"among {self.n_units} bits and never bit 0")
        bounds = (0, *ones, self.n_units)
        return self._by_parts[tuple(b - a for a, b in zip(bounds, bounds[1:]))]

    def parse(self, text: str | int | Config) -> Config:
        """Read what a user typed: "[4,3,3]", "4,3,3", "4-3-3", "4 3 3", "24" or "0000100100"."""
        if isinstance(text, Config):
            if text.space != self.name:
                raise UsageError(f"config {text.name} belongs to {text.space}, not {self.name}")
            return text
        if isinstance(text, int):
            return self.by_index(text)
        s = str(text).strip()
        if re.fullmatch(r"[01]+", s) and len(s) == self.n_units:
            return self.from_code(s)
        if re.fullmatch(r"\d+", s):
            return self.by_index(int(s))
        body = s[1:-1] if s.startswith("[") and s.endswith("]") else s
        pieces = [p for p in re.split(r"[,\-\s]+", body.strip()) if p]
        if not pieces or not all(re.fullmatch(r"\d+", p) for p in pieces):
            raise UsageError(f"cannot read config {text!r}; {self.rule}")
        return self.from_parts(tuple(int(p) for p in pieces))


@dataclass(frozen=True)
class RelaxedSpace:
    """ResNet20 with a free resolution level (0 full, 1 half, 2 quarter) for each of the 9 blocks: 3^9 paths.

    Paths are tuples of levels; index = the path read as a base-3 number (0-based). Monotone paths with both
    levels present are the 36 ResNet20 configs.
    """

    name: str = "resnet20-relaxed"
    n_layers: int = 9
    n_levels: int = 3
    base: str = "resnet20"

    def __len__(self) -> int:
        return self.n_levels ** self.n_layers

    def index(self, levels: tuple[int, ...]) -> int:
        return int("".join(map(str, levels)), self.n_levels)

    def from_index(self, index: int) -> tuple[int, ...]:
        if not 0 <= index < len(self):
            raise UsageError(f"index {index} is out of range: {self.name} has paths 0..{len(self) - 1}")
        digits = []
        for _ in range(self.n_layers):
            index, d = divmod(index, self.n_levels)
            digits.append(d)
        return tuple(reversed(digits))

    def parse(self, text: str) -> tuple[int, ...]:
        """Read "000111222", "0,0,0,1,1,1,2,2,2" or "[0,0,0,1,1,1,2,2,2]"; or a ResNet20 config."""
        s = str(text).strip()
        digits = re.sub(r"[\[\]\(\),\s-]", "", s)
        if re.fullmatch(r"[0-2]+", digits) and len(digits) == self.n_layers:
            return tuple(int(d) for d in digits)
        try:  # any ResNet20 config is also a path of the relaxed space
            return self.from_config(SPACES[self.base].parse(s))
        except UsageError:
            raise UsageError(f"cannot read path {text!r}; {self.name} paths are {self.n_layers} levels "
                             f"from 0 (full) to {self.n_levels - 1} (quarter), one per block, like 000111222, "
                             f"or a {self.base} config") from None

    def from_config(self, config: Config) -> tuple[int, ...]:
        """The per-block levels of a ResNet20 config (the stem, unit 0, is always at level 0)."""
        return tuple(sum(unit >= p for p in config.positions) for unit in range(1, sum(config.parts)))

    def to_config(self, levels: tuple[int, ...]) -> Config | None:
        """The ResNet20 config a path equals, or None when it is non-monotone or skips a level."""
        parts = [1 + sum(1 for lv in levels if lv == 0)] + [sum(1 for lv in levels if lv == k) for k in (1, 2)]
        if list(levels) != sorted(levels) or 0 in parts[1:]:
            return None
        return SPACES[self.base].from_parts(tuple(parts))

    @staticmethod
    def name_of(levels: tuple[int, ...]) -> str:
        return "".join(map(str, levels))


SPACES: dict[str, Space] = {
    "resnet20": Space("resnet20", n_units=10, n_parts=3, default_parts=(4, 3, 3),
                      units="the stem and 9 basic blocks; 2x2 max pools"),
    "resnet18": Space("resnet18", n_units=9, n_parts=4, default_parts=(3, 2, 2, 2),
                      units="the stem and 8 basic blocks; strided convs"),
    "resnet50": Space("resnet50", n_units=16, n_parts=4, default_parts=(3, 4, 6, 3),
                      units="16 bottleneck blocks, stem not counted; strided convs"),
}
RELAXED = RelaxedSpace()


# A learned-groups or learned-widths variant of a config (issue 17; `arch.variants` reads and builds them): here,
# torch-free, because the workflow's naming contract (`plan`) uses it as a wildcard pattern.
VARIANT_SLUG = r"g[0-9a-f]+|w\d+(-\d+)+"


def get_space(name: str) -> Space:
    try:
        return SPACES[name]
    except KeyError:
        raise UsageError(f"unknown backbone {name!r}; known: {', '.join(SPACES)}") from None


def parse_config(backbone: str, text: str | int) -> Config:
    return get_space(backbone).parse(text)
