"""The stochastic average gradient solver (SAG): epochs of ``_sag.sag_epoch``.

SAG (Schmidt, Le Roux & Bach, Math. Program. 2017; Le Roux, Schmidt & Bach, NIPS
2012) visits one row at a time and moves along the average of every row's last
gradient. Each epoch costs one pass over the entries of X, serial, whatever the
number of features; it converges linearly, fastest where rows are many and
normalized (TF-IDF text). It runs in the model's coordinates (centring the features
would make sparse rows dense); after every epoch the objective and the stopping
measure are computed exactly, in the solvers' standardized coordinates, as for the
other solvers, so "converged" means the same for all of them.

Each step visits a row drawn uniformly at random, with replacement, from a fixed
seed: a fit is reproducible. (Drawn without replacement, in a new permutation every
epoch, SAG oscillated without converging on raw iris and on TF-IDF text.) The step is
``1 / L``, with ``L`` the largest curvature of a row's loss, ``max_i weight_i
(||x_i||^2 + 1) / 2`` (``/ 4`` for the binary model), plus the penalty's
(scikit-learn's ``sag`` takes ``0.25 (max_i ||x_i||^2 + 1)``); the intercepts' is 10
times smaller on normalized sparse rows (``SPARSE_INTERCEPT_DECAY``).
"""

import math

import numpy as np

from ._dispatch import sag_loops
from ._rows import CsrRows

# The seed of the rows' draws (every fit visits them in the same order).
SEED = 0
# The intercepts' step on normalized sparse rows (those "auto" runs SAG on), relative to
# the coefficients' (as scikit-learn's SPARSE_INTERCEPT_DECAY, from Bottou's SGD, 0.01
# there): every row moves them, a sparse feature only a few, and at the full step they
# oscillate. On the Debian corpus the gap after 8 epochs fell from 1.9e-3 to 1.6e-4 with
# 0.1 (1.3e-4 with 0.01). Elsewhere, where the rows are long and the intercepts carry
# much of the model (scikit-learn's estimator checks), a smaller step slowed them by
# orders of magnitude: there it is 1. The optimum is the same.
SPARSE_INTERCEPT_DECAY = 0.1
# Every this many epochs, SAG's running sums are recomputed from its memory.
_RESUM_EPOCHS = 10


def _arrays(rows):
    """(data, indices, indptr, column_map, n_features) of the rows for ``_sag``."""
    if isinstance(rows, CsrRows):
        X = rows.X
        return X.data, X.indices, X.indptr, rows.column_map, rows.shape[1]
    empty = np.empty(0, dtype=np.int64)
    return rows.X.reshape(-1), empty, empty, empty, rows.shape[1]


def penalty_curvature(objective):
    """The penalty's curvature alpha = 1 / (C S), or None where it differs by feature
    (columns of extreme magnitude were rescaled: ``_rescaling``) or lies beyond the
    float64 range (C below about 1e-300 / S)."""
    root = np.asarray(objective.penalty_root, dtype=np.float64)
    if root.ndim:
        return None
    with np.errstate(over="ignore"):
        alpha = float(root * root)
    return alpha if np.isfinite(alpha) else None


# solver="auto" runs SAG on sparse X where the rows' largest curvature times C (times
# the mean sample weight) is at most this: normalized rows, as TF-IDF's. There SAG
# reached a given gap sooner than L-BFGS (the Debian corpus: C L = 1); on hashed and
# one-hot rows (C L of 10 to 12) it was 4 to 10 times slower (benchmarks/bench_sparse.py).
AUTO_MAX_CONDITION = 2.0


def _plan(model, alpha):
    """SAG's setup on ``model`` (a ``LinearSoftmaxObjective``), computed once per objective
    (the auto rule and the solver both need it): the rows it visits (positive weight),
    every row's weight scaled to mean 1 over them, the step ``1 / (L + alpha)``, with L
    the largest curvature of a row's loss (see the module), and ``L / (n alpha)``, n the
    rows visited: C L times the mean sample weight."""
    plan = getattr(model, "_sag_plan", None)
    if plan is not None:
        return plan
    sw, n_rows = model.sample_weight, model.rows.shape[0]
    visited = np.flatnonzero(sw > 0) if sw.size else np.arange(n_rows)
    weight = np.zeros(n_rows)
    if sw.size:
        weight[visited] = sw[visited] * (visited.shape[0] / float(sw.sum(dtype=np.float64)))
    else:
        weight[:] = 1.0
    data, _, indptr, _, n_features = _arrays(model.rows)
    squares = np.empty(n_rows)
    sag_loops(model.n_classes).row_squared_norms(data, indptr, n_rows, n_features, squares)
    curvature = 0.25 if model.n_columns == 1 else 0.5
    lipschitz = curvature * float(np.max(weight[visited] * (squares[visited] + model.fit_intercept)))
    condition = lipschitz / (visited.shape[0] * alpha) if alpha > 0 else np.inf
    model._sag_plan = plan = (visited, weight, 1.0 / (lipschitz + alpha), condition)
    return plan


