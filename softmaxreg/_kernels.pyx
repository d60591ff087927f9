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
from libc.math cimport INFINITY, exp, expf, log
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

    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    static int softmaxreg_cpu_has_avx2_fma(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    static int softmaxreg_cpu_has_avx512(void) {
        __builtin_cpu_init();
        return softmaxreg_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f")
            && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    }
    #else
    static int softmaxreg_cpu_has_avx2_fma(void) { return 0; }
    static int softmaxreg_cpu_has_avx512(void) { return 0; }
    #endif
    """
    const int SOFTMAXREG_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
    int softmaxreg_cpu_has_avx2_fma() noexcept nogil
    int softmaxreg_cpu_has_avx512() noexcept nogil


cdef extern from "_tiles.h" nogil:
    void smr_tile_logits6_d(const double *x, Py_ssize_t d, const double *w, Py_ssize_t ldw,
                            const double *b, double *z, Py_ssize_t ldz)
    void smr_tile_logits6_f(const float *x, Py_ssize_t d, const float *w, Py_ssize_t ldw,
                            const float *b, float *z, Py_ssize_t ldz)
    void smr_tile_logits1_d(const double *x, Py_ssize_t d, const double *w, Py_ssize_t ldw,
                            const double *b, double *z)
    void smr_tile_logits1_f(const float *x, Py_ssize_t d, const float *w, Py_ssize_t ldw,
                            const float *b, float *z)
    void smr_tile_gradient4_d(const double *x, Py_ssize_t d, Py_ssize_t rows, const double *g,
                              Py_ssize_t ldg, double *out, Py_ssize_t ldo)
    void smr_tile_gradient4_f(const float *x, Py_ssize_t d, Py_ssize_t rows, const float *g,
                              Py_ssize_t ldg, float *out, Py_ssize_t ldo)
    void smr_tile_gradient1_d(const double *x, Py_ssize_t d, Py_ssize_t rows, const double *g,
                              Py_ssize_t ldg, double *out)
    void smr_tile_gradient1_f(const float *x, Py_ssize_t d, Py_ssize_t rows, const float *g,
                              Py_ssize_t ldg, float *out)
    void smr_wide_logits4_d(const double *x, Py_ssize_t d, const double *w, Py_ssize_t ldw,
                            const double *b, double *z, Py_ssize_t ldz)
    void smr_wide_logits4_f(const float *x, Py_ssize_t d, const float *w, Py_ssize_t ldw,
                            const float *b, float *z, Py_ssize_t ldz)
    void smr_wide_logits1_d(const double *x, Py_ssize_t d, const double *w, Py_ssize_t ldw,
                            const double *b, double *z)
    void smr_wide_logits1_f(const float *x, Py_ssize_t d, const float *w, Py_ssize_t ldw,
                            const float *b, float *z)
    void smr_wide_gradient4_d(const double *x, Py_ssize_t d, Py_ssize_t rows, const double *g,
                              Py_ssize_t ldg, double *out, Py_ssize_t ldo)
    void smr_wide_gradient4_f(const float *x, Py_ssize_t d, Py_ssize_t rows, const float *g,
                              Py_ssize_t ldg, float *out, Py_ssize_t ldo)
    void smr_wide_gradient1_d(const double *x, Py_ssize_t d, Py_ssize_t rows, const double *g,
                              Py_ssize_t ldg, double *out)
    void smr_wide_gradient1_f(const float *x, Py_ssize_t d, Py_ssize_t rows, const float *g,
                              Py_ssize_t ldg, float *out)
    Py_ssize_t smr_lanes_d()
    Py_ssize_t smr_lanes_f()
    void smr_half_logits8_d(const double *x, Py_ssize_t d, const double *w, Py_ssize_t ldw,
                            const double *b, double *z, Py_ssize_t ldz)
    void smr_half_logits8_f(const float *x, Py_ssize_t d, const float *w, Py_ssize_t ldw,
                            const float *b, float *z, Py_ssize_t ldz)
    void smr_half_logits1_d(const double *x, Py_ssize_t d, const double *w, Py_ssize_t ldw,
                            const double *b, double *z)
    void smr_half_logits1_f(const float *x, Py_ssize_t d, const float *w, Py_ssize_t ldw,
                            const float *b, float *z)
    void smr_half_gradient8_d(const double *x, Py_ssize_t d, Py_ssize_t rows, const double *g,
                              Py_ssize_t ldg, double *out, Py_ssize_t ldo)
    void smr_half_gradient8_f(const float *x, Py_ssize_t d, Py_ssize_t rows, const float *g,
                              Py_ssize_t ldg, float *out, Py_ssize_t ldo)
    void smr_half_gradient1_d(const double *x, Py_ssize_t d, Py_ssize_t rows, const double *g,
                              Py_ssize_t ldg, double *out)
    void smr_half_gradient1_f(const float *x, Py_ssize_t d, Py_ssize_t rows, const float *g,
                              Py_ssize_t ldg, float *out)
    double smr_row_softmax_grad_d(double *z, Py_ssize_t kp, Py_ssize_t y, double w, double *s)
    double smr_row_softmax_grad_f(float *z, Py_ssize_t kp, Py_ssize_t y, float w, double *s)


cdef enum:
    # Per-thread slots are this many bytes apart, so that threads never share a cache line.
    CACHE_LINE = 64


def openmp_enabled():
    """Return True if the kernels were compiled with OpenMP."""
    return bool(SOFTMAXREG_OPENMP)


def cpu_has_avx2_fma():
    """Return True if this CPU (and its OS) can run AVX2 and FMA instructions."""
    return bool(softmaxreg_cpu_has_avx2_fma())


def cpu_has_avx512():
    """Return True if this CPU (and its OS) can run AVX-512 F, DQ and VL instructions."""
    return bool(softmaxreg_cpu_has_avx512())


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
    (tiles of 4 or 8 features by the same classes). No (n, k) array is allocated. Every thread accumulates into its own buffer over a
    contiguous (static) range of blocks; the buffers are then added in thread
    order, so for a given thread count the result is the same on every run. An
    empty ``sample_weight`` means unit weights; rows of weight 0 contribute nothing.
    X must have at least one column.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k = coef_t.shape[1]
    cdef Py_ssize_t lanes = _lanes(<floating *> NULL)
    cdef Py_ssize_t kp = ((k + lanes - 1) // lanes) * lanes  # classes padded to whole vectors
    cdef Py_ssize_t block = _block_rows(d, sizeof(floating))
    cdef Py_ssize_t n_blocks = (n + block - 1) // block
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef int n_slots = max(n_threads, 1)
    # Per-thread slot: gradient accumulator ((d + 1) * kp), then the block's logits
    # (block * kp), rounded up to a cache line. Everything is allocated here, so
    # nothing can fail inside the parallel region.
    cdef Py_ssize_t per_line = CACHE_LINE // sizeof(floating)
    cdef Py_ssize_t acc_size = (d + 1) * kp
    cdef Py_ssize_t stride = ((acc_size + block * kp + per_line - 1) // per_line) * per_line
    cdef Py_ssize_t loss_stride = CACHE_LINE // sizeof(double)
    cdef floating *coef_pad
    cdef floating *slots
    cdef double *loss_slots
    cdef floating *my_acc
    cdef Py_ssize_t i, j, c, t, start, rows
    cdef int tid
    cdef double loss = 0.0
    cdef floating total

    if k == 0:
        return 0.0
    coef_pad = <floating *> calloc((d + 1) * kp, sizeof(floating))
    slots = <floating *> calloc(n_slots * stride, sizeof(floating))
    loss_slots = <double *> calloc(n_slots * loss_stride, sizeof(double))
    if coef_pad == NULL or slots == NULL or loss_slots == NULL:
        free(coef_pad)
        free(slots)
        free(loss_slots)
        raise MemoryError()
    # coef_t and the intercept, padded with columns of zeros and an intercept of
    # -inf: the padded logits are -inf, so they drop out of the softmax.
    for j in range(d):
        for c in range(k):
            coef_pad[j * kp + c] = coef_t[j, c]
    for c in range(kp):
        coef_pad[d * kp + c] = intercept[c] if c < k else -INFINITY

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

    # Fixed-order reduction over the per-thread buffers.
    for t in range(n_slots):
        loss += loss_slots[t * loss_stride]
    for j in range(d + 1):
        for c in range(k):
            total = slots[j * kp + c]
            for t in range(1, n_slots):
                total += slots[t * stride + j * kp + c]
            if j < d:
                grad_coef_t[j, c] = total
            else:
                grad_intercept[c] = total
    free(coef_pad)
    free(slots)
    free(loss_slots)
    return loss


cdef double TWO_TO_512 = 2.0 ** 512
cdef double LN2 = 0.6931471805599453


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


cdef inline Py_ssize_t _lanes(floating *dtype_tag) noexcept nogil:
    """Elements per vector: 8 doubles or 16 floats with AVX-512, half as many with
    AVX, a quarter on the baseline.

    A tile of classes is two vectors wide; a half tile, one.
    """
    if floating is float:
        return smr_lanes_f()
    else:
        return smr_lanes_d()


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
    cdef double loss = 0.0, s
    # Unweighted, sum_r log(s_r) = log(prod_r s_r): one log per block. The product
    # (each s_r in [1, kp]) is scaled by 2**-512 whenever it passes 2**512.
    cdef double s_product = 1.0, s_product_exponent = 0.0
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
            loss += smr_row_softmax_grad_f(z_row, kp, labels[r], w, &s)
        else:
            loss += smr_row_softmax_grad_d(z_row, kp, labels[r], w, &s)
        if sample_weight != NULL:
            loss += w * log(s)
        else:
            s_product *= s
            if s_product > TWO_TO_512:
                s_product *= 1.0 / TWO_TO_512
                s_product_exponent += 512
    loss += log(s_product) + s_product_exponent * LN2
    _gradient_tiles(x, rows, d, z, kp, acc)
    return loss
