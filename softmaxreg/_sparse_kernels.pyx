"""Nogil kernels of the linear softmax model over the rows of a CSR matrix.

The sparse counterparts of ``_kernels.linear_logits``, ``linear_loss_gradient`` and
``linear_hessian_product``, with the same outputs and the same per-row softmax and
cross-entropy (the C helpers of ``_tiles.h``, shared through
``_kernel_common.pxi``), and ``csr_column_moments``, the weighted column moments. X is
given as its CSR arrays: ``data`` (nnz values), ``indices`` (nnz column indices, int32
or int64, in any order, duplicates summed as SciPy sums them) and ``indptr``
(n_rows + 1). A row's logits are its intercepts plus the stored entries times the
coefficients' rows; its share of the gradient is added entry by entry. Explicit zeros
and empty rows are handled like any other entries and rows.

**Columns.** ``column_map`` (the indices' dtype) maps X's columns to the rows of the
coefficients: column ``j`` of X is coefficient row ``column_map[j]``. An empty map is
the identity. The solvers fit only the columns that store an entry (a column without
one has coefficient 0 at the optimum of the penalized objective), so wide hashed or
one-hot data with many empty columns cost nothing for those columns.

**Threads and memory.** Rows are split into contiguous, equal ranges, one per thread
(OpenMP static schedule). Thread 0 accumulates its gradient straight into the output;
every other thread into its own (d + 1) x k buffer in ``workspace``, which the caller
allocates once (``csr_workspace_size``) and passes to every call. The buffers are then
added in thread order, in parallel over the coefficients, so for a given thread count
the result is the same on every run. The extra memory is (threads - 1) x (d + 1) x k
values, d the number of coefficient rows: for 2**20 hashed features that all store
an entry and 20 classes, 160 MiB per extra thread in float64 (the solvers' L-BFGS
history of 10 pairs holds 20 such arrays).
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, fabs, log1p
from libc.stdlib cimport calloc, free
from libc.string cimport memset

include "_kernel_common.pxi"


ctypedef fused index_t:
    int
    long long


cdef inline Py_ssize_t _column(const index_t *indices, const index_t *column_map,
                               Py_ssize_t p) noexcept nogil:
    return column_map[indices[p]] if column_map != NULL else indices[p]


cdef inline void _row_logits_csr(
    const floating *data, const index_t *indices, const index_t *column_map,
    Py_ssize_t start, Py_ssize_t end, const floating *coef, const floating *intercept,
    Py_ssize_t k, Py_ssize_t kp, floating pad, floating *z,
) noexcept nogil:
    """z[:k] = intercept + sum over the row's entries of x * coef[column]; z[k:kp] = pad."""
    cdef Py_ssize_t p, c
    cdef const floating *row
    cdef floating x
    for c in range(k):
        z[c] = intercept[c]
    for c in range(k, kp):
        z[c] = pad
    for p in range(start, end):
        row = coef + _column(indices, column_map, p) * k
        x = data[p]
        for c in range(k):
            z[c] += x * row[c]


cdef inline void _row_accumulate_csr(
    const floating *data, const index_t *indices, const index_t *column_map,
    Py_ssize_t start, Py_ssize_t end, const floating *g, Py_ssize_t k,
    floating *acc, floating *acc_intercept,
) noexcept nogil:
    """acc[column] += x * g for each entry (column, x) of the row, and acc_intercept += g."""
    cdef Py_ssize_t p, c
    cdef floating *row
    cdef floating x
    for p in range(start, end):
        row = acc + _column(indices, column_map, p) * k
        x = data[p]
        for c in range(k):
            row[c] += x * g[c]
    for c in range(k):
        acc_intercept[c] += g[c]


cdef int _check_csr(Py_ssize_t nnz, Py_ssize_t n_indices, Py_ssize_t n_rows_plus_one) except -1:
    if n_indices != nnz:
        raise ValueError(f"indices has {n_indices} entries for {nnz} values in data.")
    if n_rows_plus_one < 1:
        raise ValueError("indptr must have n_rows + 1 >= 1 entries.")
    return 0


