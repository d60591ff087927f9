"""The penalized objective of a linear softmax model, as a function of a flat vector.

For data X (n x d), labels y, sample weights s (S = sum(s)), inverse penalty C and
parameters W (d x k, stored transposed) and b (k)::

    F(W, b) = (1/S) sum_i s_i CE(softmax(x_i W + b), y_i) + ||W||^2 / (2 C S)

This is ``LogisticRegression``'s multinomial objective,
``C sum_i s_i CE_i + ||W||^2 / 2``, divided by ``C S``: the same minimizer, on a
scale where a gradient tolerance means the same thing for any n and C. The
intercept is not penalized.

Features of very large magnitude are handled by a change of variables ``W = D V``
with ``D`` a diagonal of powers of two (exact in floating point): the solver sees
``V``, whose gradient ``D dF/dW`` is neither overflowing nor vanishing. The
objective, and so the optimum, is unchanged.
"""

import numpy as np

from ._dispatch import linear_kernels


# Features whose largest magnitude is at most 2**10 are left as they are.
_UNSCALED_EXPONENT = 10


def feature_scales(X):
    """Power-of-two scale ``D_j`` for each feature, for the change of variables ``W = D V``.

    ``D_j = 2**-e_j`` where ``2**e_j`` is the power of two nearest to
    ``max_i |X_ij|``, for features larger than ``2**10``; 1 for the others. Large
    features would otherwise give gradients that overflow, or steps so long that
    the logits do. Small features are left alone: their coefficients are held
    down by the penalty, whose curvature scaling them up would blow up. Two
    reductions over X, no temporary of its size.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    scales : ndarray of shape (n_features,), float64
    """
    max_abs = np.maximum(np.abs(X.max(axis=0)), np.abs(X.min(axis=0))).astype(np.float64)
    exponents = np.round(np.log2(np.maximum(max_abs, 1.0)))
    exponents[exponents <= _UNSCALED_EXPONENT] = 0
    return np.ldexp(1.0, -exponents.astype(int))


class LinearSoftmaxObjective:
    """Loss and gradient of the L2-penalized linear softmax model.

    The parameters are a flat float64 vector ``w``: ``V = W / D`` of shape
    (n_features, n_classes) in C order, then, with an intercept, ``b``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), C-contiguous float32 or float64
        The data; the kernels run in its dtype.
    labels : ndarray of shape (n_samples,), intp
        Class indices in ``[0, n_classes)``.
    n_classes : int
        Number of classes k.
    sample_weight : ndarray of shape (n_samples,) or (0,), dtype of X
        Non-negative weights with a positive sum; empty means unit weights.
    C : float
        Inverse of the penalty strength, as in ``LogisticRegression``.
    fit_intercept : bool
        Whether ``b`` is part of ``w`` (otherwise it is zero).
    n_threads : int
        OpenMP threads for the kernel.
    feature_scale : ndarray of shape (n_features,), default=None
        The diagonal ``D`` of the change of variables ``W = D V`` (see
        :func:`feature_scales`). None means no change.
    """

    def __init__(
        self, X, labels, n_classes, sample_weight, *, C, fit_intercept, n_threads,
        feature_scale=None,
    ):
        self.X = X
        self.labels = labels
        self.sample_weight = sample_weight
        self.n_classes = n_classes
        self.fit_intercept = fit_intercept
        self.n_threads = n_threads
        self._kernels = linear_kernels(n_classes)
        n_samples, n_features = X.shape
        weight_sum = float(sample_weight.sum()) if sample_weight.size else float(n_samples)
        self._loss_scale = 1.0 / weight_sum
        self._l2 = 1.0 / (C * weight_sum)
        self._n_coef = n_features * n_classes
        if feature_scale is None:
            feature_scale = np.ones(n_features)
        # D repeated over the classes, matching the flat C-order layout of V.
        self._scale = np.repeat(np.asarray(feature_scale, dtype=np.float64), n_classes)
        self.n_params = self._n_coef + (n_classes if fit_intercept else 0)
        # Buffers reused by every evaluation, in the dtype of X: O(d k), never O(n).
        self._coef_t = np.empty((n_features, n_classes), dtype=X.dtype)
        self._intercept = np.zeros(n_classes, dtype=X.dtype)
        self._grad_coef_t = np.empty_like(self._coef_t)
        self._grad_intercept = np.empty_like(self._intercept)

    def pack(self, coef, intercept):
        """Flat float64 parameters from ``coef`` (k, d) and ``intercept`` (k,)."""
        w = np.asarray(coef, dtype=np.float64).T.ravel() / self._scale
        if self.fit_intercept:
            w = np.concatenate([w, np.asarray(intercept, dtype=np.float64)])
        return w

    def unpack(self, w):
        """``coef`` of shape (k, d) and ``intercept`` of shape (k,), in the dtype of X."""
        coef_t = (w[: self._n_coef] * self._scale).reshape(-1, self.n_classes)
        coef = coef_t.T.astype(self.X.dtype)
        if self.fit_intercept:
            intercept = w[self._n_coef :].astype(self.X.dtype)
        else:
            intercept = np.zeros(self.n_classes, dtype=self.X.dtype)
        return coef, intercept

    def loss_gradient(self, w):
        """Objective value and gradient at ``w``, both float64.

        Where the logits overflow (only reachable by a wild line-search step), the
        value is +inf, which line searches treat as "step too long".
        """
        # Overflow (a wild line-search step) is answered with +inf below, not a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            w_coef = w[: self._n_coef] * self._scale  # W = D V
            self._coef_t.ravel()[:] = w_coef
            if self.fit_intercept:
                self._intercept[:] = w[self._n_coef :]
            # einsum, not a BLAS dot: no BLAS thread may wake up beside the kernel.
            penalty = 0.5 * self._l2 * float(np.einsum("i,i", w_coef, w_coef))
        loss = self._kernels.linear_loss_gradient(
            self.X,
            self.labels,
            self.sample_weight,
            self._coef_t,
            self._intercept,
            self._grad_coef_t,
            self._grad_intercept,
            self.n_threads,
        )
        grad = np.empty_like(w)
        with np.errstate(over="ignore", invalid="ignore"):
            value = loss * self._loss_scale + penalty
            # dF/dV = D dF/dW
            grad_coef = grad[: self._n_coef]
            np.multiply(self._grad_coef_t.ravel(), self._loss_scale, out=grad_coef)
            grad_coef += self._l2 * w_coef
            grad_coef *= self._scale
            if self.fit_intercept:
                np.multiply(self._grad_intercept, self._loss_scale, out=grad[self._n_coef :])
        if not (np.isfinite(value) and np.isfinite(grad).all()):
            return np.inf, np.zeros_like(w)
        return value, grad
