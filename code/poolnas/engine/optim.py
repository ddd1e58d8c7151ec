"""The optimiser and the learning-rate schedules every run uses (stepped once per epoch unless said otherwise)."""

from __future__ import annotations

import torch


def make_optimizer(params, hp: dict) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"], weight_decay=hp["weight_decay"],
                           nesterov=hp.get("nesterov", False))


def warmup_options(hp: dict) -> dict:
    """The warm-up in force: a departure from the release, so the scheduler follows it and every record names it."""
    return {"warmup_epochs": hp.get("warmup_epochs", 0), "warmup_factor": hp.get("warmup_factor", 0.1)}


def make_scheduler(optimizer, hp: dict, epochs: int):
    """MultiStepLR (ResNet20/18, ResNet50 on CIFAR100) or cosine (Food101, searches) over `epochs` steps.

    `warmup_epochs` > 0 (not in the release; the mini profile uses it) first trains that many epochs at
    lr * warmup_factor, as He et al. (2016) did for ResNet-110: with a few hundred SGD steps at lr 0.1, the
    deep-at-full-resolution configs otherwise never leave chance. The main schedule then runs on the epoch
    count that remains, so milestones keep counting from epoch 0."""
    lrs = torch.optim.lr_scheduler
    warmup = warmup_options(hp)["warmup_epochs"]
    if hp.get("schedule", "cosine") == "multistep":
        main = lrs.MultiStepLR(optimizer, [max(m - warmup, 1) for m in hp["milestones"]], hp["gamma"])
    else:
        # cosine_t_max "epochs+1": T_max one past the last epoch, as the released Food101 script (the lr never
        # reaches lr_min); searches pass their epochs run (E + 1 with extra_epoch) and leave it at "epochs".
        extra = 1 if hp.get("cosine_t_max", "epochs") == "epochs+1" else 0
        main = lrs.CosineAnnealingLR(optimizer, max(epochs + extra - warmup, 1), eta_min=hp.get("lr_min", 0.0))
    if not warmup:
        return main
    first = lrs.ConstantLR(optimizer, warmup_options(hp)["warmup_factor"], total_iters=warmup)
    return lrs.SequentialLR(optimizer, [first, main], milestones=[warmup])


def current_lr(optimizer) -> float:
    return optimizer.param_groups[0]["lr"]
