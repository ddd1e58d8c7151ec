"""Empirical variational Bayes matrix factorisation (EVBMF), from the global analytic solution of Nakajima et al.
(JMLR 2013), and the two per-layer metrics CONet reads from it (shared/spec/extensions.md).

For Y (L x M, L <= M; transposed otherwise) with singular values gamma_h and alpha = L / M, the EVB solution keeps
exactly the components with gamma_h > sigma * sqrt(M * x_bar), x_bar = (1 + tau_bar)(1 + alpha / tau_bar),
tau_bar ~= 2.5129 sqrt(alpha), and shrinks each kept one to
    gamma_hat = gamma / 2 * (1 - (L + M) s2 / gamma^2 + sqrt((1 - (L + M) s2 / gamma^2)^2 - 4 L M s2^2 / gamma^4)).
The noise variance s2 = sigma^2 is unknown: it minimises the free energy (up to constants)
    sum_{x_h <= x_bar} (x_h - log x_h) + sum_{x_h > x_bar} (x_h - tau_h + log((tau_h + 1) / x_h)
    + alpha log(tau_h / alpha + 1)) + (residual) / (M s2) + (L - H) log s2,    x_h = gamma_h^2 / (M s2),
    tau(x) = (x - (1 + alpha) + sqrt((x - (1 + alpha))^2 - 4 alpha)) / 2,
a bounded 1-D minimisation (scipy), between the bounds the solution implies. Pure noise keeps (almost) nothing:
its singular values stay below the threshold (the Marchenko-Pastur edge is sqrt(M s2)(1 + sqrt(alpha))).

This is the factorisation and the metrics; the CONet trials that use them are `search.conet`.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar


def _tau(x: np.ndarray, alpha: float) -> np.ndarray:
    b = x - (1 + alpha)
    return 0.5 * (b + np.sqrt(np.maximum(b * b - 4 * alpha, 0.0)))


def evbmf(Y: np.ndarray) -> tuple[np.ndarray, float]:
    """The kept singular values (shrunk, descending) of Y and the estimated noise variance."""
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2 or min(Y.shape) < 2:
        raise ValueError(f"evbmf needs a matrix with both sides >= 2, got shape {Y.shape}")
    if Y.shape[0] > Y.shape[1]:
        Y = Y.T
    L, M = Y.shape
    s = np.linalg.svd(Y, compute_uv=False)
    H, alpha = len(s), L / M
    tau_bar = 2.5129 * np.sqrt(alpha)
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    residual = max(float(np.sum(Y * Y) - np.sum(s * s)), 0.0)

    def free_energy(s2: float) -> float:
        x = s * s / (M * s2)
        big, small = x[x > x_bar], x[x <= x_bar]
        t = _tau(big, alpha)
        return float(np.sum(small - np.log(small)) + np.sum(big - t) + np.sum(np.log((t + 1) / big))
                     + alpha * np.sum(np.log(t / alpha + 1)) + residual / (M * s2) + (L - H) * np.log(s2))

    h_max = int(min(np.ceil(L / (1 + alpha)) - 1, H - 1))  # at most this many components can be signal
    upper = (np.sum(s * s) + residual) / (L * M)
    lower = max(s[h_max] ** 2 / (M * x_bar), np.mean(s[h_max:] ** 2) / M) if h_max < H else upper / 1e3
    lower = min(lower, upper * (1 - 1e-9))
    s2 = float(minimize_scalar(free_energy, bounds=(lower, upper), method="bounded").x)
    kept = s[s > np.sqrt(M * s2 * x_bar)]
    z = 1 - (L + M) * s2 / kept ** 2
    shrunk = kept / 2 * (z + np.sqrt(np.maximum(z * z - 4 * L * M * s2 * s2 / kept ** 4, 0.0)))
    return shrunk, s2


def mode_metrics(weight: np.ndarray) -> list[tuple[float, float]]:
    """CONet's per-mode metrics of a conv weight (C_out, C_in, k, k): (EVBMF rank as a fraction of the dimension,
    mapping condition = largest / smallest kept value) of the input mode (C_in x C_out k^2), then of the output
    mode (C_out x C_in k^2). A mode with nothing kept has rank 0 and MC 0."""
    w = np.asarray(weight, dtype=np.float64)
    c_out, c_in = w.shape[:2]
    out = []
    for mode in (w.transpose(1, 0, 2, 3).reshape(c_in, -1), w.reshape(c_out, -1)):
        kept, _ = evbmf(mode)
        out.append((len(kept) / min(mode.shape), float(kept[0] / kept[-1]) if len(kept) else 0.0))
    return out


def rank_and_condition(weight: np.ndarray) -> tuple[float, float]:
    """A conv's rank and mapping condition, each the mean of its input and output mode's (`mode_metrics`)."""
    (r_in, c_in), (r_out, c_out) = mode_metrics(weight)
    return float(np.mean([r_in, r_out])), float(np.mean([c_in, c_out]))
