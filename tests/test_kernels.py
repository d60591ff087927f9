"""The fused linear kernel and the penalized objective: NumPy references, derivatives, threads."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import special

from softmaxreg import _kernels

FLOATS = [np.float32, np.float64]
# Relative to the largest entry: the gradients are sums over rows, with cancellation.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def make_problem(n, d, k, dtype=np.float64, weighted=False, seed=0):
    """X, intp labels, sample weights (empty, or uniform with every third one zero), coef_t, intercept."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.intp)
    sample_weight = np.empty(0, dtype=dtype)
    if weighted:
        sample_weight = rng.uniform(0, 3, n).astype(dtype)
        sample_weight[::3] = 0
    coef_t = rng.standard_normal((d, k)).astype(dtype)
    intercept = rng.standard_normal(k).astype(dtype)
    return X, labels, sample_weight, coef_t, intercept


def linear_loss_gradient(X, labels, sample_weight, coef_t, intercept, n_threads=2):
    """Call the kernel with freshly allocated outputs; return (loss, grad_coef_t, grad_intercept)."""
    grad_coef_t = np.empty_like(coef_t)
    grad_intercept = np.empty_like(intercept)
    loss = _kernels.linear_loss_gradient(
        X, labels, sample_weight, coef_t, intercept, grad_coef_t, grad_intercept, n_threads
    )
    return loss, grad_coef_t, grad_intercept


def reference_linear(X, labels, sample_weight, coef_t, intercept):
    """Loss and gradients in float64 from logits = X @ coef_t + b and scipy's log_softmax."""
    X, coef_t, intercept = (np.asarray(a, dtype=np.float64) for a in (X, coef_t, intercept))
    w = sample_weight.astype(np.float64) if sample_weight.size else np.ones(len(X))
    logp = special.log_softmax(X @ coef_t + intercept, axis=1)
    one_hot = np.eye(coef_t.shape[1])[labels]
    loss = -np.sum(w * logp[np.arange(len(X)), labels])
    G = w[:, None] * (np.exp(logp) - one_hot)
    return loss, X.T @ G, G.sum(axis=0)


def five_point(f, x, step):
    """Derivative of f at x along ``step`` (its length is h): (-f(x+2h)+8f(x+h)-8f(x-h)+f(x-2h))/(12h)."""
    return (-f(x + 2 * step) + 8 * f(x + step) - 8 * f(x - step) + f(x - 2 * step)) / 12


def assert_close_to_scale(actual, desired, rtol):
    """Equal up to ``rtol`` times the largest entry of ``desired``."""
    assert_allclose(actual, desired, rtol=0, atol=rtol * max(np.abs(desired).max(), 1e-300))


def assert_identical(a, b):
    for x, y in zip(a, b, strict=True):
        assert_array_equal(x, y)


# ---------------------------------------------------------------------------
# linear_loss_gradient
# ---------------------------------------------------------------------------

