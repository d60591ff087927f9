"""The rows of X, by storage: one class per storage, the same methods for each.

``LinearSoftmaxObjective`` and the estimator see X only through these: the fused
loss+gradient, the Hessian-vector product and the logits of the linear model over
all rows, and the size of X. ``DenseRows`` runs the dense kernels (``_kernels``,
picked by ``_dispatch``), ``CsrRows`` the CSR ones (``_sparse_kernels``). X is never
copied or densified here.
"""

import numpy as np
import scipy.sparse as sp

from ._dispatch import linear_kernels, sparse_kernels


class DenseRows:
    """A C-contiguous float32 or float64 ndarray of shape (n_samples, n_features)."""

    #: Whether Hessian products can read the rows' probabilities computed once per point
    #: (``_kernels.linear_probabilities``).
    keeps_probabilities = True
    #: Whether the rows are in this process's memory (the serial SAG solver needs them).
    in_memory = True

    def __init__(self, X):
        self.X = X
        self.shape = X.shape
        self.dtype = X.dtype
        self.nbytes = X.nbytes
        #: Multiply-adds of a pass over the rows, per class (``_threads.KernelThreads``).
        self.work_per_class = X.shape[0] * (X.shape[1] + 1)

    def loss_gradient(self, n_classes, labels, sample_weight, coef_t, intercept,
                      grad_coef_t, grad_intercept, n_threads):
        return linear_kernels(n_classes).linear_loss_gradient(
            self.X, labels, sample_weight, coef_t, intercept, grad_coef_t, grad_intercept,
            n_threads)

    def hessian_product(self, n_classes, sample_weight, coef_t, intercept, direction_coef_t,
                        direction_intercept, out_coef_t, out_intercept, n_threads):
        linear_kernels(n_classes).linear_hessian_product(
            self.X, sample_weight, coef_t, intercept, direction_coef_t, direction_intercept,
            out_coef_t, out_intercept, n_threads)

    def logits(self, coef_t, intercept, out, n_threads):
        linear_kernels(coef_t.shape[1]).linear_logits(self.X, coef_t, intercept, out, n_threads)


class CsrRows:
    """A SciPy CSR matrix or array, float32 or float64, int32 or int64 indices.

    With ``columns`` (sorted indices of X's columns, among them every column that
    stores an entry), the rows are those of ``X[:, columns]``, of shape
    (n_samples, len(columns)), without that copy: the kernels read X's column j as
    coefficient row ``column_map[j]``. The kernels' per-thread accumulators live in a
    workspace kept from call to call (see ``_sparse_kernels``).
    """

    keeps_probabilities = False
    in_memory = True

    def __init__(self, X, columns=None):
        self.X = X
        self.dtype = X.dtype
        self.columns = columns
        if columns is None:
            self.column_map = np.empty(0, dtype=X.indices.dtype)
            self.shape = X.shape
        else:
            self.column_map = np.zeros(X.shape[1], dtype=X.indices.dtype)
            self.column_map[columns] = np.arange(len(columns), dtype=X.indices.dtype)
            self.shape = (X.shape[0], len(columns))
        self._arrays = (X.data, X.indices, X.indptr, self.column_map)
        self.nbytes = sum(a.nbytes for a in self._arrays[:3])
        self.work_per_class = X.nnz + X.shape[0]
        self._workspace = np.empty(0, dtype=X.dtype)

    def workspace(self, n_coef_rows, n_classes, n_threads):
        """The kernels' workspace for ``n_threads``, grown where it is too small."""
        size = sparse_kernels(n_classes).csr_workspace_size(
            n_coef_rows, n_classes, n_threads, self.dtype.name)
        if self._workspace.shape[0] < size:
            self._workspace = np.empty(size, dtype=self.dtype)
        return self._workspace

    def loss_gradient(self, n_classes, labels, sample_weight, coef_t, intercept,
                      grad_coef_t, grad_intercept, n_threads):
        return sparse_kernels(n_classes).csr_linear_loss_gradient(
            *self._arrays, labels, sample_weight, coef_t, intercept, grad_coef_t,
            grad_intercept, self.workspace(*coef_t.shape, n_threads), n_threads)

    def hessian_product(self, n_classes, sample_weight, coef_t, intercept, direction_coef_t,
                        direction_intercept, out_coef_t, out_intercept, n_threads):
        sparse_kernels(n_classes).csr_linear_hessian_product(
            *self._arrays, sample_weight, coef_t, intercept, direction_coef_t,
            direction_intercept, out_coef_t, out_intercept,
            self.workspace(*coef_t.shape, n_threads), n_threads)

    def logits(self, coef_t, intercept, out, n_threads):
        sparse_kernels(coef_t.shape[1]).csr_linear_logits(
            *self._arrays, coef_t, intercept, out, n_threads)


def rows_of(X):
    """``CsrRows`` for a SciPy CSR matrix or array, ``DenseRows`` for an ndarray, and X
    itself where it is a storage already (these, or ``_dask_rows.DaskRows``: any object
    with the storages' ``in_memory`` flag)."""
    if hasattr(X, "in_memory"):
        return X
    if sp.issparse(X):
        if X.format != "csr":
            raise TypeError(f"sparse X must be CSR here, got {X.format!r}.")
        return CsrRows(X)
    return DenseRows(np.asarray(X))
