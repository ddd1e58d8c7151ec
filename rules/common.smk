# Wiring: the validated profile and the naming contract (poolnas.plan) as the names the rules use.
import functools
import json
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from poolnas import plan, settings
from poolnas.errors import UsageError

validate(config, "../config/schema.yaml")
try:  # a bad profile name or value stops here, before any job starts, with one line
    PROFILE = settings.resolve(config["profile"])
except UsageError as err:
    raise WorkflowError(f"config profile={config['profile']}: {err}") from None

P = PROFILE.name
PROFILE_ARG = config["profile"]
POOLNAS = f"{sys.executable} -m poolnas"  # the interpreter running Snakemake has the package
LAYOUT = plan.Layout(P)
RESULTS, RUNS, LOGS, BENCH = LAYOUT.results, LAYOUT.runs, LAYOUT.logs, LAYOUT.benchmarks
DATA = config["data_dir"]
CKPT = f"{config['checkpoint_dir']}/{P}"
PUBLISHED = plan.PUBLISHED
TRAIN_RECORD = plan.TRAIN_RECORD.replace("{runs}", RUNS)
VARIANT_RECORD = plan.VARIANT_RECORD.replace("{runs}", RUNS)
SEARCH_RECORD = plan.SEARCH_RECORD.replace("{runs}", RUNS)
CSVS = plan.csv_names(PROFILE)  # extensions.csv only where a study runs issue 17's searches
CSV_FILES = LAYOUT.csv_files(CSVS)
RELEASED_CSV = plan.RELEASED  # the authors' per-config table, committed with its provenance (paper/released/)
TABLE_NAMES = plan.table_names(PROFILE)
FIGURE_NAMES = plan.figure_names(PROFILE)
# Each training/search job asks for the profile's `gpus_per_job` (absent: 1 unless the profile pins the CPU); on
# this host the unit is one slot of a GPU (gpu_slots per GPU, poolnas.engine.runtime.free_gpu). Jobs that run on
# this host are capped by its GPU count times gpu_slots, so that Snakemake never starts more GPU jobs than it
# has (`--resources gpu=N` overrides); inside a job `--device auto` takes a free GPU (poolnas.engine.runtime). Jobs sent
# to a cluster are not: the submit host's GPUs say nothing about the nodes' (a login node's 0 used to strip
# every job's request). The executor is known only once jobs are built, hence the check inside the function.
GPU_PER_JOB = PROFILE.gpus_per_job


@functools.cache
def host_gpus():
    return __import__("torch").cuda.device_count()


def gpus_per_job(wildcards):
    if "gpu" not in workflow.global_resources and workflow.local_exec and host_gpus():
        workflow.register_resource("gpu", host_gpus() * PROFILE.gpu_slots)  # none here: a dry run shows what a cluster would get
    return GPU_PER_JOB


# Each list of runs comes whole (what the run targets make) and `made_only` (what the tables read): a study marked
# `in_progress` is made in parts, and the tables read the part that exists (poolnas.plan).
def groundtruth_records(made_only=False):
    return plan.groundtruth_records(PROFILE, made_only)


def search_records(made_only=False):
    return plan.search_records(PROFILE, made_only)


def search_record_of(dataset, backbone, search, seed):
    job = checkpoints.search_run.get(dataset=dataset, backbone=backbone, search=search, seed=seed)
    return json.loads(Path(job.output.record).read_text())


def retrain_records(wildcards, made_only=False):
    """The standalone runs of every config a search picked: known only once the searches have run."""
    selected = lambda *search: search_record_of(*search)["selected"]
    return plan.retrain_records(PROFILE, selected, made_only)


def extension_retrain_records(wildcards, made_only=False):
    """The standalone runs of what dgconv and conet found and of their comparisons: known once they have run."""
    return plan.extension_retrain_records(PROFILE, search_record_of, made_only)


def groundtruth_of(wildcards):
    """A search on the best ground-truth config (`best` pooling) reads the study's ground truth: its input. ancient(),
    as `prepared`: records are cached, so their checkout times in a fresh clone never make the search look stale;
    a ground-truth run redone in the same invocation still reruns it (snakemake/snakemake#661), as it should."""
    extension = plan.parse_extension_name(wildcards.search)
    if not extension or extension[1] != "best":
        return []
    layout = plan.Layout(P)
    study = PROFILE.study(wildcards.dataset, wildcards.backbone)
    return [ancient(layout.train_record(wildcards.dataset, wildcards.backbone, c.slug, seed))
            for c in settings.groundtruth_configs(study) for seed in study["groundtruth"]["seeds"]]


