"""The naming contract: where every result file lives, what every search is called, which runs a profile implies.

The workflow (`rules/common.smk`) builds its job lists and paths from here, and `analysis.aggregate` reads record
names back through the same functions, so a name is written down once. Layout under the repository:

    results/<profile>/runs/train/<dataset>/<backbone>/<config slug>/seed<S>.json     standalone runs
    results/<profile>/runs/search/<dataset>/<backbone>/<search>/seed<S>.json         searches
    results/<profile>/runs/train/<dataset>/<backbone>/<config slug>/<variant>/seed<S>.json  issue 17's groups/widths
    results/<profile>/{logs,benchmarks}/...                                          per job, same sub-paths
    results/<profile>/<csv>.csv                                                      tidy tables (aggregate)
    figures/<profile>/<figure>.{pdf,png}, paper/tables/<profile>/<table>.{csv,tex,md}
    paper/verification/<profile>.md

A search is named `<method>-M<models>` (mixture), `<method>-K<configs>` (random), `<method>-M<models>-B<budget>`
(a mixture at another mixture's budget: the equal-budget control) or by its method alone (baselines).
`search_name` and `parse_search_name` are inverses; a unit test checks the round trip. The searches beyond the
pooling (issue 17) are named by method, budget and pooling: `dgconv-R<rho percent>-<pooling>`, `conet-<pooling>`,
the pooling `default`, `best` or a config slug (`extension_name`, `parse_extension_name`); what they find is
retrained under `<config slug>/<variant slug>/` (`arch.variants`).

Layering: this module sits above the library (settings, spaces, the METHODS table, cost) and below `analysis`
and the command line; it imports nothing that trains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from poolnas import settings
from poolnas.arch.spaces import RELAXED, SPACES, VARIANT_SLUG, get_space  # noqa: F401 (VARIANT_SLUG: for the rules)
from poolnas.search.methods import METHODS

PUBLISHED = "paper/published"
RELEASED = "paper/released/released_resnet20_per_config.csv"  # committed with its provenance (its README)
BACKBONES = tuple(SPACES)
SEARCH_METHODS = tuple(METHODS)

CSVS = ("groundtruth", "search", "search_eval", "search_epochs", "retrain", "ranking")
EXTENSION_CSV = "extensions"  # issue 17: written by aggregate only when there are such records (`csv_names`)
TABLE_NAMES = ("table1", "table2", "table3", "table4", "groups_widths")
FIGURE_NAMES = ("figure1", "figure3", "figure4", "figure5", "accuracy_vs_macs", "ranking_vs_models",
                "groundtruth_spread", "groups_widths_cost")
EXTENSION_ARTEFACTS = ("groups_widths", "groups_widths_cost")  # issue 17's table and figure: where a study runs them
TABLE_FORMATS = ("csv", "tex", "md")
FIGURE_FORMATS = ("pdf", "png")

TRAIN_RECORD = "{runs}/train/{dataset}/{backbone}/{config}/seed{seed}.json"
SEARCH_RECORD = "{runs}/search/{dataset}/{backbone}/{search}/seed{seed}.json"
CONFIG_SLUG = r"\d+(-\d+)+|[0-2]{9}"  # a config slug, or a relaxed-space path (resnet20-relaxed)
EXTENSION_SLUG = r"(dgconv-R\d+|conet)-(default|best|\d+(-\d+)+)"  # method (and budget), then the pooling
SEARCH_SLUG = r"[a-z][a-z-]*-(M|K)\d+(-B\d+)?|[a-z][a-z-]*[a-z]|" + EXTENSION_SLUG
VARIANT_RECORD = "{runs}/train/{dataset}/{backbone}/{config}/{variant}/seed{seed}.json"  # VARIANT_SLUG: arch.spaces


@dataclass(frozen=True)
class Layout:
    """The folders of one profile's results, relative to the repository."""

    profile: str

    @property
    def results(self) -> str:
        return f"results/{self.profile}"

    @property
    def runs(self) -> str:
        return f"{self.results}/runs"

    @property
    def logs(self) -> str:
        return f"{self.results}/logs"

    @property
    def benchmarks(self) -> str:
        return f"{self.results}/benchmarks"

    @property
    def figures(self) -> str:
        return f"figures/{self.profile}"

    @property
    def tables(self) -> str:
        return f"paper/tables/{self.profile}"

    @property
    def verification(self) -> str:
        return f"paper/verification/{self.profile}.md"

    def csv_files(self, names=CSVS) -> list[str]:
        return [f"{self.results}/{name}.csv" for name in names]

    def table_files(self, names=TABLE_NAMES) -> list[str]:
        names = [names] if isinstance(names, str) else names
        return [f"{self.tables}/{n}.{fmt}" for n in names for fmt in TABLE_FORMATS]

    def figure_files(self, names=FIGURE_NAMES) -> list[str]:
        names = [names] if isinstance(names, str) else names
        return [f"{self.figures}/{n}.{fmt}" for n in names for fmt in FIGURE_FORMATS]

    def train_record(self, dataset: str, backbone: str, config: str, seed: int | str) -> str:
        return TRAIN_RECORD.format(runs=self.runs, dataset=dataset, backbone=backbone, config=config, seed=seed)

    def search_record(self, dataset: str, backbone: str, search: str, seed: int | str) -> str:
        return SEARCH_RECORD.format(runs=self.runs, dataset=dataset, backbone=backbone, search=search, seed=seed)

    def variant_record(self, dataset: str, backbone: str, config: str, variant: str, seed: int | str) -> str:
        return VARIANT_RECORD.format(runs=self.runs, dataset=dataset, backbone=backbone, config=config,
                                     variant=variant, seed=seed)


