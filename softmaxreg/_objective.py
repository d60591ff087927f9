"""The penalized objective of a linear softmax model, as a function of a flat vector.

For data X (n x d), labels y, sample weights s (S = sum(s)), inverse penalty C and
parameters W (d x k, stored transposed) and b (k)::

    F(W, b) = (1/S) sum_i s_i CE(softmax(x_i W + b), y_i)
              + (1 - r) ||W||^2 / (2 C S) + r ||W||_1 / (C S)

with ``r`` the L1 ratio (0 by default). This is ``LogisticRegression``'s
multinomial objective, ``C sum_i s_i CE_i + (1 - r) ||W||^2 / 2 + r ||W||_1``,
divided by ``C S``: the same minimizer, on a scale where a gradient tolerance means
the same thing for any n and C. The intercept is not penalized; ``C = inf`` drops
the penalty. This class computes the smooth part (the data term and the L2 term);
the L1 term is its own room (``_penalty``), applied by the proximal solvers.

With two classes the model is ``LogisticRegression``'s binary one: class 0's
column of W and b is fixed at 0, and the parameters are class 1's column alone,
so that ``softmax([0, z])_1 = sigmoid(z)`` and the penalty is that of the binary
coefficients (not of two opposite rows, which would halve it).

Solvers see the objective through a change of variables (``_preconditioning``);
this module works in the model's own parameters.
"""

import numpy as np

from ._dispatch import linear_kernels
from ._rows import rows_of


# Rows' probabilities up to this size (or a tenth of X) are kept for Hessian products.
_PROBA_CACHE_BYTES = 16 * 2**20


def relative_gradient(value, grad):
    """``max |grad| / value``: the gradient's largest entry relative to the objective.

    The solvers stop when this is at most ``tol``. It is ``LogisticRegression``'s
    criterion (the largest gradient entry of F) divided by F: the same where the
    optimal loss is of order 1, and stricter where it is small (classes nearly
    separable, weak penalty), where the gradient of F shrinks with F and an
    absolute threshold would stop far from the optimum. It is unchanged by any
    rescaling of the objective. Infinite where the value is not finite and
    positive. The estimator applies it to the gradient in standardized
    coordinates (``_preconditioning``).
    """
    if not (np.isfinite(value) and value > 0):
        return np.inf
    return float(np.max(np.abs(grad), initial=0.0)) / value


