"""The same kernels as _sparse_kernels, compiled for AVX2 + FMA (x86-64 only)."""

from ._sparse_kernels import *  # noqa: F403
