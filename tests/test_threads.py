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
from softmaxreg import _threads
from softmaxreg._threads import (
    MIN_WORK_PER_THREAD, KernelThreads, available_cpus, limited_blas, n_threads_from_n_jobs,
)

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


def test_limited_blas_limits_and_restores():
    before = _blas_threads()
    with limited_blas():
        assert all(n == 1 for n in _blas_threads().values())
        with limited_blas():
            assert all(n == 1 for n in _blas_threads().values())
        assert all(n == 1 for n in _blas_threads().values())
    assert _blas_threads() == before


# Run in a fresh process: OpenBLAS's limit is process-wide, and threadpoolctl lets only one
# thread change it until that thread lets go, so the test must own the process's state.
_OVERLAPPING_FITS = r"""
import sys, threading, time
import numpy as np
from threadpoolctl import threadpool_info
from softmaxreg import SoftmaxRegressor, _estimator
from softmaxreg._threads import limited_blas

def blas():
    return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

before = blas()
if not before or max(before) < 2:
    print("SKIP"); sys.exit()
real = _estimator._SOLVERS["lbfgs"]
seen = []

def slow(*args, **kwargs):
    seen.append(blas())
    time.sleep(float(sys.argv[1]))
    return real(*args, **kwargs)

_estimator._SOLVERS["lbfgs"] = slow
X = np.random.default_rng(0).standard_normal((200, 5)); y = np.arange(200) % 3
first_in_main = sys.argv[2] == "main"
fit = lambda: SoftmaxRegressor(solver="lbfgs").fit(X, y)
for run in range(5):
    other = threading.Thread(target=fit)
    if first_in_main:   # the main thread starts first and ends first; the other ends last
        other_start = threading.Timer(0.02, other.start); other_start.start()
        fit(); other_start.join(); other.join()
    else:               # a thread starts first; the main thread starts 20 ms later
        other.start(); time.sleep(0.02); fit(); other.join()
    assert blas() == before, (run, blas(), before)
assert all(max(s) == 1 for s in seen), seen
print("OK", before)
"""


@pytest.mark.parametrize("first", ["main", "thread"])
@pytest.mark.parametrize("overlap", [0.0, 0.05])
def test_fits_overlapping_in_threads_leave_blas_as_found(first, overlap, tmp_path):
    """Two fits in Python threads, the second started 20 ms after the first, five times: BLAS
    is limited to one thread during each fit and the process's limit afterwards is what it
    was before (the issue's case: a plain save-and-restore per fit left it at 1)."""
    out = subprocess.run(
        [sys.executable, "-c", _OVERLAPPING_FITS, str(overlap), first],
        capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, OPENBLAS_NUM_THREADS="2"),
    )
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith("SKIP"):
        pytest.skip("BLAS runs on one thread here: nothing to restore")
    assert out.stdout.startswith("OK"), out.stdout


def test_small_kernel_calls_run_on_one_thread():
    """A call pays for a thread per MIN_WORK_PER_THREAD multiply-adds; explicit n_jobs is an
    upper bound that the load never lowers."""
    threads = KernelThreads(2)
    assert threads(1) == 1
    assert threads(MIN_WORK_PER_THREAD - 1) == 1
    assert threads(2 * MIN_WORK_PER_THREAD) == min(2, n_threads_from_n_jobs(2))
    assert not threads.adaptive


class FakeStat:
    """/proc/stat as seen by CpuLoad: other processes busy on ``busy`` CPUs."""

    def __init__(self, busy, cpus):
        self.busy, self.cpus, self.now = busy, cpus, 0.0

    def sample(self):
        self.now += 1.0
        return self.now, self.now * self.busy, {}


@pytest.mark.parametrize("busy, active, expected", [(0.0, 1, 2), (0.1, 1, 2), (1.0, 1, 1), (2.0, 1, 1), (0.0, 2, 1)])
def test_the_default_uses_the_cpus_other_processes_leave_idle(monkeypatch, busy, active, expected):
    """n_jobs=None: as many threads as idle CPUs, shared by the fits running at once."""
    load = _threads.CpuLoad(window=0.0)
    fake = FakeStat(busy, 2)
    monkeypatch.setattr(load, "_sample", fake.sample)
    monkeypatch.setattr(load, "_cpus", {"cpu0", "cpu1"})
    load._last = fake.sample()
    load.active_fits = active
    monkeypatch.setattr(_threads, "cpu_load", load)
    threads = KernelThreads(None)
    threads.limit, threads.adaptive = 2, True  # as on a 2-CPU machine with OpenMP
    assert threads(10**9) == expected


def test_own_threads_do_not_count_as_load(monkeypatch):
    """The fit's own threads (its OpenMP team spinning, say) are not load; another thread of
    the process (BLAS spinning after a product) is."""
    load = _threads.CpuLoad(window=0.0)
    # Both CPUs busy for a second: threads 1 and 2 are the fit's, 3 is not registered.
    samples = iter([(0.0, 0.0, {1: 0.0, 2: 0.0}), (1.0, 2.0, {1: 1.0, 2: 1.0})])
    monkeypatch.setattr(load, "_sample", lambda: next(samples))
    monkeypatch.setattr(load, "_cpus", {"cpu0", "cpu1"})
    load._last = load._sample()
    assert load.idle() == 2.0
    samples = iter([(0.0, 0.0, {1: 0.0}), (1.0, 2.0, {1: 1.0})])
    load._last = load._sample()
    assert load.idle() == 1.0


def test_fits_register_their_threads():
    """During a fit with n_jobs=None, its thread and its OpenMP team count as its own."""
    seen = []
    real = _estimator._SOLVERS["lbfgs"]

    def spy(*args, **kwargs):
        seen.append(dict(_threads.cpu_load._threads))
        return real(*args, **kwargs)

    X, y = make_blobs(n_samples=100, n_features=3, centers=3, random_state=0)
    try:
        _estimator._SOLVERS["lbfgs"] = spy
        SoftmaxRegressor(solver="lbfgs").fit(X, y)
    finally:
        _estimator._SOLVERS["lbfgs"] = real
    if _threads.cpu_load._last is None or not KernelThreads(None).adaptive:
        pytest.skip("no load measure here (not Linux, or one CPU)")
    import threading
    assert threading.get_native_id() in seen[0]
    assert len(seen[0]) >= 2  # and its OpenMP team


def test_cpu_load_reads_this_machine():
    """On Linux the measure is a number of CPUs between 0 and the CPUs of this process."""
    load = _threads.CpuLoad(window=0.0)
    value = load.idle()
    assert 0.0 <= value <= available_cpus()


def test_fit_runs_the_solver_with_limited_blas(monkeypatch):
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
