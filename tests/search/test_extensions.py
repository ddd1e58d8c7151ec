"""The searches beyond the pooling (issue 17) end to end on tiny generated data: DGConv's budget objective, gates
and record; CONet's trials, metrics and width rule replayed from its record; determinism and resume; the best
ground-truth config; retraining a variant; one-line errors."""

import json
import math

import pytest
import torch
import yaml

from poolnas import schemas
from poolnas.arch import variants
from poolnas.arch.dgconv import DGConv2d
from poolnas.arch.spaces import SPACES
from poolnas.search.conet import conv_variables, ras, transfer, width_variables
from poolnas.search.conet_rule import RuleSettings, WidthState, update
from poolnas.search.dgconv import connections
from poolnas.search.run import search_run
from poolnas.standalone import train_run

from helpers import REPO, Stop, comparable, tiny_profile, train_record

R20 = SPACES["resnet20"]
TRIAL_EPOCHS = 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("extensions")
    profile = tiny_profile(epochs=1)
    profile["extensions"] = {"dgconv": {"epochs": 2, "gate_init": 0.05, "exponent": -1.0},
                             "conet": {"trials": 2, "trial_epochs": TRIAL_EPOCHS, "transfer": True, "init_width": 16,
                                       "c_max": 48}}
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(profile))
    gt = []  # ground truth of three configs, [8,1,1] the best on average
    for config, accs in (("[4,3,3]", (50.0, 52.0)), ("[8,1,1]", (60.0, 58.0)), ("[1,1,8]", (55.0, 40.0))):
        for seed, acc in enumerate(accs):
            out = root / "gt" / R20.parse(config).slug / f"seed{seed}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(train_record("twoscale", "resnet20", R20.parse(config), seed, acc)))
            gt.append(str(out))
    return {"profile": str(path), "root": root, "data": root / "data", "gt": gt}


def run(tiny, method, name, **kw):
    out = tiny["root"] / "runs" / "search" / "twoscale" / "resnet20" / name / f"seed{kw.get('seed', 0)}.json"
    return search_run(method=method, profile=tiny["profile"], dataset="twoscale", backbone="resnet20",
                      seed=kw.pop("seed", 0), out=out, data_dir=tiny["data"], threads=1, device="cpu", **kw)


@pytest.fixture(scope="module")
def dgconv(tiny):
    return run(tiny, "dgconv", "dgconv-R25-default", rho=25)


@pytest.fixture(scope="module")
def conet(tiny):
    return run(tiny, "conet", "conet-best", pooling="best", groundtruth=tiny["gt"])


def test_connections_carry_the_gates_gradient():
    layer = DGConv2d(16)
    with torch.no_grad():
        layer.gate_logits.copy_(torch.tensor([0.3, -0.2, 0.5, 0.1]))
    zeta = connections([layer])
    assert float(zeta.detach()) == 16 * 2 ** 3 == layer.connections
    zeta.backward()
    # straight-through: d zeta / d g_k = C * prod_{j != k} (1 + g_j), with g = (1, 0, 1, 1)
    assert layer.gate_logits.grad.tolist() == [16 * 2 * 1 * 2, 16 * 2 * 2 * 2, 16 * 2 * 1 * 2, 16 * 2 * 1 * 2]


