"""Type stubs for the compiled kernels (see _kernels.pyx for the math)."""

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_FloatArray = npt.NDArray[_Float]
_IntpArray = npt.NDArray[np.intp]
_DoubleArray = npt.NDArray[np.float64]

def openmp_enabled() -> bool: ...
def openmp_max_threads() -> int: ...
def openmp_thread_ids(n_threads: int) -> list[int]: ...
def cpu_has_avx2_fma() -> bool: ...
def cpu_has_avx512() -> bool: ...
def softmax_rows(logits: _FloatArray, out: _FloatArray, n_threads: int) -> None: ...
def log_softmax_rows(logits: _FloatArray, out: _FloatArray, n_threads: int) -> None: ...
def cross_entropy_labels(
    logits: _FloatArray,
    labels: _IntpArray,
    sample_weight: _FloatArray,
    loss_out: _DoubleArray,
    grad_out: _FloatArray,
    n_threads: int,
) -> None: ...
def cross_entropy_targets(
    logits: _FloatArray,
    targets: _FloatArray,
    sample_weight: _FloatArray,
    loss_out: _DoubleArray,
    grad_out: _FloatArray,
    n_threads: int,
) -> None: ...
def linear_logits(
    X: _FloatArray,
    coef_t: _FloatArray,
    intercept: _FloatArray,
    out: _FloatArray,
    n_threads: int,
) -> None: ...
def linear_loss_gradient(
    X: _FloatArray,
    labels: _IntpArray,
    sample_weight: _FloatArray,
    coef_t: _FloatArray,
    intercept: _FloatArray,
    grad_coef_t: _FloatArray,
    grad_intercept: _FloatArray,
    n_threads: int,
) -> float: ...
def padded_classes(n_classes: int, dtype: str) -> int: ...
def linear_probabilities(
    X: _FloatArray,
    coef_t: _FloatArray,
    intercept: _FloatArray,
    proba: _FloatArray,
    n_threads: int,
) -> None: ...
def linear_hessian_product_proba(
    X: _FloatArray,
    sample_weight: _FloatArray,
    proba: _FloatArray,
    direction_coef_t: _FloatArray,
    direction_intercept: _FloatArray,
    out_coef_t: _FloatArray,
    out_intercept: _FloatArray,
    n_threads: int,
) -> None: ...
def linear_hessian_product(
    X: _FloatArray,
    sample_weight: _FloatArray,
    coef_t: _FloatArray,
    intercept: _FloatArray,
    direction_coef_t: _FloatArray,
    direction_intercept: _FloatArray,
    out_coef_t: _FloatArray,
    out_intercept: _FloatArray,
    n_threads: int,
) -> None: ...
def column_moments(
    X: _FloatArray,
    sample_weight: _FloatArray,
    mean_out: _DoubleArray,
    variance_out: _DoubleArray,
    magnitude_out: _DoubleArray,
    n_threads: int,
) -> None: ...
