"""The fused linear kernel and the penalized objective: NumPy references, derivatives, threads."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import special

from softmaxreg import _kernels
from softmaxreg._objective import LinearSoftmaxObjective

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
# LinearSoftmaxObjective
# ---------------------------------------------------------------------------


FEATURE_SCALE = np.array([1.0, 2.0**-3, 2.0**4])  # a diagonal D of powers of two


def make_objective(fit_intercept, scaled=False, dtype=np.float64, C=0.7):
    """An objective on a small weighted problem (d=3, k=4), optionally with feature scales D."""
    X, labels, sw, _, _ = make_problem(30, 3, 4, dtype, weighted=True)
    return LinearSoftmaxObjective(
        X, labels, 4, sw, C=C, fit_intercept=fit_intercept, n_threads=2,
        feature_scale=FEATURE_SCALE if scaled else None,
    )


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_objective_gradient_matches_finite_differences(fit_intercept, scaled):
    """loss_gradient's gradient is the 5-point finite difference of its own value, one parameter
    at a time (coefficients V = W / D, then the intercept when there is one)."""
    objective = make_objective(fit_intercept, scaled)
    w = np.random.default_rng(1).standard_normal(objective.n_params)
    _, grad = objective.loss_gradient(w)
    assert grad.shape == w.shape
    h = 1e-3
    numeric = [five_point(lambda v: objective.loss_gradient(v)[0], w, h * e) / h for e in np.eye(w.size)]
    assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_objective_value_is_the_penalized_mean_cross_entropy(fit_intercept, scaled):
    """F = (1/S) sum_i s_i CE_i + ||W||^2 / (2 C S), with W = D V and the intercept unpenalized."""
    C = 0.7
    objective = make_objective(fit_intercept, scaled, C=C)
    X, labels, sw = objective.X, objective.labels, objective.sample_weight
    w = np.random.default_rng(1).standard_normal(objective.n_params)
    W = w[:12].reshape(3, 4) * (FEATURE_SCALE[:, None] if scaled else 1)
    b = w[12:] if fit_intercept else np.zeros(4)
    ce = -special.log_softmax(X @ W + b, axis=1)[np.arange(len(X)), labels]
    S = sw.sum()
    expected = np.sum(sw * ce) / S + np.sum(W**2) / (2 * C * S)
    value, _ = objective.loss_gradient(w)
    assert_allclose(value, expected, rtol=1e-13)


OVERFLOWS = [  # (dtype of X, coefficient): the dtype's largest value, or beyond it for float32
    pytest.param(np.float32, float(np.finfo(np.float32).max), id="float32-max"),
    pytest.param(np.float32, 1e300, id="float32-1e300"),
    pytest.param(np.float64, np.finfo(np.float64).max, id="float64-max"),
]


def overflowing_objective(dtype, coef):
    """An objective, and every parameter set to ``coef``: x_ij * W_jc overflows wherever |x_ij| > 1."""
    objective = make_objective(True, dtype=dtype)
    assert (np.abs(objective.X) > 1).any(axis=1).mean() > 0.5
    return objective, np.full(objective.n_params, coef)


@pytest.mark.parametrize("dtype, coef", OVERFLOWS)
def test_objective_is_inf_where_logits_overflow(dtype, coef):
    """Overflowing logits (a wild line-search step) give the value +inf and a finite gradient, never NaN."""
    objective, w = overflowing_objective(dtype, coef)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # test_objective_overflow_is_silent checks those
        value, grad = objective.loss_gradient(w)
    assert value == np.inf
    assert np.isfinite(grad).all()


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype, coef", OVERFLOWS)
def test_objective_overflow_is_silent(dtype, coef):
    """Overflow in a trial step is an expected event, reported by the +inf value alone: no numpy
    RuntimeWarning (which pyproject.toml turns into an error)."""
    objective, w = overflowing_objective(dtype, coef)
    assert objective.loss_gradient(w)[0] == np.inf
