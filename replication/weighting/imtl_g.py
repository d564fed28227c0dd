"""IMTL-G: impartial multi-task learning, gradient balance (Liu et al., "Towards Impartial Multi-task
Learning", ICLR 2021, Sec. 3.2): the update of the shared parameters is the combination ``sum_t a_t
g_t`` (``a`` on the plane ``sum_t a_t = 1``) whose projections on every task's unit gradient are equal,
so that no task's gradient dominates; the paper's closed form for ``a``.

torchjd's ``IMTLG``, which computes those weights as ``pinv(G) d / sum(pinv(G) d)`` from the gradients'
Gramian ``G`` and norms ``d`` (equal to the paper's closed form when the gradients are linearly
independent, defined when they are not: Quinton & Rey, arXiv:2406.16232). Task-specific parameters get
the plain sum's gradient, the penalty's gradient is added to every parameter. The weights noted are ``a``.
"""

from __future__ import annotations

from torchjd.aggregation import IMTLG

from replication.weighting.base import GradientWeighting


class IMTLGMethod(GradientWeighting):
    def make_aggregator(self):
        return IMTLG()


WEIGHTING = IMTLGMethod
