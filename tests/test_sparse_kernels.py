"""The CSR kernels against the dense ones: the same logits, loss, gradient and Hessian
products for every layout SciPy allows (unsorted indices, duplicate entries, explicit zeros,
empty rows and columns, int32 and int64 indices), both dtypes, 1 and 2 threads."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from softmaxreg import _sparse_kernels as sparse
from softmaxreg._dispatch import linear_kernels

FLOATS = [np.float64, np.float32]
RTOL = {np.float64: 1e-12, np.float32: 2e-5}


def awkward_csr(rng, n, d, density, dtype, index_dtype):
    """A CSR matrix with unsorted indices, duplicates, explicit zeros, an empty row and an
    empty column, and its dense equivalent (duplicates summed)."""
    X = sp.random(n, d, density=density, format="coo", random_state=rng, dtype=np.float64)
    rows, cols, vals = X.row, X.col, X.data * 3
    keep = cols != d - 1  # an empty column
    keep &= rows != 1  # an empty row
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    # duplicates (summed by SciPy and by the kernels) and explicit zeros
    extra = rng.integers(0, len(rows), size=max(len(rows) // 5, 1))
    rows = np.r_[rows, rows[extra], rows[extra[:3]]]
    cols = np.r_[cols, cols[extra], cols[extra[:3]]]
    vals = np.r_[vals, rng.standard_normal(len(extra)), np.zeros(min(3, len(extra)))]
    order = rng.permutation(len(rows))  # unsorted within rows once grouped
    coo = sp.coo_matrix((vals[order], (rows[order], cols[order])), shape=(n, d))
    dense = coo.toarray().astype(dtype)
    # CSR without summing duplicates or sorting: build indptr by hand.
    by_row = np.argsort(coo.row, kind="stable")
    indptr = np.r_[0, np.cumsum(np.bincount(coo.row, minlength=n))]
    csr = (coo.data[by_row].astype(dtype), coo.col[by_row].astype(index_dtype),
           indptr.astype(index_dtype))
    return csr, dense


def point(rng, d, k, dtype, scale=1.0):
    return ((scale * rng.standard_normal((d, k))).astype(dtype),
            rng.standard_normal(k).astype(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("k", [2, 3, 11])
@pytest.mark.parametrize("weighted", [False, True])
def test_csr_kernels_equal_the_dense_ones(dtype, index_dtype, n_threads, k, weighted):
    rng = np.random.default_rng(k + 7 * n_threads)
    n, d = 157, 23
    (data, indices, indptr), X = awkward_csr(rng, n, d, 0.15, dtype, index_dtype)
    labels = rng.integers(0, k, n).astype(np.intp)
    sw = rng.uniform(0, 2, n).astype(dtype) if weighted else np.empty(0, dtype)
    if weighted:
        sw[::5] = 0
    coef, b = point(rng, d, k, dtype, 2.0)
    V, v = point(rng, d, k, dtype)
    dense = linear_kernels(k)

    logits, expected = np.empty((n, k), dtype), np.empty((n, k), dtype)
    sparse.csr_linear_logits(data, indices, indptr, coef, b, logits, n_threads)
    dense.linear_logits(X, coef, b, expected, n_threads)
    assert_allclose(logits, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * 10)

    g, gb, eg, egb = (np.empty_like(a) for a in (coef, b, coef, b))
    loss = sparse.csr_linear_loss_gradient(data, indices, indptr, labels, sw, coef, b, g, gb, n_threads)
    expected_loss = dense.linear_loss_gradient(X, labels, sw, coef, b, eg, egb, n_threads)
    assert_allclose(loss, expected_loss, rtol=RTOL[dtype])
    scale = np.abs(eg).max()
    assert_allclose(g, eg, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)
    assert_allclose(gb, egb, rtol=RTOL[dtype], atol=RTOL[dtype] * np.abs(egb).max())

    h, hb, eh, ehb = (np.empty_like(a) for a in (coef, b, coef, b))
    sparse.csr_linear_hessian_product(data, indices, indptr, sw, coef, b, V, v, h, hb, n_threads)
    dense.linear_hessian_product(X, sw, coef, b, V, v, eh, ehb, n_threads)
    assert_allclose(h, eh, rtol=RTOL[dtype], atol=RTOL[dtype] * np.abs(eh).max())
    assert_allclose(hb, ehb, rtol=RTOL[dtype], atol=RTOL[dtype] * np.abs(ehb).max())


def test_csr_gradient_matches_finite_differences():
    """The gradient is that of the loss (checked independently of the dense kernel)."""
    rng = np.random.default_rng(3)
    (data, indices, indptr), _ = awkward_csr(rng, 60, 9, 0.3, np.float64, np.int32)
    labels = rng.integers(0, 4, 60).astype(np.intp)
    coef, b = point(rng, 9, 4, np.float64)
    sw = np.empty(0)

    def loss(c, bb):
        return sparse.csr_linear_loss_gradient(
            data, indices, indptr, labels, sw, c, bb, np.empty_like(c), np.empty_like(bb), 1)

    g, gb = np.empty_like(coef), np.empty_like(b)
    sparse.csr_linear_loss_gradient(data, indices, indptr, labels, sw, coef, b, g, gb, 1)
    h = 1e-6
    for j, c in [(0, 0), (4, 2), (8, 3)]:
        e = np.zeros_like(coef)
        e[j, c] = h
        assert_allclose((loss(coef + e, b) - loss(coef - e, b)) / (2 * h), g[j, c], rtol=1e-6)
    e = np.zeros_like(b)
    e[1] = h
    assert_allclose((loss(coef, b + e) - loss(coef, b - e)) / (2 * h), gb[1], rtol=1e-6)


def test_empty_matrix_and_deterministic_per_thread_count():
    """No stored entries: the logits are the intercepts. For a given thread count the
    result is the same on every run, to the bit."""
    n, d, k = 40, 5, 3
    data, indices, indptr = np.empty(0), np.empty(0, np.int64), np.zeros(n + 1, np.int64)
    coef, b = point(np.random.default_rng(0), d, k, np.float64)
    out = np.empty((n, k))
    sparse.csr_linear_logits(data, indices, indptr, coef, b, out, 2)
    assert_array_equal(out, np.broadcast_to(b, (n, k)))
    rng = np.random.default_rng(1)
    (data, indices, indptr), _ = awkward_csr(rng, 500, 30, 0.1, np.float64, np.int64)
    labels = rng.integers(0, k, 500).astype(np.intp)
    coef, b = point(rng, 30, k, np.float64)
    runs = []
    for _ in range(3):
        g, gb = np.empty_like(coef), np.empty_like(b)
        loss = sparse.csr_linear_loss_gradient(data, indices, indptr, labels, np.empty(0), coef, b, g, gb, 2)
        runs.append((loss, g.copy(), gb.copy()))
    for loss, g, gb in runs[1:]:
        assert loss == runs[0][0]
        assert_array_equal(g, runs[0][1])
        assert_array_equal(gb, runs[0][2])


def test_inconsistent_arrays_are_refused():
    with pytest.raises(ValueError, match="indices"):
        sparse.csr_linear_loss_gradient(
            np.ones(3), np.zeros(2, np.int32), np.array([0, 3], np.int32), np.zeros(1, np.intp),
            np.empty(0), np.zeros((2, 2)), np.zeros(2), np.empty((2, 2)), np.empty(2), 1)
