"""The baseline searches of Tables 1-2 (paper.md section 5): names, settings, and the loop they share.

`python -m poolnas search --method METHOD --profile mini --dataset twoscale --backbone resnet20 --seed 0 --out R.json`

    method                   network (BN: affine-free, batch statistics, as the mixture's SuperNets)    paths
    darts                    relaxed ResNet20, one block for all 3 levels (fully shared)                 19,683
    darts-not-shared-same    relaxed ResNet20, one copy per level, copies initialised identically        19,683
    darts-not-shared-rnd     relaxed ResNet20, one copy per level, copies initialised independently      19,683
    darts-gaea               as darts, alpha updated by exponentiated gradient (GAEA)                    19,683
    spos-not-shared          relaxed ResNet20, one copy per level; uniform over the 36 configs           36
    spos-not-shared-relaxed  relaxed ResNet20, one copy per level; uniform over the 19,683 paths         19,683
    mcts, mcts-uniform       one shared SuperNet (PoolNet); UCB1 tree over the configs (+ uniform)       36
    sbe, sbe-uniform         one shared SuperNet (PoolNet); Boltzmann sampler over the configs (+ unif.) 36

The method ids are those `tables.ROWS` reserves for the published rows. DARTS: `poolnas.darts`; SPOS not shared,
MCTS and SBE: `poolnas.samplers`; the relaxed network: `poolnas.relaxed`. DARTS and SPOS run on ResNet20 only
(the relaxed space is ResNet20's); MCTS and SBE sample the configs of any backbone's space.

Budget (every method): the mixture's, i.e. `search.py`'s epochs (E, plus the extra epoch when the profile runs
it) of one pass each over the search-train split, one SGD weight step per search-train minibatch, with the
search's SGD settings and per-epoch cosine schedule (T_max = epochs run, floor lr_min). `steps` counts weight
steps; DARTS' architecture steps are counted apart (`budget.arch_steps`). Data, split, validation minibatch stream
and final full search-validation evaluation are search.py's (`search.prepare`).

Randomness: torch.manual_seed(seed) before the network is built (then DARTS' alpha); each epoch's path/config
draws come from a CPU generator seeded by (seed, epoch) (`search.SAMPLER` stream), the validation minibatches from
search.py's validation stream, so a run is deterministic on CPU and a run resumed from its per-epoch checkpoint
(search.py's checkpoint path and run key) writes the record an uninterrupted run writes.

Settings: the profile's `search.<backbone>` section (budget, SGD, and for SBE the mixture's EMA factor and linear
temperature schedule t0 -> tmax) plus the optional top-level `baselines` section (schema.yaml; defaults below),
recorded under `hparams.baseline` (only the keys the method uses).

Record: search.py's shape (kind "search", method, models null, candidates null, dataset, backbone, seed, profile,
selected, alternatives, configs, accuracy, epochs, budget, steps, train_seconds, eval_seconds, wall_seconds,
images_per_s, search_train, search_val, hparams, options, run_key, provenance); method-specific fields are listed
in `poolnas.darts` and `poolnas.samplers`. Every epoch entry has epoch, lr, P, counts (a matrix whose rows are
distributions over the columns: see each method), train_loss, train_acc, val_acc (pooled over the epoch's
validation minibatches; null when the method uses none), steps, images, seconds.
"""

from __future__ import annotations

import math
import time

import torch

from poolnas.errors import UsageError

# method -> what it is: family (module) and its structural settings.
METHODS_SPEC = {
    "darts": {"family": "darts", "sharing": "shared", "init": "same", "arch": "adam"},
    "darts-not-shared-same": {"family": "darts", "sharing": "not-shared", "init": "same", "arch": "adam"},
    "darts-not-shared-rnd": {"family": "darts", "sharing": "not-shared", "init": "random", "arch": "adam"},
    "darts-gaea": {"family": "darts", "sharing": "shared", "init": "same", "arch": "gaea"},
    "spos-not-shared": {"family": "spos", "paths": "configs"},
    "spos-not-shared-relaxed": {"family": "spos", "paths": "relaxed"},
    "mcts": {"family": "mcts", "uniform": False},
    "mcts-uniform": {"family": "mcts", "uniform": True},
    "sbe": {"family": "sbe", "uniform": False},
    "sbe-uniform": {"family": "sbe", "uniform": True},
}
METHODS = tuple(METHODS_SPEC)
RELAXED_ONLY = ("darts", "spos")

