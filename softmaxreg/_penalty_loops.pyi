"""Type stubs for the L1 term's loops over the parameters (see _penalty_loops.pyx)."""

import numpy as np
import numpy.typing as npt

_DoubleArray = npt.NDArray[np.float64]

def subgradient(
    w: _DoubleArray, grad: _DoubleArray, weights: _DoubleArray, out: _DoubleArray,
    n_threads: int = 1,
) -> None: ...
def constrain_direction(
    direction: _DoubleArray, w: _DoubleArray, pg: _DoubleArray, weights: _DoubleArray,
    n_threads: int = 1,
) -> float: ...
def projected_step(
    w: _DoubleArray, direction: _DoubleArray, step: float, pg: _DoubleArray,
    weights: _DoubleArray, out: _DoubleArray, n_threads: int = 1,
) -> tuple[float, float]: ...
