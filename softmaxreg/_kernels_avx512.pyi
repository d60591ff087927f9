"""The same kernels as _kernels, compiled for AVX-512 (x86-64 only)."""

from ._kernels import *  # noqa: F403
