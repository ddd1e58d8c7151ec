"""DARTS baselines over the relaxed ResNet20 space (paper.md section 5; the loop: `search.methods`).

Our interpretation (the authors released the fully shared DARTS search; the other variants are ours):

    network     `relaxed.RelaxedNet` in mixed mode: every block's full-resolution input pooled 0/1/2 times, the block
                run at each level, outputs upsampled (nearest) to full size and mixed with weights W (9 x 3).
                darts / darts-gaea: one block for all levels; darts-not-shared-same / -rnd: one copy per level,
                copies identical at the start / independently initialised. BN: affine-free, batch statistics.
    alpha       one 3-vector per block. DARTS: logits, W = softmax(alpha), alpha_0 ~ N(0, arch_init_std^2), Adam
                (arch_lr = 0.01 as the paper, DARTS' betas (0.5, 0.999) and weight decay 1e-3; constant lr).
                GAEA (Li et al., geometry-aware exponentiated gradient): alpha lives on the simplex, W = alpha,
                alpha_0 = 1/3, update alpha <- alpha * exp(-gaea_lr * grad), each row renormalised to sum 1.
    a step      first order, alternating, per search-train minibatch: (1) one SGD step of the network weights on
                that minibatch with W fixed; (2) one alpha step on the next search-validation minibatch (the
                gradient of its cross-entropy with respect to alpha through the updated weights). So the weight
                steps equal the mixture's budget; the alpha steps (as many) are counted apart.
    found       the per-block argmax of W (the lowest level on ties): a 9-level path (`selected.path`). When it is
                monotone and uses all three levels it is a ResNet20 config (`selected.config`, `selected.index`),
                else those are null and the path is retrained as a relaxed architecture
                (`relaxed.build_standalone`).

Record fields besides the common ones (`search.methods`):
    selected {config | null, index | null, rule "argmax_alpha", path "012..."};
    alternatives {best_config_by_alpha: the config with the highest path log-probability
        sum_b log W[b, level_b] (config, index, path, score = that log-probability)};
    configs, accuracy: null (no per-config evaluation; DARTS ranks by alpha); config_log_prob: the 36 configs'
        path log-probabilities under the final W (space order);
    alpha_init, alpha (the final raw alpha), weights (the final W); path_val_acc: the found path run alone through
        the search network (its level copies) on the whole search-validation split, percent;
    epochs: per epoch {epoch, lr (weights), arch_lr, alpha (raw, at the epoch's end), P (W at the epoch's end, rows =
        blocks, columns = levels: Figure 4), path (the argmax at the epoch's end), counts (weight steps that trained
        each (block, level): every step trains all, so all equal steps), train_loss, train_acc, val_loss, val_acc
        (the alpha-step minibatches), steps, images, seconds};
    budget.arch_steps: alpha steps run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from poolnas.search.base import SingleNetSearch
from poolnas.search.methods import first_max
from poolnas.arch.relaxed import N_BLOCKS, N_LEVELS, RelaxedNet
from poolnas.search.evaluation import evaluate_paths
from poolnas.arch.spaces import RELAXED
from poolnas.engine.runtime import autocast


def gaea_update(alpha: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
    """One exponentiated-gradient (mirror descent) step per row of `alpha` (in place); rows stay on the simplex."""
    with torch.no_grad():
        # alpha * exp(-lr g), renormalised, computed as softmax(log alpha - lr g): never overflows, and a row always
        # keeps its largest entry (an entry that underflows to 0 stays 0, as exact arithmetic would nearly have it).
        alpha.copy_(torch.softmax(torch.log(alpha) - lr * grad, dim=-1))
    return alpha


def path_of(weights: torch.Tensor) -> tuple[int, ...]:
    """Per-block argmax (the lowest level on ties)."""
    return tuple(first_max(row) for row in weights.tolist())


class DartsSearch(SingleNetSearch):
    def build(self):
        return RelaxedNet(self.num_classes, bn="supernet", sharing=self.spec.structure["sharing"],
                          init=self.spec.structure["init"], conv_init=self.hp["conv_init"])

    @property
    def gaea(self) -> bool:
        return self.spec.structure["arch"] == "gaea"

    def setup(self):
        if self.gaea:
            self.alpha = torch.full((N_BLOCKS, N_LEVELS), 1.0 / N_LEVELS, device=self.dev, requires_grad=True)
            self.arch_opt = None
        else:
            init = self.bl["arch_init_std"] * torch.randn(N_BLOCKS, N_LEVELS)
            self.alpha = init.to(self.dev).requires_grad_()
            self.arch_opt = torch.optim.Adam([self.alpha], lr=self.bl["arch_lr"], betas=tuple(self.bl["arch_betas"]),
                                             weight_decay=self.bl["arch_weight_decay"])
        self.alpha_init = self.alpha.detach().cpu().tolist()

    def weights(self) -> torch.Tensor:
        return self.alpha if self.gaea else torch.softmax(self.alpha, dim=-1)

    def step(self, e, x, y):
        val_iter, gen = self.val_iter, self.gen
        net, dev, prec = self.net, self.dev, self.prec
        net.train()
        with autocast(dev, self.prec):
            logits = net(x, weights=self.weights().detach())
            loss = F.cross_entropy(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        xv, yv = next(val_iter)
        with autocast(dev, prec):
            val_logits = net(xv, weights=self.weights())
            val_loss = F.cross_entropy(val_logits, yv)
        (grad,) = torch.autograd.grad(val_loss, [self.alpha])
        if self.gaea:
            gaea_update(self.alpha, grad, self.bl["gaea_lr"])
        else:
            self.alpha.grad = grad
            self.arch_opt.step()
            self.alpha.grad = None
        return {"loss": loss.detach().float() * len(y), "hits": (logits.argmax(1) == y).sum(),
                "val_loss": val_loss.detach().float() * len(yv), "val_hits": (val_logits.argmax(1) == yv).sum(),
                "val_n": len(yv)}

    def epoch_state(self, e):
        W = self.weights().detach().cpu()
        steps = len(self.ctx.train_loader)
        return {"arch_lr": self.bl["gaea_lr"] if self.gaea else self.arch_opt.param_groups[0]["lr"],
                "alpha": self.alpha.detach().cpu().tolist(), "P": W.tolist(),
                "path": RELAXED.name_of(path_of(W)), "counts": [[steps] * N_LEVELS for _ in range(N_BLOCKS)]}

    def extra_state(self):
        return {"alpha": self.alpha.detach().cpu(), "alpha_init": self.alpha_init,
                "arch_opt": self.arch_opt.state_dict() if self.arch_opt else None}

    def load_extra(self, state):
        with torch.no_grad():
            self.alpha.copy_(state["alpha"].to(self.dev))
        self.alpha_init = state["alpha_init"]
        if self.arch_opt:
            self.arch_opt.load_state_dict(state["arch_opt"])

    def extra_budget(self):
        return {"arch_steps": sum(h["steps"] for h in self.history)}

    def conclude(self):
        W = self.weights().detach().cpu().double()
        path = path_of(W)
        config = RELAXED.to_config(path)
        path_acc = float(evaluate_paths(self.net, self.ctx.eval_loader, [path], self.dev, self.prec)[0])
        logW = torch.log(W.clamp_min(1e-300))
        configs = list(self.space)
        log_prob = [float(sum(logW[b, lv] for b, lv in enumerate(RELAXED.from_config(c)))) for c in configs]
        best = configs[first_max(log_prob)]
        return {
            "selected": {"config": config.name if config else None, "index": config.index if config else None,
                         "rule": "argmax_alpha", "path": RELAXED.name_of(path)},
            "alternatives": {"best_config_by_alpha": {
                "config": best.name, "index": best.index, "path": RELAXED.name_of(RELAXED.from_config(best)),
                "score": max(log_prob)}},
            "configs": None, "accuracy": None, "config_log_prob": log_prob,
            "alpha_init": self.alpha_init, "alpha": self.alpha.detach().cpu().tolist(), "weights": W.tolist(),
            "path_val_acc": path_acc if math.isfinite(path_acc) else None,
        }
