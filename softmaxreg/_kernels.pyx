"""Nogil kernels for the softmax and its cross-entropy, row by row and in parallel.

Every kernel takes C-contiguous inputs (``const`` memoryviews, so read-only
buffers such as memmaps work), writes into caller-allocated outputs and takes the
number of OpenMP threads. Indices are ``Py_ssize_t``. Both float32 and float64
are compiled (the ``floating`` fused type); losses are accumulated in float64.

For one row of logits ``z`` with ``m = max(z)`` and ``s = sum_j exp(z_j - m)``:

* ``softmax(z)_j = exp(z_j - m) / s``
* ``log_softmax(z)_j = (z_j - m) - log(s)``, never ``log(softmax(z))``, so no
  probability that rounds to zero reaches a ``log``;
* for non-negative targets ``t``, ``E = -sum_j t_j log_softmax(z)_j`` and
  ``dE/dz_j = softmax(z)_j * sum(t) - t_j`` (``o_j - t_j`` for a one-hot ``t``).

Nothing here knows about scikit-learn. This is the only file with ``prange``.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport exp, expf, log
from libc.stdlib cimport calloc, free


cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define SOFTMAXREG_OPENMP 1
    #else
    #define SOFTMAXREG_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    #endif
    """
    const int SOFTMAXREG_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil


cdef enum:
    # Per-thread slots are this many bytes apart, so that threads never share a cache line.
    CACHE_LINE = 64


def openmp_enabled():
    """Return True if the kernels were compiled with OpenMP."""
    return bool(SOFTMAXREG_OPENMP)


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


