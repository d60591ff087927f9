"""Nogil kernels of the linear softmax model over the rows of a CSR matrix.

The sparse counterparts of ``_kernels.linear_logits``, ``linear_loss_gradient`` and
``linear_hessian_product``, with the same outputs and the same per-row softmax and
cross-entropy (the C helpers of ``_tiles.h``, shared through
``_kernel_common.pxi``). X is given as its CSR arrays: ``data`` (nnz values),
``indices`` (nnz column indices, int32 or int64, in any order, duplicates summed as
SciPy sums them) and ``indptr`` (n_rows + 1). A row's logits are its intercepts plus
the stored entries times the coefficients' rows; its share of the gradient is added
entry by entry. Explicit zeros and empty rows are handled like any other entries and
rows.

Rows are split into contiguous, equal ranges, one per thread (OpenMP static
schedule); every thread accumulates into its own (n_features + 1) x padded-classes
buffer, and the buffers are added in thread order, so for a given thread count the
result is the same on every run. The buffers cost threads x (d + 1) x k values: for
2**20 hashed features and 20 classes, 168 MiB per thread in float64.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, log1p
from libc.stdlib cimport calloc, free

include "_kernel_common.pxi"


ctypedef fused index_t:
    int
    long long


cdef inline void _row_logits_csr(
    const floating *data, const index_t *indices, Py_ssize_t start, Py_ssize_t end,
    const floating *coef_pad, Py_ssize_t d, Py_ssize_t k, Py_ssize_t kp, floating *z,
) noexcept nogil:
    """z[:kp] = the padded intercepts + sum over the row's entries of x * coef_pad[j]."""
    cdef Py_ssize_t p, c, j
    cdef floating x
    for c in range(kp):
        z[c] = coef_pad[d * kp + c]
    for p in range(start, end):
        j = indices[p]
        x = data[p]
        for c in range(k):
            z[c] += x * coef_pad[j * kp + c]


cdef inline void _row_accumulate_csr(
    const floating *data, const index_t *indices, Py_ssize_t start, Py_ssize_t end,
    const floating *g, Py_ssize_t d, Py_ssize_t k, Py_ssize_t kp, floating *acc,
) noexcept nogil:
    """acc[j] += x * g for each entry (j, x) of the row, and acc[d] += g."""
    cdef Py_ssize_t p, c, j
    cdef floating x
    for p in range(start, end):
        j = indices[p]
        x = data[p]
        for c in range(k):
            acc[j * kp + c] += x * g[c]
    for c in range(k):
        acc[d * kp + c] += g[c]


cdef int _check_csr(Py_ssize_t nnz, Py_ssize_t n_indices, Py_ssize_t n_rows_plus_one) except -1:
    if n_indices != nnz:
        raise ValueError(f"indices has {n_indices} entries for {nnz} values in data.")
    if n_rows_plus_one < 1:
        raise ValueError("indptr must have n_rows + 1 >= 1 entries.")
    return 0


