"""softmax, log_softmax and softmax_cross_entropy: references, extremes, derivatives, bad input."""

import mpmath
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import special

from softmaxreg import log_softmax, softmax, softmax_cross_entropy

FLOATS = [np.float32, np.float64]
# Agreement with a float64 reference; float32 kernels exponentiate in float32.
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


def make_batch(dtype, n=40, k=6, seed=0):
    """Logits, labels, soft targets and sample weights with the awkward cases built in.

    Soft-target row 0 is all zeros and the rows sum to anything in [0, 12];
    every fourth sample weight is zero.
    """
    rng = np.random.default_rng(seed)
    logits = (3 * rng.standard_normal((n, k))).astype(dtype)
    labels = rng.integers(0, k, n)
    soft = rng.uniform(0, 2, (n, k))
    soft[soft < 0.6] = 0
    soft[0] = 0
    sample_weight = rng.uniform(0, 3, n)
    sample_weight[::4] = 0
    return logits, labels, soft.astype(dtype), sample_weight.astype(dtype)


def pick(kind, labels, soft):
    return labels if kind == "labels" else soft


def exact_log_softmax(logits):
    """log_softmax to 50 digits (mpmath), rounded to float64: exact where scipy's float64
    log_softmax rounds a log-probability near 0 to 0, or overflows to -inf."""
    with mpmath.workdps(50):
        rows = []
        for row in np.asarray(logits, dtype=np.float64):
            z = [mpmath.mpf(float(v)) for v in row]
            shifted = [v - max(z) for v in z]  # exact: a difference of two doubles
            top = shifted.index(0)
            rest = mpmath.fsum(mpmath.exp(v) for j, v in enumerate(shifted) if j != top)
            log_sum = mpmath.log1p(rest)  # the sum is 1 + rest, rest down to 1e-300
            rows.append([float(v - log_sum) for v in shifted])
    return np.array(rows).reshape(np.shape(logits))


