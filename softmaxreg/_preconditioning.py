"""A change of variables under which every feature looks standardized to the solvers.

L-BFGS and conjugate gradients slow down when the curvature of the objective differs
by orders of magnitude between directions, as it does on raw features (pixel values
0-16 next to always-zero pixels, money amounts next to ratios) or on features with a
large mean. Instead of asking users to scale X, the solvers move in coordinates
``theta`` where the features look standardized::

    W_jc = D_j theta_jc
    b_c  = theta_b,c - sum_j mu_j D_j theta_jc

with ``mu_j`` the weighted mean of feature j (0 without an intercept, which then
could not absorb it), ``sigma_j**2`` its weighted variance about ``mu_j`` and

    D_j = 1 / sqrt(sigma_j**2 + l2 / c)    (computed as 1 / hypot(sigma_j, sqrt(l2 / c)))

with ``l2 = 1 / (C S)`` the penalty's curvature and ``c`` the loss's curvature along
a coefficient of a standardized feature at W = 0 (1/4 for two classes, about 1/k
for k). In ``theta``, feature j enters the logits as ``(x_ij - mu_j) D_j``, and
at the start every coefficient's curvature in ``theta`` is about ``c``, like the
intercept's. The ``l2 / c`` term keeps ``D`` bounded for features that barely vary,
whose coefficients the penalty holds down anyway.

A feature that does not vary at all (``sigma_j = 0``: a constant column with an
intercept, or a zero column without one) has ``D_j = 0``: its coefficients stay
exactly 0, which is their optimum (the intercept absorbs a constant; for C = inf,
the smallest of the optima), so the model equals the fit without that column, at
any C and any constant, and no large number ever cancels in the map back.

The map is linear, invertible on the other coefficients, and X is never copied:
the model (W, b), the objective and its optimum are exactly those of
``LinearSoftmaxObjective``; only the path of a solver changes. Solvers stop on the
gradient in the model's coordinates and in theta (``optimality``), so ``tol``
means the same with or without it.
"""

import math

import numpy as np
import scipy.sparse as sp

from ._dispatch import kernels, sparse_kernels
from ._solver_loops import standardized_optimality, standardized_pullback, standardized_to_model


def column_moments(X, sample_weight, n_threads):
    """Weighted mean, standard deviation and largest magnitude of each column of X, float64.

    One parallel pass over X. Columns so large that their squares overflow, or whose
    spread is so small that its squares underflow, are recomputed from the column
    divided by its largest magnitude, so both are finite and accurate wherever X is
    finite. The standard deviation is exactly 0 where the column is constant on the
    rows of positive weight; the largest magnitude is taken over those rows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), C-contiguous float32 or float64
    sample_weight : ndarray of shape (n_samples,) or (0,), dtype of X
        Non-negative weights with a positive sum; empty means unit weights.
    n_threads : int or callable
        A thread count, or a function of the work that returns one (as for
        ``LinearSoftmaxObjective``).

    Returns
    -------
    mean, std, magnitude : ndarrays of shape (n_features,)
    """
    n_features = X.shape[1]
    if sp.issparse(X):
        mean, variance, magnitude = _sparse_column_moments(X, sample_weight, n_threads)
    else:
        mean, variance, magnitude = (np.zeros(n_features) for _ in range(3))
        if callable(n_threads):
            n_threads = n_threads(X.shape[0] * X.shape[1])
        kernels.column_moments(X, sample_weight, mean, variance, magnitude, n_threads)
    std = np.sqrt(variance)
    # Non-zero columns of tiny variance, constants included (their variance is 0 exactly,
    # and stays 0 below): their squares may have underflowed.
    out_of_range = ~(np.isfinite(mean) & np.isfinite(std)) | (
        (variance < _SMALLEST_ACCURATE_SQUARE) & (magnitude > 0)
    )
    rows = sample_weight > 0 if sample_weight.size else slice(None)
    weights = sample_weight[rows].astype(np.float64) if sample_weight.size else None
    for j in np.flatnonzero(out_of_range):
        # Over the rows of positive weight: divided by the largest magnitude (so nothing
        # overflows), then shifted by the first value (so a constant gives 0 exactly).
        column = (X[:, [j]].toarray().ravel() if sp.issparse(X) else X[:, j])[rows]
        column = column.astype(np.float64) / magnitude[j]
        deviation = column - column[0]
        mean_j = np.average(deviation, weights=weights)
        mean[j] = (column[0] + mean_j) * magnitude[j]
        std[j] = np.sqrt(np.average((deviation - mean_j) ** 2, weights=weights)) * magnitude[j]
    return mean, std, magnitude


