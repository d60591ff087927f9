"""Fits on Dask arrays, on a ``distributed.LocalCluster`` that these tests start and stop.

The cluster has 2 worker processes of 1 thread each, on the loopback address only. A
Dask fit must give the in-memory fit of the same data (objective within 1e-8 relative,
coefficients within 1e-6), the same model for the same chunking every time, the same
model when a worker is lost mid-fit, and the same errors as in memory.
"""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import scipy.sparse as sp

from softmaxreg import SoftmaxRegressor

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


def _cluster(n_workers=2):
    return distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0", protocol="tcp",
    )


@pytest.fixture(scope="module")
def client():
    with _cluster() as cluster, distributed.Client(cluster) as c:
        yield c


def _data(n=3000, d=12, k=4, seed=0, sparse=False, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.logspace(-2, 2, d)
    X[:, 0] += 50.0  # a large mean: the standardization must merge moments right
    truth = rng.normal(size=(d, k)) / np.logspace(-2, 2, d)[:, None]
    y = np.argmax((X - X.mean(axis=0)) @ truth + rng.gumbel(size=(n, k)), axis=1)
    if sparse:
        X[rng.random(X.shape) < 0.6] = 0.0
        X[:, 3] = 0.0  # a column with no entry
        X = sp.csr_matrix(X.astype(dtype))
    else:
        X = X.astype(dtype)
    return X, y


def _dask(X, y, chunk, w=None):
    dX = da.from_array(X, chunks=(chunk, -1), asarray=not sp.issparse(X))
    dy = da.from_array(y, chunks=chunk)
    dw = None if w is None else da.from_array(w, chunks=chunk)
    return dX, dy, dw


CASES = [
    # (sparse, dtype, k, params, weighted)
    (False, np.float64, 4, dict(), False),
    (False, np.float64, 4, dict(solver="lbfgs"), True),
    (False, np.float64, 2, dict(solver="newton-cg"), True),
    (False, np.float64, 4, dict(l1_ratio=0.5, max_iter=3000), False),
    (False, np.float64, 3, dict(class_weight="balanced"), True),
    (False, np.float64, 4, dict(fit_intercept=False, C=10.0), False),
    (False, np.float64, 2, dict(C=np.inf, max_iter=300), False),
    (True, np.float64, 4, dict(), True),
    (True, np.float64, 2, dict(l1_ratio=1.0, max_iter=3000), False),
    (True, np.float64, 4, dict(class_weight={0: 2.0, 2: 0.5}, solver="lbfgs"), False),
]


@pytest.mark.parametrize("sparse, dtype, k, params, weighted", CASES)
def test_dask_fit_equals_the_in_memory_fit(objective, client, sparse, dtype, k, params,
                                           weighted):
    X, y = _data(k=k, sparse=sparse, dtype=dtype)
    w = np.random.default_rng(1).uniform(0, 3, len(y)) if weighted else None
    params = dict(tol=1e-10, max_iter=1000) | params
    ref = SoftmaxRegressor(**params).fit(X, y, sample_weight=w)
    dX, dy, dw = _dask(X, y, 700, w)
    model = SoftmaxRegressor(**params).fit(dX, dy, sample_weight=dw)
    C, l1 = params.get("C", 1.0), params.get("l1_ratio", 0.0)
    if np.isfinite(C):
        # class weights enter the objective as weights
        sw = np.ones(len(y)) if w is None else w
        if "class_weight" in params:
            from sklearn.utils.class_weight import compute_sample_weight
            sw = sw * compute_sample_weight(params["class_weight"], y)
            if params["class_weight"] == "balanced" and w is not None:
                counts = np.bincount(y, weights=w)
                sw = w * (counts.sum() / (k * counts))[y]
        f_ref = objective(X, y, ref, C, sw, l1)
        f = objective(X, y, model, C, sw, l1)
        assert abs(f - f_ref) <= 1e-8 * abs(f_ref)
    scale = max(1.0, np.abs(ref.coef_).max())
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(model.intercept_, ref.intercept_, rtol=0,
                               atol=1e-6 * max(1.0, np.abs(ref.intercept_).max()))
    assert model.coef_.dtype == ref.coef_.dtype
    assert model.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(model.classes_, ref.classes_)


def test_float32_dask_fit_is_the_in_memory_fit_to_float32_rounding(objective, client):
    X, y = _data(dtype=np.float32)
    ref = SoftmaxRegressor(tol=1e-6).fit(X, y)
    model = SoftmaxRegressor(tol=1e-6).fit(*_dask(X, y, 500)[:2])
    assert model.coef_.dtype == np.float32
    # Both stop within tol of the optimum, at points that float32 sums tell apart.
    f_ref, f = (objective(X, y, m) for m in (ref, model))
    assert abs(f - f_ref) <= 1e-6 * f_ref


def test_same_chunking_same_model_bit_for_bit(client):
    X, y = _data()
    fits = [SoftmaxRegressor(tol=1e-8).fit(*_dask(X, y, 400)[:2]) for _ in range(2)]
    np.testing.assert_array_equal(fits[0].coef_, fits[1].coef_)
    np.testing.assert_array_equal(fits[0].intercept_, fits[1].intercept_)


@pytest.mark.parametrize("chunks", [(3000,), (1, 2999), (1000, 0, 2000), (7,) * 428 + (4,)])
def test_any_chunking_gives_the_in_memory_model(client, chunks):
    X, y = _data()
    ref = SoftmaxRegressor(tol=1e-10).fit(X, y)
    dX = da.from_array(X, chunks=(chunks, -1))
    dy = da.from_array(y, chunks=(chunks,))
    model = SoftmaxRegressor(tol=1e-10).fit(dX, dy)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-6 * np.abs(ref.coef_).max())


