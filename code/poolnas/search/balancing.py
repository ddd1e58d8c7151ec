"""The balanced mixture of SuperNets (paper.md section 3): the assignment state, as pure tensor math.

State: W (configs x M, float64, initialised to 1.0), a counter matrix, the temperature of the current epoch
and the sequence of model marginals used by that epoch's balancing.

    temperature   T_e = t0 + (tmax - t0) * e / E (linear; e = E gives tmax, the release's extra epoch)
    balance       P = softmax(T W) over models (P[c, m] = P(m | c)); p = mean_c P[c] (the model marginal);
                  while KL(p || uniform) > threshold: P[:, m] /= p[m] for every m, each row renormalised to
                  sum 1, p recomputed. The marginals p that were divided by are kept, in order.
    probs         P' = softmax(T W_now) with the stored sequence of column divisions and row renormalisations
                  re-applied. `apply_balancing` does it literally (the same operations in the same order, so
                  P' == P bit for bit while W is unchanged). Every division multiplies column m by 1 / p_k[m] and
                  every renormalisation scales a row, so the result is exactly softmax(T W_now + b) with the
                  column bias b[m] = -sum_k log p_k[m]; `Mixture.probs` uses that form (one softmax per step
                  instead of K passes; equal to the literal form up to float64 rounding, ~1e-15).
    sample        c ~ uniform over configs, then m ~ Categorical(P'[c]) by inverse CDF of one uniform draw.
    update        W[c, m] <- ema W[c, m] + (1 - ema) a, with a the validation top-1 accuracy in [0, 1];
                  counts[c, m] += 1.

With M = 1 every P is exactly 1.0, balancing does no iteration and every sample picks model 0: uniform
single-path sampling over the configs (SPOS on one SuperNet).

Selection after search (decisions.md), from the accuracy matrix A (configs x M) measured on the full
search-validation split, the final P and W; every rule breaks ties by the lowest config index:
    assigned    score[c] = A[c, argmax_m P[c, m]]   (the default: each config judged by its own SuperNet)
    best_model  score[c] = max_m A[c, m]
    ema         score[c] = W[c, argmax_m P[c, m]]
    shortlist   the assigned score over the K configs with the highest max_m W[c, m] only (search setting
                shortlist_size, 50 when absent): the released Food101 search's rule
Everything runs in float64 on the CPU: T W reaches 100 and exp(-100) must not underflow.
"""

from __future__ import annotations

import math

import numpy as np
import torch

DTYPE = torch.float64
RULES = ("assigned", "best_model", "ema")


class BalancingError(RuntimeError):
    """Balancing did not bring the model marginal within the threshold of uniform."""


def temperature(epoch: int, epochs: int, t0: float, tmax: float) -> float:
    """T_e = t0 + (tmax - t0) * e / E."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    return t0 + (tmax - t0) * epoch / epochs


def kl_to_uniform(p: torch.Tensor) -> float:
    """KL(p || uniform) = sum_m p_m log(M p_m) (0 log 0 = 0)."""
    return float(torch.special.xlogy(p, p * p.numel()).sum())


def balance(W: torch.Tensor, T: float, threshold: float = 1e-4,
            max_iter: int = 10_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Balanced P(m | c) and the (K, M) sequence of marginals divided by (K = 0 when already balanced)."""
    P = torch.softmax(T * W.to(DTYPE), dim=1)
    used: list[torch.Tensor] = []
    p = P.mean(dim=0)
    kl = kl_to_uniform(p)
    while kl > threshold:
        if len(used) >= max_iter or not math.isfinite(kl) or not bool((p > 0).all()):
            raise BalancingError(
                f"balancing stopped after {len(used)} iterations with KL(p || uniform) = {kl:.3g} > {threshold:g} "
                f"(temperature {T:g}, {W.shape[1]} models, marginal {[round(float(v), 6) for v in p]}); "
                "lower the temperature or raise kl_threshold")
        used.append(p)
        P = P / p
        P = P / P.sum(dim=1, keepdim=True)
        p = P.mean(dim=0)
        kl = kl_to_uniform(p)
    return P, (torch.stack(used) if used else P.new_zeros((0, W.shape[1])))


def apply_balancing(W: torch.Tensor, T: float, marginals: torch.Tensor, rows=None) -> torch.Tensor:
    """softmax(T W[rows]) with the stored column divisions and row renormalisations re-applied.

    Rows are independent, so computing only the rows needed gives the same values as the full matrix.
    """
    W = W.to(DTYPE) if rows is None else W.to(DTYPE)[rows]
    P = torch.softmax(T * W, dim=-1)
    for p in marginals:
        P = P / p
        P = P / P.sum(dim=-1, keepdim=True)
    return P


def log_bias(marginals: torch.Tensor) -> torch.Tensor:
    """b[m] = -sum_k log p_k[m]: the stored sequence folded into one additive bias on T W."""
    return -torch.log(marginals.to(DTYPE)).sum(dim=0)


def assignment(P: torch.Tensor) -> torch.Tensor:
    """argmax_m P(m | c) per config (the lowest model index on ties)."""
    return P.argmax(dim=1)


def shortlist_size(hp: dict) -> int | None:
    """How many configs the `shortlist` rule scores (None: the search selects by another rule): the setting
    `shortlist_size`, absent the release's 50."""
    return hp.get("shortlist_size", 50) if hp["selection"] == "shortlist" else None


