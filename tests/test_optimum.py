"""Every fit ends at the optimum, or says honestly why not.

Warm starts from anywhere, stalls that are not convergence, one iteration budget that a
larger max_iter only extends, features that do not vary, and weights of any scale.
Objectives are compared with a tight newton-cg fit of the same problem, in float64.
"""

import functools
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine, make_classification
from sklearn.exceptions import ConvergenceWarning

from softmaxreg import SoftmaxRegressor
from softmaxreg._objective import LinearSoftmaxObjective

SOLVERS = ["auto", "lbfgs", "newton-cg"]


def raw(loader):
    X, y = loader(return_X_y=True)
    return np.ascontiguousarray(X, dtype=np.float64), y


def binary():
    X, y = make_classification(300, 6, n_informative=4, flip_y=0.1, random_state=0)
    return X * [1, 1e3, 1, 1e-3, 1, 10] + [0, 5e3, 0, 0, -7, 0], y


DATA = {  # raw features, as users pass them
    "iris": lambda: raw(load_iris),
    "wine": lambda: raw(load_wine),
    "breast_cancer": lambda: raw(load_breast_cancer),
    "digits": lambda: raw(load_digits),
    "binary": binary,
}


def objective(X, y, model, C, sample_weight=None):
    """F of a fitted model (LogisticRegression's objective over C S), in float64."""
    labels = np.searchsorted(model.classes_, y)
    sw = np.empty(0) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    f = LinearSoftmaxObjective(
        np.ascontiguousarray(X, dtype=np.float64), labels, len(model.classes_), sw,
        C=C, fit_intercept=model.fit_intercept, n_threads=1,
    )
    return f.loss_gradient(f.pack(model.coef_, model.intercept_))[0]


@functools.cache
def optimum(name, C):
    """F* of a data set at C: newton-cg to tol=1e-12."""
    X, y = DATA[name]()
    m = SoftmaxRegressor(C=C, solver="newton-cg", tol=1e-12, max_iter=1000).fit(X, y)
    return objective(X, y, m, C)


def fit_quietly(model, X, y, **kwargs):
    """fit, returning the ConvergenceWarnings it gave."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, y, **kwargs)
    return [w for w in record if issubclass(w.category, ConvergenceWarning)]


def no_convergence_warning():
    context = warnings.catch_warnings()
    context.__enter__()
    warnings.simplefilter("error", ConvergenceWarning)
    return context


# ---------------------------------------------------------------------------
# Warm starts from anywhere
# ---------------------------------------------------------------------------


def test_warm_start_from_the_far_end_of_a_path_reaches_the_cold_optimum():
    """Raw digits fitted at C=1e4, then warm-started at C=1e-4: the trust region bounds the
    Newton steps that a saturated softmax makes unbounded (CG directions of norm ~1e19), so
    newton-cg reaches the cold optimum without a warning: within 1e-8 relative of
    LogisticRegression's objective C sum(CE) + ||W||^2 / 2 = 0.183 (it stopped at 1.99)."""
    X, y = DATA["digits"]()
    model = SoftmaxRegressor(warm_start=True, C=1e4).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model.set_params(C=1e-4).fit(X, y)
    value = objective(X, y, model, 1e-4)
    # F is LogisticRegression's objective divided by C S (S = n here).
    assert_allclose(1e-4 * len(y) * optimum("digits", 1e-4), 0.183, rtol=5e-3)
    assert value <= optimum("digits", 1e-4) * (1 + 1e-8)