def test_dgconv_record_counts_what_it_found(dgconv):
    r = dgconv
    found = variants.parse("resnet20", r["selected"]["variant"])
    assert r["selected"]["config"] == r["pooling"]["config"] == "[4,3,3]" and r["pooling"]["requested"] == "default"
    dense = sum(2 ** (2 * K) for K in variants.gate_layout("resnet20"))  # sum_l C_l^2 over the 16 square convs
    assert r["dense"]["connections"] == dense and r["target_connections"] == pytest.approx(0.25 * dense)
    assert r["found"]["connections"] == sum(2 ** (len(b) + sum(b)) for b in found.bits)
    assert r["found"]["connection_fraction"] == pytest.approx(r["found"]["connections"] / dense, rel=1e-5)
    assert (r["found"]["params"], r["found"]["macs"]) == variants.cost(found, "[4,3,3]", 16, 4, "cifar", "released")
    assert r["epochs"][-1]["connections"] == r["found"]["connections"]
    # the equal-MACs baseline is the uniform group count whose MACs are nearest the found network's
    macs = {G: variants.cost(variants.uniform_groups("resnet20", G), "[4,3,3]", 16, 4, "cifar", "released")[1]
            for G in (1, 2, 4, 8, 16)}
    best = min(macs, key=lambda G: abs(macs[G] - r["found"]["macs"]))
    assert r["compare"]["fixed_groups"]["groups"] == best and r["compare"]["fixed_groups"]["macs"] == macs[best]
    assert r["budget"]["epochs_run"] == len(r["epochs"]) == 2 and r["options"]["exponent"] == -1.0
    assert [h["gate_lr"] for h in r["epochs"]] == [h["lr"] for h in r["epochs"]] == pytest.approx([0.1, 0.0505])
    schemas.check(r, "search", "dgconv")


def test_the_budget_term_acts_only_above_the_target(dgconv, tiny):
    first = dgconv["epochs"][0]
    assert first["objective"] > first["train_loss"]  # dense at the start: the budget term is on
    assert dgconv["found"]["connection_fraction"] < 1  # and it pulled connections away from dense
    free = run(tiny, "dgconv", "dgconv-R100-default", rho=100)  # target = dense: never above it
    assert all(h["objective"] == pytest.approx(h["train_loss"], rel=1e-6) for h in free["epochs"])


def test_gates_are_out_of_weight_decay_and_at_their_own_lr(tiny):
    from poolnas.search.dgconv import DGConvSearch
    from poolnas.search.run import prepare

    ctx = prepare(method="dgconv", profile=tiny["profile"], dataset="twoscale", backbone="resnet20", seed=0, rho=50,
                  out=tiny["root"] / "p.json", data_dir=tiny["data"], threads=1, device="cpu")
    weights, gates = DGConvSearch(ctx).opt.param_groups
    assert gates["weight_decay"] == 0 and len(gates["params"]) == 16 and gates["lr"] == ctx.hp["lr"]
    assert all(p.dim() == 1 for p in gates["params"]) and all(p.dim() > 0 for p in weights["params"])


def test_conet_trials_replay_the_width_rule(conet):
    r, names = conet, width_variables("resnet20")
    assert r["pooling"]["requested"] == "best" and r["selected"]["config"] == "[8,1,1]"
    ext = r["hparams"]["extension"]
    rule = RuleSettings(**{k: ext[k] for k in ("delta", "mu", "phi", "gamma", "c_min", "c_max")})
    states = {n: WidthState(width=16, phi=rule.phi) for n in names}
    assert len(r["trials"]) == 2 and len(r["epochs"]) == 2 * TRIAL_EPOCHS
    for trial in r["trials"]:
        trained = variants.parse("resnet20", trial["variant"])
        assert trained.stream + trained.inner == tuple(states[n].width for n in names)
        for n in names:
            assert len(trial["rank"][n]) == TRIAL_EPOCHS + 1  # R(0) at the trial's start, then one per epoch
            assert trial["ras"][n] == pytest.approx(ras(trial["rank"][n]), abs=1e-6)
            assert trial["mc_last"][n] == trial["mc"][n][-1]
            states[n] = update(states[n], trial["ras"][n], trial["mc_last"][n], rule)
        assert trial["next"] == {n: states[n].width for n in names}
    found = variants.parse("resnet20", r["selected"]["variant"])
    assert found.stream + found.inner == tuple(states[n].width for n in names)
    assert {n: s["width"] for n, s in r["states"].items()} == {n: states[n].width for n in names}
    schemas.check(r, "search", "conet")