def csr_linear_logits(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    const floating[:, ::1] coef_t,
    const floating[::1] intercept,
    floating[:, ::1] out,
    int n_threads,
):
    """``out = X @ coef_t + intercept`` for the CSR matrix X (n_rows, d)."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, d = coef_t.shape[0], k = coef_t.shape[1], i, c, p
    cdef floating total
    _check_csr(data.shape[0], indices.shape[0], indptr.shape[0])
    if k == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=max(n_threads, 1)):
        for c in range(k):
            total = intercept[c]
            for p in range(indptr[i], indptr[i + 1]):
                total = total + data[p] * coef_t[indices[p], c]
            out[i, c] = total


def csr_linear_loss_gradient(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    const Py_ssize_t[::1] labels,
    const floating[::1] sample_weight,
    const floating[:, ::1] coef_t,
    const floating[::1] intercept,
    floating[:, ::1] grad_coef_t,
    floating[::1] grad_intercept,
    int n_threads,
):
    """``_kernels.linear_loss_gradient`` for the CSR matrix X: returns the weighted loss
    (float64) and writes the gradient with respect to coef_t (d, k) and intercept (k).
    An empty ``sample_weight`` means unit weights; rows of weight 0 contribute nothing."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, d = coef_t.shape[0], k = coef_t.shape[1]
    cdef Py_ssize_t kp = _padded_classes(k, <floating *> NULL)
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef int n_slots = max(n_threads, 1)
    cdef Py_ssize_t acc_size = (d + 1) * kp
    cdef Py_ssize_t stride = _slot_stride(acc_size + kp, sizeof(floating))
    cdef Py_ssize_t loss_stride = CACHE_LINE // sizeof(double)
    cdef floating *coef_pad = NULL
    cdef floating *slots = NULL
    cdef double *loss_slots = NULL
    cdef floating *my_acc
    cdef floating *z
    cdef floating w
    cdef double rest, row_loss, loss = 0.0
    cdef Py_ssize_t i, t
    cdef int tid

    _check_csr(data.shape[0], indices.shape[0], indptr.shape[0])
    if k == 0:
        return 0.0
    try:
        coef_pad = <floating *> _checked_calloc((d + 1) * kp, sizeof(floating))
        slots = <floating *> _checked_calloc(n_slots * stride, sizeof(floating))
        loss_slots = <double *> _checked_calloc(n_slots * loss_stride, sizeof(double))
        _pad_coef(coef_t, intercept, -INFINITY, kp, coef_pad)
        with nogil, parallel(num_threads=n_slots):
            tid = omp_get_thread_num()
            my_acc = slots + tid * stride
            z = my_acc + acc_size
            for i in prange(n, schedule="static"):
                w = sample_weight[i] if weighted else 1
                if w == 0:
                    continue
                _row_logits_csr(&data[0], &indices[0], indptr[i], indptr[i + 1],
                                coef_pad, d, k, kp, z)
                # The row's loss is w (max(z) - z_y) + w log1p(rest), rest the sum of the
                # other classes' exp(z - max(z)) (see smr_row_softmax_grad).
                if floating is float:
                    row_loss = smr_row_softmax_grad_f(z, kp, labels[i], w, &rest)
                else:
                    row_loss = smr_row_softmax_grad_d(z, kp, labels[i], w, &rest)
                loss_slots[tid * loss_stride] += row_loss + w * log1p(rest)
                _row_accumulate_csr(&data[0], &indices[0], indptr[i], indptr[i + 1],
                                    z, d, k, kp, my_acc)
        for t in range(n_slots):
            loss += loss_slots[t * loss_stride]
        _reduce_slots(slots, n_slots, stride, kp, grad_coef_t, grad_intercept)
    finally:
        free(coef_pad)
        free(slots)
        free(loss_slots)
    return loss


def csr_linear_hessian_product(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    const floating[::1] sample_weight,
    const floating[:, ::1] coef_t,
    const floating[::1] intercept,
    const floating[:, ::1] direction_coef_t,
    const floating[::1] direction_intercept,
    floating[:, ::1] out_coef_t,
    floating[::1] out_intercept,
    int n_threads,
):
    """``_kernels.linear_hessian_product`` for the CSR matrix X: the Hessian of the loss
    at (coef_t, intercept) times the direction (V, v), into out_coef_t and out_intercept."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, d = coef_t.shape[0], k = coef_t.shape[1]
    cdef Py_ssize_t kp = _padded_classes(k, <floating *> NULL)
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef int n_slots = max(n_threads, 1)
    cdef Py_ssize_t acc_size = (d + 1) * kp
    cdef Py_ssize_t stride = _slot_stride(acc_size + 2 * kp, sizeof(floating))
    cdef floating *coef_pad = NULL
    cdef floating *direction_pad = NULL
    cdef floating *slots = NULL
    cdef floating *my_acc
    cdef floating *z
    cdef floating *r
    cdef floating w
    cdef Py_ssize_t i
    cdef int tid

    _check_csr(data.shape[0], indices.shape[0], indptr.shape[0])
    if k == 0:
        return
    try:
        coef_pad = <floating *> _checked_calloc((d + 1) * kp, sizeof(floating))
        direction_pad = <floating *> _checked_calloc((d + 1) * kp, sizeof(floating))
        slots = <floating *> _checked_calloc(n_slots * stride, sizeof(floating))
        _pad_coef(coef_t, intercept, -INFINITY, kp, coef_pad)
        _pad_coef(direction_coef_t, direction_intercept, 0, kp, direction_pad)
        with nogil, parallel(num_threads=n_slots):
            tid = omp_get_thread_num()
            my_acc = slots + tid * stride
            z = my_acc + acc_size
            r = z + kp
            for i in prange(n, schedule="static"):
                w = sample_weight[i] if weighted else 1
                if w == 0:
                    continue
                _row_logits_csr(&data[0], &indices[0], indptr[i], indptr[i + 1],
                                coef_pad, d, k, kp, z)
                _row_logits_csr(&data[0], &indices[0], indptr[i], indptr[i + 1],
                                direction_pad, d, k, kp, r)
                if floating is float:
                    smr_row_softmax_jvp_f(z, r, kp, w)
                else:
                    smr_row_softmax_jvp_d(z, r, kp, w)
                _row_accumulate_csr(&data[0], &indices[0], indptr[i], indptr[i + 1],
                                    r, d, k, kp, my_acc)
        _reduce_slots(slots, n_slots, stride, kp, out_coef_t, out_intercept)
    finally:
        free(coef_pad)
        free(direction_pad)
        free(slots)
