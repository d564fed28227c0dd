"""Statistics for comparing models over seeds and rows: small pure functions over NumPy arrays.

Reads arrays, never files; never trains and never imports torch. Anything random takes an
explicit ``random_state`` (an int seed or a ``numpy.random.Generator``), so results reproduce.

- :mod:`~replication.stats.intervals`: Student-t and percentile-bootstrap intervals of a mean.
- :mod:`~replication.stats.gains`: PLE MTL gain (Eq. 11) with a CI, Δm (Maninis et al. 2019),
  probability of improvement (Agarwal et al. 2021, rliable).
- :mod:`~replication.stats.paired`: paired t-test and Wilcoxon signed-rank test over seeds.
- :mod:`~replication.stats.delong`: DeLong's test for two correlated AUCs (fast, Sun & Xu 2014).
- :mod:`~replication.stats.multiple`: Holm's step-down adjustment (Holm 1979).
"""

from replication.stats.delong import DeLongResult, delong_covariance, delong_test, delong_variance
from replication.stats.gains import Gain, delta_m, mtl_gain, probability_of_improvement
from replication.stats.intervals import Interval, bootstrap_interval, t_interval
from replication.stats.multiple import holm
from replication.stats.paired import PairedResult, paired_tests, wilcoxon_min_pvalue

__all__ = [
    "DeLongResult", "Gain", "Interval", "PairedResult",
    "bootstrap_interval", "delong_covariance", "delong_test", "delong_variance", "delta_m", "holm",
    "mtl_gain", "paired_tests", "probability_of_improvement", "t_interval", "wilcoxon_min_pvalue",
]
