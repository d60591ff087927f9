"""The same kernels as _kernels, compiled for AVX2 + FMA (x86-64 only)."""

from ._kernels import *  # noqa: F403
