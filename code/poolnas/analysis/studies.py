"""The report's further ResNet20 studies: the paper's claims judged on a second dataset, side by side.

A profile may run the ResNet20 study on more than one dataset (mini: `glyphs`, exploratory, and `fashion-mnist`,
confirmatory, with a preregistration). The study that stands for the paper's CIFAR10 fills Tables 1-2 and the
report's main columns; every other ResNet20 study of the profile gets the same claims, judged by the same code, in
a column of its own, and a summary of its own (its design, ground-truth signal and search health).

A study marked `in_progress` is not judged: its claims say how many of its planned runs are in. Its preregistration
judges each claim once, on all its runs; a verdict on part of them would be a look at its test numbers that decides
nothing (and could tempt a change).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from poolnas import plan, settings
from poolnas.analysis import verdicts as V
from poolnas.analysis.checks import cell
from poolnas.analysis.tables import records_profile


@dataclass
class OtherStudy:
    study: dict
    judged: list = field(default_factory=list)  # claims.Judgement, in the main study's order
    summary: list = field(default_factory=list)  # report lines

    @property
    def dataset(self) -> str:
        return self.study["dataset"]


def other_studies(frames: dict, main: str | None, profile: str | None = None) -> list[dict]:
    """The profile's ResNet20 studies other than `main` (profile: a name or .yaml; by default the records' when it
    is one of the package's)."""
    name = profile or records_profile(frames)
    if name is None or (profile is None and name not in settings.available()):
        return []
    return [s for s in settings.resolve(name).studies if s["backbone"] == "resnet20" and s["dataset"] != main]


def planned(study: dict) -> tuple[int, int]:
    """(ground-truth runs, searches) the study plans."""
    gt = len(settings.groundtruth_configs(study)) * len(study["groundtruth"]["seeds"])
    return gt, sum(len(plan.search_seeds(study, name)) for name in plan.search_names(study))


def made(frames: dict, dataset: str) -> tuple[int, int]:
    gt, search = frames["groundtruth"], frames["search"]
    return (int(((gt.dataset == dataset) & (gt.backbone == "resnet20")).sum()),
            int(((search.dataset == dataset) & (search.backbone == "resnet20")).sum()))


def heading(study: dict) -> str:
    pre = study.get("preregistration")
    kind = (f"confirmatory: preregistered in `{pre['document']}`, in force from commit {pre['commit']}" if pre
            else "its design is in the profile")
    return f"`{study['dataset']}` ({kind})"


def progress(frames: dict, study: dict) -> str:
    (gt, search), (gt_made, search_made) = planned(study), made(frames, study["dataset"])
    return f"{gt_made} of {gt} ground-truth runs and {search_made} of {search} searches are in"


def withheld(judged: list) -> list:
    """An in-progress study's claims: none judged, each saying how far the runs are."""
    line = "not judged while the study is in progress (its section says how far it is)"
    for j in judged:
        j.verdict, j.evidence, j.power = V.MISSING, line, ""
    return judged


def section(others: list[OtherStudy]) -> list[str]:
    """The report's section on the further studies, after its summary."""
    lines = []
    for other in others:
        tally = pd.Series([j.verdict for j in other.judged], dtype=object).value_counts()
        lines += ["", f"### Study {heading(other.study)}", "", *other.summary,
                  f"- Claims ({len(other.judged)}): " + ", ".join(f"{v} {tally.get(v, 0)}" for v in V.VERDICTS[:4])
                  + "; each in the claims table's columns for this study."]
    return ["", "## Further ResNet20 studies", *lines] if lines else []


def header_cells(others: list[OtherStudy]) -> tuple[str, str]:
    """The claims table's extra header cells and their separator cells."""
    heads = "".join(f" {o.dataset}: evidence | {o.dataset}: verdict |" for o in others)
    return heads, "---|---|" * len(others)


def row_cells(others: list[OtherStudy], key: str) -> str:
    cells = ""
    for other in others:
        j = next((j for j in other.judged if j.key == key), None)
        cells += f" {cell(j.evidence)} | **{j.verdict}** |" if j else " | |"
    return cells
