"""Standalone training of one configuration: ground truth and retraining (paper.md section 4).

`python -m poolnas train --profile mini --dataset twoscale --backbone resnet20 --config 4-3-3 --seed 0 --out R.json`

Read top to bottom: resolve the run (profile -> hyperparameters), build data/model/optimizer, resume from the
checkpoint if one matches, train epoch by epoch (checkpoint after each), evaluate on the whole test set, write
one JSON record atomically. Everything random is derived from the seed (model init from torch.manual_seed, batch
order and augmentation from the loader's per-epoch generator), so a run is deterministic on CPU and a resumed
run ends with exactly the record of an uninterrupted one.

Record fields: kind, dataset, backbone, config (name), index, code, seed, profile, test_acc (percent, the
protocol's `report`: final epoch by default), final_test_acc, best_test_acc, history (per epoch: epoch, lr,
train_loss, train_acc, test_acc or null, seconds), epochs, train_seconds, images_per_s, params, macs,
hparams (the resolved protocol), options (decisions.md choices in force), provenance.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from poolnas import datasets, profiles
from poolnas.errors import UsageError
from poolnas.loader import Loader
from poolnas.models import build_model, count_macs, count_parameters
from poolnas.records import atomic_torch_save, provenance, write_json
from poolnas.spaces import RELAXED, get_space


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run stops and no record is written."""


# --- pieces shared with the searches ------------------------------------------------------------------------


_DEVICE_LOCKS: list = []  # open lock files: held for the life of the process