def merge_column_moments(parts):
    """The column moments of stacked blocks of rows, from each block's.

    The weighted mean and variance combine as ``mean = sum_b (S_b / S) mean_b`` and
    ``var = sum_b (S_b / S) (std_b**2 + (mean_b - mean)**2)`` (Chan, Golub & LeVeque,
    "Algorithms for computing the sample variance", 1983). Here each column is first
    divided by a power of two at least its largest magnitude, and its deviations by one
    at least their largest, so nothing overflows or underflows for any finite X; and
    the means are taken relative to the first block's, so a column that is constant in
    every block, with the same value, keeps a standard deviation of exactly 0 (as
    :func:`column_moments` gives it).

    Parameters
    ----------
    parts : sequence of (weight_sum, mean, std, magnitude)
        Per block of rows: its positive weight sum (float) and its
        :func:`column_moments` (ndarrays of shape (n_features,)). Blocks of weight 0
        are left out by the caller. At least one.

    Returns
    -------
    mean, std, magnitude : ndarrays of shape (n_features,), float64
    """
    weights = np.array([float(part[0]) for part in parts])
    means, stds, magnitudes = (np.array([part[i] for part in parts], dtype=np.float64)
                               for i in (1, 2, 3))
    fractions = (weights / weights.sum())[:, None]
    magnitude = magnitudes.max(axis=0)
    scale = np.ldexp(1.0, np.frexp(magnitude)[1])  # a power of two >= the magnitude
    means, stds = means / scale, stds / scale
    deviations = means - means[0]
    shift = (fractions * deviations).sum(axis=0)
    mean = (means[0] + shift) * scale
    spreads = np.abs(deviations - shift)
    spread = np.maximum(spreads.max(axis=0), stds.max(axis=0))
    unit = np.ldexp(1.0, np.frexp(spread)[1])  # 1 where the spread is 0
    variance = (fractions * ((stds / unit) ** 2 + (spreads / unit) ** 2)).sum(axis=0)
    std = np.sqrt(variance) * unit * scale
    return mean, std, magnitude