def reference_cross_entropy(logits, targets, sample_weight=None):
    """Summed loss and gradient in float64, straight from the definitions via an exact
    log_softmax."""
    z = np.asarray(logits, dtype=np.float64)
    t = np.eye(z.shape[1])[targets] if targets.ndim == 1 else np.asarray(targets, dtype=np.float64)
    w = np.ones(len(z)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    logp = exact_log_softmax(z)
    t_logp = np.multiply(t, logp, out=np.zeros_like(t), where=t != 0)  # 0 * log 0 is 0
    loss = -np.sum(w * t_logp.sum(axis=1))
    grad = w[:, None] * (np.exp(logp) * t.sum(axis=1, keepdims=True) - t)
    if targets.ndim == 1:  # p_y - 1 = -sum_{j != y} p_j, free of cancellation when p_y ~ 1
        grad[t == 1] = -w * np.where(t == 1, 0, np.exp(logp)).sum(axis=1)
    return loss, grad


def five_point(f, x, step):
    """Derivative of f at x along ``step`` (its length is h): (-f(x+2h)+8f(x+h)-8f(x-h)+f(x-2h))/(12h)."""
    return (-f(x + 2 * step) + 8 * f(x + step) - 8 * f(x - step) + f(x - 2 * step)) / 12


# ---------------------------------------------------------------------------
# Against NumPy / scipy
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func, reference", [(softmax, special.softmax), (log_softmax, special.log_softmax)])
def test_row_wise_functions_match_scipy(func, reference, dtype):
    """softmax and log_softmax equal scipy's, row by row, for 2-D input and for a single 1-D row."""
    logits = make_batch(dtype)[0]
    expected = reference(logits.astype(np.float64), axis=-1)
    assert_allclose(func(logits), expected, **TOL[dtype])
    assert_allclose(func(logits[3]), expected[3], **TOL[dtype])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kind", ["labels", "soft"])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_matches_reference(kind, weighted, dtype):
    """Loss and gradient equal the scipy-based reference: labels or soft targets (rows of zeros,
    rows not summing to 1), with or without sample weights (some of them zero)."""
    logits, labels, soft, sw = make_batch(dtype)
    targets, sw = pick(kind, labels, soft), (sw if weighted else None)
    loss, grad = softmax_cross_entropy(logits, targets, sw)
    ref_loss, ref_grad = reference_cross_entropy(logits, targets, sw)
    assert isinstance(loss, float)
    assert_allclose(loss, ref_loss, rtol=TOL[dtype]["rtol"])
    assert_allclose(grad, ref_grad, **TOL[dtype])


# ---------------------------------------------------------------------------
# Extreme logits
# ---------------------------------------------------------------------------

# Each case is a function of the dtype's "huge" value (1e300 for float64, 1e38 for float32).
EXTREME = {
    "huge_opposite": lambda big: [[big, -big, 0.0], [-big, 0.0, big], [big, big, big]],
    "huge_same_sign": lambda big: [[big, big / 2, big / 4], [-big, -big / 2, -big / 4]],
    "spread_1e3": lambda big: [[0.0, -1000.0, 1000.0, 3.0], [-1500.0, -500.0, -2500.0, -1000.0]],
    "one_dominant": lambda big: [[40.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -800.0, 0.0, 800.0]],
    "two_classes": lambda big: [[big, -big], [-big, big], [1e3, -1e3], [0.0, 0.0], [20.0, -20.0]],
    "one_class": lambda big: [[big], [-big], [0.0], [1e3]],
}
HUGE = {np.float32: 1e38, np.float64: 1e300}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", list(EXTREME))
def test_extreme_logits_are_handled_stably(case, dtype):
    """No NaN; softmax rows sum to 1; log_softmax is finite wherever the true value fits in the
    dtype; the loss is finite where the true one is; every output matches the exact reference."""
    logits = np.array(EXTREME[case](HUGE[dtype]), dtype=dtype)
    exact = logits.astype(np.float64)
    tiny = np.finfo(dtype).tiny

    proba = softmax(logits)
    assert not np.isnan(proba).any()
    assert_allclose(proba.sum(axis=1), 1.0, rtol=10 * np.finfo(dtype).eps)
    assert_allclose(proba, special.softmax(exact, axis=1), rtol=TOL[dtype]["rtol"], atol=tiny)

    ref_log = exact_log_softmax(exact)
    representable = np.abs(ref_log) <= np.finfo(dtype).max
    if representable.all():
        log_proba = log_softmax(logits)
        assert np.isfinite(log_proba).all()
        assert_allclose(log_proba, ref_log, rtol=TOL[dtype]["rtol"], atol=tiny)
    else:  # a log-probability below the dtype's range: an error, never -inf
        with pytest.raises(ValueError, match="logits differ so much"):
            log_softmax(logits)

    k = logits.shape[1]
    targets = {
        "worst_label": np.argmin(logits, axis=1),
        "best_label": np.argmax(logits, axis=1),
        "uniform_soft": np.full(logits.shape, 1.0 / k, dtype=dtype),
    }
    for name, t in targets.items():
        loss, grad = softmax_cross_entropy(logits, t)
        ref_loss, ref_grad = reference_cross_entropy(logits, t)
        assert np.isfinite(ref_loss), name  # every case here has a representable loss
        assert np.isfinite(loss), name
        # float32 kernels exponentiate in float32: a row loss below its smallest subnormal is 0.
        subnormal = float(np.finfo(dtype).smallest_subnormal) * len(logits)
        assert_allclose(loss, ref_loss, rtol=TOL[dtype]["rtol"], atol=subnormal, err_msg=name)
        assert np.isfinite(grad).all(), name
        # p_j T - t_j is a difference of two terms of the size of t: where it is 0 exactly,
        # the computed value is a rounding of those terms (a few eps times their size).
        atol = max(tiny, 4 * np.finfo(dtype).eps * float(np.max(t)) if t.ndim == 2 else tiny)
        assert_allclose(grad, ref_grad, rtol=TOL[dtype]["rtol"], atol=atol, err_msg=name)


@pytest.mark.parametrize("dtype", FLOATS)
def test_loss_beyond_float32_range_is_finite(dtype):
    """The loss is accumulated in float64, so logits of ±3e38 (a loss of 6e38) give a finite loss
    even in float32."""
    logits = np.array([[3e38, -3e38]], dtype=dtype)
    for targets in (np.array([1]), np.array([[0.0, 1.0]])):
        loss, grad = softmax_cross_entropy(logits, targets)
        assert_allclose(loss, 6e38, rtol=1e-6)
        assert_array_equal(grad, [[1.0, -1.0]])


@pytest.mark.parametrize("dtype", FLOATS)
def test_single_class_column(dtype):
    """k=1: softmax is 1, log_softmax 0, the loss 0 and the gradient 0 for any targets (for soft
    targets in float32, 0 up to the rounding of w * t to float32)."""
    logits = make_batch(dtype, k=1)[0]
    assert_array_equal(softmax(logits), 1.0)
    assert_array_equal(log_softmax(logits), 0.0)
    sw = np.linspace(0, 2, len(logits))
    labels, soft = np.zeros(len(logits), dtype=int), np.linspace(0, 3, len(logits))[:, None]
    loss, grad = softmax_cross_entropy(logits, labels, sw)
    assert loss == 0.0
    assert_array_equal(grad, 0.0)
    loss, grad = softmax_cross_entropy(logits, soft, sw)
    assert loss == 0.0
    assert_allclose(grad, 0.0, atol=np.finfo(dtype).eps * np.max(sw[:, None] * soft))


# ---------------------------------------------------------------------------
# Derivatives and identities
# ---------------------------------------------------------------------------


def row_losses(logits, targets, sample_weight, dtype):
    """Per-row losses, one call per row: each depends only on its own row of logits."""
    z = np.asarray(logits, dtype=dtype)
    rows = [slice(i, i + 1) for i in range(len(z))]
    return np.array([softmax_cross_entropy(z[r], targets[r], sample_weight[r])[0] for r in rows])


@pytest.mark.parametrize(
    "dtype, h, tol",
    # float32: logits on a 2**-10 grid and a power-of-two h, so every stencil point is exact.
    [(np.float64, 1e-3, dict(rtol=1e-7, atol=1e-9)), (np.float32, 2.0**-5, dict(rtol=1e-3, atol=2e-4))],
)
@pytest.mark.parametrize("kind", ["labels", "soft"])
def test_gradient_matches_finite_differences(kind, dtype, h, tol):
    """grad[:, j] is the 5-point finite difference of each row's weighted loss, one class column at a time."""
    logits, labels, soft, sw = make_batch(dtype, n=12, k=4)
    logits = (np.round(logits * 1024) / 1024).astype(dtype)
    targets = pick(kind, labels, soft)
    _, grad = softmax_cross_entropy(logits, targets, sw)
    for j in range(logits.shape[1]):
        step = np.zeros(logits.shape)
        step[:, j] = h
        numeric = five_point(lambda z: row_losses(z, targets, sw, dtype), logits, step) / h
        assert_allclose(grad[:, j], numeric, **tol, err_msg=f"column {j}")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("weighted", [False, True])
def test_one_hot_targets_equal_labels(weighted, dtype):
    """One-hot soft targets and the integer labels they encode give the same loss and gradient."""
    logits, labels, _, sw = make_batch(dtype)
    sw = sw if weighted else None
    one_hot = np.eye(logits.shape[1], dtype=dtype)[labels]
    loss_l, grad_l = softmax_cross_entropy(logits, labels, sw)
    loss_t, grad_t = softmax_cross_entropy(logits, one_hot, sw)
    assert_allclose(loss_t, loss_l, rtol=TOL[dtype]["rtol"])
    assert_allclose(grad_t, grad_l, rtol=TOL[dtype]["rtol"], atol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kind", ["labels", "soft"])
def test_gradient_is_weighted_softmax_times_target_sum_minus_targets(kind, dtype):
    """grad_i = w_i (softmax(z_i) sum(t_i) - t_i), so each row sums to w_i (sum(t_i) - sum(t_i)) = 0,
    and rows of weight 0 have a gradient of exactly 0 and add nothing to the loss."""
    logits, labels, soft, sw = make_batch(dtype)
    targets = pick(kind, labels, soft)
    t = np.eye(logits.shape[1])[labels] if kind == "labels" else soft.astype(np.float64)
    loss, grad = softmax_cross_entropy(logits, targets, sw)
    expected = sw[:, None] * (softmax(logits) * t.sum(axis=1, keepdims=True) - t)
    assert_allclose(grad, expected, **TOL[dtype])
    row_scale = sw * np.maximum(t.sum(axis=1), 1)
    assert (np.abs(grad.sum(axis=1)) <= 4 * logits.shape[1] * np.finfo(dtype).eps * row_scale).all()
    zero = sw == 0
    assert_array_equal(grad[zero], 0.0)
    kept = softmax_cross_entropy(logits[~zero], targets[~zero], sw[~zero])[0]
    assert_allclose(loss, kept, rtol=1e-13)


@pytest.mark.parametrize("dtype", FLOATS)
def test_sample_weight_is_a_target_scale(dtype):
    """Loss and gradient are linear in w_i t_i: weights w equal unweighted targets w[:, None] * t,
    and a scalar weight equals that weight on every row."""
    logits, _, soft, sw = make_batch(dtype)
    loss_w, grad_w = softmax_cross_entropy(logits, soft, sw)
    loss_t, grad_t = softmax_cross_entropy(logits, sw[:, None] * soft)
    assert_allclose(loss_w, loss_t, rtol=TOL[dtype]["rtol"])
    assert_allclose(grad_w, grad_t, **TOL[dtype])
    loss_s, grad_s = softmax_cross_entropy(logits, soft, 2.5)
    loss_a, grad_a = softmax_cross_entropy(logits, soft, np.full(len(logits), 2.5))
    assert loss_s == loss_a
    assert_array_equal(grad_s, grad_a)


def test_empty_batch():
    """Zero rows: empty outputs of the right shape and a loss of 0."""
    assert softmax(np.zeros((0, 3))).shape == (0, 3)
    for targets in (np.zeros(0, dtype=int), np.zeros((0, 3))):
        loss, grad = softmax_cross_entropy(np.zeros((0, 3)), targets)
        assert loss == 0.0
        assert grad.shape == (0, 3)


# ---------------------------------------------------------------------------
# Layouts, threads, dtypes
# ---------------------------------------------------------------------------


def in_layout(a, layout, path):
    """``a`` as a read-only array, a read-only memmap at ``path``, in Fortran order, or a strided view."""
    if layout == "readonly":
        a = a.copy()
        a.setflags(write=False)
        return a
    if layout == "memmap":
        np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)[...] = a
        return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)
    if layout == "fortran":
        return np.asfortranarray(a)
    big = np.zeros(tuple(2 * s + 1 for s in a.shape), dtype=a.dtype)
    view = big[tuple(slice(1, None, 2) for _ in a.shape)]
    view[...] = a
    return view