# Defaults of the profile's optional `baselines` section (schema.yaml holds the same values).
DEFAULTS = {
    "arch_lr": 0.01,             # DARTS: Adam on the alpha logits (paper: lr 0.01)
    "arch_betas": [0.5, 0.999],  # DARTS' published Adam betas for alpha
    "arch_weight_decay": 1e-3,   # DARTS' published alpha weight decay
    "arch_init_std": 1e-3,       # DARTS: alpha ~ N(0, std^2) per entry
    "gaea_lr": 0.1,              # GAEA: exponentiated-gradient step size on the simplex
    "spos_init": "random",       # SPOS not shared: per-level copies initialised independently (or "same")
    "relaxed_eval_paths": 32,    # SPOS over 19,683 paths: extra non-config paths evaluated after the search
    "ucb_c": math.sqrt(2.0),     # MCTS: UCB1 exploration constant (rewards in [0, 1])
    "uniform_mix": 0.5,          # "+ Unif. Smp.": probability that a step's config is drawn uniformly instead
}
USES = {
    "darts": ("arch_lr", "arch_betas", "arch_weight_decay", "arch_init_std"),
    "darts-gaea": ("gaea_lr",),
    "spos": ("spos_init",),
    "spos-relaxed": ("spos_init", "relaxed_eval_paths"),
    "mcts": ("ucb_c",),
    "sbe": (),
}


def check(method: str, backbone: str) -> None:
    spec = METHODS_SPEC[method]
    if spec["family"] in RELAXED_ONLY and backbone != "resnet20":
        raise UsageError(f"--method {method} searches the relaxed ResNet20 space; use --backbone resnet20")


def settings(profile: dict, method: str, hp: dict) -> dict:
    """The search settings plus `baseline`: the method's structure and the baseline settings it uses."""
    spec, given = METHODS_SPEC[method], dict(DEFAULTS, **(profile.get("baselines") or {}))
    family = spec["family"]
    key = method if method == "darts-gaea" else "spos-relaxed" if spec.get("paths") == "relaxed" else family
    chosen = {k: given[k] for k in USES[key]}
    if spec.get("uniform"):
        chosen["uniform_mix"] = given["uniform_mix"]
    structure = {k: v for k, v in spec.items() if k != "family"}
    return {**hp, "baseline": {"family": family, **structure, **chosen}}


def options(method: str, hp: dict) -> dict:
    """What is in force for a baseline (merged into the record's `options`)."""
    spec, bl = METHODS_SPEC[method], hp["baseline"]
    out = {"bn": "supernet", "budget": "the mixture's epochs x search-train minibatches; one SGD weight step each",
           "schedule": "cosine per epoch (T_max = epochs run)"}
    if spec["family"] == "darts":
        out |= {"selection": "argmax_alpha", "weight_sharing": spec["sharing"], "copies_init": spec["init"],
                "arch_update": "Adam on logits, weights = softmax(alpha)" if spec["arch"] == "adam"
                else "exponentiated gradient on the simplex, weights = alpha",
                "order": "first order; per minibatch a weight step (search-train), then an alpha step "
                         "(search-validation minibatch)",
                "val_minibatch": "search batch size, shuffled, no augmentation, train mode (BN batch statistics)",
                "final_eval": "the argmax path alone, full search-validation split"}
    elif spec["family"] == "spos":
        out |= {"selection": "best_val over the 36 configs", "weight_sharing": "not-shared",
                "copies_init": bl["spos_init"],
                "sampler": "uniform over the 36 configs" if spec["paths"] == "configs"
                else "uniform over the 19,683 relaxed paths (each block's level uniform, independent)",
                "final_eval": "every config as a path (relaxed: and relaxed_eval_paths seeded non-config paths), "
                              "full search-validation split, prefix-shared tree"}
    else:
        out |= {"selection": "best_val over the configs", "weight_sharing": "shared",
                "sampler": ("UCB1 tree: first downsampling position, then the next" if spec["family"] == "mcts"
                            else "Boltzmann: softmax(T_e * EMA of validation accuracy), T_e linear t0 -> tmax"),
                "uniform_mix": bl.get("uniform_mix", 0.0),
                "reward": "top-1 accuracy in [0, 1] of one search-validation minibatch after the step (eval mode)",
                "val_minibatch": "search batch size, shuffled, no augmentation, eval mode",
                "final_eval": "every config, full search-validation split, prefix-shared tree"}
    return out


def run(ctx: dict) -> dict:
    """The record body of one baseline search (`ctx` from `search.prepare`)."""
    family = METHODS_SPEC[ctx["method"]]["family"]
    if family == "darts":
        from poolnas.darts import DartsRun as Run
    elif family == "spos":
        from poolnas.samplers import SposRun as Run
    elif family == "mcts":
        from poolnas.samplers import MctsRun as Run
    else:
        from poolnas.samplers import SbeRun as Run
    return Run(ctx).run()


def first_max(values) -> int:
    """Index of the first maximum (ties go to the lowest index)."""
    values = list(values)
    return values.index(max(values))


