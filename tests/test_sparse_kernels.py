"""The CSR kernels against the dense ones: the same logits, loss, gradient and Hessian
products for every layout SciPy allows (unsorted indices, duplicate entries, explicit zeros,
empty rows and columns, int32 and int64 indices), both dtypes, 1 and 2 threads."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from softmaxreg import _sparse_kernels as sparse
from softmaxreg._dispatch import _module, available_builds, linear_kernels

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


def no_map(indices):
    return np.empty(0, dtype=indices.dtype)


def space(coef, n_threads, module=sparse):
    return np.empty(module.csr_workspace_size(*coef.shape, n_threads, coef.dtype.name),
                    dtype=coef.dtype)


def logits_of(data, indices, indptr, coef, b, out, n_threads, column_map=None, module=sparse):
    column_map = no_map(indices) if column_map is None else column_map
    module.csr_linear_logits(data, indices, indptr, column_map, coef, b, out, n_threads)


def loss_gradient(data, indices, indptr, labels, sw, coef, b, g, gb, n_threads,
                  column_map=None, module=sparse):
    column_map = no_map(indices) if column_map is None else column_map
    return module.csr_linear_loss_gradient(data, indices, indptr, column_map, labels, sw, coef,
                                           b, g, gb, space(coef, n_threads, module), n_threads)


def hessian_product(data, indices, indptr, sw, coef, b, V, v, h, hb, n_threads,
                    column_map=None, module=sparse):
    column_map = no_map(indices) if column_map is None else column_map
    module.csr_linear_hessian_product(data, indices, indptr, column_map, sw, coef, b, V, v,
                                      h, hb, space(coef, n_threads, module), n_threads)


def point(rng, d, k, dtype, scale=1.0):
    return ((scale * rng.standard_normal((d, k))).astype(dtype),
            rng.standard_normal(k).astype(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("k", [2, 3, 11])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("build", available_builds())
def test_csr_kernels_equal_the_dense_ones(dtype, index_dtype, n_threads, k, weighted, build):
    """Every build of the CSR kernels (baseline, AVX2, AVX-512) against the dense ones."""
    module = _module(build, "_sparse_kernels")
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
    logits_of(data, indices, indptr, coef, b, logits, n_threads, module=module)
    dense.linear_logits(X, coef, b, expected, n_threads)
    assert_allclose(logits, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * 10)

    g, gb, eg, egb = (np.empty_like(a) for a in (coef, b, coef, b))
    loss = loss_gradient(data, indices, indptr, labels, sw, coef, b, g, gb, n_threads,
                         module=module)
    expected_loss = dense.linear_loss_gradient(X, labels, sw, coef, b, eg, egb, n_threads)
    assert_allclose(loss, expected_loss, rtol=RTOL[dtype])
    scale = np.abs(eg).max()
    assert_allclose(g, eg, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)
    assert_allclose(gb, egb, rtol=RTOL[dtype], atol=RTOL[dtype] * np.abs(egb).max())

    h, hb, eh, ehb = (np.empty_like(a) for a in (coef, b, coef, b))
    hessian_product(data, indices, indptr, sw, coef, b, V, v, h, hb, n_threads, module=module)
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
        return loss_gradient(
            data, indices, indptr, labels, sw, c, bb, np.empty_like(c), np.empty_like(bb), 1)

    g, gb = np.empty_like(coef), np.empty_like(b)
    loss_gradient(data, indices, indptr, labels, sw, coef, b, g, gb, 1)
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
    logits_of(data, indices, indptr, coef, b, out, 2)
    assert_array_equal(out, np.broadcast_to(b, (n, k)))
    rng = np.random.default_rng(1)
    (data, indices, indptr), _ = awkward_csr(rng, 500, 30, 0.1, np.float64, np.int64)
    labels = rng.integers(0, k, 500).astype(np.intp)
    coef, b = point(rng, 30, k, np.float64)
    runs = []
    for _ in range(3):
        g, gb = np.empty_like(coef), np.empty_like(b)
        loss = loss_gradient(data, indices, indptr, labels, np.empty(0), coef, b, g, gb, 2)
        runs.append((loss, g.copy(), gb.copy()))
    for loss, g, gb in runs[1:]:
        assert loss == runs[0][0]
        assert_array_equal(g, runs[0][1])
        assert_array_equal(gb, runs[0][2])


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_column_map_reads_the_stored_columns_only(n_threads, index_dtype):
    """With a column map, the kernels on X equal the kernels on X[:, columns] (the
    columns that store entries), without that copy."""
    rng = np.random.default_rng(5)
    n, d, k = 300, 40, 4
    (data, indices, indptr), X = awkward_csr(rng, n, d, 0.05, np.float64, index_dtype)
    columns = np.flatnonzero(np.bincount(indices, minlength=d))
    assert len(columns) < d
    column_map = np.zeros(d, dtype=index_dtype)
    column_map[columns] = np.arange(len(columns))
    Xc = sp.csr_matrix(X[:, columns])
    Xc.indices, Xc.indptr = Xc.indices.astype(index_dtype), Xc.indptr.astype(index_dtype)
    csr_c = (Xc.data, Xc.indices, Xc.indptr)
    labels = rng.integers(0, k, n).astype(np.intp)
    coef, b = point(rng, len(columns), k, np.float64)
    V, v = point(rng, len(columns), k, np.float64)
    out, expected = np.empty((n, k)), np.empty((n, k))
    logits_of(data, indices, indptr, coef, b, out, n_threads, column_map)
    logits_of(*csr_c, coef, b, expected, n_threads)
    assert_allclose(out, expected, rtol=1e-13, atol=1e-13)
    g, gb, eg, egb = (np.empty_like(a) for a in (coef, b, coef, b))
    loss = loss_gradient(data, indices, indptr, labels, np.empty(0), coef, b, g, gb,
                         n_threads, column_map)
    assert_allclose(loss, loss_gradient(*csr_c, labels, np.empty(0), coef, b, eg, egb,
                                        n_threads), rtol=1e-13)
    assert_allclose(g, eg, rtol=1e-12, atol=1e-13)
    assert_allclose(gb, egb, rtol=1e-12, atol=1e-13)
    h, hb, eh, ehb = (np.empty_like(a) for a in (coef, b, coef, b))
    hessian_product(data, indices, indptr, np.empty(0), coef, b, V, v, h, hb, n_threads,
                    column_map)
    hessian_product(*csr_c, np.empty(0), coef, b, V, v, eh, ehb, n_threads)
    assert_allclose(h, eh, rtol=1e-12, atol=1e-13)
    assert_allclose(hb, ehb, rtol=1e-12, atol=1e-13)


def test_workspace_is_reused_and_checked():
    """A workspace left dirty by one call gives the same result in the next (the kernels
    zero what they use); one too small is refused with the size needed."""
    rng = np.random.default_rng(2)
    (data, indices, indptr), _ = awkward_csr(rng, 200, 12, 0.2, np.float64, np.int32)
    labels = rng.integers(0, 3, 200).astype(np.intp)
    coef, b = point(rng, 12, 3, np.float64)
    work = np.full(sparse.csr_workspace_size(12, 3, 2, "float64"), np.nan)
    results = []
    for _ in range(2):
        g, gb = np.empty_like(coef), np.empty_like(b)
        loss = sparse.csr_linear_loss_gradient(data, indices, indptr, no_map(indices), labels,
                                               np.empty(0), coef, b, g, gb, work, 2)
        results.append((loss, g, gb))
    assert np.isfinite(results[0][1]).all()
    assert results[0][0] == results[1][0]
    assert_array_equal(results[0][1], results[1][1])
    with pytest.raises(ValueError, match="workspace has 3 elements"):
        sparse.csr_linear_loss_gradient(data, indices, indptr, no_map(indices), labels,
                                        np.empty(0), coef, b, g, gb, np.empty(3), 2)
    with pytest.raises(TypeError, match="float32 or float64"):
        sparse.csr_workspace_size(12, 3, 2, "int8")


def test_inconsistent_arrays_are_refused():
    with pytest.raises(ValueError, match="indices"):
        sparse.csr_linear_loss_gradient(
            np.ones(3), np.zeros(2, np.int32), np.array([0, 3], np.int32), np.empty(0, np.int32),
            np.zeros(1, np.intp), np.empty(0), np.zeros((2, 2)), np.zeros(2), np.empty((2, 2)),
            np.empty(2), np.empty(100), 1)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_sparse_column_moments_equal_the_dense_ones(dtype, weighted, n_threads):
    """``column_moments`` of CSR X (through ``csr_column_sums``) equal those of its dense
    copy: implicit zeros counted, a column stored in every row with one value and an
    empty column have variance exactly 0, rows of weight 0 ignored (magnitude too), and
    the result is the same for every thread count."""
    from softmaxreg._preconditioning import column_moments

    rng = np.random.default_rng(11)
    X = sp.random(301, 9, density=0.3, random_state=rng, format="csr", dtype=np.float64)
    X = X.toarray()
    X[:, 2] = 4.5  # stored everywhere, constant
    X[:, 5] = 0.0  # empty
    X[:, 7] += 1e4 * (X[:, 7] != 0)  # a large offset on the stored entries
    X = X.astype(dtype)
    sw = rng.uniform(0, 2, 301).astype(dtype) if weighted else np.empty(0, dtype)
    if weighted:
        sw[::4] = 0
        X[0, 2] = 99.0  # on a row of weight 0: ignored
    Xs = sp.csr_matrix(X)
    mean, std, magnitude = column_moments(Xs, sw, n_threads)
    dense = column_moments(X, sw, 1)
    assert_allclose(mean, dense[0], rtol=1e-12, atol=1e-12)
    assert_allclose(std, dense[1], rtol=1e-9, atol=1e-12)
    assert_array_equal(magnitude, dense[2])
    assert std[2] == 0.0 and std[5] == 0.0 and magnitude[5] == 0.0
    assert_array_equal(column_moments(Xs, sw, 1)[0], column_moments(Xs, sw, 1)[0])
