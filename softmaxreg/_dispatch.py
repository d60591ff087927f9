"""Which build of the kernels runs.

``_kernels`` is compiled for the baseline instruction set and runs on any CPU;
``_kernels_avx2`` (x86-64 builds only) is the same source compiled for AVX2 + FMA.
The environment variable ``SOFTMAXREG_KERNELS`` chooses: ``auto`` (default: AVX2
where the CPU has it), ``baseline`` or ``avx2`` (an error where it cannot run).
"""

import os

from . import _kernels as _baseline

try:
    from . import _kernels_avx2 as _avx2
except ImportError:  # built without it (-Davx2=disabled, or not x86-64)
    _avx2 = None


def available_builds():
    """Names of the kernel builds that can run on this CPU, baseline first."""
    builds = ["baseline"]
    if _avx2 is not None and _baseline.cpu_has_avx2_fma():
        builds.append("avx2")
    return builds


def select_kernels(choice):
    """Return the kernel module for ``choice`` in {"auto", "baseline", "avx2"}."""
    if choice not in ("auto", "baseline", "avx2"):
        raise ValueError(
            f"SOFTMAXREG_KERNELS must be 'auto', 'baseline' or 'avx2', got {choice!r}."
        )
    builds = available_builds()
    if choice == "avx2" and "avx2" not in builds:
        raise ImportError(
            "SOFTMAXREG_KERNELS=avx2, but "
            + ("this build has no AVX2 kernels." if _avx2 is None else "this CPU lacks AVX2/FMA.")
        )
    if choice == "baseline" or builds == ["baseline"]:
        return _baseline
    return _avx2


kernels = select_kernels(os.environ.get("SOFTMAXREG_KERNELS", "auto"))
