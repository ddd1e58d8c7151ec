"""CONet's width rule on crafted metrics: expand, shrink, halve on a flip, freeze, clip, round to even."""

from poolnas.search.conet_rule import RuleSettings, WidthState, nearest_even, update

RULE = RuleSettings(delta=0.02, mu=10.0, phi=0.2, gamma=0.01, c_min=8, c_max=128)
GROWING, STALLED, ILL = (0.05, 2.0), (0.001, 2.0), (0.05, 50.0)  # (RAS, MC)


def test_a_layer_still_gaining_rank_expands_by_phi_to_an_even_width():
    s = update(WidthState(32, phi=0.2), *GROWING, RULE)
    assert (s.width, s.op, s.phi, s.frozen) == (38, 1, 0.2, False)  # 32 * 1.2 = 38.4 -> 38


def test_a_stalled_or_ill_conditioned_layer_shrinks():
    assert update(WidthState(32), *STALLED, RULE).width == 26  # 32 * 0.8 = 25.6 -> 26
    assert update(WidthState(32), *ILL, RULE).op == -1


def test_a_direction_flip_halves_the_step():
    s = update(WidthState(32), *GROWING, RULE)
    s = update(s, *STALLED, RULE)
    assert s.op == -1 and s.phi == 0.1 and s.width == nearest_even(38 * 0.9)


def test_a_flip_with_a_step_already_below_gamma_freezes_for_good():
    s = WidthState(40, op=1, phi=0.005)
    frozen = update(s, *STALLED, RULE)
    assert frozen.frozen and frozen.width == 40
    assert update(frozen, *GROWING, RULE) == frozen


def test_widths_are_clipped_and_even():
    assert update(WidthState(126), *GROWING, RULE).width == 128  # 151 clipped to c_max
    assert update(WidthState(9), *ILL, RULE).width == 8  # 9 > c_min: shrinks, clipped at c_min
    assert update(WidthState(8), *STALLED, RULE).op == 1  # at c_min a stalled layer is not shrunk further
    assert update(WidthState(200), *GROWING, RULE).op == -1  # above c_max it always shrinks
    assert all(update(WidthState(w), *m, RULE).width % 2 == 0 for w in range(8, 129) for m in (GROWING, STALLED))
