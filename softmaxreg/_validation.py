"""Input checks shared by the public functions and the estimator.

Each returns an array the kernels can take (C-contiguous, float32 or float64) or
raises a ``TypeError``/``ValueError`` that names the argument and the problem.
"""

import numpy as np


def check_float_array(a, name, *, ndim, dtype=None):
    """Return ``a`` as a C-contiguous, finite float32 or float64 array.

    Parameters
    ----------
    a : array-like
        The input.
    name : str
        Its name, for error messages.
    ndim : int or tuple of int
        The accepted number(s) of dimensions.
    dtype : {None, numpy.float32, numpy.float64}, default=None
        Cast to this dtype. None keeps float32 and float64, and converts any other
        real numeric dtype (ints, bools, float16) to float64.

    Returns
    -------
    out : ndarray
        ``a`` itself when it already fits; read-only inputs are not copied.
    """
    arr = np.asarray(a)
    ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in ndims:
        expected = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{name} must be {expected}, got an array of shape {arr.shape}.")
    if arr.dtype.kind not in "biuf":
        if arr.dtype.kind == "O":
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{name} must hold real numbers; {exc}") from None
        else:
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}.")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite: it contains NaN or infinity.")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if out.dtype != arr.dtype and not np.isfinite(out).all():
        raise ValueError(
            f"{name} has values beyond the range of {np.dtype(dtype).name} "
            f"(largest magnitude {np.finfo(dtype).max:.3g})."
        )
    return out


def check_sample_weight(sample_weight, n_samples, dtype, *, require_positive_sum):
    """Return ``sample_weight`` as a finite, non-negative 1-D array of ``dtype``.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,), scalar or None
        None means unit weights and is returned as an empty array, which the
        kernels read as "unweighted". A scalar is broadcast.
    n_samples : int
        The expected length.
    dtype : numpy.float32 or numpy.float64
        The output dtype.
    require_positive_sum : bool
        Raise when all weights are zero (a model fit on no data).

    Returns
    -------
    sample_weight : ndarray of shape (n_samples,) or (0,)
        Never the caller's array: the caller may scale it in place.
    """
    if sample_weight is None:
        return np.empty(0, dtype=dtype)
    sw = np.asarray(sample_weight)
    if sw.ndim == 0:
        sw = np.full(n_samples, sw)
    sw = check_float_array(sw, "sample_weight", ndim=1, dtype=dtype)
    if sw.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight has {sw.shape[0]} elements, expected {n_samples} (one per sample)."
        )
    if (sw < 0).any():
        raise ValueError("sample_weight must be non-negative; it has negative values.")
    if require_positive_sum and n_samples > 0 and not (sw > 0).any():
        raise ValueError("sample_weight is zero for every sample: there is nothing to fit.")
    return sw.copy()