cdef inline Py_ssize_t _accumulator_stride(Py_ssize_t d, Py_ssize_t k,
                                           Py_ssize_t itemsize) noexcept nogil:
    return _slot_stride((d + 1) * k, itemsize)


cdef inline Py_ssize_t _scratch_stride(Py_ssize_t kp, Py_ssize_t itemsize) noexcept nogil:
    return _slot_stride(2 * kp, itemsize)


def csr_workspace_size(Py_ssize_t n_coef_rows, Py_ssize_t n_classes, int n_threads, dtype):
    """Elements of the ``workspace`` that ``csr_linear_loss_gradient`` and
    ``csr_linear_hessian_product`` need for ``n_threads`` threads: (threads - 1)
    accumulators of (n_coef_rows + 1) x n_classes and two padded rows of classes per
    thread, each rounded up to whole cache lines.

    Parameters
    ----------
    n_coef_rows, n_classes : int
        The shape of ``coef_t``.
    n_threads : int
    dtype : "float32" or "float64"
    """
    cdef Py_ssize_t itemsize, kp
    cdef int slots = max(n_threads, 1)
    if str(dtype) == "float64":
        itemsize, kp = 8, _padded_classes(n_classes, <double *> NULL)
    elif str(dtype) == "float32":
        itemsize, kp = 4, _padded_classes(n_classes, <float *> NULL)
    else:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}.")
    return ((slots - 1) * _accumulator_stride(n_coef_rows, n_classes, itemsize)
            + slots * _scratch_stride(kp, itemsize))


cdef int _check_workspace(Py_ssize_t size, Py_ssize_t d, Py_ssize_t k, int slots,
                          Py_ssize_t kp, Py_ssize_t itemsize) except -1:
    cdef Py_ssize_t needed = ((slots - 1) * _accumulator_stride(d, k, itemsize)
                              + slots * _scratch_stride(kp, itemsize))
    if size < needed:
        raise ValueError(
            f"workspace has {size} elements; {needed} are needed for {slots} threads "
            f"(csr_workspace_size).")
    return 0


cdef inline floating *_thread_accumulator(
    int tid, floating *out_coef, floating *out_intercept, floating *space,
    Py_ssize_t acc_stride, Py_ssize_t d, Py_ssize_t k,
) noexcept nogil:
    """Thread ``tid``'s (d, k) accumulator, zeroed with its row for the intercepts (that
    row follows it, except for thread 0): the outputs themselves for thread 0, its buffer
    in the workspace for the others (see the module)."""
    cdef floating *acc
    if tid == 0:
        acc = out_coef
        if d:
            memset(acc, 0, d * k * sizeof(floating))
        memset(out_intercept, 0, k * sizeof(floating))
    else:
        acc = space + (tid - 1) * acc_stride
        memset(acc, 0, (d + 1) * k * sizeof(floating))
    return acc


cdef void _reduce_accumulators(
    floating *out_coef, floating *out_intercept, const floating *workspace,
    Py_ssize_t d, Py_ssize_t k, const int *ran, int slots, int n_threads,
) noexcept nogil:
    """out += the accumulators of threads 1, 2, ... that ran, in that order, in parallel
    over the coefficients (an element's sum does not depend on who adds it)."""
    cdef Py_ssize_t stride = _accumulator_stride(d, k, sizeof(floating))
    cdef Py_ssize_t size = (d + 1) * k, e
    cdef floating *target
    cdef floating total
    cdef int t
    if slots == 1:
        return
    for e in prange(size, schedule="static", num_threads=n_threads):
        target = out_coef + e if e < d * k else out_intercept + (e - d * k)
        total = target[0]
        for t in range(1, slots):
            if ran[t]:
                total = total + workspace[(t - 1) * stride + e]
        target[0] = total


