"""DGConv search (Zhang et al. 2019, as summarised in shared/spec/extensions.md): the groups of every square conv of
one pooling config, learned by gradient together with the weights under a complexity budget.

`python -m poolnas search --method dgconv --rho 25 --pooling default --profile smoke --dataset twoscale
 --backbone resnet20 --seed 0 --out R.json`

    network    the PoolNet of the pooling config (`--pooling`: a config, `default` or `best`, `search.run`), built as
               the standalone protocol builds it (BN mode, conv init, zero_init_residual), its square 3x3 convs
               DGConv2d (`arch.dgconv`: 16 layers, 79 gates in ResNet20), every gate logit at `gate_init`
    objective  per search-train minibatch L * (o / zeta)^a when zeta > o, else L: L the cross-entropy, zeta =
               sum_l C_l prod_k (1 + g_k) the connections of the gated convs (through the straight-through gates, so
               the gates get its gradient), o = rho x the dense count, a = `exponent` (public reproductions: -0.02).
               Single level: one SGD step of weights and gates together, no validation minibatches
    optimiser  the search's SGD (lr, momentum, weight decay) and per-epoch cosine schedule over `epochs`; the gates
               in their own group without weight decay (it would pull every logit to 0, where the sign flips at
               random), at `gate_lr` (null: the weights' lr)
    found      the hard gates after the last epoch (`selected.variant`: their `arch.variants` slug), with their
               connections, parameters and MACs beside the dense network's; the gated network's accuracy on the
               whole search-validation split; `compare.fixed_groups`: the one group count G in every square conv
               whose MACs are nearest the found network's (the equal-MACs baseline retrained beside it)

Record fields besides the common ones (`search.run`): pooling {requested, config, index, rule}, budget_rho
(percent), target_connections, found {variant (slug, kind, groups per layer, bits), connections,
connection_fraction, params, macs}, dense {connections, params, macs}, compare {fixed_groups {variant, groups,
params, macs}}, val_acc (percent); configs and accuracy null; epochs: per epoch {epoch, lr, gate_lr, train_loss (the
mean L), objective (its mean), train_acc, val_acc null, connections, connection_fraction, groups (per layer), macs,
steps, images, seconds}. Parameters and MACs count the network with the protocol's BN mode, as the standalone
records do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from poolnas.arch import variants
from poolnas.arch.dgconv import dgconv_layers, gate_bits, to_dgconv
from poolnas.arch.models import build_model
from poolnas.engine.runtime import autocast
from poolnas.engine.steps import evaluate
from poolnas.search.base import SingleNetSearch

ARCH = ("conv_init", "zero_init_residual", "stem_bn_affine")


def network_kwargs(ctx) -> dict:
    """How the standalone protocol builds the network (shared with `search.conet`)."""
    net = ctx.hp["network"]
    return {"num_classes": ctx.data.num_classes, "bn": net["bn"], "stem": ctx.stem,
            "resnet50_d1_bug": ctx.hp["resnet50_d1_bug"], **{k: net[k] for k in ARCH}}


def cost(ctx, variant) -> tuple[int, int]:
    """(parameters, MACs) of a variant of the searched config, counted as its standalone record will count them."""
    return variants.cost(variant, ctx.pooling["config"], ctx.data.meta["image_size"][0], ctx.data.num_classes,
                         ctx.stem, ctx.hp["network"]["bn"])


def connections(layers) -> torch.Tensor:
    """zeta = sum_l C_l prod_k (1 + g_k), through the straight-through gates (a 0-dim tensor with their gradient)."""
    return torch.stack([layer.channels * torch.prod(1 + layer.gates()) for layer in layers]).sum()


class DGConvSearch(SingleNetSearch):
    def build(self):
        ctx = self.ctx
        net = build_model(self.space.name, ctx.pooling["config"], **network_kwargs(ctx))
        return to_dgconv(net, self.hp["extension"]["gate_init"])

    def param_groups(self):
        gates = [layer.gate_logits for layer in dgconv_layers(self.net)]
        ids = {id(g) for g in gates}
        gate_lr = self.hp["extension"]["gate_lr"] or self.hp["lr"]
        return [{"params": [p for p in self.net.parameters() if id(p) not in ids]},
                {"params": gates, "weight_decay": 0.0, "lr": gate_lr}]

    def setup(self):
        self.layers = dgconv_layers(self.net)
        self.dense = sum(layer.channels ** 2 for layer in self.layers)
        self.target = self.ctx.rho / 100 * self.dense
        self.exponent = self.hp["extension"]["exponent"]

    def step(self, e, x, y):
        net = self.net
        net.train()
        with autocast(self.dev, self.prec):
            logits = net(x)
            loss = F.cross_entropy(logits, y)
        zeta = connections(self.layers)
        # the budget term only while the connections exceed the target (a < 0: it grows with zeta / o)
        factor = torch.where(zeta > self.target, (self.target / zeta) ** self.exponent, torch.ones_like(zeta))
        objective = loss.float() * factor
        self.opt.zero_grad(set_to_none=True)
        objective.backward()
        self.opt.step()
        return {"loss": loss.detach().float() * len(y), "objective": objective.detach() * len(y),
                "hits": (logits.argmax(1) == y).sum()}

    def begin_epoch(self, e):
        self.gate_lr = self.opt.param_groups[1]["lr"]  # the epoch's, as `lr` (the schedule steps before end_epoch)

    def found(self) -> variants.Variant:
        return variants.groups(self.space.name, gate_bits(self.net))

    def epoch_state(self, e):
        found = self.found()
        zeta = sum(layer.connections for layer in self.layers)
        return {"gate_lr": self.gate_lr, "connections": zeta,
                "connection_fraction": zeta / self.dense, "groups": found.groups(), "macs": cost(self.ctx, found)[1]}

    def end_epoch(self, e, totals, seconds):
        super().end_epoch(e, totals, seconds)
        self.history[-1]["objective"] = totals["objective"] / totals["images"]

    def conclude(self):
        ctx, backbone = self.ctx, self.space.name
        found = self.found()
        params, macs = cost(ctx, found)
        zeta = sum(layer.connections for layer in self.layers)
        dense_params, dense_macs = cost(ctx, variants.uniform_groups(backbone, 1))
        fixed = [variants.uniform_groups(backbone, 2 ** k) for k in range(min(variants.gate_layout(backbone)) + 1)]
        nearest = min(fixed, key=lambda v: (abs(cost(ctx, v)[1] - macs), v.groups()[0]))  # ties: fewer groups
        return {"selected": {"config": ctx.pooling["config"], "index": ctx.pooling["index"], "rule": "dgconv",
                             "variant": found.slug},
                "configs": None, "accuracy": None, "pooling": ctx.pooling, "budget_rho": ctx.rho,
                "target_connections": self.target,
                "found": {"variant": found.describe(), "connections": zeta, "connection_fraction": zeta / self.dense,
                          "params": params, "macs": macs},
                "dense": {"connections": self.dense, "params": dense_params, "macs": dense_macs},
                "compare": {"fixed_groups": {"variant": nearest.slug, "groups": nearest.groups()[0],
                                             "params": cost(ctx, nearest)[0], "macs": cost(ctx, nearest)[1]}},
                "val_acc": evaluate(self.net, ctx.eval_loader, self.dev, self.prec)}
