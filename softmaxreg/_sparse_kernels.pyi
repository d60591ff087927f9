"""Type stubs for the CSR kernels (see _sparse_kernels.pyx)."""

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_FloatArray = npt.NDArray[_Float]
_IndexArray = npt.NDArray[np.int32] | npt.NDArray[np.int64]
_IntpArray = npt.NDArray[np.intp]

def csr_workspace_size(n_coef_rows: int, n_classes: int, n_threads: int, dtype: str) -> int: ...
def csr_linear_logits(
    data: _FloatArray,
    indices: _IndexArray,
    indptr: _IndexArray,
    column_map: _IndexArray,
    coef_t: _FloatArray,
    intercept: _FloatArray,
    out: _FloatArray,
    n_threads: int,
) -> None: ...
def csr_linear_loss_gradient(
    data: _FloatArray,
    indices: _IndexArray,
    indptr: _IndexArray,
    column_map: _IndexArray,
    labels: _IntpArray,
    sample_weight: _FloatArray,
    coef_t: _FloatArray,
    intercept: _FloatArray,
    grad_coef_t: _FloatArray,
    grad_intercept: _FloatArray,
    workspace: _FloatArray,
    n_threads: int,
) -> float: ...
def csr_linear_hessian_product(
    data: _FloatArray,
    indices: _IndexArray,
    indptr: _IndexArray,
    column_map: _IndexArray,
    sample_weight: _FloatArray,
    coef_t: _FloatArray,
    intercept: _FloatArray,
    direction_coef_t: _FloatArray,
    direction_intercept: _FloatArray,
    out_coef_t: _FloatArray,
    out_intercept: _FloatArray,
    workspace: _FloatArray,
    n_threads: int,
) -> None: ...
def csr_column_sums(
    data: _FloatArray,
    indices: _IndexArray,
    indptr: _IndexArray,
    sample_weight: _FloatArray,
    shift: npt.NDArray[np.float64],
    sum1: npt.NDArray[np.float64],
    sum2: npt.NDArray[np.float64],
    stored_weight: npt.NDArray[np.float64],
    stored_count: npt.NDArray[np.int64],
    magnitude: npt.NDArray[np.float64],
    n_threads: int,
) -> None: ...
