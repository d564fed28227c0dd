"""The verdict rule: four outcomes for a claim, computed from its per-seed differences (never by hand).

A claim's per-seed values ``d_s`` are oriented so that the claim says "positive" (model A's test
AUC minus model B's, or B's MSE minus A's, ...). Within the claim's family of ``m`` claims (fixed by
the registry, :mod:`replication.claims`), at level ``alpha``:

- **reproduced**: the mean is positive and the two-sided paired t-test is significant after Holm's
  correction over the family (adjusted p < alpha);
- **contradicted**: the paper's own effect lies above the family-wise interval (the two-sided
  ``1 - alpha/m`` t interval: Bonferroni-simultaneous over the family), so the data exclude an
  effect of the paper's size; where the paper prints no effect, a significant mean of the opposite
  sign (adjusted p < alpha, mean negative);
- **no effect (equivalent)**: Schuirmann's TOST at level ``alpha/m`` puts the mean inside
  ``(-margin, margin)`` (the ``1 - 2 alpha/m`` interval lies inside it);
- **inconclusive**: anything else, with the fewest seeds that would decide it at the observed
  variance: to detect the observed mean (a paired t-test at ``alpha/m`` with the wanted power) or,
  when the mean lies inside the margin, to show equivalence, whichever needs fewer.

They are checked in that order: a claim whose paper effect is excluded reads *contradicted* even
when the data also show equivalence (the evidence line says both). The margin is per metric
(``params.yaml``'s ``verdicts.margins``, with reasons) and never more than half the paper's own
effect: a difference smaller than half the claimed one is no replication of it.

A claim made of parts (``all_of``) holds when every part is reproduced; it is contradicted when any
part is, equivalent when any part is (and none is contradicted), inconclusive otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from replication.stats.equivalence import seeds_needed, tost

REPRODUCED, CONTRADICTED, EQUIVALENT, INCONCLUSIVE = "reproduced", "contradicted", "no effect (equivalent)", "inconclusive"
NOT_JUDGED = "not judged here"
OUTCOMES = (REPRODUCED, CONTRADICTED, EQUIVALENT, INCONCLUSIVE)


@dataclass(frozen=True)
class Settings:
    """The rule's parameters (``params.yaml``'s ``verdicts`` section gives the defaults and reasons)."""

    alpha: float = 0.05
    margins: dict[str, float] = field(default_factory=lambda: {"auc": 0.001, "mse": 0.0005, "concentration": 0.05})
    power: float = 0.8
    flag_rate: float = 0.001

    def validate(self, where: str = "verdicts") -> None:
        from replication.config import require

        require(0 < self.alpha < 1, where, "alpha", self.alpha, "must lie strictly between 0 and 1")
        require(0 < self.power < 1, where, "power", self.power, "must lie strictly between 0 and 1")
        require(0 < self.flag_rate < 1, where, "flag_rate", self.flag_rate, "must lie strictly between 0 and 1")
        for metric, margin in self.margins.items():
            require(margin > 0, where, f"margins.{metric}", margin, "must be > 0")


@dataclass(frozen=True)
class Judgement:
    """One claim's numbers and verdict (see the module docstring)."""

    verdict: str
    n: int
    mean: float
    low: float  # 95%-style two-sided 1 - alpha t interval (for reading)
    high: float
    family_low: float  # the 1 - alpha/m interval the contradiction rule uses
    family_high: float
    margin: float
    tost_pvalue: float
    seeds_needed: int | None  # for an inconclusive claim: to decide it (None: no practical number)


def t_pvalue(values: np.ndarray) -> float:
    """Two-sided one-sample t-test of mean 0 (the paired t-test of the differences)."""
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    if std == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    return float(stats.ttest_1samp(values, 0.0).pvalue)


def t_bounds(values: np.ndarray, confidence: float) -> tuple[float, float]:
    mean = float(np.mean(values))
    se = float(np.std(values, ddof=1) / np.sqrt(len(values)))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)) * se
    return mean - half, mean + half


def claim_margin(metric: str, effect: float | None, settings: Settings) -> float:
    """The equivalence margin of a claim on ``metric``: the metric's margin, at most half the
    paper's effect (module docstring)."""
    if metric not in settings.margins:
        raise ValueError(f"no equivalence margin for metric {metric!r}; add verdicts.margins.{metric} to params.yaml")
    margin = settings.margins[metric]
    return min(margin, abs(effect) / 2) if effect else margin


def judge(values: np.ndarray, p_holm: float, effect: float | None, margin: float, family_size: int,
          settings: Settings) -> Judgement:
    """The verdict on one claim from its per-seed ``values`` (at least 2), its Holm-adjusted p within
    its family of ``family_size`` claims, the paper's ``effect`` (None if not printed) and ``margin``."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"a verdict needs at least 2 finite per-seed values; got {values.tolist()}")
    alpha, m = settings.alpha, max(1, family_size)
    mean = float(values.mean())
    low, high = t_bounds(values, 1 - alpha)
    family_low, family_high = t_bounds(values, 1 - alpha / m)
    equivalence = tost(values, margin)
    significant = p_holm < alpha
    if significant and mean > 0:
        verdict = REPRODUCED
    elif (effect is not None and effect > family_high) or (effect is None and significant and mean < 0):
        verdict = CONTRADICTED
    elif equivalence.pvalue < alpha / m:
        verdict = EQUIVALENT
    else:
        verdict = INCONCLUSIVE
    needed = None
    if verdict == INCONCLUSIVE:
        std = float(values.std(ddof=1))
        if std > 0:
            # Either decision ends it: detecting the observed mean, or (inside the margin) showing
            # equivalence, whose binding one-sided test at alpha/m is a two-sided one at 2 alpha/m.
            options = [seeds_needed(mean, std, alpha / m, settings.power)]
            if abs(mean) < margin:
                options.append(seeds_needed(margin - abs(mean), std, min(0.999, 2 * alpha / m), settings.power))
            needed = min((n for n in options if n is not None), default=None)
    return Judgement(verdict, int(values.size), mean, low, high, family_low, family_high, margin,
                     equivalence.pvalue, needed)


def combine(parts: list[str]) -> str:
    """The verdict of a claim made of parts that must all hold (module docstring)."""
    if all(v == REPRODUCED for v in parts):
        return REPRODUCED
    if CONTRADICTED in parts:
        return CONTRADICTED
    if EQUIVALENT in parts:
        return EQUIVALENT
    return INCONCLUSIVE


def rule_text(settings: Settings) -> str:
    """The rule in words, with its parameters, for a report (the module docstring, shortened)."""
    margins = ", ".join(f"{metric} ±{margin:g}" for metric, margin in settings.margins.items())
    return (
        f"Rule (computed, never written by hand; `replication/verdicts.py`, parameters in `params.yaml`'s `verdicts`): "
        f"each claim is a per-seed paired difference oriented so that the claim says positive; claims are judged in "
        f"families fixed by `replication/claims.yaml`, at family-wise level {settings.alpha:g}. "
        f"**{REPRODUCED}**: positive and significant (paired t-test, Holm over the family). "
        f"**{CONTRADICTED}**: the paper's own effect lies above our family-wise (Bonferroni) interval, or, where the "
        f"paper prints no effect, significant in the opposite direction. **{EQUIVALENT}**: TOST at the family's level "
        f"puts the mean within the margin ({margins}; at most half the paper's effect). **{INCONCLUSIVE}**: anything "
        f"else, with the seeds a decision would need at power {settings.power:g}. Each verdict is also computed "
        f"without flagged runs, under per-task selection and without each seed in turn (fragile: one seed flips it)."
    )
