"""Shared test helpers."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import logsumexp


def logistic_objective(X, y, model, C=1.0, sample_weight=None, l1_ratio=0.0):
    """LogisticRegression's objective ``C sum_i s_i CE_i + (1 - r) ||W||^2 / 2 + r ||W||_1``
    of a fitted model, in float64 (binary: the logits [0, z])."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    coef = np.asarray(model.coef_, dtype=np.float64)
    logits = X.astype(np.float64) @ coef.T + model.intercept_.astype(np.float64)
    if logits.shape[1] == 1:
        logits = np.hstack([np.zeros_like(logits), logits])
    labels = np.searchsorted(model.classes_, y)
    sw = np.ones(len(y)) if sample_weight is None else sample_weight
    ce = logsumexp(logits, axis=1) - logits[np.arange(len(y)), labels]
    penalty = (1 - l1_ratio) / 2 * np.sum(coef**2) + l1_ratio * np.abs(coef).sum()
    return C * float(sw @ ce) + penalty


@pytest.fixture(scope="session")
def objective():
    """:func:`logistic_objective`, for the tests that compare fits by their objective."""
    return logistic_objective