# --- search names -------------------------------------------------------------------------------------------


def search_name(method: str, models: int | None = None, candidates: int | None = None,
                budget_models: int | None = None) -> str:
    """mixture-M4, random-K4, mixture-budget-M1-B8, darts: the directory name of a search."""
    name = method + (f"-M{models}" if models is not None else f"-K{candidates}" if candidates is not None else "")
    return name + (f"-B{budget_models}" if budget_models is not None else "")


def record_search_name(record: dict) -> str:
    """The directory name of a search from its record (`search_name`; `extension_name` beyond the pooling)."""
    if record.get("pooling"):
        requested = record["pooling"]["requested"]
        pooling = requested if requested in ("default", "best") else get_space(record["backbone"]).parse(requested).slug
        return extension_name(str(record["method"]), pooling, record.get("budget_rho"))
    return search_name(str(record["method"]), record.get("models"), record.get("candidates"),
                       record.get("budget_models"))


def parse_search_name(name: str) -> tuple[str, int | None, int | None, int | None]:
    """(method, models, candidates, budget_models) of a search name: the inverse of `search_name`."""
    match = re.fullmatch(r"(?P<method>[a-z][a-z-]*?)-(?P<kind>[MK])(?P<size>\d+)(-B(?P<budget>\d+))?", name)
    if not match:
        return name, None, None, None
    size, budget = int(match["size"]), match["budget"]
    return (match["method"], size if match["kind"] == "M" else None, size if match["kind"] == "K" else None,
            None if budget is None else int(budget))


def search_arguments(name: str) -> str:
    """The `poolnas search` arguments of a search name (a `best` pooling also needs --groundtruth: the rule adds it)."""
    extension = parse_extension_name(name)
    if extension:
        method, pooling, rho = extension
        return f"--method {method} --pooling {pooling}" + (f" --rho {rho}" if rho is not None else "")
    method, models, candidates, budget_models = parse_search_name(name)
    return (f"--method {method}" + (f" --models {models}" if models is not None else "")
            + (f" --configs {candidates}" if candidates is not None else "")
            + (f" --budget-models {budget_models}" if budget_models is not None else ""))


def control_budgets(names) -> list[int]:
    """The budgets B of the equal-budget controls among search names (mixture-budget-M1-B<B>), sorted, once each."""
    parsed = (parse_search_name(str(n)) for n in names)
    return sorted({budget for method, models, _, budget in parsed
                   if method == "mixture-budget" and models == 1 and budget is not None})


def search_names(study: dict) -> list[str]:
    """The searches of a study: each mixture size, the equal-budget controls, the two-config SuperNet (`pair`),
    random search, then each baseline."""
    spec = study["search"]
    return ([search_name("mixture", models=m) for m in spec.get("mixture", [])]
            + [search_name("mixture-budget", models=1, budget_models=b) for b in spec.get("controls", [])]
            + ([search_name("mixture-pair", models=1)] if spec.get("pair") else [])
            + ([search_name("random", candidates=spec["random"])] if spec.get("random") else [])
            + list(spec.get("baselines", [])))