SHAPES = [  # (n, d, k, n_threads)
    pytest.param(60, 5, 10, 2, id="k10"),
    pytest.param(40, 4, 2, 2, id="k2"),
    pytest.param(30, 3, 1, 2, id="k1"),
    pytest.param(50, 1, 3, 2, id="d1"),
    pytest.param(1, 3, 4, 4, id="n1-4threads"),
    pytest.param(3, 2, 3, 4, id="n3-4threads"),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n, d, k, n_threads", SHAPES)
def test_linear_loss_gradient_matches_numpy(n, d, k, n_threads, weighted, dtype):
    """Loss, X.T @ G and G.sum(0) equal the NumPy reference, G_i = w_i (softmax(z_i) - onehot(y_i)),
    for k=1, 2, 10, d=1, fewer rows than threads, with and without weights (some of them zero)."""
    problem = make_problem(n, d, k, dtype, weighted)
    loss, grad_coef_t, grad_intercept = linear_loss_gradient(*problem, n_threads=n_threads)
    ref_loss, ref_coef, ref_intercept = reference_linear(*problem)
    assert isinstance(loss, float)
    assert grad_coef_t.dtype == dtype and grad_intercept.dtype == dtype
    assert_allclose(loss, ref_loss, rtol=RTOL[dtype])
    if k == 1:  # softmax is 1 and onehot is 1: nothing to learn
        assert loss == 0.0
        assert_array_equal(grad_coef_t, 0.0)
        assert_array_equal(grad_intercept, 0.0)
    else:
        assert_close_to_scale(grad_coef_t, ref_coef, RTOL[dtype])
        assert_close_to_scale(grad_intercept, ref_intercept, RTOL[dtype])


@pytest.mark.parametrize("weighted", [False, True])
def test_linear_loss_gradient_matches_finite_differences(weighted):
    """Each entry of grad_coef_t and grad_intercept is the 5-point finite difference of the loss (float64)."""
    X, labels, sw, coef_t, intercept = make_problem(25, 3, 4, weighted=weighted)
    _, grad_coef_t, grad_intercept = linear_loss_gradient(X, labels, sw, coef_t, intercept)
    h = 1e-3
    for params, grad, loss_at in [
        (coef_t, grad_coef_t, lambda c: linear_loss_gradient(X, labels, sw, c, intercept)[0]),
        (intercept, grad_intercept, lambda b: linear_loss_gradient(X, labels, sw, coef_t, b)[0]),
    ]:
        numeric = np.empty_like(params)
        for index in np.ndindex(params.shape):
            step = np.zeros_like(params)
            step[index] = h
            numeric[index] = five_point(loss_at, params, step) / h
        assert_allclose(grad, numeric, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_linear_loss_gradient_is_repeatable(n_threads):
    """For a given thread count, repeated calls give bit-identical loss and gradients."""
    problem = make_problem(3001, 7, 5, weighted=True)
    first = linear_loss_gradient(*problem, n_threads=n_threads)
    for _ in range(4):
        assert_identical(linear_loss_gradient(*problem, n_threads=n_threads), first)


def test_linear_loss_gradient_barely_depends_on_thread_count():
    """1, 2 and 3 threads agree to 1e-12 relative (float64): only the order of the row sums changes."""
    problem = make_problem(3001, 7, 5, weighted=True)
    loss_1, coef_1, intercept_1 = linear_loss_gradient(*problem, n_threads=1)
    for n_threads in (2, 3):
        loss, coef, intercept = linear_loss_gradient(*problem, n_threads=n_threads)
        assert_allclose(loss, loss_1, rtol=1e-12)
        assert_close_to_scale(coef, coef_1, 1e-12)
        assert_close_to_scale(intercept, intercept_1, 1e-12)


def test_zero_weight_rows_are_skipped():
    """Rows of weight 0 are skipped, even ones whose logits would overflow: appending them leaves
    a one-thread result bit-identical."""
    X, labels, sw, coef_t, intercept = make_problem(20, 3, 4, weighted=True)
    X_more = np.vstack([X, np.full((5, 3), 1e308)])
    expected = linear_loss_gradient(X, labels, sw, coef_t, intercept, n_threads=1)
    got = linear_loss_gradient(
        X_more, np.concatenate([labels, np.zeros(5, np.intp)]), np.concatenate([sw, np.zeros(5)]),
        coef_t, intercept, n_threads=1,
    )
    assert_identical(got, expected)


# ---------------------------------------------------------------------------
# linear_logits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n, d, k, n_threads", SHAPES)
def test_linear_logits_match_numpy(n, d, k, n_threads, dtype):
    """linear_logits writes X @ coef_t + intercept into ``out``, in the dtype of X."""
    X, _, _, coef_t, intercept = make_problem(n, d, k, dtype)
    out = np.empty((n, k), dtype=dtype)
    _kernels.linear_logits(X, coef_t, intercept, out, n_threads)
    expected = X.astype(np.float64) @ coef_t.astype(np.float64) + intercept
    assert_close_to_scale(out, expected, RTOL[dtype])


# ---------------------------------------------------------------------------
# linear_hessian_product
# ---------------------------------------------------------------------------


def linear_hessian_product(X, sample_weight, coef_t, intercept, direction, n_threads=2):
    """Call the kernel with freshly allocated outputs; return (out_coef_t, out_intercept)."""
    out_coef_t = np.empty_like(coef_t)
    out_intercept = np.empty_like(intercept)
    _kernels.linear_hessian_product(
        X, sample_weight, coef_t, intercept, *direction, out_coef_t, out_intercept, n_threads
    )
    return out_coef_t, out_intercept


def reference_hessian_product(X, sample_weight, coef_t, intercept, direction):
    """[X 1].T @ U in float64, U_i = w_i (p_i * r_i - p_i (p_i . r_i)), r_i = x_i V + v, with the
    softmax Jacobian diag(p) - p p^T written out as a (k, k) matrix per row."""
    X, coef_t, intercept = (np.asarray(a, dtype=np.float64) for a in (X, coef_t, intercept))
    V, v = (np.asarray(a, dtype=np.float64) for a in direction)
    w = sample_weight.astype(np.float64) if sample_weight.size else np.ones(len(X))
    P = special.softmax(X @ coef_t + intercept, axis=1)
    R = X @ V + v
    jacobians = np.einsum("ic,cd->icd", P, np.eye(P.shape[1])) - np.einsum("ic,id->icd", P, P)
    U = w[:, None] * np.einsum("icd,id->ic", jacobians, R)
    return X.T @ U, U.sum(axis=0)


def make_direction(d, k, dtype, seed=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((d, k)).astype(dtype), rng.standard_normal(k).astype(dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n, d, k, n_threads", SHAPES + [pytest.param(700, 9, 40, 2, id="k40")])
def test_linear_hessian_product_matches_numpy(n, d, k, n_threads, weighted, dtype):
    """The Hessian-vector product equals the NumPy reference with explicit (k, k) Jacobians, in
    both dtypes, with and without weights (some zero), for every tile width (k=1 to 40)."""
    X, _, sw, coef_t, intercept = make_problem(n, d, k, dtype, weighted)
    direction = make_direction(d, k, dtype)
    out_coef_t, out_intercept = linear_hessian_product(X, sw, coef_t, intercept, direction, n_threads)
    ref_coef, ref_intercept = reference_hessian_product(X, sw, coef_t, intercept, direction)
    assert out_coef_t.dtype == dtype and out_intercept.dtype == dtype
    assert_close_to_scale(out_coef_t, ref_coef, RTOL[dtype])
    assert_close_to_scale(out_intercept, ref_intercept, RTOL[dtype])


@pytest.mark.parametrize("weighted", [False, True])
def test_linear_hessian_product_is_the_derivative_of_the_gradient(weighted):
    """H (V, v) is the 5-point finite difference of the kernel's gradient along (V, v) (float64)."""
    X, labels, sw, coef_t, intercept = make_problem(40, 4, 5, weighted=weighted)
    V, v = make_direction(4, 5, np.float64)
    out_coef_t, out_intercept = linear_hessian_product(X, sw, coef_t, intercept, (V, v))
    h = 1e-3

    def gradient_at(t):
        _, grad_coef_t, grad_intercept = linear_loss_gradient(
            X, labels, sw, coef_t + t * V, intercept + t * v
        )
        return np.concatenate([grad_coef_t.ravel(), grad_intercept])

    numeric = five_point(gradient_at, 0.0, h) / h
    assert_allclose(np.concatenate([out_coef_t.ravel(), out_intercept]), numeric, rtol=1e-7, atol=1e-9)


def test_linear_hessian_product_ignores_labels_and_is_linear():
    """The product is linear in the direction: H (2 V1 - V2) = 2 H V1 - H V2."""
    X, _, sw, coef_t, intercept = make_problem(200, 6, 7, weighted=True)
    first, second = make_direction(6, 7, np.float64, 1), make_direction(6, 7, np.float64, 2)
    combined = tuple(2 * a - b for a, b in zip(first, second))
    h1, h2, h = (linear_hessian_product(X, sw, coef_t, intercept, dr) for dr in (first, second, combined))
    for i in range(2):
        assert_close_to_scale(h[i], 2 * h1[i] - h2[i], 1e-12)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_linear_hessian_product_is_repeatable_and_barely_depends_on_threads(n_threads):
    """Bit-identical on repeat for a thread count; within 1e-12 of the one-thread result."""
    X, _, sw, coef_t, intercept = make_problem(3001, 7, 5, weighted=True)
    direction = make_direction(7, 5, np.float64)
    first = linear_hessian_product(X, sw, coef_t, intercept, direction, n_threads)
    assert_identical(linear_hessian_product(X, sw, coef_t, intercept, direction, n_threads), first)
    one = linear_hessian_product(X, sw, coef_t, intercept, direction, 1)
    for got, expected in zip(first, one):
        assert_close_to_scale(got, expected, 1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
def test_linear_hessian_product_with_extreme_logits(dtype):
    """Logits of +-1e300 (float64) or +-1e38 (float32) saturate the softmax: the product stays
    finite and matches the reference computed from the saturated probabilities."""
    big = 1e300 if dtype == np.float64 else 1e38
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=dtype)
    coef_t = np.array([[big, -big, 0.0], [0.0, big, -big]], dtype=dtype) / 2
    intercept = np.zeros(3, dtype=dtype)
    direction = make_direction(2, 3, dtype)
    out = linear_hessian_product(X, np.empty(0, dtype), coef_t, intercept, direction)
    ref = reference_hessian_product(X, np.empty(0, dtype), coef_t, intercept, direction)
    for got, expected in zip(out, ref):
        assert np.isfinite(got).all()
        assert_allclose(got, expected, atol=1e-6)


# ---------------------------------------------------------------------------
# column_moments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_column_moments_match_numpy(dtype, weighted, n_threads):
    """Weighted mean and variance of each column, in float64, also for a large common offset
    (0 exactly for a constant column), and each column's largest magnitude."""
    X, _, sw, _, _ = make_problem(1001, 6, 2, dtype, weighted)
    X = (X * np.array([1, 10, 0.1, 1, 1, 0]) + np.array([0, 0, 0, 1e4, -3, 7])).astype(dtype)
    mean, variance, magnitude = (np.empty(6) for _ in range(3))
    _kernels.column_moments(X, sw, mean, variance, magnitude, n_threads)
    weights = sw.astype(np.float64) if weighted else None
    ref_mean = np.average(X.astype(np.float64), axis=0, weights=weights)
    ref_variance = np.average((X - ref_mean) ** 2, axis=0, weights=weights)
    assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-12)
    assert_allclose(variance, ref_variance, rtol=1e-8, atol=1e-12)
    assert variance[5] == 0.0
    rows = sw > 0 if weighted else slice(None)
    assert_array_equal(magnitude, np.abs(X.astype(np.float64)[rows]).max(axis=0))


def test_column_moments_ignore_rows_of_weight_zero():
    """A column constant on the rows of positive weight has variance 0 exactly, whatever its
    values on rows of weight 0 (the first row among them), which its magnitude ignores too."""
    X = np.array([[5.0, 1.0], [2.0, 2.0], [2.0, 3.0], [2.0, 4.0]])
    sw = np.array([0.0, 1.0, 2.0, 3.0])
    mean, variance, magnitude = (np.empty(2) for _ in range(3))
    _kernels.column_moments(X, sw, mean, variance, magnitude, 2)
    assert mean[0] == 2.0 and variance[0] == 0.0
    assert magnitude[0] == 2.0  # the row of weight 0 (5.0) does not count
    assert_allclose(mean[1], 20 / 6) and magnitude[1] == 4.0
