"""UPGrad: unconflicting projection of gradients (Quinton & Rey, "Jacobian Descent for Multi-Objective
Optimization", arXiv:2406.16232, 2024): each task's gradient of the shared parameters is projected onto
the dual cone of all of them (the directions that increase no task's loss, ``pi_J`` of Eq. 3), and the
projections are averaged. By Proposition 1 the projection of ``J^T u`` is ``J^T v`` with ``v`` the
solution of ``min_v v^T G v subject to v >= u`` (``G = J J^T`` the gradients' Gramian).

torchjd's ``UPGrad`` with its own projector replaced: torchjd's default solves that quadratic program
with quadprog, which is GPL-2.0+, so this module solves it exactly by enumerating its active sets (the
``2^tasks`` of them are few for recommendation data's handful of tasks), on the Gramian normalised by
its trace and regularised by ``reg_eps`` times the identity as torchjd's projector does (``norm_eps``,
``reg_eps``: torchjd's defaults). Task-specific parameters get the plain sum's gradient, the penalty's
gradient is added to every parameter. The weights noted are the effective ones; they sum to 1 when no
gradients conflict (UPGrad is then the mean of the gradients, half the plain sum's step for two tasks).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torchjd.aggregation import UPGrad
from torchjd.linalg import DualConeProjector

from replication.weighting.base import GradientWeighting


class UPGradMethod(GradientWeighting):
    defaults = {"norm_eps": 0.0001, "reg_eps": 0.0001}

    def make_aggregator(self):
        return UPGrad(projector=ActiveSetProjector(self.params["norm_eps"], self.params["reg_eps"]))


class ActiveSetProjector(DualConeProjector):
    """Proposition 1's quadratic program ``min_v v^T G v subject to v >= u``, for each row ``u`` of ``U``,
    solved exactly: the solution is the one candidate that fixes ``v_A = u_A`` on a set ``A`` of tasks,
    solves ``(G v)_F = 0`` on the others and meets the KKT conditions ``v_F >= u_F``, ``(G v)_A >= 0``
    (unique, ``G`` being positive definite once regularised). In float64 on the host."""

    def __init__(self, norm_eps: float, reg_eps: float) -> None:
        self.norm_eps, self.reg_eps = norm_eps, reg_eps

    def __call__(self, U: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        gramian = G.detach().cpu().double().numpy()
        trace = np.trace(gramian)
        gramian = (gramian / trace if trace >= self.norm_eps else np.zeros_like(gramian)) + self.reg_eps * np.eye(len(gramian))
        rows = U.detach().cpu().double().numpy().reshape(-1, len(gramian))
        solved = np.stack([self.project(u, gramian) for u in rows]).reshape(U.shape)
        return torch.as_tensor(solved, device=G.device, dtype=G.dtype)

    @staticmethod
    def project(u: np.ndarray, gramian: np.ndarray, tol: float = 1e-12) -> np.ndarray:
        m = len(u)
        scale = tol * max(1.0, np.abs(u).max()) * max(1.0, np.abs(gramian).max())
        for active in itertools.product((False, True), repeat=m):
            fixed = np.array(active)
            free = ~fixed
            v = u.copy()
            if free.any():
                v[free] = np.linalg.lstsq(gramian[np.ix_(free, free)], -gramian[np.ix_(free, fixed)] @ u[fixed],
                                          rcond=None)[0]
            if (v[free] >= u[free] - scale).all() and ((gramian @ v)[fixed] >= -scale).all():
                return v
        raise ValueError(f"UPGrad's projection found no solution for the Gramian {gramian.tolist()}")


WEIGHTING = UPGradMethod
