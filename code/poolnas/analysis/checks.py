"""Published numbers checked against recomputed ones: the record of one check and the text helpers the reports
share (half-up rounding as the paper prints, Markdown table cells). Used by verify, verify_released and tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd


@dataclass(frozen=True)
class Check:
    """One published claim and what our runs (verify) or the released data (verify_released) say about it."""

    key: str  # stable id, e.g. "figure3.tau.M4"
    section: str
    claim: str
    published: str
    ours: str = ""
    difference: str = ""
    tolerance: str = ""
    verdict: str = "note"  # in the report's own vocabulary: verify_released.VERDICTS keys, or claims.VERDICTS

    def markdown_row(self, verdict: str) -> str:
        """The check as a row of a | claim | published | ours | difference | tolerance | verdict | table."""
        return (f"| {cell(self.claim)} | {cell(self.published)} | {cell(self.ours)} | {cell(self.difference)} | "
                f"{cell(self.tolerance)} | {verdict} |")


NOT_RUN, RETRAIN_MISSING = "not run", "retraining not run"  # a table cell whose runs do not exist (decisions.md)


def tex(value) -> str:
    """`value` as LaTeX text (special characters escaped, ± as math)."""
    s = str(value)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("±", r"$\pm$")):
        s = s.replace(a, b)
    return s


def cell(text) -> str:
    """`text` as one Markdown table cell: pipes escaped, on one line, "-" when empty."""
    return str(text).replace("|", "\\|").replace("\n", " ") or "-"


def _round_half_up(value, places: int) -> Decimal:
    # round(., 10) only removes float noise (1.0300000000000011); the rounding itself is Decimal ROUND_HALF_UP.
    return Decimal(repr(round(float(value), 10))).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def half_up(value, places: int = 2, sign: bool = False) -> str:
    """`value` rounded half-up to `places` decimals, as text (90.525 -> 90.53); "" for a missing value."""
    if value is None or pd.isna(value):
        return ""
    d = _round_half_up(value, places)
    d = abs(d) if d == 0 else d  # never print -0.00
    return f"{d:+}" if sign else str(d)


def decimals(printed: str) -> int:
    """How many decimals a number was printed with."""
    return len(printed.split(".")[1]) if "." in printed else 0


def rounds_to(value: float, printed: str) -> bool:
    """Does `value`, rounded half-up to the printed number of decimals (as the paper rounds), print as `printed`?"""
    return _round_half_up(value, decimals(printed)) == Decimal(printed)
