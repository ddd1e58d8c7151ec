"""Every command checks its arguments and output paths before any work: one line, exit 2, nothing written.

The issue's nine command lines (a seed beyond 64 bits, --threads 100000, --device tpu, an unreadable --data-dir,
--out under /proc, in a read-only directory, on an existing directory or empty, --checkpoint naming a directory)
for both `train` and `search`, then the output paths of the other commands. Permission cases run as an
unprivileged user when the tests run as root (root reads and writes everything).
"""

import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from poolnas import argcheck, cli

from helpers import REPO

COMMANDS = {
    "train": ["train", "--profile", "smoke", "--dataset", "twoscale", "--backbone", "resnet20", "--config", "4-3-3",
              "--seed", "0"],
    "search": ["search", "--method", "mixture", "--models", "2", "--profile", "smoke", "--dataset", "twoscale",
               "--backbone", "resnet20", "--seed", "0"],
}


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def argv(command: str, tmp: Path, **change) -> list[str]:
    """The command with --out/--data-dir in `tmp`, then `change` (flag without dashes -> value; None drops it)."""
    args = dict(zip(COMMANDS[command][1::2], COMMANDS[command][2::2]))
    args = {"--out": str(tmp / "out" / "seed0.json"), "--data-dir": str(tmp / "data"), "--threads": "1",
            **args}
    for flag, value in change.items():
        args[f"--{flag.replace('_', '-')}"] = value
    return [COMMANDS[command][0], *[x for k, v in args.items() if v is not None for x in (k, v)]]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("change, words", [
    ({"seed": str(2**64)}, "--seed must be >= 0 and <= 4294967295"),
    ({"seed": str(2**32)}, "--seed must be >= 0 and <= 4294967295"),
    ({"threads": "100000"}, "--threads must be >= 1 and <= 1024, got 100000"),
    ({"device": "tpu"}, "--device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    ({"device": "cuda:x"}, "--device must be auto, cpu, cuda or cuda:N"),
    ({"out": "/proc/poolnas-test.json"}, "--out /proc/poolnas-test.json is under /proc, a kernel file system"),
    ({"out": "/proc/self/poolnas/x.json"}, "is under /proc"),
    ({"out": "EXISTING_DIR"}, "is a directory; give a file path inside it"),
    ({"out": "EXISTING_DIR/"}, "is a directory"),
    ({"out": ""}, "--out is empty"),
    ({"out": "A_FILE/seed0.json"}, "is a file, not a directory"),
    ({"checkpoint": "EXISTING_DIR"}, "--checkpoint"),
    ({"data_dir": "A_FILE"}, "--data-dir"),
    ({"data_dir": ""}, "--data-dir is empty"),
], ids=["seed-2**64", "seed-2**32", "threads-100000", "device-tpu", "device-cuda-x", "out-proc", "out-proc-deep",
        "out-dir", "out-dir-slash", "out-empty", "out-under-a-file", "checkpoint-dir", "data-dir-file",
        "data-dir-empty"])
def test_bad_run_arguments_get_one_line_exit_2_and_nothing_is_written(tmp_path, capsys, command, change, words):
    (tmp_path / "existing").mkdir()
    (tmp_path / "a-file").write_text("x")
    names = {"EXISTING_DIR": str(tmp_path / "existing"), "A_FILE": str(tmp_path / "a-file")}
    change = {k: next((v.replace(n, p) for n, p in names.items() if n in v), v) for k, v in change.items()}
    before = listing(tmp_path)
    assert cli.main(argv(command, tmp_path, **change)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert listing(tmp_path) == before  # no record, no data directory, no probe file left behind


@pytest.fixture
def shared_tmp():
    """A directory an unprivileged user can enter (pytest's tmp_path of root is private)."""
    root = Path(tempfile.mkdtemp(prefix="poolnas-cli-"))
    root.chmod(0o777)
    yield root
    for path in root.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(root)


def as_unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop privileges to test permissions")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def unprivileged_import_failure(module: str = "poolnas", path: Path | None = None) -> str | None:
    """Why the unprivileged user cannot import `module` with this interpreter (`path`: prepended to its
    PYTHONPATH), or None. A clone under a directory that user cannot enter (root's 0700 home, a 0700 temporary
    directory) hides the package and the venv from it: the commands would then fail with "No module named poolnas"
    however they check their arguments, which says nothing about the checks."""
    if not as_unprivileged():
        return None  # not root: the tests run as this user, who can read the clone
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    proc = subprocess.run([*as_unprivileged(), sys.executable, "-c", f"import {module}"], capture_output=True,
                          text=True, cwd="/", env=env, timeout=120)
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]


@functools.cache
def _package_hidden() -> str | None:
    return unprivileged_import_failure()


def run_unprivileged(args: list[str], home: Path):
    reason = _package_hidden()  # asked once per session, before the first command
    if reason:
        pytest.skip(f"uid 65534 cannot import poolnas from {REPO} (a parent directory it cannot enter?): {reason}")
    env = dict(os.environ, HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([*as_unprivileged(), sys.executable, "-m", "poolnas", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreadable_data_dir_is_one_line_and_exit_2(shared_tmp, command):
    data = shared_tmp / "data"
    (data / "cache").mkdir(parents=True)
    data.chmod(0)
    before = listing(shared_tmp)
    proc = run_unprivileged(argv(command, shared_tmp, data_dir=str(data)), shared_tmp)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"--data-dir {data} cannot be read (Permission denied)" in proc.stderr
    data.chmod(0o755)
    assert listing(shared_tmp) == before


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("flag", ["out", "checkpoint"])
def test_an_output_in_a_read_only_directory_is_one_line_and_exit_2(shared_tmp, command, flag):
    readonly = shared_tmp / "readonly"
    readonly.mkdir()
    readonly.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    target = readonly / "sub" / "seed0.x"
    before = listing(shared_tmp)
    proc = run_unprivileged(argv(command, shared_tmp, **{flag: str(target)}), shared_tmp)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"--{flag} {target}: cannot write in {readonly} (Permission denied)" in proc.stderr
    assert listing(shared_tmp) == before


def test_the_permission_tests_can_fail(shared_tmp):
    """The unprivileged user really cannot read a mode-000 directory (else the tests above prove nothing)."""
    secret = shared_tmp / "secret"
    secret.mkdir()
    secret.chmod(0)
    proc = subprocess.run([*as_unprivileged(), "ls", str(secret)], capture_output=True, text=True)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr


def test_the_import_check_sees_a_package_behind_a_private_directory(shared_tmp):
    """The skip above is taken exactly when the package cannot be reached: a module in a 0700 directory (as a
    clone under /root) is not importable by the unprivileged user, and is once the directory opens."""
    if not as_unprivileged():
        pytest.skip("not root: no other user to run as")
    private = shared_tmp / "home"
    (private / "clone").mkdir(parents=True)
    (private / "clone" / "probe_module.py").write_text("")
    private.chmod(0o700)
    assert "No module named 'probe_module'" in unprivileged_import_failure("probe_module", private / "clone")
    private.chmod(0o755)
    assert unprivileged_import_failure("probe_module", private / "clone") is None


# --- the other commands' outputs -----------------------------------------------------------------------------


@pytest.fixture
def results(tmp_path):
    from helpers import empty_results

    return empty_results(tmp_path / "results")


@pytest.mark.parametrize("args, words", [
    (["tables", "--results", "RESULTS", "--out", "A_FILE"], "--out A_FILE is a file; give a directory"),
    (["figures", "--results", "RESULTS", "--out", ""], "--out is empty"),
    (["figures", "--results", "RESULTS", "--out", "/proc/figs"], "is under /proc"),
    (["verify", "--results", "RESULTS", "--out", "EXISTING_DIR"], "is a directory"),
    (["verify", "--results", "RESULTS", "--seed", "-1"], "--seed must be >= 0"),
    (["aggregate", "--results", "RESULTS", "--seed", str(2**70)], "--seed must be >= 0 and <= 4294967295"),
    (["rank", "RELEASED", "--seed", "-5"], "--seed must be >= 0"),
    (["verify-released", "RELEASED", "--out", ""], "--out is empty"),
    (["verify-released", "RELEASED", "--out", "/proc/v.md"], "is under /proc"),
    (["data", "prepare", "--dataset", "twoscale", "--cache-dir", "/proc/cache"], "--cache-dir /proc/cache is under"),
    (["data", "prepare", "--dataset", "twoscale", "--cache-dir", "A_FILE"], "--cache-dir A_FILE is a file"),
    (["data", "prepare", "--dataset", "cifar10", "--cache-dir", "CACHE", "--data-root", "A_FILE"],
     "--data-root A_FILE is not a directory"),
])
def test_bad_paths_of_the_other_commands_get_one_line_and_exit_2(tmp_path, results, capsys, args, words):
    (tmp_path / "existing").mkdir()
    (tmp_path / "a-file").write_text("x")
    names = {"RESULTS": str(results), "A_FILE": str(tmp_path / "a-file"), "EXISTING_DIR": str(tmp_path / "existing"),
             "CACHE": str(tmp_path / "cache"), "RELEASED": str(REPO / "tests" / "helpers.py")}

    def fill(text):
        for name, path in names.items():
            text = text.replace(name, path)
        return text

    before = listing(tmp_path)
    assert cli.main([fill(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fill(words) in err, err
    assert listing(tmp_path) == before


def test_data_prepare_of_a_missing_dataset_leaves_no_directory(tmp_path, capsys):
    cache = tmp_path / "new" / "cache"
    assert cli.main(["data", "prepare", "--dataset", "cifar10", "--cache-dir", str(cache), "--data-root",
                     str(tmp_path / "raw")]) == 2
    assert "cifar10 not found" in capsys.readouterr().err
    assert listing(tmp_path) == []


@pytest.mark.parametrize("value, ok", [(0, True), (2**32 - 1, True), (2**32, False), (-1, False), (2**64, False)])
def test_seed_range(value, ok):
    if ok:
        argcheck.seed(value)
    else:
        with pytest.raises(cli.UsageError, match="--seed must be >= 0 and <= 4294967295"):
            argcheck.seed(value)


@pytest.mark.parametrize("value, ok", [(1, True), (1024, True), (0, False), (1025, False), (None, True)])
def test_threads_range(value, ok):
    if ok:
        argcheck.threads(value)
    else:
        with pytest.raises(cli.UsageError, match="--threads must be >= 1 and <= 1024"):
            argcheck.threads(value)


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", None])
def test_known_devices_pass(value):
    argcheck.device(value)


def test_a_valid_output_path_passes_and_writes_nothing(tmp_path):
    argcheck.output_file(str(tmp_path / "deep" / "er" / "r.json"))
    argcheck.output_file(str(tmp_path / "r.json"))
    argcheck.output_dir(str(tmp_path / "figs"))
    argcheck.input_dir(str(tmp_path / "data"), "--data-dir", created=True)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case, words", [
    ("checkpoints-is-a-file", "the checkpoint beside --out OUT/.checkpoints/seed0.pt: OUT/.checkpoints is a file"),
    ("default-pt-is-a-directory", "the checkpoint beside --out OUT/.checkpoints/seed0.pt is a directory"),
    ("out-name-too-long", "the temporary made from it 14 more, over this file system's 255"),
    ("checkpoint-name-too-long", "--checkpoint"),
])
def test_bad_paths_of_a_run_are_refused_before_any_work(tmp_path, capsys, monkeypatch, command, case, words):
    """Each of these failed after an epoch of training, with a traceback (issue 32, item 7)."""
    import poolnas.search.run
    import poolnas.standalone

    def work(**_):
        raise AssertionError("work started")

    monkeypatch.setattr(poolnas.standalone, "train_run", work)
    monkeypatch.setattr(poolnas.search.run, "search_run", work)
    out = tmp_path / "out"
    out.mkdir()
    change = {}
    if case == "checkpoints-is-a-file":
        (out / ".checkpoints").write_text("x")
    elif case == "default-pt-is-a-directory":
        (out / ".checkpoints" / "seed0.pt").mkdir(parents=True)
    elif case == "out-name-too-long":
        change["out"] = str(out / ("r" * 240 + ".json"))  # 245 bytes: the record fits, its temporary does not
    else:
        change["checkpoint"] = str(out / ("c" * 230 + ".pt"))  # fits, but not once set aside as .unreadable-...
    before = listing(tmp_path)
    assert cli.main(argv(command, tmp_path, **change)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words.replace("OUT", str(out)) in err, err
    assert listing(tmp_path) == before


@pytest.mark.parametrize("fail_at", [1, 3])  # the first checkpoint; the record (the tiny run's third write)
def test_a_full_disk_is_one_line_naming_the_file_and_the_run_resumes(tmp_path, capsys, monkeypatch, fail_at):
    import yaml

    from helpers import disk_full_at, tiny_profile
    from poolnas import records

    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump(tiny_profile(epochs=2)))
    args = argv("train", tmp_path, profile=str(profile), epochs="2", device="cpu")
    assert cli.main(["data", "prepare", "--dataset", "twoscale", "--profile", str(profile), "--cache-dir",
                     str(tmp_path / "data" / "cache")]) == 0
    full = disk_full_at(records.os.fsync, fail_at)
    capsys.readouterr()
    with monkeypatch.context() as m:
        m.setattr(records.os, "fsync", full)
        assert cli.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    record, checkpoint = tmp_path / "out" / "seed0.json", tmp_path / "out" / ".checkpoints" / "seed0.pt"
    failed = checkpoint if fail_at == 1 else record
    assert f"cannot write {failed} (No space left on device)" in err[-1] and "resumes" in err[-1], err
    assert "Traceback" not in "\n".join(err) and not record.exists()
    assert cli.main(args) == 0 and record.is_file()
    assert ("resuming" in capsys.readouterr().err) == (fail_at == 3)
