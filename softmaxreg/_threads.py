"""Thread counts: ``n_jobs`` -> OpenMP threads per kernel call, and BLAS kept single-threaded.

``n_jobs=None`` means ``omp_get_max_threads()``, which honours ``OMP_NUM_THREADS``
and :func:`threadpoolctl.threadpool_limits`; ``-1`` means every CPU this process
may run on; ``-2`` all but one, and so on; a positive int means that many threads.
That count is an upper bound: each kernel call gets (:class:`KernelThreads`)

- no more threads than its work pays for (``MIN_WORK_PER_THREAD``): waking a thread
  and joining it costs microseconds, which a call on a few hundred rows does not
  repay;
- with ``n_jobs=None``, no more than the CPUs that other processes (and the other
  fits of this process) leave idle (:class:`CpuLoad`). An OpenMP team waits at its
  barrier for its slowest thread: where another process holds the core of one of
  its threads, every kernel call waits for the scheduler to hand the core back,
  and a fit takes tens of times longer than on one thread. An explicit ``n_jobs``
  is taken as asked (up to the work), so that its results are reproducible.

Nothing here changes a setting that other code in the process sees after a fit:
BLAS is limited to one thread by a process-wide, reference-counted limit
(:func:`limited_blas`), restored when the last fit that holds it ends.
"""

import os
import threading
import time
from contextlib import contextmanager
from numbers import Integral

import threadpoolctl
from threadpoolctl import ThreadpoolController

from ._config import warn_serial_build
from ._kernels import openmp_enabled, openmp_max_threads, openmp_thread_ids