def test_conet_uniform_widths_have_the_nearest_parameters(conet):
    target = conet["found"]["params"]
    chosen = abs(conet["compare"]["uniform_widths"]["params"] - target)
    for scale in [s / 20 for s in range(2, 60)]:
        params = variants.cost(variants.scaled_widths("resnet20", scale), "[8,1,1]", 16, 4, "cifar", "released")[0]
        assert chosen <= abs(params - target)


def test_ras_is_the_slope_to_the_highest_rank():
    assert ras([0.1, 0.3, 0.5, 0.4]) == pytest.approx(0.2)  # e* = 2
    assert ras([0.2, 0.6, 0.1]) == pytest.approx(0.4)  # e* = 1
    assert ras([0.5, 0.4, 0.3]) == pytest.approx(-0.1)  # never above the start: the first epoch


def test_every_conv_belongs_to_its_width_variables():
    net = variants.build(variants.widths("resnet20", [16, 24, 40], [8, 10, 12, 14, 16, 18, 20, 22, 24]), "[4,3,3]")
    convs = conv_variables(net, "resnet20")
    assert len(convs) == sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 1 + 18 + 2
    widths = dict(zip(width_variables("resnet20"), [16, 24, 40, 8, 10, 12, 14, 16, 18, 20, 22, 24]))
    for weight, (reads, writes) in convs:  # a conv's input and output widths are the variables it reads and writes
        assert weight.shape[:2] == (widths[writes], 3 if reads is None else widths[reads])


def test_conet_pairing_gives_each_width_its_producers_output_and_consumers_input_modes():
    """CONet's pairing (`pairing: modes`): inner1 is written by block 1's conv1 and read by its conv2, so its rank
    is the mean of conv1's output-mode rank and conv2's input-mode rank; `average` (ours) gives it the mean of both
    convs' two modes."""
    from poolnas.search.conet import metrics
    from poolnas.search.evbmf import mode_metrics

    torch.manual_seed(0)
    net = variants.build(variants.widths("resnet20", [16, 24, 40], [8, 10, 12, 14, 16, 18, 20, 22, 24]), "[4,3,3]")
    with torch.no_grad():  # conv1 of rank 2 in its output mode, conv2 in its input mode: the modes' ranks differ
        w = net.blocks[0].conv1.weight
        w.copy_((torch.randn(w.shape[0], 2) @ torch.randn(2, w[0].numel())).view_as(w))
        w = net.blocks[0].conv2.weight
        w.copy_((torch.randn(w.shape[1], 2) @ torch.randn(2, w.shape[0] * 9)).view(w.shape[1], w.shape[0], 3, 3)
                .transpose(0, 1))
    (c1_in, c1_out), (c2_in, c2_out) = (mode_metrics(b.detach().numpy()) for b in
                                        (net.blocks[0].conv1.weight, net.blocks[0].conv2.weight))
    rank, cond = metrics(net, "resnet20", "modes")
    assert rank["inner1"] == pytest.approx((c1_out[0] + c2_in[0]) / 2)
    assert cond["inner1"] == pytest.approx((c1_out[1] + c2_in[1]) / 2)
    averaged, _ = metrics(net, "resnet20")
    assert averaged["inner1"] == pytest.approx((c1_in[0] + c1_out[0] + c2_in[0] + c2_out[0]) / 4)
    assert rank["inner1"] != pytest.approx(averaged["inner1"])


def test_transfer_copies_the_overlapping_block():
    torch.manual_seed(0)
    small = variants.build(variants.widths("resnet20", [8, 16, 32], [8] * 3 + [16] * 3 + [32] * 3), "[4,3,3]")
    large = variants.build(variants.widths("resnet20", [12, 16, 24], [10] * 3 + [20] * 3 + [24] * 3), "[4,3,3]")
    transfer(small.state_dict(), large)
    a, b = small.blocks[4].conv1.weight, large.blocks[4].conv1.weight  # 16 -> 16 small, 16 -> 20 large
    assert torch.equal(b[:16, :16], a[:16, :16])


