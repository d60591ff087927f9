"""The inner loop of the stochastic average gradient (SAG) solver: one epoch over the rows.

SAG (Schmidt, Le Roux & Bach, "Minimizing finite sums with the stochastic average
gradient", Math. Program. 2017) keeps, for every row i, the gradient of its loss with
respect to its logits as of the last time it was visited (``memory``, n x m), and their
sum times the rows (``sum_grad = X^T memory``, d x m). A step visits one row, replaces
its memory, and moves every coefficient along the average gradient plus the penalty's:
``W <- (1 - step alpha) W - step sum_grad / n_seen``.

On sparse rows this is done "just in time", as in scikit-learn's ``sag_fast.pyx``
(whose scheme this follows; the code is our own): W is kept as ``wscale * V``, so the
penalty's shrinking is one multiplication, and the average-gradient moves of a
feature absent from the visited rows are added up (``cumsum``) and applied only when
a row that stores it is visited, or at the end of the epoch. A step then costs
O(entries of the row x m), whatever d is.

Objective: ``(1/n) sum_i weight_i CE_i(W x_i + b) + alpha/2 ||W||^2``, with the weights
scaled to mean 1 over the n rows visited (rows of weight 0 are not visited). With
``offset = 1`` (the binary model), class 0's logit is 0 and the m = 1 column is class 1's.
Arithmetic in float64; X in float32 or float64, CSR or dense (row-major, ``indices``
and ``indptr`` empty). ``column_map`` maps CSR columns to coefficient rows as in
``_sparse_kernels`` (empty: the identity). Serial: one step depends on the one before.
"""

from cython cimport floating
from libc.math cimport exp

ctypedef fused index_t:
    int
    long long


cdef inline Py_ssize_t _column(Py_ssize_t p, Py_ssize_t start, bint dense,
                               const index_t[::1] indices, const index_t *cmap) noexcept nogil:
    """The coefficient row of entry p: its column (dense: p - start), through the map."""
    if dense:
        return p - start
    return cmap[indices[p]] if cmap != NULL else indices[p]


def row_squared_norms(const floating[::1] data, const index_t[::1] indptr,
                      Py_ssize_t n_rows, Py_ssize_t n_features, double[::1] out):
    """``out[i] = ||x_i||^2`` (float64) for CSR X (``indptr`` of n_rows + 1) or, with
    ``indptr`` empty, for dense row-major X (``data`` of n_rows x n_features)."""
    cdef Py_ssize_t i, p, start, end
    cdef double total, x
    cdef bint dense = indptr.shape[0] == 0
    with nogil:
        for i in range(n_rows):
            start = i * n_features if dense else indptr[i]
            end = start + n_features if dense else indptr[i + 1]
            total = 0.0
            for p in range(start, end):
                x = data[p]
                total += x * x
            out[i] = total


def sum_gradient(const floating[::1] data, const index_t[::1] indices,
                 const index_t[::1] indptr, const index_t[::1] column_map,
                 Py_ssize_t n_features,
                 const Py_ssize_t[::1] rows, const double[:, ::1] memory,
                 double[:, ::1] both, double[::1] sum_grad_b):
    """``sum_grad = sum over rows of x_i memory_i^T`` (into ``both[:, m:]``, see
    ``sag_epoch``) and ``sum_grad_b = sum memory_i``, recomputed exactly (the running
    sums of the epochs drift by their rounding)."""
    cdef Py_ssize_t m = memory.shape[1], r, i, p, j, c, start, end
    cdef bint dense = indptr.shape[0] == 0
    cdef const index_t *cmap = &column_map[0] if column_map.shape[0] else NULL
    cdef double x
    with nogil:
        for j in range(both.shape[0]):
            for c in range(m):
                both[j, m + c] = 0.0
        for c in range(m):
            sum_grad_b[c] = 0.0
        for r in range(rows.shape[0]):
            i = rows[r]
            start = i * n_features if dense else indptr[i]
            end = start + n_features if dense else indptr[i + 1]
            for p in range(start, end):
                j = _column(p, start, dense, indices, cmap)
                x = data[p]
                for c in range(m):
                    both[j, m + c] += x * memory[i, c]
            for c in range(m):
                sum_grad_b[c] += memory[i, c]


