"""CONet's width update (Hosseini et al. 2021, as summarised in shared/spec/extensions.md): pure logic, no torch.

Each width variable (one per residual stream or inner conv width) keeps a state: its width c, the last direction
op (+1 expand, -1 shrink, 0 before the first trial), the step phi and whether it is frozen. After a trial, with
the variable's rank average slope RAS and mapping condition MC:

    shrink  if ((RAS < delta or MC >= mu) and c > c_min) or c > c_max; otherwise expand
    flip    when the direction differs from the last one: freeze if phi had already fallen below gamma, else halve phi
    update  c <- the even integer nearest c * (1 + phi * op), clipped to [c_min, c_max] (a frozen c stays)

This is the rule only; the trials that feed it are `search.conet`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from poolnas.records import nearest_even


@dataclass(frozen=True)
class RuleSettings:
    delta: float = 0.02  # RAS below this: the layer has stopped gaining rank (tune for ResNet20 and our schedules)
    mu: float = 10.0  # MC at or above this: the mapping is ill-conditioned
    phi: float = 0.2  # the first step, as a fraction of the width
    gamma: float = 0.01  # a step below this at a direction flip freezes the variable
    c_min: int = 8
    c_max: int = 256


@dataclass(frozen=True)
class WidthState:
    width: int
    op: int = 0
    phi: float = RuleSettings.phi
    frozen: bool = False


def update(state: WidthState, ras: float, mc: float, rule: RuleSettings = RuleSettings()) -> WidthState:
    """The state after one trial whose metrics for this variable were `ras` and `mc`."""
    if state.frozen:
        return state
    c = state.width
    shrink = ((ras < rule.delta or mc >= rule.mu) and c > rule.c_min) or c > rule.c_max
    op, phi = (-1 if shrink else 1), state.phi
    if state.op and op != state.op:
        if phi < rule.gamma:
            return replace(state, frozen=True)
        phi = phi / 2
    width = min(max(nearest_even(c * (1 + phi * op)), rule.c_min), rule.c_max)
    return WidthState(width=width, op=op, phi=phi)