@pytest.mark.parametrize("method, stop", [("dgconv", 0), ("conet", 0), ("conet", 1)])
def test_a_resumed_search_writes_the_uninterrupted_record(tiny, dgconv, conet, method, stop):
    """conet stopped within its first trial (epoch 0 of 2) and between trials (its weights carried over)."""
    kw = {"rho": 25} if method == "dgconv" else {"pooling": "best", "groundtruth": tiny["gt"]}
    name = f"{method}-resume-{stop}"

    def interrupt(e):
        if e == stop:
            raise Stop

    ckpt = tiny["root"] / f"{name}.pt"
    with pytest.raises(Stop):
        run(tiny, method, name, checkpoint=ckpt, after_epoch=interrupt, **kw)
    resumed = run(tiny, method, name, checkpoint=ckpt, **kw)
    assert comparable(resumed) == comparable(dgconv if method == "dgconv" else conet)


def test_a_variant_retrains_standalone_with_its_cost(tiny, dgconv):
    variant = dgconv["selected"]["variant"]
    out = tiny["root"] / "runs" / "train" / "twoscale" / "resnet20" / "4-3-3" / variant / "seed0.json"
    record = train_run(profile=tiny["profile"], dataset="twoscale", backbone="resnet20", config="4-3-3", seed=0,
                       out=out, data_dir=tiny["data"], threads=1, device="cpu", epochs=1, variant=variant)
    assert record["variant"]["slug"] == dgconv["selected"]["variant"] and record["variant"]["kind"] == "groups"
    assert (record["params"], record["macs"]) == (dgconv["found"]["params"], dgconv["found"]["macs"])
    assert record["config"] == "[4,3,3]" and math.isfinite(record["test_acc"])
    schemas.read_record(out, "train")


@pytest.mark.parametrize("args, message", [
    (["--method", "dgconv"], "--rho PERCENT (1..100) is required"),
    (["--method", "conet", "--rho", "20"], "--rho PERCENT (1..100) is required"),
    (["--method", "mixture", "--models", "2", "--pooling", "default"], "apply to --method dgconv and conet only"),
    (["--method", "conet", "--pooling", "best"], "--pooling best needs --groundtruth"),
    (["--method", "conet", "--pooling", "[9,9,9]"], "[9,9,9]"),
])
def test_bad_search_arguments_get_one_line(run_cli, tiny, args, message):
    proc = run_cli("search", *args, "--profile", tiny["profile"], "--dataset", "twoscale", "--backbone", "resnet20",
                   "--seed", "0", "--out", tiny["root"] / "bad.json", "--data-dir", tiny["data"])
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_bad_variant_gets_one_line(run_cli, tiny):
    proc = run_cli("train", "--variant", "g12", "--profile", tiny["profile"], "--dataset", "twoscale", "--backbone",
                   "resnet20", "--config", "4-3-3", "--seed", "0", "--out", tiny["root"] / "bad.json", cwd=REPO)
    assert proc.returncode == 2 and "20 hex digits" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_paper_profile_records_conet_pairing():
    """The paper profile runs CONet's pairing and says so in the record's options; absent (smoke, mini), no key."""
    from poolnas import settings
    from poolnas.search import methods

    def options(profile):
        prof = settings.resolve(profile)
        hp = methods.extension_settings(prof.extensions(), "conet", prof.search("resnet20", "cifar10"),
                                        prof.protocol("resnet20", "cifar10"))
        return methods.extension_options(methods.METHODS["conet"], hp)

    paper = options("paper")
    assert paper["pairing"] == "modes" and "CONet's pairing" in paper["metrics"]
    assert "pairing" not in options("gpu1") and "modes averaged" in options("gpu1")["metrics"]
