"""The search command end to end on tiny generated data: record fields, M = 1, resume, random search, bad input."""

import json

import pytest
import torch
import yaml

from poolnas import cli
from poolnas.search import balancing
from poolnas.search.evaluation import evaluate_all, tree_forward
from poolnas.arch.models import build_model
from poolnas.search.run import search_run
from poolnas.arch.spaces import SPACES
from poolnas.engine.loop import TrainingDiverged
from poolnas.engine.steps import evaluate

from helpers import Stop, comparable, tiny_profile
from poolnas.errors import UsageError

R20 = SPACES["resnet20"]
RECORD_FIELDS = ["kind", "method", "models", "dataset", "backbone", "seed", "profile", "selected", "alternatives",
                 "configs", "accuracy", "assignment", "P_final", "W", "counts", "epochs", "budget", "steps",
                 "train_seconds", "eval_seconds", "wall_seconds", "images_per_s", "search_train", "search_val",
                 "hparams", "options", "run_key", "provenance"]
EPOCH_FIELDS = ["epoch", "temperature", "lr", "W", "counts", "P", "marginals", "train_loss", "train_acc", "val_acc",
                "steps", "images", "seconds"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The smoke profile shrunk: 96 training images of 16x16 (48/48 split), batch 16, E = 2 (+1)."""
    root = tmp_path_factory.mktemp("search")
    profile = tiny_profile(epochs=2)
    profile["studies"][0]["search"] = {"seeds": [0], "mixture": [1, 2], "random": 3}

    def write(name="tiny", **search):
        p = json.loads(json.dumps(profile))
        p["search"]["resnet20"].update(search)
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(p))
        return str(path)

    return {"write": write, "root": root, "data": root / "data"}


def run(tiny, out, **kw):
    kw.setdefault("method", "mixture")
    return search_run(profile=kw.pop("profile", None) or tiny["write"](), dataset="twoscale", backbone="resnet20",
                      seed=kw.pop("seed", 0), out=out, data_dir=tiny["data"], threads=1, device="cpu", **kw)


@pytest.fixture(scope="module")
def reference(tiny):
    """One uninterrupted M = 2 search (shared by the field and resume tests)."""
    out = tiny["root"] / "ref.json"
    return run(tiny, out, models=2), out


def test_mixture_record_has_every_field(reference, tiny):
    record, out = reference
    on_disk = json.loads(out.read_text())
    assert comparable(on_disk) == comparable(record)
    for field in RECORD_FIELDS:
        assert field in on_disk, field
    assert on_disk["kind"] == "search" and on_disk["method"] == "mixture" and on_disk["models"] == 2
    assert on_disk["configs"] == [c.name for c in R20] and on_disk["search_train"] == on_disk["search_val"] == 48
    acc = torch.tensor(on_disk["accuracy"])
    assert acc.shape == (36, 2) and ((acc >= 0) & (acc <= 100)).all()
    # 3 epochs (E = 2 plus the extra epoch) of 3 steps each
    assert [h["epoch"] for h in on_disk["epochs"]] == [0, 1, 2]
    assert [h["temperature"] for h in on_disk["epochs"]] == [1.0, 50.5, 100.0]
    assert on_disk["steps"] == 9 and on_disk["budget"] == {"total_steps": 9, "steps_per_epoch": 3, "epochs_run": 3}
    for h in on_disk["epochs"]:
        assert set(EPOCH_FIELDS) <= set(h)
        assert torch.tensor(h["P"]).shape == (36, 2) and torch.tensor(h["W"]).shape == (36, 2)
        assert sum(map(sum, h["counts"])) == h["steps"] == 3 and h["images"] == 48
        assert torch.tensor(h["P"]).sum(1).allclose(torch.ones(36), atol=1e-5)
    # cosine from 0.1 over 3 epochs to 0.001
    assert [h["lr"] for h in on_disk["epochs"]] == pytest.approx([0.1, 0.07525, 0.02575])
    assert on_disk["epochs"][0]["marginals"] == []  # W = 1 everywhere at epoch 0: already balanced
    total = torch.tensor([h["counts"] for h in on_disk["epochs"]]).sum(0)
    assert total.tolist() == on_disk["counts"]
    # the selection: every rule recorded, the profile's rule reported
    assert set(on_disk["alternatives"]) == {"assigned", "best_model", "ema"}
    sel = on_disk["selected"]
    assert sel["rule"] == "assigned" and sel == {"rule": "assigned", **{k: on_disk["alternatives"]["assigned"][k]
                                                                       for k in ("config", "index")}}
    assigned_scores = [row[m] for row, m in zip(on_disk["accuracy"], on_disk["assignment"])]
    assert on_disk["alternatives"]["assigned"]["score"] == max(assigned_scores)
    assert R20.parse(sel["config"]).index == sel["index"]
    assert on_disk["alternatives"]["best_model"]["score"] == max(map(max, on_disk["accuracy"]))
    assert on_disk["options"]["selection"] == "assigned" and on_disk["options"]["extra_epoch"] is True
    assert on_disk["options"]["warmup_epochs"] == on_disk["hparams"]["warmup_epochs"]
    assert on_disk["options"]["eval_order"] == "shuffled" and on_disk["options"]["conv_init"] == "kaiming_fan_out"
    assert on_disk["options"]["eval_drop_last"] is False and on_disk["options"]["eval_batch_size"] == 48
    assert on_disk["hparams"]["ema"] == 0.9 and on_disk["provenance"]["torch_version"] == torch.__version__
    assert not (tiny["root"] / ".checkpoints" / "ref.pt").exists()  # removed once the record is written


def test_interrupted_search_resumes_to_the_identical_record(reference, tiny):
    """Stop after epoch 0 (the checkpoint is written), rerun: the record equals the uninterrupted one."""
    out, ckpt = tiny["root"] / "resumed.json", tiny["root"] / "ck" / "resumed.pt"

    def stop(epoch):
        raise Stop(epoch)

    with pytest.raises(Stop):
        run(tiny, out, models=2, checkpoint=ckpt, after_epoch=stop)
    assert ckpt.exists() and not out.exists()
    resumed = run(tiny, out, models=2, checkpoint=ckpt)
    assert comparable(resumed) == comparable(reference[0])
    assert not ckpt.exists()


def test_single_supernet_is_uniform_single_path_spos(tiny):
    record = run(tiny, tiny["root"] / "m1.json", models=1, seed=1)
    again = run(tiny, tiny["root"] / "m1b.json", models=1, seed=1)
    assert comparable(record) == comparable(again)  # deterministic on CPU
    assert record["models"] == 1 and torch.tensor(record["accuracy"]).shape == (36, 1)
    assert record["assignment"] == [0] * 36 and record["P_final"] == [[1.0]] * 36
    for h in record["epochs"]:
        assert h["P"] == [[1.0]] * 36 and h["marginals"] == []
    assert sum(c[0] for c in record["counts"]) == record["steps"] == 9
    # with one model, "assigned" and "best_model" are the same rule
    assert record["alternatives"]["assigned"] == record["alternatives"]["best_model"]
    other = run(tiny, tiny["root"] / "m1c.json", models=1, seed=2)
    assert other["epochs"][0]["train_loss"] != record["epochs"][0]["train_loss"]


def test_random_search_at_equal_cost_and_resume(tiny):
    out = tiny["root"] / "random.json"
    record = run(tiny, out, method="random", configs=3)
    on_disk = json.loads(out.read_text())
    assert comparable(on_disk) == comparable(record)
    assert record["method"] == "random" and record["candidates"] == 3 and record["models"] is None
    assert len(set(record["configs"])) == 3 and len(record["candidate_runs"]) == 3
    # the mixture's 3 epochs x 3 steps = 9 SGD steps, split evenly
    assert record["budget"] == {"total_steps": 9, "steps_per_epoch": 3, "epochs_run": 3, "per_candidate": [3, 3, 3]}
    assert record["steps"] == 9 and [r["steps"] for r in record["candidate_runs"]] == [3, 3, 3]
    best = max(record["candidate_runs"], key=lambda r: r["val_acc"])
    assert record["selected"] == {"config": best["config"], "index": best["index"], "rule": "best_val"}
    assert record["accuracy"] == [r["val_acc"] for r in record["candidate_runs"]]
    assert record["options"]["bn"] == "released"
    for field in ("wall_seconds", "train_seconds", "images_per_s", "hparams", "options", "provenance"):
        assert field in record
    # interrupted after the first pass over the data, then resumed: the same record
    ckpt = tiny["root"] / "random.pt"

    def stop(i):
        raise Stop(i)

    with pytest.raises(Stop):
        run(tiny, tiny["root"] / "random2.json", method="random", configs=3, checkpoint=ckpt, after_epoch=stop)
    resumed = run(tiny, tiny["root"] / "random2.json", method="random", configs=3, checkpoint=ckpt)
    assert comparable(resumed) == comparable(record)
    # an uneven split: 9 steps over 2 candidates
    two = run(tiny, tiny["root"] / "random3.json", method="random", configs=2, seed=4)
    assert two["budget"]["per_candidate"] == [5, 4] and two["steps"] == 9


def test_nan_loss_names_config_model_and_epoch(tiny, capsys):
    profile = tiny["write"]("nan", lr=1e38)
    with pytest.raises(TrainingDiverged, match=r"config \[\d,\d,\d\] \(#\d+\), model \d, epoch 0"):
        run(tiny, tiny["root"] / "nan.json", models=2, profile=profile)
    assert not (tiny["root"] / "nan.json").exists()
    code = cli.main(["search", "--method", "mixture", "--models", "2", "--profile", profile, "--dataset",
                     "twoscale", "--backbone", "resnet20", "--seed", "0", "--out", str(tiny["root"] / "nan.json"),
                     "--data-dir", str(tiny["data"]), "--threads", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "nan" in err.lower() and "model" in err


@pytest.mark.parametrize("change,fragment", [
    (["--models", "0"], "--models must be 1..36"),
    (["--models", "37"], "--models must be 1..36"),
    (["--method", "evolution"], "unknown search method 'evolution'"),
    (["--method", "random", "--configs", "0"], "--configs must be 1..36"),
    (["--method", "random", "--configs", "40"], "--configs must be 1..36"),
    (["--backbone", "resnet34"], "unknown backbone 'resnet34'"),
    (["--dataset", "imagenet"], "dataset 'imagenet' is not in profile"),
    (["--profile", "huge"], "unknown profile 'huge'"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--models", "-1"], "must be"),
])
def test_bad_input_gets_one_line_and_exit_2(tmp_path, capsys, change, fragment):
    args = {"--method": "mixture", "--models": "2", "--profile": "smoke", "--dataset": "twoscale",
            "--backbone": "resnet20", "--seed": "0", "--out": str(tmp_path / "x.json"),
            "--data-dir": str(tmp_path / "data")}
    args.update(dict(zip(change[::2], change[1::2])))
    code = cli.main(["search", *[x for kv in args.items() for x in kv]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert (fragment in err or "no CUDA device" in err) and err.count("\n") == 1, err
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "data").exists()


def test_mixture_without_models_is_a_usage_error(tmp_path, capsys):
    code = cli.main(["search", "--profile", "smoke", "--dataset", "twoscale", "--backbone", "resnet20", "--seed",
                     "0", "--out", str(tmp_path / "x.json"), "--data-dir", str(tmp_path / "data")])
    assert code == 2 and "--models is required" in capsys.readouterr().err


@pytest.mark.parametrize("backbone,size,bug,every", [("resnet20", 16, False, 1), ("resnet18", 8, False, 3),
                                                     ("resnet50", 8, True, 37)])
@torch.no_grad()
def test_tree_forward_gives_exactly_the_per_config_outputs(backbone, size, bug, every):
    """Prefix sharing in the final evaluation changes nothing: the same logits, bit for bit, for every config."""
    torch.manual_seed(0)
    net = build_model(backbone, bn="supernet", num_classes=5, resnet50_d1_bug=bug).eval()
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(6, 3, size, size).contiguous(memory_format=torch.channels_last)
    configs = list(SPACES[backbone])[::every]
    if bug:  # the d = 1 bug drops [12,1,2,1]'s last downsampling: a prefix of [12,1,1,2]'s
        configs += [SPACES[backbone].parse("12-1-2-1"), SPACES[backbone].parse("12-1-1-2")]
    positions = [net.resolve(c) for c in configs]
    seen = []
    for members, logits in tree_forward(net, x, positions):
        for c in members:
            assert torch.equal(logits, net(x, positions[c])), configs[c].name
        seen += members
    assert sorted(seen) == list(range(len(configs)))


def test_evaluate_all_equals_per_pair_evaluation(tiny):
    from poolnas.engine.loop import fit
    from poolnas.search.mixture import MixtureSearch
    from poolnas.search.run import prepare

    ctx = prepare(method="mixture", profile=tiny["write"](), dataset="twoscale", backbone="resnet20", seed=0,
                  out=tiny["root"] / "eval.json", models=2, data_dir=tiny["data"], device="cpu", threads=1)
    run = MixtureSearch(ctx)
    fit(run, [0], ctx.checkpoint, name=ctx.name)
    acc = evaluate_all(run.nets, ctx.eval_loader, run.positions, ctx.dev, "fp32")
    ref = [[evaluate(net, ctx.eval_loader, ctx.dev, "fp32", config=p) for net in run.nets]
           for p in run.positions]
    assert acc.tolist() == ref


@pytest.mark.parametrize("budget, method, size, expected", [
    ("total", "mixture", {"models": 4}, 3), ("per_supernet", "mixture", {"models": 4}, 12),
    ("per_supernet", "mixture-budget", {"models": 1, "budget_models": 8}, 24),
    ("total", "mixture-budget", {"models": 1, "budget_models": 8}, 3),
    ("per_supernet", "random", {"configs": 2}, 6), ("per_supernet", "darts", {}, 3)])
def test_the_budget_option_scales_the_search_length(budget, method, size, expected):
    from poolnas.search import methods
    from poolnas.search.methods import scaled_budget

    hp = {"epochs": 3, "budget": budget, "baseline_budget": 1}
    spec = methods.METHODS[method]
    scaled, note = scaled_budget(hp, spec, size.get("models"), size.get("configs"), size.get("budget_models"))
    assert scaled["epochs"] == expected and hp["epochs"] == 3
    assert note.startswith(budget)


def test_the_equal_budget_control_trains_one_supernet_as_long_as_the_largest_mixture(tiny):
    """M = 1 at M = 2's budget under per_supernet runs twice the epochs of M = 1, and its record says so."""
    common = dict(profile=tiny["write"]("budget", budget="per_supernet"), dataset="twoscale", backbone="resnet20", seed=0, data_dir=tiny["data"],
                  device="cpu", threads=1)
    plain = search_run(method="mixture", models=1, out=tiny["root"] / "m1.json", **common)
    control = search_run(method="mixture-budget", models=1, budget_models=2, out=tiny["root"] / "b2.json", **common)
    assert control["budget_models"] == 2 and "budget_models" not in plain
    assert control["budget"]["total_steps"] == 2 * plain["budget"]["total_steps"] - control["budget"]["steps_per_epoch"]
    assert control["options"]["search_budget"].startswith("per_supernet: 2 x")
    with pytest.raises(UsageError):
        search_run(method="mixture", models=1, budget_models=2, out=tiny["root"] / "x.json", **common)


def test_the_pair_supernet_trains_and_scores_only_figure_1s_two_configs(tiny):
    """mixture-pair (the paper's Figure 1 protocol): one SuperNet, every step on [1,1,8] or [6,2,2], both scored on the
    whole search-validation split, the same budget as M = 1; any other backbone is refused."""
    record = run(tiny, tiny["root"] / "pair.json", method="mixture-pair", models=1)
    plain = run(tiny, tiny["root"] / "pair-m1.json", models=1)
    assert record["configs"] == ["[1,1,8]", "[6,2,2]"] and torch.tensor(record["accuracy"]).shape == (2, 1)
    assert sum(c[0] for c in record["counts"]) == record["steps"] == plain["steps"]
    assert all(c[0] > 0 for c in record["counts"])  # both configs trained
    assert record["selected"]["config"] in record["configs"]
    assert record["options"]["configs"] == "only [1,1,8], [6,2,2]"
    with pytest.raises(UsageError, match="use --backbone resnet20"):
        search_run(profile=tiny["write"](), method="mixture-pair", models=1, dataset="twoscale", backbone="resnet18",
                   seed=0, out=tiny["root"] / "x.json", data_dir=tiny["data"], threads=1, device="cpu")


def test_shortlist_selection_is_recorded_and_picks_within_the_shortlist(tiny):
    """selection: shortlist (the released Food101 search) picks the best assigned score among the configs with the
    highest max_m W; the record names the rule and its size, and keeps the other rules as alternatives."""
    record = run(tiny, tiny["root"] / "short.json", models=2,
                 profile=tiny["write"]("short", selection="shortlist", shortlist_size=5))
    W = torch.tensor(record["W"], dtype=torch.float64)
    listed = balancing.shortlist(W, 5).tolist()
    assert record["options"]["selection"] == "shortlist" and record["options"]["shortlist_size"] == 5
    assert record["selected"]["rule"] == "shortlist" and record["selected"]["index"] - 1 in listed
    scores = {c: record["accuracy"][c][record["assignment"][c]] for c in listed}
    assert record["alternatives"]["shortlist"]["score"] == pytest.approx(max(scores.values()), abs=1e-4)
    assert set(record["alternatives"]) == {"assigned", "best_model", "ema", "shortlist"}


def test_default_selection_records_no_shortlist_key(reference):
    record, _ = reference
    assert "shortlist_size" not in record["options"] and "shortlist" not in record["alternatives"]


@pytest.mark.parametrize("drop_last, steps", [(None, 3), (True, 2)])
def test_search_train_drop_last_follows_the_setting(tiny, drop_last, steps):
    """The released search loaders drop the last partial batch (the paper profile's drop_last: true); absent, the
    batch is kept, as the committed searches ran. 48 search-train images at batch 20: 3 batches, or 2 dropped."""
    from poolnas.search.run import prepare

    extra = {} if drop_last is None else {"drop_last": drop_last}
    ctx = prepare(method="mixture", models=1, profile=tiny["write"](f"dl{drop_last}", batch_size=20, **extra),
                  dataset="twoscale", backbone="resnet20", seed=0, out=tiny["root"] / "dl.json", data_dir=tiny["data"],
                  device="cpu", threads=1)
    assert len(ctx.train_loader) == steps and ctx.options["drop_last"] is bool(drop_last)
    assert sum(len(y) for _, y in ctx.train_loader.epoch(0)) == (40 if drop_last else 48)
    assert "tf32" not in ctx.options  # a CPU run records no GPU kernel options
