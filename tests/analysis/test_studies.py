"""A second ResNet20 study in the report: its own column, and no verdict while it is in progress (analysis.studies)."""

import pandas as pd

from poolnas import settings
from poolnas.analysis import studies, verdicts as V
from poolnas.analysis.verdicts import Judgement


def frames(gt_rows: int, searches: int) -> dict:
    return {"groundtruth": pd.DataFrame({"dataset": ["fashion-mnist"] * gt_rows + ["glyphs"],
                                         "backbone": ["resnet20"] * (gt_rows + 1), "profile": ["mini"] * (gt_rows + 1)}),
            "search": pd.DataFrame({"dataset": ["fashion-mnist"] * searches, "backbone": ["resnet20"] * searches,
                                    "profile": ["mini"] * searches})}


def test_the_profiles_other_resnet20_study_is_found_and_counted_against_its_plan():
    f = frames(14, 2)
    (study,) = studies.other_studies(f, "glyphs", "mini")
    assert study["dataset"] == "fashion-mnist"
    assert studies.planned(study) == (108, 45)
    assert studies.progress(f, study) == "14 of 108 ground-truth runs and 2 of 45 searches are in"
    assert "in force from commit" in studies.heading(study)
    assert studies.other_studies(f, "glyphs", None) == [study]  # the records' profile, when it is a known one


def test_an_in_progress_study_is_not_judged_and_its_column_says_so():
    judged = [Judgement("position", "c", "s", "t", "F = 9.0, p = 0.001", V.REPRODUCES, power="yes")]
    other = studies.OtherStudy(settings.resolve("mini").study("fashion-mnist", "resnet20"),
                               studies.withheld(judged), ["- In progress"])
    assert judged[0].verdict == V.MISSING and "F = 9.0" not in judged[0].evidence
    heads, rules = studies.header_cells([other])
    assert heads.count("fashion-mnist:") == 2 and rules == "---|---|"
    assert studies.row_cells([other], "position").endswith("| **not verifiable** |")
    assert studies.row_cells([other], "absent") == " | |"
    text = "\n".join(studies.section([other]))
    assert "## Further ResNet20 studies" in text and "not verifiable 1" in text
