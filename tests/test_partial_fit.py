"""partial_fit: passes over the chunks of a data set converge to fit's model on it.

The algorithm (``softmaxreg/_partial_fit.py``) is the incremental proximal method: each
call solves the chunk's part of the objective (the penalty scaled for the weight of
the distinct chunks seen) plus a proximal term whose weight grows with the weight seen.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification

from softmaxreg import SoftmaxRegressor


def passes(model, X, y, n_chunks, n_passes, sample_weight=None, classes=None):
    """Yield the model after each pass of partial_fit over n_chunks chunks, in order."""
    chunks = np.array_split(np.arange(X.shape[0]), n_chunks)
    classes = np.unique(y) if classes is None else classes
    for p in range(n_passes):
        for i, rows in enumerate(chunks):
            w = None if sample_weight is None else sample_weight[rows]
            model.partial_fit(X[rows], y[rows], classes=classes if p == i == 0 else None,
                              sample_weight=w)
        yield model


@pytest.fixture(scope="module")
def p1():
    """The benchmarks' problem P1: 200,000 x 100, 10 classes, standardized."""
    X, y = make_classification(200_000, 100, n_informative=32, n_classes=10,
                               n_clusters_per_class=1, random_state=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return np.ascontiguousarray(X), y


def test_p1_in_ten_chunks_meets_the_issue_targets(objective, p1):
    """One pass within 1e-2 and ten passes within 1e-3 relative objective of fit's."""
    X, y = p1
    optimum = objective(X, y, SoftmaxRegressor(tol=1e-8, max_iter=1000).fit(X, y))
    gaps = [(objective(X, y, m) - optimum) / optimum
            for m in passes(SoftmaxRegressor(), X, y, 10, 10)]
    assert gaps[0] < 1e-2
    assert gaps[-1] < 1e-3
    assert gaps[-1] < gaps[0] / 2  # more passes move on towards the optimum
    assert min(gaps) > -1e-9  # never below the optimum: the same objective


def _problem(kind):
    rng = np.random.default_rng(0)
    n, d, k = 4000, 15, 2 if kind == "binary" else 4
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, d) + rng.normal(size=d) * 5
    y = np.argmax((X - X.mean(0)) @ (rng.normal(size=(d, k)) / X.std(0)[:, None])
                  + rng.gumbel(size=(n, k)), axis=1)
    if kind == "sparse":
        X[rng.random(X.shape) < 0.7] = 0
        X = sp.csr_matrix(X)
    if kind == "float32":
        X = X.astype(np.float32)
    return X, y


@pytest.mark.parametrize("kind, params, weighted", [
    ("dense", dict(), False),
    ("binary", dict(), True),
    ("sparse", dict(), False),
    ("float32", dict(tol=1e-5), False),
    ("dense", dict(C=0.05), True),
    ("dense", dict(fit_intercept=False), False),
    ("dense", dict(class_weight={0: 3.0, 1: 0.5}), False),
    ("sparse", dict(l1_ratio=0.5, max_iter=500), False),
])
def test_passes_converge_to_fit(objective, kind, params, weighted):
    X, y = _problem(kind)
    w = np.random.default_rng(1).uniform(0.2, 2, len(y)) if weighted else None
    C, l1 = params.get("C", 1.0), params.get("l1_ratio", 0.0)
    sw = w
    if "class_weight" in params:
        cw = np.array([params["class_weight"].get(c, 1.0) for c in range(4)])
        sw = (np.ones(len(y)) if w is None else w) * cw[y]
    ref = SoftmaxRegressor(**(params | dict(tol=1e-9, max_iter=5000))).fit(X, y, sample_weight=w)
    optimum = objective(X, y, ref, C, sw, l1)
    gaps = [(objective(X, y, m, C, sw, l1) - optimum) / optimum
            for m in passes(SoftmaxRegressor(**params), X, y, 8, 10, sample_weight=w)]
    # Chunks of 500 rows (P1's have 20,000): one pass is rougher, then passes converge.
    assert gaps[0] < 5e-2, gaps
    assert gaps[-1] < 1e-3, gaps
    assert all(b < a for a, b in zip(gaps[:5], gaps[1:6])), gaps
    assert min(gaps) > -1e-6


def test_a_repeated_chunk_counts_once_in_the_penalty():
    """Passes over a single chunk converge to fit on it, with its penalty (C S)."""
    X, y = _problem("dense")
    X, y = X[:500], y[:500]
    model = SoftmaxRegressor(C=0.1)
    for _ in range(5):
        model.partial_fit(X, y, classes=np.unique(y))
    ref = SoftmaxRegressor(C=0.1, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-4 * np.abs(ref.coef_).max())
    assert model.n_samples_seen_ == 2500


def test_chunks_sorted_by_class_converge_too(objective):
    """The first chunks hold a single class (no finite optimum alone)."""
    X, y = _problem("dense")
    order = np.argsort(y, kind="stable")
    X, y = np.ascontiguousarray(X[order]), y[order]
    optimum = objective(X, y, SoftmaxRegressor(tol=1e-9, max_iter=1000).fit(X, y))
    gaps = [(objective(X, y, m) - optimum) / optimum
            for m in passes(SoftmaxRegressor(), X, y, 8, 10)]
    assert np.isfinite(gaps).all()
    assert all(b < a for a, b in zip(gaps, gaps[1:]))
    assert gaps[-1] < 1e-3, gaps


