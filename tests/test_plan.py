"""The naming contract (poolnas.plan): names round-trip, and the rules' patterns accept every name it makes."""

import copy
import re

import pytest

from poolnas import plan, settings
from poolnas.analysis.aggregate import search_name as record_search_name
from poolnas.arch.spaces import RELAXED, SPACES, get_space
from poolnas.cli import build_parser

PROFILES = settings.available()


def search_command(parser, search: str, profile: str):
    """The search command the workflow runs for a search name, parsed by the command line's own parser."""
    return parser.parse_args(["search", *plan.search_arguments(search).split(), "--profile", profile,
                              "--dataset", "d", "--backbone", "b", "--seed", "0", "--out", "o.json"])


@pytest.mark.parametrize("name", PROFILES)
def test_every_search_name_round_trips_to_its_command_and_back(name):
    profile = settings.resolve(name)
    parser = build_parser("search")
    for study in profile.studies:
        for search in plan.search_names(study):
            assert re.fullmatch(plan.SEARCH_SLUG, search), search
            method, models, candidates, budget = plan.parse_search_name(search)
            assert plan.search_name(method, models, candidates, budget) == search
            args = search_command(parser, search, name)
            assert (args.method, args.models, args.configs, args.budget_models) == (method, models, candidates, budget)
            # aggregate names a record's search the same way the workflow named its folder
            record = {"method": method, "models": models, "candidates": candidates, "budget_models": budget}
            assert record_search_name(record) == search


@pytest.mark.parametrize("name", PROFILES)
def test_every_extension_search_name_round_trips_to_its_command(name):
    profile = settings.resolve(name)
    parser = build_parser("search")
    for study in profile.studies:
        for search in plan.extension_names(study):
            assert re.fullmatch(plan.SEARCH_SLUG, search), search
            method, pooling, rho = plan.parse_extension_name(search)
            assert plan.extension_name(method, pooling, rho) == search and plan.parse_search_name(search)[1:] == (
                None, None, None)
            args = search_command(parser, search, name)
            assert (args.method, args.pooling, args.rho) == (method, pooling, rho)
            record = {"method": method, "backbone": study["backbone"], "budget_rho": rho,
                      "pooling": {"requested": pooling if pooling in ("default", "best") else
                                  SPACES[study["backbone"]].parse(pooling).name}}
            assert record_search_name(record) == search


def test_extension_names_cover_every_config_and_budget():
    study = {"backbone": "resnet20", "extensions": {"seeds": [0], "dgconv": {"configs": ["default", 36],
                                                                              "budgets": [25, 50]},
                                                    "conet": {"configs": ["best", "[2,3,5]"]}}}
    assert plan.extension_names(study) == ["dgconv-R25-default", "dgconv-R50-default", "dgconv-R25-8-1-1",
                                           "dgconv-R50-8-1-1", "conet-best", "conet-2-3-5"]
    assert plan.search_seeds(study, "conet-best") == [0]


def test_baselines_run_their_own_seeds_where_a_method_is_named():
    search = {"seeds": [0, 1, 2], "mixture": [4], "baselines": ["darts", "sbe", "mcts"], "baseline_seeds": [0],
              "baseline_seeds_by_method": {"sbe": [0, 1, 2]}}
    study = {"backbone": "resnet20", "search": search}
    assert [plan.search_seeds(study, n) for n in ("mixture-M4", "darts", "sbe", "mcts")] == [[0, 1, 2], [0],
                                                                                            [0, 1, 2], [0]]
    del search["baseline_seeds"]  # without it, the rest run the mixtures' seeds
    assert plan.search_seeds(study, "darts") == [0, 1, 2] and plan.search_seeds(study, "sbe") == [0, 1, 2]


def test_extension_retraining_names_every_variant_and_the_plain_config():
    profile = settings.resolve("smoke")
    found = {"dgconv-R50-default": ("[4,3,3]", "g1", {"fixed_groups": {"variant": "g2"}}),
             "conet-best": ("[8,1,1]", "w1-2", {"uniform_widths": {"variant": "w3-4"}})}

    def record(dataset, backbone, search, seed):
        config, variant, compare = found[search]
        return {"selected": {"config": config, "variant": variant}, "compare": compare}

    layout = plan.Layout("smoke")
    records = plan.extension_retrain_records(profile, record)
    seeds = profile.study("twoscale", "resnet20")["extensions"]["retrain_seeds"]
    expected = [layout.variant_record("twoscale", "resnet20", c, v, r) for c, v in
                (("4-3-3", "g1"), ("4-3-3", "g2"), ("8-1-1", "w1-2"), ("8-1-1", "w3-4")) for r in seeds]
    expected += [layout.train_record("twoscale", "resnet20", c, r) for c in ("4-3-3", "8-1-1") for r in seeds]
    assert records == sorted(expected)
    variant = re.escape(f"{layout.runs}/train/") + r"[a-z0-9]+/[a-z0-9-]+/(" + plan.CONFIG_SLUG + r")/(" + \
        plan.VARIANT_SLUG + r")/seed\d+\.json"
    assert all(re.fullmatch(variant, r) for r in records if r.count("/") == 8)


@pytest.mark.parametrize("name", ["smoke", "mini"])
def test_only_profiles_with_extensions_plan_their_csv_table_and_figure(name):
    profile = settings.resolve(name)
    raw = copy.deepcopy(profile.as_dict())
    for study in raw["studies"]:
        study.pop("extensions", None)
    without = settings.resolve(raw)
    assert plan.EXTENSION_CSV in plan.csv_names(profile) and plan.EXTENSION_CSV not in plan.csv_names(without)
    assert "groups_widths" in plan.table_names(profile) and "groups_widths" not in plan.table_names(without)
    assert "groups_widths_cost" in plan.figure_names(profile)
    assert "groups_widths_cost" not in plan.figure_names(without)


