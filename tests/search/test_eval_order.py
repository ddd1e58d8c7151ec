"""The final evaluation of batch-statistics networks must not depend on how the dataset stores its images.

SuperNet BN (and the relaxed nets', and 'released' mode's first BN per block) normalises with the statistics of
the evaluation batch, so a batch holding one class (torchvision's Food101 lists each class's images together)
gives other numbers than a batch with the split's class mix. The data here make that effect large and
deterministic: the class is the image's brightness, which a batch-statistics BN removes when all images of a
batch share it. A SuperNet trained on mixed batches is then evaluated through `search.run.prepare`'s final-
evaluation loader on two copies of the same data, stored class-sorted and shuffled.
"""

import dataclasses

import numpy as np
import pytest
import torch

from poolnas.arch.models import build_model
from poolnas.data import datasets
from poolnas.data.loader import Loader
from poolnas.engine.optim import make_optimizer
from poolnas.engine.steps import evaluate, train_step
from poolnas.search import run as search_run_module
from poolnas.search.evaluation import evaluate_all

from helpers import tiny_profile

N, SIZE, CLASSES = 192, 16, 2


def brightness_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """uint8 NHWC: noise around 70 (class 0) or 180 (class 1); nothing else tells the classes apart."""
    rng = np.random.default_rng(seed)
    base = np.where(labels[:, None, None, None] == 0, 70, 180)
    return np.clip(base + rng.normal(0, 25, (len(labels), SIZE, SIZE, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """The same images stored twice, class-sorted and shuffled, as `datasets.Prepared` (a real cache's metadata)."""
    root = tmp_path_factory.mktemp("order")
    real = datasets.open_dataset("twoscale", root / "cache", None, train=96, test=20, size=SIZE, classes=4, seed=0)
    labels = np.arange(N) % CLASSES
    images = brightness_images(labels, seed=0)
    order = np.argsort(labels, kind="stable")
    perm = np.random.default_rng(1).permutation(N)

    def prepared(idx):
        split = datasets.Split(images[idx], labels[idx].astype(np.int64))
        return dataclasses.replace(real, train=split, test=split, classes=["dark", "bright"],
                                   mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))

    return {"sorted": prepared(order), "shuffled": prepared(perm), "root": root}


@pytest.fixture(scope="module")
def supernet(copies):
    """A ResNet20 SuperNet (batch-statistics BN) trained on mixed batches until it separates the two classes."""
    torch.manual_seed(0)
    net = build_model("resnet20", num_classes=CLASSES, bn="supernet")
    opt = make_optimizer(net.parameters(), {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0})
    data = copies["shuffled"]
    loader = Loader.from_prepared(data, "train", 32, augment=False, shuffle=True, seed=0)
    positions = net.resolve(net.space.default)
    for epoch in range(4):
        for x, y in loader.epoch(epoch):
            train_step(net, opt, x, y, torch.device("cpu"), "fp32", positions)
    return net


def final_eval_loader(copies, monkeypatch, which: str, **search):
    """The final-evaluation loader `search.run.prepare` builds for a search on one stored copy."""
    profile = tiny_profile(epochs=1)
    profile["search"]["resnet20"].update(eval_batch_size=24, **search)
    monkeypatch.setattr(search_run_module.datasets, "open_dataset", lambda *a, **k: copies[which])
    ctx = search_run_module.prepare(method="mixture", models=1, profile=profile, dataset="twoscale",
                                    backbone="resnet20", seed=0, out=copies["root"] / f"{which}.json",
                                    data_dir=copies["root"], device="cpu", threads=1)
    return ctx


def accuracy(net, ctx) -> float:
    return float(evaluate_all([net], ctx.eval_loader, [net.resolve(net.space.default)], ctx.dev, "fp32")[0, 0])


def test_final_evaluation_batches_mix_the_classes_on_class_sorted_data(copies, monkeypatch):
    ctx = final_eval_loader(copies, monkeypatch, "sorted")
    assert ctx.options["eval_order"] == "shuffled"
    for _, y in ctx.eval_loader.epoch(0):
        assert len(torch.unique(y)) == CLASSES  # index order would give one class per batch here


def test_supernet_accuracy_does_not_depend_on_storage_order(copies, monkeypatch, supernet):
    on_sorted = accuracy(supernet, final_eval_loader(copies, monkeypatch, "sorted"))
    on_shuffled = accuracy(supernet, final_eval_loader(copies, monkeypatch, "shuffled"))
    assert on_shuffled > 90.0  # the net has learned the task; with mixed batches it reads it
    assert abs(on_sorted - on_shuffled) < 5.0  # before the fix: about 50 % on the sorted copy


def test_index_order_is_an_option_and_shows_the_effect(copies, monkeypatch, supernet):
    """eval_order: index (what the committed mini searches used) reads the storage order: on class-sorted data
    every batch holds one class and the same SuperNet drops to about chance."""
    ctx = final_eval_loader(copies, monkeypatch, "sorted", eval_order="index")
    assert ctx.options["eval_order"] == "index"
    assert accuracy(supernet, ctx) < 70.0


def test_drop_last_option(copies, monkeypatch):
    ctx = final_eval_loader(copies, monkeypatch, "sorted", eval_drop_last=True)
    sizes = [len(y) for _, y in ctx.eval_loader.epoch(0)]
    assert set(sizes) == {24} and sum(sizes) == (ctx.search_val // 24) * 24
    assert ctx.options["eval_drop_last"] is True


def test_standard_bn_evaluation_does_not_depend_on_order(copies, supernet):
    """Running statistics: each image's output is its own, so the test-set order is irrelevant (standalone
    'standard' BN); 'released' BN's first BN uses batch statistics, hence the protocol's eval_order."""
    torch.manual_seed(0)
    net = build_model("resnet20", num_classes=CLASSES, bn="standard").eval()
    accs = [evaluate(net, Loader.from_prepared(copies[w], "test", 24, shuffle=s, seed=3), torch.device("cpu"))
            for w in ("sorted", "shuffled") for s in (False, True)]
    assert max(accs) == min(accs)
