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

    D_j = 1 / sqrt(sigma_j**2 + k / (C S))

In ``theta``, feature j enters the logits as ``(x_ij - mu_j) D_j``. At the start
(W = 0, every probability 1/k), the loss's curvature along ``W_jc`` is about
``sigma_j**2 / k`` and the penalty adds ``1 / (C S)``, so every coefficient's
curvature in ``theta`` is about ``1/k``, like the intercept's. The ``k / (C S)``
term keeps ``D`` bounded for features that barely vary, whose coefficients the
penalty holds down anyway.

The map is linear and invertible and X is never copied: the model (W, b), the
objective and its optimum are exactly those of ``LinearSoftmaxObjective``; only
the path of a solver changes. Solvers stop on the gradient in the model's own
coordinates (``optimality``), so ``tol`` means the same with or without it.
"""

import numpy as np

from ._dispatch import kernels
from ._objective import relative_gradient


def column_moments(X, sample_weight, n_threads):
    """Weighted mean and standard deviation of each column of X, float64.

    One parallel pass over X. Columns so large that their squares overflow are
    recomputed from the column divided by its largest magnitude, so both are
    finite wherever X is.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), C-contiguous float32 or float64
    sample_weight : ndarray of shape (n_samples,) or (0,), dtype of X
        Non-negative weights with a positive sum; empty means unit weights.
    n_threads : int

    Returns
    -------
    mean, std : ndarrays of shape (n_features,)
    """
    n_features = X.shape[1]
    mean = np.zeros(n_features)
    variance = np.zeros(n_features)
    kernels.column_moments(X, sample_weight, mean, variance, n_threads)
    std = np.sqrt(variance)
    weights = sample_weight if sample_weight.size else None
    for j in np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std))):
        column = X[:, j].astype(np.float64)
        magnitude = np.max(np.abs(column))
        column /= magnitude
        mean_j = np.average(column, weights=weights)
        mean[j] = mean_j * magnitude
        std[j] = np.sqrt(np.average((column - mean_j) ** 2, weights=weights)) * magnitude
    return mean, std


class StandardizedObjective:
    """An objective seen in the standardized coordinates ``theta`` (see the module).

    Parameters
    ----------
    objective : LinearSoftmaxObjective
        The objective in the model's coordinates ``w`` = (W in C order, b).
    n_threads : int
        OpenMP threads for the pass over X that gives the feature moments.
    """

    def __init__(self, objective, n_threads):
        self.objective = objective
        self.n_params = objective.n_params
        self._n_coef = objective.n_coef
        self._k = objective.n_classes
        self._fit_intercept = objective.fit_intercept
        mean, std = column_moments(objective.X, objective.sample_weight, n_threads)
        if not self._fit_intercept:
            # No intercept to absorb a shift: scale by the root mean square instead.
            std = np.hypot(std, mean)
            mean = np.zeros_like(mean)
        # hypot: sigma**2 may overflow where sigma does not.
        scale = 1.0 / np.hypot(std, np.sqrt(self._k * objective.l2))
        #: D, and ``mu_j D_j``: the shift of the intercept per unit of theta.
        self.scale = scale
        self.shift = mean * scale
        self._mean = mean

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
        """Solver coordinates ``theta = T^-1 w``."""
        k, n_coef = self._k, self._n_coef
        coef = w[:n_coef].reshape(-1, k)
        theta = np.empty_like(w)
        theta[:n_coef] = (coef / self.scale[:, None]).ravel()
        if self._fit_intercept:
            theta[n_coef:] = w[n_coef:] + np.einsum("j,jc->c", self._mean, coef)
        return theta

    def _pullback(self, grad):
        """``T^T grad``: a model-space gradient as a gradient in theta."""
        k, n_coef = self._k, self._n_coef
        grad_coef = grad[:n_coef].reshape(-1, k)
        out = np.empty_like(grad)
        if self._fit_intercept:
            grad_intercept = grad[n_coef:]
            out[:n_coef] = (
                self.scale[:, None] * (grad_coef - self._mean[:, None] * grad_intercept)
            ).ravel()
            out[n_coef:] = grad_intercept
        else:
            out[:n_coef] = (self.scale[:, None] * grad_coef).ravel()
        return out

    def model_gradient(self, grad_theta):
        """``T^-T grad_theta``: the gradient in the model's coordinates."""
        k, n_coef = self._k, self._n_coef
        out = np.empty_like(grad_theta)
        coef = grad_theta[:n_coef].reshape(-1, k) / self.scale[:, None]
        if self._fit_intercept:
            coef += self._mean[:, None] * grad_theta[n_coef:]
            out[n_coef:] = grad_theta[n_coef:]
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
        """
        return max(
            relative_gradient(value, grad_theta),
            relative_gradient(value, self.model_gradient(grad_theta)),
        )

    def loss_gradient(self, theta):
        """Objective value and its gradient with respect to theta."""
        value, grad = self.objective.loss_gradient(self.to_model(theta))
        return value, self._pullback(grad)

    def hessian_product(self, theta, direction):
        """``T^T H T direction``, the Hessian in theta applied to a direction."""
        return self._pullback(
            self.objective.hessian_product(self.to_model(theta), self.to_model(direction))
        )
