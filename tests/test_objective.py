"""The penalized objective and its standardized coordinates: values, derivatives, the map."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import special

from softmaxreg._objective import LinearSoftmaxObjective
from softmaxreg._preconditioning import StandardizedObjective, column_moments

# Feature scales and offsets spanning orders of magnitude, like raw data.
SCALES = np.array([1e-3, 1.0, 1e3, 16.0])
OFFSETS = np.array([0.0, 5.0, -2e3, 8.0])


def make_objective(fit_intercept=True, dtype=np.float64, C=0.7, weighted=True, n=40, k=4):
    """An objective on a small problem (d=4) with raw-looking features; weights with zeros."""
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((n, 4)) * SCALES + OFFSETS).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.intp)
    sw = np.empty(0, dtype=dtype)
    if weighted:
        sw = rng.uniform(0, 3, n).astype(dtype)
        sw[::4] = 0
    return LinearSoftmaxObjective(X, labels, k, sw, C=C, fit_intercept=fit_intercept, n_threads=2)


def five_point(f, x, step):
    """Derivative of f at x along ``step`` (its length is h): (-f(x+2h)+8f(x+h)-8f(x-h)+f(x-2h))/(12h)."""
    return (-f(x + 2 * step) + 8 * f(x + step) - 8 * f(x - step) + f(x - 2 * step)) / 12


def parameter_scales(objective):
    """Per parameter, a change that moves the logits by O(1): 1 / (feature scale + |offset|)."""
    scales = np.ones(objective.n_params)
    scales[: objective.n_coef] /= np.repeat(np.abs(SCALES) + np.abs(OFFSETS), objective.n_classes)
    return scales


def random_point(objective, seed=1):
    """A point whose logits are O(1)."""
    return np.random.default_rng(seed).standard_normal(objective.n_params) * parameter_scales(objective)


# ---------------------------------------------------------------------------
# LinearSoftmaxObjective
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_objective_value_is_the_penalized_mean_cross_entropy(fit_intercept):
    """F = (1/S) sum_i s_i CE_i + ||W||^2 / (2 C S), the intercept unpenalized."""
    C = 0.7
    objective = make_objective(fit_intercept, C=C)
    X, labels, sw = objective.X, objective.labels, objective.sample_weight
    w = random_point(objective)
    W = w[:16].reshape(4, 4)
    b = w[16:] if fit_intercept else np.zeros(4)
    ce = -special.log_softmax(X @ W + b, axis=1)[np.arange(len(X)), labels]
    S = sw.sum()
    expected = np.sum(sw * ce) / S + np.sum(W**2) / (2 * C * S)
    value, _ = objective.loss_gradient(w)
    assert_allclose(value, expected, rtol=1e-13)


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_objective_gradient_matches_finite_differences(fit_intercept):
    """The gradient is the 5-point finite difference of the value, one parameter at a time
    (C large enough that the penalty does not swamp the value's last digits)."""
    objective = make_objective(fit_intercept, C=1e3)
    w = random_point(objective)
    _, grad = objective.loss_gradient(w)
    assert grad.shape == w.shape
    steps = np.diag(1e-3 * parameter_scales(objective))
    numeric = [five_point(lambda v: objective.loss_gradient(v)[0], w, h) / h.max() for h in steps]
    assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_objective_hessian_product_matches_finite_differences(fit_intercept, weighted):
    """H v is the 5-point finite difference of the gradient along v, penalty included."""
    objective = make_objective(fit_intercept, weighted=weighted, C=1e3)
    w = random_point(objective)
    v = random_point(objective, seed=2)
    h = 1e-3
    numeric = five_point(lambda t: objective.loss_gradient(w + t * v)[1], 0.0, h) / h
    assert_allclose(objective.hessian_product(w, v), numeric, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_objective_hessian_product_matches_finite_differences_float32(weighted):
    """In float32 too, H v matches the finite difference of the gradient along v, to what
    float32 gradients resolve (a larger step, a 1e-2 tolerance)."""
    objective = make_objective(weighted=weighted, C=1e3, dtype=np.float32, n=200)
    w = random_point(objective)
    v = random_point(objective, seed=2)
    h = 3e-2
    numeric = five_point(lambda t: objective.loss_gradient(w + t * v)[1], 0.0, h) / h
    product = objective.hessian_product(w, v)
    assert_allclose(product, numeric, rtol=0, atol=1e-2 * np.max(np.abs(numeric)))


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_objective_float32_agrees_with_float64(fit_intercept):
    """The float32 objective's value, gradient and Hessian product match float64's to float32 precision."""
    single = make_objective(fit_intercept, dtype=np.float32)
    double = LinearSoftmaxObjective(
        single.X.astype(np.float64), single.labels, 4, single.sample_weight.astype(np.float64),
        C=0.7, fit_intercept=fit_intercept, n_threads=2,
    )
    w = random_point(double)
    v = random_point(double, seed=2)
    for got, expected in [
        (single.loss_gradient(w)[0], double.loss_gradient(w)[0]),
        (single.loss_gradient(w)[1], double.loss_gradient(w)[1]),
        (single.hessian_product(w, v), double.hessian_product(w, v)),
    ]:
        assert_allclose(got, expected, rtol=0, atol=1e-4 * np.max(np.abs(expected)))


def test_optimality_is_the_largest_gradient_entry_relative_to_the_value():
    """max |grad| / F, and infinite where F is not finite and positive (never "converged" there)."""
    objective = make_objective()
    value, grad = objective.loss_gradient(random_point(objective))
    assert objective.optimality(value, grad) == np.max(np.abs(grad)) / value
    for bad in (np.inf, np.nan, 0.0):
        assert objective.optimality(bad, grad) == np.inf


OVERFLOWS = [  # (dtype of X, coefficient): the dtype's largest value, or beyond it for float32
    pytest.param(np.float32, float(np.finfo(np.float32).max), id="float32-max"),
    pytest.param(np.float32, 1e300, id="float32-1e300"),
    pytest.param(np.float64, np.finfo(np.float64).max, id="float64-max"),
]


def overflowing_objective(dtype, coef):
    """An objective, and every parameter set to ``coef``: x_ij * W_jc overflows wherever |x_ij| > 1."""
    objective = make_objective(dtype=dtype)
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


# ---------------------------------------------------------------------------
# StandardizedObjective: the change of variables the solvers see
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_standardized_map_is_invertible_and_keeps_the_objective(fit_intercept):
    """to_model and to_solver are inverses, and F(T theta) is the objective at T theta."""
    objective = make_objective(fit_intercept)
    standardized = StandardizedObjective(objective, n_threads=2)
    w = random_point(objective)
    theta = standardized.to_solver(w)
    assert_allclose(standardized.to_model(theta), w, rtol=1e-12, atol=1e-15)
    # The same value, to rounding (theta's penalty is sum q theta^2, with q = (root D)^2).
    assert_allclose(
        standardized.loss_gradient(theta)[0],
        objective.loss_gradient(standardized.to_model(theta))[0], rtol=1e-14,
    )


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_standardized_derivatives_match_finite_differences(fit_intercept):
    """In theta, at a point and along a direction centred over the classes (where the solvers
    move), the gradient is the finite difference of the value and the Hessian product that
    of the gradient; model_gradient maps it back to the model's coordinates; the optimality
    is the larger of the two gradients' largest entries, over the value."""
    objective = make_objective(fit_intercept, C=1e3)
    standardized = StandardizedObjective(objective, n_threads=2)
    theta = standardized.centre(standardized.to_solver(random_point(objective)))
    _, grad = standardized.loss_gradient(theta)
    h = 1e-4
    numeric = [five_point(lambda t: standardized.loss_gradient(t)[0], theta, h * e) / h for e in np.eye(theta.size)]
    assert_allclose(grad, numeric, rtol=1e-6, atol=1e-10)
    v = standardized.centre(np.random.default_rng(3).standard_normal(theta.size))
    numeric = five_point(lambda t: standardized.loss_gradient(theta + t * v)[1], 0.0, h) / h
    assert_allclose(standardized.hessian_product(theta, v), numeric, rtol=1e-6, atol=1e-10)
    _, model_grad = objective.loss_gradient(standardized.to_model(theta))
    assert_allclose(standardized.model_gradient(grad), model_grad, rtol=1e-10, atol=1e-14)
    value = standardized.loss_gradient(theta)[0]
    expected = max(np.max(np.abs(grad)), np.max(np.abs(model_grad))) / value
    assert_allclose(standardized.optimality(value, grad), expected, rtol=1e-10)


def test_centring_removes_only_shifts_common_to_all_classes():
    """centre is the orthogonal projection that removes, from each row of theta (a feature's
    coefficients, the intercepts), its mean over the classes: idempotent, and the value of the
    objective is the same at a point and at its centred image where the penalty is 0."""
    objective = make_objective(True, C=np.inf)
    standardized = StandardizedObjective(objective, n_threads=2)
    theta = standardized.to_solver(random_point(objective))
    centred = standardized.centre(theta)
    assert_allclose(centred.reshape(-1, objective.n_columns).sum(axis=1), 0.0, atol=1e-12)
    assert_allclose(standardized.centre(centred), centred, rtol=0, atol=1e-15)
    assert_allclose(
        standardized.loss_gradient(centred)[0], standardized.loss_gradient(theta)[0], rtol=1e-12
    )


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_standardized_curvature_is_even_at_the_start(fit_intercept):
    """At W = 0 the Hessian's diagonal in theta lies in [(k-1)/k^2, 1/k] for every coefficient,
    where in the model's coordinates it spans 12 orders of magnitude; with an intercept, the
    centring leaves no coupling between coefficients and intercepts."""
    objective = make_objective(fit_intercept, C=1e4)
    standardized = StandardizedObjective(objective, n_threads=2)
    k, n = objective.n_classes, objective.n_params
    theta = np.zeros(n)
    hessian = np.array([standardized.hessian_product(theta, e) for e in np.eye(n)])
    diagonal = np.diag(hessian)
    assert np.all(diagonal >= (k - 1) / k**2 * (1 - 1e-9)) and np.all(diagonal <= 1 / k * (1 + 1e-9))
    raw = np.array([objective.hessian_product(theta, e) @ e for e in np.eye(n)])
    assert raw.max() / raw.min() > 1e11
    if fit_intercept:
        coupling = hessian[: objective.n_coef, objective.n_coef :]
        assert np.max(np.abs(coupling)) < 1e-10


def test_standardized_features_of_extreme_and_zero_spread():
    """Features of magnitude 1e200 (whose squares overflow) or 1e-200 give a finite, positive
    scale and a finite map; a constant feature's scale is 0 (its coefficients stay at 0)."""
    rng = np.random.default_rng(0)
    X = np.c_[rng.standard_normal(50) * 1e200, rng.standard_normal(50) * 1e-200, np.full(50, 3.0)]
    objective = LinearSoftmaxObjective(
        X, rng.integers(0, 3, 50).astype(np.intp), 3, np.empty(0), C=1.0, fit_intercept=True, n_threads=2
    )
    standardized = StandardizedObjective(objective, n_threads=2)
    assert np.all(np.isfinite(standardized.scale)) and np.all(standardized.scale[:2] > 0)
    assert standardized.scale[2] == 0 and standardized.shift[2] == 0
    assert_allclose(standardized.scale[0] * 1e200 * (X[:, 0] / 1e200).std(), 1.0, rtol=1e-12)
    mean, std, magnitude = column_moments(X, np.empty(0), 2)
    assert_array_equal(magnitude, np.abs(X).max(axis=0))
    assert_allclose(mean, X.mean(axis=0), rtol=1e-12)
    assert_allclose(std[0] / 1e200, (X[:, 0] / 1e200).std(), rtol=1e-12)
    assert_array_equal(std[2], 0.0)
    value, grad = standardized.loss_gradient(rng.standard_normal(objective.n_params))
    assert np.isfinite(value) and np.isfinite(grad).all()


def test_stopping_measure_sees_features_of_every_scale():
    """At W = 0 the model-space gradient of a feature of scale 1e-3 is ~1e6 times smaller than
    that of a feature of scale 1e3, hiding how far its coefficients are from optimal; in the
    standardized coordinates, which the stopping measure also takes, the two are of the
    same order."""
    objective = make_objective(C=1e6)
    standardized = StandardizedObjective(objective, n_threads=2)
    _, grad_theta = standardized.loss_gradient(np.zeros(objective.n_params))
    by_feature = lambda g: np.max(np.abs(g[:16].reshape(4, 4)), axis=1)  # noqa: E731
    model = by_feature(standardized.model_gradient(grad_theta))
    theta = by_feature(grad_theta)
    assert model[2] / model[0] > 1e5
    assert 1e-2 < theta[2] / theta[0] < 1e2


def test_optimality_weighs_large_features_down_to_the_model_test_scale():
    """A feature of scale 1e6 enters the model-space test as if scaled down to 1e4: its entry
    is weighted by 1e4 / hypot(mean, 1/D); features below 1e4 are not."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((60, 3))
    X[:, 1] = X[:, 1] * 1e6 + 3e6
    objective = LinearSoftmaxObjective(
        X, rng.integers(0, 3, 60).astype(np.intp), 3, np.empty(0), C=1.0, fit_intercept=True,
        n_threads=1,
    )
    standardized = StandardizedObjective(objective, n_threads=1)
    grad = rng.standard_normal(objective.n_params)
    model = standardized.model_gradient(grad)[: objective.n_coef].reshape(3, 3)
    size = np.hypot(standardized._mean, 1 / standardized.scale)
    weight = np.minimum(1.0, 1e4 / np.maximum(size, 1e4))
    assert weight[1] < 1e-2 and weight[0] == weight[2] == 1.0
    expected = max(np.max(np.abs(grad)), np.max(np.abs(model * weight[:, None]))) / 2.0
    assert_allclose(standardized.optimality(2.0, grad), expected, rtol=1e-12)
    grad[0] = np.nan
    assert standardized.optimality(2.0, grad) == np.inf


def test_hessian_products_from_kept_probabilities_follow_the_point(monkeypatch):
    """The rows' probabilities kept for Hessian products are recomputed when the point
    changes: products at theta1, theta2, theta1 equal those computed without keeping them
    (where they would not fit: a limit of 0 bytes and d < k), to rounding."""
    from softmaxreg import _objective

    rng = np.random.default_rng(11)
    X = rng.standard_normal((300, 4))
    labels = rng.integers(0, 7, 300).astype(np.intp)
    kept = StandardizedObjective(
        LinearSoftmaxObjective(X, labels, 7, np.empty(0), C=1.0, fit_intercept=True, n_threads=2), 2)
    kept.hessian_product(np.zeros(kept.n_params), np.ones(kept.n_params))  # allocates them
    monkeypatch.setattr(_objective, "_PROBA_CACHE_BYTES", 0)
    plain = StandardizedObjective(
        LinearSoftmaxObjective(X, labels, 7, np.empty(0), C=1.0, fit_intercept=True, n_threads=2), 2)
    points = [kept.centre(rng.standard_normal(kept.n_params)) for _ in range(2)]
    v = kept.centre(rng.standard_normal(kept.n_params))
    for theta in (points[0], points[1], points[0]):
        assert_allclose(kept.hessian_product(theta, v), plain.hessian_product(theta, v),
                        rtol=1e-12, atol=1e-15)
    assert kept.objective._proba is not None and plain.objective._proba is None
