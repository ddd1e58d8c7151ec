"""EVBMF: it recovers the rank of a seeded low-rank matrix under noise, keeps (almost) nothing of pure noise, and
its noise estimate is near the truth."""

import numpy as np
import pytest

from poolnas.search.evbmf import evbmf, rank_and_condition


@pytest.mark.parametrize("shape, rank", [((64, 576), 5), ((144, 32), 3), ((32, 32), 8)])
def test_recovers_the_rank_of_low_rank_plus_noise(shape, rank):
    rng = np.random.default_rng(0)
    L, M = shape
    signal = rng.standard_normal((L, rank)) @ rng.standard_normal((rank, M))
    noise_sd = 0.1
    kept, s2 = evbmf(signal + noise_sd * rng.standard_normal(shape))
    assert len(kept) == rank
    assert s2 == pytest.approx(noise_sd ** 2, rel=0.15)


@pytest.mark.parametrize("shape", [(64, 576), (32, 32)])
def test_pure_noise_keeps_almost_nothing(shape):
    kept, _ = evbmf(np.random.default_rng(1).standard_normal(shape))
    assert len(kept) <= 1


def test_conv_metrics_rise_with_structure():
    rng = np.random.default_rng(2)
    noise = rng.standard_normal((32, 16, 3, 3))
    structured = noise * 0.05 + np.einsum("or,rikl->oikl", rng.standard_normal((32, 4)),
                                          rng.standard_normal((4, 16, 3, 3)))
    r_noise, _ = rank_and_condition(noise)
    r_struct, mc = rank_and_condition(structured)
    assert r_noise < 0.1 < r_struct and mc >= 1.0


def test_bad_shapes_get_a_clear_error():
    with pytest.raises(ValueError, match="both sides"):
        evbmf(np.ones((1, 5)))
