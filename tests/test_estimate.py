"""GPU-hour estimates: calibrated so that the released ResNet20 runs cost what the authors reported (V100)."""

import pytest

from poolnas import estimate, settings


def released_resnet20() -> dict:
    """The paper profile cut to one default ResNet20 run (200 epochs, tested every 10) and one M = 4 search."""
    prof = settings.load("paper")
    prof["studies"] = [{"dataset": "cifar10", "backbone": "resnet20", "groundtruth": {"configs": ["default"],
                        "seeds": [0]}, "search": {"seeds": [0], "mixture": [4]}, "retrain": {"seeds": [0]}}]
    prof["search"]["resnet20"]["epochs"] = 100  # + the extra epoch: the released 101
    return prof


def test_calibration_reproduces_the_released_compute():
    rows = {r["kind"]: r for r in estimate.estimate(released_resnet20())}
    assert rows["groundtruth"]["jobs"] == 1 and rows["groundtruth"]["hours"] == pytest.approx(1.5, rel=0.01)
    assert rows["search"]["jobs"] == 1 and rows["search"]["hours"] == pytest.approx(6.0, rel=0.01)
    assert rows["retrain (at most)"]["jobs"] == 1


def test_costs_scale_with_epochs_configs_and_models():
    base = released_resnet20()
    longer = released_resnet20()
    longer["protocols"]["resnet20"]["epochs"] = 400
    longer["studies"][0]["search"]["mixture"] = [4, 8]
    a = {r["kind"]: r["hours"] for r in estimate.estimate(base)}
    b = {r["kind"]: r["hours"] for r in estimate.estimate(longer)}
    assert b["groundtruth"] == pytest.approx(2 * a["groundtruth"], rel=0.02)
    assert b["search"] > 2 * a["search"]  # M = 8 evaluates twice the (config, model) pairs


def test_gpu1_profile_is_about_one_gpu_day_and_the_report_names_it():
    hours = sum(r["hours"] for r in estimate.estimate("gpu1"))
    assert 12 <= hours <= 30
    text = estimate.report("gpu1")
    assert text.startswith("profile gpu1:") and "GPU-hours" in text and "groundtruth" in text


def test_search_length_follows_the_budget_option_as_the_search_resolves_it():
    import copy

    from poolnas import estimate, settings

    raw = copy.deepcopy(settings.load("smoke"))
    E = raw["search"]["resnet20"]["epochs"]
    total = settings.resolve(raw)
    raw["search"]["resnet20"]["budget"] = "per_supernet"
    per = settings.resolve(raw)
    run = lambda prof, name: estimate.search_epochs_run(prof, "resnet20", "twoscale", name)  # noqa: E731
    assert run(total, "mixture-M8") == run(total, "mixture-M1") == E + 1
    assert run(per, "mixture-M8") == 8 * E + 1 and run(per, "mixture-budget-M1-B8") == 8 * E + 1
    assert run(per, "random-K2") == 2 * E + 1 and run(per, "darts") == E + 1


def test_food101_searches_scale_with_m_and_stand_beside_the_published_hours():
    """The released Food101 search runs 75 x M epochs (+1; its M = 8 log: 601); the report splits each estimate
    into training and the final evaluation of every pair and prints the published GPU-hours beside it."""
    rows = estimate.against_published("paper")
    assert [r["search"] for r in rows] == ["mixture-M1", "mixture-M2", "mixture-M4", "mixture-M8"]
    assert [r["epochs_run"] for r in rows] == [76, 151, 301, 601]
    assert [r["published"] for r in rows] == [2.5, 4, 7.5, 15]
    assert [r["pairs"] for r in rows] == [455, 910, 1820, 3640]
    search = {r["study"]: r for r in estimate.estimate("paper") if r["kind"] == "search"}["food101/resnet50"]
    assert sum(r["train"] + r["eval"] for r in rows) == pytest.approx(search["hours"])
    text = estimate.report("paper")
    assert "published 15" in text and "log's rate" in text
    assert "published" not in estimate.report("gpu1")  # no per-M published figure for ResNet20


def test_the_released_log_rate_is_a_check_not_a_calibration():
    """The assumed ResNet50 rate stays the uncalibrated guess; the log's implied rate is only printed."""
    assert estimate.BIG_BACKBONE_SPEEDUP == 10.0
    assert estimate.released_log_rate() > 10 * estimate.BIG_BACKBONE_SPEEDUP
