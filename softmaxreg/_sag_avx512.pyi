"""The same loops as _sag, compiled for AVX-512 F/DQ/VL (x86-64 only)."""

from ._sag import *  # noqa: F403
