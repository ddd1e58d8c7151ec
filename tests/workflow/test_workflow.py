"""The Snakemake workflow, for real: the smoke profile end to end, then a fresh clone of its results.

One module-scoped run (a few minutes on 2 cores) feeds every test here. The tests use the package this
checkout installs (.venv's editable install), not a copy: do not edit code/ while they run.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

# The smoke DAG is minutes of real training: a longer limit than the suite's default 600 s per test.
pytestmark = [pytest.mark.timeout(2400), pytest.mark.slow]

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TRAIN_OR_SEARCH = {"train", "train_variant", "search_run", "prepare_data"}


def sh(args, cwd, timeout=900, check=True):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed in {cwd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    """Jobs per rule from Snakemake's "Job stats" table (each job's own lines show its rule's message, not its
    rule name); {} when there is nothing to do."""
    if "Job stats" not in output:
        return {}
    stats = output[output.index("Job stats"):].split("\n\n")[0]
    return {line.split()[0]: int(line.split()[1]) for line in stats.splitlines()[3:] if len(line.split()) == 2
            and line.split()[1].isdigit()}


def git(cwd, *args):
    return sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd)


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    """A repository holding this working tree (committed), after `snakemake all` on the smoke profile."""
    root = tmp_path_factory.mktemp("workflow") / "repo"
    files = sh(["git", "ls-files", "-co", "--exclude-standard"], REPO).stdout.split("\n")
    for name in filter(None, files):
        if name.startswith(("results/", "figures/", "paper/tables/", "paper/verification/")):
            continue  # start from no results at all
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "code")
    run = sh(SNAKEMAKE + ["--cores", "2", "all", "--config", "profile=smoke"], root, timeout=2000)
    return root, run


def test_smoke_dag_runs_end_to_end_and_writes_every_artefact(smoke_repo):
    root, run = smoke_repo
    results = root / "results" / "smoke"
    runs = list((results / "runs" / "train").rglob("*.json"))
    assert len(runs) >= 8  # 4 configs x 2 seeds, plus any retrain that is not a ground-truth run
    # ResNet20: M = 1, 2, 4, 8, the equal-budget control, random search and the ten baselines of Tables 1 and 2, dgconv on
    # the default config and conet on the best ground-truth config (issue 17);
    # Table 3: M = 4 on ResNet18 and ResNet50; Table 4: M = 1, 2, 4, 8 on ResNet50 with the ImageNet stem
    searches = results / "runs" / "search"
    assert len(list((searches / "twoscale").rglob("*.json"))) == 18 and len(list(searches.rglob("*.json"))) == 24
    from poolnas import schemas  # every record the DAG wrote matches its schema (checked on write too)

    for path in (results / "runs").rglob("seed*.json"):
        schemas.read_record(path, path.relative_to(results / "runs").parts[0])
    for csv in ["groundtruth", "search", "search_eval", "retrain", "ranking", "extensions"]:
        assert (results / f"{csv}.csv").stat().st_size > 0, csv
    for table in ["table1", "table2", "table3", "table4", "groups_widths"]:
        for ext in ["csv", "tex", "md"]:
            assert (root / "paper" / "tables" / "smoke" / f"{table}.{ext}").stat().st_size > 0
    for figure in ["figure1", "figure3", "figure4", "figure5", "accuracy_vs_macs", "ranking_vs_models",
                   "groundtruth_spread", "groups_widths_cost"]:
        for ext in ["pdf", "png"]:
            assert (root / "figures" / "smoke" / f"{figure}.{ext}").stat().st_size > 1000, figure
    assert (root / "paper" / "verification" / "smoke.md").stat().st_size > 0
    for table in ["table1", "table2", "table3", "table4"]:  # every row's runs exist and every pick was retrained
        rows = (root / "paper" / "tables" / "smoke" / f"{table}.md").read_text().splitlines()
        assert not [row for row in rows if row.startswith("|") and "not run" in row], table
    t3 = (root / "paper" / "tables" / "smoke" / "table3.md").read_text()
    assert "ours on glyphs/resnet18, standing in for cifar10" in t3 and "glyphs/resnet50, standing in for cifar100" in t3
    # Table 4's study ran with the ImageNet stem on random resized crops of 32 pixels, at narrow widths
    default = json.loads((results / "runs/train/glyphs-crops/resnet50/3-4-6-3/seed0.json").read_text())
    assert default["options"]["stem"] == "imagenet" and default["options"]["crop"] == 32
    assert default["options"]["stage_widths"] == [8, 16, 32, 64]
    # issue 17: what dgconv found on the default config and conet on the best ground truth, and their comparisons
    # at equal MACs / parameters, were retrained (the variants' records under <config>/<variant>/)
    import pandas as pd

    table = pd.read_csv(root / "paper" / "tables" / "smoke" / "groups_widths.csv")
    ran = set(zip(table.kind[table.status == "ok"], table.section[table.status == "ok"].str.startswith("default")))
    assert {("dense", True), ("dgconv", True), ("fixed_groups", True)} <= ran, table
    assert {("conet", False), ("uniform_widths", False)} <= ran or {("conet", True), ("uniform_widths", True)} <= ran
    assert list((results / "runs" / "train").glob("*/*/*/[gw]*/seed0.json"))
    # every job logged, every training job benchmarked
    assert len(list((results / "logs" / "train").rglob("*.log"))) == len(runs)
    assert len(list((results / "benchmarks" / "train").rglob("*.tsv"))) == len(runs)
    assert not list(root.glob(".checkpoints/smoke/**/*.pt"))  # removed once each record was written


@pytest.fixture(scope="module")
def fresh_clone(smoke_repo, tmp_path_factory):
    """A clone of the repository with the smoke results committed: no data, no .snakemake metadata."""
    root, _ = smoke_repo
    git(root, "add", "-A")
    git(root, "commit", "-qm", "smoke results")
    clone = tmp_path_factory.mktemp("clone") / "repo"
    git(root.parent, "clone", "-q", str(root), str(clone))
    return clone


def test_fresh_clone_dry_run_lists_no_training_or_search(fresh_clone):
    dry = sh(SNAKEMAKE + ["-n", "figures", "--config", "profile=smoke"], fresh_clone)
    assert not TRAIN_OR_SEARCH & job_counts(dry.stdout).keys(), dry.stdout[-3000:]


def test_fresh_clone_regenerates_figures_from_results_alone_with_identical_tables(fresh_clone, smoke_repo):
    root, _ = smoke_repo
    tables = fresh_clone / "paper" / "tables" / "smoke"
    for path in tables.iterdir():
        path.unlink()
    run = sh(SNAKEMAKE + ["--cores", "2", "figures", "--config", "profile=smoke"], fresh_clone)
    output = run.stdout + run.stderr
    counts = job_counts(output)
    assert counts.get("table") == 5 and not TRAIN_OR_SEARCH & counts.keys(), output[-3000:]
    # Readable progress (profiles/default, rule messages): one short message per job, no input lists.
    messages = re.findall(r"^Job \d+: .+$", output, re.M)
    assert len(messages) == counts["total"] and max(map(len, output.splitlines())) < 200, output[-3000:]
    assert any(m.endswith(": target figures (smoke): done") for m in messages), messages
    assert not (fresh_clone / "data").exists()
    for path in (root / "paper" / "tables" / "smoke").iterdir():
        assert (tables / path.name).read_bytes() == path.read_bytes(), path.name


def test_preparing_data_later_does_not_make_cached_runs_stale(fresh_clone):
    sh(SNAKEMAKE + ["--cores", "1", "data", "--config", "profile=smoke"], fresh_clone)
    assert (fresh_clone / "data" / "prepared" / "smoke" / "twoscale.txt").exists()
    dry = sh(SNAKEMAKE + ["-n", "all", "--config", "profile=smoke"], fresh_clone)
    assert not {"train", "train_variant", "search_run"} & job_counts(dry.stdout).keys(), dry.stdout[-3000:]
    # With the data prepared, a deleted record is the one job `groundtruth` redoes (it lists every record; with
    # the CSVs present, `all` alone did not always ask for it), and `all` then refreshes the CSVs.
    runs = fresh_clone / "results" / "smoke" / "runs" / "train" / "twoscale" / "resnet20"
    record = sorted(runs.rglob("seed*.json"))[0]
    kept = record.read_bytes()
    record.unlink()
    try:
        dry = sh(SNAKEMAKE + ["-n", "groundtruth", "all", "--config", "profile=smoke"], fresh_clone)
    finally:
        record.write_bytes(kept)
    counts = job_counts(dry.stdout)
    # ... and the searches on the best ground-truth config (issue 17), which read the ground truth
    from poolnas import plan, settings

    best = [n for s in settings.resolve("smoke").studies for n in plan.extension_names(s) if n.endswith("-best")]
    assert counts.get("train") == 1 and counts.get("search_run", 0) == len(best) == 1 and "aggregate" in counts, \
        dry.stdout[-3000:]


def test_bad_profile_fails_before_any_job_with_one_clear_line(tmp_path):
    proc = sh(SNAKEMAKE + ["-n", "figures", "--config", "profile=nope"], REPO, check=False)
    assert proc.returncode != 0
    assert "unknown profile 'nope'; known: gpu1, mini, paper, smoke" in proc.stdout + proc.stderr


def test_paper_profile_dry_run_lists_the_whole_study():
    proc = sh(SNAKEMAKE + ["-n", "all", "--config", "profile=paper"], REPO)
    counts = job_counts(proc.stdout)
    assert counts["train"] >= 36 * 3  # every ResNet20 config x 3 seeds, plus the other backbones' defaults
    # CIFAR10 ResNet20 (M = 1, 2, 4, 8, random and ten baselines) x 3 seeds; Tables 3 and 4; issue 17's dgconv at
    # two budgets and conet, each on the default and the best config
    assert counts["search_run"] == 15 * 3 + 1 + 1 + 4 + 6
    # the dry run of a GPU profile prints its job counts and estimated GPU-hours (poolnas.estimate)
    assert "profile paper: 363 training/search jobs" in proc.stderr and "GPU-hours" in proc.stderr


def test_gpu1_profile_dry_run_prints_its_cost_beside_the_papers():
    proc = sh(SNAKEMAKE + ["-n", "all", "--config", "profile=gpu1"], REPO)
    assert "profile gpu1: 51 training/search jobs" in proc.stderr and "profile paper:" in proc.stderr
    stats = proc.stdout[proc.stdout.index("Job stats"):]
    assert any(line.split() == ["train", "36"] for line in stats.splitlines())
    assert any(line.split() == ["search_run", "5"] for line in stats.splitlines())


def test_lint_is_clean():
    proc = sh(SNAKEMAKE + ["--lint"], REPO, check=False)
    assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_report_builds_with_every_figure_captioned(smoke_repo, tmp_path):
    root, _ = smoke_repo
    report = tmp_path / "report.html"
    sh(SNAKEMAKE + ["--report", str(report), "figures", "--config", "profile=smoke"], root)
    html = report.read_text(errors="replace")
    assert "figure3.png" in html and "Kendall" in html  # the figure and its caption


def test_each_attempts_log_survives_a_retry(tmp_path):
    """Issue 34: a retried job keeps the failed attempt's log ({log}.1) beside the last one's ({log}). The rules'
    LOG_HEAD / LOG_TAIL (rules/common.smk) around a command that fails on attempt 1, with --retries 1."""
    common = (REPO / "rules" / "common.smk").read_text()
    helper = common[common.index("LOG_HEAD = "):common.index("def attempt(")]  # with logged()
    for rule in ["train.smk", "search.smk"]:  # every training and search rule uses them
        text = (REPO / "rules" / rule).read_text()
        assert text.count("logged(") == text.count("shell:") == text.count('2>> {log}"'), rule
    (tmp_path / "Snakefile").write_text(helper + '''
rule flaky:
    output: "done.txt"
    log: "logs/flaky.log"
    resources: attempt=lambda w, attempt: attempt
    shell: LOG_HEAD + "echo 'epoch of attempt {resources.attempt}' >> {log}; test {resources.attempt} -ge 2 2>> {log}; touch {output}" + LOG_TAIL
''')
    sh(SNAKEMAKE + ["--cores", "1", "--retries", "1", "--workflow-profile", "none"], tmp_path)
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["flaky.log", "flaky.log.1"]
    assert (logs / "flaky.log.1").read_text().startswith("# attempt 1, started ")
    assert (logs / "flaky.log").read_text().startswith("# attempt 2, started ")
