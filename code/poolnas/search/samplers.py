"""Single-path baselines: SPOS not shared, MCTS (UCB) and SBE, each alone or mixed with uniform sampling
(paper.md section 5; the loop: `search.methods`). Our interpretation of methods the authors did not release:

SPOS not shared (spos-not-shared, spos-not-shared-relaxed): `relaxed.RelaxedNet` with one copy of every block per
    level (copies initialised independently by default: `baselines.spos_init`), run as a single path. Each step
    draws a path uniformly, from the 36 configs (a config uniformly, then its levels; the copies a config never
    uses, e.g. block 1 at quarter resolution, are never trained) or from all 19,683 relaxed paths (each block's
    level uniform and independent), and takes one SGD step on it. After training, every one of the 36 configs is
    evaluated as a path on the whole search-validation split and the best is selected (rule best_val; ties to the
    lowest index). The relaxed variant also evaluates `relaxed_eval_paths` further paths drawn uniformly without
    replacement from the 19,683 - 36 non-config paths (numpy, seeded by (seed, 11)); they inform
    `alternatives.best_path` but are not selectable (the pick must be one of the 36, as in the paper's Table 1).
MCTS (mcts, mcts-uniform): one fully shared SuperNet (`models.PoolNet`, as the M = 1 mixture). The configs form a
    tree: the root's children are the first downsampling position, their children the next one (ResNet20: 8
    first positions, 36 leaves). Each step walks down by UCB1, mean reward + ucb_c * sqrt(ln N_parent / N_child)
    (ucb_c = sqrt 2 by default; a node's unvisited children are tried first, in a seeded random order; ties to
    the lowest position), trains the SuperNet on the leaf's config for one SGD step, runs one search-validation
    minibatch through it (eval mode) and backs its top-1 accuracy in [0, 1] (the reward) up the walked nodes
    (visit count and reward sum). Rewards are plain means over the whole search (the SuperNet improves meanwhile).
SBE (sbe, sbe-uniform): the same SuperNet and step; Boltzmann exploration over the configs: P(c) ∝ exp(T_e s_c),
    s_c an EMA of c's validation-minibatch accuracy (s <- ema s + (1 - ema) a, s_0 = 1.0 and ema as the mixture's
    W), T_e the mixture's linear schedule t0 -> tmax over the epochs (`balancing.temperature`).
"+ Unif. Smp." (mcts-uniform, sbe-uniform): each step draws its config uniformly with probability uniform_mix
    (0.5) and from the sampler otherwise; the reward of every step, uniform or not, updates the sampler.
MCTS and SBE select like SPOS: every config through the SuperNet on the whole search-validation split
    (`evaluation.evaluate_all`), the best (rule best_val; ties to the lowest index); the samplers' own preferences are
    alternatives.

Record fields besides the common ones (`search.methods`):
    selected {config, index, rule "best_val"} (+ path for spos-not-shared-relaxed);
    configs (the space's names), accuracy (one percent per config, whole search-validation split);
    alternatives: SPOS relaxed {best_path: the best of the 36 and the extra paths {path, config | null,
        index | null, score (percent)}}; MCTS {most_visited: greedy by visits from the root (score: its visits),
        best_mean: the leaf with the highest mean reward (score: that mean, in [0, 1])} {config, index, score};
        SBE {ema: the config with the highest EMA (score: the EMA, accuracy in [0, 1])};
    counts: SPOS per block and level (9 x 3), the others per config; config_counts (SPOS over the configs);
    paths, path_accuracy (SPOS relaxed: the extra paths and their accuracies); ema (SBE: final scores);
    visits, mean_reward (MCTS: per config leaf); uniform_steps (+ Unif. Smp.: steps drawn uniformly);
    epochs: P = the sampling distribution (SPOS: per block over levels, 9 x 3; SBE: over configs at the epoch's
        start including the uniform mixing, 1 x configs; MCTS (deterministic walks): the epoch's empirical share of
        steps per config, 1 x configs), counts (this epoch's, same shape), SBE: temperature and ema (at the epoch's
        end); MCTS: visits and mean_reward (at the epoch's end); both: uniform_steps.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from poolnas.search import balancing
from poolnas.search.base import SingleNetSearch
from poolnas.search.methods import first_max
from poolnas.search.evaluation import evaluate_all
from poolnas.arch.models import build_model, width_option
from poolnas.arch.relaxed import N_BLOCKS, N_LEVELS, RelaxedNet
from poolnas.search.evaluation import evaluate_paths
from poolnas.arch.spaces import RELAXED
from poolnas.engine.steps import step_and_validate, train_step

RELAXED_DRAW = 11  # numpy stream (seed, 11): the extra relaxed paths SPOS evaluates


def as_array(saved) -> np.ndarray:
    """A numpy array back from a checkpoint (which stores arrays as tensors: `search.base.plain`)."""
    return torch.as_tensor(saved).numpy().copy()


def _path_step(net, opt, x, y, path, dev, precision):
    """One SGD step of a single path; the loss sum and hits as device tensors (no sync)."""
    loss, hits = train_step(net, opt, x, y, dev, precision, path)
    return {"loss": loss * len(y), "hits": hits}


def _pick(configs, acc) -> dict:
    best = first_max(acc)
    return {"config": configs[best].name, "index": configs[best].index, "rule": "best_val"}


# --- SPOS not shared -----------------------------------------------------------------------------------------


class SposSearch(SingleNetSearch):
    def build(self):
        return RelaxedNet(self.num_classes, bn="supernet", sharing="not-shared", init=self.bl["spos_init"],
                          conv_init=self.hp["conv_init"])

    def setup(self):
        self.relaxed = self.spec.structure["paths"] == "relaxed"
        self.configs = list(self.space)
        self.config_paths = [RELAXED.from_config(c) for c in self.configs]
        self.counts = np.zeros((N_BLOCKS, N_LEVELS), dtype=np.int64)
        self.config_counts = np.zeros(len(self.configs), dtype=np.int64)

    def begin_epoch(self, e):
        self.counts_before, self.config_before = self.counts.copy(), self.config_counts.copy()

    def step(self, e, x, y):
        val_iter, gen = self.val_iter, self.gen
        if self.relaxed:
            path = tuple(torch.randint(N_LEVELS, (N_BLOCKS,), generator=gen).tolist())
        else:
            c = int(torch.randint(len(self.configs), (), generator=gen))
            path = self.config_paths[c]
            self.config_counts[c] += 1
        self.counts[np.arange(N_BLOCKS), path] += 1
        return _path_step(self.net, self.opt, x, y, path, self.dev, self.prec)

    def sampling_probs(self) -> np.ndarray:
        """P(block b runs at level l) under the sampler."""
        if self.relaxed:
            return np.full((N_BLOCKS, N_LEVELS), 1.0 / N_LEVELS)
        P = np.zeros((N_BLOCKS, N_LEVELS))
        for path in self.config_paths:
            P[np.arange(N_BLOCKS), path] += 1.0 / len(self.config_paths)
        return P

    def epoch_state(self, e):
        out = {"P": self.sampling_probs().tolist(), "counts": (self.counts - self.counts_before).tolist()}
        if not self.relaxed:
            out["config_counts"] = (self.config_counts - self.config_before).tolist()
        return out

    def extra_state(self):
        return {"counts": self.counts.copy(), "config_counts": self.config_counts.copy()}

    def load_extra(self, state):
        self.counts, self.config_counts = as_array(state["counts"]), as_array(state["config_counts"])

    def extra_paths(self) -> list[tuple[int, ...]]:
        k = self.bl.get("relaxed_eval_paths", 0) if self.relaxed else 0
        if not k:
            return []
        taken = {RELAXED.index(p) for p in self.config_paths}
        pool = np.array([i for i in range(len(RELAXED)) if i not in taken])
        rng = np.random.default_rng(np.random.SeedSequence([self.ctx.seed, RELAXED_DRAW]))
        return [RELAXED.from_index(int(i)) for i in rng.choice(pool, min(k, len(pool)), replace=False)]

    def conclude(self):
        extra = self.extra_paths()
        acc = evaluate_paths(self.net, self.ctx.eval_loader, self.config_paths + extra, self.dev,
                             self.prec).tolist()
        n = len(self.configs)
        body = {"selected": _pick(self.configs, acc[:n]), "alternatives": {},
                "configs": [c.name for c in self.configs], "accuracy": acc[:n], "counts": self.counts.tolist()}
        if self.relaxed:
            body["selected"]["path"] = RELAXED.name_of(self.config_paths[first_max(acc[:n])])
            paths = self.config_paths + extra
            best = first_max(acc)
            cfg = RELAXED.to_config(paths[best])
            body["alternatives"]["best_path"] = {"path": RELAXED.name_of(paths[best]),
                                                 "config": cfg.name if cfg else None,
                                                 "index": cfg.index if cfg else None, "score": acc[best]}
            body |= {"paths": [RELAXED.name_of(p) for p in extra], "path_accuracy": acc[n:]}
        else:
            body["config_counts"] = self.config_counts.tolist()
        return body


# --- configuration samplers on one shared SuperNet -----------------------------------------------------------


class UCBTree:
    """UCB1 over a tree of configs: depth d holds the d-th downsampling position (see the module docstring)."""

    def __init__(self, positions: list[tuple[int, ...]], c: float):
        self.positions, self.c = [tuple(p) for p in positions], c
        self.depth = max(len(p) for p in self.positions)
        self.leaf = {p: i for i, p in enumerate(self.positions)}
        self.children: dict[tuple, list[int]] = {}
        for p in self.positions:
            for d in range(len(p)):
                kids = self.children.setdefault(p[:d], [])
                if p[d] not in kids:
                    kids.append(p[d])
        for kids in self.children.values():
            kids.sort()
        self.N: dict[tuple, int] = {}
        self.Q: dict[tuple, float] = {}

    def ucb(self, node: tuple, kid: int) -> float:
        child = node + (kid,)
        n = self.N[child]
        return self.Q[child] / n + self.c * math.sqrt(math.log(self.N[node]) / n)

    def choose(self, gen: torch.Generator) -> int:
        """Walk down from the root; one uniform draw per level (used only to order unvisited children)."""
        node: tuple = ()
        while node not in self.leaf:
            kids = self.children[node]
            u = float(torch.rand((), dtype=torch.float64, generator=gen))
            unvisited = [k for k in kids if self.N.get(node + (k,), 0) == 0]
            if unvisited:
                node += (unvisited[min(int(u * len(unvisited)), len(unvisited) - 1)],)
            else:
                node += (kids[first_max([self.ucb(node, k) for k in kids])],)
        return self.leaf[node]

    def update(self, c: int, reward: float) -> None:
        p = self.positions[c]
        for d in range(len(p) + 1):
            self.N[p[:d]] = self.N.get(p[:d], 0) + 1
            self.Q[p[:d]] = self.Q.get(p[:d], 0.0) + reward

    def visits(self) -> list[int]:
        return [self.N.get(p, 0) for p in self.positions]

    def mean_reward(self) -> list[float | None]:
        return [self.Q[p] / self.N[p] if self.N.get(p) else None for p in self.positions]

    def most_visited(self) -> int:
        node: tuple = ()
        while node not in self.leaf:
            kids = self.children[node]
            node += (kids[first_max([self.N.get(node + (k,), 0) for k in kids])],)
        return self.leaf[node]

    def state_dict(self) -> dict:
        return {"N": dict(self.N), "Q": dict(self.Q)}

    def load_state_dict(self, state: dict) -> None:
        self.N, self.Q = dict(state["N"]), dict(state["Q"])


class Boltzmann:
    """Softmax sampling over configs by an EMA score: P(c) ∝ exp(T s_c)."""

    def __init__(self, n: int, ema: float, init: float = 1.0):
        self.s, self.ema, self.T = np.full(n, init, dtype=np.float64), ema, 1.0

    def probs(self) -> np.ndarray:
        z = self.T * self.s
        p = np.exp(z - z.max())
        return p / p.sum()

    def choose(self, gen: torch.Generator) -> int:
        cdf = np.cumsum(self.probs())
        u = float(torch.rand((), dtype=torch.float64, generator=gen)) * cdf[-1]
        return min(int(np.searchsorted(cdf, u, side="right")), len(self.s) - 1)

    def update(self, c: int, reward: float) -> None:
        self.s[c] = self.ema * self.s[c] + (1.0 - self.ema) * reward

    def state_dict(self) -> dict:
        return {"s": self.s.copy(), "T": self.T}

    def load_state_dict(self, state: dict) -> None:
        self.s, self.T = as_array(state["s"]).astype(np.float64), float(state["T"])


class ConfigSamplerSearch(SingleNetSearch):
    """One shared SuperNet; per step a config from the sampler (or uniformly), one SGD step, one reward."""

    def build(self):
        return build_model(self.space.name, num_classes=self.num_classes, bn="supernet", stem=self.ctx.stem,
                           resnet50_d1_bug=self.hp["resnet50_d1_bug"], conv_init=self.hp["conv_init"],
                           **width_option(self.hp))

    def setup(self):
        self.configs = list(self.space)
        self.positions = [self.net.resolve(c) for c in self.configs]  # applies the d = 1 bug option
        self.mix = self.bl.get("uniform_mix", 0.0) if self.spec.structure["uniform"] else 0.0
        self.counts = np.zeros(len(self.configs), dtype=np.int64)
        self.uniform_steps = 0
        self.sampler = self.make_sampler()

    def begin_epoch(self, e):
        self.counts_before, self.uniform_before = self.counts.copy(), self.uniform_steps

    def step(self, e, x, y):
        val_iter, gen = self.val_iter, self.gen
        n = len(self.configs)
        u = float(torch.rand((), dtype=torch.float64, generator=gen))
        drawn = int(torch.randint(n, (), generator=gen))  # always drawn: the stream's layout never depends on u
        uniform = u < self.mix
        c = drawn if uniform else self.sampler.choose(gen)
        xv, yv = next(val_iter)
        loss, hits, val_hits = step_and_validate(self.net, self.opt, x, y, xv, yv, self.positions[c], self.dev,
                                             self.prec)
        vh = int(val_hits)  # the step's host sync: the sampler needs the reward before the next draw
        self.sampler.update(c, vh / len(yv))
        self.counts[c] += 1
        self.uniform_steps += int(uniform)
        return {"loss": loss * len(y), "hits": hits, "val_hits": vh, "val_n": len(yv)}

    def epoch_counts(self) -> dict:
        return {"counts": [(self.counts - self.counts_before).tolist()],
                "uniform_steps": self.uniform_steps - self.uniform_before}

    def extra_state(self):
        return {"sampler": self.sampler.state_dict(), "counts": self.counts.copy(),
                "uniform_steps": self.uniform_steps}

    def load_extra(self, state):
        self.sampler.load_state_dict(state["sampler"])
        self.counts, self.uniform_steps = as_array(state["counts"]), state["uniform_steps"]

    def conclude(self):
        acc = evaluate_all([self.net], self.ctx.eval_loader, self.positions, self.dev, self.prec)[:, 0].tolist()
        return {"selected": _pick(self.configs, acc), "alternatives": self.alternatives(),
                "configs": [c.name for c in self.configs], "accuracy": acc, "counts": self.counts.tolist(),
                **self.sampler_summary(), "uniform_steps": self.uniform_steps}

    def _alt(self, c: int, score: float) -> dict:
        return {"config": self.configs[c].name, "index": self.configs[c].index, "score": score}


class MctsSearch(ConfigSamplerSearch):
    def make_sampler(self):
        return UCBTree([c.positions for c in self.configs], self.bl["ucb_c"])

    def epoch_state(self, e):
        counts = self.epoch_counts()
        steps = max(sum(counts["counts"][0]), 1)
        return {"P": [[v / steps for v in counts["counts"][0]]], **counts, "visits": self.sampler.visits(),
                "mean_reward": self.sampler.mean_reward()}

    def alternatives(self):
        t = self.sampler
        means = [-1.0 if m is None else m for m in t.mean_reward()]
        visited = t.most_visited()
        return {"most_visited": self._alt(visited, t.visits()[visited]),
                "best_mean": self._alt(first_max(means), max(means))}

    def sampler_summary(self):
        return {"visits": self.sampler.visits(), "mean_reward": self.sampler.mean_reward()}


class SbeSearch(ConfigSamplerSearch):
    def make_sampler(self):
        return Boltzmann(len(self.configs), self.hp["ema"])

    def begin_epoch(self, e):
        super().begin_epoch(e)
        self.sampler.T = balancing.temperature(e, self.hp["epochs"], self.hp["t0"], self.hp["tmax"])
        self.P_start = (1.0 - self.mix) * self.sampler.probs() + self.mix / len(self.configs)

    def epoch_state(self, e):
        return {"temperature": self.sampler.T, "P": [self.P_start.tolist()], **self.epoch_counts(),
                "ema": self.sampler.s.tolist()}

    def alternatives(self):
        best = first_max(self.sampler.s.tolist())
        return {"ema": self._alt(best, float(self.sampler.s[best]))}

    def sampler_summary(self):
        return {"ema": self.sampler.s.tolist()}