CALLS = {
    "softmax": lambda z, labels, soft, sw, **kw: (softmax(z, **kw),),
    "log_softmax": lambda z, labels, soft, sw, **kw: (log_softmax(z, **kw),),
    "ce_labels": lambda z, labels, soft, sw, **kw: softmax_cross_entropy(z, labels, sw, **kw),
    "ce_soft": lambda z, labels, soft, sw, **kw: softmax_cross_entropy(z, soft, sw, **kw),
}


def assert_same_results(got, expected):
    for g, e in zip(got, expected, strict=True):
        assert_array_equal(g, e)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["readonly", "memmap", "fortran", "strided"])
@pytest.mark.parametrize("call", list(CALLS))
def test_layouts_give_the_same_result(call, layout, dtype, tmp_path):
    """Read-only, memmapped, Fortran-ordered and strided inputs (every argument) give exactly the
    result of C-contiguous ones."""
    batch = make_batch(dtype)
    expected = CALLS[call](*batch)
    moved = [in_layout(a, layout, tmp_path / f"arg{i}.dat") for i, a in enumerate(batch)]
    assert_same_results(CALLS[call](*moved), expected)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("call", list(CALLS))
def test_result_does_not_depend_on_n_jobs(call, dtype):
    """n_jobs=1, 2, -1 and None give identical results: rows are independent and the loss is
    summed by NumPy, whatever the thread count."""
    batch = make_batch(dtype, n=1001, k=7)
    expected = CALLS[call](*batch, n_jobs=1)
    for n_jobs in (2, -1, None):
        assert_same_results(CALLS[call](*batch, n_jobs=n_jobs), expected)