def test_a_label_in_a_single_chunk_is_a_class(client):
    X, y = _data(k=3)
    y = np.array(["a", "b", "c"])[y].astype(object)
    y[:5] = "only-here"  # in the first chunk alone
    ref = SoftmaxRegressor(tol=1e-10).fit(X, y)
    dX, dy, _ = _dask(X, y, 500)
    model = SoftmaxRegressor(tol=1e-10).fit(dX, dy)
    assert model.classes_.tolist() == ["a", "b", "c", "only-here"]
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-6 * np.abs(ref.coef_).max())
    # y may also be an in-memory array beside a Dask X, and chunked otherwise
    model2 = SoftmaxRegressor(tol=1e-10).fit(dX, da.from_array(y, chunks=333))
    np.testing.assert_array_equal(model2.coef_, model.coef_)


def _error(fit):
    with pytest.raises((ValueError, TypeError)) as info:
        fit()
    return info.type, str(info.value)


@pytest.mark.parametrize("fault", ["nan X", "inf X", "nan y", "negative weight", "float y",
                                   "one class", "zero weights"])
def test_a_bad_chunk_gives_the_in_memory_error(client, fault):
    X, y = _data()
    y = y.astype(np.float64)
    w = np.ones(len(y))
    if fault == "nan X":
        X[2500, 3] = np.nan  # in the last chunk
    elif fault == "inf X":
        X[1234, 0] = np.inf
    elif fault == "nan y":
        y[2999] = np.nan
    elif fault == "negative weight":
        w[1500] = -1.0
    elif fault == "float y":
        y[10] = 0.5
    elif fault == "one class":
        y[:] = 1.0
    elif fault == "zero weights":
        w[:] = 0.0
    expected = _error(lambda: SoftmaxRegressor().fit(X, y, sample_weight=w))
    dX, dy, dw = _dask(X, y, 700, w)
    assert _error(lambda: SoftmaxRegressor().fit(dX, dy, sample_weight=dw)) == expected


