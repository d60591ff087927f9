"""The L1 term's loops over the parameters, in C, for OWL-QN (``_owlqn``, ``_penalty``).

A wide model (the Debian corpus: 1.85 million parameters) spends as long in OWL-QN's
vector operations as in the kernels' pass over X when they are NumPy expressions (a
dozen passes over the parameters per iteration, with temporaries); here each is one
blocked pass, on the threads the caller gives, with the blocks' partial sums added in
block order so that results do not depend on the thread count.

Conventions: ``weights[i] >= 0`` is the L1 weight of parameter i (0: unpenalized, as
the intercepts); ``pg`` the minimum-norm subgradient (``subgradient``).
"""

from libc.math cimport fabs
from libc.stdlib cimport free, malloc
from cython.parallel cimport prange

# Elements per block: 16 KiB of doubles.
cdef enum:
    _BLOCK = 2048


cdef inline double _sign(double x) noexcept nogil:
    return (x > 0) - (x < 0)


cdef inline double _shrink(double g, double weight) noexcept nogil:
    """The soft threshold of g by weight: the point of [g - weight, g + weight] nearest 0."""
    if g > weight:
        return g - weight
    if g < -weight:
        return g + weight
    return 0.0


def subgradient(const double[::1] w, const double[::1] grad, const double[::1] weights,
                double[::1] out, int n_threads=1):
    """``out`` = the minimum-norm element of ``grad + d(sum_i weights_i |w_i|)``:
    ``grad_i + weights_i sign(w_i)`` where ``w_i != 0``, else the soft threshold of
    ``grad_i`` by ``weights_i``."""
    cdef Py_ssize_t n = w.shape[0], t
    if not (grad.shape[0] == weights.shape[0] == out.shape[0] == n):
        raise ValueError("w, grad, weights and out must have the same length.")
    with nogil:
        for t in prange(n, schedule="static", num_threads=max(n_threads, 1)):
            if w[t] != 0:
                out[t] = grad[t] + weights[t] * _sign(w[t])
            else:
                out[t] = _shrink(grad[t], weights[t])


cdef double _blocked_sum(double *partial, Py_ssize_t n_blocks) noexcept nogil:
    cdef double total = 0.0
    cdef Py_ssize_t block
    for block in range(n_blocks):
        total += partial[block]
    return total


def constrain_direction(double[::1] direction, const double[::1] w, const double[::1] pg,
                        const double[::1] weights, int n_threads=1):
    """Set to 0 each entry of ``direction`` at a penalized parameter that is 0 and where
    the direction does not agree in sign with ``-pg`` (OWL-QN keeps the orthant of -pg
    there); returns ``pg . direction`` after that."""
    cdef Py_ssize_t n = w.shape[0], t, block, start, end
    cdef Py_ssize_t n_blocks = (n + _BLOCK - 1) // _BLOCK
    cdef double *partial
    cdef double acc, result
    if not (direction.shape[0] == pg.shape[0] == weights.shape[0] == n):
        raise ValueError("direction, w, pg and weights must have the same length.")
    partial = <double *> malloc(max(n_blocks, 1) * sizeof(double))
    if partial == NULL:
        raise MemoryError()
    with nogil:
        for block in prange(n_blocks, schedule="static", num_threads=max(n_threads, 1)):
            start = block * _BLOCK
            end = min(start + _BLOCK, n)
            acc = 0.0
            for t in range(start, end):
                if weights[t] > 0 and w[t] == 0 and direction[t] * pg[t] >= 0:
                    direction[t] = 0.0
                acc = acc + pg[t] * direction[t]
            partial[block] = acc
        result = _blocked_sum(partial, n_blocks)
    free(partial)
    return result


def projected_step(const double[::1] w, const double[::1] direction, double step,
                   const double[::1] pg, const double[::1] weights, double[::1] out,
                   int n_threads=1):
    """``out`` = ``w + step direction`` projected onto OWL-QN's orthant: a penalized entry
    whose sign differs from its orthant's (that of ``w``, or where ``w`` is 0, of
    ``-pg``) becomes 0; unpenalized entries are not projected.

    Returns ``(pg . (out - w), sum_i weights_i |out_i|)``: the first-order change along
    the projected step, and the L1 term at ``out``.
    """
    cdef Py_ssize_t n = w.shape[0], t, block, start, end
    cdef Py_ssize_t n_blocks = (n + _BLOCK - 1) // _BLOCK
    cdef double *partial
    cdef double value, orthant, change, l1, change_total, l1_total
    if not (direction.shape[0] == pg.shape[0] == weights.shape[0] == out.shape[0] == n):
        raise ValueError("w, direction, pg, weights and out must have the same length.")
    partial = <double *> malloc(max(2 * n_blocks, 1) * sizeof(double))
    if partial == NULL:
        raise MemoryError()
    with nogil:
        for block in prange(n_blocks, schedule="static", num_threads=max(n_threads, 1)):
            start = block * _BLOCK
            end = min(start + _BLOCK, n)
            change = 0.0
            l1 = 0.0
            for t in range(start, end):
                value = w[t] + step * direction[t]
                if weights[t] > 0:
                    orthant = _sign(w[t]) if w[t] != 0 else -_sign(pg[t])
                    if value * orthant < 0:
                        value = 0.0
                    l1 = l1 + weights[t] * fabs(value)
                out[t] = value
                change = change + pg[t] * (value - w[t])
            partial[2 * block] = change
            partial[2 * block + 1] = l1
        change_total = 0.0
        l1_total = 0.0
        for block in range(n_blocks):
            change_total += partial[2 * block]
            l1_total += partial[2 * block + 1]
    free(partial)
    return change_total, l1_total