@pytest.mark.parametrize("name", PROFILES)
def test_record_paths_match_the_rules_wildcards(name):
    profile = settings.resolve(name)
    layout = plan.Layout(profile.name)
    train = re.escape(f"{layout.runs}/train/") + r"[a-z0-9-]+/[a-z0-9-]+/(" + plan.CONFIG_SLUG + r")/seed\d+\.json"
    search = re.escape(f"{layout.runs}/search/") + r"[a-z0-9-]+/[a-z0-9]+/(" + plan.SEARCH_SLUG + r")/seed\d+\.json"
    records = plan.groundtruth_records(profile)
    assert records and all(re.fullmatch(train, r) for r in records)
    assert all(re.fullmatch(search, r) for r in plan.search_records(profile))


def test_retrain_records_name_configs_and_relaxed_paths():
    profile = settings.resolve("smoke")
    picks = {"darts": {"config": None, "path": "010212021"}}

    def selected(dataset, backbone, search, seed):
        default = get_space(backbone).default
        return picks.get(search, {"config": default.name, "index": default.index})

    records = plan.retrain_records(profile, selected)
    assert any("/resnet20/4-3-3/" in r for r in records)
    assert {"glyphs/resnet18/3-2-2-2", "glyphs/resnet50/3-4-6-3", "glyphs-crops/resnet50/3-4-6-3"} <= {
        "/".join(r.split("/")[-4:-1]) for r in records}  # the picks of Tables 3-4's searches
    assert any(f"/{RELAXED.name}/010212021/" in r for r in records) == any(
        "darts" in plan.search_names(s) for s in profile.studies)
    assert records == sorted(set(records))


def test_parse_search_name_is_the_inverse_for_any_size():
    for method in plan.SEARCH_METHODS:
        for models, candidates, budget in [(None, None, None), (1, None, None), (12, None, None), (None, 4, None),
                                           (1, None, 8)]:
            name = plan.search_name(method, models, candidates, budget)
            assert plan.parse_search_name(name) == (method, models, candidates, budget)


def test_layout_names_every_artefact():
    layout = plan.Layout("mini")
    assert layout.csv_files() == [f"results/mini/{c}.csv" for c in plan.CSVS]
    assert len(layout.table_files()) == len(plan.TABLE_NAMES) * 3
    assert layout.figure_files("figure3") == ["figures/mini/figure3.pdf", "figures/mini/figure3.png"]
    assert layout.train_record("twoscale", "resnet20", SPACES["resnet20"].default.slug, 0) == \
        "results/mini/runs/train/twoscale/resnet20/4-3-3/seed0.json"


def test_figures_are_planned_only_where_the_profile_runs_their_searches():
    smoke = settings.resolve("smoke")
    assert plan.figure_names(smoke) == list(plan.FIGURE_NAMES)
    raw = smoke.as_dict()
    raw["studies"][0]["search"] = {"seeds": [0]}  # ground truth only: the DAG must still complete
    raw["studies"][0].pop("extensions")
    assert any(s["search"].get("mixture") for s in raw["studies"][1:])  # ResNet18/50 mixtures feed no figure
    assert plan.figure_names(settings.resolve(raw)) == ["figure1", "accuracy_vs_macs", "groundtruth_spread"]
    raw["studies"][0]["search"] = {"seeds": [0], "mixture": [1]}  # no M > 1, no DARTS
    assert plan.figure_names(settings.resolve(raw)) == ["figure1", "figure3", "accuracy_vs_macs",
                                                        "ranking_vs_models", "groundtruth_spread"]



def test_an_in_progress_study_gives_the_tables_only_its_made_records(tmp_path, monkeypatch):
    """`in_progress`: the run targets want every record; the tables (made_only) read what exists of that study, and
    every record of a finished study, made or not (a missing one is then a job to run, not a row left out)."""
    raw = copy.deepcopy(settings.resolve("mini").as_dict())
    for study in raw["studies"]:
        study["in_progress"] = study["dataset"] == "fashion-mnist"
    profile = settings.resolve(raw)
    monkeypatch.chdir(tmp_path)
    layout = plan.Layout(profile.name)
    made = [layout.train_record("fashion-mnist", "resnet20", "4-3-3", 1),
            layout.search_record("fashion-mnist", "resnet20", "mixture-M4", 3)]
    for path in made:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("{}")
    every_gt, every_search = plan.groundtruth_records(profile), plan.search_records(profile)
    assert sum("/fashion-mnist/" in r for r in every_gt) == 108
    gt, search = plan.groundtruth_records(profile, made_only=True), plan.search_records(profile, made_only=True)
    assert [r for r in gt if "/fashion-mnist/" in r] == made[:1]
    assert [r for r in search if "/fashion-mnist/" in r] == made[1:]
    assert [r for r in gt if "/glyphs/" in r] == [r for r in every_gt if "/glyphs/" in r]  # none exists here
    picked = []
    retrain = plan.retrain_records(profile, lambda *search: picked.append(search) or {"config": "[6,2,2]"},
                                   made_only=True)
    assert [s for s in picked if s[0] == "fashion-mnist"] == [("fashion-mnist", "resnet20", "mixture-M4", 3)]
    assert not [r for r in retrain if "/fashion-mnist/" in r]  # its retraining has not run
