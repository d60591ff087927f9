"""The solvers' loops over the parameters, in C: a few microseconds where numpy takes tens.

A fit of a small data set (digits: 650 parameters) runs hundreds of evaluations of
the objective, and each one maps the parameters between the solver's coordinates and
the model's and back, and every L-BFGS iteration runs its two-loop recursion. In
numpy that is dozens of calls of a few microseconds each, as much as the kernel's
pass over the data; here it is one call each. Serial, except the L-BFGS loops,
which run on the threads the caller gives them (wide models, with millions of
parameters, spend as long in them as in the kernels).

* ``standardized_to_model`` and ``standardized_pullback``: the change of variables
  of ``_preconditioning.StandardizedObjective`` (W = D theta, b = theta_b - mu^T D
  theta; the gradient pulled back as (D/S) (G_W - mu G_b) + q theta, centred over
  the classes).
* ``two_loop`` and ``store_pair``: the L-BFGS recursion of ``_lbfgs`` on the
  stored pairs and their inner products (Nocedal 1980).
"""

from cython cimport floating
from libc.float cimport FLT_MAX
from libc.math cimport INFINITY, fabs
from libc.stdlib cimport free, malloc
from cython.parallel cimport prange


cdef inline floating _to(double value, floating *tag) noexcept nogil:
    """``value`` in the buffer's dtype: beyond float32's range it is +-inf (a C cast of
    such a double to float is undefined)."""
    if floating is float:
        if fabs(value) > FLT_MAX:
            return INFINITY if value > 0 else -INFINITY
    return <floating> value


# Elements per block of the blocked loops below: 16 KiB of doubles, so that a block of
# every stored pair (2 m blocks, 320 KiB for m = 10) stays in the L2 cache between the
# loops that read it.
cdef enum:
    _BLOCK = 2048


cdef inline double _dot(const double *a, const double *b, Py_ssize_t n) noexcept nogil:
    """sum a_t b_t with 8 running partial sums: a single sum waits on each addition's
    latency (4 cycles), 8 independent ones keep the vector units busy."""
    cdef double partial[8]
    cdef Py_ssize_t t, u, whole = n - n % 8
    for u in range(8):
        partial[u] = 0.0
    for t in range(0, whole, 8):
        for u in range(8):
            partial[u] += a[t + u] * b[t + u]
    for t in range(whole, n):
        partial[0] += a[t] * b[t]
    return (((partial[0] + partial[1]) + (partial[2] + partial[3]))
            + ((partial[4] + partial[5]) + (partial[6] + partial[7])))


