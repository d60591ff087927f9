"""The same loops as _sag, compiled for AVX2 + FMA (x86-64 only)."""

from ._sag import *  # noqa: F403