def test_dask_input_errors_name_the_problem(client):
    X, y = _data()
    dX, dy, _ = _dask(X, y, 700)
    with pytest.raises(ValueError, match=r"chunked by rows only.*rechunk"):
        SoftmaxRegressor().fit(da.from_array(X, chunks=(700, 6)), dy)
    unknown = dX[dX[:, 0] > -np.inf]  # boolean indexing: chunk sizes unknown
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        SoftmaxRegressor().fit(unknown, dy)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        SoftmaxRegressor().fit(dX, dy[:-1])
    with pytest.raises(ValueError, match="2-D"):
        SoftmaxRegressor().fit(dX[:, 0], dy)
    with pytest.raises(ValueError, match="'sag' runs serially"):
        SoftmaxRegressor(solver="sag").fit(dX, dy)
    with pytest.raises(TypeError, match="real numbers"):
        SoftmaxRegressor().fit(dX.astype(str), dy)


def test_warm_start_on_dask_reaches_the_cold_optimum(client):
    X, y = _data()
    dX, dy, _ = _dask(X, y, 700)
    model = SoftmaxRegressor(C=0.01, tol=1e-10, warm_start=True).fit(dX, dy)
    model.set_params(C=10.0).fit(dX, dy)
    cold = SoftmaxRegressor(C=10.0, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(model.coef_, cold.coef_, rtol=0, atol=1e-6 * np.abs(cold.coef_).max())


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("k", [2, 4])
def test_predictions_of_dask_arrays_are_lazy_dask_arrays(client, sparse, k):
    X, y = _data(k=k, sparse=sparse)
    model = SoftmaxRegressor().fit(X, y)
    dX = _dask(X, y, 700)[0]
    for method in ["predict", "predict_proba", "predict_log_proba", "decision_function"]:
        lazy = getattr(model, method)(dX)
        assert isinstance(lazy, da.Array), method
        expected = getattr(model, method)(X)
        assert lazy.shape == expected.shape and lazy.dtype == expected.dtype, method
        np.testing.assert_array_equal(lazy.compute(), expected)
    # a refit after the call does not change the lazy result
    lazy = model.predict_proba(dX)
    before = model.predict_proba(X)
    model.set_params(C=1e-3).fit(X, y)
    np.testing.assert_array_equal(lazy.compute(), before)
    assert model.score(dX, y) == pytest.approx(model.score(X, y))


def test_a_worker_lost_mid_fit_gives_the_same_model():
    """Kill a worker process in the middle of a fit: Dask recomputes its chunks from
    their graph, the sums are the same, and so is the model."""
    from softmaxreg import _dask_rows

    X, y = _data(n=6000)
    with _cluster() as cluster, distributed.Client(cluster) as c:
        dX, dy, _ = _dask(X, y, 500)
        baseline = SoftmaxRegressor(tol=1e-10, solver="lbfgs").fit(dX, dy)
        real = _dask_rows.DaskRows._compute
        killed = []

        def compute(self, *args):
            if self.n_evaluations == 5 and not killed:
                victim = sorted(c.nthreads())[0]
                killed.append(victim)
                try:  # the nanny starts a new process
                    c.run(os._exit, 1, workers=[victim], on_error="ignore")
                except OSError:  # the worker's connection closes as it dies
                    pass
            return real(self, *args)

        _dask_rows.DaskRows._compute = compute
        try:
            model = SoftmaxRegressor(tol=1e-10, solver="lbfgs").fit(dX, dy)
        finally:
            _dask_rows.DaskRows._compute = real
        assert killed
        np.testing.assert_array_equal(model.coef_, baseline.coef_)
        np.testing.assert_array_equal(model.intercept_, baseline.intercept_)


def test_in_memory_fits_never_import_dask():
    code = (
        "import sys, numpy as np\n"
        "from softmaxreg import SoftmaxRegressor\n"
        "X = np.random.default_rng(0).normal(size=(50, 3)); y = np.arange(50) % 3\n"
        "m = SoftmaxRegressor().fit(X, y); m.predict(X)\n"
        "m.partial_fit(X, y)\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('dask', 'distributed')))\n"
    )
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_the_local_scheduler_without_a_client_fits_the_same_model():
    code = (
        "import numpy as np, dask.array as da\n"
        "from softmaxreg import SoftmaxRegressor\n"
        "rng = np.random.default_rng(0); X = rng.normal(size=(2000, 5)); y = rng.integers(0, 3, 2000)\n"
        "a = SoftmaxRegressor(tol=1e-10).fit(X, y)\n"
        "b = SoftmaxRegressor(tol=1e-10).fit(da.from_array(X, chunks=(300, -1)), da.from_array(y, chunks=300))\n"
        "print(np.abs(a.coef_ - b.coef_).max())\n"
    )
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         check=True)
    assert float(out.stdout) < 1e-8