class BaselineRun:
    """One network trained by SGD on search-train, epoch by epoch, checkpointed after each epoch.

    Subclasses define `build` (the network), `setup` (their extra state, after the network), `step` (one weight
    step; returns summable statistics: device tensors `loss` (sum over the batch), `hits`, and optionally
    `val_hits`, `val_loss` with host numbers `val_n`), `epoch_state` (the method's part of the epoch entry),
    `extra_state`/`load_extra` (their state in the checkpoint) and `conclude` (evaluation and selection).
    """

    def __init__(self, ctx: dict):
        self.ctx, self.hp, self.space = ctx, ctx["hp"], ctx["space"]
        self.spec, self.bl = METHODS_SPEC[ctx["method"]], ctx["hp"]["baseline"]
        self.dev, self.prec = ctx["dev"], ctx["prof"]["precision"]
        self.num_classes = ctx["data"].num_classes
        from poolnas.train import make_optimizer, make_scheduler

        torch.manual_seed(ctx["seed"])
        net = self.build().to(self.dev)
        self.net = net.to(memory_format=torch.channels_last) if ctx["prof"]["channels_last"] else net
        self.opt = make_optimizer(self.net.parameters(), self.hp)
        self.sched = make_scheduler(self.opt, self.hp, ctx["epochs_run"])
        self.setup()
        self.history: list[dict] = []
        if ctx["state"]:
            self.net.load_state_dict(ctx["state"]["net"])
            self.opt.load_state_dict(ctx["state"]["opt"])
            self.sched.load_state_dict(ctx["state"]["sched"])
            self.load_extra(ctx["state"]["extra"])
            self.history = ctx["state"]["history"]

    # --- to override ---
    def build(self) -> torch.nn.Module:
        raise NotImplementedError

    def setup(self) -> None:
        pass

    def start_epoch(self, e: int) -> None:
        pass

    def step(self, x, y, val_iter, gen) -> dict:
        raise NotImplementedError

    def epoch_state(self, e: int) -> dict:
        return {}

    def extra_state(self) -> dict:
        return {}

    def load_extra(self, state: dict) -> None:
        pass

    def conclude(self) -> dict:
        raise NotImplementedError

    # --- the loop ---
    def run(self) -> dict:
        from poolnas.records import atomic_torch_save
        from poolnas.search import _timing

        ctx = self.ctx
        for e in range(len(self.history), ctx["epochs_run"]):
            self.epoch(e)
            atomic_torch_save({"key": ctx["key"], "net": self.net.state_dict(), "opt": self.opt.state_dict(),
                               "sched": self.sched.state_dict(), "extra": self.extra_state(),
                               "history": self.history}, ctx["ckpt"])
            if ctx["after_epoch"]:
                ctx["after_epoch"](e)
        start = time.perf_counter()
        body = self.conclude()
        eval_seconds = time.perf_counter() - start
        history = self.history
        steps = sum(h["steps"] for h in history)
        body |= {"epochs": history,
                 "budget": {"total_steps": steps, "steps_per_epoch": len(ctx["train_loader"]),
                            "epochs_run": ctx["epochs_run"], **self.extra_budget()},
                 "steps": steps, "train_seconds": sum(h["seconds"] for h in history), "eval_seconds": eval_seconds}
        return _timing(body, sum(h["images"] for h in history))

    def extra_budget(self) -> dict:
        return {}

    def epoch(self, e: int) -> dict:
        from poolnas.loader import epoch_generator
        from poolnas.search import SAMPLER, derive_seed
        from poolnas.train import TrainingDiverged, log

        ctx = self.ctx
        lr = self.opt.param_groups[0]["lr"]
        gen = epoch_generator(derive_seed(ctx["seed"], SAMPLER), e)
        val_iter = ctx["val_stream"].stream(e)
        self.start_epoch(e)
        dev_sums: dict[str, torch.Tensor] = {}
        host_sums: dict[str, float] = {}
        steps, images, start = 0, 0, time.perf_counter()
        for x, y in ctx["train_loader"].epoch(e):
            for k, v in self.step(x, y, val_iter, gen).items():
                target = dev_sums if isinstance(v, torch.Tensor) else host_sums
                target[k] = target[k] + v if k in target else v
            steps, images = steps + 1, images + len(y)
        sums = dict(zip(dev_sums, torch.stack([v.double() for v in dev_sums.values()]).tolist())) | host_sums
        if not math.isfinite(sums["loss"]):
            raise TrainingDiverged(f"{ctx['name']}: the training loss became {sums['loss']} in epoch {e}; no record "
                                   "written (lower the learning rate or check the data)")
        self.sched.step()
        seconds = time.perf_counter() - start
        val_n = sums.get("val_n", 0)
        h = {"epoch": e, "lr": lr, **self.epoch_state(e), "train_loss": sums["loss"] / images,
             "train_acc": 100.0 * sums["hits"] / images,
             **({"val_loss": sums["val_loss"] / val_n} if "val_loss" in sums and val_n else {}),
             "val_acc": 100.0 * sums["val_hits"] / val_n if val_n else None,
             "steps": steps, "images": images, "seconds": seconds}
        self.history.append(h)
        log(f"{ctx['name']} epoch {e}/{ctx['epochs_run'] - 1} loss {h['train_loss']:.4f} train "
            f"{h['train_acc']:.2f}%" + (f" val {h['val_acc']:.2f}%" if val_n else "")
            + f" lr {lr:.4g} {images / seconds:.0f} img/s")
        return h
