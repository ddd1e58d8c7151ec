"""Standalone training of one configuration: ground truth and retraining (paper.md section 4).

`python -m poolnas train --profile mini --dataset twoscale --backbone resnet20 --config 4-3-3 --seed 0 --out R.json`

Read top to bottom: resolve the run (profile -> hyperparameters), build data/model/optimizer, resume from the
checkpoint if one matches, train epoch by epoch (`engine.loop.fit` with the hooks of `Standalone`, a checkpoint
after each epoch), evaluate on the whole test set, write one JSON record atomically. Everything random is derived from the seed (model init from torch.manual_seed, batch
order and augmentation from the loader's per-epoch generator), so a run is deterministic on CPU and a resumed
run ends with exactly the record of an uninterrupted one.

Record fields: kind, dataset, backbone, config (name), index, code, variant (only with --variant: slug, kind and
groups per layer or widths, `arch.variants`), seed, profile, test_acc (percent, the
protocol's `report`: final epoch by default), final_test_acc, best_test_acc, history (per epoch: epoch, lr,
train_loss, train_acc, test_acc or null, seconds), epochs, train_seconds, images_per_s, params, macs,
hparams (the resolved protocol), options (decisions.md choices in force), provenance.
"""

from __future__ import annotations

from pathlib import Path

import torch

from poolnas import settings
from poolnas.arch.cost import count_macs, count_parameters, relaxed_macs
from poolnas.arch.models import arch_options, build_model
from poolnas.arch import variants
from poolnas.arch.relaxed import build_standalone
from poolnas.arch.spaces import RELAXED, get_space
from poolnas.data import datasets
from poolnas.data.loader import CROP, Loader
from poolnas.engine.checkpoint import Checkpoint, default_path
from poolnas.engine.loop import fit
from poolnas.engine.optim import current_lr, make_optimizer, make_scheduler, warmup_options
from poolnas.engine.runtime import (EVAL_ORDER, derive_seed, log, resolve_device, runtime_options, setup_runtime,
                                   to_device)
from poolnas.engine.steps import evaluate, train_step
from poolnas.errors import UsageError
from poolnas.records import provenance, remove_stale_temporaries, train_key
from poolnas.schemas import write_record


def stem_for(data) -> str:
    """ImageNet-style stem for datasets trained on random resized crops (Food101), CIFAR stem otherwise."""
    return "imagenet" if data.recipe == settings.RESIZED else "cifar"


def crop_option(prof: settings.Settings, dataset: str, data) -> dict:
    """{"crop": side} for a dataset read with random resized crops (224 unless its profile entry says otherwise),
    else {}: the loaders' keyword and the records' option at once (no other record gains a key)."""
    if data.recipe != settings.RESIZED:
        return {}
    crop = prof.crop(dataset)
    return {"crop": CROP if crop is None else crop}


# The release stores Food101 otherwise than `datasets` does (short side 256, the central square): its ffcv files
# (Food101/write_imagenet.sh, max_resolution 256, JPEG quality 90) keep the whole image with the longer side at 256,
# so its random resized crops see the whole image and its centre crop (224/256 of the short side, resized to 224) is
# upsampled from fewer pixels. Not implemented (a variable-size store); named in every Food101 record instead.
FOOD101_RELEASED_STORAGE = ("the release: longer side resized to 256, whole image, JPEG quality 90 "
                            "(Food101/write_imagenet.sh)")


def storage_option(data) -> dict:
    """{"storage": ours, and the release's} for Food101, whose stored images differ from the release's; else {}."""
    return {"storage": f"{data.meta['storage']} ({FOOD101_RELEASED_STORAGE})"} if data.name == "food101" else {}


def cifar_recipe(hp: dict, data) -> dict:
    """The loader keywords (pad, mean, std) of the settings' `cifar_recipe` (datasets.CIFAR_RECIPES); {} absent."""
    name = hp.get("cifar_recipe")
    if name is None:
        return {}
    if data.recipe != "pad-crop-flip":
        raise UsageError(f"cifar_recipe {name} is for datasets read with pad-crop-flip, not {data.name} "
                         f"({data.recipe})")
    return dict(datasets.CIFAR_RECIPES[name])


def set_only(hp: dict, *keys: str) -> dict:
    """The protocol options a profile sets among `keys` (absent, the old behaviour: no record gains a key)."""
    return {k: hp[k] for k in keys if k in hp}


def test_batch_size(hp: dict) -> int:
    """The standalone test batch: the protocol's `test_batch_size`, absent max(batch_size, 500) (smoke, mini)."""
    return hp.get("test_batch_size", max(hp["batch_size"], 500))


