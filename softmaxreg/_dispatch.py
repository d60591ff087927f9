"""Which build of the kernels runs.

``_kernels`` is compiled for the baseline instruction set and runs on any CPU.
x86-64 builds also have ``_kernels_avx2`` (AVX2 + FMA) and ``_kernels_avx512``
(AVX-512 F/DQ/VL): the same source, compiled for those instructions. The
environment variable ``SOFTMAXREG_KERNELS`` chooses: ``auto`` (the default),
``baseline``, ``avx2`` or ``avx512`` (an error where that build cannot run).

With ``auto``, the fused linear kernel of a model with ``k`` classes runs on the
AVX-512 build only when ``k >= 32``: its classes are padded to whole vectors of 8
doubles, which wastes most of a vector for a few classes, and on a 2-core Xeon it
measured no faster than AVX2 for 10 classes, 1.6x faster for 100 and 1.3x slower
for 3 (benchmarks/). Everything else runs on the AVX2 build where the CPU has it.
The CSR kernels (``_sparse_kernels`` and its ``_avx2`` and ``_avx512`` builds) follow
the same choice.
"""

import importlib
import os

from . import _kernels as _baseline

_CPU_HAS = {
    "baseline": lambda: True,
    "avx2": _baseline.cpu_has_avx2_fma,
    "avx512": _baseline.cpu_has_avx512,
}


def _module(name, source="_kernels"):
    if name == "baseline":
        return importlib.import_module(f".{source}", __package__)
    try:
        return importlib.import_module(f".{source}_{name}", __package__)
    except ImportError:  # not built (-Dsimd=disabled, or not x86-64)
        return None


def available_builds():
    """Names of the kernel builds that exist and can run on this CPU, narrowest first."""
    return [name for name in _CPU_HAS if _module(name) is not None and _CPU_HAS[name]()]


def select_kernels(choice):
    """Return the kernel module for ``choice``: "auto" (AVX2 where the CPU has it,
    else baseline) or a name from ``_CPU_HAS``."""
    if choice != "auto" and choice not in _CPU_HAS:
        raise ValueError(
            "SOFTMAXREG_KERNELS must be 'auto' or one of "
            f"{', '.join(repr(name) for name in _CPU_HAS)}; got {choice!r}."
        )
    builds = available_builds()
    if choice == "auto":
        return _module("avx2" if "avx2" in builds else "baseline")
    if choice not in builds:
        reason = "this build does not have it" if _module(choice) is None else "this CPU cannot run it"
        raise ImportError(f"SOFTMAXREG_KERNELS={choice}, but {reason}.")
    return _module(choice)


# Classes from which the AVX-512 build runs the fused linear kernel, under "auto".
_AVX512_MIN_CLASSES = 32

_choice = os.environ.get("SOFTMAXREG_KERNELS", "auto")
kernels = select_kernels(_choice)
_wide_kernels = (
    _module("avx512") if _choice == "auto" and "avx512" in available_builds() else kernels
)


def linear_kernels(n_classes):
    """The kernel module for the fused linear kernels of a model with ``n_classes``."""
    return _wide_kernels if n_classes >= _AVX512_MIN_CLASSES else kernels


# The CSR kernels (_sparse_kernels), built and chosen alike: on the 2-core Xeon, AVX2
# made the loss and gradient 1.4x faster than the baseline, and AVX-512 a further 1.1x
# with 43 classes but 1.2x slower with 20 (benchmarks/bench_sparse.py, "kernels").
def _build_name(module):
    """"baseline", "avx2" or "avx512": the build of a ``_kernels`` module."""
    return module.__name__.rpartition(".")[2].removeprefix("_kernels").lstrip("_") or "baseline"


# The builds of the companion modules, as chosen for _kernels: {(wide, source): module}.
_companions = {
    (wide, source): _module(_build_name(_wide_kernels if wide else kernels), source)
    for wide in (False, True)
    for source in ("_sparse_kernels", "_sag")
}


def sag_loops(n_classes):
    """The build of ``_sag`` (the SAG solver's epoch loop) for a model with
    ``n_classes``, chosen as ``sparse_kernels``."""
    return _companions[n_classes >= _AVX512_MIN_CLASSES, "_sag"]


def sparse_kernels(n_classes):
    """The CSR kernel module for a model with ``n_classes`` (the same build as
    ``linear_kernels``)."""
    return _companions[n_classes >= _AVX512_MIN_CLASSES, "_sparse_kernels"]