def csr_linear_logits(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    const index_t[::1] column_map,
    const floating[:, ::1] coef_t,
    const floating[::1] intercept,
    floating[:, ::1] out,
    int n_threads,
):
    """``out = X @ coef_t + intercept`` for the CSR matrix X (n_rows, n_columns), its
    column j read as coefficient row ``column_map[j]`` (empty map: the identity)."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, k = coef_t.shape[1], i
    cdef const index_t *cmap = &column_map[0] if column_map.shape[0] else NULL
    cdef const floating *coef = &coef_t[0, 0] if coef_t.shape[0] else NULL
    _check_csr(data.shape[0], indices.shape[0], indptr.shape[0])
    if k == 0 or n == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=max(n_threads, 1)):
        _row_logits_csr(&data[0] if data.shape[0] else NULL,
                        &indices[0] if indices.shape[0] else NULL, cmap,
                        indptr[i], indptr[i + 1], coef, &intercept[0], k, k, 0, &out[i, 0])


def csr_linear_loss_gradient(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    const index_t[::1] column_map,
    const Py_ssize_t[::1] labels,
    const floating[::1] sample_weight,
    const floating[:, ::1] coef_t,
    const floating[::1] intercept,
    floating[:, ::1] grad_coef_t,
    floating[::1] grad_intercept,
    floating[::1] workspace,
    int n_threads,
):
    """``_kernels.linear_loss_gradient`` for the CSR matrix X: returns the weighted loss
    (float64) and writes the gradient with respect to coef_t (d, k) and intercept (k).
    An empty ``sample_weight`` means unit weights; rows of weight 0 contribute nothing.
    ``column_map`` and ``workspace``: see the module."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, d = coef_t.shape[0], k = coef_t.shape[1]
    cdef Py_ssize_t kp = _padded_classes(k, <floating *> NULL)
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef int slots = max(n_threads, 1)
    cdef Py_ssize_t acc_stride = _accumulator_stride(d, k, sizeof(floating))
    cdef Py_ssize_t scratch_stride = _scratch_stride(kp, sizeof(floating))
    cdef Py_ssize_t loss_stride = CACHE_LINE // sizeof(double)
    cdef const index_t *cmap = &column_map[0] if column_map.shape[0] else NULL
    cdef const floating *xdata = &data[0] if data.shape[0] else NULL
    cdef const index_t *xindices = &indices[0] if indices.shape[0] else NULL
    cdef const floating *coef = &coef_t[0, 0] if d else NULL
    cdef floating *out_coef = &grad_coef_t[0, 0] if d else NULL
    cdef floating *space
    cdef double *loss_slots = NULL
    cdef int *ran = NULL
    cdef floating *my_acc
    cdef floating *my_intercept
    cdef floating *z
    cdef floating w
    cdef double rest, row_loss, loss = 0.0
    cdef Py_ssize_t i
    cdef int tid, t

    _check_csr(data.shape[0], indices.shape[0], indptr.shape[0])
    if grad_coef_t.shape[0] != d or grad_coef_t.shape[1] != k or grad_intercept.shape[0] != k:
        raise ValueError("grad_coef_t and grad_intercept must have coef_t's and intercept's shapes.")
    _check_workspace(workspace.shape[0], d, k, slots, kp, sizeof(floating))
    if k == 0:
        return 0.0
    space = &workspace[0]
    try:
        loss_slots = <double *> _checked_calloc(slots * loss_stride, sizeof(double))
        ran = <int *> _checked_calloc(slots, sizeof(int))
        with nogil, parallel(num_threads=slots):
            tid = omp_get_thread_num()
            ran[tid] = 1
            my_acc = _thread_accumulator(tid, out_coef, &grad_intercept[0], space, acc_stride, d, k)
            my_intercept = &grad_intercept[0] if tid == 0 else my_acc + d * k
            z = space + (slots - 1) * acc_stride + tid * scratch_stride
            for i in prange(n, schedule="static"):
                w = sample_weight[i] if weighted else 1
                if w == 0:
                    continue
                _row_logits_csr(xdata, xindices, cmap, indptr[i], indptr[i + 1],
                                coef, &intercept[0], k, kp, -INFINITY, z)
                # The row's loss is w (max(z) - z_y) + w log1p(rest), rest the sum of the
                # other classes' exp(z - max(z)) (see smr_row_softmax_grad).
                if floating is float:
                    row_loss = smr_row_softmax_grad_f(z, kp, labels[i], w, &rest)
                else:
                    row_loss = smr_row_softmax_grad_d(z, kp, labels[i], w, &rest)
                loss_slots[tid * loss_stride] += row_loss + w * log1p(rest)
                _row_accumulate_csr(xdata, xindices, cmap, indptr[i], indptr[i + 1],
                                    z, k, my_acc, my_intercept)
        for t in range(slots):
            loss += loss_slots[t * loss_stride]
        with nogil:
            _reduce_accumulators(out_coef, &grad_intercept[0], space, d, k, ran, slots, slots)
    finally:
        free(loss_slots)
        free(ran)
    return loss


