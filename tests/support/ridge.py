"""The reference a twin of target signals only must match: ridge regression of each signal on the others,
out of fold in time order."""

from __future__ import annotations

import numpy as np

PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def ridge_out_of_fold_r2(x: np.ndarray, folds: int = 5) -> np.ndarray:
    """Per column of x [n, k]: the best out-of-fold R² (over PENALTIES, penalty x rows) of a ridge
    regression on the other columns, each of `folds` consecutive blocks predicted from the others."""
    n, k = x.shape
    best = np.full(k, -np.inf)
    for penalty in PENALTIES:
        predicted = np.empty_like(x)
        for block in np.array_split(np.arange(n), folds):
            rest = np.setdiff1d(np.arange(n), block)
            mean, std = x[rest].mean(axis=0), x[rest].std(axis=0)
            scaled = (x - mean) / std
            for j in range(k):
                a = np.c_[np.delete(scaled[rest], j, axis=1), np.ones(len(rest))]
                w = np.linalg.solve(a.T @ a + penalty * len(a) * np.eye(a.shape[1]), a.T @ scaled[rest, j])
                inputs = np.c_[np.delete(scaled[block], j, axis=1), np.ones(len(block))]
                predicted[block, j] = (inputs @ w) * std[j] + mean[j]
        r2 = 1.0 - ((x - predicted) ** 2).sum(axis=0) / ((x - x.mean(axis=0)) ** 2).sum(axis=0)
        best = np.maximum(best, r2)
    return best
