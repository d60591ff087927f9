"""Type stubs for the solvers' loops over the parameters (see _solver_loops.pyx)."""

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_FloatArray = npt.NDArray[_Float]
_DoubleArray = npt.NDArray[np.float64]
_IntpArray = npt.NDArray[np.intp]

def standardized_to_model(
    theta: _DoubleArray,
    scale: _DoubleArray,
    shift: _DoubleArray,
    penalty_curvature: _DoubleArray,
    n_columns: int,
    fit_intercept: bool,
    coef_out: _FloatArray,
    intercept_out: _FloatArray,
    n_threads: int = 1,
) -> float: ...
def standardized_pullback(
    out_coef: _FloatArray,
    out_intercept: _FloatArray,
    theta: _DoubleArray,
    grad_scale: _DoubleArray,
    grad_shift: _DoubleArray,
    penalty_curvature: _DoubleArray,
    loss_scale: float,
    fit_intercept: bool,
    centre: bool,
    result: _DoubleArray,
    n_threads: int = 1,
) -> float: ...
def standardized_optimality(
    grad: _DoubleArray,
    test_inverse_scale: _DoubleArray,
    test_mean: _DoubleArray,
    n_columns: int,
    fit_intercept: bool,
    n_threads: int = 1,
) -> float: ...
def store_pair(
    w_new: _DoubleArray, w: _DoubleArray, grad_new: _DoubleArray, grad: _DoubleArray,
    S: _DoubleArray, Y: _DoubleArray, slot: int, SY: _DoubleArray, n_threads: int = 1,
) -> tuple[float, float]: ...
def two_loop(
    S: _DoubleArray,
    Y: _DoubleArray,
    SY: _DoubleArray,
    rho: _DoubleArray,
    order: _IntpArray,
    gamma: float,
    grad: _DoubleArray,
    out: _DoubleArray,
    work: _DoubleArray,
    n_threads: int = 1,
) -> None: ...