class LinearSoftmaxObjective:
    """Loss, gradient and Hessian-vector product of the L2-penalized linear softmax model.

    The parameters are a flat float64 vector ``w``: W of shape (n_features,
    n_columns) in C order, then, with an intercept, ``b`` (n_columns). With three
    or more classes ``n_columns = n_classes``; with two, ``n_columns = 1``: class 1's
    column, class 0's being fixed at 0 (binary logistic regression).

    Parameters
    ----------
    X : ndarray, CSR matrix, or ``_rows.DenseRows`` / ``_rows.CsrRows``
        The data, of shape (n_samples, n_features), float32 or float64 (C-contiguous
        where dense); the kernels run in its dtype (``_rows``: one implementation per
        storage). A ``CsrRows`` with ``columns`` is the data on those columns only.
    labels : ndarray of shape (n_samples,), intp
        Class indices in ``[0, n_classes)``.
    n_classes : int
        Number of classes k (at least 2).
    sample_weight : ndarray of shape (n_samples,) or (0,), dtype of X
        Non-negative weights with a positive sum; empty means unit weights.
    C : float
        Inverse of the penalty strength, as in ``LogisticRegression``; ``inf``
        for no penalty.
    fit_intercept : bool
        Whether ``b`` is part of ``w`` (otherwise it is zero).
    n_threads : int or callable
        OpenMP threads for the kernels: a count, or a function of a call's work
        (rows x features x classes multiply-adds) that returns one
        (``_threads.KernelThreads``), asked at every call.
    feature_exponents : ndarray of shape (n_features,) of int, default=None
        Where X is a copy whose column j was scaled by ``2**-e_j`` (``_rescaling``), the
        exponents: the coefficient of the original column is ``W_j 2**-e_j`` and its
        penalty ``(W_j 2**-e_j)**2 / (2 C S)``, which this objective then applies.
    l1_ratio : float, default=0.0
        The elastic-net mixing ``r`` in [0, 1]: the L2 term is ``(1 - r)`` times the
        above, and ``l1_strength`` gives the L1 term's weight ``r / (C S)`` per feature
        (0 for ``C = inf``).
    weight_sum : float, default=None
        S, the sum of the weights; None computes it from ``sample_weight``. Given where
        the rows hold their labels and weights (``_dask_rows.DaskRows``, whose
        ``labels`` and ``sample_weight`` are then None).
    """

    def __init__(
        self, X, labels, n_classes, sample_weight, *, C, fit_intercept, n_threads,
        feature_exponents=None, l1_ratio=0.0, weight_sum=None,
    ):
        self.rows = rows_of(X)
        self.X = self.rows.X
        self.labels = labels
        self.sample_weight = sample_weight
        self.n_classes = n_classes
        self.fit_intercept = fit_intercept
        self.n_threads = n_threads if callable(n_threads) else (lambda work, n=n_threads: n)
        self._kernels = linear_kernels(n_classes)
        n_samples, n_features = self.rows.shape
        self._work = self.rows.work_per_class * n_classes
        self.n_columns = 1 if n_classes == 2 else n_classes
        #: The columns of the kernels' (d, k) buffers that the parameters fill.
        self._columns = slice(n_classes - self.n_columns, n_classes)
        #: The loss's curvature along one coefficient of a standardized feature at
        #: W = 0: p (1 - p) = 1/4 for the binary model, about 1/k for k classes.
        self.curvature_at_zero = 0.25 if n_classes == 2 else 1.0 / n_classes
        #: Relative rounding of the objective's value: the kernels run in X's dtype.
        self.dtype = dtype = self.rows.dtype
        self.value_resolution = 64 * float(np.finfo(dtype).eps)
        if weight_sum is None:
            weight_sum = float(sample_weight.sum()) if sample_weight.size else float(n_samples)
        #: sqrt(l2), with l2 = 1 / (C S) the penalty's curvature; 0 for C = inf. Finite
        #: and positive for every C > 0, where l2 itself may leave the float64 range
        #: (C = 1e307 over tiny features, whose coefficients are ~1e300): the penalty is
        #: computed as ||penalty_root * W||^2 / 2, always in range.
        self.penalty_root = np.sqrt(1.0 - l1_ratio) / (np.sqrt(C) * np.sqrt(weight_sum))
        self.l1_ratio = float(l1_ratio) if np.isfinite(C) else 0.0
        #: r / (C S): the L1 term's weight per unit of |W|, in the objective's scale, per
        #: feature (an array) where X was rescaled; may overflow to inf (C tiny), where
        #: the coefficients stay 0.
        with np.errstate(over="ignore"):
            root_cs = np.sqrt(C) * np.sqrt(weight_sum)
            self.l1_strength = self.l1_ratio / root_cs / root_cs if self.l1_ratio else 0.0
            if self.l1_ratio and feature_exponents is not None:
                self.l1_strength = np.ldexp(self.l1_strength, -np.asarray(feature_exponents))
        if feature_exponents is not None:
            #: One per feature where X was rescaled: sqrt(l2) 2**-e_j, at most 2**500: a
            #: coefficient under a penalty that strong is below 2**-1000 times its gradient,
            #: which the cap keeps (an infinite root would make 0 * inf).
            with np.errstate(over="ignore"):
                root = np.ldexp(self.penalty_root, -np.asarray(feature_exponents))
            self.penalty_root = np.minimum(root, 2.0**500)
        # The same, per entry of the flat coefficients (W in C order: feature-major).
        self._coef_penalty_root = np.repeat(
            np.broadcast_to(self.penalty_root, (n_features,)), self.n_columns
        ) if feature_exponents is not None else self.penalty_root
        self.n_coef = n_features * self.n_columns
        self.n_params = self.n_coef + (self.n_columns if fit_intercept else 0)
        # Buffers reused by every evaluation, in the dtype of X: O(d k), never O(n).
        # Columns outside _columns stay 0.
        self._coef_t = np.zeros((n_features, n_classes), dtype=dtype)
        self._intercept = np.zeros(n_classes, dtype=dtype)
        self._direction_coef_t = np.zeros_like(self._coef_t)
        self._direction_intercept = np.zeros_like(self._intercept)
        self._out_coef_t = np.empty_like(self._coef_t)
        self._out_intercept = np.empty_like(self._intercept)
        # Views of the parameters' columns of those buffers, for a caller that fills them
        # in its own coordinates (``_preconditioning.StandardizedObjective``): W^T
        # (d, n_columns) and b (n_columns,) of the point, and of the direction of a
        # Hessian product, and the kernels' outputs, all in the dtype of X.
        self.coef_buffer = self._coef_t[:, self._columns]
        self.intercept_buffer = self._intercept[self._columns]
        self.direction_coef_buffer = self._direction_coef_t[:, self._columns]
        self.direction_intercept_buffer = self._direction_intercept[self._columns]
        self.out_coef = self._out_coef_t[:, self._columns]
        self.out_intercept = self._out_intercept[self._columns]
        #: 1/S: the data term is the kernels' weighted sum times this.
        self.loss_scale = 1.0 / weight_sum
        # The rows' probabilities for Hessian products (allocated at the first product,
        # where small enough), and the point they are of (NaN: none yet).
        self._proba = None
        padded = self._kernels.padded_classes(n_classes, dtype.name)
        self._proba_bytes = n_samples * padded * np.dtype(dtype).itemsize
        self._proba_shape = (n_samples, padded)

    def pack(self, coef, intercept):
        """Flat float64 parameters from ``coef`` (n_columns, d) and ``intercept`` (n_columns,)."""
        w = np.asarray(coef, dtype=np.float64).T.ravel()
        if self.fit_intercept:
            w = np.concatenate([w, np.asarray(intercept, dtype=np.float64)])
        return w

    def unpack(self, w):
        """``coef`` of shape (n_columns, d) and ``intercept`` of shape (n_columns,), float64."""
        coef = w[: self.n_coef].reshape(-1, self.n_columns).T.copy()
        if self.fit_intercept:
            intercept = w[self.n_coef :].copy()
        else:
            intercept = np.zeros(self.n_columns)
        return coef, intercept

    def optimality(self, value, grad):
        """The solvers' stopping measure: ``max |grad| / value`` (see :func:`relative_gradient`)."""
        return relative_gradient(value, grad)

    def _set(self, w, coef_t, intercept):
        """Copy ``w`` into the (d, k) and (k,) kernel buffers, in the dtype of X."""
        coef_t[:, self._columns] = w[: self.n_coef].reshape(-1, self.n_columns)
        if self.fit_intercept:
            intercept[self._columns] = w[self.n_coef :]

    def data_loss_gradient(self):
        """The data term at the coefficients in the buffers: ``(1/S) sum_i s_i CE_i``
        (a float), with its gradient, times S, in ``out_coef`` (d, n_columns) and
        ``out_intercept`` (n_columns,), views of reused buffers in the dtype of X."""
        loss = self.rows.loss_gradient(
            self.n_classes, self.labels, self.sample_weight, self._coef_t, self._intercept,
            self._out_coef_t, self._out_intercept, self.n_threads(self._work),
        )
        return loss * self.loss_scale, self.out_coef, self.out_intercept

    def data_hessian_product(self):
        """The data term's Hessian at the coefficients in the buffers times the direction
        in the direction buffers, times S, into ``out_coef`` and ``out_intercept``.

        Where the rows' probabilities fit in ``_PROBA_CACHE_BYTES`` (or a tenth of X),
        they are computed once per point and every product at that point reads them
        (``_kernels.linear_hessian_product_proba``): one pass of tiles instead of two
        and no exponentials, about 40% less time per product.
        """
        n_threads = self.n_threads(self._work)
        if (self._proba is None and self.rows.keeps_probabilities
                and self._proba_bytes <= max(_PROBA_CACHE_BYTES, self.rows.nbytes // 10)):
            self._proba = np.empty(self._proba_shape, dtype=self.dtype)
            self._proba_coef_t = np.full_like(self._coef_t, np.nan)
            self._proba_intercept = np.full_like(self._intercept, np.nan)
        if self._proba is not None:
            if not (np.array_equal(self._coef_t, self._proba_coef_t)
                    and np.array_equal(self._intercept, self._proba_intercept)):
                self._kernels.linear_probabilities(
                    self.X, self._coef_t, self._intercept, self._proba, n_threads)
                self._proba_coef_t[...] = self._coef_t
                self._proba_intercept[...] = self._intercept
            self._kernels.linear_hessian_product_proba(
                self.X, self.sample_weight, self._proba,
                self._direction_coef_t, self._direction_intercept,
                self._out_coef_t, self._out_intercept, n_threads,
            )
        else:
            self.rows.hessian_product(
                self.n_classes, self.sample_weight, self._coef_t, self._intercept,
                self._direction_coef_t, self._direction_intercept,
                self._out_coef_t, self._out_intercept, n_threads,
            )
        return self.out_coef, self.out_intercept

    def _data_gradient(self):
        """The kernel's output (in the buffers ``_out_*``) divided by S: the data term's
        gradient, as a flat float64 vector."""
        grad = np.empty(self.n_params)
        grad_coef = grad[: self.n_coef].reshape(-1, self.n_columns)
        np.multiply(self._out_coef_t[:, self._columns], self.loss_scale, out=grad_coef)
        if self.fit_intercept:
            np.multiply(self._out_intercept[self._columns], self.loss_scale, out=grad[self.n_coef :])
        return grad

    def _model_gradient(self, w):
        """The kernel's output (in the buffers ``_out_*``) divided by S, plus the
        penalty's gradient ``W / (C S)`` at ``w``, as a flat float64 vector."""
        grad = self._data_gradient()
        if np.any(self.penalty_root):
            root = self._coef_penalty_root
            grad[: self.n_coef] += root * (root * w[: self.n_coef])
        return grad

    def data_gradient(self, w):
        """The gradient of the data term ``(1/S) sum_i s_i CE_i`` alone at ``w`` (float64),
        without the penalty's (``partial_fit`` keeps it for its model of a chunk)."""
        with np.errstate(over="ignore", invalid="ignore"):
            self._set(w, self._coef_t, self._intercept)
        self.data_loss_gradient()
        return self._data_gradient()

    def loss_gradient(self, w):
        """Objective value and gradient at ``w``, both float64.

        Where the logits overflow (only reachable by a wild line-search step), the
        value is +inf, which line searches treat as "step too long".
        """
        # Overflow (a wild line-search step) is answered with +inf below, not a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            self._set(w, self._coef_t, self._intercept)
            # einsum, not a BLAS dot: no BLAS thread may wake up beside the kernel.
            penalty = 0.0
            if np.any(self.penalty_root):
                root_w = self._coef_penalty_root * w[: self.n_coef]
                penalty = 0.5 * float(np.einsum("i,i", root_w, root_w))
        loss, _, _ = self.data_loss_gradient()
        with np.errstate(over="ignore", invalid="ignore"):
            value = loss + penalty
            grad = self._model_gradient(w)
        if not (np.isfinite(value) and np.isfinite(grad).all()):
            return np.inf, np.zeros_like(w)
        return value, grad

    def hessian_product(self, w, v):
        """The product of the objective's Hessian at ``w`` with a direction ``v``, float64.

        ``H v = (1/S) sum_i s_i [x_i; 1] (J_i r_i)^T + [V / (C S); 0]``, with
        ``r_i = x_i V + v_b`` the direction's logits and ``J_i`` the softmax
        Jacobian of row i (see ``_kernels.linear_hessian_product``). Without an
        intercept, ``v`` has no intercept part and neither has the result. With
        two classes, class 0's column of the direction is 0, as that of ``w``.
        """
        self._set(w, self._coef_t, self._intercept)
        self._set(v, self._direction_coef_t, self._direction_intercept)
        self.data_hessian_product()
        return self._model_gradient(v)