def sag_suits(model):
    """Whether ``solver="auto"`` runs SAG on ``model`` (a ``LinearSoftmaxObjective``): CSR
    rows, one finite penalty for every feature, and ``C L <= AUTO_MAX_CONDITION`` (in
    the objective's terms ``L / (n alpha)``, n the rows of positive weight)."""
    alpha = penalty_curvature(model)
    if not isinstance(model.rows, CsrRows) or not alpha:
        return False
    return _plan(model, alpha)[3] <= AUTO_MAX_CONDITION


def sag(objective, w0, *, tol, max_iter, verbose=0, warm_start=False):
    """Minimize by SAG, one iteration per epoch, from ``w0`` (in ``objective``'s
    standardized coordinates).

    Parameters
    ----------
    objective : _preconditioning.StandardizedObjective
        Its ``objective`` (``LinearSoftmaxObjective``) gives the rows, the labels, the
        weights and the penalty, which must be the same for every feature.
    w0 : ndarray of float64
        The start; SAG's memory of the rows' gradients starts empty.
    tol, max_iter, verbose, warm_start
        As for the other solvers (``_solvers``); ``max_iter`` counts epochs.

    Returns
    -------
    result : _solvers.SolverResult
        The best iterate of the epochs (SAG's objective need not decrease every epoch,
        so a larger ``max_iter`` never gives a worse model).
    """
    from ._solvers import SolverResult, _report

    model = objective.objective
    _sag = sag_loops(model.n_classes)
    alpha = penalty_curvature(model)
    if alpha is None:
        raise ValueError("solver='sag' needs the same penalty for every feature.")
    data, indices, indptr, column_map, n_features = _arrays(model.rows)
    n_rows = model.rows.shape[0]
    m, offset = model.n_columns, model.n_classes - model.n_columns
    visited, weight, step, condition = _plan(model, alpha)
    normalized = condition <= AUTO_MAX_CONDITION
    decay = SPARSE_INTERCEPT_DECAY if isinstance(model.rows, CsrRows) and normalized else 1.0

    coef, intercept = model.unpack(objective.to_model(np.asarray(w0, dtype=np.float64)))
    # V and the running sums side by side, row j of each in one stretch of memory: a step
    # reads and writes both rows of every feature of its row.
    d = coef.shape[1]
    both = np.zeros((d, 2 * m))
    V = both[:, :m]  # (the running sums are both[:, m:])
    V[:] = coef.T
    b = intercept.copy()
    sum_grad_b = np.zeros(m)
    memory = np.zeros((n_rows, m))
    seen = np.zeros(n_rows, dtype=np.uint8)
    state = np.array([1.0, 0.0])
    feature_hist = np.zeros(d, dtype=np.int64)
    cumsum = np.empty(visited.shape[0] + 1)
    scratch = np.empty(2 * (m + offset))
    rng = np.random.default_rng(SEED)

    def point():
        w = model.pack(V.T, b)
        return objective.centre(objective.to_solver(w))

    best = np.asarray(w0, dtype=np.float64)
    best_value, grad = objective.loss_gradient(best)
    optimality = objective.optimality(best_value, grad)
    if verbose > 0:
        _report("sag", 0, best_value, optimality, f"  (step {step:.3g})")
    if optimality <= tol:
        return SolverResult(w=best, objective=float(best_value), n_iter=0, converged=True,
                            message="gradient below tol")
    for epoch in range(1, max_iter + 1):
        _sag.sag_epoch(data, indices, indptr, column_map, n_features,
                       visited[rng.integers(0, visited.shape[0], visited.shape[0])],
                       model.labels, weight, offset,
                       model.fit_intercept, step, step * decay, alpha, both, b, sum_grad_b, memory,
                       seen, state, feature_hist, cumsum, scratch)
        if epoch % _RESUM_EPOCHS == 0:
            # The running sums drift by their rounding: recomputed from the memory.
            _sag.sum_gradient(data, indices, indptr, column_map, n_features, visited, memory,
                              both, sum_grad_b)
        if not model.fit_intercept:
            b[:] = 0.0
        w = point()
        value, grad = objective.loss_gradient(w)
        optimality = objective.optimality(value, grad)
        if verbose > 0:
            _report("sag", epoch, value, optimality)
        if value < best_value or not math.isfinite(best_value):
            best, best_value = w, value
        if optimality <= tol:
            return SolverResult(w=w, objective=float(value), n_iter=epoch, converged=True,
                                message="gradient below tol")
        if not math.isfinite(value):
            return SolverResult(w=best, objective=float(best_value), n_iter=epoch,
                                converged=False, message="the objective left the float64 range")
    return SolverResult(w=best, objective=float(best_value), n_iter=max_iter, converged=False,
                        message="reached max_iter", reached_max_iter=True)