@pytest.mark.parametrize("name", ["iris", "wine", "binary"])
@pytest.mark.parametrize("C", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("scale", [1e-2, 1.0, 1e2, 1e4])
@pytest.mark.parametrize("seed", [0, 1])
def test_warm_start_from_any_point_reaches_the_cold_optimum(name, C, scale, seed):
    """From random coefficients and intercepts of any size (logits up to ~1e4, most softmax
    rows saturated), a warm start reaches the cold optimum within 1e-8 relative with no
    warning (auto: newton-cg). L-BFGS, which may stall at tol=1e-8, is at the optimum
    whenever it does not warn."""
    X, y = DATA[name]()
    rng = np.random.default_rng(seed)
    n_classes = len(np.unique(y))
    rows = 1 if n_classes == 2 else n_classes
    coef = scale * rng.standard_normal((rows, X.shape[1])) / np.abs(X).max(axis=0)
    intercept = scale * rng.standard_normal(rows)
    for solver in SOLVERS:
        model = SoftmaxRegressor(C=C, warm_start=True, tol=1e-8, max_iter=500, solver=solver)
        model.coef_, model.intercept_ = coef.copy(), intercept.copy()
        warned = fit_quietly(model, X, y)
        assert solver == "lbfgs" or not warned, (solver, warned and str(warned[0].message))
        if not warned:
            assert objective(X, y, model, C) <= optimum(name, C) * (1 + 1e-8), solver


# ---------------------------------------------------------------------------
# Stalls are not convergence; one budget; a larger max_iter is never worse
# ---------------------------------------------------------------------------


def test_a_stall_is_not_convergence():
    """Raw digits, C=1000, tol=1e-10, max_iter=10000: the fit reaches tol (gap below 1e-10)
    instead of stopping where L-BFGS-B's objective stops decreasing; with max_iter=1000 it is
    the same model. solver="lbfgs" alone gets there too (its line search keeps descending
    below the rounding of F, on the slope), or says that it stalled."""
    X, y = DATA["digits"]()
    models = {}
    for max_iter in (1000, 10_000):
        models[max_iter] = SoftmaxRegressor(C=1000, tol=1e-10, max_iter=max_iter)
        assert not fit_quietly(models[max_iter], X, y)
        assert objective(X, y, models[max_iter], 1000) <= optimum("digits", 1000) * (1 + 1e-10)
    assert_allclose(models[10_000].coef_, models[1000].coef_, rtol=0, atol=1e-6)
    lbfgs = SoftmaxRegressor(C=1000, tol=1e-10, max_iter=10_000, solver="lbfgs")
    warned = fit_quietly(lbfgs, X, y)
    if warned:
        (warning,) = warned
        assert "stopped making progress" in str(warning.message)
        assert "solver='auto' or 'newton-cg'" in str(warning.message)
    else:
        assert objective(X, y, lbfgs, 1000) <= optimum("digits", 1000) * (1 + 1e-10)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("name, C", [("digits", 1000.0), ("wine", 1.0), ("binary", np.inf)])
def test_a_larger_max_iter_never_gives_a_worse_model(solver, name, C):
    """Along max_iter = 0, 1, 2, 3, 5, ... 233, the objective never increases beyond its
    rounding (newton-cg takes steps that F cannot resolve when they reduce the gradient),
    n_iter_[0] never exceeds max_iter (auto: L-BFGS and newton-cg share it), and a fit that
    does not warn is at the optimum."""
    X, y = DATA[name]()
    previous = np.inf
    for max_iter in (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233):
        model = SoftmaxRegressor(C=C, tol=1e-8, max_iter=max_iter, solver=solver)
        warned = fit_quietly(model, X, y)
        value = objective(X, y, model, C)
        assert model.n_iter_.shape == (1,) and model.n_iter_.dtype == np.int32
        assert model.n_iter_[0] <= max_iter
        assert value <= previous * (1 + 64 * np.finfo(np.float64).eps), (max_iter, value, previous)
        if not warned:
            assert value <= optimum(name, C) * (1 + 1e-8)
        previous = value


@pytest.mark.parametrize("solver", SOLVERS)
def test_max_iter_zero_returns_the_start(solver):
    """max_iter=0: zeros from a cold start, the previous model from a warm start, with
    n_iter_ == [0] and a ConvergenceWarning where the start is not optimal."""
    X, y = DATA["wine"]()
    model = SoftmaxRegressor(max_iter=0, solver=solver)
    with pytest.warns(ConvergenceWarning, match="max_iter=0"):
        model.fit(X, y)
    assert_array_equal(model.n_iter_, [0])
    assert not model.coef_.any() and not model.intercept_.any()
    start = SoftmaxRegressor(C=0.1).fit(X, y)
    warm = SoftmaxRegressor(C=10.0, max_iter=0, warm_start=True, solver=solver)
    warm.coef_, warm.intercept_ = start.coef_.copy(), start.intercept_.copy()
    with pytest.warns(ConvergenceWarning):
        warm.fit(X, y)
    assert_allclose(warm.coef_, start.coef_, rtol=1e-12, atol=1e-15)
    assert_allclose(warm.intercept_, start.intercept_, rtol=1e-12, atol=1e-12)
    assert_array_equal(warm.n_iter_, [0])


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits"])
def test_default_fits_converge_on_raw_real_data(name):
    """Real data as it comes, features from 1e-3 (breast cancer's fractal dimension) to 1e3
    (wine's proline, breast cancer's area): the default fit converges within max_iter with no
    warning, at an objective gap of at most 1e-8."""
    X, y = DATA[name]()
    model = SoftmaxRegressor()
    assert not fit_quietly(model, X, y)
    assert objective(X, y, model, 1.0) <= optimum(name, 1.0) * (1 + 1e-8)


# ---------------------------------------------------------------------------
# Features that do not vary
# ---------------------------------------------------------------------------


def overlapping():
    """Three classes that overlap (labels flipped at random), features of full rank and of
    different scales: a unique, finite optimum even at C=inf."""
    X, y = make_classification(
        200, 4, n_informative=4, n_redundant=0, n_classes=3, flip_y=0.3, random_state=0
    )
    return X * [1, 1e2, 1e-2, 1] + [0, 0, 3, -1e3], y


@pytest.mark.parametrize("C", [1.0, 1e15, 1e30, np.inf])
@pytest.mark.parametrize("constant", [1.0, 1.7e9, 0.0, -3e-200])
@pytest.mark.parametrize("weight_scale", [None, 1e-300, 1e300])
def test_a_constant_column_changes_nothing(C, constant, weight_scale):
    """A constant column (ones, a timestamp 1.7e9, zeros, a tiny value) placed among the
    features gets coefficients of exactly 0, and the model equals the fit without it, at any
    C and any sample-weight scale."""
    X, y = overlapping()
    sw = None if weight_scale is None else weight_scale * np.linspace(0.5, 2, len(y))
    with_constant = np.c_[X[:, :1], np.full(len(y), constant), X[:, 1:]]
    a = SoftmaxRegressor(C=C, tol=1e-10, max_iter=1000).fit(with_constant, y, sw)
    b = SoftmaxRegressor(C=C, tol=1e-10, max_iter=1000).fit(X, y, sw)
    assert_array_equal(a.coef_[:, 1], 0.0)
    assert_allclose(np.delete(a.coef_, 1, axis=1), b.coef_, rtol=1e-9, atol=1e-12)
    assert_allclose(a.intercept_, b.intercept_, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("C", [1e15, 1e30])
def test_a_column_of_ones_next_to_separable_iris(C):
    """Iris plus a column of ones at C=1e15 and 1e30: the column's coefficients are exactly 0
    (they were [13.4, -1.3, 6.1]) and the fit is that without the column (its intercepts had
    shifted by ~7): the same objective and probabilities, intercepts within 0.1. Setosa is
    separable, so the optimum lies far out along a nearly flat valley, where fits that round
    differently (L-BFGS-B's dot products over 15 or 18 parameters, 1 or 2 threads) stop
    at points whose coefficients differ by a few percent along the valley, within tol."""
    X, y = raw(load_iris)
    a, b = SoftmaxRegressor(C=C), SoftmaxRegressor(C=C)
    fit_quietly(a, np.c_[X, np.ones(len(y))], y)
    fit_quietly(b, X, y)
    assert_array_equal(a.coef_[:, -1], 0.0)
    with_ones = np.c_[X, np.ones(len(y))]
    # Both stop ~2e-5 above the optimum, out along the flat valley (tol=1e-4 relative
    # gradient): their objectives agree far closer than that.
    assert_allclose(objective(with_ones, y, a, C), objective(X, y, b, C), rtol=1e-6)
    assert_allclose(a.intercept_, b.intercept_, rtol=0, atol=0.1)
    # Along the valley, points within tol differ in probability by a few 1e-6.
    assert_allclose(a.predict_proba(with_ones), b.predict_proba(X), atol=1e-5)


# ---------------------------------------------------------------------------
# Weights of any scale
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("exponent", [-1000, -60, 3, 60, 1000])
def test_scaling_the_weights_by_a_power_of_two_is_scaling_c(exponent):
    """sample_weight * 2**e at C fits exactly (bitwise) the model of sample_weight at
    C * 2**e: weights are rescaled internally, so no sum of them overflows or underflows."""
    X, y = DATA["wine"]()
    sw = np.random.default_rng(0).uniform(0.5, 2, len(y))
    a = SoftmaxRegressor(C=0.5).fit(X, y, np.ldexp(sw, exponent))
    b = SoftmaxRegressor(C=np.ldexp(0.5, exponent)).fit(X, y, sw)
    assert_array_equal(a.coef_, b.coef_)
    assert_array_equal(a.intercept_, b.intercept_)


@pytest.mark.parametrize("scale", [1e-300, 3.7, 1e300, 1e307])
def test_scaling_the_weights_is_scaling_c(scale):
    """Any scale c of the weights is C * c, to the tolerance of the fit (C * c beyond the
    float64 range is the unpenalized model)."""
    X, y = overlapping()
    a = SoftmaxRegressor(C=0.01, tol=1e-10).fit(X, y, np.full(len(y), scale))
    b = SoftmaxRegressor(C=0.01 * scale, tol=1e-10).fit(X, y)
    assert np.isfinite(a.coef_).all()
    assert_allclose(a.coef_, b.coef_, rtol=1e-7)
    assert_allclose(a.intercept_, b.intercept_, rtol=1e-7, atol=1e-9)


def test_huge_weights_give_a_finite_model():
    """Iris (every 5th row) with sample_weight=1e307 (which summed to infinity and gave an
    all-NaN coef_): finite coefficients, those of unit weights with C = 1e307 (setosa is
    separable, so both warn that the coefficients grow without bound)."""
    X, y = raw(load_iris)
    X, y = X[::5], y[::5]
    a, b = SoftmaxRegressor(), SoftmaxRegressor(C=1e307)
    (warning,) = fit_quietly(a, X, y, sample_weight=np.full(30, 1e307))
    assert "separable" in str(warning.message)
    fit_quietly(b, X, y)
    assert np.isfinite(a.coef_).all() and np.isfinite(a.intercept_).all()
    assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-6)


def test_an_unpenalized_fit_that_stops_at_max_iter_says_why():
    """C=np.inf on breast cancer (separable): at max_iter=100 the objective is still 1% of
    its start, yet the warning says that with no penalty there may be no finite optimum."""
    X, y = raw(load_breast_cancer)
    with pytest.warns(ConvergenceWarning, match="C=np.inf there is no penalty.*finite"):
        SoftmaxRegressor(C=np.inf).fit(X, y)