def train_runtime(w):
    epochs = PROFILE.protocol(w.backbone, w.dataset)["epochs"]
    return plan.runtime_minutes(w.backbone, w.dataset, epochs, w.config, cap=config["max_runtime_minutes"])


def search_runtime(w):
    return plan.runtime_minutes(w.backbone, w.dataset, PROFILE.search(w.backbone, w.dataset)["epochs"],
                                cap=config["max_runtime_minutes"])


def prepared_stamp(dataset):
    """DATA/prepared/PROFILE/DATASET.txt: written by prepare_data once the dataset's cache is ready."""
    return f"{DATA}/prepared/{P}/{dataset}.txt"


def prepared(wildcards):
    # ancient(): preparing a dataset later never makes cached runs look stale. Preparing it in the same run
    # still does (Snakemake reruns a job whose input another job of the run writes, ancient or not:
    # snakemake/snakemake#661), hence the `data` target to run first.
    return ancient(prepared_stamp(wildcards.dataset))


def data_dir_of(stamp):
    """The data directory from a preparation stamp, DATA/prepared/PROFILE/DATASET.txt."""
    return str(Path(stamp).parents[2])


def parent_of(path):
    return str(Path(path).parent)


def estimate_wanted(profile):
    """Profiles of the paper's datasets (gpu1, paper), which poolnas.estimate prices in GPU-hours; not smoke and
    mini, whose cost on this machine is measured (poolnas.analysis.jobtimes)."""
    from poolnas.estimate import SIZES

    return profile.device != "cpu" and any(d in SIZES for d in profile.as_dict()["datasets"])


def _dry_run():
    return any(a in ("--dry-run", "--dryrun") or (a[:1] == "-" and a[1:2] != "-" and "n" in a[1:])
               for a in sys.argv[1:])


if _dry_run() and estimate_wanted(PROFILE):  # GPU profiles: what the DAG would cost (poolnas.estimate)
    from poolnas import estimate

    print(estimate.report(PROFILE), file=sys.stderr)
    if P != "paper":
        print(estimate.report("paper").splitlines()[0], file=sys.stderr)


# Records are cached by their files alone: after a profile edit (a new lr) Snakemake would call the old records
# done and `aggregate` would refuse them. Say so before any job, with the way to redo exactly those (README
# "Changed settings"); the main process only (cluster jobs parse this file again).
if workflow.is_main_process:
    from poolnas.analysis.consistency import stale_records

    STALE = stale_records(RESULTS, PROFILE, DATA)
    if STALE:
        print(f"warning: {len(STALE)} records were made under other settings than profile {P}'s, and Snakemake "
              f"will not redo them by itself ({STALE[0][0]}: {'; '.join(STALE[0][1])}); to rerun exactly those: "
              f"snakemake --cores 2 all --forcerun {' '.join(str(path) for path, _ in STALE)} --config "
              f"profile={PROFILE_ARG} (or delete them and run the same target)", file=sys.stderr)


# Each attempt's log survives a retry (issue 34). Snakemake 9.27 deletes a job's log before every attempt
# (snakemake/jobs.py:811, remove_existing_output) and takes no {attempt} in log paths (Rule.expand_log gets the
# wildcards only), so the command keeps it: {log} starts with a header line, and a hard link {log}.<n> (the first
# free n) holds the same file until the attempt finishes. An attempt that does not finish (failed, cancelled,
# timed out, Ctrl-C) leaves its log as {log}.<n>, numbered in the order the attempts started.
LOG_HEAD = ('n=1; while [ -e {log}.$n ]; do n=$((n+1)); done; '
            'echo "# attempt {resources.attempt}, started $(date -u +%FT%TZ) on $(hostname -s)'
            '${{SLURM_JOB_ID:+, SLURM job $SLURM_JOB_ID}}" > {log}; ln {log} {log}.$n || true; ')
LOG_TAIL = '; rm -f {log}.$n'


def logged(command):
    """A rule's shell command (its stderr appended to {log}) between LOG_HEAD and LOG_TAIL."""
    return LOG_HEAD + command + LOG_TAIL


def attempt(wildcards, attempt):
    return attempt
