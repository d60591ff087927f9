"""What this installation of softmaxreg runs: :func:`show_config`, and the warning of a
build without OpenMP (:func:`warn_serial_build`)."""

import platform
import sys
import warnings

from . import _dispatch
from ._kernels import openmp_enabled, openmp_max_threads

SERIAL_BUILD_MESSAGE = (
    "softmaxreg's kernels were built without OpenMP: they run on one thread, whatever "
    "n_jobs asks for. For parallel kernels, rebuild softmaxreg from source (`pip install .` "
    "in its repository, without -Csetup-args=-Dopenmp=disabled) with a C compiler that "
    "supports OpenMP (gcc, or clang with libomp); softmaxreg.show_config() shows the build."
)

_VERSIONS = ("softmaxreg", "python", "platform", "numpy", "scipy", "scikit-learn", "threadpoolctl")
_POOL_KEYS = ("user_api", "internal_api", "version", "num_threads", "filepath")


def _build_name(module):
    """The build a kernel module comes from: "baseline", "avx2" or "avx512"."""
    return module.__name__.rpartition("._kernels")[2].lstrip("_") or "baseline"


def _info():
    """The facts that :func:`show_config` prints, as a dict."""
    import numpy
    import scipy
    import sklearn
    import threadpoolctl

    from . import __version__
    from ._threads import available_cpus

    many_classes = _dispatch.linear_kernels(_dispatch._AVX512_MIN_CLASSES)
    return {
        "softmaxreg": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "threadpoolctl": threadpoolctl.__version__,
        "openmp_enabled": openmp_enabled(),
        "openmp_max_threads": openmp_max_threads(),
        "available_cpus": available_cpus(),
        "kernels": _build_name(_dispatch.kernels),
        "kernels_many_classes": _build_name(many_classes),
        "SOFTMAXREG_KERNELS": _dispatch._choice,  # as read at import (default "auto")
        "builds_this_cpu_runs": _dispatch.available_builds(),
        "threadpools": [
            {key: pool.get(key) for key in _POOL_KEYS} for pool in threadpoolctl.threadpool_info()
        ],
    }


def show_config(*, file=None):
    """Print the versions, the kernel build and the thread pools softmaxreg runs with.

    Worth including in a bug report, and the first thing to check when a fit does
    not use the CPUs it should.

    Parameters
    ----------
    file : file-like, default=None
        Where to print, as ``print(file=...)``; None prints to ``sys.stdout``.

    Notes
    -----
    It prints:

    - the versions of softmaxreg, Python, numpy, scipy, scikit-learn and threadpoolctl;
    - whether the kernels were built with OpenMP (without it they run on one thread),
      ``omp_get_max_threads()`` (what ``n_jobs=None`` uses) and the CPUs this process
      may run on (the cap on any ``n_jobs``);
    - which build of the kernels runs (``baseline``, ``avx2`` or ``avx512``; see
      ``softmaxreg/_dispatch.py``), the builds this CPU can run and the value of the
      environment variable ``SOFTMAXREG_KERNELS`` (read at import) that chose it;
    - the BLAS and OpenMP libraries that :func:`threadpoolctl.threadpool_info` finds
      loaded: ``user_api``, ``internal_api``, ``version``, ``num_threads`` and ``filepath``.

    Examples
    --------
    >>> import softmaxreg
    >>> softmaxreg.show_config()  # doctest: +SKIP
    """
    info = _info()
    kernels = (
        f"{info['kernels']}; {info['kernels_many_classes']} for the fused linear kernel "
        f"from {_dispatch._AVX512_MIN_CLASSES} classes"
    )
    rows = [
        *((name, info[name]) for name in _VERSIONS),
        None,
        ("OpenMP", "yes" if info["openmp_enabled"] else "no: the kernels run on one thread"),
        ("omp_get_max_threads()", info["openmp_max_threads"]),
        ("available CPUs", info["available_cpus"]),
        ("kernels", kernels),
        ("builds this CPU runs", ", ".join(info["builds_this_cpu_runs"])),
        ("SOFTMAXREG_KERNELS", info["SOFTMAXREG_KERNELS"]),
        None,
    ]
    width = max(len(row[0]) for row in rows if row) + 2
    lines = [f"{row[0] + ':':<{width}}{row[1]}" if row else "" for row in rows]
    lines.append("thread pools (threadpoolctl):")
    table = [_POOL_KEYS, *([str(pool[key]) for key in _POOL_KEYS] for pool in info["threadpools"])]
    widths = [max(map(len, column)) for column in zip(*table)]
    lines += ["  " + "  ".join(map(str.ljust, cells, widths)).rstrip() for cells in table]
    if not info["threadpools"]:
        lines.append("  (none loaded)")
    print("\n".join(lines), file=file)


def warn_serial_build(n_jobs):
    """Warn where ``n_jobs`` asks for threads that a build without OpenMP cannot run.

    A ``UserWarning`` (:data:`SERIAL_BUILD_MESSAGE`) when the kernels were built
    without OpenMP and ``n_jobs`` would mean more than one thread with OpenMP: a
    positive count above 1, or a negative one that leaves more than one of
    ``available_cpus()``, both capped at ``available_cpus()``. ``n_jobs=None`` never
    warns: it asks for no number. The warning is attributed to the caller's line
    (``stacklevel=2``): called from one place, Python's default filter shows it once
    per process.

    Parameters
    ----------
    n_jobs : int or None
        An ``n_jobs`` that :func:`softmaxreg._threads.n_threads_from_n_jobs` accepts.
    """
    if n_jobs is None or openmp_enabled():
        return
    from ._threads import available_cpus  # here: _threads imports this module

    cpus = available_cpus()
    threads = min(n_jobs, cpus) if n_jobs > 0 else cpus + 1 + n_jobs
    if threads > 1:
        warnings.warn(SERIAL_BUILD_MESSAGE, UserWarning, stacklevel=2)
