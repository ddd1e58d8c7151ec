"""The authors' released per-configuration table for ResNet20, and the `rank` command.

The released format has one row per configuration:

    architecture,baseline_avg,baseline_stdev,M1_avg,M1_stdev,M2_avg,M2_stdev,...,M8_avg,M8_stdev,

`architecture` is the 1-based ResNet20 index (poolnas.spaces numbering), `baseline_*` the ground truth
(standalone test accuracy, mean and std over runs) and `M<m>_*` the SuperNet evaluation accuracy of a mixture
of m SuperNets (the y values of Figure 3). Every line ends with a comma, i.e. an empty last column.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from poolnas.errors import UsageError
from poolnas.spaces import SPACES
from poolnas.stats import ranking_table

SPACE = SPACES["resnet20"]
# The authors' released table, committed with its provenance (paper/released/README.md); relative to the
# repository root, like the other default paths of the command line.
RELEASED_CSV = "paper/released/released_resnet20_per_config.csv"
TIDY_COLUMNS = ["index", "config", "gt_mean", "gt_std", "models", "supernet_mean", "supernet_std"]
_MODEL_COLUMN = re.compile(r"M(\d+)_avg")


def read_released(path: str | Path) -> pd.DataFrame:
    """Read a released-format table into a tidy frame: one row per (config, M), columns TIDY_COLUMNS.

    Raises UsageError (one line) for a missing or unreadable file, missing columns, non-numeric cells, or
    an architecture index that is not a unique ResNet20 index 1..36.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {path} as CSV: {str(err).splitlines()[0]}") from None
    # The trailing comma of every line makes pandas invent an empty "Unnamed: N" column; drop only those.
    raw = raw.drop(columns=[c for c in raw.columns if str(c).startswith("Unnamed:") and raw[c].isna().all()])

    models = sorted(int(m.group(1)) for c in raw.columns if (m := _MODEL_COLUMN.fullmatch(str(c))))
    required = ["architecture", "baseline_avg", "baseline_stdev"] + [f"M{m}_stdev" for m in models]
    missing = [c for c in required if c not in raw.columns]
    if missing or not models:
        missing += [] if models else ["M<m>_avg"]
        raise UsageError(f"{path} lacks column(s) {', '.join(missing)}; the released format is architecture, "
                         f"baseline_avg, baseline_stdev, then M<m>_avg, M<m>_stdev for each number of SuperNets m")
    if raw.empty:
        raise UsageError(f"{path} has a header but no rows")
    numeric = raw[required + [f"M{m}_avg" for m in models]].apply(pd.to_numeric, errors="coerce")
    if numeric.isna().any().any():
        column = numeric.columns[numeric.isna().any()][0]
        line = int(numeric.index[numeric[column].isna()][0]) + 2  # 1-based, after the header
        raise UsageError(f"{path} line {line}: column {column} is empty or not a number")

    index = numeric["architecture"]
    bad = index[(index != index.round()) | (index < 1) | (index > len(SPACE))]
    if len(bad):
        raise UsageError(f"{path}: architecture {bad.iloc[0]:g} is not a ResNet20 config index 1..{len(SPACE)}")
    if index.duplicated().any():
        raise UsageError(f"{path}: architecture {int(index[index.duplicated()].iloc[0])} appears more than once")

    frames = [pd.DataFrame({
        "index": index.astype(int),
        "config": [SPACE.by_index(int(i)).name for i in index],
        "gt_mean": numeric["baseline_avg"], "gt_std": numeric["baseline_stdev"],
        "models": m, "supernet_mean": numeric[f"M{m}_avg"], "supernet_std": numeric[f"M{m}_stdev"],
    }) for m in models]
    return pd.concat(frames, ignore_index=True)[TIDY_COLUMNS].sort_values(["models", "index"], ignore_index=True)


def rank_released(tidy: pd.DataFrame, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """The ranking metrics of each M's SuperNet scores against the ground truth (one row per M)."""
    table = ranking_table(tidy, by="models", gt="gt_mean", score="supernet_mean", label="config",
                          n_boot=n_boot, seed=seed, level=level)
    pick_index = {c.name: c.index for c in SPACE}
    table.insert(table.columns.get_loc("pick"), "pick_index", table["pick"].map(pick_index))
    return table.rename(columns={"models": "M"})


# --- command line -------------------------------------------------------------------------------------------


def register(sub) -> None:
    p = sub.add_parser("rank", help="rank correlation of SuperNet scores with the ground truth, per M",
                       description="Read a per-configuration table in the authors' released format and print, "
                                   "for each number of SuperNets M: Kendall tau-b, Spearman, top-1/3/5 overlap, "
                                   "regret of the pick (accuracy points), percentile bootstrap intervals over "
                                   "configs, and the config the SuperNet scores would pick.")
    p.add_argument("path", nargs="?", default=RELEASED_CSV,
                   help=f"CSV with architecture, baseline_avg, baseline_stdev, M<m>_avg, M<m>_stdev (default "
                        f"{RELEASED_CSV})")
    p.add_argument("--format", choices=["csv", "table"], default="csv")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                   help="bootstrap resamples for the intervals; 0 leaves the interval columns out (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap generator (default 0)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    p.set_defaults(func=_cli_rank)


def _cli_rank(args) -> int:
    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if not 0 < args.level < 1:
        raise UsageError(f"--level must be between 0 and 1, got {args.level}")
    table = rank_released(read_released(args.path), n_boot=args.bootstrap, seed=args.seed, level=args.level)
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False, lineterminator="\n", float_format="%.6g")
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        note = f"; {args.level:.0%} percentile intervals over {args.bootstrap} config resamples (seed {args.seed})"
        print(f"\nKendall tau-b and Spearman of SuperNet score vs ground truth; regret in accuracy points"
              + (note if args.bootstrap else ""))
    return 0
