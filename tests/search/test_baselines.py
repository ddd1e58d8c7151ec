"""The baseline searches end to end on tiny generated data: record fields per method, budget, determinism/resume,
the samplers' and GAEA's mechanics, the CLI, and that aggregate reads the records."""

import json
import math

import pytest
import torch
import yaml

from poolnas.analysis import aggregate
from poolnas.search import methods
from poolnas import cli
from poolnas.search.darts import gaea_update
from poolnas.settings import PROFILE_DIR
from poolnas.search.samplers import Boltzmann, UCBTree
from poolnas.search.run import search_run
from poolnas.arch.spaces import RELAXED, SPACES

from helpers import Stop, comparable, tiny_profile

R20 = SPACES["resnet20"]
COMMON = ["kind", "method", "models", "candidates", "dataset", "backbone", "seed", "profile", "selected",
          "alternatives", "configs", "accuracy", "epochs", "budget", "steps", "train_seconds", "eval_seconds",
          "wall_seconds", "images_per_s", "search_train", "search_val", "data_params", "hparams", "options", "run_key", "provenance"]
EPOCH = ["epoch", "lr", "P", "counts", "train_loss", "train_acc", "val_acc", "steps", "images", "seconds"]
STEPS_PER_EPOCH, EPOCHS_RUN = 3, 2  # 48 search-train images in batches of 16; E = 1 plus the extra epoch


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The smoke profile shrunk: 96 training images of 16x16 (48/48 split), batch 16, E = 1 (+1)."""
    root = tmp_path_factory.mktemp("baselines")
    profile = tiny_profile(epochs=1)
    profile["baselines"] = {"relaxed_eval_paths": 5}
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(profile))
    return {"profile": str(path), "root": root, "data": root / "data", "records": {}}


def run(tiny, method, out=None, **kw):
    out = out or tiny["root"] / "runs" / "search" / "twoscale" / "resnet20" / method / f"seed{kw.get('seed', 0)}.json"
    return search_run(method=method, profile=tiny["profile"], dataset="twoscale", backbone="resnet20",
                      seed=kw.pop("seed", 0), out=out, data_dir=tiny["data"], threads=1, device="cpu", **kw)


@pytest.fixture(scope="module")
def records(tiny):
    """One record per method (seed 0), written under the results layout aggregate reads."""
    return {m: run(tiny, m) for m in methods.BASELINES}


@pytest.mark.parametrize("method", methods.BASELINES)
def test_every_method_writes_a_complete_record(records, tiny, method):
    r = records[method]
    on_disk = json.loads((tiny["root"] / "runs" / "search" / "twoscale" / "resnet20" / method / "seed0.json")
                         .read_text())
    assert comparable(on_disk) == comparable(r)
    for field in COMMON:
        assert field in r, field
    assert r["kind"] == "search" and r["method"] == method and r["models"] is None and r["candidates"] is None
    # the mixture's budget: every epoch one pass over search-train, one weight step per minibatch
    assert r["steps"] == r["budget"]["total_steps"] == STEPS_PER_EPOCH * EPOCHS_RUN
    assert r["budget"]["steps_per_epoch"] == STEPS_PER_EPOCH and r["budget"]["epochs_run"] == EPOCHS_RUN
    assert r["search_train"] == r["search_val"] == 48
    assert r["wall_seconds"] >= r["train_seconds"] > 0
    assert [h["epoch"] for h in r["epochs"]] == list(range(EPOCHS_RUN))
    assert [h["lr"] for h in r["epochs"]] == pytest.approx([0.1, 0.0505])  # cosine over 2 epochs to 0.001
    for h in r["epochs"]:
        assert set(EPOCH) <= set(h) and h["steps"] == STEPS_PER_EPOCH and h["images"] == 48
        assert math.isfinite(h["train_loss"])
        assert torch.tensor(h["P"]).sum(1).allclose(torch.ones(len(h["P"])), atol=1e-5)
    assert r["options"]["bn"] == "supernet" and r["hparams"]["baseline"]["family"] in ("darts", "spos", "mcts", "sbe")
    sel = r["selected"]
    family = methods.METHODS[method].family
    if family == "darts":
        assert sel["rule"] == "argmax_alpha" and r["configs"] is None and r["accuracy"] is None
        path = RELAXED.parse(sel["path"])
        config = RELAXED.to_config(path)
        assert sel["config"] == (config.name if config else None)
        W = torch.tensor(r["weights"])
        assert tuple(W.argmax(1).tolist()) == path
        assert r["budget"]["arch_steps"] == r["steps"]
        for h in r["epochs"]:
            assert torch.tensor(h["P"]).shape == (9, 3) and len(h["path"]) == 9 and h["val_acc"] is not None
        assert torch.tensor(r["epochs"][-1]["P"]).allclose(W.float(), atol=1e-6)
        assert len(r["config_log_prob"]) == 36 and 0 <= r["path_val_acc"] <= 100
        best = r["alternatives"]["best_config_by_alpha"]
        assert best["score"] == pytest.approx(max(r["config_log_prob"]))
    else:
        assert sel["rule"] == "best_val" and r["configs"] == [c.name for c in R20]
        acc = r["accuracy"]
        assert len(acc) == 36 and all(0 <= a <= 100 for a in acc)
        assert sel["config"] == R20.configs[acc.index(max(acc))].name and R20.parse(sel["config"]).index == sel["index"]
    if family == "spos":
        assert torch.tensor(r["counts"]).sum(1).tolist() == [r["steps"]] * 9  # each step: one level per block
        if method.endswith("relaxed"):
            assert RELAXED.to_config(RELAXED.parse(sel["path"])).name == sel["config"]
            assert len(r["paths"]) == len(r["path_accuracy"]) == 5
            assert all(RELAXED.to_config(RELAXED.parse(p)) is None for p in r["paths"])
        else:
            assert sum(r["config_counts"]) == r["steps"]
            # configs never put block 1 at quarter resolution nor block 9 below it
            assert r["counts"][0][2] == 0 and r["counts"][8][:2] == [0, 0]
    if family in ("mcts", "sbe"):
        assert sum(r["counts"]) == r["steps"] and sum(sum(h["counts"][0]) for h in r["epochs"]) == r["steps"]
        uniform = methods.METHODS[method].structure["uniform"]
        assert (r["uniform_steps"] > 0) if uniform else (r["uniform_steps"] == 0)
        assert r["options"]["uniform_mix"] == (0.5 if uniform else 0.0)
    if family == "mcts":
        assert sum(r["visits"]) == r["steps"] and set(r["alternatives"]) == {"most_visited", "best_mean"}
    if family == "sbe":
        assert [h["temperature"] for h in r["epochs"]] == [1.0, 100.0]  # the mixture's linear schedule, E = 1
        assert r["alternatives"]["ema"]["score"] == pytest.approx(max(r["ema"]))


def test_darts_variants_differ_as_specified(records):
    r = records
    assert r["darts"]["options"]["weight_sharing"] == "shared"
    assert r["darts-not-shared-same"]["options"]["copies_init"] == "same"
    assert r["darts-not-shared-rnd"]["options"]["copies_init"] == "random"
    assert r["darts"]["hparams"]["baseline"]["arch_lr"] == 0.01
    gaea = r["darts-gaea"]
    assert torch.tensor(gaea["alpha_init"]).allclose(torch.full((9, 3), 1 / 3))
    for h in gaea["epochs"]:  # GAEA: alpha itself is on the simplex
        alpha = torch.tensor(h["alpha"])
        assert (alpha >= 0).all() and alpha.sum(1).allclose(torch.ones(9), atol=1e-5)
        assert h["alpha"] == h["P"]
    assert gaea["alpha"] != gaea["alpha_init"]
    # same seed, same init of the level-0 blocks: the shared and the not-shared same-init searches start alike
    assert r["darts"]["alpha_init"] == r["darts-not-shared-same"]["alpha_init"]


def test_gaea_update_stays_on_the_simplex():
    torch.manual_seed(0)
    alpha = torch.softmax(torch.randn(9, 3), 1)
    for _ in range(50):
        gaea_update(alpha, 100 * torch.randn(9, 3), lr=0.5)
        assert (alpha >= 0).all() and alpha.sum(1).allclose(torch.ones(9), atol=1e-6)
    # the step moves mass away from the level with the largest gradient
    alpha = torch.full((1, 3), 1 / 3)
    gaea_update(alpha, torch.tensor([[1.0, 0.0, -1.0]]), lr=0.1)
    assert alpha[0, 0] < alpha[0, 1] < alpha[0, 2]


@pytest.mark.parametrize("method", ["darts-not-shared-rnd", "mcts-uniform", "spos-not-shared-relaxed"])
def test_interrupted_search_resumes_to_the_identical_record(records, tiny, method):
    out, ckpt = tiny["root"] / f"resumed-{method}.json", tiny["root"] / "ck" / f"{method}.pt"

    def stop(epoch):
        raise Stop(epoch)

    with pytest.raises(Stop):
        run(tiny, method, out, checkpoint=ckpt, after_epoch=stop)
    assert ckpt.exists() and not out.exists()
    resumed = run(tiny, method, out, checkpoint=ckpt)
    assert comparable(resumed) == comparable(records[method])  # also: deterministic on CPU for a seed
    assert not ckpt.exists()


def test_ucb_tree_tries_every_child_then_follows_ucb():
    configs = list(R20)
    tree = UCBTree([c.positions for c in configs], c=0.0)  # no exploration bonus: greedy once all are tried
    gen = torch.Generator().manual_seed(0)
    firsts = []
    for _ in range(8):  # the root's 8 children (first pool before unit 1..8) are each tried once first
        c = tree.choose(gen)
        firsts.append(configs[c].positions[0])
        tree.update(c, 0.5)
    assert sorted(firsts) == list(range(1, 9))
    tree.update(R20.parse("7-1-2").index - 1, 1.0)  # a high reward under first position 7
    picks = {configs[tree.choose(gen)].positions[0] for _ in range(5)}
    assert picks == {7}
    assert sum(tree.visits()) == 9 and tree.N[()] == 9
    assert configs[tree.most_visited()].positions[0] in range(1, 9)


def test_boltzmann_sampler_follows_temperature():
    s = Boltzmann(4, ema=0.9)
    assert s.probs().tolist() == pytest.approx([0.25] * 4)  # all scores start at 1.0
    s.update(2, 0.0)
    assert s.s[2] == pytest.approx(0.9)
    s.T = 100.0
    p = s.probs()
    assert p[2] < 1e-3 and p.sum() == pytest.approx(1.0)
    gen = torch.Generator().manual_seed(0)
    assert 2 not in {s.choose(gen) for _ in range(50)}


def test_cli_runs_a_baseline_and_rejects_bad_use(tiny, tmp_path, capsys):
    out = tmp_path / "sbe.json"
    args = ["search", "--method", "sbe", "--profile", tiny["profile"], "--dataset", "twoscale", "--seed", "1",
            "--out", str(out), "--data-dir", str(tiny["data"]), "--device", "cpu", "--threads", "1"]
    assert cli.main(args + ["--backbone", "resnet20"]) == 0
    record = json.loads(out.read_text())
    assert record["method"] == "sbe" and record["seed"] == 1
    assert cli.main(args[:2] + ["darts"] + args[3:] + ["--backbone", "resnet18"]) == 2
    assert "relaxed ResNet20" in capsys.readouterr().err
    assert cli.main(args[:2] + ["darts-xyz"] + args[3:] + ["--backbone", "resnet20"]) == 2


def test_aggregate_reads_the_baseline_records(records, tiny):
    frames = aggregate.collect(tiny["root"], n_boot=0)
    search = frames["search"].set_index("method")
    assert set(search.index) == set(methods.BASELINES)
    for method, r in records.items():
        row = search.loc[method]
        assert row.selected_path == r["selected"].get("path") or (pd_na(row.selected_path)
                                                                   and "path" not in r["selected"])
        if r["selected"]["config"] is not None:
            assert row.selected_config == r["selected"]["config"]
    evals = frames["search_eval"]
    assert set(evals.method) == {m for m in methods.BASELINES if not m.startswith("darts")}
    assert len(frames["search_epochs"]) == EPOCHS_RUN * len(methods.BASELINES)


def pd_na(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_schema_defaults_and_names_match_the_package():
    schema = yaml.safe_load((PROFILE_DIR / "schema.yaml").read_text())
    section = schema["properties"]["baselines"]["properties"]
    assert {k: v["default"] for k, v in section.items()} == methods.DEFAULTS
    study_search = schema["properties"]["studies"]["items"]["properties"]["search"]["properties"]
    assert study_search["baselines"]["items"]["enum"] == list(methods.BASELINES)
