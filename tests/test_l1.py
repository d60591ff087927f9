"""The L1 and elastic-net penalties: the penalty room (prox, minimum-norm subgradient),
OWL-QN, and SoftmaxRegressor with ``l1_ratio`` against the optimality conditions and
scikit-learn's saga."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import (
    load_digits, load_iris, load_wine, make_classification,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from scipy.special import logsumexp

from softmaxreg import SoftmaxRegressor
from softmaxreg._penalty import L1Penalty


def objective(X, y, model, C, l1_ratio, sample_weight=None):
    """``LogisticRegression``'s objective ``C sum_i s_i CE_i + (1-r)/2 ||W||^2 + r ||W||_1``
    of a fitted model, in float64."""
    labels = np.searchsorted(model.classes_, y)
    coef = np.asarray(model.coef_, dtype=np.float64)
    logits = np.asarray(sp.csr_matrix(X, dtype=np.float64) @ coef.T) + model.intercept_
    if logits.shape[1] == 1:
        logits = np.hstack([np.zeros_like(logits), logits])
    ce = logsumexp(logits, axis=1) - logits[np.arange(labels.shape[0]), labels]
    s = np.ones_like(ce) if sample_weight is None else sample_weight
    return float(C * (s * ce).sum() + (1 - l1_ratio) / 2 * (coef**2).sum()
                 + l1_ratio * np.abs(coef).sum())


def smooth_gradient(X, y, model, C, l1_ratio, sample_weight=None):
    """The gradient of ``C sum_i s_i CE_i + (1-r)/2 ||W||^2`` with respect to coef_ and
    intercept_, in float64 (the model's parametrization: one row for two classes)."""
    labels = np.searchsorted(model.classes_, y)
    X = sp.csr_matrix(X, dtype=np.float64)
    coef = np.asarray(model.coef_, dtype=np.float64)
    logits = np.asarray(X @ coef.T) + model.intercept_
    s = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    if coef.shape[0] == 1:
        p = 1 / (1 + np.exp(-logits[:, 0]))
        r = ((p - (labels == 1)) * s)[:, None]
    else:
        p = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        p[np.arange(labels.shape[0]), labels] -= 1
        r = p * s[:, None]
    grad_coef = C * np.asarray(X.T @ r).T + (1 - l1_ratio) * coef
    return grad_coef, C * r.sum(axis=0)


def assert_optimal(X, y, model, C, l1_ratio, sample_weight=None, rtol=1e-6):
    """The optimality conditions of the elastic-net problem, relative to the objective:
    the intercepts' gradient is 0, and each coefficient's smooth gradient is
    ``-l1_ratio sign(w)`` where w != 0 and within ``[-l1_ratio, l1_ratio]`` where w = 0."""
    grad_coef, grad_intercept = smooth_gradient(X, y, model, C, l1_ratio, sample_weight)
    scale = rtol * objective(X, y, model, C, l1_ratio, sample_weight)
    coef = np.asarray(model.coef_, dtype=np.float64)
    nonzero = coef != 0
    assert np.abs(grad_coef[nonzero] + l1_ratio * np.sign(coef[nonzero])).max(initial=0) <= scale
    assert (np.abs(grad_coef[~nonzero]) <= l1_ratio + scale).all()
    if model.fit_intercept:
        assert np.abs(grad_intercept).max() <= scale


def fit(model, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        return model.fit(X, y, **kwargs)


# --- the penalty room -----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    theta=st.floats(-1e6, 1e6), grad=st.floats(-1e6, 1e6), weight=st.floats(0, 1e6),
    step=st.floats(1e-6, 1e3),
)
def test_prox_and_subgradient_of_one_entry(theta, grad, weight, step):
    penalty = L1Penalty(np.array([weight]))
    # prox: the minimizer of (u - theta)^2 / (2 step) + weight |u|, checked against its
    # optimality condition (0 in (u - theta) / step + weight d|u|).
    (u,) = penalty.prox(np.array([theta]), step)
    if u != 0:
        assert abs((u - theta) / step + weight * np.sign(u)) <= 1e-9 * max(1.0, abs(theta) / step)
    else:
        assert abs(theta) <= step * weight * (1 + 1e-12)
    # The minimum-norm subgradient of grad * t + weight |t| at theta.
    (g,) = penalty.subgradient(np.array([theta]), np.array([grad]))
    if theta != 0:
        assert g == grad + weight * np.sign(theta)
    else:
        interval = (grad - weight, grad + weight)
        expected = 0.0 if interval[0] <= 0 <= interval[1] else min(interval, key=abs)
        assert g == pytest.approx(expected, rel=1e-15, abs=0)


def _vectors(n, seed):
    """w with exact zeros, gradients, a direction, and weights with zeros (unpenalized)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n) * (rng.random(n) < 0.6)
    weights = rng.random(n) * (rng.random(n) < 0.9)
    return w, rng.normal(size=n), rng.normal(size=n), weights


@pytest.mark.parametrize("n", [1, 7, 2048, 5003])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_penalty_loops_equal_numpy(n, n_threads):
    from softmaxreg import _penalty_loops

    w, grad, direction, weights = _vectors(n, n)
    # The minimum-norm subgradient.
    pg = np.empty(n)
    _penalty_loops.subgradient(w, grad, weights, pg, n_threads)
    shrunk = np.sign(grad) * np.maximum(np.abs(grad) - weights, 0.0)
    assert_array_equal(pg, np.where(w != 0, grad + weights * np.sign(w), shrunk))
    # The direction, constrained at the penalized zeros to the orthant of -pg.
    constrained = direction.copy()
    slope = _penalty_loops.constrain_direction(constrained, w, pg, weights, n_threads)
    expected = np.where((weights > 0) & (w == 0) & (direction * pg >= 0), 0.0, direction)
    assert_array_equal(constrained, expected)
    assert slope == pytest.approx(pg @ expected, rel=1e-12, abs=1e-12)
    # The projected step: entries that leave their orthant are 0, unpenalized ones free.
    out = np.empty(n)
    change, l1 = _penalty_loops.projected_step(w, constrained, 0.7, pg, weights, out, n_threads)
    orthant = np.where(w != 0, np.sign(w), -np.sign(pg))
    step = w + 0.7 * constrained
    expected = np.where((weights > 0) & (step * orthant < 0), 0.0, step)
    assert_array_equal(out, expected)
    assert change == pytest.approx(pg @ (expected - w), rel=1e-12, abs=1e-12)
    assert l1 == pytest.approx(weights @ np.abs(expected), rel=1e-12, abs=1e-12)


def test_penalty_loops_do_not_depend_on_the_thread_count():
    from softmaxreg import _penalty_loops

    w, grad, direction, weights = _vectors(100_003, 0)
    results = []
    for n_threads in (1, 2, 3):
        d = direction.copy()
        slope = _penalty_loops.constrain_direction(d, w, grad, weights, n_threads)
        out = np.empty_like(w)
        results.append((slope, *_penalty_loops.projected_step(w, d, 0.5, grad, weights, out,
                                                               n_threads)))
    assert results[0] == results[1] == results[2]


def test_penalty_value_and_exact_zeros():
    penalty = L1Penalty(np.array([1.0, 2.0, 0.0]))
    assert penalty.value(np.array([-1.0, 0.5, 7.0])) == 2.0
    assert_array_equal(penalty.prox(np.array([0.5, -3.0, 7.0]), 1.0), [0.0, -1.0, 7.0])


# --- the estimator against the optimality conditions -----------------------------------


def problem(n_classes, sparse, dtype, seed=0):
    X, y = make_classification(n_samples=300, n_features=12, n_informative=6,
                               n_classes=n_classes, n_clusters_per_class=1, random_state=seed)
    X[:, 0] *= 100.0  # unscaled features
    X = X.astype(dtype)
    if sparse:
        X[np.abs(X) < 0.5] = 0
        X = sp.csr_matrix(X)
    return X, y


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5, 0.1])
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_fit_meets_the_optimality_conditions(n_classes, sparse, l1_ratio, C, fit_intercept):
    # tol=1e-8: a column scaled by 100 makes the test in the model's coordinates 100
    # times stricter than in the solver's, where OWL-QN then crawls below the objective's
    # rounding (it says so: a ConvergenceWarning fails this test).
    X, y = problem(n_classes, sparse, np.float64)
    model = fit(SoftmaxRegressor(C=C, l1_ratio=l1_ratio, tol=1e-8, max_iter=20_000,
                                 fit_intercept=fit_intercept), X, y)
    assert_optimal(X, y, model, C, l1_ratio)
    assert model.coef_.shape == ((1 if n_classes == 2 else n_classes), X.shape[1])
    if C == 0.01 and l1_ratio == 1.0:
        assert (model.coef_ == 0).any()  # exact zeros


@pytest.mark.parametrize("weights", ["sample", "class", "both"])
def test_weights_meet_the_optimality_conditions(weights):
    X, y = problem(3, False, np.float64, seed=1)
    rng = np.random.default_rng(0)
    sw = rng.uniform(0, 3, size=y.shape[0]) if weights != "class" else None
    class_weight = {0: 2.0, 2: 0.5} if weights != "sample" else None
    model = fit(SoftmaxRegressor(C=1.0, l1_ratio=0.7, tol=1e-10, max_iter=20_000,
                                 class_weight=class_weight), X, y, sample_weight=sw)
    total = (sw if sw is not None else np.ones(y.shape[0])) * (
        np.vectorize((class_weight or {}).get)(y, 1.0))
    assert_optimal(X, y, model, 1.0, 0.7, total)


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_float32_fits_the_float64_model(l1_ratio):
    X, y = problem(3, False, np.float64)
    m64 = fit(SoftmaxRegressor(C=1.0, l1_ratio=l1_ratio, tol=1e-8, max_iter=10_000), X, y)
    m32 = fit(SoftmaxRegressor(C=1.0, l1_ratio=l1_ratio, tol=1e-4, max_iter=10_000),
              X.astype(np.float32), y)
    assert m32.coef_.dtype == np.float32
    f64 = objective(X, y, m64, 1.0, l1_ratio)
    assert objective(X, y, m32, 1.0, l1_ratio) <= f64 * (1 + 1e-4)


def test_l1_ratio_zero_with_owlqn_is_the_l2_model():
    X, y = load_iris(return_X_y=True)
    l2 = fit(SoftmaxRegressor(C=10.0, tol=1e-10, max_iter=1000), X, y)
    owl = fit(SoftmaxRegressor(C=10.0, tol=1e-10, max_iter=10_000, solver="owl-qn"), X, y)
    assert_allclose(objective(X, y, owl, 10.0, 0.0), objective(X, y, l2, 10.0, 0.0), rtol=1e-10)
    assert_allclose(owl.coef_, l2.coef_, atol=1e-5)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_thread_counts_give_the_same_model(n_jobs):
    X, y = problem(4, True, np.float64)
    one = fit(SoftmaxRegressor(C=1.0, l1_ratio=1.0, tol=1e-10, max_iter=20_000, n_jobs=1), X, y)
    other = fit(SoftmaxRegressor(C=1.0, l1_ratio=1.0, tol=1e-10, max_iter=20_000,
                                 n_jobs=n_jobs), X, y)
    assert_allclose(objective(X, y, other, 1.0, 1.0), objective(X, y, one, 1.0, 1.0), rtol=1e-10)


@pytest.mark.parametrize("scale", [1e-150, 1e-30, 1e30, 1e150])
def test_features_of_extreme_magnitude_give_an_optimal_finite_model(scale):
    X, y = problem(3, False, np.float64)
    X = X.copy()
    X[:, 1:4] *= scale
    model = fit(SoftmaxRegressor(C=1.0, l1_ratio=0.5, tol=1e-8, max_iter=20_000), X, y)
    assert np.isfinite(model.coef_).all() and np.isfinite(model.intercept_).all()
    zero = SoftmaxRegressor(C=1e-300, l1_ratio=0.5).fit(X, y)  # all coefficients 0
    assert objective(X, y, model, 1.0, 0.5) < objective(X, y, zero, 1.0, 0.5)


def test_a_tiny_c_gives_zero_coefficients_and_the_class_priors():
    X, y = problem(3, False, np.float64)
    model = fit(SoftmaxRegressor(C=1e-300, l1_ratio=1.0), X, y)
    assert_array_equal(model.coef_, 0.0)
    assert_allclose(model.predict_proba(X[:1])[0], np.bincount(y) / y.shape[0], rtol=1e-6)


# --- solver properties --------------------------------------------------------------------


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_a_larger_max_iter_never_gives_a_worse_model(l1_ratio):
    X, y = load_digits(return_X_y=True)
    previous = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for max_iter in [1, 2, 5, 10, 30, 100]:
            model = SoftmaxRegressor(C=1.0, l1_ratio=l1_ratio, max_iter=max_iter, tol=1e-12)
            value = objective(X, y, model.fit(X, y), 1.0, l1_ratio)
            assert value <= previous * (1 + 1e-12)
            previous = value


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_warm_start_from_any_point_reaches_the_cold_optimum(seed, l1_ratio):
    X, y = load_iris(return_X_y=True)
    cold = fit(SoftmaxRegressor(C=1.0, l1_ratio=l1_ratio, tol=1e-10, max_iter=20_000), X, y)
    rng = np.random.default_rng(seed)
    warm = SoftmaxRegressor(C=1.0, l1_ratio=l1_ratio, tol=1e-10, max_iter=20_000,
                            warm_start=True)
    warm.classes_ = cold.classes_
    warm.coef_ = rng.normal(scale=3.0, size=cold.coef_.shape)
    warm.intercept_ = rng.normal(size=cold.intercept_.shape)
    fit(warm, X, y)
    assert_allclose(objective(X, y, warm, 1.0, l1_ratio), objective(X, y, cold, 1.0, l1_ratio),
                    rtol=1e-9)


def test_a_path_of_c_warm_started_equals_cold_fits():
    X, y = problem(4, True, np.float64)
    path = SoftmaxRegressor(l1_ratio=1.0, tol=1e-10, max_iter=20_000, warm_start=True)
    for C in [0.01, 0.1, 1.0, 10.0]:
        fit(path.set_params(C=C), X, y)
        cold = fit(SoftmaxRegressor(C=C, l1_ratio=1.0, tol=1e-10, max_iter=20_000), X, y)
        assert_allclose(objective(X, y, path, C, 1.0), objective(X, y, cold, C, 1.0), rtol=1e-9)


# --- the API ---------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg", "sag"])
def test_smooth_solvers_refuse_an_l1_term_and_name_the_one_to_use(solver):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=f"solver='{solver}'.*l1_ratio=0.5.*'owl-qn'"):
        SoftmaxRegressor(solver=solver, l1_ratio=0.5).fit(X, y)
    SoftmaxRegressor(solver=solver, l1_ratio=0.0, max_iter=5).fit(X, y)  # fine


@pytest.mark.parametrize("l1_ratio", [-0.1, 1.5, np.nan, "l1"])
def test_l1_ratio_out_of_range_is_a_clear_error(l1_ratio):
    X, y = load_iris(return_X_y=True)
    with pytest.raises((ValueError, TypeError), match="l1_ratio"):
        SoftmaxRegressor(l1_ratio=l1_ratio).fit(X, y)


@pytest.mark.parametrize("l1_ratio", [0.5, 1.0])
def test_c_inf_ignores_l1_ratio_with_a_warning(l1_ratio):
    X, y = load_iris(return_X_y=True)
    with pytest.warns(UserWarning, match="l1_ratio.*ignored with C=np.inf"):
        ignored = SoftmaxRegressor(C=np.inf, l1_ratio=l1_ratio, solver="lbfgs",
                                   max_iter=20).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = SoftmaxRegressor(C=np.inf, solver="lbfgs", max_iter=20).fit(X, y)
    assert_array_equal(ignored.coef_, plain.coef_)


def test_auto_runs_owlqn_for_an_l1_term(capsys):
    X, y = load_iris(return_X_y=True)
    SoftmaxRegressor(l1_ratio=0.5, verbose=1).fit(X, y)
    assert "solver owl-qn" in capsys.readouterr().out


@pytest.mark.parametrize("sparse_X", [False, True])
def test_sparsify_and_densify(sparse_X):
    X, y = problem(3, sparse_X, np.float64)
    model = fit(SoftmaxRegressor(C=0.05, l1_ratio=1.0), X, y)
    dense = model.coef_.copy()
    proba = model.predict_proba(X)
    model.sparsify()
    assert sp.issparse(model.coef_) and model.coef_.nnz == np.count_nonzero(dense)
    assert_allclose(model.predict_proba(X), proba, rtol=1e-12)
    assert_array_equal(model.predict(X), np.asarray(model.classes_)[proba.argmax(axis=1)])
    model.set_params(warm_start=True).fit(X, y)  # a warm start from the sparse coef_
    assert not sp.issparse(model.coef_)
    model.sparsify().densify()
    assert_array_equal(model.coef_, model.coef_)
    assert isinstance(model.coef_, np.ndarray)


# --- the same model as scikit-learn's saga --------------------------------------------------


def _saga(X, y, C, l1_ratio):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-10,
                                  max_iter=100_000).fit(X, y)


@pytest.mark.parametrize("data", ["iris", "wine standardized"])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
@pytest.mark.parametrize("C", [0.01, 1.0])
def test_the_objective_is_no_worse_than_saga(data, l1_ratio, C):
    """(benchmarks/bench_l1.py checks the whole grid of the issue: digits, raw and
    standardized, and the text corpus, with C up to 100, where saga takes minutes.)"""
    if data == "iris":
        X, y = load_iris(return_X_y=True)
    else:
        X, y = load_wine(return_X_y=True)
        X = StandardScaler().fit_transform(X)
    saga = _saga(X, y, C, l1_ratio)
    ours = fit(SoftmaxRegressor(C=C, l1_ratio=l1_ratio, tol=1e-10, max_iter=100_000), X, y)
    f_saga, f_ours = objective(X, y, saga, C, l1_ratio), objective(X, y, ours, C, l1_ratio)
    assert f_ours <= f_saga * (1 + 1e-12)
    assert_optimal(X, y, ours, C, l1_ratio, rtol=1e-8)
    if l1_ratio < 1 and f_ours >= f_saga * (1 - 1e-8):
        # Strictly convex: a unique optimum, which saga has reached: the same zeros.
        assert_array_equal(ours.coef_ == 0, np.abs(saga.coef_) < 1e-8)
