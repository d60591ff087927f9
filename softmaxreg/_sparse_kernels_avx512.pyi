"""The same kernels as _sparse_kernels, compiled for AVX-512 F/DQ/VL (x86-64 only)."""

from ._sparse_kernels import *  # noqa: F403
