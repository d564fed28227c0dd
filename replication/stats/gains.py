"""How much better a model is than a reference: the PLE MTL gain, Δm, probability of improvement.

All three orient the comparison so that a positive gain (or a probability above 0.5) means the
model is better, whatever the metric's direction (AUC: higher is better; MSE: lower is better).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.stats import rankdata

from replication.stats.intervals import Interval, as_values, check_confidence, t_interval


@dataclass(frozen=True)
class Gain(Interval):
    """An MTL gain with its confidence interval (an :class:`Interval`), plus how it was made.

    ``differences`` holds the per-seed gains when paired (empty when unpaired); ``n_model`` and
    ``n_reference`` are the number of runs on each side.
    """

    differences: tuple[float, ...] = ()
    n_model: int = 0
    n_reference: int = 0


def mtl_gain(
    model_values: np.ndarray,
    reference_values: np.ndarray,
    higher_is_better: bool,
    paired: bool = True,
    confidence: float = 0.95,
) -> Gain:
    """The MTL gain of a model over a reference model (PLE, Tang et al. 2020, Eq. 11), with a CI.

    The gain is ``model - reference`` for a higher-is-better metric (AUC) and ``reference - model``
    for a lower-is-better one (MSE), so a positive gain always means the model is better.

    Paired (default): the arrays are aligned by seed (same length, same seed at each position);
    the gain is computed per seed and reported as their mean with the Student-t interval of the
    mean (see :func:`t_interval`; NaN bounds with one seed). Pairing removes the seed-to-seed
    variation the two models share (same data order, same initialisation seed).

    Unpaired: difference of the two means with a Welch interval (unequal variances,
    Welch–Satterthwaite degrees of freedom). Bounds are NaN when either side has a single run.
    """
    model = as_values(model_values, "model_values")
    reference = as_values(reference_values, "reference_values")
    confidence = check_confidence(confidence)
    sign = 1.0 if higher_is_better else -1.0
    if paired:
        if model.shape != reference.shape:
            raise ValueError(
                f"paired gains need one model value per reference value (aligned by seed); "
                f"got {model.size} model and {reference.size} reference values"
            )
        differences = sign * (model - reference)
        interval = t_interval(differences, confidence)
        return Gain(interval.estimate, interval.low, interval.high, f"paired {interval.method}",
                    tuple(float(d) for d in differences), model.size, reference.size)

    estimate = float(sign * (model.mean() - reference.mean()))
    method = f"welch-t {confidence:.0%}"
    if model.size < 2 or reference.size < 2:
        low = high = float("nan")
    else:
        var_m = model.var(ddof=1) / model.size
        var_r = reference.var(ddof=1) / reference.size
        se = float(np.sqrt(var_m + var_r))
        if se == 0.0:
            low = high = estimate
        else:
            df = (var_m + var_r) ** 2 / (var_m**2 / (model.size - 1) + var_r**2 / (reference.size - 1))
            half = float(stats.t.ppf(0.5 + confidence / 2, df=df) * se)
            low, high = estimate - half, estimate + half
    return Gain(estimate, low, high, method, (), model.size, reference.size)


def delta_m(
    model_means: Mapping[str, float],
    reference_means: Mapping[str, float],
    higher_is_better: Mapping[str, bool],
) -> float:
    """Average relative multi-task gain Δm (Maninis et al. 2019), as a fraction.

    ``Δm = (1/T) Σ_t (-1)^{l_t} (M_model,t - M_ref,t) / M_ref,t`` with ``l_t = 1`` when lower is
    better for task ``t`` (MSE) and 0 otherwise (AUC), so a positive Δm means the model is better
    on average. Returned as a fraction: multiply by 100 for the percentage usually printed.

    ``model_means`` and ``reference_means`` must have the same tasks; ``higher_is_better`` must
    cover them (extra entries are ignored). The relative change assumes positive-valued metrics
    (AUC, MSE): a reference value that is zero or negative is a ValueError, since dividing by it
    would be undefined or flip the direction.
    """
    tasks = list(model_means)
    if not tasks:
        raise ValueError("delta_m needs at least one task")
    if set(tasks) != set(reference_means):
        raise ValueError(
            f"model and reference must have the same tasks; got {sorted(model_means)} and {sorted(reference_means)}"
        )
    missing = sorted(set(tasks) - set(higher_is_better))
    if missing:
        raise ValueError(f"higher_is_better has no direction for tasks {missing}")
    terms = []
    for task in tasks:
        model, reference = float(model_means[task]), float(reference_means[task])
        if not (np.isfinite(model) and np.isfinite(reference)):
            raise ValueError(f"task {task!r}: values must be finite; got model {model}, reference {reference}")
        if reference <= 0.0:
            raise ValueError(
                f"task {task!r}: the reference value must be positive for a relative change; got {reference}"
            )
        sign = 1.0 if higher_is_better[task] else -1.0
        terms.append(sign * (model - reference) / reference)
    return float(np.mean(terms))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """Probability that a run of X beats a run of Y (Agarwal et al. 2021, rliable).

    For one task: ``P(X > Y) + 0.5 P(X = Y)`` over all ``n·m`` pairs of runs, i.e. the Mann–Whitney
    ``U`` statistic divided by ``n·m`` (computed from mid-ranks, O((n+m) log(n+m))). For a matrix of
    shape ``(runs, tasks)`` it is the mean over tasks of the per-task values, as in rliable; X and Y
    may have different numbers of runs but must have the same tasks. 1-D inputs are one task.

    Values must be oriented so that larger is better (negate an MSE before calling). 0.5 means no
    difference; 1 means every run of X beats every run of Y.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != b.ndim or a.ndim not in (1, 2):
        raise ValueError(
            f"x and y must both be 1-D (runs) or both 2-D (runs, tasks); got shapes {a.shape} and {b.shape}"
        )
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must have the same number of tasks (columns); got {a.shape[1]} and {b.shape[1]}")
    if a.shape[0] == 0 or b.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"x and y need at least one run and one task; got shapes {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("x and y must not contain NaN or infinite values")
    n, m = a.shape[0], b.shape[0]
    ranks = rankdata(np.concatenate([a, b], axis=0), axis=0)
    u = ranks[:n].sum(axis=0) - n * (n + 1) / 2
    return float(np.mean(u / (n * m)))