def extension_name(method: str, pooling: str, rho: int | None = None) -> str:
    """dgconv-R25-default, conet-best, conet-8-1-1: the directory name of a search beyond the pooling."""
    return f"{method}-R{rho}-{pooling}" if method == "dgconv" else f"{method}-{pooling}"


def parse_extension_name(name: str) -> tuple[str, str, int | None] | None:
    """(method, pooling, rho) of a search beyond the pooling, None for any other search name."""
    match = re.fullmatch(EXTENSION_SLUG, name)
    if not match:
        return None
    method, _, rho = match[1].partition("-R")
    return method, match[2], int(rho) if rho else None


def extension_names(study: dict) -> list[str]:
    """A study's searches beyond the pooling: dgconv per pooling config and budget, then conet per pooling config."""
    configs, ext = settings.extension_configs(study), study.get("extensions") or {}
    return ([extension_name("dgconv", c, rho) for c in configs.get("dgconv", []) for rho in ext["dgconv"]["budgets"]]
            + [extension_name("conet", c) for c in configs.get("conet", [])])


def has_extensions(profile: settings.Settings) -> bool:
    return any(extension_names(s) for s in profile.studies)


def search_seeds(study: dict, name: str) -> list[int]:
    """Seeds of one search: the baselines may run fewer (`baseline_seeds`, or per method `baseline_seeds_by_method`)
    than the mixture and random search."""
    if parse_extension_name(name):
        return study["extensions"]["seeds"]
    spec = study["search"]
    if name not in spec.get("baselines", []):
        return spec["seeds"]
    return spec.get("baseline_seeds_by_method", {}).get(name, spec.get("baseline_seeds", spec["seeds"]))


# --- the runs a profile implies -----------------------------------------------------------------------------


def _kept(study: dict, record: str, made_only: bool) -> bool:
    """Whether a planned record is wanted: always, unless `made_only` asks for what an in-progress study has made so
    far (the tables read those; a study's `in_progress` key)."""
    return not (made_only and study.get("in_progress")) or Path(record).is_file()


def groundtruth_records(profile: settings.Settings, made_only: bool = False) -> list[str]:
    layout = Layout(profile.name)
    paths = ((s, layout.train_record(s["dataset"], s["backbone"], c.slug, seed))
             for s in profile.studies for c in settings.groundtruth_configs(s) for seed in s["groundtruth"]["seeds"])
    return [path for s, path in paths if _kept(s, path, made_only)]


def search_records(profile: settings.Settings, made_only: bool = False) -> list[str]:
    """Every search record: the pooling searches, then those beyond the pooling (issue 17)."""
    layout = Layout(profile.name)
    paths = ((s, layout.search_record(s["dataset"], s["backbone"], name, seed)) for s in profile.studies
             for name in search_names(s) + extension_names(s) for seed in search_seeds(s, name))
    return [path for s, path in paths if _kept(s, path, made_only)]


def picked_run(backbone: str, selected: dict) -> tuple[str, str]:
    """(backbone, config slug) to retrain for a search's `selected` field: a config, or a relaxed-space path that
    is no config (DARTS), retrained as such."""
    if selected.get("config"):
        return backbone, get_space(backbone).parse(selected["config"]).slug
    return RELAXED.name, selected["path"]


def retrain_records(profile: settings.Settings, selected_of, made_only: bool = False) -> list[str]:
    """The standalone runs of every config a search picked; `selected_of(dataset, backbone, search, seed)` gives a
    search's `selected` field (the workflow reads it from the record once the search has run). `made_only`: of an
    in-progress study, only the retraining that exists, of searches that exist."""
    layout, out = Layout(profile.name), []
    for s in profile.studies:
        for name in search_names(s):
            for seed in search_seeds(s, name):
                if not _kept(s, layout.search_record(s["dataset"], s["backbone"], name, seed), made_only):
                    continue
                backbone, slug = picked_run(s["backbone"], selected_of(s["dataset"], s["backbone"], name, seed))
                out += [path for r in s["retrain"]["seeds"]
                        if _kept(s, path := layout.train_record(s["dataset"], backbone, slug, r), made_only)]
    return sorted(set(out))


