"""n_jobs -> OpenMP threads, the OpenMP build itself, and BLAS kept single-threaded."""

import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from threadpoolctl import threadpool_info, threadpool_limits

from softmaxreg import SoftmaxRegressor, _estimator, softmax
from softmaxreg._kernels import openmp_enabled, openmp_max_threads
from softmaxreg._threads import available_cpus, n_threads_from_n_jobs, single_threaded_blas

needs_openmp = pytest.mark.skipif(not openmp_enabled(), reason="built without OpenMP")


@pytest.mark.skipif(
    os.environ.get("SOFTMAXREG_ALLOW_NO_OPENMP") == "1",
    reason="SOFTMAXREG_ALLOW_NO_OPENMP=1: a deliberate build without OpenMP",
)
def test_built_with_openmp():
    """The kernels are parallel; set SOFTMAXREG_ALLOW_NO_OPENMP=1 to test a serial build."""
    assert openmp_enabled()


@needs_openmp
def test_n_jobs_none_is_omp_max_threads():
    assert n_threads_from_n_jobs(None) == openmp_max_threads()


@needs_openmp
def test_n_jobs_none_honours_threadpoolctl():
    with threadpool_limits(limits=1, user_api="openmp"):
        assert n_threads_from_n_jobs(None) == 1


def threads_of_n_jobs_none(omp_num_threads, cwd):
    """n_threads_from_n_jobs(None) in a new process with OMP_NUM_THREADS set (OpenMP reads it
    once, at start-up)."""
    code = "from softmaxreg._threads import n_threads_from_n_jobs; print(n_threads_from_n_jobs(None))"
    env = dict(os.environ, OMP_NUM_THREADS=omp_num_threads)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=cwd
    )
    return int(out.stdout)


@needs_openmp
def test_n_jobs_none_honours_omp_num_threads(tmp_path):
    assert threads_of_n_jobs_none("1", tmp_path) == 1


@needs_openmp
@pytest.mark.parametrize("n_jobs, expected", [(-1, 0), (-2, -1), (3, None), (1, None), (2**16, None)])
def test_n_jobs_values(n_jobs, expected):
    """-1 is every CPU, -2 all but one (at least 1); a positive value is taken as it is, up to
    the number of CPUs."""
    want = max(available_cpus() + expected, 1) if expected is not None else min(n_jobs, available_cpus())
    assert n_threads_from_n_jobs(n_jobs) == want


@needs_openmp
def test_n_jobs_none_is_capped_at_the_cpus(tmp_path):
    """OMP_NUM_THREADS far above the CPUs gives no more threads than CPUs."""
    assert threads_of_n_jobs_none("4096", tmp_path) == available_cpus()


@pytest.mark.parametrize(
    "n_jobs, error",
    [(0, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError),
     (2**31, ValueError), (-(2**31), ValueError), (2**16 + 1, ValueError), (2**63, ValueError)],
)
def test_bad_n_jobs(n_jobs, error):
    with pytest.raises(error, match="n_jobs"):
        n_threads_from_n_jobs(n_jobs)


@pytest.mark.parametrize("n_jobs", [2**31, 2**40])
def test_huge_n_jobs_is_a_clear_error_everywhere(n_jobs):
    """fit, predict and the public functions name n_jobs instead of overflowing a C int or
    asking the OpenMP runtime for billions of threads."""
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10) % 2
    with pytest.raises(ValueError, match="n_jobs"):
        SoftmaxRegressor(n_jobs=n_jobs).fit(X, y)
    fitted = SoftmaxRegressor().fit(X, y).set_params(n_jobs=n_jobs)
    for method in (fitted.predict, fitted.predict_proba, fitted.decision_function):
        with pytest.raises(ValueError, match="n_jobs"):
            method(X)
    with pytest.raises(ValueError, match="n_jobs"):
        softmax(X, n_jobs=n_jobs)


def _blas_threads():
    return {info["internal_api"]: info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


def test_single_threaded_blas_limits_and_restores():
    before = _blas_threads()
    with single_threaded_blas():
        assert all(n == 1 for n in _blas_threads().values())
    assert _blas_threads() == before


def test_fit_runs_the_solver_with_single_threaded_blas(monkeypatch):
    """BLAS never competes with the OpenMP kernels during a fit."""
    seen = []
    real = _estimator._SOLVERS["lbfgs"]

    def spy(*args, **kwargs):
        seen.append(_blas_threads())
        return real(*args, **kwargs)

    monkeypatch.setitem(_estimator._SOLVERS, "lbfgs", spy)
    X, y = make_blobs(n_samples=100, n_features=3, centers=3, random_state=0)
    SoftmaxRegressor(solver="lbfgs").fit(X, y)
    assert seen and all(n == 1 for n in seen[0].values())


@needs_openmp
def test_predictions_do_not_depend_on_n_jobs():
    X, y = make_blobs(n_samples=1000, n_features=8, centers=5, random_state=0)
    m = SoftmaxRegressor(n_jobs=1).fit(X, y)
    proba_1 = m.predict_proba(X)
    m.set_params(n_jobs=2)
    np.testing.assert_array_equal(m.predict_proba(X), proba_1)
