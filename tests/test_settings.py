"""Profiles: which study stands for which of the paper's (`stands_for`) and the crop of resized-crop data (`crop`)."""

import copy

import pytest
import yaml

from poolnas import settings
from poolnas.errors import UsageError

SMOKE = yaml.safe_load((settings.PROFILE_DIR / "smoke.yaml").read_text())


def test_smoke_has_a_stand_in_for_every_study_of_the_paper():
    assert set(settings.resolve("smoke").stand_ins()) == set(settings.PAPER_STUDIES)
    stand_in = settings.resolve("smoke").stand_ins()
    assert stand_in["food101", "resnet50"] == "glyphs-crops" and stand_in["cifar100", "resnet50"] == "glyphs"


def test_without_stands_for_a_study_stands_for_its_own_dataset_if_the_paper_has_it():
    assert settings.resolve("paper").stand_ins() == {s: s[0] for s in settings.PAPER_STUDIES}
    # mini: glyphs is named for CIFAR10; fashion-mnist, unnamed and not the paper's, stands for nothing
    assert settings.resolve("mini").stand_ins() == {("cifar10", "resnet20"): "glyphs"}


def with_study(change) -> dict:
    profile = copy.deepcopy(SMOKE)
    change(profile)
    return profile


def study(profile, dataset, backbone) -> dict:
    return next(s for s in profile["studies"] if (s["dataset"], s["backbone"]) == (dataset, backbone))


@pytest.mark.parametrize("change, words", [
    (lambda p: study(p, "glyphs", "resnet18").update(stands_for="cifar100"),
     "study glyphs/resnet18: stands_for cifar100, but the paper has no cifar100/resnet18 study (for resnet18: cifar10)"),
    (lambda p: study(p, "glyphs", "resnet50").update(stands_for="food101"),
     "whose resnet50 has the ImageNet stem, but glyphs is read with recipe flip (the CIFAR stem)"),
    (lambda p: study(p, "glyphs-crops", "resnet50").update(stands_for="cifar100"),
     "whose resnet50 has the CIFAR stem, but glyphs-crops is read with recipe resized-crop-flip (the ImageNet stem)"),
    (lambda p: p["studies"].append({**copy.deepcopy(study(p, "glyphs", "resnet18")), "backbone": "resnet20"}),
     "study glyphs/resnet20: twoscale/resnet20 already stands for cifar10/resnet20"),
    (lambda p: study(p, "glyphs", "resnet18").update(stands_for="imagenet"), "stands_for: 'imagenet' is not one of"),
    (lambda p: p["datasets"]["twoscale"].update(crop=12),
     "datasets/twoscale: crop applies to the datasets read with random resized crops (food101, glyphs-crops), "
     "not twoscale (recipe pad-crop-flip)"),
    (lambda p: p["datasets"]["glyphs-crops"].update(crop=40), "datasets/glyphs-crops: crop 40 exceeds the images' size 36"),
    (lambda p: p["datasets"]["glyphs-crops"].update(crop=4), "crop: 4 is less than the minimum of 8"),
    (lambda p: p["protocols"]["resnet20"].update(stage_widths=[8, 16, 32]),
     "protocols/resnet20: stage_widths is for resnet18 and resnet50"),
    (lambda p: p["search"]["resnet50@glyphs-crops"].update(stage_widths=[8, 16, 32]),
     "search/resnet50@glyphs-crops: stage_widths needs 4 widths (one per stage of resnet50), got 3"),
    (lambda p: study(p, "twoscale", "resnet20")["search"].update(baselines=["sbe"],
                                                                 baseline_seeds_by_method={"mcts": [0, 1]}),
     "study twoscale/resnet20: search/baseline_seeds_by_method names mcts, which search/baselines does not run"),
    (lambda p: study(p, "twoscale", "resnet20")["search"].update(baseline_seeds_by_method={"spos": [0]}),
     "baseline_seeds_by_method"),
])
def test_a_bad_stand_in_or_crop_is_one_line_naming_what_is_wrong(change, words):
    with pytest.raises(UsageError) as err:
        settings.resolve(with_study(change))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_crop_is_the_loaders_not_a_generation_parameter():
    smoke = settings.resolve("smoke")
    assert smoke.crop("glyphs-crops") == 32 and "crop" not in smoke.dataset_params("glyphs-crops")
    assert smoke.crop("twoscale") is None and settings.resolve("paper").crop("food101") is None  # 224
    with pytest.raises(UsageError, match="dataset 'cifar10' is not in profile smoke"):
        smoke.crop("cifar10")