@pytest.mark.parametrize(
    "in_dtype, out_dtype",
    [(np.float32, np.float32), (np.float64, np.float64), (np.int64, np.float64), (np.int8, np.float64),
     (np.bool_, np.float64), (np.float16, np.float64)],
)
@pytest.mark.parametrize("call", list(CALLS))
def test_output_dtype(call, in_dtype, out_dtype):
    """float32 logits stay float32, float64 stay float64, and anything else real becomes float64."""
    logits, labels, soft, sw = make_batch(np.float64)
    results = CALLS[call](logits.astype(in_dtype), labels, soft, sw)
    assert results[-1].dtype == out_dtype
    assert all(isinstance(r, float) for r in results[:-1])


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

CE = softmax_cross_entropy
Z = np.zeros((2, 3))
Y = np.array([0, 2])
T = np.ones((2, 3))
NAN_ROW = np.array([[0.0, np.nan, 1.0], [0.0, 0.0, 0.0]])
INF_ROW = np.array([[0.0, np.inf, 1.0], [0.0, 0.0, 0.0]])

BAD_INPUT = {  # id: (call, error, message)
    "softmax-nan": (lambda: softmax(NAN_ROW), ValueError, "logits must be finite"),
    "log_softmax-inf": (lambda: log_softmax(INF_ROW), ValueError, "logits must be finite"),
    "ce-minus-inf": (lambda: CE(-INF_ROW, Y), ValueError, "logits must be finite"),
    "ce-nan-targets": (lambda: CE(Z, NAN_ROW), ValueError, "targets must be finite"),
    "nan-weight": (lambda: CE(Z, Y, [1.0, np.nan]), ValueError, "sample_weight must be finite"),
    "softmax-3d": (lambda: softmax(np.zeros((2, 2, 2))), ValueError, "logits must be 1-D or 2-D"),
    "log_softmax-0d": (lambda: log_softmax(1.0), ValueError, "logits must be 1-D or 2-D"),
    "ce-1d": (lambda: CE(np.zeros(3), [0]), ValueError, "logits must be 2-D"),
    "targets-3d": (lambda: CE(Z, np.zeros((2, 3, 1))), ValueError, "1-D integer labels or a 2-D"),
    "targets-shape": (lambda: CE(Z, np.ones((2, 4))), ValueError, "do not match"),
    "labels-length": (lambda: CE(Z, [0, 1, 2]), ValueError, "3 labels, expected 2"),
    "negative-targets": (lambda: CE(Z, -T), ValueError, "targets must be non-negative"),
    "label-too-large": (lambda: CE(Z, [0, 3]), ValueError, r"labels must lie in \[0, 3\)"),
    "label-negative": (lambda: CE(Z, [-1, 0]), ValueError, r"labels must lie in \[0, 3\)"),
    "label-float": (lambda: CE(Z, [0.5, 1.0]), ValueError, "must be integers"),
    "label-nan": (lambda: CE(Z, [np.nan, 1.0]), ValueError, "must be integers"),
    "label-bool": (lambda: CE(Z, [True, False]), TypeError, "must be integers"),
    "label-str": (lambda: CE(Z, ["a", "b"]), TypeError, "must be integers"),
    "softmax-complex": (lambda: softmax(Z + 1j), TypeError, "logits must hold real numbers"),
    "softmax-str": (lambda: softmax(np.array(["1", "2"])), TypeError, "logits must hold real numbers"),
    "softmax-object-complex": (
        lambda: softmax(np.array([1, 2j], dtype=object)), TypeError, "logits must hold real numbers"
    ),
    "targets-complex": (lambda: CE(Z, T + 0j), TypeError, "targets must hold real numbers"),
    "weight-complex": (lambda: CE(Z, Y, [1 + 0j, 1]), TypeError, "sample_weight must hold real numbers"),
    "weight-negative": (lambda: CE(Z, Y, [1.0, -0.5]), ValueError, "sample_weight must be non-negative"),
    "weight-length": (lambda: CE(Z, Y, [1.0, 1.0, 1.0]), ValueError, "3 elements, expected 2"),
    "weight-2d": (lambda: CE(Z, Y, np.ones((2, 1))), ValueError, "sample_weight must be 1-D"),
    "softmax-k0": (lambda: softmax(np.zeros((3, 0))), ValueError, "at least one column"),
    "log_softmax-k0-1d": (lambda: log_softmax(np.zeros(0)), ValueError, "at least one column"),
    "ce-k0": (lambda: CE(np.zeros((2, 0)), [0, 0]), ValueError, "at least one column"),
    "softmax-n_jobs-0": (lambda: softmax(Z, n_jobs=0), ValueError, "n_jobs"),
    "ce-n_jobs-0": (lambda: CE(Z, Y, n_jobs=0), ValueError, "n_jobs"),
    "n_jobs-float": (lambda: log_softmax(Z, n_jobs=1.5), TypeError, "n_jobs"),
}