cdef inline floating _row_max(const floating *z, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating m = z[0]
    for j in range(1, k):
        if z[j] > m:
            m = z[j]
    return m


cdef inline double _row_exp_shifted(
    const floating *z, Py_ssize_t k, floating m, floating *e
) noexcept nogil:
    """Write e_j = exp(z_j - m) and return sum_j e_j (summed in float64).

    ``e`` may be ``z`` itself: each element is read before it is written.
    """
    cdef Py_ssize_t j
    cdef double s = 0.0
    for j in range(k):
        e[j] = _exp(z[j] - m)
        s += e[j]
    return s


cdef inline double _row_label_loss_grad(
    const floating *z, Py_ssize_t k, Py_ssize_t y, floating w, floating *g
) noexcept nogil:
    """Loss ``w * (logsumexp(z) - z_y)``; writes ``g = w * (softmax(z) - onehot(y))``.

    ``g`` may be ``z`` itself. ``g_y = -w * sum_{j != y} e_j / s`` is computed from
    the other classes' terms, not as ``w * p_y - w``, so it keeps its relative
    precision when ``p_y`` is close to 1.
    """
    cdef Py_ssize_t j
    cdef floating m = _row_max(z, k)
    cdef double z_y = z[y]
    cdef double s_other = 0.0
    cdef double s, scale
    for j in range(k):
        g[j] = _exp(z[j] - m)
        if j != y:
            s_other += g[j]
    s = s_other + g[y]
    scale = w / s
    for j in range(k):
        g[j] = <floating>(g[j] * scale)
    g[y] = <floating>(-w * (s_other / s))
    if w == 0:
        return 0.0
    return w * (log(s) - (z_y - <double>m))


# ---------------------------------------------------------------------------
# Row-wise softmax and log-softmax
# ---------------------------------------------------------------------------

def softmax_rows(const floating[:, ::1] logits, floating[:, ::1] out, int n_threads):
    """``out[i] = softmax(logits[i])``; ``out`` may be ``logits``."""
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i, j
    cdef floating m
    cdef double inv
    if k == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        m = _row_max(&logits[i, 0], k)
        inv = 1.0 / _row_exp_shifted(&logits[i, 0], k, m, &out[i, 0])
        for j in range(k):
            out[i, j] = <floating>(out[i, j] * inv)


def log_softmax_rows(const floating[:, ::1] logits, floating[:, ::1] out, int n_threads):
    """``out[i] = log_softmax(logits[i]) = logits[i] - m - log(s)``; ``out`` may be ``logits``."""
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i, j
    cdef floating m, log_s
    cdef double s
    if k == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        m = _row_max(&logits[i, 0], k)
        s = 0.0
        for j in range(k):
            s = s + _exp(logits[i, j] - m)
        log_s = <floating>log(s)
        for j in range(k):
            out[i, j] = (logits[i, j] - m) - log_s


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
    ``grad_out[i] = w_i * (softmax(z_i) * sum(t_i) - t_i)``. Terms with ``t_ij == 0``
    contribute nothing, even where ``log_softmax`` underflows to ``-inf``.
    """
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i, j
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef floating w, m
    cdef double s, log_s, t_sum, loss, scale
    if k == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        w = sample_weight[i] if weighted else 1
        m = _row_max(&logits[i, 0], k)
        s = _row_exp_shifted(&logits[i, 0], k, m, &grad_out[i, 0])
        log_s = log(s)
        t_sum = 0.0
        loss = 0.0
        for j in range(k):
            if targets[i, j] != 0:
                t_sum = t_sum + targets[i, j]
                loss = loss + targets[i, j] * (log_s - (<double>logits[i, j] - <double>m))
        scale = w * t_sum / s
        for j in range(k):
            grad_out[i, j] = <floating>(grad_out[i, j] * scale - <double>w * targets[i, j])
        loss_out[i] = w * loss if w != 0 else 0.0


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


cdef inline void _row_accumulate(
    const floating *x, Py_ssize_t d, const floating *g, Py_ssize_t k, floating *acc
) noexcept nogil:
    """acc[:d*k] += outer(x, g) (C order); acc[d*k:(d+1)*k] += g."""
    cdef Py_ssize_t j, c
    cdef floating x_j
    cdef floating *acc_row
    for j in range(d):
        x_j = x[j]
        acc_row = acc + j * k
        for c in range(k):
            acc_row[c] += x_j * g[c]
    acc_row = acc + d * k
    for c in range(k):
        acc_row[c] += g[c]


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

    Each row's logits are computed, turned into ``g_i`` and consumed while the row
    is in cache: no (n, k) array is allocated. Every thread accumulates into its own
    buffer over a contiguous (static) range of rows; the buffers are then added in
    thread order, so for a given thread count the result is the same on every run.
    An empty ``sample_weight`` means unit weights; rows of weight 0 are skipped.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k = coef_t.shape[1]
    cdef Py_ssize_t i, j, c, t
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef int n_slots = max(n_threads, 1)
    # Per-thread slot: (d + 1) * k gradient entries then k logits, rounded up to a
    # cache line. Allocated here, so nothing can fail inside the parallel region.
    cdef Py_ssize_t per_line = CACHE_LINE // sizeof(floating)
    cdef Py_ssize_t stride = (((d + 2) * k + per_line - 1) // per_line) * per_line
    cdef Py_ssize_t loss_stride = CACHE_LINE // sizeof(double)
    cdef floating *acc
    cdef double *loss_acc
    cdef floating *z
    cdef floating *my_acc
    cdef floating w
    cdef int tid
    cdef double loss = 0.0
    cdef floating total

    if k == 0:
        return 0.0
    acc = <floating *> calloc(n_slots * stride, sizeof(floating))
    loss_acc = <double *> calloc(n_slots * loss_stride, sizeof(double))
    if acc == NULL or loss_acc == NULL:
        free(acc)
        free(loss_acc)
        raise MemoryError()

    with nogil, parallel(num_threads=n_slots):
        tid = omp_get_thread_num()
        my_acc = acc + tid * stride
        z = my_acc + (d + 1) * k
        for i in prange(n, schedule="static"):
            w = sample_weight[i] if weighted else 1
            if w != 0:
                _row_logits(&X[i, 0], d, &coef_t[0, 0], &intercept[0], k, z)
                loss_acc[tid * loss_stride] += _row_label_loss_grad(z, k, labels[i], w, z)
                _row_accumulate(&X[i, 0], d, z, k, my_acc)

    # Fixed-order reduction over the per-thread buffers.
    for t in range(n_slots):
        loss += loss_acc[t * loss_stride]
    for j in range(d):
        for c in range(k):
            total = acc[j * k + c]
            for t in range(1, n_slots):
                total += acc[t * stride + j * k + c]
            grad_coef_t[j, c] = total
    for c in range(k):
        total = acc[d * k + c]
        for t in range(1, n_slots):
            total += acc[t * stride + d * k + c]
        grad_intercept[c] = total
    free(acc)
    free(loss_acc)
    return loss