def csr_linear_hessian_product(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    const index_t[::1] column_map,
    const floating[::1] sample_weight,
    const floating[:, ::1] coef_t,
    const floating[::1] intercept,
    const floating[:, ::1] direction_coef_t,
    const floating[::1] direction_intercept,
    floating[:, ::1] out_coef_t,
    floating[::1] out_intercept,
    floating[::1] workspace,
    int n_threads,
):
    """``_kernels.linear_hessian_product`` for the CSR matrix X: the Hessian of the loss
    at (coef_t, intercept) times the direction (V, v), into out_coef_t and out_intercept.
    ``column_map`` and ``workspace``: see the module."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, d = coef_t.shape[0], k = coef_t.shape[1]
    cdef Py_ssize_t kp = _padded_classes(k, <floating *> NULL)
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef int slots = max(n_threads, 1)
    cdef Py_ssize_t acc_stride = _accumulator_stride(d, k, sizeof(floating))
    cdef Py_ssize_t scratch_stride = _scratch_stride(kp, sizeof(floating))
    cdef const index_t *cmap = &column_map[0] if column_map.shape[0] else NULL
    cdef const floating *xdata = &data[0] if data.shape[0] else NULL
    cdef const index_t *xindices = &indices[0] if indices.shape[0] else NULL
    cdef const floating *coef = &coef_t[0, 0] if d else NULL
    cdef const floating *direction = &direction_coef_t[0, 0] if d else NULL
    cdef floating *out_coef = &out_coef_t[0, 0] if d else NULL
    cdef floating *space
    cdef int *ran = NULL
    cdef floating *my_acc
    cdef floating *my_intercept
    cdef floating *z
    cdef floating *r
    cdef floating w
    cdef Py_ssize_t i
    cdef int tid

    _check_csr(data.shape[0], indices.shape[0], indptr.shape[0])
    if (direction_coef_t.shape[0] != d or direction_coef_t.shape[1] != k
            or out_coef_t.shape[0] != d or out_coef_t.shape[1] != k
            or direction_intercept.shape[0] != k or out_intercept.shape[0] != k):
        raise ValueError("the direction and the outputs must have coef_t's and intercept's shapes.")
    _check_workspace(workspace.shape[0], d, k, slots, kp, sizeof(floating))
    if k == 0:
        return
    space = &workspace[0]
    try:
        ran = <int *> _checked_calloc(slots, sizeof(int))
        with nogil, parallel(num_threads=slots):
            tid = omp_get_thread_num()
            ran[tid] = 1
            my_acc = _thread_accumulator(tid, out_coef, &out_intercept[0], space, acc_stride, d, k)
            my_intercept = &out_intercept[0] if tid == 0 else my_acc + d * k
            z = space + (slots - 1) * acc_stride + tid * scratch_stride
            r = z + kp
            for i in prange(n, schedule="static"):
                w = sample_weight[i] if weighted else 1
                if w == 0:
                    continue
                _row_logits_csr(xdata, xindices, cmap, indptr[i], indptr[i + 1],
                                coef, &intercept[0], k, kp, -INFINITY, z)
                _row_logits_csr(xdata, xindices, cmap, indptr[i], indptr[i + 1],
                                direction, &direction_intercept[0], k, kp, 0, r)
                if floating is float:
                    smr_row_softmax_jvp_f(z, r, kp, w)
                else:
                    smr_row_softmax_jvp_d(z, r, kp, w)
                _row_accumulate_csr(xdata, xindices, cmap, indptr[i], indptr[i + 1],
                                    r, k, my_acc, my_intercept)
        with nogil:
            _reduce_accumulators(out_coef, &out_intercept[0], space, d, k, ran, slots, slots)
    finally:
        free(ran)


def csr_column_sums(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    const floating[::1] sample_weight,
    double[::1] shift,
    double[::1] sum1,
    double[::1] sum2,
    double[::1] stored_weight,
    long long[::1] stored_count,
    double[::1] magnitude,
    int n_threads,
):
    """The sums behind the weighted column moments of a CSR matrix without duplicate
    entries, over its stored entries on rows of positive weight (float64, length d):

    - ``shift[j]``: the column's first such entry (in row order), 0 where it has none;
    - ``sum1[j]``, ``sum2[j]``: the weighted sums of ``x - shift[j]`` and of its square;
    - ``stored_weight[j]``, ``stored_count[j]``: the weights and the number of the rows
      that store the column;
    - ``magnitude[j]``: the largest ``|x|``.

    The caller adds the implicit zeros (``_preconditioning.column_moments``). The shifts
    come from one serial pass (no arithmetic); the sums from a pass over blocks of rows
    on ``n_threads`` threads, thread 0 into the outputs and the others into buffers of
    5 d values each, added in thread order (deterministic for a thread count).
    """
    cdef Py_ssize_t n = indptr.shape[0] - 1, d = shift.shape[0], i, p, j
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef int slots = max(n_threads, 1), tid, t
    cdef Py_ssize_t stride = _slot_stride(5 * d, sizeof(double))
    cdef double *space = NULL
    cdef double *mine
    cdef int *ran = NULL
    cdef unsigned char *seen = NULL
    cdef double w, x, deviation
    cdef double *s1
    cdef double *s2
    cdef double *sw
    cdef double *cnt
    cdef double *mag
    _check_csr(data.shape[0], indices.shape[0], indptr.shape[0])
    if (sum1.shape[0] != d or sum2.shape[0] != d or stored_weight.shape[0] != d
            or magnitude.shape[0] != d or stored_count.shape[0] != d):
        raise ValueError("the outputs must all have length d.")
    try:
        seen = <unsigned char *> _checked_calloc(max(d, 1), 1)
        ran = <int *> _checked_calloc(slots, sizeof(int))
        space = <double *> _checked_calloc(max(slots - 1, 1) * stride, sizeof(double))
        with nogil:
            for j in range(d):
                shift[j] = 0.0
            for i in range(n):
                if weighted and not sample_weight[i] > 0:
                    continue
                for p in range(indptr[i], indptr[i + 1]):
                    j = indices[p]
                    if not seen[j]:
                        seen[j] = 1
                        shift[j] = data[p]
            for j in range(d):
                sum1[j] = 0.0
                sum2[j] = 0.0
                stored_weight[j] = 0.0
                stored_count[j] = 0
                magnitude[j] = 0.0
        with nogil, parallel(num_threads=slots):
            tid = omp_get_thread_num()
            ran[tid] = 1
            mine = space + (tid - 1) * stride
            if tid == 0:
                s1, s2, sw, mag = &sum1[0], &sum2[0], &stored_weight[0], &magnitude[0]
                cnt = NULL
            else:
                s1, s2, sw, cnt, mag = mine, mine + d, mine + 2 * d, mine + 3 * d, mine + 4 * d
            for i in prange(n, schedule="static"):
                w = sample_weight[i] if weighted else 1.0
                if not w > 0:
                    continue
                for p in range(indptr[i], indptr[i + 1]):
                    j = indices[p]
                    x = data[p]
                    deviation = x - shift[j]
                    s1[j] += w * deviation
                    s2[j] += w * deviation * deviation
                    sw[j] += w
                    if cnt == NULL:
                        stored_count[j] += 1
                    else:
                        cnt[j] += 1
                    if fabs(x) > mag[j]:
                        mag[j] = fabs(x)
        with nogil:
            for t in range(1, slots):
                if not ran[t]:
                    continue
                mine = space + (t - 1) * stride
                for j in range(d):
                    sum1[j] += mine[j]
                    sum2[j] += mine[d + j]
                    stored_weight[j] += mine[2 * d + j]
                    stored_count[j] += <long long> mine[3 * d + j]
                    if mine[4 * d + j] > magnitude[j]:
                        magnitude[j] = mine[4 * d + j]
    finally:
        free(seen)
        free(ran)
        free(space)