@pytest.mark.parametrize("call, error, match", list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_is_rejected(call, error, match):
    """Each bad argument raises ValueError or TypeError with a message that names the problem."""
    with pytest.raises(error, match=match):
        call()


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("argument", ["targets", "sample_weight"])
def test_float64_input_beyond_float32_range_is_a_clean_error(argument):
    """With float32 logits, finite float64 targets or weights beyond the float32 range are rejected
    with a ValueError that names the argument, not a numpy 'overflow encountered in cast' warning."""
    kwargs = {"targets": np.array([[1e39, 0.0], [0.0, 1.0]]), "sample_weight": None}
    if argument == "sample_weight":
        kwargs = {"targets": np.array([0, 1]), "sample_weight": np.array([1e39, 1.0])}
    with pytest.raises(ValueError, match=argument):
        softmax_cross_entropy(np.zeros((2, 2), dtype=np.float32), **kwargs)


def test_a_loss_beyond_float64_range_is_a_clean_error():
    """Targets summing to 31 on a row whose logits span 1.8e307: the exact loss is about
    4.6e308, beyond float64's range. A ValueError says so (Hypothesis drew this row)."""
    z = np.array([[-745.0, -49.0, 48.7215094, -49.0, 1.79769313e307, 0.0, -49.0]])
    t = np.array([[1.27180225, 6.00994861, 6.62633488, 4.12352554, 5.35058696, 5.62957445,
                   1.99917748]])
    with pytest.raises(ValueError, match="beyond the range of float64"):
        softmax_cross_entropy(z, t)
    loss, _ = softmax_cross_entropy(z, t, sample_weight=np.array([0.1]))  # 4.6e307: in range
    # every class but the top one contributes t_j (lse - z_j) = t_j z_top, up to 1e-300 relative
    assert loss == pytest.approx(0.1 * (t.sum() - t[0, 4]) * z[0, 4], rel=1e-12)