class Architecture:
    """What `--backbone/--config/--variant` name: a config of a search space, or a path of the relaxed ResNet20 space
    (`--backbone resnet20-relaxed --config 010111222`, e.g. an architecture found by DARTS); `--variant` changes a
    config's groups or widths (`arch.variants`: what dgconv and conet found, and their comparison architectures)."""

    def __init__(self, backbone: str, config: str, variant: str | None = None):
        self.relaxed = backbone == RELAXED.name
        if variant is not None and self.relaxed:
            raise UsageError(f"--variant changes a config of resnet20, resnet18 or resnet50, not a {RELAXED.name} path")
        self.variant = None if variant is None else variants.parse(backbone, variant)
        if self.relaxed:
            self.path = RELAXED.parse(config)
            self.name = self.code = RELAXED.name_of(self.path)
            self.index = RELAXED.index(self.path)
        else:
            self.config = get_space(backbone).parse(config)
            self.name, self.index, self.code = self.config.name, self.config.index, self.config.code
        self.backbone = backbone

    def build(self, num_classes: int, bn: str, stem: str, resnet50_d1_bug: bool, **arch):
        if self.relaxed:
            return build_standalone(self.path, num_classes=num_classes, bn=bn, **arch)
        if self.variant is not None:
            return variants.build(self.variant, self.config, num_classes=num_classes, bn=bn, stem=stem,
                                  resnet50_d1_bug=resnet50_d1_bug, **arch)
        return build_model(self.backbone, self.config, num_classes=num_classes, bn=bn, stem=stem,
                           resnet50_d1_bug=resnet50_d1_bug, **arch)

    def macs(self, image_size: int, classes: int, stem: str, stage_widths: list[int] | None = None) -> int:
        if self.relaxed:
            return relaxed_macs(self.path, image_size, classes)
        if self.variant is not None:
            return variants.cost(self.variant, self.config.name, image_size, classes, stem)[1]
        return count_macs(self.backbone, self.config, image_size, classes, stem, stage_widths)



class Standalone:
    """The hooks `engine.loop.fit` drives for one standalone run: epochs are numbered from 1."""

    def __init__(self, model, optimizer, scheduler, hp: dict, train_loader: Loader, test_loader: Loader, *,
                 device, precision: str, step, name: str):
        self.model, self.optimizer, self.scheduler, self.hp = model, optimizer, scheduler, hp
        self.train_loader, self.test_loader = train_loader, test_loader
        self.device, self.precision, self.train_step, self.name = device, precision, step, name
        self.history: list[dict] = []

    def remaining_epochs(self) -> range:
        return range(len(self.history) + 1, self.hp["epochs"] + 1)

    def where(self, epoch: int) -> str:
        return f"epoch {epoch}"

    def start_epoch(self, epoch: int) -> None:
        self.lr = current_lr(self.optimizer)

    def batches(self, epoch: int):
        return self.train_loader.epoch(epoch)

    def step(self, epoch: int, x, y) -> dict:
        loss, hits = self.train_step(self.model, self.optimizer, x, y, self.device, self.precision)
        return {"loss": loss * len(y), "hits": hits, "images": len(y)}

    def step_schedules(self, epoch: int) -> None:
        self.scheduler.step()

    def end_epoch(self, epoch: int, totals: dict, seconds: float) -> None:
        hp, seen = self.hp, totals["images"]
        last = epoch == hp["epochs"]
        test_acc = (evaluate(self.model, self.test_loader, self.device, self.precision)
                    if last or (hp["eval_every"] and epoch % hp["eval_every"] == 0) else None)
        h = {"epoch": epoch, "lr": self.lr, "train_loss": round(totals["loss"] / seen, 6),
             "train_acc": round(100.0 * totals["hits"] / seen, 4),
             "test_acc": None if test_acc is None else round(test_acc, 4), "seconds": round(seconds, 3),
             "images": seen}
        self.history.append(h)
        log(f"{self.name} epoch {epoch}/{hp['epochs']} loss {totals['loss'] / seen:.4f} train {h['train_acc']:.2f}%"
            + (f" test {test_acc:.2f}%" if test_acc is not None else "") + f" lr {self.lr:.4g} "
            f"{seen / seconds:.0f} img/s")

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = state["history"]


