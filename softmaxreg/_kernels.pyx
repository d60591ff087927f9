"""Nogil kernels for the softmax and its cross-entropy, row by row and in parallel.

Every kernel takes C-contiguous inputs (``const`` memoryviews, so read-only
buffers such as memmaps work), writes into caller-allocated outputs and takes the
number of OpenMP threads. Indices are ``Py_ssize_t``. Both float32 and float64
are compiled (the ``floating`` fused type); losses are accumulated in float64.

For one row of logits ``z`` with ``m = max(z)`` and ``s = sum_j exp(z_j - m)``:

* ``softmax(z)_j = exp(z_j - m) / s``
* ``log_softmax(z)_j = (z_j - m) - log1p(s - 1)``, never ``log(softmax(z))``, so no
  probability that rounds to zero reaches a ``log``; ``s - 1`` is summed from the
  non-maximal terms, so a log-probability near 0 keeps its relative precision;
* for non-negative targets ``t``, ``E = -sum_j t_j log_softmax(z)_j`` and
  ``dE/dz_j = softmax(z)_j * sum(t) - t_j`` (``o_j - t_j`` for a one-hot ``t``).

Nothing here knows about scikit-learn. This is the only file with ``prange``.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, exp, expf, fabs, log1p
from libc.stdlib cimport calloc, free


include "_kernel_common.pxi"


def openmp_enabled():
    """Return True if the kernels were compiled with OpenMP."""
    return bool(SOFTMAXREG_OPENMP)


def cpu_has_avx2_fma():
    """Return True if this CPU (and its OS) can run AVX2 and FMA instructions."""
    return bool(softmaxreg_cpu_has_avx2_fma())


def cpu_has_avx512():
    """Return True if this CPU (and its OS) can run AVX-512 F, DQ and VL instructions."""
    return bool(softmaxreg_cpu_has_avx512())


def openmp_thread_ids(int n_threads):
    """Return the OS thread ids (Linux ``gettid``) of a team of ``n_threads`` OpenMP
    threads started from the calling thread, the calling thread's first.

    The OpenMP runtime keeps a team's threads for the next parallel regions of the
    same thread, so these are the threads that run the kernels called from it with
    up to ``n_threads`` threads. Ids are 0 where the OS has none to give; a serial
    build returns the calling thread's alone.
    """
    cdef int n = max(n_threads, 1), t
    cdef long *ids = <long *> _checked_calloc(n, sizeof(long))
    try:
        with nogil, parallel(num_threads=n):
            t = omp_get_thread_num()
            if t < n:
                ids[t] = softmaxreg_thread_id()
        return [ids[t] for t in range(n) if ids[t] != 0 or t == 0]
    finally:
        free(ids)


def openmp_max_threads():
    """Return ``omp_get_max_threads()``: OMP_NUM_THREADS and threadpoolctl limits apply.

    Returns 1 when the kernels were compiled without OpenMP.
    """
    return omp_get_max_threads()


# ---------------------------------------------------------------------------
# Per-row helpers
# ---------------------------------------------------------------------------

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline Py_ssize_t _row_argmax(const floating *z, Py_ssize_t k) noexcept nogil:
    """Index of the first largest entry of z."""
    cdef Py_ssize_t j, jmax = 0
    for j in range(1, k):
        if z[j] > z[jmax]:
            jmax = j
    return jmax


cdef inline void _compensated_add(double *total, double *compensation, double x) noexcept nogil:
    """Add x to the compensated sum ``total + compensation`` (Neumaier's variant of
    Kahan's): ``total + compensation`` holds the sum to about eps**2 of the sum of the
    magnitudes, whatever the number and order of the terms, so that a difference such
    as ``sum - t_j`` keeps the small terms."""
    cdef double t = total[0] + x
    if fabs(total[0]) >= fabs(x):
        compensation[0] += (total[0] - t) + x
    else:
        compensation[0] += (x - t) + total[0]
    total[0] = t


# Terms exp(d) below exp(-_TINY_SHIFT) are subnormal or 0 in float64: they are summed as
# exp(d + _TINY_SHIFT), in the normal range, and scaled down once at the end, so that a
# row of many such terms (a subnormal log-softmax of its top class) keeps its sum.
cdef double _TINY_SHIFT = 700.0
cdef double _EXP_MINUS_SHIFT = exp(-_TINY_SHIFT)


cdef inline void _rest_add(double d, double e_d, double *total, double *compensation,
                           double *tiny) noexcept nogil:
    """Add ``exp(d)`` (``e_d``, d <= 0) to the compensated ``total``, or where it is below
    float64's normal range, ``exp(d + _TINY_SHIFT)`` to ``tiny``."""
    if d < -_TINY_SHIFT:
        tiny[0] += exp(d + _TINY_SHIFT)
    else:
        _compensated_add(total, compensation, e_d)


cdef inline double _row_exp_rest(
    const floating *z, Py_ssize_t k, Py_ssize_t jmax, floating *e
) noexcept nogil:
    """Write e_j = exp(z_j - m) with m = z[jmax] = max(z), and return
    ``rest = sum_{j != jmax} e_j`` (compensated, float64), so that
    ``s = sum_j e_j = 1 + rest`` and ``log(s) = log1p(rest)`` keeps the relative
    precision of a loss near 0.

    ``e`` may be ``z`` itself: each element is read before it is written.
    """
    cdef Py_ssize_t j
    cdef double m = z[jmax], d, e_j
    cdef double total = 0.0, compensation = 0.0, tiny = 0.0
    for j in range(k):
        d = <double>z[j] - m
        e_j = exp(d)
        e[j] = <floating>e_j  # a float32 subnormal rounded once, from float64
        if j != jmax:
            _rest_add(d, e_j, &total, &compensation, &tiny)
    return total + compensation + tiny * _EXP_MINUS_SHIFT


cdef inline double _row_label_loss_grad(
    const floating *z, Py_ssize_t k, Py_ssize_t y, floating w, floating *g
) noexcept nogil:
    """Loss ``w * ((m - z_y) + log1p(rest))``; writes ``g = w * (softmax(z) - onehot(y))``.

    ``g`` may be ``z`` itself. ``g_y = -w (1 - p_y)`` with ``1 - p_y = (s - e_y) / s``
    and ``s - e_y`` summed from the other classes' terms, not as ``w * p_y - w``, so
    it keeps its relative precision when ``p_y`` is close to 1.
    """
    cdef Py_ssize_t j
    cdef Py_ssize_t jmax = _row_argmax(z, k)
    cdef double m = z[jmax]
    cdef double z_y = z[y]
    cdef double rest = _row_exp_rest(z, k, jmax, g)
    cdef double s = 1.0 + rest
    # s - e_y: the terms of every class but y. For y != jmax, rest holds e_y.
    cdef double not_y = rest if y == jmax else 1.0 + (rest - g[y])
    for j in range(k):
        g[j] = <floating>(w * (g[j] / s))
    g[y] = <floating>(-w * (not_y / s))
    if w == 0:
        return 0.0
    return w * ((m - z_y) + log1p(rest))


# ---------------------------------------------------------------------------
# Row-wise softmax and log-softmax
# ---------------------------------------------------------------------------

def softmax_rows(const floating[:, ::1] logits, floating[:, ::1] out, int n_threads):
    """``out[i] = softmax(logits[i])``; ``out`` may be ``logits``.

    ``softmax(z)_j = e_j / (1 + rest)`` with ``e_j = exp(z_j - max(z))`` and ``rest``
    the compensated sum of the non-maximal ``e_j``.
    """
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i, j
    cdef double s
    if k == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        s = 1.0 + _row_exp_rest(&logits[i, 0], k, _row_argmax(&logits[i, 0], k), &out[i, 0])
        for j in range(k):
            out[i, j] = <floating>(out[i, j] / s)


def log_softmax_rows(const floating[:, ::1] logits, floating[:, ::1] out, int n_threads):
    """``out[i] = log_softmax(logits[i])``; ``out`` may be ``logits``.

    ``log_softmax(z)_j = (z_j - m) - log1p(rest)``, with ``m = max(z)`` and ``rest``
    the compensated sum of ``exp(z_j - m)`` over every j but the maximal one: the
    log of ``1 + small`` keeps its relative precision.
    """
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i, j, jmax
    cdef double m, log_s, d
    cdef double rest, total, compensation, tiny
    if k == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        jmax = _row_argmax(&logits[i, 0], k)
        m = logits[i, jmax]
        total = 0.0
        compensation = 0.0
        tiny = 0.0
        for j in range(k):
            if j != jmax:
                d = <double>logits[i, j] - m
                _rest_add(d, exp(d), &total, &compensation, &tiny)
        log_s = log1p(total + compensation + tiny * _EXP_MINUS_SHIFT)
        for j in range(k):
            out[i, j] = <floating>((<double>logits[i, j] - m) - log_s)


# ---------------------------------------------------------------------------
# Cross-entropy forward and backward over a batch of logits
# ---------------------------------------------------------------------------

def cross_entropy_labels(
    const floating[:, ::1] logits,
    const Py_ssize_t[::1] labels,
    const floating[::1] sample_weight,
    double[::1] loss_out,
    floating[:, ::1] grad_out,
    int n_threads,
):
    """Per-row loss and gradient for integer labels.

    ``loss_out[i] = w_i * (logsumexp(z_i) - z_{i, y_i})`` and
    ``grad_out[i] = w_i * (softmax(z_i) - onehot(y_i))``. An empty
    ``sample_weight`` means unit weights. Labels must lie in ``[0, k)``.
    """
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef floating w
    if k == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        w = sample_weight[i] if weighted else 1
        loss_out[i] = _row_label_loss_grad(&logits[i, 0], k, labels[i], w, &grad_out[i, 0])


def cross_entropy_targets(
    const floating[:, ::1] logits,
    const floating[:, ::1] targets,
    const floating[::1] sample_weight,
    double[::1] loss_out,
    floating[:, ::1] grad_out,
    int n_threads,
):
    """Per-row loss and gradient for non-negative soft targets.

    ``loss_out[i] = -w_i * sum_j t_ij log_softmax(z_i)_j`` and
    ``grad_out[i] = w_i * (softmax(z_i) * sum(t_i) - t_i)``, the latter computed as
    ``w (p_j (T - t_j) - t_j (1 - p_j))``: two non-negative terms, with ``T - t_j``
    and ``1 - p_j`` from compensated sums, so that nothing cancels but the two
    terms themselves. Terms with ``t_ij == 0`` contribute nothing to the loss.
    """
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i, j, jmax
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef floating w
    cdef double m, s, rest, log_s, t_j, e_j, one_minus_p
    cdef double t_total, t_compensation, loss, loss_compensation
    if k == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        w = sample_weight[i] if weighted else 1
        jmax = _row_argmax(&logits[i, 0], k)
        m = logits[i, jmax]
        rest = _row_exp_rest(&logits[i, 0], k, jmax, &grad_out[i, 0])
        s = 1.0 + rest
        log_s = log1p(rest)
        t_total = 0.0
        t_compensation = 0.0
        loss = 0.0
        loss_compensation = 0.0
        for j in range(k):
            t_j = targets[i, j]
            if t_j != 0:
                _compensated_add(&t_total, &t_compensation, t_j)
                # w t_j first: the product with a loss near the range's end stays in it.
                _compensated_add(
                    &loss, &loss_compensation, (w * t_j) * (log_s - (<double>logits[i, j] - m))
                )
        for j in range(k):
            t_j = targets[i, j]
            e_j = grad_out[i, j]
            # 1 - p_j = (s - e_j) / s; for j != jmax, rest holds e_j.
            one_minus_p = (rest if j == jmax else 1.0 + (rest - e_j)) / s
            # T - t_j = (t_total - t_j) + t_compensation: exact where t_j is most of T.
            grad_out[i, j] = <floating>(
                w * ((e_j / s) * ((t_total - t_j) + t_compensation) - t_j * one_minus_p)
            )
        # A loss that overflows stays inf (inf - inf in the compensation would be NaN).
        loss_out[i] = 0.0 if w == 0 else (loss + loss_compensation if fabs(loss) < INFINITY else loss)


# ---------------------------------------------------------------------------
# Linear model: logits, and the fused loss + gradient with respect to (W, b)
# ---------------------------------------------------------------------------

cdef inline void _row_logits(
    const floating *x, Py_ssize_t d, const floating *coef_t, const floating *intercept,
    Py_ssize_t k, floating *z,
) noexcept nogil:
    """z = intercept + x @ coef_t, with coef_t of shape (d, k), C order."""
    cdef Py_ssize_t j, c
    cdef floating x_j
    cdef const floating *coef_row
    for c in range(k):
        z[c] = intercept[c]
    for j in range(d):
        x_j = x[j]
        coef_row = coef_t + j * k
        for c in range(k):
            z[c] += x_j * coef_row[c]


def linear_logits(
    const floating[:, ::1] X,
    const floating[:, ::1] coef_t,
    const floating[::1] intercept,
    floating[:, ::1] out,
    int n_threads,
):
    """``out = X @ coef_t + intercept``: the logits of the linear model, row by row."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k = coef_t.shape[1], i
    if k == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        _row_logits(&X[i, 0], d, &coef_t[0, 0], &intercept[0], k, &out[i, 0])


def linear_loss_gradient(
    const floating[:, ::1] X,
    const Py_ssize_t[::1] labels,
    const floating[::1] sample_weight,
    const floating[:, ::1] coef_t,
    const floating[::1] intercept,
    floating[:, ::1] grad_coef_t,
    floating[::1] grad_intercept,
    int n_threads,
):
    """Fused loss and gradient of the linear softmax model over the rows of X.

    With ``z_i = x_i @ coef_t + intercept`` and ``g_i = w_i (softmax(z_i) - onehot(y_i))``::

        loss           = sum_i w_i * (logsumexp(z_i) - z_{i, y_i})   (returned, float64)
        grad_coef_t    = sum_i outer(x_i, g_i)                        (d, k)
        grad_intercept = sum_i g_i                                    (k,)

    The rows are taken in blocks small enough to stay in cache: a block's logits
    come from register-blocked tiles (4 to 8 rows by 1 to 3 vectors of classes,
    see _tiles_impl.h), are turned into ``g`` in place by a vectorized softmax, and
    the same block of X, still in cache, gives the block's share of the gradient
    (tiles of 4 or 8 features by the same classes). No (n, k) array is
    allocated. Every thread accumulates into its own buffer over a contiguous
    (static) range of blocks; the buffers are then added in thread order, so for
    a given thread count the result is the same on every run. An
    empty ``sample_weight`` means unit weights; rows of weight 0 contribute nothing.
    X must have at least one column.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k = coef_t.shape[1]
    cdef Py_ssize_t kp = _padded_classes(k, <floating *> NULL)
    cdef Py_ssize_t block = _balanced_block_rows(n, d, sizeof(floating), n_threads)
    cdef Py_ssize_t n_blocks = (n + block - 1) // block
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef int n_slots = max(n_threads, 1)
    # Per-thread slot: gradient accumulator ((d + 1) * kp), then the block's logits.
    cdef Py_ssize_t acc_size = (d + 1) * kp
    cdef Py_ssize_t stride = _slot_stride(acc_size + block * kp, sizeof(floating))
    cdef Py_ssize_t loss_stride = CACHE_LINE // sizeof(double)
    cdef floating *coef_pad = NULL
    cdef floating *slots = NULL
    cdef double *loss_slots = NULL
    cdef floating *my_acc
    cdef Py_ssize_t i, t, start, rows
    cdef int tid
    cdef double loss = 0.0

    if k == 0:
        return 0.0
    # Everything is allocated here, so nothing can fail inside the parallel region.
    try:
        coef_pad = <floating *> _checked_calloc((d + 1) * kp, sizeof(floating))
        slots = <floating *> _checked_calloc(n_slots * stride, sizeof(floating))
        loss_slots = <double *> _checked_calloc(n_slots * loss_stride, sizeof(double))
        # The intercept's padding is -inf: the padded logits drop out of the softmax.
        _pad_coef(coef_t, intercept, -INFINITY, kp, coef_pad)
        with nogil, parallel(num_threads=n_slots):
            tid = omp_get_thread_num()
            my_acc = slots + tid * stride
            for i in prange(n_blocks, schedule="static"):
                start = i * block
                rows = min(block, n - start)
                loss_slots[tid * loss_stride] += _block_loss_gradient(
                    &X[start, 0], rows, d, &labels[start],
                    &sample_weight[start] if weighted else NULL,
                    coef_pad, k, kp, my_acc + acc_size, my_acc,
                )
        for t in range(n_slots):
            loss += loss_slots[t * loss_stride]
        _reduce_slots(slots, n_slots, stride, kp, grad_coef_t, grad_intercept)
    finally:
        free(coef_pad)
        free(slots)
        free(loss_slots)
    return loss


def linear_hessian_product(
    const floating[:, ::1] X,
    const floating[::1] sample_weight,
    const floating[:, ::1] coef_t,
    const floating[::1] intercept,
    const floating[:, ::1] direction_coef_t,
    const floating[::1] direction_intercept,
    floating[:, ::1] out_coef_t,
    floating[::1] out_intercept,
    int n_threads,
):
    """Product of the Hessian of the linear softmax loss with a direction (V, v).

    The loss ``sum_i w_i CE(softmax(z_i), y_i)`` with ``z_i = x_i @ coef_t +
    intercept`` has, for one-hot targets, the Hessian-vector product::

        r_i           = x_i @ V + v                         (the direction's logits)
        u_i           = w_i (p_i * r_i - p_i (p_i . r_i))   (p_i = softmax(z_i))
        out_coef_t    = sum_i outer(x_i, u_i)               (d, k)
        out_intercept = sum_i u_i                           (k,)

    ``u_i`` is the softmax Jacobian ``diag(p) - p p^T`` applied to ``r_i``; the
    labels do not enter. As in :func:`linear_loss_gradient`, rows go in blocks
    that stay in cache: the tiles compute a block's logits ``z`` and ``r``, a
    vectorized row pass turns ``r`` into ``u``, and the same block of X gives the
    block's share of ``X.T @ u``. Each block of X is read from memory once per
    product; per-thread accumulators are added in thread order. An empty
    ``sample_weight`` means unit weights.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k = coef_t.shape[1]
    cdef Py_ssize_t kp = _padded_classes(k, <floating *> NULL)
    cdef Py_ssize_t block = _balanced_block_rows(n, d, sizeof(floating), n_threads)
    cdef Py_ssize_t n_blocks = (n + block - 1) // block
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef int n_slots = max(n_threads, 1)
    # Per-thread slot: accumulator ((d + 1) * kp), the block's logits z, then r.
    cdef Py_ssize_t acc_size = (d + 1) * kp
    cdef Py_ssize_t stride = _slot_stride(acc_size + 2 * block * kp, sizeof(floating))
    cdef floating *coef_pad = NULL
    cdef floating *direction_pad = NULL
    cdef floating *slots = NULL
    cdef floating *my_acc
    cdef Py_ssize_t i, start, rows
    cdef int tid

    if k == 0:
        return
    try:
        coef_pad = <floating *> _checked_calloc((d + 1) * kp, sizeof(floating))
        direction_pad = <floating *> _checked_calloc((d + 1) * kp, sizeof(floating))
        slots = <floating *> _checked_calloc(n_slots * stride, sizeof(floating))
        _pad_coef(coef_t, intercept, -INFINITY, kp, coef_pad)
        # The direction's padding is 0, so that p_c r_c = 0 * 0 in padded columns.
        _pad_coef(direction_coef_t, direction_intercept, 0, kp, direction_pad)
        with nogil, parallel(num_threads=n_slots):
            tid = omp_get_thread_num()
            my_acc = slots + tid * stride
            for i in prange(n_blocks, schedule="static"):
                start = i * block
                rows = min(block, n - start)
                _block_hessian_product(
                    &X[start, 0], rows, d,
                    &sample_weight[start] if weighted else NULL,
                    coef_pad, direction_pad, kp,
                    my_acc + acc_size, my_acc + acc_size + block * kp, my_acc,
                )
        _reduce_slots(slots, n_slots, stride, kp, out_coef_t, out_intercept)
    finally:
        free(coef_pad)
        free(direction_pad)
        free(slots)


def padded_classes(Py_ssize_t n_classes, dtype):
    """The number of columns of a row of class values in the kernels' buffers: the
    classes rounded up to whole vectors of ``dtype`` (float32 or float64)."""
    if dtype == "float32":
        return _padded_classes(n_classes, <float *> NULL)
    return _padded_classes(n_classes, <double *> NULL)


def linear_probabilities(
    const floating[:, ::1] X,
    const floating[:, ::1] coef_t,
    const floating[::1] intercept,
    floating[:, ::1] proba,
    int n_threads,
):
    """``proba[:, :k] = softmax(X @ coef_t + intercept)``, row by row, and 0 beyond.

    ``proba`` has ``padded_classes(k)`` columns: the layout in which
    :func:`linear_hessian_product_proba` reads it. The logits come from the same
    tiles as in :func:`linear_loss_gradient`.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k = coef_t.shape[1]
    cdef Py_ssize_t kp = _padded_classes(k, <floating *> NULL)
    cdef Py_ssize_t block = _balanced_block_rows(n, d, sizeof(floating), n_threads)
    cdef Py_ssize_t n_blocks = (n + block - 1) // block
    cdef floating *coef_pad = NULL
    cdef floating *z
    cdef Py_ssize_t i, row, start, rows

    if k == 0 or n == 0:
        return
    if proba.shape[0] != n or proba.shape[1] != kp:
        raise ValueError(f"proba must have shape ({n}, {kp}), got ({proba.shape[0]}, {proba.shape[1]}).")
    try:
        coef_pad = <floating *> _checked_calloc((d + 1) * kp, sizeof(floating))
        _pad_coef(coef_t, intercept, -INFINITY, kp, coef_pad)
        for i in prange(n_blocks, nogil=True, schedule="static", num_threads=max(n_threads, 1)):
            start = i * block
            rows = min(block, n - start)
            z = &proba[start, 0]
            _logits_tiles(&X[start, 0], rows, d, coef_pad, kp, z)
            for row in range(rows):
                if floating is float:
                    smr_row_softmax_f(z + row * kp, kp)
                else:
                    smr_row_softmax_d(z + row * kp, kp)
    finally:
        free(coef_pad)


def linear_hessian_product_proba(
    const floating[:, ::1] X,
    const floating[::1] sample_weight,
    const floating[:, ::1] proba,
    const floating[:, ::1] direction_coef_t,
    const floating[::1] direction_intercept,
    floating[:, ::1] out_coef_t,
    floating[::1] out_intercept,
    int n_threads,
):
    """:func:`linear_hessian_product` from the rows' probabilities, computed once by
    :func:`linear_probabilities` for every product at the same point.

    Each product then computes the direction's logits alone: one pass of tiles over
    a block instead of two, and no exponentials. ``proba`` is (n, padded_classes(k)).
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k = direction_coef_t.shape[1]
    cdef Py_ssize_t kp = _padded_classes(k, <floating *> NULL)
    cdef Py_ssize_t block = _balanced_block_rows(n, d, sizeof(floating), n_threads)
    cdef Py_ssize_t n_blocks = (n + block - 1) // block
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef int n_slots = max(n_threads, 1)
    # Per-thread slot: accumulator ((d + 1) * kp), then the block's r.
    cdef Py_ssize_t acc_size = (d + 1) * kp
    cdef Py_ssize_t stride = _slot_stride(acc_size + block * kp, sizeof(floating))
    cdef floating *direction_pad = NULL
    cdef floating *slots = NULL
    cdef floating *my_acc
    cdef floating *r
    cdef floating w
    cdef Py_ssize_t i, row, c, start, rows
    cdef int tid

    if k == 0:
        return
    if proba.shape[0] != n or proba.shape[1] != kp:
        raise ValueError(f"proba must have shape ({n}, {kp}), got ({proba.shape[0]}, {proba.shape[1]}).")
    try:
        direction_pad = <floating *> _checked_calloc((d + 1) * kp, sizeof(floating))
        slots = <floating *> _checked_calloc(n_slots * stride, sizeof(floating))
        _pad_coef(direction_coef_t, direction_intercept, 0, kp, direction_pad)
        with nogil, parallel(num_threads=n_slots):
            tid = omp_get_thread_num()
            my_acc = slots + tid * stride
            r = my_acc + acc_size
            for i in prange(n_blocks, schedule="static"):
                start = i * block
                rows = min(block, n - start)
                _logits_tiles(&X[start, 0], rows, d, direction_pad, kp, r)
                for row in range(rows):
                    w = sample_weight[start + row] if weighted else 1
                    if w == 0:
                        for c in range(kp):
                            r[row * kp + c] = 0
                        continue
                    if floating is float:
                        smr_row_proba_jvp_f(&proba[start + row, 0], r + row * kp, kp, w)
                    else:
                        smr_row_proba_jvp_d(&proba[start + row, 0], r + row * kp, kp, w)
                _gradient_tiles(&X[start, 0], rows, d, r, kp, my_acc)
        _reduce_slots(slots, n_slots, stride, kp, out_coef_t, out_intercept)
    finally:
        free(direction_pad)
        free(slots)


def column_moments(
    const floating[:, ::1] X,
    const floating[::1] sample_weight,
    double[::1] mean_out,
    double[::1] variance_out,
    double[::1] magnitude_out,
    int n_threads,
):
    """Weighted mean, (biased) variance and largest magnitude of each column of X, float64.

    ``mean_j = sum_i w_i x_ij / sum_i w_i`` and ``variance_j = sum_i w_i (x_ij -
    mean_j)**2 / sum_i w_i``, computed in one pass from sums of ``x_ij - x_fj``, with
    f the first row of positive weight (a data point as the shift keeps the
    cancellation small, and a column constant on the rows of positive weight gets a
    variance of exactly 0). ``magnitude_j = max |x_ij|`` over those rows. An empty
    ``sample_weight`` means unit weights; the weights must have a positive sum.
    Columns whose squares overflow get an infinite variance; squares that underflow
    are lost (the caller recomputes columns of tiny variance). Per-thread sums are
    added in thread order.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef int n_slots = max(n_threads, 1)
    # Per-thread slot: the weight sum (padded to a cache line), sums of shifted x, of their
    # squares, and the largest |x|.
    cdef Py_ssize_t head = CACHE_LINE // sizeof(double)
    cdef Py_ssize_t stride = _slot_stride(head + 3 * d, sizeof(double))
    cdef double *slots = NULL
    cdef double *my_sums
    cdef double w, v, weight_sum, mean_shift, magnitude
    cdef Py_ssize_t i, j, t, first = 0
    cdef int tid

    if n == 0 or d == 0:
        return
    while weighted and first < n - 1 and not sample_weight[first] > 0:
        first += 1
    try:
        slots = <double *> _checked_calloc(n_slots * stride, sizeof(double))
        with nogil, parallel(num_threads=n_slots):
            tid = omp_get_thread_num()
            my_sums = slots + tid * stride
            for i in prange(n, schedule="static"):
                w = sample_weight[i] if weighted else 1.0
                if w == 0:
                    continue
                my_sums[0] += w
                if floating is float:
                    smr_moments_row_f(&X[i, 0], &X[first, 0], w, d, my_sums + head,
                                      my_sums + head + d, my_sums + head + 2 * d)
                else:
                    smr_moments_row_d(&X[i, 0], &X[first, 0], w, d, my_sums + head,
                                      my_sums + head + d, my_sums + head + 2 * d)
        weight_sum = 0.0
        for t in range(n_slots):
            weight_sum += slots[t * stride]
        for j in range(d):
            mean_shift = 0.0
            v = 0.0
            magnitude = 0.0
            for t in range(n_slots):
                mean_shift += slots[t * stride + head + j]
                v += slots[t * stride + head + d + j]
                magnitude = max(magnitude, slots[t * stride + head + 2 * d + j])
            mean_shift /= weight_sum
            mean_out[j] = <double> X[first, j] + mean_shift
            variance_out[j] = max(v / weight_sum - mean_shift * mean_shift, 0.0)
            magnitude_out[j] = magnitude
    finally:
        free(slots)


cdef double TWO_TO_500 = 2.0 ** 500


cdef enum:
    # A block of X should stay in L2 while it is read for the logits and again for
    # the gradient.
    BLOCK_BYTES = 1024 * 1024
    MIN_BLOCK_ROWS = 24
    MAX_BLOCK_ROWS = 264


cdef inline Py_ssize_t _block_rows(Py_ssize_t d, Py_ssize_t itemsize) noexcept nogil:
    """Rows per block: a multiple of 24 (whole tiles of 6 and of 8 rows) whose slice
    of X fills about BLOCK_BYTES."""
    cdef Py_ssize_t rows = BLOCK_BYTES // max(d * itemsize, 1)
    rows = min(max(rows, MIN_BLOCK_ROWS), MAX_BLOCK_ROWS)
    return (rows // 24) * 24


cdef inline Py_ssize_t _balanced_block_rows(
    Py_ssize_t n, Py_ssize_t d, Py_ssize_t itemsize, int n_threads,
) noexcept nogil:
    """Rows per block for ``n`` rows on ``n_threads``: at most ``_block_rows``, and as
    few as split the rows into the same whole number of blocks per thread, so that the
    static schedule gives every thread about n / n_threads rows (7 blocks of 264 rows on
    2 threads would give one thread 1056 rows and the other 741)."""
    cdef Py_ssize_t largest = _block_rows(d, itemsize)
    cdef Py_ssize_t threads = max(n_threads, 1)
    cdef Py_ssize_t per_thread = (n + threads - 1) // threads
    cdef Py_ssize_t blocks_per_thread = max((per_thread + largest - 1) // largest, 1)
    cdef Py_ssize_t rows = (per_thread + blocks_per_thread - 1) // blocks_per_thread
    rows = ((rows + 23) // 24) * 24
    return min(max(rows, 24), largest)


cdef void _logits_tiles(
    const floating *x, Py_ssize_t rows, Py_ssize_t d, const floating *coef_pad,
    Py_ssize_t kp, floating *z,
) noexcept nogil:
    """z (rows, kp) = x @ coef_pad[:d] + coef_pad[d], tile by tile.

    Classes go in tiles of three vectors while they last, then one tile of two or
    one vector: each tile is one pass over the block's rows.
    """
    cdef Py_ssize_t lanes = _lanes(<floating *> NULL)
    cdef Py_ssize_t r, c = 0
    cdef const floating *b = coef_pad + d * kp
    while c + 3 * lanes <= kp:
        r = 0
        while r + 4 <= rows:
            if floating is float:
                smr_wide_logits4_f(x + r * d, d, coef_pad + c, kp, b + c, z + r * kp + c, kp)
            else:
                smr_wide_logits4_d(x + r * d, d, coef_pad + c, kp, b + c, z + r * kp + c, kp)
            r += 4
        while r < rows:
            if floating is float:
                smr_wide_logits1_f(x + r * d, d, coef_pad + c, kp, b + c, z + r * kp + c)
            else:
                smr_wide_logits1_d(x + r * d, d, coef_pad + c, kp, b + c, z + r * kp + c)
            r += 1
        c += 3 * lanes
    if c + 2 * lanes == kp:
        r = 0
        while r + 6 <= rows:
            if floating is float:
                smr_tile_logits6_f(x + r * d, d, coef_pad + c, kp, b + c, z + r * kp + c, kp)
            else:
                smr_tile_logits6_d(x + r * d, d, coef_pad + c, kp, b + c, z + r * kp + c, kp)
            r += 6
        while r < rows:
            if floating is float:
                smr_tile_logits1_f(x + r * d, d, coef_pad + c, kp, b + c, z + r * kp + c)
            else:
                smr_tile_logits1_d(x + r * d, d, coef_pad + c, kp, b + c, z + r * kp + c)
            r += 1
    elif c + lanes == kp:
        r = 0
        while r + 8 <= rows:
            if floating is float:
                smr_half_logits8_f(x + r * d, d, coef_pad + c, kp, b + c, z + r * kp + c, kp)
            else:
                smr_half_logits8_d(x + r * d, d, coef_pad + c, kp, b + c, z + r * kp + c, kp)
            r += 8
        while r < rows:
            if floating is float:
                smr_half_logits1_f(x + r * d, d, coef_pad + c, kp, b + c, z + r * kp + c)
            else:
                smr_half_logits1_d(x + r * d, d, coef_pad + c, kp, b + c, z + r * kp + c)
            r += 1


cdef void _gradient_tiles(
    const floating *x, Py_ssize_t rows, Py_ssize_t d, const floating *g, Py_ssize_t kp,
    floating *acc,
) noexcept nogil:
    """acc[:d] (d, kp) += x.T @ g, tile by tile (as in _logits_tiles); acc[d] += the
    sum of g's rows."""
    cdef Py_ssize_t lanes = _lanes(<floating *> NULL)
    cdef Py_ssize_t j, r, c = 0
    cdef const floating *g_row
    while c + 3 * lanes <= kp:
        j = 0
        while j + 4 <= d:
            if floating is float:
                smr_wide_gradient4_f(x + j, d, rows, g + c, kp, acc + j * kp + c, kp)
            else:
                smr_wide_gradient4_d(x + j, d, rows, g + c, kp, acc + j * kp + c, kp)
            j += 4
        while j < d:
            if floating is float:
                smr_wide_gradient1_f(x + j, d, rows, g + c, kp, acc + j * kp + c)
            else:
                smr_wide_gradient1_d(x + j, d, rows, g + c, kp, acc + j * kp + c)
            j += 1
        c += 3 * lanes
    if c + 2 * lanes == kp:
        j = 0
        while j + 4 <= d:
            if floating is float:
                smr_tile_gradient4_f(x + j, d, rows, g + c, kp, acc + j * kp + c, kp)
            else:
                smr_tile_gradient4_d(x + j, d, rows, g + c, kp, acc + j * kp + c, kp)
            j += 4
        while j < d:
            if floating is float:
                smr_tile_gradient1_f(x + j, d, rows, g + c, kp, acc + j * kp + c)
            else:
                smr_tile_gradient1_d(x + j, d, rows, g + c, kp, acc + j * kp + c)
            j += 1
    elif c + lanes == kp:
        j = 0
        while j + 8 <= d:
            if floating is float:
                smr_half_gradient8_f(x + j, d, rows, g + c, kp, acc + j * kp + c, kp)
            else:
                smr_half_gradient8_d(x + j, d, rows, g + c, kp, acc + j * kp + c, kp)
            j += 8
        while j < d:
            if floating is float:
                smr_half_gradient1_f(x + j, d, rows, g + c, kp, acc + j * kp + c)
            else:
                smr_half_gradient1_d(x + j, d, rows, g + c, kp, acc + j * kp + c)
            j += 1
    for r in range(rows):
        g_row = g + r * kp
        for c in range(kp):
            acc[d * kp + c] += g_row[c]


cdef double _block_loss_gradient(
    const floating *x, Py_ssize_t rows, Py_ssize_t d, const Py_ssize_t *labels,
    const floating *sample_weight, const floating *coef_pad, Py_ssize_t k, Py_ssize_t kp,
    floating *z, floating *acc,
) noexcept nogil:
    """One block of rows: loss (returned), and ``acc += [x.T @ g; sum(g)]``.

    ``coef_pad`` is (d + 1, kp): coef_t then the intercept, zero-padded to ``kp``
    columns; ``z`` is a (rows, kp) buffer; ``acc`` is (d + 1, kp).
    """
    cdef Py_ssize_t r, c
    cdef floating w
    cdef double loss = 0.0, rest
    # Unweighted, sum_r log1p(rest_r) = log1p(E) for 1 + E = prod_r (1 + rest_r): one
    # log1p per block. E is carried as such, (1 + E)(1 + rest) = 1 + (E + rest + E rest),
    # so that losses near 0 keep their relative precision; log1p(E) is taken (and E
    # restarted) whenever E passes 2**500.
    cdef double product_excess = 0.0
    cdef floating *z_row
    _logits_tiles(x, rows, d, coef_pad, kp, z)
    # Loss and g = w (softmax - onehot), in place; padded columns (-inf) end as 0.
    for r in range(rows):
        w = sample_weight[r] if sample_weight != NULL else 1
        z_row = z + r * kp
        if w == 0:
            for c in range(kp):
                z_row[c] = 0
            continue
        if floating is float:
            loss += smr_row_softmax_grad_f(z_row, kp, labels[r], w, &rest)
        else:
            loss += smr_row_softmax_grad_d(z_row, kp, labels[r], w, &rest)
        if sample_weight != NULL:
            loss += w * log1p(rest)
        else:
            product_excess = (product_excess + rest) + product_excess * rest
            if product_excess > TWO_TO_500:
                loss += log1p(product_excess)
                product_excess = 0.0
    loss += log1p(product_excess)
    _gradient_tiles(x, rows, d, z, kp, acc)
    return loss


cdef void _block_hessian_product(
    const floating *x, Py_ssize_t rows, Py_ssize_t d, const floating *sample_weight,
    const floating *coef_pad, const floating *direction_pad, Py_ssize_t kp,
    floating *z, floating *r, floating *acc,
) noexcept nogil:
    """One block of rows: ``acc += [x.T @ u; sum(u)]`` with ``u`` the weighted softmax
    Jacobian of each row's logits applied to the direction's logits (see
    :func:`linear_hessian_product`). ``z`` and ``r`` are (rows, kp) buffers."""
    cdef Py_ssize_t row, c
    cdef floating w
    _logits_tiles(x, rows, d, coef_pad, kp, z)
    _logits_tiles(x, rows, d, direction_pad, kp, r)
    for row in range(rows):
        w = sample_weight[row] if sample_weight != NULL else 1
        if w == 0:
            for c in range(kp):
                r[row * kp + c] = 0
            continue
        if floating is float:
            smr_row_softmax_jvp_f(z + row * kp, r + row * kp, kp, w)
        else:
            smr_row_softmax_jvp_d(z + row * kp, r + row * kp, kp, w)
    _gradient_tiles(x, rows, d, r, kp, acc)
