"""Exact power-of-two rescalings that keep every sum of a fit or a prediction in range.

Multiplying by a power of two is exact (short of underflow), so each rescaling here
changes no digit of the problem, only where its numbers sit in the floating-point
range:

* sample weights: scaling every weight by ``c`` is the same problem as ``C`` times
  ``c``, so the weights are scaled to a largest weight in [1/2, 1) and ``C`` the
  other way (weights of 1e307 no longer overflow their sum);
* features whose values are so large that a sum of n of them could overflow (the
  gradient ``sum_i x_ij g_ic``), or so small that their products reach the subnormal
  range, are fitted on a copy scaled to magnitudes below 1, and their coefficients
  scaled back;
* logits of a fitted model that overflow (for inputs far beyond the training data)
  are recomputed from the row and the coefficients scaled to magnitudes below 1,
  which keeps their order and their differences.
"""

import numpy as np
import scipy.sparse as sp


def power_of_two_below(values):
    """The exponent e with ``max|values| * 2**-e`` in [1/2, 1) (0 for all-zero values)."""
    largest = float(np.max(np.abs(values), initial=0.0))
    return int(np.frexp(largest)[1]) if largest > 0 else 0


def normalize_weights(weights, C):
    """Scale ``weights`` by a power of two to a largest weight in [1/2, 1), and ``C`` the
    other way, which leaves the model unchanged.

    Parameters
    ----------
    weights : ndarray of shape (n,), float64
        Non-negative, finite. Empty means unit weights and is returned as it is.
    C : float
        Inverse of the penalty strength (``inf`` stays ``inf``; a product beyond the
        float64 range is ``inf``: the penalty is then below anything the data can feel;
        one below it is the smallest positive float).

    Returns
    -------
    weights, C : ndarray, float
    """
    if weights.size == 0:
        return weights, C
    exponent = power_of_two_below(weights)
    with np.errstate(over="ignore", under="ignore"):
        scaled_C = float(np.ldexp(C, exponent))
    # A C that underflows to 0 is held at the smallest positive float: its coefficients
    # (about C S times their gradient) round to 0 either way, and C stays positive.
    return np.ldexp(weights, -exponent), max(scaled_C, float(np.finfo(np.float64).smallest_subnormal))


def extreme_exponents(magnitude, n_samples, dtype):
    """Which columns to scale, and by which power of two (see :func:`scale_extreme_columns`).

    A column is too large when ``n_samples`` of its values could overflow a sum in
    ``dtype`` (largest magnitude above ``finfo.max / (4 n_samples)``), and too small when
    its products with coefficients and gradients would reach the subnormal range, where
    bits are lost (largest magnitude below ``finfo.tiny * 2**(2 * nmant)``: about 1e-276
    in float64, 8e-25 in float32).

    Parameters
    ----------
    magnitude : ndarray of shape (n_features,)
        The largest magnitude of each column (``column_moments``).
    n_samples : int
    dtype : numpy.float32 or numpy.float64

    Returns
    -------
    exponents : ndarray of shape (n_features,) of int, or None
        Column j is to be scaled by ``2**-exponents[j]`` (to magnitudes in [1/2, 1));
        None where no column is extreme.
    """
    info = np.finfo(dtype)
    high = float(info.max) / (4 * max(n_samples, 1))
    low = float(info.tiny) * 2.0 ** (2 * info.nmant)
    extreme = (magnitude > high) | ((magnitude < low) & (magnitude > 0))
    if not extreme.any():
        return None
    return np.where(extreme, np.frexp(magnitude)[1], 0)


def scale_columns(X, exponents):
    """A copy of X (ndarray or CSR) with column j scaled by ``2**-exponents[j]``, in X's
    dtype; X itself for ``exponents=None``."""
    if exponents is None:
        return X
    if sp.issparse(X):
        X = X.copy()
        X.data = np.ldexp(X.data, -exponents[X.indices]).astype(X.dtype)
        return X
    return np.ldexp(X, -exponents).astype(X.dtype)


def scale_extreme_columns(X, magnitude):
    """X, or a copy of it whose columns of extreme magnitude are scaled by powers of two.

    The columns of :func:`extreme_exponents` are scaled to magnitudes in [1/2, 1); the
    others are left as they are. Only then is X copied.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features)
    magnitude : ndarray of shape (n_features,)
        The largest magnitude of each column (``column_moments``).

    Returns
    -------
    X : ndarray or CSR matrix
        In X's dtype (C-contiguous where dense).
    exponents : ndarray of shape (n_features,) of int, or None
        Column j was scaled by ``2**-exponents[j]``; None when nothing was scaled. A
        coefficient fitted on the scaled column is ``coef_j * 2**-exponents[j]`` on the
        original one.
    """
    exponents = extreme_exponents(magnitude, X.shape[0], X.dtype)
    return scale_columns(X, exponents), exponents


def scaled_logits(X_rows, coef, intercept):
    """Logits of rows whose logits overflow, as ``(z, exponent)`` with the true logits
    ``z * 2**exponent`` (one exponent per row), computed in float64.

    Each row and the coefficients are scaled to magnitudes below 1 first, so that
    ``|z| <= n_features + 1``: the order of the logits and their differences, all a
    prediction needs, survive.

    Parameters
    ----------
    X_rows : ndarray of shape (m, n_features)
    coef : ndarray of shape (n_columns, n_features)
    intercept : ndarray of shape (n_columns,)

    Returns
    -------
    z : ndarray of shape (m, n_columns), float64
    exponent : ndarray of shape (m,), int
    """
    X_rows = np.asarray(X_rows, dtype=np.float64)
    coef = np.asarray(coef, dtype=np.float64)
    intercept = np.asarray(intercept, dtype=np.float64)
    coef_exponent = max(power_of_two_below(coef), power_of_two_below(intercept))
    row_exponent = np.frexp(np.max(np.abs(X_rows), axis=1, initial=0.0))[1]
    exponent = row_exponent + coef_exponent
    x = np.ldexp(X_rows, -row_exponent[:, None])
    c = np.ldexp(coef, -coef_exponent)
    b = np.ldexp(intercept[None, :] * 2.0**-coef_exponent, -row_exponent[:, None])
    z = np.einsum("ij,cj->ic", x, c) + b
    return z, exponent


def softmax_of_scaled(z, exponent, log):
    """softmax (or log_softmax) of the logits ``z * 2**exponent`` row by row, float64.

    The differences ``(z - max z) * 2**exponent`` may overflow to ``-inf``: their
    exponentials are then 0, the correctly rounded probability; their logs are not
    representable, and stay ``-inf`` for the caller to report.
    """
    with np.errstate(over="ignore"):
        shifted = np.ldexp(z - z.max(axis=1, keepdims=True), exponent[:, None])
    top = np.argmax(shifted, axis=1)
    e = np.exp(shifted)
    e[np.arange(len(z)), top] = 0.0
    rest = e.sum(axis=1, keepdims=True)
    if log:
        return shifted - np.log1p(rest)
    e[np.arange(len(z)), top] = 1.0
    return e / (1.0 + rest)