def extension_retrain_records(profile: settings.Settings, record_of, made_only: bool = False) -> list[str]:
    """The standalone runs of what the searches beyond the pooling found and of their comparison architectures (the
    record's `selected.variant` and `compare`), and of the plain config (dense, default widths), for each
    `retrain_seeds` (default: the study's retrain seeds); `record_of(dataset, backbone, search, seed)` gives the
    search record (the workflow reads it once the search has run)."""
    layout, out = Layout(profile.name), []
    for s in profile.studies:
        ext = s.get("extensions") or {}
        seeds = ext.get("retrain_seeds", s["retrain"]["seeds"])
        for name in extension_names(s):
            for seed in search_seeds(s, name):
                if not _kept(s, layout.search_record(s["dataset"], s["backbone"], name, seed), made_only):
                    continue
                record = record_of(s["dataset"], s["backbone"], name, seed)
                slug = get_space(s["backbone"]).parse(record["selected"]["config"]).slug
                found = [record["selected"]["variant"]] + [c["variant"] for c in record["compare"].values()]
                out += [layout.train_record(s["dataset"], s["backbone"], slug, r) for r in seeds]
                out += [layout.variant_record(s["dataset"], s["backbone"], slug, v, r) for v in found for r in seeds]
    return sorted({path for path in out if _kept(s, path, made_only)})


def csv_names(profile: settings.Settings) -> tuple[str, ...]:
    """The tidy CSVs of a profile: extensions.csv only where a study runs searches beyond the pooling."""
    return CSVS + ((EXTENSION_CSV,) if has_extensions(profile) else ())


def table_names(profile: settings.Settings) -> list[str]:
    """Tables 1-4, and the groups/widths table where a study runs searches beyond the pooling."""
    return [n for n in TABLE_NAMES if n not in EXTENSION_ARTEFACTS or has_extensions(profile)]


def figure_names(profile: settings.Settings) -> list[str]:
    """The figures a profile's ResNet20 searches can feed (every figure draws the ResNet20 study: searches of the
    other backbones feed none): Figure 4 (the DARTS architectures) needs a DARTS baseline, Figure 5 (P(m|c) per
    epoch) a mixture of M > 1, Figure 3 and ranking_vs_models any mixture; the others need only the ground truth
    (a profile without searches still completes its DAG)."""
    search = [s["search"] for s in profile.studies if s["backbone"] == "resnet20"]
    mixtures = [m for s in search for m in s.get("mixture", [])]
    needs = {"figure4": any(b.startswith("darts") for s in search for b in s.get("baselines", [])),
             "figure5": any(m > 1 for m in mixtures), "figure3": bool(mixtures), "ranking_vs_models": bool(mixtures),
             "groups_widths_cost": has_extensions(profile)}
    return [n for n in FIGURE_NAMES if needs.get(n, True)]


# --- runtime estimates for cluster schedulers ---------------------------------------------------------------

# Minutes per epoch of the default config on one V100-class GPU (CIFAR-sized data), with a 2x margin.
MINUTES_PER_EPOCH = {"resnet20": 0.5, "resnet18": 2.0, "resnet50": 6.0}
FOOD101_FACTOR = 20  # 75k images at 224 pixels against 50k at 32


def relative_cost(backbone: str, config_slug: str) -> float:
    """Forward MACs of a config relative to its space's default: scales each job's runtime estimate."""
    from poolnas.arch.cost import count_macs  # torch: only when an estimate is asked for

    space = get_space(backbone)
    return count_macs(backbone, space.parse(config_slug)) / count_macs(backbone, space.default)


def runtime_minutes(backbone: str, dataset: str, epochs: int, config_slug: str | None = None,
                    cap: int | None = None) -> int:
    """A generous wall-time estimate; a search costs about 4 standalone runs. Capped at `cap` minutes (the
    workflow's max_runtime_minutes: partitions reject longer limits; a job stopped at the limit resumes from its
    last epoch checkpoint when Snakemake retries it)."""
    if backbone == RELAXED.name:  # a found relaxed path: priced as the dearest ResNet20 config
        backbone, config_slug = RELAXED.base, "8-1-1"
    scale = relative_cost(backbone, config_slug) if config_slug else 4.0
    scale *= FOOD101_FACTOR if dataset == "food101" else 1
    minutes = int(10 + epochs * MINUTES_PER_EPOCH[backbone] * scale)
    return minutes if cap is None else min(minutes, cap)