cdef inline double _weighted_squares(const double *weight, const double *a, Py_ssize_t n,
                                     Py_ssize_t k) noexcept nogil:
    """sum_t weight[t // k] a_t^2 (weight NULL: 1), with 8 partial sums as ``_dot``."""
    cdef double partial[8]
    cdef Py_ssize_t t, u, whole = n - n % 8
    for u in range(8):
        partial[u] = 0.0
    if weight == NULL:
        for t in range(0, whole, 8):
            for u in range(8):
                partial[u] += a[t + u] * a[t + u]
        for t in range(whole, n):
            partial[0] += a[t] * a[t]
    else:
        for t in range(n):
            partial[t % 8] += weight[t // k] * a[t] * a[t]
    return (((partial[0] + partial[1]) + (partial[2] + partial[3]))
            + ((partial[4] + partial[5]) + (partial[6] + partial[7])))


cdef inline Py_ssize_t _rows_per_block(Py_ssize_t k) noexcept nogil:
    """Features per block of the standardized maps: about ``_BLOCK`` parameters."""
    return max(1, _BLOCK // max(k, 1))


def standardized_to_model(
    const double[::1] theta,
    const double[::1] scale,
    const double[::1] shift,
    const double[::1] penalty_curvature,
    Py_ssize_t n_columns,
    bint fit_intercept,
    floating[:, :] coef_out,
    floating[:] intercept_out,
    int n_threads=1,
):
    """Write W (d, k) = D theta and b = theta_b - shift^T theta into the kernels' buffers.

    ``theta`` is (W in C order, then b when ``fit_intercept``), ``shift = mu D``.
    Returns the penalty ``sum_jc q_j theta_jc^2 / 2`` (``q = penalty_curvature``).
    By blocks of features on ``n_threads`` OpenMP threads; the blocks' partial sums
    are added in block order, so the result does not depend on the thread count.
    """
    cdef Py_ssize_t d = scale.shape[0], k = n_columns, j, c, block, first, last
    cdef Py_ssize_t rows = _rows_per_block(k), n_blocks = (d + rows - 1) // rows
    cdef Py_ssize_t width = k + 1
    cdef double penalty = 0.0, t, total
    cdef double *partial = <double *> malloc(max(n_blocks * width, 1) * sizeof(double))
    if partial == NULL:
        raise MemoryError()
    with nogil:
        for block in prange(n_blocks, schedule="static", num_threads=max(n_threads, 1)):
            first = block * rows
            last = min(first + rows, d)
            for c in range(k):  # the first block starts from b (a single block: the
                # sum in the serial order, b - shift_0 t_0 - shift_1 t_1 - ...)
                partial[block * width + c] = theta[d * k + c] if fit_intercept and block == 0 else 0.0
            for j in range(first, last):
                for c in range(k):
                    t = theta[j * k + c]
                    coef_out[j, c] = _to(scale[j] * t, &coef_out[0, 0])
                    partial[block * width + c] -= shift[j] * t
            partial[block * width + k] = _weighted_squares(
                &penalty_curvature[first], &theta[first * k], (last - first) * k, k)
        for c in range(k):
            total = 0.0 if n_blocks else (theta[d * k + c] if fit_intercept else 0.0)
            for block in range(n_blocks):
                total = total + partial[block * width + c]
            intercept_out[c] = _to(total, &coef_out[0, 0]) if fit_intercept else 0
        for block in range(n_blocks):
            penalty += partial[block * width + k]
    free(partial)
    return 0.5 * penalty


def standardized_pullback(
    const floating[:, :] out_coef,
    const floating[:] out_intercept,
    const double[::1] theta,
    const double[::1] grad_scale,
    const double[::1] grad_shift,
    const double[::1] penalty_curvature,
    double loss_scale,
    bint fit_intercept,
    bint centre,
    double[::1] result,
    int n_threads=1,
):
    """``result`` = (D/S) (G_W - mu G_b) + q theta and G_b / S, from the kernels' outputs
    G (times S, in the model's coordinates), centred over the classes when ``centre``.

    ``grad_scale = D / S``, ``grad_shift = mu D / S``. Returns the sum of the squares
    of ``result`` (inf or NaN where it is not finite). By blocks of features on
    ``n_threads`` OpenMP threads, independent of the thread count.
    """
    cdef Py_ssize_t d = grad_scale.shape[0], k = out_coef.shape[1], j, c, block, first, last
    cdef Py_ssize_t rows = _rows_per_block(k), n_blocks = (d + rows - 1) // rows
    cdef double mean, total, squares = 0.0, g
    cdef double *partial = <double *> malloc(max(n_blocks, 1) * sizeof(double))
    if partial == NULL:
        raise MemoryError()
    with nogil:
        for block in prange(n_blocks, schedule="static", num_threads=max(n_threads, 1)):
            first = block * rows
            last = min(first + rows, d)
            for j in range(first, last):
                total = 0.0
                for c in range(k):
                    g = grad_scale[j] * out_coef[j, c] + penalty_curvature[j] * theta[j * k + c]
                    if fit_intercept:
                        g = g - grad_shift[j] * out_intercept[c]
                    result[j * k + c] = g
                    total = total + g
                if centre:
                    mean = total / k
                    for c in range(k):
                        result[j * k + c] -= mean
            partial[block] = _weighted_squares(NULL, &result[first * k], (last - first) * k, 1)
        if fit_intercept:
            total = 0.0
            for c in range(k):
                result[d * k + c] = loss_scale * out_intercept[c]
                total += result[d * k + c]
            if centre:
                mean = total / k
                for c in range(k):
                    result[d * k + c] -= mean
            squares = _weighted_squares(NULL, &result[d * k], k, 1)
        for block in range(n_blocks):
            squares += partial[block]
    free(partial)
    return squares


def standardized_optimality(
    const double[::1] grad,
    const double[::1] test_inverse_scale,
    const double[::1] test_mean,
    Py_ssize_t n_columns,
    bint fit_intercept,
    int n_threads=1,
):
    """``max(max |grad|, max |grad_jc test_inverse_scale_j + test_mean_j grad_b,c|)``: the
    largest entry of the gradient in theta and of the (weighted) one in the model's
    coordinates (``StandardizedObjective.optimality``). NaN if any entry is NaN. By
    blocks of features on ``n_threads`` OpenMP threads."""
    cdef Py_ssize_t d = test_inverse_scale.shape[0], k = n_columns, j, c, block, first, last
    cdef Py_ssize_t rows = _rows_per_block(k), n_blocks = (d + rows - 1) // rows
    cdef double largest = 0.0, g, h, local
    cdef double *partial = <double *> malloc(max(n_blocks, 1) * sizeof(double))
    if partial == NULL:
        raise MemoryError()
    with nogil:
        for j in range(d * k, grad.shape[0]):  # the intercepts
            g = fabs(grad[j])
            if g != g:  # NaN: the result is NaN
                largest = g
                break
            if g > largest:
                largest = g
        for block in prange(n_blocks, schedule="static", num_threads=max(n_threads, 1)):
            first = block * rows
            last = min(first + rows, d)
            local = 0.0
            for j in range(first, last):
                for c in range(k):
                    g = fabs(grad[j * k + c])
                    h = grad[j * k + c] * test_inverse_scale[j]
                    if fit_intercept:
                        h = h + test_mean[j] * grad[d * k + c]
                    h = fabs(h)
                    if h > g:
                        g = h
                    if not g <= local:  # larger, or NaN (which then stays)
                        if local == local:
                            local = g
            partial[block] = local
        for block in range(n_blocks):
            if largest == largest and not partial[block] <= largest:
                largest = partial[block]
    free(partial)
    return largest


def store_pair(
    const double[::1] w_new, const double[::1] w, const double[::1] grad_new,
    const double[::1] grad, double[:, ::1] S, double[:, ::1] Y, Py_ssize_t slot,
    double[:, ::1] SY, int n_threads=1,
):
    """Row ``slot`` of S and Y = the step ``w_new - w`` and the gradient's change, and
    ``SY[i, slot] = s_i . y_slot`` for every row i; returns ``(s . y, y . y)``.

    ``two_loop`` reads ``SY[i, j]`` only for a pair i older than the pair j (the first
    loop's ``s_i . y_j`` for j newer than i, the second's ``s_j . y_i`` for j older than
    i), so the new pair's row, ``s_slot . y_j`` for the older pairs, is never needed.
    One blocked pass over the four vectors and S, on ``n_threads`` OpenMP threads; the
    blocks' partial sums are added in block order, so the result does not depend on
    the thread count.
    """
    cdef Py_ssize_t m = S.shape[0], n = w.shape[0], t, i, block, start, end
    cdef Py_ssize_t n_blocks = (n + _BLOCK - 1) // _BLOCK, width = m + 1
    cdef double yy = 0.0
    cdef double *partial
    if SY.shape[0] != m or SY.shape[1] != m:
        raise ValueError("SY must be m x m, m the rows of S.")
    partial = <double *> malloc(max(n_blocks * width, 1) * sizeof(double))
    if partial == NULL:
        raise MemoryError()
    with nogil:
        for block in prange(n_blocks, schedule="static", num_threads=max(n_threads, 1)):
            start = block * _BLOCK
            end = min(start + _BLOCK, n)
            for t in range(start, end):
                S[slot, t] = w_new[t] - w[t]
                Y[slot, t] = grad_new[t] - grad[t]
            partial[block * width + m] = _dot(&Y[slot, start], &Y[slot, start], end - start)
            for i in range(m):
                partial[block * width + i] = _dot(&S[i, start], &Y[slot, start], end - start)
        for i in range(m):
            SY[i, slot] = 0.0
        for block in range(n_blocks):
            for i in range(m):
                SY[i, slot] += partial[block * width + i]
            yy += partial[block * width + m]
    free(partial)
    return SY[slot, slot], yy


cdef void _pair_dots(const double[:, ::1] V, const Py_ssize_t[::1] order,
                     const double *x, Py_ssize_t n, double *result, double *partial,
                     int n_threads) noexcept nogil:
    """result[i] = v_i . x for every row i in ``order``, by blocks in parallel, the
    blocks' partial sums added in block order. ``partial``: n_blocks x rows of V."""
    cdef Py_ssize_t m = order.shape[0], width = V.shape[0], p, i, block, start, end
    cdef Py_ssize_t n_blocks = (n + _BLOCK - 1) // _BLOCK
    for block in prange(n_blocks, schedule="static", num_threads=n_threads):
        start = block * _BLOCK
        end = min(start + _BLOCK, n)
        for p in range(m):
            i = order[p]
            partial[block * width + i] = _dot(&V[i, start], &x[start], end - start)
    for p in range(m):
        i = order[p]
        result[i] = 0.0
        for block in range(n_blocks):
            result[i] += partial[block * width + i]


def two_loop(
    const double[:, ::1] S,
    const double[:, ::1] Y,
    const double[:, ::1] SY,
    const double[::1] rho,
    const Py_ssize_t[::1] order,
    double gamma,
    const double[::1] grad,
    double[::1] out,
    double[::1] work,
    int n_threads=1,
):
    """``out = -H grad``, H the L-BFGS inverse Hessian of the pairs in ``order`` (oldest
    first), with initial matrix ``gamma I`` (Nocedal & Wright, algorithm 7.4).

    The first loop's ``s_i . q`` and the second's ``y_i . r`` come from the inner
    products with ``grad`` and with the scaled start and the stored ``SY``, so the
    recursion needs only every ``s_i . grad`` (one pass over S), then ``r = gamma
    (grad - sum alpha_i y_i)`` and every ``y_i . r`` (one pass over Y), then ``r + sum
    (alpha_i - beta_i) s_i`` (one more over S): three blocked passes over the pairs
    instead of 4 m, each on ``n_threads`` OpenMP threads (the result does not depend on
    the thread count). ``work`` holds 4 m doubles.
    """
    cdef Py_ssize_t m = order.shape[0], n = grad.shape[0], mm = S.shape[0]
    cdef Py_ssize_t p, q, i, j, t, block, start, end
    cdef Py_ssize_t n_blocks = (n + _BLOCK - 1) // _BLOCK
    cdef double total, coefficient
    cdef int threads = max(n_threads, 1)
    cdef double *partial
    if work.shape[0] < 4 * mm:
        raise ValueError("work must hold 4 m doubles.")
    cdef double *alpha = &work[0]
    cdef double *beta = &work[mm]
    cdef double *s_grad = &work[2 * mm]
    cdef double *y_r = &work[3 * mm]
    partial = <double *> malloc(max(n_blocks * mm, 1) * sizeof(double))
    if partial == NULL:
        raise MemoryError()
    with nogil:
        _pair_dots(S, order, &grad[0], n, s_grad, partial, threads)
        # alpha_i = rho_i (s_i . grad - sum_{j newer} alpha_j s_i . y_j), newest first.
        for p in range(m - 1, -1, -1):
            i = order[p]
            total = s_grad[i]
            for q in range(p + 1, m):
                j = order[q]
                total -= alpha[j] * SY[i, j]
            alpha[i] = rho[i] * total
        # r = gamma (grad - sum_i alpha_i y_i), and y_i . r, block by block.
        for block in prange(n_blocks, schedule="static", num_threads=threads):
            start = block * _BLOCK
            end = min(start + _BLOCK, n)
            for t in range(start, end):
                out[t] = grad[t]
            for p in range(m):
                i = order[p]
                coefficient = alpha[i]
                for t in range(start, end):
                    out[t] -= coefficient * Y[i, t]
            for t in range(start, end):
                out[t] *= gamma
            for p in range(m):
                i = order[p]
                partial[block * mm + i] = _dot(&Y[i, start], &out[start], end - start)
        for p in range(m):
            i = order[p]
            y_r[i] = 0.0
            for block in range(n_blocks):
                y_r[i] += partial[block * mm + i]
        # beta_i = rho_i y_i . r_i, r_i = r + sum_{j older} (alpha_j - beta_j) s_j; oldest first.
        for p in range(m):
            i = order[p]
            total = y_r[i]
            for q in range(p):
                j = order[q]
                total += (alpha[j] - beta[j]) * SY[j, i]
            beta[i] = rho[i] * total
        for block in prange(n_blocks, schedule="static", num_threads=threads):
            start = block * _BLOCK
            end = min(start + _BLOCK, n)
            for p in range(m):
                i = order[p]
                coefficient = alpha[i] - beta[i]
                for t in range(start, end):
                    out[t] += coefficient * S[i, t]
            for t in range(start, end):
                out[t] = -out[t]
    free(partial)