def train_run(*, profile: str | dict | settings.Settings, dataset: str, backbone: str, config: str, seed: int, out: str | Path,
              data_dir: str | Path = "data", checkpoint: str | Path | None = None, device: str | None = None,
              threads: int | None = None, epochs: int | None = None, variant: str | None = None) -> dict:
    """Train one config (changed by `variant`) and write its record to `out`; resume from `checkpoint` when it
    matches this run."""
    prof = settings.resolve(profile)
    arch = Architecture(backbone, config, variant)
    hp = prof.protocol(arch.backbone, dataset)
    if epochs is not None:
        if epochs < 1:
            raise UsageError(f"--epochs must be >= 1, got {epochs}")
        hp["epochs"] = epochs
    dev = resolve_device(device or prof.device, prof.gpu_slots)
    setup_runtime(dev, threads or prof.threads)
    precision = prof.precision

    data = datasets.open_dataset(dataset, Path(data_dir) / "cache", Path(data_dir) / "raw",
                                 **prof.dataset_params(dataset))
    stem, crop = stem_for(data), crop_option(prof, dataset, data)
    options = {"bn": hp["bn"], "report": hp["report"], "drop_last_test": hp["drop_last_test"],
               "eval_order": hp["eval_order"], "augment": hp["augment"], "resnet50_d1_bug": hp["resnet50_d1_bug"],
               "stem": stem, "precision": precision, "cosine_t_max": hp["cosine_t_max"], **arch_options(hp),
               **warmup_options(hp), **crop, **set_only(hp, "test_batch_size", "drop_last", "cifar_recipe"),
               **storage_option(data), **runtime_options(dev)}
    recipe = cifar_recipe(hp, data)
    key = train_key(data.meta["files"], backbone, arch.name, seed, hp, options, variant)
    train_loader = Loader.from_prepared(data, "train", hp["batch_size"], augment=hp["augment"], seed=seed, device=dev,
                                        drop_last=hp.get("drop_last", False), **crop, **recipe)
    # With 'released' BN the first BN of each block uses batch statistics in evaluation too, so the test batches'
    # class mix changes the numbers: eval_order shuffled reads the test set in one fixed random order (seeded by
    # the run seed); index (smoke, mini) in storage order, which is not class-sorted for CIFAR and twoscale.
    # The test batch matters with 'released' BN too (batch statistics): test_batch_size (the release: the training
    # batch, 128 for ResNet20) when the profile sets it, else max(batch, 500), what smoke and mini were made with.
    test_loader = Loader.from_prepared(data, "test", test_batch_size(hp), device=dev,
                                       drop_last=hp["drop_last_test"], shuffle=hp["eval_order"] == "shuffled",
                                       seed=derive_seed(seed, EVAL_ORDER), **crop, **recipe)

    def build() -> Standalone:
        torch.manual_seed(seed)
        model = to_device(arch.build(num_classes=data.num_classes, bn=hp["bn"], stem=stem,
                                     resnet50_d1_bug=hp["resnet50_d1_bug"], **arch_options(hp)), dev,
                          prof.channels_last)
        optimizer = make_optimizer(model.parameters(), hp)
        return Standalone(model, optimizer, make_scheduler(optimizer, hp, hp["epochs"]), hp, train_loader,
                          test_loader, device=dev, precision=precision,
                          step=torch.compile(train_step) if prof.compile else train_step,
                          name=f"{dataset}/{backbone} {arch.name}{' ' + variant if variant else ''} seed {seed}")

    remove_stale_temporaries(out)
    ckpt = Checkpoint(checkpoint or default_path(out), key, prof.as_dict())
    run, resumed = ckpt.resume(build)
    if resumed:
        log(f"{arch.name} seed {seed}: resuming after epoch {len(run.history)} from {ckpt.path}")
    fit(run, run.remaining_epochs(), ckpt, name=run.name)
    model = run.model

    history = run.history
    tested = [h["test_acc"] for h in history if h["test_acc"] is not None]
    train_seconds = sum(h["seconds"] for h in history)
    record = {
        "kind": "train", "dataset": dataset, "backbone": backbone, "config": arch.name, "index": arch.index,
        "code": arch.code, **({"variant": arch.variant.describe()} if arch.variant else {}), "seed": seed,
        "profile": prof.name,
        "test_acc": history[-1]["test_acc"] if hp["report"] == "final" else max(tested),
        "final_test_acc": history[-1]["test_acc"], "best_test_acc": max(tested),
        "test_images": len(data.test) if not hp["drop_last_test"] else None, "data_params": data.meta["params"],
        "history": history, "epochs": hp["epochs"],
        "train_seconds": round(train_seconds, 3),
        "images_per_s": round(sum(h["images"] for h in history) / train_seconds, 1),
        "params": count_parameters(model),
        "macs": arch.macs(test_loader.side, data.num_classes, stem, hp.get("stage_widths")),  # as the net sees it
        "hparams": hp, "options": options, "run_key": key, "provenance": provenance(dev),
    }
    write_record(out, record)  # checked against schemas/train.json first
    ckpt.remove()
    return record
