# Shared by all the .smk files: the validated profile, the path scheme, and the lists of runs it implies.
import functools
import json
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from poolnas import profiles
from poolnas.errors import UsageError
from poolnas.models import count_macs
from poolnas.released import RELEASED_CSV
from poolnas.spaces import RELAXED, get_space

validate(config, "../config/schema.yaml")
try:  # a bad profile name or value stops here, before any job starts, with one line
    PROFILE = profiles.load(config["profile"])
except UsageError as err:
    raise WorkflowError(f"config profile={config['profile']}: {err}") from None

P = PROFILE["profile"]
PROFILE_ARG = config["profile"]
POOLNAS = f"{sys.executable} -m poolnas"  # the interpreter running Snakemake has the package
RESULTS = f"results/{P}"
RUNS = f"{RESULTS}/runs"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
FIGURES = f"figures/{P}"
TABLES = f"paper/tables/{P}"
DATA = config["data_dir"]
CKPT = f"{config['checkpoint_dir']}/{P}"
# Each training/search job asks for the profile's `gpus_per_job` (absent: 1 unless the profile pins the CPU).
# Jobs that run on this host are capped by its GPU count, so that Snakemake never starts more GPU jobs than it
# has (`--resources gpu=N` overrides); inside a job `--device auto` takes a free GPU (poolnas.train). Jobs sent
# to a cluster are not: the submit host's GPUs say nothing about the nodes' (a login node's 0 used to strip
# every job's request). The executor is known only once jobs are built, hence the check inside the function.
GPU_PER_JOB = PROFILE.get("gpus_per_job", 0 if PROFILE["device"] == "cpu" else 1)


@functools.cache
def host_gpus():
    return __import__("torch").cuda.device_count()


def gpus_per_job(wildcards):
    if "gpu" not in workflow.global_resources and workflow.local_exec and host_gpus():
        workflow.register_resource("gpu", host_gpus())  # none here: a dry run shows what a cluster would get
    return GPU_PER_JOB

# The artefacts (poolnas.aggregate, poolnas.tables, poolnas.figures).
CSVS = ["groundtruth", "search", "search_eval", "search_epochs", "retrain", "ranking"]
CSV_FILES = expand(f"{RESULTS}/{{name}}.csv", name=CSVS)
PUBLISHED = "paper/published"
TABLE_NAMES = ["table1", "table2", "table3", "table4"]
FIGURE_NAMES = ["figure1", "figure3", "figure5", "accuracy_vs_macs", "ranking_vs_models", "groundtruth_spread"]
# Figure 4 draws the DARTS architectures: part of `figures` when the profile runs a DARTS baseline.
if any(b.startswith("darts") for s in PROFILE["studies"] for b in s["search"].get("baselines", [])):
    FIGURE_NAMES.append("figure4")
TABLE_FORMATS = ["csv", "tex", "md"]


TRAIN_RECORD = f"{RUNS}/train/{{dataset}}/{{backbone}}/{{config}}/seed{{seed}}.json"
SEARCH_RECORD = f"{RUNS}/search/{{dataset}}/{{backbone}}/{{search}}/seed{{seed}}.json"


def train_record(dataset, backbone, config, seed):
    return TRAIN_RECORD.format(dataset=dataset, backbone=backbone, config=config.slug, seed=seed)


def search_names(study):
    """Search directory names: mixture-M<models>, random-K<configs>, and each baseline's method name."""
    spec = study["search"]
    return ([f"mixture-M{m}" for m in spec.get("mixture", [])]
            + ([f"random-K{spec['random']}"] if spec.get("random") else []) + list(spec.get("baselines", [])))


def search_seeds(study, name):
    """Seeds of one search: the baselines may run fewer (`baseline_seeds`) than the mixture and random search."""
    spec = study["search"]
    return spec.get("baseline_seeds", spec["seeds"]) if name in spec.get("baselines", []) else spec["seeds"]


def search_arguments(search):
    """Command-line arguments of a search directory name (the inverse of search_names)."""
    method, _, size = search.partition("-")
    if method == "mixture":
        return f"--method mixture --models {size[1:]}"
    if method == "random":
        return f"--method random --configs {size[1:]}"
    return f"--method {search}"


