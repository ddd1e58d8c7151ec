"""Every search method in one table: its name, what it is, its hooks class, its settings and its options.

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

    mixture                  M SuperNets (PoolNet, --models M), balanced assignment (`search.mixture`)      36
    mixture-budget           the same, at the budget of a mixture of --budget-models B SuperNets (control) 36
    mixture-pair             one SuperNet (--models 1) over Figure 1's two configs only, [1,1,8] and [6,2,2] 2
    random                   K configs trained standalone at the mixture's budget (`search.random`)         36

Beyond the pooling (issue 17), on one pooling config (`--pooling`: a config, `default`, or `best` ground truth):
    dgconv                   the groups of every square 3x3 conv, by gradient under a budget (--rho PERCENT)
    conet                    the width of every stage and block, by short trials and EVBMF statistics
Their settings: the profile's `extensions` section, their own epochs (not the mixture's budget), the search's SGD,
batch and evaluation settings, and the standalone protocol's network (`extension_settings`).

The baseline ids are those `analysis.tables.ROWS` reserves for the published rows. DARTS: `search.darts`; SPOS not
shared, MCTS and SBE: `search.samplers`; the relaxed network: `arch.relaxed`. A new method: write a class with the
hooks of `search.base.SearchMethod` and add one row to METHODS. DARTS and SPOS run on ResNet20 only
(the relaxed space is ResNet20's); MCTS and SBE sample the configs of any backbone's space.

Budget (every method): the mixture's, i.e. the search's epochs (E, plus the extra epoch when the profile runs
it) of one pass each over the search-train split, one SGD weight step per search-train minibatch, with the
search's SGD settings and per-epoch cosine schedule (T_max = epochs run, floor lr_min). `steps` counts weight
steps; DARTS' architecture steps are counted apart (`budget.arch_steps`). Data, split, validation minibatch stream
and final full search-validation evaluation are those of `search.run.prepare`.

Randomness: torch.manual_seed(seed) before the network is built (then DARTS' alpha); each epoch's path/config
draws come from a CPU generator seeded by (seed, epoch) (`search.run.SAMPLER` stream), the validation minibatches from
the search's validation stream, so a run is deterministic on CPU and a run resumed from its per-epoch checkpoint
(the search's checkpoint path and run key) writes the record an uninterrupted run writes.

Settings: the profile's `search.<backbone>` section (budget, SGD, and for SBE the mixture's EMA factor and linear
temperature schedule t0 -> tmax) plus the optional top-level `baselines` section (schema.yaml; defaults below),
recorded under `hparams.baseline` (only the keys the method uses).

Record: `search.run`'s shape (kind "search", method, models null, candidates null, dataset, backbone, seed, profile,
selected, alternatives, configs, accuracy, epochs, budget, steps, train_seconds, eval_seconds, wall_seconds,
images_per_s, search_train, search_val, hparams, options, run_key, provenance); method-specific fields are listed
in `search.darts` and `search.samplers`. Every epoch entry has epoch, lr, P, counts (a matrix whose rows are
distributions over the columns: see each method), train_loss, train_acc, val_acc (pooled over the epoch's
validation minibatches; null when the method uses none), steps, images, seconds.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field

from poolnas.errors import UsageError


@dataclass(frozen=True)
class Method:
    """One search method: its family (which hooks class runs it) and its structural settings."""

    name: str
    family: str
    structure: dict = field(default_factory=dict)
    size: str | None = None  # the command-line size it takes: "models" (M) or "configs" (K)

    @property
    def relaxed_only(self) -> bool:
        return self.family in ("darts", "spos")

    @property
    def is_baseline(self) -> bool:
        return self.family not in ("mixture", "random") and not self.is_extension

    @property
    def is_extension(self) -> bool:
        """Searches beyond the pooling (issue 17): they search one pooling config's groups or widths."""
        return self.family in EXTENSIONS

    @property
    def only(self) -> tuple[str, ...] | None:
        """The configs the method searches when not its whole space (mixture-pair: Figure 1's two, ResNet20's)."""
        return self.structure.get("configs")

    @property
    def takes_budget(self) -> bool:
        """Runs at the budget of a mixture of `--budget-models` SuperNets (the equal-budget control)."""
        return self.name == "mixture-budget"

    def hooks(self) -> type:
        """The class implementing the method's hooks (imported on demand: this table must not import torch)."""
        module, cls = HOOKS[self.family].split(":")
        return getattr(importlib.import_module(module), cls)