def sag_epoch(
    const floating[::1] data,
    const index_t[::1] indices,
    const index_t[::1] indptr,
    const index_t[::1] column_map,
    Py_ssize_t n_features,
    const Py_ssize_t[::1] order,
    const Py_ssize_t[::1] labels,
    const double[::1] weight,
    Py_ssize_t offset,
    bint fit_intercept,
    double step,
    double intercept_step,
    double alpha,
    double[:, ::1] both,
    double[::1] b,
    double[::1] sum_grad_b,
    double[:, ::1] memory,
    unsigned char[::1] seen,
    double[::1] state,
    long long[::1] feature_hist,
    double[::1] cumsum,
    double[::1] scratch,
):
    """One epoch of SAG over the rows in ``order`` (see the module).

    ``both`` (d, 2 m) holds V (its first m columns) and the running sums ``sum_grad``
    (the last m) side by side: a step reads and writes both rows of each feature of its
    row, now in one stretch of memory. ``state`` is ``[wscale, n_seen]``, updated in
    place; on return every coefficient is current and ``wscale`` is 1 (V is W). ``feature_hist`` (d), ``cumsum`` (len(order)
    + 1) and ``scratch`` (2 (m + offset)) are work arrays. ``weight`` (n) holds the
    scaled sample weights.
    """
    cdef Py_ssize_t m = b.shape[0], k = m + offset, d = both.shape[0], n = order.shape[0]
    cdef double *row_v
    cdef double *row_g
    cdef Py_ssize_t t, r, i, p, j, c, start, end, label
    cdef bint dense = indptr.shape[0] == 0
    cdef const index_t *cmap = &column_map[0] if column_map.shape[0] else NULL
    cdef double wscale = state[0], n_seen = state[1], x, top, total, factor, w_i
    cdef double *z = &scratch[0]
    cdef double *g = &scratch[k]
    if (both.shape[1] != 2 * m or sum_grad_b.shape[0] != m or memory.shape[1] != m
            or feature_hist.shape[0] != d or cumsum.shape[0] < n + 1
            or scratch.shape[0] < 2 * k or state.shape[0] != 2):
        raise ValueError("inconsistent SAG arrays.")
    with nogil:
        for j in range(d):
            feature_hist[j] = 0
        cumsum[0] = 0.0
        for t in range(n):
            i = order[t]
            start = i * n_features if dense else indptr[i]
            end = start + n_features if dense else indptr[i + 1]
            # Bring the row's coefficients up to date, then its logits.
            for c in range(k):
                z[c] = 0.0
            for p in range(start, end):
                j = _column(p, start, dense, indices, cmap)
                row_v = &both[j, 0]
                row_g = row_v + m
                if feature_hist[j] < t:
                    factor = cumsum[t] - cumsum[feature_hist[j]]
                    for c in range(m):
                        row_v[c] -= factor * row_g[c]
                    feature_hist[j] = t
                x = data[p]
                for c in range(m):
                    z[offset + c] += x * row_v[c]
            top = 0.0 if offset else -1e308
            for c in range(m):
                z[offset + c] = wscale * z[offset + c] + b[c]
                if z[offset + c] > top:
                    top = z[offset + c]
            total = 0.0
            for c in range(k):
                z[c] = exp(z[c] - top)
                total += z[c]
            # The row's new gradient with respect to its logits, and its change.
            label = labels[i]
            w_i = weight[i] if weight.shape[0] else 1.0
            if not seen[i]:
                seen[i] = 1
                n_seen += 1
            for c in range(m):
                g[c] = w_i * (z[offset + c] / total - (1.0 if label == offset + c else 0.0))
                x = g[c] - memory[i, c]
                memory[i, c] = g[c]
                g[c] = x
            # The step: shrink by the penalty, move along the average gradient, with the
            # row's change in it (for the row's coefficients now, in the same pass; for
            # the others when next needed).
            wscale *= 1.0 - step * alpha
            cumsum[t + 1] = cumsum[t] + step / (wscale * n_seen)
            factor = cumsum[t + 1] - cumsum[t]
            for p in range(start, end):
                j = _column(p, start, dense, indices, cmap)
                x = data[p]
                row_v = &both[j, 0]
                row_g = row_v + m
                for c in range(m):
                    row_g[c] += x * g[c]
                    row_v[c] -= factor * row_g[c]
                feature_hist[j] = t + 1
            for c in range(m):
                sum_grad_b[c] += g[c]
            if fit_intercept:
                for c in range(m):
                    b[c] -= intercept_step * sum_grad_b[c] / n_seen
            if wscale < 1e-9 or t == n - 1:
                # Every coefficient up to date, and W = V again.
                for j in range(d):
                    factor = cumsum[t + 1] - cumsum[feature_hist[j]]
                    for c in range(m):
                        both[j, c] = wscale * (both[j, c] - factor * both[j, m + c])
                    feature_hist[j] = t + 1
                wscale = 1.0
    state[0] = wscale
    state[1] = n_seen
