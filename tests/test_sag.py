"""The SAG solver: its epoch loop against a plain NumPy SAG, its fits against the
optimum that L-BFGS and newton-cg reach, and when solver="auto" runs it."""

import io
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import normalize

from softmaxreg import SoftmaxRegressor
from softmaxreg import _sag


def text_like(n=600, d=300, k=4, seed=0, dtype=np.float64):
    """Normalized sparse rows of non-negative values (as TF-IDF), labels from a planted model."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.03, random_state=rng, format="csr", dtype=np.float64)
    X = normalize(X).astype(dtype)
    W = rng.standard_normal((d, k)) * 4
    logits = np.asarray(X @ W)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(0, k - 1)
    return X, y


def objective(X, y, model, C, sample_weight=None):
    logits = np.asarray(X @ model.coef_.T.astype(np.float64)) + model.intercept_
    if logits.shape[1] == 1:
        logits = np.hstack([np.zeros_like(logits), logits])
    labels = np.searchsorted(model.classes_, y)
    top = logits.max(axis=1, keepdims=True)
    ce = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1)) - logits[np.arange(len(y)), labels]
    sw = np.ones(len(y)) if sample_weight is None else sample_weight
    return C * (sw * ce).sum() + 0.5 * (model.coef_.astype(np.float64) ** 2).sum()


def plain_sag_epoch(X, y, order, W, b, sum_grad, sum_b, memory, seen, step, intercept_step,
                    alpha, offset):
    """SAG as written in the paper, dense, one row at a time."""
    k = W.shape[1] + offset
    for i in order:
        z = np.r_[np.zeros(offset), X[i] @ W + b]
        p = np.exp(z - z.max())
        p /= p.sum()
        g = (p - (np.arange(k) == y[i]))[offset:]
        if not seen[i]:
            seen[i] = True
        sum_grad += np.outer(X[i], g - memory[i])
        sum_b += g - memory[i]
        memory[i] = g
        n_seen = seen.sum()
        W *= 1 - step * alpha
        W -= step * sum_grad / n_seen
        b -= intercept_step * sum_b / n_seen
    return W, b


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("storage", ["dense", "csr", "csr with a column map"])
@pytest.mark.parametrize("alpha", [1e-3, 0.5])
def test_epoch_is_plain_sag(offset, storage, alpha):
    """The just-in-time epoch (lazy updates, scaled weights, rescaling when the scale
    falls below 1e-9, as alpha = 0.5 makes it) equals SAG applied to every coefficient
    at every step."""
    rng = np.random.default_rng(offset)
    n, d, m = 80, 12, 3 - 2 * offset
    dense = sp.random(n, d, density=0.3, random_state=rng).toarray()
    y = rng.integers(0, m + offset, n)
    order = rng.integers(0, n, 3 * n)
    step = 0.3
    intercept_step = step if storage == "dense" else 0.01 * step
    W0, b0 = rng.standard_normal((d, m)) * 0.1, rng.standard_normal(m) * 0.1
    expected = plain_sag_epoch(dense, y, order, W0.copy(), b0.copy(), np.zeros((d, m)),
                               np.zeros(m), np.zeros((n, m)), np.zeros(n, bool), step,
                               intercept_step, alpha, offset)
    empty = np.empty(0, np.int64)
    if storage == "dense":
        arrays = (dense.reshape(-1), empty, empty, empty)
    else:
        X = sp.csr_matrix(dense)
        column_map = empty.astype(X.indices.dtype)
        if storage == "csr with a column map":  # X's columns spread over 3 d columns
            X = sp.csr_matrix((X.data, 3 * X.indices, X.indptr), shape=(n, 3 * d))
            column_map = np.zeros(3 * d, dtype=X.indices.dtype)
            column_map[3 * np.arange(d)] = np.arange(d)
        arrays = (X.data, X.indices, X.indptr, column_map)
    both, b = np.hstack([W0, np.zeros((d, m))]), b0.copy()
    state = np.array([1.0, 0.0])
    _sag.sag_epoch(*arrays, d, order, y.astype(np.intp), np.empty(0), offset, True, step,
                   intercept_step, alpha, both, b, np.zeros(m), np.zeros((n, m)),
                   np.zeros(n, np.uint8), state, np.zeros(d, np.int64), np.empty(len(order) + 1),
                   np.empty(2 * (m + offset)))
    V = both[:, :m]
    # (the scaled weights round differently: a few ulp of the largest coefficient)
    assert_allclose(V, expected[0], rtol=1e-8, atol=1e-12 * np.abs(expected[0]).max())
    assert_allclose(b, expected[1], rtol=1e-8, atol=1e-12 * np.abs(expected[1]).max())
    assert state[0] == 1.0 and state[1] == len(np.unique(order))


CASES = {
    "4 classes": dict(),
    "binary": dict(k=2),
    "weights": dict(weights=True),
    "no intercept": dict(fit_intercept=False),
    "balanced classes": dict(class_weight="balanced"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("sparse", [True, False])
def test_sag_reaches_the_optimum(case, sparse):
    """At tol=1e-8, SAG's objective is within 1e-9 (relative) of newton-cg's at tol=1e-10,
    and its coefficients within 1e-5."""
    options = dict(CASES[case])
    X, y = text_like(k=options.pop("k", 4), seed=1)
    sw = None
    if options.pop("weights", False):
        sw = np.random.default_rng(2).uniform(0, 3, len(y))
        sw[::7] = 0
    X = X if sparse else X.toarray()
    C = 10.0
    ref = SoftmaxRegressor(C=C, solver="newton-cg", tol=1e-10, max_iter=500, **options)
    ref.fit(X, y, sample_weight=sw)
    model = SoftmaxRegressor(C=C, solver="sag", tol=1e-8, max_iter=5000, **options)
    model.fit(X, y, sample_weight=sw)
    weights = None if sw is None else sw
    if options.get("class_weight") == "balanced":  # the objective's weights
        counts = np.bincount(y)
        weights = len(y) / (len(counts) * counts[y])
    best = objective(X, y, ref, C, weights)
    assert objective(X, y, model, C, weights) <= best * (1 + 1e-9)
    assert_allclose(model.coef_, ref.coef_, atol=1e-5 * np.abs(ref.coef_).max())
    assert_allclose(model.intercept_, ref.intercept_, atol=1e-5 * max(1, np.abs(ref.intercept_).max()))


def test_sag_float32_and_wide_columns():
    """float32 X, and wide CSR X whose empty columns are left out (the column map)."""
    X, y = text_like(seed=3)
    wide = sp.csr_matrix((X.data, 7 * X.indices, X.indptr), shape=(X.shape[0], 7 * X.shape[1]))
    ref = SoftmaxRegressor(tol=1e-10, max_iter=500).fit(X, y)
    model = SoftmaxRegressor(solver="sag", tol=1e-8, max_iter=5000).fit(wide, y)
    assert_allclose(model.coef_[:, ::7], ref.coef_, atol=1e-5 * np.abs(ref.coef_).max())
    mask = np.ones(wide.shape[1], bool)
    mask[::7] = False
    assert_array_equal(model.coef_[:, mask], 0.0)
    single = SoftmaxRegressor(solver="sag", tol=1e-4, max_iter=5000).fit(X.astype(np.float32), y)
    assert single.coef_.dtype == np.float32
    assert objective(X, y, single, 1.0) <= objective(X, y, ref, 1.0) * (1 + 1e-4)


def test_a_larger_max_iter_is_never_worse_and_fits_repeat():
    """SAG's objective need not fall every epoch; the best epoch is returned, so a larger
    max_iter never gives a worse model. Fits repeat to the bit."""
    X, y = text_like(seed=4)
    values = []
    for max_iter in (1, 2, 3, 5, 8, 13):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = SoftmaxRegressor(solver="sag", tol=1e-12, max_iter=max_iter).fit(X, y)
        values.append(objective(X, y, model, 1.0))
    assert all(b <= a for a, b in zip(values, values[1:]))
    one = SoftmaxRegressor(solver="sag").fit(X, y)
    two = SoftmaxRegressor(solver="sag").fit(X, y)
    assert_array_equal(one.coef_, two.coef_)


def test_warm_start_from_any_point_reaches_the_cold_optimum():
    X, y = text_like(seed=5)
    cold = SoftmaxRegressor(solver="sag", tol=1e-8, max_iter=5000).fit(X, y)
    warm = SoftmaxRegressor(solver="sag", tol=1e-8, max_iter=5000, warm_start=True)
    warm.coef_ = np.random.default_rng(0).standard_normal(cold.coef_.shape)
    warm.intercept_ = cold.intercept_ + 1.0
    warm.fit(X, y)
    assert_allclose(warm.coef_, cold.coef_, atol=1e-5 * np.abs(cold.coef_).max())


def test_not_converging_says_so():
    X, y = text_like(seed=6)
    with pytest.warns(ConvergenceWarning, match=r"\(sag\) did not converge after 2 iterations"):
        SoftmaxRegressor(solver="sag", tol=1e-10, max_iter=2).fit(X, y)


def test_columns_of_extreme_magnitude_are_refused():
    X, y = text_like(seed=7)
    X = X.tolil()
    X[:, 0] = 1e-290  # rescaled by the solvers: its own penalty, which SAG cannot take
    with pytest.raises(ValueError, match="solver='sag' needs one finite penalty.*extreme"):
        SoftmaxRegressor(solver="sag").fit(X.tocsr(), y)
    SoftmaxRegressor().fit(X.tocsr(), y)  # auto takes another solver
    with pytest.raises(ValueError, match="solver='sag' needs one finite penalty.*C is so small"):
        X, y = text_like(seed=7)
        SoftmaxRegressor(solver="sag", C=1e-300).fit(X, y, sample_weight=np.full(len(y), 1e-12))


def _solver_of(model, X, y):
    out = io.StringIO()
    with redirect_stdout(out):
        model.set_params(verbose=1).fit(X, y)
    return out.getvalue().splitlines()[0].split("; solver ")[1].split(",")[0]


def test_auto_runs_sag_on_normalized_sparse_rows_only():
    """Normalized sparse rows (C L = 1 here): SAG. The same rows dense, scaled up 5 times,
    with C = 100, or from a warm start: not SAG."""
    X, y = text_like(seed=8)
    assert _solver_of(SoftmaxRegressor(), X, y) == "sag"
    assert _solver_of(SoftmaxRegressor(), X.toarray(), y) != "sag"
    assert _solver_of(SoftmaxRegressor(), 5 * X, y) != "sag"
    assert _solver_of(SoftmaxRegressor(C=100.0), X, y) != "sag"
    with warnings.catch_warnings():  # separable without a penalty: it warns, as it should
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert _solver_of(SoftmaxRegressor(C=np.inf), X, y) != "sag"
    warm = SoftmaxRegressor(warm_start=True).fit(X, y)
    assert _solver_of(warm, X, y) == "newton-cg (warm start)"