def test_dask_fits_in_threads_do_not_interfere(client):
    X, y = _data()
    dX, dy, _ = _dask(X, y, 700)
    ref = SoftmaxRegressor(tol=1e-8).fit(dX, dy)
    results = [None, None]

    def fit(i):
        results[i] = SoftmaxRegressor(tol=1e-8).fit(dX, dy)

    threads = [threading.Thread(target=fit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r.coef_, ref.coef_)


def test_integer_and_float16_dask_x_fit_in_float64_as_in_memory(client):
    X, y = _data()
    Xi = np.round(X).astype(np.int64)
    ref = SoftmaxRegressor(tol=1e-10).fit(Xi, y)
    for dtype in (np.int64, np.uint8, np.float16, bool):
        dX = da.from_array(Xi.astype(dtype), chunks=(700, -1))
        model = SoftmaxRegressor(tol=1e-10).fit(dX, da.from_array(y, chunks=700))
        assert model.coef_.dtype == np.float64
        expected = SoftmaxRegressor(tol=1e-10).fit(Xi.astype(dtype), y)
        np.testing.assert_allclose(model.coef_, expected.coef_, rtol=0,
                                   atol=1e-6 * max(1.0, np.abs(expected.coef_).max()))
    assert ref.coef_.dtype == np.float64


def test_empty_chunks_fit_predict_and_partial_fit(client):
    X, y = _data()
    dX = da.from_array(X, chunks=((0, 1000, 0, 2000, 0), -1))
    dy = da.from_array(y, chunks=((0, 1000, 0, 2000, 0),))
    model = SoftmaxRegressor(tol=1e-10).fit(dX, dy)
    ref = SoftmaxRegressor(tol=1e-10).fit(X, y)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-6 * np.abs(ref.coef_).max())
    for method in ["predict", "predict_proba", "decision_function"]:
        np.testing.assert_array_equal(getattr(model, method)(dX).compute(),
                                      getattr(model, method)(X))
    streamed = SoftmaxRegressor().partial_fit(dX, dy, classes=np.unique(y))
    assert streamed.n_samples_seen_ == 3000
    with pytest.raises(ValueError, match="0 sample"):
        SoftmaxRegressor().fit(dX[:0], dy[:0])


def test_dask_dataframes_are_refused_with_the_way_to_an_array(client):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, y = _data()
    ddf = dd.from_pandas(pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]),
                        npartitions=3)
    for call in (lambda: SoftmaxRegressor().fit(ddf, y),
                 lambda: SoftmaxRegressor().partial_fit(ddf, y, classes=np.unique(y)),
                 lambda: SoftmaxRegressor().fit(X, y).predict(ddf)):
        with pytest.raises(TypeError, match="to_dask_array"):
            call()
    # its arrays, and a Dask Series as y, are welcome
    model = SoftmaxRegressor(tol=1e-10).fit(ddf.to_dask_array(lengths=True),
                                            dd.from_pandas(pd.Series(y), npartitions=3))
    ref = SoftmaxRegressor(tol=1e-10).fit(X, y)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-6 * np.abs(ref.coef_).max())
