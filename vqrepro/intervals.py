"""95 % intervals over seeds, and how many seeds would decide a claim at the observed spread.

A claim's verdict is decided by an interval, not by a mean: a threshold by the Student-t interval
on the mean over seeds, a comparison by the Welch interval on the difference of two means (each
row's seeds are independent runs; the rows may have different seed counts). One seed gives no
interval, so no conclusive verdict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95
#: the most seeds ``seeds_to_decide`` looks for; beyond it the answer is "more than this"
MAX_SEEDS = 1000
INTERVAL_NAMES = {"mean": "95 % Student-t interval on the mean over seeds",
                  "difference": "95 % Welch interval on the difference of the two means"}


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    kind: str  # "mean" or "difference"

    @property
    def known(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


def _t(df: float) -> float:
    return float(stats.t.ppf(0.5 + LEVEL / 2, df))


def mean_interval(mean: float, std: float, n: int) -> Interval:
    """Student-t interval on a mean of n seeds (unknown below two seeds)."""
    if n < 2 or math.isnan(std):
        return Interval(mean, math.nan, math.nan, "mean")
    half = _t(n - 1) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, "mean")


def difference_interval(mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int) -> Interval:
    """Welch interval on mean_a - mean_b (unknown unless both rows have two or more seeds)."""
    diff = mean_a - mean_b
    if n_a < 2 or n_b < 2 or math.isnan(std_a) or math.isnan(std_b):
        return Interval(diff, math.nan, math.nan, "difference")
    var_a, var_b = std_a**2 / n_a, std_b**2 / n_b
    se = math.sqrt(var_a + var_b)
    if se == 0.0:  # every seed of both rows gave the same value: the difference is exact
        return Interval(diff, diff, diff, "difference")
    df = (var_a + var_b) ** 2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
    half = _t(df) * se
    return Interval(diff, diff - half, diff + half, "difference")


def side(interval: Interval, bound: float, *, above: bool, strict: bool = True) -> bool | None:
    """True if the interval lies wholly on the claimed side of ``bound``, False if wholly on the other, else None.

    ``above``: the claim is "greater than bound" (strict) or "at least bound" (not strict). An interval
    touching the bound from the claimed side counts as clearing it only for a non-strict claim.
    """
    if not interval.known:
        return None
    low, high = interval.low, interval.high
    if above:
        if low > bound or (not strict and low >= bound):
            return True
        if high < bound or (strict and high <= bound):
            return False
        return None
    if high < bound or (not strict and high <= bound):
        return True
    if low > bound or (strict and low >= bound):
        return False
    return None


def seeds_for_mean(mean: float, std: float, bound: float) -> int | None:
    """Seeds at which the t-interval around ``mean`` (spread ``std``) would exclude ``bound``; None: no number does."""
    gap = abs(mean - bound)
    if gap == 0 or math.isnan(std):
        return None
    if std == 0:
        return 2
    for n in range(2, MAX_SEEDS + 1):
        if _t(n - 1) * std / math.sqrt(n) < gap:
            return n
    return None


def seeds_for_difference(diff: float, std_a: float, std_b: float, bound: float) -> int | None:
    """Seeds per row at which the Welch interval around ``diff`` would exclude ``bound``; None: no number does."""
    gap = abs(diff - bound)
    if gap == 0 or math.isnan(std_a) or math.isnan(std_b):
        return None
    spread = std_a**2 + std_b**2
    if spread == 0:
        return 2
    for n in range(2, MAX_SEEDS + 1):
        var = spread / n
        df = var**2 / ((std_a**2 / n) ** 2 / (n - 1) + (std_b**2 / n) ** 2 / (n - 1))
        if _t(df) * math.sqrt(var) < gap:
            return n
    return None
