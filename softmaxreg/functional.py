"""Public array functions: validate, allocate outputs, call a kernel."""

import numpy as np

from ._dispatch import kernels as _kernels
from ._threads import KernelThreads, ROW_WISE_WORK
from ._validation import check_float_array, check_sample_weight

__all__ = ["softmax", "log_softmax", "softmax_cross_entropy"]


def _row_wise(kernel, logits, n_jobs):
    z = check_float_array(logits, "logits", ndim=(1, 2))
    if z.shape[-1] == 0:
        raise ValueError("logits must have at least one column (class).")
    z2 = z.reshape(1, -1) if z.ndim == 1 else z
    out = np.empty_like(z2)
    kernel(z2, out, KernelThreads(n_jobs)(ROW_WISE_WORK * z2.size))
    return out.reshape(z.shape)


def _out_of_range(what, dtype, remedy):
    return ValueError(
        f"{what} beyond the range of {np.dtype(dtype).name} "
        f"(largest magnitude {np.finfo(dtype).max:.3g}); {remedy}"
    )


def softmax(logits, *, n_jobs=None):
    """Row-wise softmax, computed stably.

    ``softmax(z)_j = exp(z_j - m) / sum_i exp(z_i - m)`` with ``m = max(z)``, so
    no ``exp`` overflows, whatever the logits.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes) or (n_classes,)
        Finite real numbers. float32 stays float32; other dtypes become float64.
    n_jobs : int, default=None
        Number of OpenMP threads. None uses ``omp_get_max_threads()`` (which
        honours ``OMP_NUM_THREADS`` and threadpoolctl), -1 every CPU.

    Returns
    -------
    proba : ndarray of the same shape as ``logits``
        Non-negative rows that sum to 1.

    See Also
    --------
    log_softmax : Its logarithm, computed without taking the log of a probability.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxreg import softmax
    >>> softmax(np.array([[0.0, 0.0], [1e300, -1e300]]))
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    return _row_wise(_kernels.softmax_rows, logits, n_jobs)


def log_softmax(logits, *, n_jobs=None):
    """Row-wise log-softmax, computed stably.

    ``log_softmax(z)_j = z_j - m - log(sum_i exp(z_i - m))`` with ``m = max(z)``;
    never ``log(softmax(z))``, whose probabilities can round to zero.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes) or (n_classes,)
        Finite real numbers. float32 stays float32; other dtypes become float64.
    n_jobs : int, default=None
        Number of OpenMP threads (see :func:`softmax`).

    Returns
    -------
    log_proba : ndarray of the same shape as ``logits``
        Non-positive and finite.

    Raises
    ------
    ValueError
        If ``logits`` hold NaN or infinity, or if a row's logits differ by more than
        the dtype's range, so that a log-probability lies below it (float32 logits
        of +-2e38 in one row, say).

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxreg import log_softmax
    >>> log_softmax(np.array([[0.0, -1000.0]]))
    array([[    0., -1000.]])
    """
    out = _row_wise(_kernels.log_softmax_rows, logits, n_jobs)
    if not np.isfinite(out).all():
        raise _out_of_range(
            "logits differ so much within a row that log-probabilities lie",
            out.dtype,
            "softmax still gives the probabilities.",
        )
    return out


def softmax_cross_entropy(logits, targets, sample_weight=None, *, n_jobs=None):
    """Softmax cross-entropy of a batch of logits, and its gradient.

    For row ``i`` with logits ``z``, ``o = softmax(z)`` and non-negative targets
    ``t`` (a one-hot row for an integer label), the loss is
    ``E_i = -sum_j t_j log o_j`` and its gradient is
    ``dE_i/dz_j = o_j * sum(t) - t_j``, which is ``o_j - t_j`` for a one-hot ``t``.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes)
        Finite real numbers. float32 stays float32; other dtypes become float64.
    targets : array-like of shape (n_samples,) or (n_samples, n_classes)
        Either integer class labels in ``[0, n_classes)``, or rows of finite,
        non-negative target weights (they need not sum to 1).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each row. None means 1 for every row.
    n_jobs : int, default=None
        Number of OpenMP threads (see :func:`softmax`). The result does not
        depend on it.

    Returns
    -------
    loss : float
        ``sum_i sample_weight_i * E_i``, accumulated in float64.
    grad : ndarray of shape (n_samples, n_classes)
        ``d loss / d logits``, in the dtype of ``logits``.

    Raises
    ------
    ValueError
        If an input holds NaN or infinity, negative targets or weights, labels out of
        range or shapes that do not match; or if the loss or the gradient lies beyond
        the range of its dtype (float64 for the loss): weights and targets so large
        that their products overflow.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxreg import softmax_cross_entropy
    >>> loss, grad = softmax_cross_entropy(np.zeros((2, 2)), np.array([0, 1]))
    >>> round(loss, 6)
    1.386294
    >>> grad
    array([[-0.5,  0.5],
           [ 0.5, -0.5]])
    """
    z = check_float_array(logits, "logits", ndim=2)
    n, k = z.shape
    if k == 0:
        raise ValueError("logits must have at least one column (class).")
    sw = check_sample_weight(sample_weight, n, z.dtype, require_positive_sum=False)
    n_threads = KernelThreads(n_jobs)(ROW_WISE_WORK * z.size)
    loss = np.empty(n, dtype=np.float64)
    grad = np.empty_like(z)

    t = np.asarray(targets)
    if t.ndim == 1:
        labels = _check_labels(t, n, k)
        _kernels.cross_entropy_labels(z, labels, sw, loss, grad, n_threads)
    elif t.ndim == 2:
        t = check_float_array(t, "targets", ndim=2, dtype=z.dtype)
        if t.shape != z.shape:
            raise ValueError(
                f"targets of shape {t.shape} do not match logits of shape {z.shape}."
            )
        if (t < 0).any():
            raise ValueError("targets must be non-negative; they have negative values.")
        _kernels.cross_entropy_targets(z, t, sw, loss, grad, n_threads)
    else:
        raise ValueError(
            "targets must be 1-D integer labels or a 2-D array of target rows, "
            f"got an array of shape {t.shape}."
        )
    # numpy's pairwise sum: the same result for every thread count.
    with np.errstate(over="ignore"):
        total = float(loss.sum())
    if not (np.isfinite(total) and np.isfinite(grad).all()):
        dtype = np.float64 if not np.isfinite(total) else grad.dtype
        raise _out_of_range(
            "the loss or its gradient lies", dtype, "scale sample_weight or targets down."
        )
    return total, grad


def _check_labels(labels, n_samples, n_classes):
    """Return 1-D integer labels in [0, n_classes) as a C-contiguous intp array."""
    if labels.shape[0] != n_samples:
        raise ValueError(
            f"targets has {labels.shape[0]} labels, expected {n_samples} (one per row of logits)."
        )
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise ValueError("1-D targets are class labels and must be integers.")
    elif labels.dtype.kind not in "iu":
        raise TypeError(f"1-D targets are class labels and must be integers, got dtype {labels.dtype}.")
    if n_samples and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels must lie in [0, {n_classes}) for {n_classes} columns of logits; "
            f"got values from {labels.min()} to {labels.max()}."
        )
    return np.ascontiguousarray(labels, dtype=np.intp)