def groundtruth_records():
    return [train_record(s["dataset"], s["backbone"], c, seed)
            for s in PROFILE["studies"] for c in profiles.groundtruth_configs(s) for seed in s["groundtruth"]["seeds"]]


def search_records():
    return [SEARCH_RECORD.format(dataset=s["dataset"], backbone=s["backbone"], search=name, seed=seed)
            for s in PROFILE["studies"] for name in search_names(s) for seed in search_seeds(s, name)]


def retrain_records(wildcards):
    """The standalone runs of every config a search picked: known only once the searches have run."""
    out = []
    for s in PROFILE["studies"]:
        space = get_space(s["backbone"])
        for name in search_names(s):
            for seed in search_seeds(s, name):
                record = checkpoints.search_run.get(dataset=s["dataset"], backbone=s["backbone"], search=name,
                                                seed=seed).output.record
                selected = json.loads(Path(record).read_text())["selected"]
                if selected.get("config"):
                    picked, backbone = space.parse(selected["config"]).slug, s["backbone"]
                else:  # a relaxed-space path (DARTS) that is no config: retrained as such
                    picked, backbone = selected["path"], RELAXED.name
                out += [TRAIN_RECORD.format(dataset=s["dataset"], backbone=backbone, config=picked, seed=r)
                        for r in s["retrain"]["seeds"]]
    return sorted(set(out))


def data_dir_of(stamp):
    """The data directory from a preparation stamp, DATA/prepared/PROFILE/DATASET.txt."""
    return str(Path(stamp).parents[2])


def parent_of(path):
    return str(Path(path).parent)


def relative_cost(backbone, config_slug):
    """Forward MACs of a config relative to its space's default: scales each job's runtime estimate."""
    space = get_space(backbone)
    return count_macs(backbone, space.parse(config_slug)) / count_macs(backbone, space.default)


# Minutes per epoch of the default config on one V100-class GPU (CIFAR-sized data), with a 2x margin.
MINUTES_PER_EPOCH = {"resnet20": 0.5, "resnet18": 2.0, "resnet50": 6.0}
FOOD101_FACTOR = 20  # 75k images at 224 pixels against 50k at 32


def protocol_epochs(backbone, dataset):
    return profiles.protocol(PROFILE, RELAXED.base if backbone == RELAXED.name else backbone, dataset)["epochs"]


def runtime_minutes(backbone, dataset, epochs, config_slug=None):
    """A generous wall-time estimate for cluster schedulers; a search costs about 4 standalone runs."""
    if backbone == RELAXED.name:  # a found relaxed path: priced as the dearest ResNet20 config
        backbone, config_slug = RELAXED.base, "8-1-1"
    scale = relative_cost(backbone, config_slug) if config_slug else 4.0
    scale *= FOOD101_FACTOR if dataset == "food101" else 1
    # Capped by config max_runtime_minutes (partitions reject longer limits); a job stopped at the limit resumes
    # from its last epoch checkpoint when Snakemake retries it (cluster/slurm/config.yaml: retries).
    return min(int(10 + epochs * MINUTES_PER_EPOCH[backbone] * scale), config["max_runtime_minutes"])


def prepared_stamp(dataset):
    """DATA/prepared/PROFILE/DATASET.txt: written by prepare_data once the dataset's cache is ready."""
    return f"{DATA}/prepared/{P}/{dataset}.txt"


def prepared(wildcards):
    # ancient(): preparing a dataset later never makes cached runs look stale. Preparing it in the same run
    # still does (Snakemake reruns a job whose input another job of the run writes, ancient or not:
    # snakemake/snakemake#661), hence the `data` target to run first.
    return ancient(prepared_stamp(wildcards.dataset))


def table_files(name):
    return expand(f"{TABLES}/{{table}}.{{fmt}}", table=name, fmt=TABLE_FORMATS)


def figure_files(name):
    return expand(f"{FIGURES}/{{figure}}.{{ext}}", figure=name, ext=["pdf", "png"])