def available_cpus():
    """Number of CPUs this process may run on (its affinity mask where known)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


# |n_jobs| beyond this is a mistake (2**31 would not even fit OpenMP's int).
MAX_N_JOBS = 2**16

# Multiply-adds (rows x features x classes) from which a kernel call pays for one more
# thread: about 8 microseconds of work on one core, more than it costs to start and
# join the team (benchmarks/bench_small.py, "kernel threads", times both sides).
MIN_WORK_PER_THREAD = 2**14
# The work of a softmax over one logit, in multiply-adds (an exp, a log1p, compensated sums).
ROW_WISE_WORK = 16


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
        warn_serial_build(n_jobs)
        return 1
    cpus = available_cpus()
    if n_jobs is None:
        return min(max(openmp_max_threads(), 1), cpus)
    if n_jobs < 0:
        return max(cpus + 1 + int(n_jobs), 1)
    return min(int(n_jobs), cpus)


class CpuLoad:
    """How many of this process's CPUs are left idle by everything but the running fits.

    Linux only: the busy time of this process's CPUs (``/proc/stat``, the CPUs of
    its affinity mask; steal time counts as busy) minus the CPU time of the fits'
    own threads (``/proc/self/task``: the thread that imported softmaxreg, the
    Python threads that have run fits and their OpenMP teams, registered by
    :func:`fitting`), over the last ``window`` seconds or more. Other processes
    count, and so do this process's other threads, such as BLAS threads that spin
    for a while after a matrix product. The CPUs left are shared by the fits
    running at once (``active_fits``). Elsewhere, and where ``/proc`` cannot be
    read, every CPU counts as idle.

    The measure looks back, so a load that starts in the middle of a fit is seen
    within a window; the estimate is updated at most once per window and reading
    it otherwise costs a clock read.
    """

    def __init__(self, window=0.05):
        self.window = window
        self._lock = threading.Lock()
        self._threads = {}  # ids of the threads that have run fits (a dict as an ordered set)
        self._idle = float(available_cpus())
        self.active_fits = 0
        try:
            self._cpus = {f"cpu{c}" for c in os.sched_getaffinity(0)}
            self._tick = 1.0 / os.sysconf("SC_CLK_TCK")
            self._threads[threading.get_native_id()] = None
            self._last = self._sample()
        except (AttributeError, OSError, ValueError):
            self._last = None

    def _thread_seconds(self, tid):
        with open(f"/proc/self/task/{tid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * self._tick  # utime + stime

    def _sample(self):
        """(monotonic seconds, busy seconds of our CPUs, {thread id: its CPU seconds})."""
        busy = 0
        with open("/proc/stat", "rb") as stat:
            for line in stat:
                if not line.startswith(b"cpu"):
                    break
                fields = line.split()
                if fields[0].decode() in self._cpus:
                    # user nice system idle iowait irq softirq steal: all but idle, iowait.
                    values = [int(v) for v in fields[1:9]]
                    busy += sum(values) - values[3] - values[4]
        own = {}
        for tid in list(self._threads):
            try:
                own[tid] = self._thread_seconds(tid)
            except (OSError, IndexError, ValueError):  # the thread has ended
                self._threads.pop(tid, None)
        return time.monotonic(), busy * self._tick, own

    def register(self, tids):
        """Count these threads' CPU time as the fits' own (not load) from now on.

        A thread that has run a fit stays counted: the thread that called a fit cannot
        compete with it, whatever it did before, and an OpenMP team runs only kernels.
        Returns False (and registers none) if one of them has ended.
        """
        if self._last is None:
            return True
        with self._lock:
            baseline = {}
            for tid in tids:
                if tid not in self._last[2]:
                    try:  # its CPU time so far is not part of this window's
                        baseline[tid] = self._thread_seconds(tid)
                    except (OSError, IndexError, ValueError):
                        return False
            self._last[2].update(baseline)
            self._threads.update(dict.fromkeys(tids))
        return True

    def idle(self):
        """CPUs (a float) that the rest of the machine left idle over the last window or more."""
        if self._last is None:
            return self._idle
        now = time.monotonic()
        if now - self._last[0] < self.window:
            return self._idle
        with self._lock:
            if now - self._last[0] >= self.window:
                try:
                    sample = self._sample()
                except OSError:
                    self._last = None
                    return self._idle
                wall = sample[0] - self._last[0]
                own = sum(seconds - self._last[2][tid] for tid, seconds in sample[2].items()
                          if tid in self._last[2])
                others = (sample[1] - self._last[1]) - own
                self._idle = min(max(len(self._cpus) - others / wall, 0.0), len(self._cpus))
                self._last = sample
        return self._idle

    def threads(self):
        """Threads a fit may use now: the idle CPUs, shared by this process's active
        fits, rounded to the nearest count and at least 1."""
        return max(1, int(self.idle() / max(self.active_fits, 1) + 0.5))


cpu_load = CpuLoad()


class KernelThreads:
    """The OpenMP threads for each kernel call of a fit or a prediction.

    Parameters
    ----------
    n_jobs : int or None
        As for :func:`n_threads_from_n_jobs`, which gives the upper bound ``limit``.
        With None, a call also gets no more threads than ``cpu_load.threads()``.

    Raises
    ------
    TypeError, ValueError
        As :func:`n_threads_from_n_jobs`.
    """

    def __init__(self, n_jobs):
        self.limit = n_threads_from_n_jobs(n_jobs)
        self.adaptive = n_jobs is None and self.limit > 1

    def __call__(self, work):
        """Threads for a call of ``work`` multiply-adds (rows x features x classes)."""
        n = min(self.limit, max(1, int(work) // MIN_WORK_PER_THREAD))
        if self.adaptive and n > 1:
            n = min(n, cpu_load.threads())
        return n


_blas = None  # threadpoolctl's controller of the BLAS libraries, made once
_blas_lock = threading.Lock()
_blas_holders = 0
_blas_saved = None  # the limits found by the first fit in


@contextmanager
def limited_blas():
    """Limit BLAS to one thread for the duration of a fit, reference-counted across threads.

    The first fit to enter saves BLAS's limits and sets one thread; the last to leave
    restores the saved limits. Fits that overlap in Python threads therefore leave
    the process as they found it, whatever their order (a plain save-and-restore per
    fit would restore the one-thread limit that another fit had set). OpenBLAS
    threads that spin after a call, or BLAS called from inside the kernels' threads,
    would oversubscribe the cores. It also counts the fits running at once, among
    which ``cpu_load`` shares the idle CPUs.
    """
    global _blas, _blas_holders, _blas_saved
    with _blas_lock:
        if _blas_holders == 0:
            if _blas is None:
                _blas = ThreadpoolController().select(user_api="blas").lib_controllers
            _blas_saved = [library.num_threads for library in _blas]
            for library in _blas:
                library.set_num_threads(1)
            _release_blas_control()
        _blas_holders += 1
        cpu_load.active_fits += 1
    try:
        yield
    finally:
        with _blas_lock:
            cpu_load.active_fits -= 1
            _blas_holders -= 1
            if _blas_holders == 0:
                for library, limit in zip(_blas, _blas_saved):
                    library.set_num_threads(limit)
                _release_blas_control()
                _blas_saved = None


def _release_blas_control():
    """Let any thread set OpenBLAS's limit again.

    threadpoolctl >= 3.6 lets only one thread, the first to set it, change the limit of
    an OpenBLAS with its own (pthreads) thread pool, until that thread lets go; the last
    fit to leave ``limited_blas`` may run in another thread than the first.
    """
    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None)
    if clear is not None:
        clear()


@contextmanager
def fitting(threads):
    """The extent of a fit: BLAS limited (:func:`limited_blas`), and the fit's threads
    (the calling one and its OpenMP team of ``threads.limit``) registered with
    ``cpu_load`` as the fits' own, where ``threads`` adapts to the load.

    Parameters
    ----------
    threads : KernelThreads
    """
    with limited_blas():
        if threads.adaptive and not cpu_load.register(_team(threads.limit)):
            # A thread of the team has ended: the runtime has made a new one.
            _teams.pop((threading.get_native_id(), threads.limit), None)
            cpu_load.register(_team(threads.limit))
        yield


_teams = {}  # (calling thread's id, team size) -> the team's thread ids


def _team(n_threads):
    """The ids of the calling thread and of its OpenMP team of ``n_threads`` (the OpenMP
    runtime keeps a thread's team for its next parallel regions; asked once)."""
    key = (threading.get_native_id(), n_threads)
    if key not in _teams:
        if len(_teams) >= 64:  # threads come and go (thread pools): forget the old ones
            _teams.clear()
        _teams[key] = [key[0], *openmp_thread_ids(n_threads)[1:]]
    return _teams[key]