def free_gpu() -> torch.device:
    """The first CUDA device no other poolnas process holds (a file lock per device), so that concurrent
    Snakemake jobs on one machine each get their own GPU. Falls back to cuda:0 when all are taken."""
    import fcntl
    import tempfile

    for index in range(torch.cuda.device_count()):
        handle = open(Path(tempfile.gettempdir()) / f"poolnas-cuda{index}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _DEVICE_LOCKS.append(handle)
        return torch.device("cuda", index)
    return torch.device("cuda", 0)


def resolve_device(spec: str) -> torch.device:
    """auto: a free GPU when there is one, else the CPU; or exactly what was asked for."""
    if spec == "auto":
        return free_gpu() if torch.cuda.is_available() else torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {spec!r} asked for, but this machine has no CUDA device; use --device cpu")
    return torch.device(spec)


def setup_runtime(device: torch.device, threads: int) -> None:
    """Threads for CPU runs; fast kernels for GPU runs (TF32, cuDNN autotuning)."""
    if device.type == "cpu":
        torch.set_num_threads(threads)
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True


def autocast(device: torch.device, precision: str):
    """bf16 autocast when asked; parameters (BatchNorm's included) stay fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(params, hp: dict) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"], weight_decay=hp["weight_decay"],
                           nesterov=hp.get("nesterov", False))


def warmup_options(hp: dict) -> dict:
    """The warm-up in force: a departure from the release, so the scheduler follows it and every record names it."""
    return {"warmup_epochs": hp.get("warmup_epochs", 0), "warmup_factor": hp.get("warmup_factor", 0.1)}


def make_scheduler(optimizer, hp: dict, epochs: int):
    """Stepped once per epoch: MultiStepLR (ResNet20/18, ResNet50 on CIFAR100) or cosine (Food101, searches).

    `warmup_epochs` > 0 (not in the release; the mini profile uses it) first trains that many epochs at
    lr * warmup_factor, as He et al. (2016) did for ResNet-110: with a few hundred SGD steps at lr 0.1, the
    deep-at-full-resolution configs otherwise never leave chance. The main schedule then runs on the epoch
    count that remains, so milestones keep counting from epoch 0."""
    lrs = torch.optim.lr_scheduler
    warmup = warmup_options(hp)["warmup_epochs"]
    if hp.get("schedule", "cosine") == "multistep":
        main = lrs.MultiStepLR(optimizer, [max(m - warmup, 1) for m in hp["milestones"]], hp["gamma"])
    else:
        main = lrs.CosineAnnealingLR(optimizer, max(epochs - warmup, 1), eta_min=hp.get("lr_min", 0.0))
    if not warmup:
        return main
    first = lrs.ConstantLR(optimizer, warmup_options(hp)["warmup_factor"], total_iters=warmup)
    return lrs.SequentialLR(optimizer, [first, main], milestones=[warmup])


@torch.no_grad()
def evaluate(model, loader: Loader, device: torch.device, precision: str = "fp32", config=None) -> float:
    """Top-1 accuracy in percent over every image the loader yields (one host sync, at the end)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    with autocast(device, precision):
        for x, y in loader.epoch(0):
            correct += (model(x, config).argmax(1) == y).sum()
            seen += len(y)
    return 100.0 * correct.item() / max(seen, 1)


def stem_for(data) -> str:
    """ImageNet-style stem for datasets trained on 224-pixel crops (Food101), CIFAR stem otherwise."""
    return "imagenet" if data.recipe == "resized-crop-flip" else "cifar"


def run_key(payload: dict) -> str:
    """A short hash of everything that determines a run: a checkpoint is resumed only when it matches."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def load_checkpoint(path: Path, key: str) -> dict | None:
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state if state.get("key") == key else None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- one run ------------------------------------------------------------------------------------------------


class Architecture:
    """What `--backbone/--config` name: a config of a search space, or a path of the relaxed ResNet20 space
    (`--backbone resnet20-relaxed --config 010111222`, e.g. an architecture found by DARTS)."""

    def __init__(self, backbone: str, config: str):
        self.relaxed = backbone == RELAXED.name
        if self.relaxed:
            self.path = RELAXED.parse(config)
            self.name = self.code = RELAXED.name_of(self.path)
            self.index, self.protocol_backbone = RELAXED.index(self.path), RELAXED.base
        else:
            self.config = get_space(backbone).parse(config)
            self.name, self.index, self.code = self.config.name, self.config.index, self.config.code
            self.protocol_backbone = backbone
        self.backbone = backbone

    def build(self, num_classes: int, bn: str, stem: str, resnet50_d1_bug: bool):
        if self.relaxed:
            from poolnas import relaxed

            return relaxed.build_standalone(self.path, num_classes=num_classes, bn=bn)
        return build_model(self.backbone, self.config, num_classes=num_classes, bn=bn, stem=stem,
                           resnet50_d1_bug=resnet50_d1_bug)

    def macs(self, image_size: int, classes: int, stem: str) -> int:
        if self.relaxed:
            from poolnas import relaxed

            return relaxed.count_macs(self.path, image_size, classes)
        return count_macs(self.backbone, self.config, image_size, classes, stem)



def train_run(*, profile: str | dict, dataset: str, backbone: str, config: str, seed: int, out: str | Path,
              data_dir: str | Path = "data", checkpoint: str | Path | None = None, device: str | None = None,
              threads: int | None = None, epochs: int | None = None) -> dict:
    """Train one config and write its record to `out`; resume from `checkpoint` when it matches this run."""
    prof = profiles.load(profile) if isinstance(profile, str) else profile
    arch = Architecture(backbone, config)
    hp = profiles.protocol(prof, arch.protocol_backbone, dataset)
    if epochs is not None:
        if epochs < 1:
            raise UsageError(f"--epochs must be >= 1, got {epochs}")
        hp["epochs"] = epochs
    dev = resolve_device(device or prof["device"])
    n_threads = threads or prof["threads"]
    setup_runtime(dev, n_threads)
    precision = prof["precision"]

    data = datasets.open_dataset(dataset, Path(data_dir) / "cache", Path(data_dir) / "raw",
                                 **profiles.dataset_params(prof, dataset))
    stem = stem_for(data)
    options = {"bn": hp["bn"], "report": hp["report"], "drop_last_test": hp["drop_last_test"],
               "augment": hp["augment"], "resnet50_d1_bug": hp["resnet50_d1_bug"], "stem": stem,
               "precision": precision, **warmup_options(hp)}
    key = run_key({"dataset": data.meta["files"], "backbone": backbone, "config": arch.name, "seed": seed,
                   "hparams": hp, "options": options})
    train_loader = Loader.from_prepared(data, "train", hp["batch_size"], augment=hp["augment"], seed=seed, device=dev)
    test_loader = Loader.from_prepared(data, "test", max(hp["batch_size"], 500), device=dev,
                                       drop_last=hp["drop_last_test"])

    torch.manual_seed(seed)
    model = arch.build(num_classes=data.num_classes, bn=hp["bn"], stem=stem,
                       resnet50_d1_bug=hp["resnet50_d1_bug"]).to(dev)
    if prof["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model.parameters(), hp)
    scheduler = make_scheduler(optimizer, hp, hp["epochs"])
    step = torch.compile(train_step) if prof["compile"] else train_step

    ckpt_path = Path(checkpoint) if checkpoint else Path(out).parent / ".checkpoints" / (Path(out).stem + ".pt")
    history: list[dict] = []
    state = load_checkpoint(ckpt_path, key)
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = state["history"]
        log(f"{arch.name} seed {seed}: resuming after epoch {len(history)} from {ckpt_path}")

    name = f"{dataset}/{backbone} {arch.name} seed {seed}"
    for epoch in range(len(history) + 1, hp["epochs"] + 1):
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), dtype=torch.long, device=dev)
        seen, start = 0, time.perf_counter()
        for x, y in train_loader.epoch(epoch):
            loss, hits = step(model, optimizer, x, y, dev, precision)
            loss_sum += loss * len(y)
            correct += hits
            seen += len(y)
        train_loss = loss_sum.item() / seen  # the epoch's one host sync
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"{name}: the training loss became {train_loss} in epoch {epoch}; "
                                   f"no record written (lower the learning rate or check the data)")
        scheduler.step()
        seconds = time.perf_counter() - start
        last = epoch == hp["epochs"]
        test_acc = (evaluate(model, test_loader, dev, precision)
                    if last or (hp["eval_every"] and epoch % hp["eval_every"] == 0) else None)
        history.append({"epoch": epoch, "lr": lr, "train_loss": round(train_loss, 6),
                        "train_acc": round(100.0 * correct.item() / seen, 4),
                        "test_acc": None if test_acc is None else round(test_acc, 4),
                        "seconds": round(seconds, 3), "images": seen})
        log(f"{name} epoch {epoch}/{hp['epochs']} loss {train_loss:.4f} train {history[-1]['train_acc']:.2f}%"
            + (f" test {test_acc:.2f}%" if test_acc is not None else "") + f" lr {lr:.4g} {seen / seconds:.0f} img/s")
        if not last:
            atomic_torch_save({"key": key, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "history": history}, ckpt_path)

    tested = [h["test_acc"] for h in history if h["test_acc"] is not None]
    train_seconds = sum(h["seconds"] for h in history)
    record = {
        "kind": "train", "dataset": dataset, "backbone": backbone, "config": arch.name, "index": arch.index,
        "code": arch.code, "seed": seed, "profile": prof["profile"],
        "test_acc": history[-1]["test_acc"] if hp["report"] == "final" else max(tested),
        "final_test_acc": history[-1]["test_acc"], "best_test_acc": max(tested),
        "test_images": len(data.test) if not hp["drop_last_test"] else None,
        "history": history, "epochs": hp["epochs"],
        "train_seconds": round(train_seconds, 3),
        "images_per_s": round(sum(h["images"] for h in history) / train_seconds, 1),
        "params": count_parameters(model),
        "macs": arch.macs(data.meta["image_size"][0], data.num_classes, stem),
        "hparams": hp, "options": options, "run_key": key, "provenance": provenance(dev),
    }
    write_json(out, record)
    ckpt_path.unlink(missing_ok=True)
    return record


def train_step(model, optimizer, x, y, device, precision, config=None):
    """One SGD step (of `config`, for a SuperNet or relaxed network); returns the mean loss and the number of
    correct predictions as device tensors, so the caller decides when to synchronise."""
    model.train()
    with autocast(device, precision):
        logits = model(x) if config is None else model(x, config)
        loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach().float(), (logits.argmax(1) == y).sum()


# --- command line -------------------------------------------------------------------------------------------


def add_run_arguments(p, *, what: str) -> None:
    """Arguments shared by `train` and `search`: what to run, where data lives, on what device."""
    p.add_argument("--profile", required=True, help="smoke, mini, paper, or a path to a profile .yaml")
    p.add_argument("--dataset", required=True)
    p.add_argument("--backbone", required=True, help="resnet20, resnet18, resnet50, or resnet20-relaxed (train only: a 9-level path)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help=f"the {what} record (JSON), written atomically at the end")
    p.add_argument("--data-dir", default="data", help="raw files under DATA_DIR/raw, caches under DATA_DIR/cache")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint file (default: .checkpoints/ beside --out); a run resumes from it")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: the profile's)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the profile's)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train one configuration standalone and write its record",
                       description=__doc__.splitlines()[0])
    add_run_arguments(p, what="training")
    p.add_argument("--config", required=True, help='e.g. "[4,3,3]", 4-3-3, 24 or 0000100100')
    p.add_argument("--epochs", type=int, default=None, help="override the protocol's epoch count")
    p.set_defaults(func=_cli_train)


def _cli_train(args) -> int:
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    try:
        record = train_run(profile=args.profile, dataset=args.dataset, backbone=args.backbone, config=args.config,
                           seed=args.seed, out=args.out, data_dir=args.data_dir, checkpoint=args.checkpoint,
                           device=args.device, threads=args.threads, epochs=args.epochs)
    except TrainingDiverged as err:
        log(f"poolnas train: error: {err}")
        return 1
    log(f"{record['config']} seed {record['seed']}: test accuracy {record['test_acc']:.2f}% -> {args.out}")
    return 0