HOOKS = {
    "mixture": "poolnas.search.mixture:MixtureSearch",
    "random": "poolnas.search.random:RandomSearch",
    "darts": "poolnas.search.darts:DartsSearch",
    "spos": "poolnas.search.samplers:SposSearch",
    "mcts": "poolnas.search.samplers:MctsSearch",
    "sbe": "poolnas.search.samplers:SbeSearch",
    "dgconv": "poolnas.search.dgconv:DGConvSearch",
    "conet": "poolnas.search.conet:CONetSearch",
}
EXTENSIONS = ("dgconv", "conet")
METHODS = {m.name: m for m in [
    Method("mixture", "mixture", size="models"),
    Method("mixture-budget", "mixture", size="models"),  # M SuperNets at the budget of another M (--budget-models)
    # Figure 1's protocol: the early- and late-pooling configs trained together in one SuperNet and nothing else,
    # so "sharing hurts late pooling more" is tested as the paper tested it, not inside a 36-config SuperNet
    Method("mixture-pair", "mixture", {"configs": ("[1,1,8]", "[6,2,2]")}, size="models"),
    Method("random", "random", size="configs"),
    Method("darts", "darts", {"sharing": "shared", "init": "same", "arch": "adam"}),
    Method("darts-not-shared-same", "darts", {"sharing": "not-shared", "init": "same", "arch": "adam"}),
    Method("darts-not-shared-rnd", "darts", {"sharing": "not-shared", "init": "random", "arch": "adam"}),
    Method("darts-gaea", "darts", {"sharing": "shared", "init": "same", "arch": "gaea"}),
    Method("spos-not-shared", "spos", {"paths": "configs"}),
    Method("spos-not-shared-relaxed", "spos", {"paths": "relaxed"}),
    Method("mcts", "mcts", {"uniform": False}),
    Method("mcts-uniform", "mcts", {"uniform": True}),
    Method("sbe", "sbe", {"uniform": False}),
    Method("sbe-uniform", "sbe", {"uniform": True}),
    Method("dgconv", "dgconv"),
    Method("conet", "conet"),
]}
BASELINES = tuple(name for name, m in METHODS.items() if m.is_baseline)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise UsageError(f"unknown search method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def check(method: str, backbone: str) -> None:
    if METHODS[method].relaxed_only and backbone != "resnet20":
        raise UsageError(f"--method {method} searches the relaxed ResNet20 space; use --backbone resnet20")
    if METHODS[method].only and backbone != "resnet20":
        raise UsageError(f"--method {method} searches ResNet20's configs {', '.join(METHODS[method].only)}; "
                         "use --backbone resnet20")


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


def settings(baselines: dict, method: str, hp: dict) -> dict:
    """The search settings; a baseline's also get `baseline`: the method's structure and the baseline settings it uses."""
    spec, given = METHODS[method], dict(DEFAULTS, **baselines)
    if not spec.is_baseline:
        return hp
    family = spec.family
    key = method if method == "darts-gaea" else "spos-relaxed" if spec.structure.get("paths") == "relaxed" else family
    chosen = {k: given[k] for k in USES[key]}
    if spec.structure.get("uniform"):
        chosen["uniform_mix"] = given["uniform_mix"]
    return {**hp, "baseline": {"family": family, **spec.structure, **chosen}}


NETWORK_KEYS = ("bn", "conv_init", "zero_init_residual", "stem_bn_affine")


def extension_settings(extensions: dict, method: str, hp: dict, protocol: dict) -> dict:
    """The settings of dgconv and conet: the search's SGD, batch and evaluation settings; `extension`, the method's
    section of the profile's `extensions` (schema defaults filled); `network`, the standalone protocol's BN mode and
    initialisation (the searched network is the one retraining trains); `epochs`, what the method runs: dgconv its
    `epochs` (null: the protocol's), conet trials x trial_epochs; no extra epoch."""
    family = METHODS[method].family
    ext = dict(extensions[family])
    if family == "dgconv":
        ext["epochs"] = ext["epochs"] or protocol["epochs"]
        epochs = ext["epochs"]
    else:
        epochs = ext["trials"] * ext["trial_epochs"]
    return {**hp, "epochs": epochs, "extra_epoch": False, "extension": {"family": family, **ext},
            "network": {k: protocol[k] for k in NETWORK_KEYS}}


def extension_options(spec: Method, hp: dict) -> dict:
    ext, net = hp["extension"], hp["network"]
    out = {"bn": net["bn"], "network": "the standalone protocol's: " + ", ".join(f"{k} {net[k]}" for k in NETWORK_KEYS),
           "schedule": "cosine per epoch"}
    if spec.family == "dgconv":
        return out | {"objective": "L * (o / zeta)^a when zeta > o, else L; zeta = sum_l C_l prod_k (1 + g_k) over the "
                                   "square 3x3 convs, o = rho x the dense count (extensions.md)",
                      "gates": "straight-through step at 0, in their own SGD group without weight decay",
                      "gate_init": ext["gate_init"], "gate_lr": ext["gate_lr"] if ext["gate_lr"] else "the weights' lr",
                      "exponent": ext["exponent"], "levels": "single level: weights and gates on search-train",
                      "dense_convs": "the stem, the width-changing convs, projections and the head",
                      "final_eval": "the gated network, full search-validation split",
                      "fixed_groups": "one G in every square conv, MACs nearest the found network's"}
    modes = "its input mode to the width it reads, its output mode to the one it writes (CONet's pairing)" \
        if ext.get("pairing") == "modes" else "input and output modes averaged"
    return out | {"schedule": "cosine per epoch within each trial (restarted per trial)",
                  "transfer": ext["transfer"], "init_width": ext["init_width"],
                  **({"pairing": ext["pairing"]} if "pairing" in ext else {}),
                  "metrics": f"EVBMF rank and MC of every conv each epoch ({modes}), averaged "
                             "over the convs of a width variable; RAS over the trial, R(0) at its start; MC of its "
                             "last epoch",
                  "selected": "the widths after the last trial's update",
                  "uniform_widths": "every default width x s (nearest even), parameters nearest the found widths'",
                  "final_eval": "each trial's network, full search-validation split"}


def options(method: str, hp: dict, standalone_bn: str) -> dict:
    """What is in force for a method beyond the common search options (merged into the record's `options`)."""
    spec = METHODS[method]
    if spec.is_extension:
        return extension_options(spec, hp)
    if spec.family == "mixture":
        only = {"configs": "only " + ", ".join(spec.only)} if spec.only else {}
        return {"bn": "supernet", **only, "final_P": "last epoch's balancing re-applied to the final W",
                "sampler": "P' = softmax(T W + b), b = -sum log(marginals)",
                "val_minibatch": "search batch size, shuffled, no augmentation, eval mode",
                "final_eval": "every (config, model) pair, full search-validation split, prefix-shared tree"}
    if spec.family == "random":
        return {"bn": standalone_bn, "budget": "mixture total SGD steps / K", "schedule": "cosine per SGD step"}
    bl = hp["baseline"]
    out = {"bn": "supernet", "budget": "the mixture's epochs x search-train minibatches; one SGD weight step each",
           "schedule": "cosine per epoch (T_max = epochs run)"}
    if spec.family == "darts":
        out |= {"selection": "argmax_alpha", "weight_sharing": spec.structure["sharing"], "copies_init": spec.structure["init"],
                "arch_update": "Adam on logits, weights = softmax(alpha)" if spec.structure["arch"] == "adam"
                else "exponentiated gradient on the simplex, weights = alpha",
                "order": "first order; per minibatch a weight step (search-train), then an alpha step "
                         "(search-validation minibatch)",
                "val_minibatch": "search batch size, shuffled, no augmentation, train mode (BN batch statistics)",
                "final_eval": "the argmax path alone, full search-validation split"}
    elif spec.family == "spos":
        out |= {"selection": "best_val over the 36 configs", "weight_sharing": "not-shared",
                "copies_init": bl["spos_init"],
                "sampler": "uniform over the 36 configs" if spec.structure["paths"] == "configs"
                else "uniform over the 19,683 relaxed paths (each block's level uniform, independent)",
                "final_eval": "every config as a path (relaxed: and relaxed_eval_paths seeded non-config paths), "
                              "full search-validation split, prefix-shared tree"}
    else:
        out |= {"selection": "best_val over the configs", "weight_sharing": "shared",
                "sampler": ("UCB1 tree: first downsampling position, then the next" if spec.family == "mcts"
                            else "Boltzmann: softmax(T_e * EMA of validation accuracy), T_e linear t0 -> tmax"),
                "uniform_mix": bl.get("uniform_mix", 0.0),
                "reward": "top-1 accuracy in [0, 1] of one search-validation minibatch after the step (eval mode)",
                "val_minibatch": "search batch size, shuffled, no augmentation, eval mode",
                "final_eval": "every config, full search-validation split, prefix-shared tree"}
    return out


def first_max(values) -> int:
    """Index of the first maximum (ties go to the lowest index)."""
    values = list(values)
    return values.index(max(values))


def scaled_budget(hp: dict, spec: Method, models, configs, budget_models) -> tuple[dict, str]:
    """The search settings with `epochs` resolved for the budget option, and the option's text for the record.

    budget `total` (the release) keeps the profile's E epochs for every search. `per_supernet` runs a mixture of M
    for M x E epochs (each SuperNet then gets about E epochs of steps), random search with K candidates K x E (the
    M = K mixture's budget), a baseline `baseline_budget` x E, and the mixture-budget control B x E."""
    if spec.is_extension:
        return hp, f"its own: {hp['epochs']} epochs over search-train"
    budget_of = (budget_models if spec.takes_budget else models if spec.size == "models"
                 else configs if spec.size == "configs" else hp["baseline_budget"])
    scale = budget_of if hp["budget"] == "per_supernet" else 1
    base = hp["epochs"]
    note = (f"{hp['budget']}: {scale} x {base} epochs" + (f" (the budget of {budget_of} SuperNets)"
                                                         if hp["budget"] == "per_supernet" else ""))
    return {**hp, "epochs": base * scale}, note


def search_hparams(prof, method: str, backbone: str, dataset: str, models, configs, budget_models) -> tuple[dict, str]:
    """The settings one search runs with (its record's `hparams`) and the budget's text: the profile's `search`
    entry, a baseline's settings, an extension's, then the budget scaled. One function for the run
    (`search.run.prepare`) and for the check that a record was made under the profile's current settings."""
    spec = METHODS[method]
    hp = settings(prof.baselines(), method, prof.search(backbone, dataset))
    if spec.is_extension:
        hp = extension_settings(prof.extensions(), method, hp, prof.protocol(backbone, dataset))
    return scaled_budget(hp, spec, models, configs, budget_models)