def test_a_stream_from_memmap_and_generator(objective, tmp_path):
    X, y = _problem("dense")
    np.save(tmp_path / "X.npy", X)
    X_map = np.load(tmp_path / "X.npy", mmap_mode="r")

    def stream(source):
        for rows in np.array_split(np.arange(len(y)), 10):
            yield source[rows], y[rows]

    models = []
    for source in (X, X_map):
        model = SoftmaxRegressor()
        for _ in range(3):
            for x_chunk, y_chunk in stream(source):
                model.partial_fit(x_chunk, y_chunk, classes=np.arange(4))
        models.append(model)
    np.testing.assert_array_equal(models[0].coef_, models[1].coef_)
    ref = SoftmaxRegressor(tol=1e-9).fit(X, y)
    gap = (objective(X, y, models[0]) - objective(X, y, ref)) / objective(X, y, ref)
    assert 0 <= gap + 1e-9 and gap < 1e-2


def test_partial_fit_of_a_dask_array_is_a_pass_over_its_chunks():
    da = pytest.importorskip("dask.array")
    X, y = _problem("dense")
    dX = da.from_array(X, chunks=(500, -1))
    dy = da.from_array(y, chunks=500)
    loop = SoftmaxRegressor()
    for i in range(dX.numblocks[0]):
        loop.partial_fit(X[i * 500:(i + 1) * 500], y[i * 500:(i + 1) * 500],
                         classes=np.arange(4) if i == 0 else None)
    model = SoftmaxRegressor().partial_fit(dX, dy, classes=np.arange(4))
    np.testing.assert_array_equal(model.coef_, loop.coef_)


def test_dask_ml_incremental_drives_partial_fit(objective):
    pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    import dask.array as da

    X, y = _problem("dense")
    dX = da.from_array(X, chunks=(500, -1))
    dy = da.from_array(y, chunks=500)
    incremental = wrappers.Incremental(SoftmaxRegressor(), shuffle_blocks=False)
    for _ in range(3):
        incremental.partial_fit(dX, dy, classes=np.arange(4))
    model = incremental.estimator_
    ref = SoftmaxRegressor(tol=1e-9).fit(X, y)
    gap = (objective(X, y, model) - objective(X, y, ref)) / objective(X, y, ref)
    assert -1e-9 < gap < 1e-2
    assert isinstance(incremental.predict(dX), da.Array)


def test_partial_fit_errors_name_the_problem():
    X, y = _problem("dense")
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        SoftmaxRegressor().partial_fit(X, y)
    model = SoftmaxRegressor().partial_fit(X[:100], y[:100], classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"labels \[7\] that are not in classes"):
        model.partial_fit(X[:10], np.full(10, 7))
    with pytest.raises(ValueError, match="not the same as the model.s classes_"):
        model.partial_fit(X[:10], y[:10], classes=[0, 1, 2])
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:10, :3], y[:10])
    with pytest.raises(ValueError, match="balanced"):
        SoftmaxRegressor(class_weight="balanced").partial_fit(X, y, classes=np.arange(4))
    with pytest.raises(ValueError, match="at least 2 classes"):
        SoftmaxRegressor().partial_fit(X, y, classes=[0])
    with pytest.raises(ValueError, match="NaN"):
        bad = X[:10].copy()
        bad[0, 0] = np.nan
        model.partial_fit(bad, y[:10])


def test_fit_ends_a_stream_and_partial_fit_continues_from_fit():
    X, y = _problem("dense")
    model = SoftmaxRegressor().partial_fit(X[:2000], y[:2000], classes=np.arange(4))
    assert model.n_samples_seen_ == 2000
    model.fit(X, y)
    assert not hasattr(model, "_stream")
    fitted = model.coef_.copy()
    model.partial_fit(X[2000:], y[2000:])  # a new stream, from fit's model
    assert model.n_samples_seen_ == 2000
    assert not np.array_equal(model.coef_, fitted)
    # the same classes again continue the stream (as in SGDClassifier)
    model.partial_fit(X[:10], y[:10], classes=np.arange(4))
    assert model.n_samples_seen_ == 2010


def test_zero_weight_chunk_changes_nothing():
    X, y = _problem("dense")
    model = SoftmaxRegressor().partial_fit(X[:1000], y[:1000], classes=np.arange(4))
    before = model.coef_.copy()
    model.partial_fit(X[1000:1100], y[1000:1100], sample_weight=np.zeros(100))
    np.testing.assert_array_equal(model.coef_, before)
    assert model.n_samples_seen_ == 1100


@pytest.mark.parametrize("fault", ["label", "nan", "short y", "zero weights"])
def test_a_failed_first_call_leaves_the_estimator_unfitted(fault):
    from sklearn.exceptions import NotFittedError

    X, y = _problem("dense")
    model = SoftmaxRegressor()
    kwargs = dict(classes=[0, 1, 2, 3])
    if fault == "label":
        kwargs["classes"] = [0, 1]
    elif fault == "nan":
        X = X.copy()
        X[0, 0] = np.nan
    elif fault == "short y":
        y = y[:-1]
    else:
        kwargs["sample_weight"] = np.zeros(len(y))
    with pytest.raises(ValueError):
        model.partial_fit(X, y, **kwargs)
    with pytest.raises(NotFittedError):
        model.predict(X)
    X, y = _problem("dense")
    model.partial_fit(X, y, classes=[0, 1, 2, 3])  # starts cleanly
    assert model.n_samples_seen_ == len(y)
