"""SuperNet search by a balanced mixture of M SuperNets (paper.md section 3), and random search at equal cost.

`python -m poolnas search --method mixture --models 4 --profile mini --dataset twoscale --backbone resnet20
 --seed 0 --out R.json`  (or `--method random --configs K`)

Data: the training set split by `datasets.search_split(labels, seed)` (class-stratified 50/50, seeded by the run
seed) into search-train (augmented, shuffled per epoch) and search-validation (never augmented).

Mixture: M SuperNets (BN without affine or running statistics), independent inits (torch.manual_seed(seed), then
built one after the other), each with its own SGD and cosine schedule (T_max = epochs run, to lr_min, stepped
per epoch). Epochs e = 0..E-1, plus e = E with `extra_epoch` (the release). Per epoch: temperature, balancing
(`poolnas.search.balancing`), then per search-train minibatch: c ~ uniform, m ~ P'[c], one SGD step of SuperNet m on
config c, one search-validation minibatch (same batch size, shuffled stream, eval mode) through (c, m), EMA of
its accuracy into W[c, m], count. The step's one host sync reads the loss, the train hits and the validation
hits together (the algorithm needs the validation accuracy before the next sample). At the end every
(config, model) pair is evaluated on the whole search-validation split (`eval_batch_size` batches; batch
statistics, so the batch size and the batches' class mix matter: `eval_order` shuffled, the default, reads the
split in one fixed random order seeded by the run seed (stream `engine.runtime.EVAL_ORDER`), `index` in storage
order, which is class-sorted on Food101; `eval_drop_last` drops the last partial batch, as the release did).
The final P is the last epoch's balancing re-applied to the final W. c and m come from a CPU generator seeded by (seed, epoch), so a resumed run draws what an uninterrupted one does.

Random search (`--method random --configs K`): K configs drawn uniformly without replacement (numpy, seeded by
the run seed); each is trained standalone (the protocol's BN mode, torch.manual_seed(seed) init, the search's
SGD hyperparameters and batch size, cosine annealing to lr_min stepped per SGD step) on search-train, then
evaluated on the whole search-validation split; the best is picked (the first drawn on ties). Budget: the
mixture's total number of SGD steps, S = epochs_run x steps_per_epoch (steps_per_epoch = search-train batches
per epoch), which does not depend on M (every mixture step trains one SuperNet). Candidate k gets
S // K steps, plus one for the first S % K candidates, so the K candidates take exactly S steps together. The
mixture's extra cost (one validation forward per step, the configs x M final evaluation) is not in S; both
records carry their wall seconds.

The loop: `engine.loop.fit` drives the method's hooks (`search.base`); the method is named by its row of
`search.methods.METHODS`. This module resolves everything a search needs (`prepare`), runs it and writes the record.

Record (JSON; floats rounded to 6 significant digits; accuracies in percent unless said otherwise):
  kind "search"; method "mixture" | "random"; models M (null for random); candidates K (null for mixture);
  dataset, backbone, seed, profile;
  selected {config (name), index (1-based space index), rule};
  alternatives (mixture) {rule: {config, index, score}} for assigned, best_model (score: percent) and ema
      (score: W entry, accuracy in [0, 1]);
  configs: the names of the configs searched (mixture: the whole space; random: the K drawn, in draw order);
  accuracy: mixture: configs x M matrix, every pair on the full search-validation split; random: one per
      candidate;
  assignment (mixture): argmax_m P_final[c, m] per config; P_final: the final P (configs x M); W: the final W;
      counts: total (c, m) counts;
  epochs (mixture): per epoch {epoch (0-based e of T_e), temperature, lr, W (at the epoch's end), counts (this
      epoch's), P (the balanced P(m|c) at the epoch's start), marginals (the sequence divided by, K x M),
      train_loss, train_acc, val_acc (mean of the per-step validation minibatches), steps, images, seconds};
  candidate_runs (random): per candidate {config, index, val_acc, steps, images, train_loss (mean over its last
      pass), seconds (training), eval_seconds};
  budget {total_steps, steps_per_epoch, epochs_run, per_candidate (random)};
  steps (SGD steps run), train_seconds, eval_seconds, wall_seconds (train + eval, summed over resumed
  sessions), images_per_s (search-train images per training second); search_train, search_val (split sizes);
  hparams (the resolved search settings); options (decisions.md choices in force); run_key; provenance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from poolnas import settings
from poolnas.arch.models import width_option
from poolnas.arch.spaces import Space, get_space
from poolnas.data import datasets
from poolnas.data.loader import Loader
from poolnas.engine.checkpoint import Checkpoint, default_path
from poolnas.engine.loop import fit
from poolnas.engine.optim import warmup_options
from poolnas.engine.runtime import EVAL_ORDER, derive_seed, log, resolve_device, runtime_options, setup_runtime
from poolnas.errors import UsageError
from poolnas.records import provenance, remove_stale_temporaries, search_key, sig
from poolnas.schemas import write_record
from poolnas.search import balancing, methods
from poolnas.search.base import VAL_STREAM
from poolnas.standalone import cifar_recipe, crop_option, set_only, stem_for, storage_option


@dataclass(frozen=True)
class SearchContext:
    """Everything a search method reads: resolved once by `prepare`."""

    method: str
    spec: methods.Method
    models: int | None  # M (mixture)
    configs: int | None  # K (random)
    budget_models: int | None  # the mixture-budget control: runs at the budget of this many SuperNets
    settings: settings.Settings
    hp: dict
    space: Space
    data: datasets.Prepared
    dev: torch.device
    stem: str
    seed: int
    epochs_run: int
    train_loader: Loader
    eval_loader: Loader  # the whole search-validation split, for the final evaluation
    val_stream: Loader | None  # search-validation minibatches during the search
    search_train: int
    search_val: int
    options: dict
    key: str
    checkpoint: Checkpoint
    out: Path
    after_epoch: Callable[[int], None] | None
    name: str
    pooling: dict | None = None  # dgconv, conet: the pooling config searched ({requested, config, index, rule})
    rho: int | None = None  # dgconv: the budget, percent of the dense connections

    @property
    def precision(self) -> str:
        return self.settings.precision

    @property
    def channels_last(self) -> bool:
        return self.settings.channels_last


def search_run(**kwargs) -> dict:
    """Run one search (arguments as `prepare`) and write its record to `out`; resume from a matching checkpoint."""
    ctx = prepare(**kwargs)

    def build():
        torch.manual_seed(ctx.seed)  # before the method builds its networks: their init is part of the run
        return ctx.spec.hooks()(ctx)

    run, resumed = ctx.checkpoint.resume(build)
    if resumed:
        log(f"search {ctx.method} seed {ctx.seed}: resuming from {ctx.checkpoint.path}")
    fit(run, run.remaining_epochs(), ctx.checkpoint, name=ctx.name, after_epoch=ctx.after_epoch)
    start = time.perf_counter()
    found = run.conclude()
    body = run.summary(found, time.perf_counter() - start)
    body["wall_seconds"] = body["train_seconds"] + body["eval_seconds"]
    body["images_per_s"] = images_seen(body) / max(body["train_seconds"], 1e-9)
    record = {"kind": "search", "method": ctx.method, "models": ctx.models, "candidates": ctx.configs,
              **({"budget_models": ctx.budget_models} if ctx.spec.takes_budget else {}),
              "dataset": ctx.data.name, "backbone": ctx.space.name, "seed": ctx.seed,
              "profile": ctx.settings.name, **body, "search_train": ctx.search_train,
              "search_val": ctx.search_val, "data_params": ctx.data.meta["params"], "hparams": ctx.hp,
              "options": ctx.options, "run_key": ctx.key, "provenance": provenance(ctx.dev)}
    record = sig(record)
    write_record(ctx.out, record)  # checked against schemas/search.json first
    ctx.checkpoint.remove()
    return record


def images_seen(body: dict) -> int:
    runs = body.get("candidate_runs") or body.get("epochs") or []
    return sum(r["images"] for r in runs)


def prepare(*, method: str, profile: str | dict | settings.Settings, dataset: str, backbone: str, seed: int, out: str | Path,
            models: int | None = None, configs: int | None = None, budget_models: int | None = None,
            pooling: str | None = None, rho: int | None = None, groundtruth: list | None = None,
            data_dir: str | Path = "data",
            checkpoint: str | Path | None = None, device: str | None = None, threads: int | None = None,
            after_epoch: Callable[[int], None] | None = None) -> SearchContext:
    """Check the arguments (UsageError before any data is touched), then resolve everything a search needs.

    `after_epoch(i)` is called after each checkpoint (mixture and baselines: epoch i; random: the i-th pass over
    the data). dgconv and conet search one pooling config (`pooling`: any config form, `default`, or `best`, the
    best mean test accuracy of the standalone records `groundtruth`); dgconv at budget `rho` (percent).
    """
    spec = methods.get_method(method)
    methods.check(method, backbone)
    if seed < 0:
        raise UsageError(f"--seed must be >= 0, got {seed}")
    prof = settings.resolve(profile)
    space = get_space(backbone)
    study = prof.study(dataset, backbone) or {"search": {}}
    n = len(spec.only or space)
    if spec.size == "models":
        if models is None:
            raise UsageError(f"--models is required for --method {method}")
        if not 1 <= models <= n:
            raise UsageError(f"--models must be 1..{n} (the configs of {backbone}), got {models}")
        configs = None
    elif spec.size == "configs":
        models = None
        configs = configs if configs is not None else study["search"].get(method)
        if configs is None:
            raise UsageError(f"--configs is required for --method {method} (profile {prof.name} sets none)")
        if not 1 <= configs <= n:
            raise UsageError(f"--configs must be 1..{n} (the configs of {backbone}), got {configs}")
    else:
        models = configs = None
    if spec.is_extension:
        if (rho is None) != (spec.family != "dgconv") or (rho is not None and not 1 <= rho <= 100):
            raise UsageError(f"--rho PERCENT (1..100) is required for --method dgconv and taken by no other method; "
                             f"got {rho} for {method}")
        found = resolve_pooling(space, pooling or "default", groundtruth)
    elif pooling is not None or rho is not None:
        raise UsageError(f"--pooling and --rho apply to --method dgconv and conet only, not {method}")
    if spec.takes_budget:
        if budget_models is None or budget_models < 1:
            raise UsageError(f"--budget-models (>= 1) is required for --method {method}, got {budget_models}")
    elif budget_models is not None:
        raise UsageError(f"--budget-models applies to --method mixture-budget only, not {method}")
    hp, budget_note = methods.search_hparams(prof, method, backbone, dataset, models, configs, budget_models)
    params = prof.dataset_params(dataset)
    dev = resolve_device(device or prof.device, prof.gpu_slots)
    setup_runtime(dev, threads or prof.threads)

    data = datasets.open_dataset(dataset, Path(data_dir) / "cache", Path(data_dir) / "raw", **params)
    train_idx, val_idx = datasets.search_split(data.train.labels, seed)
    stem, crop = stem_for(data), crop_option(prof, dataset, data)
    epochs_run = hp["epochs"] + (1 if hp["extra_epoch"] else 0)
    shortlist = balancing.shortlist_size(hp)  # recorded only where the rule is in force
    options = {"selection": hp["selection"], **({"shortlist_size": shortlist} if shortlist else {}),
               "extra_epoch": hp["extra_epoch"], "augment": hp["augment"],
               "split": "class-stratified 50/50 of the training set, seeded by the run seed", "split_seed": seed,
               "precision": prof.precision, "channels_last": prof.channels_last, "stem": stem,
               "resnet50_d1_bug": hp["resnet50_d1_bug"], "drop_last": hp.get("drop_last", False), "eval_order": hp["eval_order"],
               "eval_batch_size": hp["eval_batch_size"], "eval_drop_last": hp["eval_drop_last"], "conv_init": hp["conv_init"],
               **warmup_options(hp), **crop, **width_option(hp),
               "search_budget": budget_note, **set_only(hp, "cifar_recipe"), **storage_option(data),
               **runtime_options(dev)}
    recipe = cifar_recipe(hp, data)
    standalone_bn = prof.protocol(backbone, dataset)["bn"] if spec.family == "random" else None
    options.update(methods.options(method, hp, standalone_bn))
    key = search_key(data.meta["files"], method, models, configs, budget_models, backbone, seed, hp, options,
                     {"pooling": found["config"], "rho": rho} if spec.is_extension else None)
    train_loader = Loader.from_prepared(data, "train", hp["batch_size"], augment=hp["augment"], shuffle=True,
                                        drop_last=hp.get("drop_last", False), indices=train_idx, seed=seed, device=dev,
                                        **crop, **recipe)
    # Batch-statistics BN (SuperNets, relaxed nets, 'released' mode's first BN): the batches' class mix changes the
    # numbers, so the final evaluation sees one fixed random order of the split (eval_order: shuffled), never the
    # storage order, which is class-sorted for some datasets (Food101).
    eval_loader = Loader.from_prepared(data, "train", hp["eval_batch_size"], augment=False,
                                       shuffle=hp["eval_order"] == "shuffled", drop_last=hp["eval_drop_last"],
                                       indices=val_idx, seed=derive_seed(seed, EVAL_ORDER), device=dev, **crop,
                                       **recipe)
    val_stream = None if spec.family == "random" or spec.is_extension else Loader.from_prepared(
        data, "train", hp["batch_size"], augment=False, shuffle=True, indices=val_idx,
        seed=derive_seed(seed, VAL_STREAM), device=dev, **crop, **recipe)
    remove_stale_temporaries(out)
    return SearchContext(
        method=method, spec=spec, models=models, configs=configs, budget_models=budget_models, settings=prof, hp=hp, space=space, data=data, dev=dev,
        stem=stem, seed=seed, epochs_run=epochs_run, train_loader=train_loader, eval_loader=eval_loader,
        val_stream=val_stream, search_train=len(train_idx), search_val=len(val_idx), options=options, key=key,
        checkpoint=Checkpoint(checkpoint or default_path(out), key, prof.as_dict()), out=Path(out),
        after_epoch=after_epoch,
        name=f"{dataset}/{backbone} {method} seed {seed}", pooling=found if spec.is_extension else None, rho=rho)


def resolve_pooling(space: Space, requested: str, groundtruth) -> dict:
    """The pooling config a dgconv or conet search runs on: a config, `default`, or `best`: the highest mean test
    accuracy over the standalone records `groundtruth` (the study's ground truth, as the workflow lists it; the
    lowest index on ties)."""
    if requested == "default":
        return {"requested": "default", "config": space.default.name, "index": space.default.index,
                "rule": "the space's default"}
    if requested != "best":
        config = space.parse(requested)
        return {"requested": config.name, "config": config.name, "index": config.index, "rule": "given"}
    from poolnas.schemas import read_record

    if not groundtruth:
        raise UsageError(f"--pooling best needs --groundtruth RECORD..., the {space.name} ground-truth records to "
                         "pick the best config from")
    accs: dict = {}
    for path in groundtruth:
        record = read_record(path, "train")
        if record["backbone"] != space.name or record.get("variant"):
            raise UsageError(f"--groundtruth {path} is no plain {space.name} standalone record")
        accs.setdefault(space.parse(record["config"]), []).append(record["test_acc"])
    best = max(accs, key=lambda c: (sum(accs[c]) / len(accs[c]), -c.index))
    return {"requested": "best", "config": best.name, "index": best.index,
            "rule": f"best mean test accuracy of the {len(accs)} configs with ground truth "
                    f"({sum(map(len, accs.values()))} runs)"}