def shortlist(W: torch.Tensor, size: int) -> torch.Tensor:
    """The `size` configs with the highest max over SuperNets of W, best first (lower index on ties): the
    released Food101 search's candidates (utils/NAS_trainer.py: the top 50 of max_m W, scored with their
    assigned SuperNet only)."""
    best = W.to(DTYPE).max(dim=1).values
    return torch.sort(best, descending=True, stable=True).indices[:size]  # stable: ties keep the lower index first


def select(acc: torch.Tensor, P: torch.Tensor, W: torch.Tensor, shortlist_size: int | None = None) -> dict[str, dict]:
    """Every selection rule's pick: {rule: {"index": 0-based config, "score": float, "scores": list}}. With
    `shortlist_size`, also the rule `shortlist`: the assigned score over the shortlisted configs only (`scores` holds
    None for the others)."""
    acc, P, W = acc.to(DTYPE), P.to(DTYPE), W.to(DTYPE)
    assigned = assignment(P)[:, None]
    scores = {"assigned": acc.gather(1, assigned)[:, 0], "best_model": acc.max(dim=1).values,
              "ema": W.gather(1, assigned)[:, 0]}
    if shortlist_size is not None:
        listed = torch.full_like(scores["assigned"], -math.inf)
        keep = shortlist(W, shortlist_size)
        listed[keep] = scores["assigned"][keep]
        scores["shortlist"] = listed
    out = {}
    for rule, s in scores.items():
        best = int(torch.nonzero(s == s.max())[0, 0])  # first maximum: lowest config index on ties
        out[rule] = {"index": best, "score": float(s[best]),
                     "scores": [v if math.isfinite(v) else None for v in s.tolist()]}
    return out


class Mixture:
    """W, counters and the current epoch's balancing for `n_configs` configs and `n_models` SuperNets."""

    def __init__(self, n_configs: int, n_models: int, *, epochs: int, ema: float = 0.9, t0: float = 1.0,
                 tmax: float = 100.0, kl_threshold: float = 1e-4, max_iter: int = 10_000):
        if n_configs < 1 or n_models < 1:
            raise ValueError(f"need at least one config and one model, got {n_configs} and {n_models}")
        if not 0.0 <= ema <= 1.0:
            raise ValueError(f"ema must be in [0, 1], got {ema}")
        self.n_configs, self.n_models, self.epochs = n_configs, n_models, epochs
        self.ema, self.t0, self.tmax = ema, t0, tmax
        self.kl_threshold, self.max_iter = kl_threshold, max_iter
        self.W = torch.ones(n_configs, n_models, dtype=DTYPE)
        self.counts = torch.zeros(n_configs, n_models, dtype=torch.int64)
        self.T = t0
        self.marginals = torch.zeros(0, n_models, dtype=DTYPE)
        self.bias = torch.zeros(n_models, dtype=DTYPE)

    def start_epoch(self, epoch: int) -> torch.Tensor:
        """Set the epoch's temperature, balance, store the marginals; return the balanced P."""
        self.T = temperature(epoch, self.epochs, self.t0, self.tmax)
        P, self.marginals = balance(self.W, self.T, self.kl_threshold, self.max_iter)
        self.bias = log_bias(self.marginals)
        return P

    def probs(self, rows=None) -> torch.Tensor:
        """P' for the current W (all rows, or `rows`), as softmax(T W + b)."""
        W = self.W if rows is None else self.W[rows]
        return torch.softmax(self.T * W + self.bias, dim=-1)

    def sample(self, generator: torch.Generator) -> tuple[int, int]:
        """c ~ uniform over configs, then m ~ Categorical(P'[c]); two draws from `generator` (a CPU generator)."""
        c = int(torch.randint(self.n_configs, (), generator=generator))
        return c, self.sample_model(c, generator)

    def sample_model(self, c: int, generator: torch.Generator) -> int:
        """Inverse CDF of P'[c] at one uniform draw (numpy on the row: this runs once per training step)."""
        logits = self.T * self.W.numpy()[c] + self.bias.numpy()
        cdf = np.cumsum(np.exp(logits - logits.max()))
        u = float(torch.rand((), dtype=DTYPE, generator=generator)) * cdf[-1]
        return min(int(np.searchsorted(cdf, u, side="right")), self.n_models - 1)

    def update(self, c: int, m: int, acc: float) -> None:
        """EMA of the validation accuracy `acc` in [0, 1] into W[c, m]; count the pair."""
        W = self.W.numpy()  # a view: writes go to self.W
        W[c, m] = self.ema * W[c, m] + (1.0 - self.ema) * acc
        self.counts.numpy()[c, m] += 1

    def state_dict(self) -> dict:
        return {"W": self.W.clone(), "counts": self.counts.clone(), "T": self.T, "marginals": self.marginals.clone()}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["W"].shape) != (self.n_configs, self.n_models):
            raise ValueError(f"mixture state has shape {tuple(state['W'].shape)}, "
                             f"expected {(self.n_configs, self.n_models)}")
        self.W = state["W"].to(DTYPE).clone()
        self.counts = state["counts"].to(torch.int64).clone()
        self.T = float(state["T"])
        self.marginals = state["marginals"].to(DTYPE).clone()
        self.bias = log_bias(self.marginals)
