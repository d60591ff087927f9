"""Thread counts: ``n_jobs`` -> OpenMP threads, and BLAS kept single-threaded.

``n_jobs=None`` means ``omp_get_max_threads()``, which honours ``OMP_NUM_THREADS``
and :func:`threadpoolctl.threadpool_limits`; ``-1`` means every CPU this process
may run on; ``-2`` all but one, and so on; a positive int means that many threads.
"""

import os
from contextlib import contextmanager
from numbers import Integral

from threadpoolctl import ThreadpoolController

from ._kernels import openmp_enabled, openmp_max_threads

_controller = None


def available_cpus():
    """Number of CPUs this process may run on (its affinity mask where known)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


# |n_jobs| beyond this is a mistake (2**31 would not even fit OpenMP's int).
MAX_N_JOBS = 2**16


def n_threads_from_n_jobs(n_jobs):
    """Translate a scikit-learn style ``n_jobs`` into a number of OpenMP threads.

    Parameters
    ----------
    n_jobs : int or None
        None: ``omp_get_max_threads()`` (limited by ``OMP_NUM_THREADS`` and
        threadpoolctl). Negative: ``available_cpus() + 1 + n_jobs``, at least 1.
        Positive: that many threads. Every count is capped at ``available_cpus()``:
        more threads than CPUs only wait for each other (and too many would make the
        OpenMP runtime abort the process).

    Returns
    -------
    n_threads : int
        In ``[1, available_cpus()]``; always 1 when the kernels were built without
        OpenMP.

    Raises
    ------
    TypeError
        If n_jobs is not an int or None.
    ValueError
        If n_jobs is 0 or its magnitude exceeds ``MAX_N_JOBS`` (65536).
    """
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral)):
        raise TypeError(f"n_jobs must be an int or None, got {n_jobs!r}.")
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive int.")
    if n_jobs is not None and abs(n_jobs) > MAX_N_JOBS:
        raise ValueError(
            f"n_jobs={n_jobs} is beyond any machine's number of CPUs; use None, -1 or a "
            f"count of at most {MAX_N_JOBS}."
        )
    if not openmp_enabled():
        return 1
    cpus = available_cpus()
    if n_jobs is None:
        return min(max(openmp_max_threads(), 1), cpus)
    if n_jobs < 0:
        return max(cpus + 1 + int(n_jobs), 1)
    return min(int(n_jobs), cpus)


@contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread, so that it never competes with the OpenMP kernels.

    OpenBLAS threads that spin after a call, or BLAS called from inside OpenMP
    threads, oversubscribe the cores. The controller is created once and reused,
    which keeps the per-call overhead to a few microseconds.
    """
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    with _controller.limit(limits=1, user_api="blas"):
        yield
