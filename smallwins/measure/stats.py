"""The few statistics the report needs, written out (they are short) rather than pulled from scipy.

- Wilson score interval for a proportion (good at small counts and near 0 or 1).
- Newcombe's hybrid score interval for a difference of two proportions (method 10 in
  Newcombe 1998), built from the two Wilson intervals: the lift's interval.
- Sample size per group to detect a given absolute lift with unequal allocation (Fleiss).
- Kaplan-Meier survival for streaks, where a streak still running at the end is censored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist


def z_for(confidence: float) -> float:
    """The two-sided normal quantile: 1.96 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class Proportion:
    """``k`` of ``n`` with its Wilson interval at ``confidence``."""

    k: int
    n: int
    low: float
    high: float
    confidence: float = 0.95

    @property
    def rate(self) -> float | None:
        return self.k / self.n if self.n else None

    def text(self) -> str:
        if not self.n:
            return "n/a (0 members)"
        return f"{self.rate:.1%} ({self.k}/{self.n}; {self.low:.1%} to {self.high:.1%})"


def wilson(k: int, n: int, confidence: float = 0.95) -> Proportion:
    """The Wilson score interval; (0, 1) when there is nothing to go on."""
    if k < 0 or n < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Proportion(0, 0, 0.0, 1.0, confidence)
    z = z_for(confidence)
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Proportion(k, n, max(0.0, centre - half), min(1.0, centre + half), confidence)


@dataclass(frozen=True)
class Difference:
    """``first.rate - second.rate`` with Newcombe's interval (None when either group is empty)."""

    first: Proportion
    second: Proportion
    estimate: float | None
    low: float | None
    high: float | None

    def text(self) -> str:
        if self.estimate is None or self.low is None or self.high is None:
            return "n/a"
        return f"{self.estimate:+.1%} ({self.low:+.1%} to {self.high:+.1%})"

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def newcombe(first: Proportion, second: Proportion) -> Difference:
    """Newcombe's hybrid score interval for ``p1 - p2`` from the two Wilson intervals."""
    if not first.n or not second.n or first.rate is None or second.rate is None:
        return Difference(first, second, None, None, None)
    p1, p2 = first.rate, second.rate
    below = math.sqrt((p1 - first.low) ** 2 + (second.high - p2) ** 2)
    above = math.sqrt((first.high - p1) ** 2 + (p2 - second.low) ** 2)
    return Difference(first, second, p1 - p2, p1 - p2 - below, p1 - p2 + above)


@dataclass(frozen=True)
class SampleSize:
    """Members needed in each group to detect ``lift`` over ``baseline``."""

    treatment: int
    holdout: int

    @property
    def total(self) -> int:
        return self.treatment + self.holdout


def sample_size(
    baseline: float, lift: float, *, holdout_share: float, confidence: float = 0.95, power: float = 0.8
) -> SampleSize:
    """Per-group sizes for a two-sided test of two proportions (normal approximation, Fleiss),
    with treatment:holdout = (1 - share):share."""
    if not 0 < holdout_share < 1:
        raise ValueError("holdout_share must be between 0 and 1")
    treated = min(baseline + lift, 0.999)
    delta = treated - baseline
    if delta <= 0:
        raise ValueError("the lift must leave the treated rate above the baseline and below 1")
    ratio = (1 - holdout_share) / holdout_share  # treatment members per holdout member
    pooled = (ratio * treated + baseline) / (1 + ratio)
    z_alpha, z_beta = z_for(confidence), NormalDist().inv_cdf(power)
    root = z_alpha * math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio)) + z_beta * math.sqrt(
        baseline * (1 - baseline) + treated * (1 - treated) / ratio
    )
    holdout = math.ceil(root * root / (delta * delta))
    return SampleSize(treatment=math.ceil(holdout * ratio), holdout=holdout)


def kaplan_meier(ended: Mapping[int, int], censored: Mapping[int, int], longest: int) -> list[float]:
    """``S(d)`` for d = 1..longest: the share of streaks lasting at least d days.

    ``ended[l]`` streaks lasted exactly l days and were then broken (the next day was seen, with
    no activity); ``censored[c]`` were still alive after c days when observation stopped. A
    streak censored at c counts at risk up to the step c -> c+1 but not for it.
    """
    survival, current = [], 1.0
    for length in range(1, longest + 1):
        survival.append(current)
        at_risk = sum(n for e, n in ended.items() if e >= length) + sum(n for c, n in censored.items() if c > length)
        broken = ended.get(length, 0)
        if at_risk:
            current *= 1 - broken / at_risk
    return survival
