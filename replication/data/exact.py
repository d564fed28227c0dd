"""Dot products and correlations whose digits do not depend on the CPU.

``np.corrcoef``, ``a @ b`` and ``np.linalg.norm`` sum through BLAS, and OpenBLAS picks its kernel by CPU:
the census labels' correlation came out 34 units in the last place apart on an AVX-512 and an AVX2
machine, and with it ``schema.json`` and the DVC hash of every stage after ``prepare``. Here every
product is one IEEE multiplication (exact-rounded whatever the vector width) and every sum is
``math.fsum`` (correctly rounded), so the same inputs give the same bits on any machine.
"""

from __future__ import annotations

import math

import numpy as np


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """The correctly rounded sum of the float64 products ``a[i] * b[i]``."""
    return math.fsum((np.asarray(a, np.float64) * np.asarray(b, np.float64)).tolist())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """``a . b / (|a| |b|)``; nan where either vector is zero."""
    norms = math.sqrt(dot(a, a) * dot(b, b))
    return dot(a, b) / norms if norms > 0 else math.nan


def pearson(y: np.ndarray) -> np.ndarray:
    """The (k, k) Pearson correlation matrix of the columns of ``y`` (rows, k); nan where a column is
    constant or there are fewer than two rows."""
    y = np.asarray(y, np.float64)
    k = y.shape[1]
    matrix = np.full((k, k), np.nan)
    if len(y) < 2:
        return matrix
    centred = y - np.array([math.fsum(column.tolist()) / len(y) for column in y.T])
    for i in range(k):
        for j in range(i, k):
            matrix[i, j] = matrix[j, i] = cosine(centred[:, i], centred[:, j])
    return matrix
