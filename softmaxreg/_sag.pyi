"""Type stubs for the SAG epoch loop (see _sag.pyx)."""

import numpy as np
import numpy.typing as npt

_FloatArray = npt.NDArray[np.float32] | npt.NDArray[np.float64]
_IndexArray = npt.NDArray[np.int32] | npt.NDArray[np.int64]
_DoubleArray = npt.NDArray[np.float64]
_IntpArray = npt.NDArray[np.intp]

def row_squared_norms(
    data: _FloatArray, indptr: _IndexArray, n_rows: int, n_features: int, out: _DoubleArray,
) -> None: ...
def sum_gradient(
    data: _FloatArray,
    indices: _IndexArray,
    indptr: _IndexArray,
    column_map: _IndexArray,
    n_features: int,
    rows: _IntpArray,
    memory: _DoubleArray,
    both: _DoubleArray,
    sum_grad_b: _DoubleArray,
) -> None: ...
def sag_epoch(
    data: _FloatArray,
    indices: _IndexArray,
    indptr: _IndexArray,
    column_map: _IndexArray,
    n_features: int,
    order: _IntpArray,
    labels: _IntpArray,
    weight: _DoubleArray,
    offset: int,
    fit_intercept: bool,
    step: float,
    intercept_step: float,
    alpha: float,
    both: _DoubleArray,
    b: _DoubleArray,
    sum_grad_b: _DoubleArray,
    memory: _DoubleArray,
    seen: npt.NDArray[np.uint8],
    state: _DoubleArray,
    feature_hist: npt.NDArray[np.int64],
    cumsum: _DoubleArray,
    scratch: _DoubleArray,
) -> None: ...