def _sparse_column_moments(X, sample_weight, n_threads):
    """``column_moments`` of a CSR matrix without duplicate entries: (mean, variance,
    magnitude), from the sums over its stored entries (``csr_column_sums``, one pass)
    and the implicit zeros, in O(d) memory beyond the outputs.

    As the dense kernel shifts by a row, each column is shifted by its first stored value
    on a row of positive weight, so a column that is constant there (stored in every such
    row, or never stored, or stored as zeros) has variance exactly 0.
    """
    n_rows, n_features = X.shape
    shift, sum1, sum2, stored_weight, magnitude = (np.empty(n_features) for _ in range(5))
    stored = np.empty(n_features, dtype=np.int64)
    if callable(n_threads):
        n_threads = n_threads(X.nnz + n_rows)
    sparse_kernels(2).csr_column_sums(
        X.data, X.indices, X.indptr, sample_weight, shift, sum1, sum2, stored_weight, stored,
        magnitude, n_threads)
    if sample_weight.size:
        total = float(sample_weight.sum(dtype=np.float64))
        positive_rows = np.count_nonzero(sample_weight > 0)
    else:
        total, positive_rows = float(n_rows), n_rows
    # The implicit zeros of the rows of positive weight that do not store the column.
    zeros_weight = np.where(stored < positive_rows, total - stored_weight, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        sum1 -= zeros_weight * shift
        sum2 += zeros_weight * shift * shift
        mean = shift + sum1 / total
        variance = np.maximum(sum2 / total - (sum1 / total) ** 2, 0.0)
    return mean, variance, magnitude


# Features larger than this (root mean square) enter the stopping test in the model's
# coordinates as if scaled down to it (see StandardizedObjective.optimality).
MODEL_TEST_SCALE = 1e4

# Below this, squares of deviations lose bits to underflow (float64's normal range ends
# at 2**-1022).
_SMALLEST_ACCURATE_SQUARE = 2.0**-900


class StandardizedObjective:
    """An objective seen in the standardized coordinates ``theta`` (see the module).

    Parameters
    ----------
    objective : LinearSoftmaxObjective
        The objective in the model's coordinates ``w`` = (W in C order, b).
    n_threads : int
        OpenMP threads for the pass over X that gives the feature moments.
    moments : tuple of ndarrays, default=None
        ``column_moments(objective.X, objective.sample_weight, n_threads)``, where the
        caller has it already; None computes it.
    centred : bool, default=True
        Whether the solvers move among coefficients centred over the classes (see
        :meth:`centre`), as they may for the smooth objective. False where an L1 term
        is added (``_penalty``), which is not invariant to a shift common to the
        classes: the gradient is then the exact one, and only intercepts are centred.
    """

    def __init__(self, objective, n_threads, moments=None, centred=True):
        self.objective = objective
        self.centred = centred
        self.n_params = objective.n_params
        self.value_resolution = objective.value_resolution
        self._n_coef = objective.n_coef
        self._k = objective.n_columns
        self._fit_intercept = objective.fit_intercept
        if moments is None:
            if objective.rows.shape != objective.X.shape:
                raise ValueError("the moments of a column subset must be given.")
            moments = column_moments(objective.X, objective.sample_weight, n_threads)
        mean, std, _ = moments
        if not self._fit_intercept:
            # No intercept to absorb a shift: scale by the root mean square instead.
            std = np.hypot(std, mean)
            mean = np.zeros_like(mean)
        #: Features whose coefficients move: the others do not vary and stay at 0.
        self.varying = std > 0
        scale = np.zeros_like(std)
        # hypot: sigma**2 may overflow where sigma does not.
        penalty_root = np.broadcast_to(objective.penalty_root, std.shape)
        scale[self.varying] = 1.0 / np.hypot(
            std[self.varying], penalty_root[self.varying] / np.sqrt(objective.curvature_at_zero)
        )
        #: D, and ``mu_j D_j``: the shift of the intercept per unit of theta.
        self.scale = scale
        self.shift = mean * scale
        self._mean = mean
        # Per coefficient: how much of its model-space gradient the stopping test sees.
        # The model-space gradient is the theta one times 1/D_j = hypot(sigma_j, sqrt(l2/c))
        # (plus mu_j times the intercept's): a large feature or a strong penalty amplifies
        # the rounding of the theta gradient by that much.
        inverse_scale = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale > 0)
        size = np.hypot(mean, inverse_scale) if self._fit_intercept else inverse_scale
        weight = np.minimum(1.0, MODEL_TEST_SCALE / np.maximum(size, MODEL_TEST_SCALE))
        # The same test, fused: the weighted model-space gradient of the coefficients is
        # grad_theta * (weight / D) + (weight mu) g_b, and 0 where a feature does not vary.
        self._test_inverse_scale = weight * inverse_scale
        self._test_mean = np.where(self.varying, weight * mean, 0.0)
        # The objective in theta, fused (see loss_gradient): the data term's gradient
        # pulls back as (D/S) (G_W - mu G_b), and the penalty ||root W||^2 / 2 is
        # sum_j q_j ||theta_j||^2 / 2 with q_j = (root_j D_j)^2 <= c: always in range.
        self._grad_scale = scale * objective.loss_scale
        self._grad_shift = mean * scale * objective.loss_scale
        self._penalty_curvature = (penalty_root * scale) ** 2

    def _map_threads(self):
        """OpenMP threads for the maps between theta and the model: a few passes over
        the parameters, by the kernels' rule (1 for small models)."""
        return self.objective.n_threads(4 * self.n_params)

    def loop_threads(self, n):
        """OpenMP threads for a solver's loops over its stored vectors of n parameters
        (L-BFGS: 2 x 10 of them), by the same rule as the kernels' threads."""
        return self.objective.n_threads(20 * n)

    def to_model(self, theta):
        """Model parameters ``w = T theta`` (a linear map)."""
        k, n_coef = self._k, self._n_coef
        coef_theta = theta[:n_coef].reshape(-1, k)
        w = np.empty_like(theta)
        w[:n_coef] = (coef_theta * self.scale[:, None]).ravel()
        if self._fit_intercept:
            w[n_coef:] = theta[n_coef:] - np.einsum("j,jc->c", self.shift, coef_theta)
        return w

    def to_solver(self, w):
        """Solver coordinates ``theta = T^-1 w``: the same logits, with the coefficients of
        features that do not vary moved into the intercept (they are 0 in ``theta``)."""
        k, n_coef = self._k, self._n_coef
        coef = w[:n_coef].reshape(-1, k)
        theta = np.zeros_like(w)
        varying = self.varying
        theta[:n_coef].reshape(-1, k)[varying] = coef[varying] / self.scale[varying, None]
        if self._fit_intercept:
            theta[n_coef:] = w[n_coef:] + np.einsum("j,jc->c", self._mean, coef)
        return theta

    def model_gradient(self, grad_theta):
        """``T^-T grad_theta``: the gradient in the model's coordinates, with 0 for the
        coefficients of features that do not vary (they are at their optimum)."""
        k, n_coef = self._k, self._n_coef
        out = np.empty_like(grad_theta)
        coef = np.zeros((self.scale.shape[0], k))
        varying = self.varying
        coef[varying] = grad_theta[:n_coef].reshape(-1, k)[varying] / self.scale[varying, None]
        if self._fit_intercept:
            coef[varying] += self._mean[varying, None] * grad_theta[n_coef:]
            out[n_coef:] = grad_theta[n_coef:]
        out[:n_coef] = coef.ravel()
        return out

    def solver_gradient(self, grad_w):
        """``T^T grad_w``: a gradient (or any linear form) in the model's coordinates seen
        in theta, where ``w = T theta``."""
        k, n_coef = self._k, self._n_coef
        out = np.empty_like(grad_w)
        coef = grad_w[:n_coef].reshape(-1, k) * self.scale[:, None]
        if self._fit_intercept:
            coef -= self.shift[:, None] * grad_w[n_coef:]
            out[n_coef:] = grad_w[n_coef:]
        out[:n_coef] = coef.ravel()
        return out

    def optimality(self, value, grad_theta):
        """The stopping measure: the larger of ``max |grad_w| / value`` and ``max
        |grad_theta| / value``, the gradient relative to the objective with respect to
        the model's coefficients and with respect to the standardized ones.

        The first is ``LogisticRegression``'s test (relative to F) on the features as
        given, the second about the same test had they been standardized. Each alone
        can pass far from the optimum: in the model's coordinates the gradient entry
        of a feature of scale 1e-3 is 1e-6 times that of a feature of scale 1e3 (at
        W = 0) and hides how far its coefficients are from optimal; in standardized
        coordinates, the other way round.

        A feature's gradient entry in the model's coordinates is ``1 / D_j`` (its scale,
        or the penalty's, whichever is larger) times its standardized one, so for a
        feature of scale 1e300, or under a penalty of 1e300, no float64 arithmetic could
        meet the first test. Where that factor, with the feature's mean, exceeds
        ``MODEL_TEST_SCALE`` (1e4), the entry is measured as if scaled down to it: the
        first test is ``LogisticRegression``'s wherever it can be met.
        """
        if not (math.isfinite(value) and value > 0):
            return math.inf
        largest = standardized_optimality(
            grad_theta, self._test_inverse_scale, self._test_mean, self._k, self._fit_intercept,
            self._map_threads(),
        )
        return largest / value if not math.isnan(largest) else math.inf

    def centre(self, v):
        """``v`` without its components along the directions that leave every softmax
        unchanged: a shift common to all classes of the intercepts, or of one feature's
        coefficients (several classes only).

        The loss is constant along them, so the optimum is centred (the penalty's
        gradient along them is the coefficients' class sum), and the Hessian is only the
        penalty's ``1 / (C S)`` there: 0 for C = inf, tiny for a large C, and rounding
        that leaks into them would give conjugate gradients a step of ~infinite length
        along a direction that changes nothing. Solvers therefore move in the centred
        subspace. In theta such a shift is one common to a row of theta, and these rows
        are orthogonal, so this is the orthogonal projection: each row minus its mean.
        """
        k, n_coef = self._k, self._n_coef
        if k == 1:
            return v
        v = v.copy()
        if self._fit_intercept:
            v[n_coef:] -= v[n_coef:].mean()
        if self.centred:
            rows = v[:n_coef].reshape(-1, k)
            rows -= rows.mean(axis=1, keepdims=True)
        return v

    def _set(self, theta, coef_buffer, intercept_buffer):
        """Write the model's W^T and b of ``theta`` into the kernels' buffers; return the
        penalty at ``theta``."""
        return standardized_to_model(
            theta, self.scale, self.shift, self._penalty_curvature, self._k,
            self._fit_intercept, coef_buffer, intercept_buffer, self._map_threads(),
        )

    def _pull_back(self, out_coef, out_intercept, theta, result):
        """``result`` = the kernels' gradient (or Hessian product) outputs pulled back to
        theta, plus the penalty's (at ``theta``), centred; returns its sum of squares."""
        return standardized_pullback(
            out_coef, out_intercept, theta, self._grad_scale, self._grad_shift,
            self._penalty_curvature, self.objective.loss_scale, self._fit_intercept,
            self._k > 1 and self.centred, result, self._map_threads(),
        )

    def loss_gradient(self, theta):
        """Objective value and its gradient with respect to theta (centred over the
        classes), both float64; ``(inf, zeros)`` where either is not finite (a wild
        line-search step)."""
        objective = self.objective
        penalty = self._set(theta, objective.coef_buffer, objective.intercept_buffer)
        loss, out_coef, out_intercept = objective.data_loss_gradient()
        value = loss + penalty
        grad = np.empty_like(theta)
        squares = self._pull_back(out_coef, out_intercept, theta, grad)
        if not (math.isfinite(value) and math.isfinite(squares)):
            return math.inf, np.zeros_like(theta)
        return value, grad

    def hessian_product(self, theta, direction):
        """``T^T H T direction``, the Hessian in theta applied to a direction (both
        without their components along shifts common to all classes)."""
        objective = self.objective
        direction = self.centre(direction)
        self._set(theta, objective.coef_buffer, objective.intercept_buffer)
        self._set(direction, objective.direction_coef_buffer, objective.direction_intercept_buffer)
        out_coef, out_intercept = objective.data_hessian_product()
        result = np.empty_like(theta)
        with np.errstate(over="ignore", invalid="ignore"):
            self._pull_back(out_coef, out_intercept, direction, result)
        return result
