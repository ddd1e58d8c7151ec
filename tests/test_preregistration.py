"""The confirmatory Fashion-MNIST study runs what paper/preregistration/fashion-mnist.md fixed, and that document
was in force before any of its test-set records existed (issue 31)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from poolnas import settings

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = "paper/preregistration/fashion-mnist.md"
STUDY = ("fashion-mnist", "resnet20")


def preregistered() -> dict:
    text = (ROOT / DOCUMENT).read_text()
    blocks = re.findall(r"^## 6\..*?```yaml\n(.*?)```", text, flags=re.S | re.M)
    assert len(blocks) == 1, f"{DOCUMENT}: section 6 needs exactly one yaml block"
    return yaml.safe_load(blocks[0])


def explicit_keys(section: str) -> set[str]:
    """The keys the mini profile file itself sets for ResNet20 (not the schema's defaults)."""
    raw = yaml.safe_load((ROOT / "code/poolnas/profiles/mini.yaml").read_text())
    return set(raw[section]["resnet20"])


@pytest.mark.parametrize("part", ["protocol", "search"])
def test_the_profile_trains_and_searches_with_the_preregistered_settings(part):
    fixed = preregistered()[part]
    profile = settings.resolve("mini")
    resolved = profile.protocol(*STUDY[::-1]) if part == "protocol" else profile.search(*STUDY[::-1])
    assert {k: resolved.get(k) for k in fixed} == fixed
    later = set(resolved) - set(fixed)  # keys the code gained since: the profile must leave them at their default
    assert not later & explicit_keys("protocols" if part == "protocol" else "search"), later


def test_the_profile_runs_the_preregistered_study_on_the_preregistered_data():
    fixed = preregistered()
    profile = settings.resolve("mini")
    study = profile.study(*STUDY)
    study.pop("in_progress", None)  # how far it has run, not what it runs
    assert study.pop("preregistration")["document"] == DOCUMENT
    assert study == fixed["study"]
    assert {d: profile.dataset_params(d) for d in fixed["dataset"]} == fixed["dataset"]
    assert profile.precision == fixed["precision"]


def git(*args: str) -> list[str]:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return out.split()


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs the git history")
def test_the_preregistration_came_into_force_before_every_test_set_record():
    if git("rev-parse", "--is-shallow-repository") == ["true"]:
        pytest.skip("a shallow clone lacks the commits to compare")
    in_force = git("log", "--format=%H", "-S", "Status: IN FORCE", "--", DOCUMENT)
    assert in_force, f"{DOCUMENT} has never been put in force"
    first = in_force[-1]
    named = settings.resolve("mini").study(*STUDY)["preregistration"]["commit"]
    assert first.startswith(named), f"the profile names {named}, the document came into force in {first[:7]}"
    records = git("log", "--diff-filter=A", "--format=%H", "--", "results/mini/runs/*/fashion-mnist/")
    for commit in records:  # every commit that added a record descends from the one that put the document in force
        assert subprocess.run(["git", "merge-base", "--is-ancestor", first, commit], cwd=ROOT).returncode == 0, commit
        assert commit != first, "the records came in the same commit as the preregistration"
