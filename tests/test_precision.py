"""Precision of the kernels against a 50-digit mpmath reference: Hypothesis properties, both dtypes.

Every output ``yhat`` is compared with its exact value ``y``, computed by mpmath at 50
digits from the inputs as given (they are exactly representable), in a mixed
forward/backward error measured in ulps of the dtype (float32 or float64)::

    err = |yhat - y| / (ulp(y) + eps * S)

``ulp(y)`` is ``np.spacing`` of ``y`` rounded to the dtype (the smallest subnormal for
``y = 0``), ``eps`` is the dtype's machine epsilon and ``S = sum_i |dy/dx_i| |x_i|`` is
the condition term: the change of ``y`` when every input ``x_i`` moves by one relative
``eps``. An error of a few ulps means the result is as good as rounding each output once
after perturbing each input by a few ulps. Each test states its ``S``. Where an
exponential ``exp(z_j - max(z))`` is subnormal, it carries an absolute error of up to the
dtype's smallest subnormal ``eta`` (gradual underflow); an output that multiplies it by
``m`` (a weight, a target sum, a feature; for a loss, ``k`` such exponentials) allows
``eta * m`` more, the underflow term of
the standard error bounds (Higham, "Accuracy and Stability of Numerical Algorithms",
2nd ed., section 2.1). Every entry must
have ``err <= ULP_LIMIT`` (8), in both dtypes.

The largest error seen for each (function, dtype), with the number of examples checked,
is printed at the end of the session (and written to the file named by the environment
variable ``SOFTMAXREG_PRECISION_REPORT``, if set). A Hypothesis test stops at its first
failing example (reported as found, without shrinking), so the maxima of a failing test
cover only the examples run until then; the "> limit" column counts the examples over
the limit.

The examples are the same on every run of the same command (``derandomize``, no
database). Hypothesis also mixes in constants found in the local modules loaded at the
time, so this file run alone and the whole suite may draw different examples.
"""

import math
import os
from dataclasses import dataclass

import mpmath
import numpy as np
import pytest
from hypothesis import (
    HealthCheck, Phase, assume, currently_in_test_context, event, given, settings, target,
)
from hypothesis import strategies as st

from softmaxreg import _dispatch, log_softmax, softmax, softmax_cross_entropy
from softmaxreg._dispatch import linear_kernels

FLOATS = [np.float32, np.float64]
ULP_LIMIT = 8.0
DIGITS = 50
# exp(z_i - max(z)) is taken as 0 below this: far under any subnormal, and it keeps
# mpmath away from numbers like exp(-1e300).
EXP_CUTOFF = -100_000

# derandomize: the same examples on every run (CI is reproducible); no example database.
# No shrinking: a failing example is reported as found (the message names the worst entry
# and its inputs), as shrinking the large examples here can take minutes per test.
PROPERTY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.target],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# ---------------------------------------------------------------------------
# The report: the largest error per (function, dtype)
# ---------------------------------------------------------------------------


@dataclass
class Record:
    max_err: float = 0.0
    examples: int = 0
    over_limit: int = 0
    worst: str = ""


#: (function, dtype name) -> Record, filled by every test of this module.
MAX_ERR: dict[tuple[str, str], Record] = {}


def report_lines():
    """The max-error table, one line per (function, dtype)."""
    linear = {linear_kernels(k).__name__.rsplit(".", 1)[-1] for k in (1, 100)}
    lines = [
        f"softmaxreg precision: mixed forward/backward error in ulps, limit {ULP_LIMIT:g} "
        f"(row kernels: {_dispatch.kernels.__name__.rsplit('.', 1)[-1]}; "
        f"linear kernels: {', '.join(sorted(linear))})",
        f"{'function':<40} {'dtype':<8} {'max err (ulps)':>14} {'examples':>9} {'> limit':>8}",
    ]
    for (function, dtype), rec in sorted(MAX_ERR.items()):
        lines.append(
            f"{function:<40} {dtype:<8} {rec.max_err:>14.3g} {rec.examples:>9} {rec.over_limit:>8}"
        )
    worst = [
        f"  {function} [{dtype}]: {rec.worst}"
        for (function, dtype), rec in sorted(MAX_ERR.items())
        if rec.max_err > ULP_LIMIT
    ]
    lines.append(
        "examples: checks of that output (a failing Hypothesis test stops at its first "
        "failing example); > limit: those over the limit"
    )
    if worst:
        lines += ["worst examples over the limit:", *worst]
    return lines


class _ReportPlugin:
    """Prints the table in pytest's terminal summary (a test module cannot define the hook
    itself; the fixture below registers this object as a plugin)."""

    def pytest_terminal_summary(self, terminalreporter):
        if MAX_ERR:
            terminalreporter.write_sep("-", "precision report (tests/test_precision.py)")
            for line in report_lines():
                terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def precision_report(pytestconfig):
    """Print the max-error table at the end of the session; also write it to
    $SOFTMAXREG_PRECISION_REPORT if that is set."""
    manager = pytestconfig.pluginmanager
    if not manager.has_plugin("softmaxreg-precision-report"):
        manager.register(_ReportPlugin(), "softmaxreg-precision-report")
    yield
    path = os.environ.get("SOFTMAXREG_PRECISION_REPORT")
    if path and MAX_ERR:
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(report_lines()) + "\n")


# ---------------------------------------------------------------------------
# Measuring the error
# ---------------------------------------------------------------------------


def underflow(dtype):
    """eta: the smallest subnormal of ``dtype``, the absolute error of a subnormal result."""
    return float(np.finfo(dtype).smallest_subnormal)


def mpf_list(values):
    return [mpmath.mpf(float(v)) for v in np.ravel(values)]


def to_float(values):
    return np.array([float(v) for v in values], dtype=np.float64)


def assume_representable(exact, dtype):
    """Skip the example unless every exact value is finite in ``dtype`` (outside Hypothesis:
    require it)."""
    representable = bool(np.all(np.abs(to_float(exact)) <= np.finfo(dtype).max))
    if currently_in_test_context():
        assume(representable)
    else:
        assert representable, "an exact value is beyond the dtype's range"


def ulp_errors(computed, exact, allowance, dtype):
    """``|computed - exact| / (ulp(exact) + allowance)`` entry by entry, as float64.

    ``computed`` holds values of the dtype, ``exact`` mpf values, ``allowance`` is
    ``eps * S``. NaN (a NaN result) counts as an infinite error.
    """
    computed = np.ravel(computed)
    with mpmath.workdps(DIGITS):
        diff = np.array(
            [float(abs(mpmath.mpf(float(c)) - y)) for c, y in zip(computed, exact, strict=True)]
        )
    y = to_float(exact)
    with np.errstate(over="ignore", invalid="ignore"):
        ulp = np.spacing(np.abs(y.astype(dtype))).astype(np.float64)
        err = diff / (ulp + np.ravel(allowance))
    return np.where(np.isnan(err), np.inf, err)


def measure(function, dtype, computed, exact, allowance, describe):
    """Errors of one output of one example, recorded in MAX_ERR; returns a message if
    the largest is over the limit. ``describe(j)`` describes the inputs of entry j."""
    errors = ulp_errors(computed, exact, allowance, dtype)
    j = int(np.argmax(errors))
    worst = float(errors[j])
    rec = MAX_ERR.setdefault((function, np.dtype(dtype).name), Record())
    rec.examples += 1
    detail = None
    if worst > ULP_LIMIT or worst >= rec.max_err:
        subnormal = abs(exact[j]) < np.finfo(dtype).smallest_normal
        detail = (
            f"{worst:.3g} ulps at flat index {j}: got {float(np.ravel(computed)[j])!r}, "
            f"exact {mpmath.nstr(exact[j], 17)}{' (subnormal)' if subnormal else ''}, "
            f"eps*S = {float(np.ravel(allowance)[j]):.3g}; {describe(j)}"
        )
    if worst >= rec.max_err:
        rec.max_err, rec.worst = worst, detail
    message = None
    if worst > ULP_LIMIT:
        rec.over_limit += 1
        message = f"{function} [{np.dtype(dtype).name}]: {detail}"
    if currently_in_test_context():
        # Hypothesis' targeted phase then looks for examples with larger errors.
        target(min(worst, 1e300), label=function)
    return message


def assert_within_limit(*messages):
    failures = [m for m in messages if m]
    assert not failures, "\n".join(failures)


def short(a, n=8):
    """A compact repr of an array: its shape, dtype and first ``n`` values."""
    a = np.asarray(a)
    head = ", ".join(repr(float(v)) for v in a.ravel()[:n])
    more = ", ..." if a.size > n else ""
    return f"{a.dtype}{list(a.shape)} [{head}{more}]"


def sum_of_others(a):
    """``sum_{i != j} a_i`` for every j, for non-negative ``a``: a prefix plus a suffix
    sum, free of the cancellation of ``sum(a) - a_j``."""
    a = np.asarray(a, dtype=np.float64)
    before = np.concatenate([[0.0], np.cumsum(a)[:-1]])
    after = np.concatenate([np.cumsum(a[::-1])[::-1][1:], [0.0]])
    return before + after


class RowReference:
    """Exact softmax quantities of one row of logits ``z`` (a list of mpf), at 50 digits.

    With ``m = max(z)`` (first at index ``top``), ``e_i = exp(z_i - m)`` and ``r`` the sum
    of the ``e_i`` other than ``e_top = 1``: ``logsumexp(z) = m + log1p(r)``, so that no
    digit of a tiny ``r`` is lost; ``1 - p_i`` is ``r / s`` for ``top`` and
    ``(s - e_i) / s >= 1 / s`` otherwise (``s = 1 + r``), free of cancellation.
    """

    def __init__(self, z):
        with mpmath.workdps(DIGITS):
            self.z = list(z)
            k = len(self.z)
            self.top = max(range(k), key=self.z.__getitem__)
            self.m = self.z[self.top]
            shifted = [v - self.m for v in self.z]
            self.e = [mpmath.exp(t) if t > EXP_CUTOFF else mpmath.mpf(0) for t in shifted]
            rest = mpmath.fsum(self.e[i] for i in range(k) if i != self.top)
            self.log1p_rest = mpmath.log1p(rest)
            s = 1 + rest
            self.p = [e / s for e in self.e]
            self.one_minus_p = [
                (rest if i == self.top else s - self.e[i]) / s for i in range(k)
            ]
            self.log_p = [t - self.log1p_rest for t in shifted]
        # float64 copies for the condition terms, which need only a few correct digits
        self.p_f = to_float(self.p)
        self.q_f = to_float(self.one_minus_p)

    def lse_minus(self, j):
        """``logsumexp(z) - z_j = (m - z_j) + log1p(r)``: two non-negative terms."""
        with mpmath.workdps(DIGITS):
            return (self.m - self.z[j]) + self.log1p_rest

    def softmax_condition(self, magnitude):
        """``S_j = p_j (M_j (1 - p_j) + sum_{i != j} p_i M_i)`` for input magnitudes ``M``:
        the condition term of ``p_j`` (``M = eps |z|`` gives ``eps * S`` directly)."""
        return self.p_f * (magnitude * self.q_f + sum_of_others(self.p_f * magnitude))


def eps_abs(z, dtype):
    """``eps * |z|`` in float64: each input's relative perturbation, without overflow."""
    return float(np.finfo(dtype).eps) * np.abs(np.asarray(z, dtype=np.float64))


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------


def special_values(dtype):
    """Logits that stress a softmax, as values of ``dtype``."""
    info = np.finfo(dtype)
    big = float(info.max) / 10
    values = [
        0.0, -0.0, 1.0, -1.0, 0.5, 3.0, -40.0, 40.0, 1e-30, -1e-30, 88.0, -88.0, -104.0,
        700.0, -700.0, -745.0, 1e4, -1e4, 1e30, -1e30, big, -big,
        float(info.smallest_normal), float(info.smallest_subnormal),
    ]
    return sorted({float(np.asarray(v, dtype=dtype)) for v in values}, key=abs)


SCALES = [1.0, 1e-30, 1e-3, 0.1, 5.0, 40.0, 1e3, 1e30]
LOGIT_KINDS = ["normal", "normal", "spread", "ties", "equal"]
LAYOUTS = ["C", "F", "strided", "reversed"]


CLASS_RANGES = {"1-8": (1, 8), "9-64": (9, 64), "65-300": (65, 300), "1000": (1000, 1000)}


def class_counts():
    """Number of classes: 1 to 8 in 40% of the examples, 9 to 64 in 30%, 65 to 300 in 25%,
    and 1000 in 5% (errors must not grow with k)."""
    buckets = ["1-8"] * 8 + ["9-64"] * 6 + ["65-300"] * 5 + ["1000"]
    return st.sampled_from(buckets).flatmap(lambda b: st.integers(*CLASS_RANGES[b]))


@st.composite
def logit_batches(draw, dtype, max_rows=4):
    """An (n, k) batch of logits of ``dtype``, |z| <= max/10: normal around a special
    value at a scale from 1e-30 to 1e30, signed magnitudes spread over the whole exponent
    range (huge and tiny in one row), a few values repeated (ties), or rows all equal;
    then up to four entries overwritten with special values."""
    k = draw(class_counts())
    n = draw(st.integers(1, max_rows if k <= 300 else 1))
    specials = special_values(dtype)
    big = float(np.finfo(dtype).max) / 10
    kind = draw(st.sampled_from(LOGIT_KINDS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "normal":
        loc = draw(st.sampled_from(specials))
        z = loc + draw(st.sampled_from(SCALES)) * rng.standard_normal((n, k))
    elif kind == "spread":
        lo = np.log10(float(np.finfo(dtype).smallest_subnormal))
        z = rng.choice([-1.0, 1.0], (n, k)) * 10.0 ** rng.uniform(lo, np.log10(big), (n, k))
    elif kind == "ties":
        values = draw(
            st.lists(st.sampled_from(specials) | st.floats(-50, 50), min_size=1, max_size=3)
        )
        z = rng.choice(values, (n, k))
    else:
        z = np.full((n, k), draw(st.sampled_from(specials)))
    event(f"logits: {kind}, k {next(b for b, (lo, hi) in CLASS_RANGES.items() if k <= hi)}")
    cells = st.tuples(st.integers(0, n - 1), st.integers(0, k - 1), st.sampled_from(specials))
    for r, c, v in draw(st.lists(cells, max_size=4)):
        z[r, c] = v
    return np.clip(z, -big, big).astype(dtype)


def with_layout(a, layout):
    """The same values as ``a`` in another memory layout: Fortran order, a strided view
    into a larger array, or a view with negative strides."""
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        host = np.zeros((2 * a.shape[0], 3 * a.shape[1]), dtype=a.dtype)
        host[::2, 1::3] = a
        return host[::2, 1::3]
    if layout == "reversed":
        return np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
    return a


@st.composite
def sample_weights(draw, n, dtype, allow_none=True):
    """None (unit weights) or positive weights of ``dtype``, log-uniform over a drawn
    range between 1e-6 and 1e6."""
    if allow_none and draw(st.booleans()):
        return None
    lo = draw(st.integers(-6, 6))
    hi = draw(st.integers(lo, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return (10.0 ** rng.uniform(lo, hi, n)).astype(dtype)


@st.composite
def labels_for(draw, z):
    """One label per row: random, the row's (first) argmax (p_y near 1: the loss and
    gradient are tiny) or its argmin."""
    mode = draw(st.sampled_from(["random", "argmax", "argmin"]))
    if mode == "argmax":
        return np.argmax(z, axis=1)
    if mode == "argmin":
        return np.argmin(z, axis=1)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.integers(0, z.shape[1], z.shape[0])


@st.composite
def soft_targets_for(draw, z, dtype):
    """Non-negative targets, not summing to 1: random with a share of zeros, a multiple of
    the one-hot of the argmax, or a multiple of softmax(z) itself (the gradient is then
    nearly zero: cancellation); row totals from about 1e-3 to 1e3."""
    n, k = z.shape
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1.0, 1e-3, 0.3, 7.0, 1e3]))
    mode = draw(st.sampled_from(["random", "onehot_argmax", "proportional"]))
    if mode == "random":
        t = rng.uniform(0, 1, (n, k))
        t[t < draw(st.sampled_from([0.0, 0.5, 0.9]))] = 0
    elif mode == "onehot_argmax":
        t = np.zeros((n, k))
        t[np.arange(n), np.argmax(z, axis=1)] = 1
    else:
        zz = z.astype(np.float64)
        t = np.exp(zz - zz.max(axis=1, keepdims=True))
        t /= t.sum(axis=1, keepdims=True)
    t *= scale
    if n > 1 and draw(st.booleans()):
        t[0] = 0  # a row without targets
    return t.astype(dtype)


def fit_weights(sample_weight, z, row_total=1.0):
    """Scale the weights down so that the weighted loss stays well inside the dtype's range:
    a row's loss is at most ``row_total (2 max|z| + log k)``, ``row_total`` its targets' sum."""
    if sample_weight is None:
        return sample_weight
    dtype = z.dtype
    per_unit = 2 * float(np.max(np.abs(z), initial=0)) + math.log(z.shape[1])
    # Divisions only: no overflow, whatever the magnitudes.
    factor = float(np.finfo(dtype).max) / 16 / float(np.sum(sample_weight, dtype=np.float64))
    factor = factor / max(row_total, 1e-300) / max(per_unit, 1e-300)
    if factor >= 1:
        return sample_weight
    return (sample_weight.astype(np.float64) * factor).astype(dtype)


# ---------------------------------------------------------------------------
# softmax and log_softmax
# ---------------------------------------------------------------------------


def row_of(z):
    """``describe`` for row-wise outputs: the row of logits of flat entry j."""
    def describe(j):
        i = j // z.shape[1]
        return f"z[{i}] = {short(z[i])}"
    return describe


def inputs(**arrays):
    """``describe`` for a whole batch: each input, None or an array, in short."""
    def describe(j):
        return ", ".join(
            f"{name} = {None if a is None else short(a)}" for name, a in arrays.items()
        )
    return describe


def check_softmax(z, computed):
    """The message for the entries of ``softmax(z)`` over the limit; S as in the test."""
    dtype = z.dtype
    exact, allowance = [], []
    for row in z:
        ref = RowReference(mpf_list(row))
        exact += ref.p
        allowance.append(ref.softmax_condition(eps_abs(row, dtype)))
    return measure("softmax", dtype, computed, exact, np.concatenate(allowance), row_of(z))


def check_log_softmax(z, computed):
    """The message for the entries of ``log_softmax(z)`` over the limit; S as in the test."""
    dtype = z.dtype
    exact, allowance = [], []
    for row in z:
        ref = RowReference(mpf_list(row))
        exact += ref.log_p
        a = eps_abs(row, dtype)
        allowance.append(a * ref.q_f + sum_of_others(ref.p_f * a))
    return measure("log_softmax", dtype, computed, exact, np.concatenate(allowance), row_of(z))


@pytest.mark.parametrize("dtype", FLOATS)
@settings(PROPERTY, max_examples=200)
@given(data=st.data())
def test_softmax_is_accurate(dtype, data):
    """softmax(z)_j, for any finite logits and any layout, is within 8 ulps in the mixed
    measure, with S_j = p_j (|z_j| (1 - p_j) + sum_{i != j} p_i |z_i|) (dp_j/dz_i =
    p_j (delta_ij - p_i)). A single row is also passed as a 1-D array."""
    z = data.draw(logit_batches(dtype), label="logits")
    layout = data.draw(st.sampled_from(LAYOUTS + ["1-D"] if len(z) == 1 else LAYOUTS))
    n_jobs = data.draw(st.sampled_from([1, 2]))
    arg = z[0] if layout == "1-D" else with_layout(z, layout)
    out = softmax(arg, n_jobs=n_jobs)
    assert out.dtype == dtype and out.shape == arg.shape
    assert_within_limit(check_softmax(z, out.reshape(z.shape)))


@pytest.mark.parametrize("dtype", FLOATS)
@settings(PROPERTY, max_examples=200)
@given(data=st.data())
def test_log_softmax_is_accurate(dtype, data):
    """log_softmax(z)_j = z_j - logsumexp(z), for any finite logits and any layout, is
    within 8 ulps in the mixed measure, with S_j = |z_j| (1 - p_j) + sum_{i != j} p_i |z_i|
    (d/dz_i = delta_ij - p_i)."""
    z = data.draw(logit_batches(dtype), label="logits")
    layout = data.draw(st.sampled_from(LAYOUTS + ["1-D"] if len(z) == 1 else LAYOUTS))
    n_jobs = data.draw(st.sampled_from([1, 2]))
    arg = z[0] if layout == "1-D" else with_layout(z, layout)
    out = log_softmax(arg, n_jobs=n_jobs)
    assert out.dtype == dtype and out.shape == arg.shape
    assert_within_limit(check_log_softmax(z, out.reshape(z.shape)))


# ---------------------------------------------------------------------------
# softmax_cross_entropy
# ---------------------------------------------------------------------------


def check_cross_entropy_labels(z, labels, sample_weight, loss, grad):
    """Messages for the loss and the gradient entries over the limit; S as in the test."""
    dtype = z.dtype
    n = len(z)
    w = np.ones(n) if sample_weight is None else sample_weight.astype(np.float64)
    exact_grad, grad_allowance, row_losses = [], [], []
    loss_condition = 0.0
    with mpmath.workdps(DIGITS):
        for i, row in enumerate(z):
            ref = RowReference(mpf_list(row))
            y, wi = int(labels[i]), mpmath.mpf(float(w[i]))
            g = [wi * p for p in ref.p]
            g[y] = -wi * ref.one_minus_p[y]
            exact_grad += g
            row_losses.append(wi * ref.lse_minus(y))
            a = eps_abs(row, dtype)
            grad_allowance.append(w[i] * (ref.softmax_condition(a) + underflow(dtype)))
            dE = ref.p_f.copy()
            dE[y] = ref.q_f[y]
            # Each of the k exponentials may underflow by up to eta.
            loss_condition += w[i] * (float(np.sum(dE * a)) + underflow(dtype) * len(row))
        total = mpmath.fsum(row_losses)
    assume_representable([total], dtype)
    loss_allowance = loss_condition + float(np.finfo(dtype).eps) * n * float(total)
    describe = inputs(z=z, labels=labels, sample_weight=sample_weight)
    return [
        measure("cross_entropy[labels] loss", dtype, [loss], [total], [loss_allowance], describe),
        measure("cross_entropy[labels] grad", dtype, grad, exact_grad,
                np.concatenate(grad_allowance), describe),
    ]


def target_sums(ts):
    """``T = sum(t)`` and ``T - t_j`` for every j, at 50 digits: ``T - t_j`` is the sum of
    the other targets for the largest target, and ``T - t_j >= max(t)`` otherwise, so that a
    target much smaller than ``T`` is not lost in the rounding of ``T``."""
    with mpmath.workdps(DIGITS):
        T = mpmath.fsum(ts)
        big = max(range(len(ts)), key=ts.__getitem__)
        rest = mpmath.fsum(tj for j, tj in enumerate(ts) if j != big)
        return T, [rest if j == big else T - tj for j, tj in enumerate(ts)]


def check_cross_entropy_targets(z, t, sample_weight, loss, grad):
    """Messages for the loss and the gradient entries over the limit; S as in the test."""
    dtype = z.dtype
    eps = float(np.finfo(dtype).eps)
    n = len(z)
    w = np.ones(n) if sample_weight is None else sample_weight.astype(np.float64)
    exact_grad, grad_allowance, row_losses = [], [], []
    loss_condition = 0.0
    with mpmath.workdps(DIGITS):
        for i, row in enumerate(z):
            ref = RowReference(mpf_list(row))
            ts = mpf_list(t[i])
            T, T_minus = target_sums(ts)
            wi = mpmath.mpf(float(w[i]))
            # d E / d z_j = T p_j - t_j = p_j (T - t_j) - t_j (1 - p_j): two terms, in 50 digits
            dE = [p * tm - tj * q for p, tm, tj, q in zip(ref.p, T_minus, ts, ref.one_minus_p)]
            exact_grad += [wi * v for v in dE]
            row_loss = mpmath.fsum(tj * ref.lse_minus(j) for j, tj in enumerate(ts) if tj)
            row_losses.append(wi * row_loss)
            a = eps_abs(row, dtype)
            perturbed_targets = to_float(
                p * tm + tj * q for p, tm, tj, q in zip(ref.p, T_minus, ts, ref.one_minus_p)
            )
            grad_allowance.append(
                w[i] * (float(T) * ref.softmax_condition(a) + eps * perturbed_targets
                        + underflow(dtype) * max(float(T), 1.0))
            )
            loss_condition += w[i] * (
                float(np.sum(np.abs(to_float(dE)) * a)) + eps * float(row_loss)
                + underflow(dtype) * len(row) * float(T)
            )
        total = mpmath.fsum(row_losses)
    assume_representable([total], dtype)
    assume_representable(exact_grad, dtype)
    loss_allowance = loss_condition + eps * n * float(total)
    describe = inputs(z=z, targets=t, sample_weight=sample_weight)
    return [
        measure("cross_entropy[targets] loss", dtype, [loss], [total], [loss_allowance], describe),
        measure("cross_entropy[targets] grad", dtype, grad, exact_grad,
                np.concatenate(grad_allowance), describe),
    ]


@pytest.mark.parametrize("dtype", FLOATS)
@settings(PROPERTY, max_examples=200)
@given(data=st.data())
def test_cross_entropy_with_labels_is_accurate(dtype, data):
    """Loss and gradient for integer labels (random, each row's argmax or argmin), with or
    without positive weights, logits in any layout, are within 8 ulps in the mixed measure.

    Row loss E = w (logsumexp(z) - z_y), dE/dz_i = w (p_i - delta_iy): S = w sum_i
    |p_i - delta_iy| |z_i|, summed over rows; the returned total also allows for the
    summation over rows: ulp(E_total) + eps (S_total + n_rows E_total).
    Gradient g_j = w (p_j - delta_jy): S = w p_j (|z_j| (1 - p_j) + sum_{i != j} p_i |z_i|),
    for j = y too (g_y = -w (1 - p_y), 1 - p_y = sum_{i != y} p_i)."""
    z = data.draw(logit_batches(dtype), label="logits")
    labels = data.draw(labels_for(z), label="labels")
    sample_weight = data.draw(sample_weights(len(z), dtype), label="sample_weight")
    sample_weight = fit_weights(sample_weight, z)
    layout = data.draw(st.sampled_from(LAYOUTS))
    label_dtype = data.draw(st.sampled_from([np.intp, np.int32]))
    n_jobs = data.draw(st.sampled_from([1, 2]))
    loss, grad = softmax_cross_entropy(
        with_layout(z, layout), labels.astype(label_dtype), sample_weight, n_jobs=n_jobs
    )
    assert isinstance(loss, float) and grad.dtype == dtype
    assert_within_limit(*check_cross_entropy_labels(z, labels, sample_weight, loss, grad))


@pytest.mark.parametrize("dtype", FLOATS)
@settings(PROPERTY, max_examples=200)
@given(data=st.data())
def test_cross_entropy_with_soft_targets_is_accurate(dtype, data):
    """Loss and gradient for non-negative soft targets that need not sum to 1 (with zeros,
    rows of zeros, a multiple of one-hot, a multiple of softmax(z)), with or without
    positive weights, logits and targets in any layout, are within 8 ulps in the mixed
    measure. With T = sum(t):

    Gradient g_j = w (p_j T - t_j) = w (p_j (T - t_j) - t_j (1 - p_j)):
    S = w T p_j (|z_j| (1 - p_j) + sum_{i != j} p_i |z_i|) + w (p_j (T - t_j) + t_j (1 - p_j)),
    the last term from perturbing the targets.
    Row loss E = w sum_j t_j (logsumexp(z) - z_j): S = w (sum_i |T p_i - t_i| |z_i| +
    sum_j t_j (logsumexp(z) - z_j)), summed over rows, plus n_rows E_total for the sum."""
    z = data.draw(logit_batches(dtype), label="logits")
    t = data.draw(soft_targets_for(z, dtype), label="targets")
    sample_weight = data.draw(sample_weights(len(z), dtype), label="sample_weight")
    row_total = float(np.max(t.astype(np.float64).sum(axis=1), initial=0))
    sample_weight = fit_weights(sample_weight, z, row_total)
    if sample_weight is None:
        # Unit weights cannot be scaled down: a loss that may lie beyond the dtype's range
        # (huge logits with targets summing to more than 1) is not an accuracy question
        # (softmax_cross_entropy raises a ValueError there, tested elsewhere).
        per_unit = 2 * float(np.max(np.abs(z), initial=0)) + math.log(z.shape[1])
        assume(len(z) * row_total * per_unit < float(np.finfo(dtype).max) / 16)
    layout = data.draw(st.sampled_from(LAYOUTS))
    targets_layout = data.draw(st.sampled_from(LAYOUTS))
    n_jobs = data.draw(st.sampled_from([1, 2]))
    loss, grad = softmax_cross_entropy(
        with_layout(z, layout), with_layout(t, targets_layout), sample_weight, n_jobs=n_jobs
    )
    assert isinstance(loss, float) and grad.dtype == dtype
    assert_within_limit(*check_cross_entropy_targets(z, t, sample_weight, loss, grad))


# ---------------------------------------------------------------------------
# Fixed examples, with their right values
# ---------------------------------------------------------------------------

# log1p(exp(-40)) = 4.2483542552915889e-18: the loss of the row [0, -40] for class 0.
TINY_LOSS = 4.2483542552915889e-18


def assert_ulps(got, expected, dtype, ulps=4):
    """``got`` within ``ulps`` units in the last place of ``expected`` (rounded to dtype)."""
    expected = np.asarray(expected, dtype=dtype)
    got = np.asarray(got)
    spacing = np.spacing(np.abs(expected)).astype(np.float64)
    off = np.abs(got.astype(np.float64) - expected.astype(np.float64)) / spacing
    assert np.all(off <= ulps), f"got {got!r}, expected {expected!r}: {off} ulps off"


@pytest.mark.parametrize("dtype", FLOATS)
def test_log_softmax_keeps_the_log1p_of_a_tiny_sum(dtype):
    """log_softmax([[0, -40]])[0, 0] = -log1p(exp(-40)) = -4.248354255291589e-18, to 4 ulps:
    log(1 + 4e-18) must not round to log(1) = 0."""
    z = np.array([[0.0, -40.0]], dtype=dtype)
    out = log_softmax(z)
    message = check_log_softmax(z, out)
    assert_ulps(out[0, 0], -4.248354255291589e-18, dtype)
    assert_within_limit(message)


@pytest.mark.parametrize("dtype", FLOATS)
def test_label_loss_keeps_the_log1p_of_a_tiny_sum(dtype):
    """softmax_cross_entropy([[0, -40]], [0]) has loss log1p(exp(-40)) =
    4.2483542552915889e-18 (to 4 ulps), not 0, and gradient [-4.2483542552915889e-18,
    4.2483542552915889e-18]."""
    z = np.array([[0.0, -40.0]], dtype=dtype)
    labels = np.array([0])
    loss, grad = softmax_cross_entropy(z, labels)
    messages = check_cross_entropy_labels(z, labels, None, loss, grad)
    assert_ulps(loss, TINY_LOSS, dtype)
    assert_ulps(grad, [[-TINY_LOSS, TINY_LOSS]], dtype)
    assert_within_limit(*messages)


@pytest.mark.parametrize("dtype", FLOATS)
def test_soft_target_gradient_is_free_of_cancellation(dtype):
    """softmax_cross_entropy([[0, -40]], [[1, 0]]) has gradient [[-4.248354255291589e-18,
    4.248354255291589e-18]] (p_0 - 1 computed without cancellation, not as 1 - 1 = 0) and
    loss 4.2483542552915889e-18, each to 4 ulps."""
    z = np.array([[0.0, -40.0]], dtype=dtype)
    t = np.array([[1.0, 0.0]], dtype=dtype)
    loss, grad = softmax_cross_entropy(z, t)
    messages = check_cross_entropy_targets(z, t, None, loss, grad)
    assert_ulps(grad, [[-4.248354255291589e-18, 4.248354255291589e-18]], dtype)
    assert_ulps(loss, TINY_LOSS, dtype)
    assert_within_limit(*messages)


@pytest.mark.parametrize("dtype", FLOATS)
def test_soft_target_gradient_keeps_a_target_below_the_rounding_of_their_sum(dtype):
    """softmax_cross_entropy([[0, 40]], [[2**-56, 1]]): the second gradient entry is
    p_1 (T - t_1) - t_1 (1 - p_1) = 2**-56 p_1 - exp(-40) / (1 + exp(-40)) =
    9.629433552522868e-18, where T - t_1 = 2**-56 is below the rounding of T = 1 + 2**-56
    (a sum of the targets that rounds T, even with a compensation that is then lost, gives
    -4.25e-18); the first entry is its negative; the loss is 5.593598665678698e-16. Each
    to 4 ulps."""
    z = np.array([[0.0, 40.0]], dtype=dtype)
    t = np.array([[2.0**-56, 1.0]], dtype=dtype)
    loss, grad = softmax_cross_entropy(z, t)
    messages = check_cross_entropy_targets(z, t, None, loss, grad)
    assert_ulps(grad, [[-9.629433552522868e-18, 9.629433552522868e-18]], dtype)
    assert_ulps(loss, 5.593598665678698e-16, dtype)
    assert_within_limit(*messages)


# ---------------------------------------------------------------------------
# The fused linear kernels
# ---------------------------------------------------------------------------


@dataclass
class LinearProblem:
    X: np.ndarray
    labels: np.ndarray
    sample_weight: np.ndarray  # empty: unit weights
    coef_t: np.ndarray
    intercept: np.ndarray
    n_threads: int

    def __repr__(self):
        sw = short(self.sample_weight) if self.sample_weight.size else "unit"
        return (
            f"LinearProblem(X={short(self.X)}, labels={short(self.labels)}, sample_weight={sw}, "
            f"coef_t={short(self.coef_t)}, intercept={short(self.intercept)}, "
            f"n_threads={self.n_threads})"
        )


@st.composite
def linear_problems(draw, dtype):
    """X (n, d), labels, weights, coef_t (d, k) and intercept of ``dtype``: k from 1 to 70
    (every tile width, and both sides of the AVX-512 threshold of 32 classes), d from 1 to
    12, n from 1 to 20 rows, now and then 265 to 560 (several blocks of rows); X and
    coef_t at scales that give logits from about 1e-6 to 1e5, some entries of X zero, an
    intercept around a special value; labels random, argmax (tiny loss) or argmin."""
    many_rows = draw(st.integers(0, 9)) == 9
    if many_rows:
        n, k, d = draw(st.integers(265, 560)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    else:
        n = draw(st.integers(1, 20))
        k = draw(st.integers(1, 8) | st.integers(9, 70))
        d = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = draw(st.sampled_from([1.0, 1e-3, 30.0])) * rng.standard_normal((n, d))
    X[rng.uniform(size=(n, d)) < draw(st.sampled_from([0.0, 0.3]))] = 0
    coef_t = draw(st.sampled_from([1.0, 1e-2, 10.0, 100.0])) * rng.standard_normal((d, k))
    intercept = draw(st.sampled_from([0.0, -40.0, 40.0, 700.0, -1e4, 1e-30])) + draw(
        st.sampled_from([0.0, 1.0, 30.0])
    ) * rng.standard_normal(k)
    X, coef_t, intercept = (a.astype(dtype) for a in (X, coef_t, intercept))
    z = X.astype(np.float64) @ coef_t.astype(np.float64) + intercept
    labels = np.asarray(draw(labels_for(z)), dtype=np.intp)
    sample_weight = draw(sample_weights(n, dtype))
    if sample_weight is None:
        sample_weight = np.empty(0, dtype=dtype)
    n_threads = draw(st.sampled_from([1, 2]))
    return LinearProblem(X, labels, sample_weight, coef_t, intercept, n_threads)


def exact_logits(X, W, b):
    """``X @ W + b`` at 50 digits, as (n, k) nested lists of mpf."""
    with mpmath.workdps(DIGITS):
        Xm = [mpf_list(row) for row in X]
        Wt = [mpf_list(col) for col in np.asarray(W).T]
        bm = mpf_list(b)
        return [[mpmath.fdot(x, w) + bc for w, bc in zip(Wt, bm)] for x in Xm]


def logit_condition(X, W, b, dtype):
    """``eps (d + 1) (sum_j |x_rj W_jc| + |b_c|)``: how far a logit computed in floating
    point (d products and d + 1 sums) may be from the exact one, in the mixed measure."""
    X, W, b = (np.abs(np.asarray(a, dtype=np.float64)) for a in (X, W, b))
    return float(np.finfo(dtype).eps) * (X.shape[1] + 1) * (X @ W + b)


def exact_transpose_product(X, G):
    """``X.T @ G`` and ``G.sum(0)`` at 50 digits; ``G`` is (n, k) nested lists of mpf."""
    with mpmath.workdps(DIGITS):
        Xm = [mpf_list(col) for col in np.asarray(X).T]
        columns = list(zip(*G))
        coef = [mpmath.fdot(x, g) for x in Xm for g in columns]
        intercept = [mpmath.fsum(g) for g in columns]
    return coef, intercept


def check_linear_loss_gradient(problem):
    """The messages for the outputs of linear_loss_gradient over the limit; S as in the
    test below."""
    X, labels, sw, coef_t, intercept = (
        problem.X, problem.labels, problem.sample_weight, problem.coef_t, problem.intercept
    )
    dtype, n, k = X.dtype, len(X), coef_t.shape[1]
    eps = float(np.finfo(dtype).eps)
    w = sw.astype(np.float64) if sw.size else np.ones(n)
    Q = logit_condition(X, coef_t, intercept, dtype)  # eps Q
    G, row_losses = [], []
    C = np.empty((n, k))  # eps sum_i |dg_rc/dz_ri| Q_ri
    loss_condition = 0.0
    z = exact_logits(X, coef_t, intercept)
    with mpmath.workdps(DIGITS):
        for r in range(n):
            ref = RowReference(z[r])
            y, wr = int(labels[r]), mpmath.mpf(float(w[r]))
            g = [wr * p for p in ref.p]
            g[y] = -wr * ref.one_minus_p[y]
            G.append(g)
            row_losses.append(wr * ref.lse_minus(y))
            C[r] = w[r] * ref.softmax_condition(Q[r])
            dE = ref.p_f.copy()
            dE[y] = ref.q_f[y]
            loss_condition += w[r] * (float(np.sum(dE * Q[r])) + underflow(dtype) * k)
        total = mpmath.fsum(row_losses)
    exact_coef, exact_intercept = exact_transpose_product(X, G)
    assume_representable([total], dtype)

    grad_coef_t = np.full_like(coef_t, np.nan)
    grad_intercept = np.full_like(intercept, np.nan)
    loss = linear_kernels(k).linear_loss_gradient(
        X, labels, sw, coef_t, intercept, grad_coef_t, grad_intercept, problem.n_threads
    )

    absG = np.abs(np.array([to_float(g) for g in G]))
    absX = np.abs(X.astype(np.float64))
    def describe(j):
        return repr(problem)

    return (
        measure("linear_loss_gradient loss", dtype, [loss], [total],
                [loss_condition + eps * n * float(total)], describe),
        measure("linear_loss_gradient grad_coef_t", dtype, grad_coef_t, exact_coef,
                eps * n * (absX.T @ absG) + absX.T @ C
                + underflow(dtype) * (absX.T @ w)[:, None], describe),
        measure("linear_loss_gradient grad_intercept", dtype, grad_intercept, exact_intercept,
                eps * n * absG.sum(axis=0) + C.sum(axis=0) + underflow(dtype) * w.sum(),
                describe),
    )


@pytest.mark.parametrize("dtype", FLOATS)
@settings(PROPERTY, max_examples=100)
@given(data=st.data())
def test_linear_loss_gradient_is_accurate(dtype, data):
    """linear_kernels(k).linear_loss_gradient: loss sum_r w_r (logsumexp(z_r) - z_r,y_r),
    grad_coef_t = X.T @ G and grad_intercept = G.sum(0), G_r = w_r (softmax(z_r) -
    onehot(y_r)), z = X @ coef_t + intercept exact, are within 8 ulps in the mixed measure.

    The kernel computes the logits in floating point, so each logit counts as an input of
    magnitude Q_rc = (d + 1) (sum_j |x_rj coef_t_jc| + |b_c|). Loss: S = sum_r sum_c
    |dE/dz_rc| Q_rc + n_rows E_total. grad_coef_t[j, c] = sum_r x_rj g_rc: S = n_rows
    sum_r |x_rj g_rc| + sum_r |x_rj| sum_i |dg_rc/dz_ri| Q_ri, with sum_i |dg_rc/dz_ri| Q_ri
    = w_r p_rc (Q_rc (1 - p_rc) + sum_{i != c} p_ri Q_ri); grad_intercept the same with
    x_rj = 1."""
    problem = data.draw(linear_problems(dtype), label="problem")
    assert_within_limit(*check_linear_loss_gradient(problem))


def hessian_product_via_proba(problem, V, v, out_coef_t, out_intercept):
    """linear_hessian_product_proba, from linear_probabilities at the problem's point."""
    X, coef_t, intercept = problem.X, problem.coef_t, problem.intercept
    kernels = linear_kernels(coef_t.shape[1])
    proba = np.empty((X.shape[0], kernels.padded_classes(coef_t.shape[1], X.dtype.name)), X.dtype)
    kernels.linear_probabilities(X, coef_t, intercept, proba, problem.n_threads)
    kernels.linear_hessian_product_proba(
        X, problem.sample_weight, proba, V, v, out_coef_t, out_intercept, problem.n_threads)


def check_linear_hessian_product(problem, V, v, via_proba=False):
    """The messages for the outputs of linear_hessian_product over the limit, for the
    direction (V, v); S as in the test below."""
    X, sw, coef_t, intercept = problem.X, problem.sample_weight, problem.coef_t, problem.intercept
    dtype, n, k = X.dtype, X.shape[0], coef_t.shape[1]
    eps = float(np.finfo(dtype).eps)
    w = sw.astype(np.float64) if sw.size else np.ones(n)
    Qz = logit_condition(X, coef_t, intercept, dtype)
    Qr = logit_condition(X, V, v, dtype)
    z = exact_logits(X, coef_t, intercept)
    r = exact_logits(X, V, v)
    U = []
    Su = np.empty((n, k))
    scale_u = np.empty((n, k))  # w |r_c - p.r|: what multiplies a subnormal p_c
    with mpmath.workdps(DIGITS):
        for row in range(n):
            ref = RowReference(z[row])
            # r_c - p.r = (r_c - r_top) + sum_{i != top} p_i (r_top - r_i), top = argmax(z):
            # p.r itself is close to r_top, and r_c - p.r may be far smaller than both.
            r_top = r[row][ref.top]
            top_minus_pr = mpmath.fsum(
                p * (r_top - ri) for i, (p, ri) in enumerate(zip(ref.p, r[row])) if i != ref.top
            )
            centered = [(rc - r_top) + top_minus_pr for rc in r[row]]
            wr = mpmath.mpf(float(w[row]))
            U.append([wr * p * c for p, c in zip(ref.p, centered)])
            # du_c/dz_i = w p_c ((delta_ci - p_i) D_c - p_i D_i), D = r - p.r: a (k, k) matrix
            p, D = ref.p_f, to_float(centered)
            dz = w[row] * p[:, None] * ((np.eye(k) - p[None, :]) * D[:, None] - p[None, :] * D[None, :])
            Su[row] = np.abs(dz) @ Qz[row] + w[row] * ref.softmax_condition(Qr[row])
            scale_u[row] = w[row] * np.abs(D)
    exact_coef, exact_intercept = exact_transpose_product(X, U)

    out_coef_t = np.full_like(coef_t, np.nan)
    out_intercept = np.full_like(intercept, np.nan)
    if via_proba:
        hessian_product_via_proba(problem, V, v, out_coef_t, out_intercept)
    else:
        linear_kernels(k).linear_hessian_product(
            X, sw, coef_t, intercept, V, v, out_coef_t, out_intercept, problem.n_threads
        )
    name = "linear_hessian_product" + ("_proba" if via_proba else "")

    absU = np.abs(np.array([to_float(u) for u in U]))
    absX = np.abs(X.astype(np.float64))
    def describe(j):
        return f"{problem!r}, V = {short(V)}, v = {short(v)}"

    return (
        measure(f"{name} out_coef_t", dtype, out_coef_t, exact_coef,
                eps * n * (absX.T @ absU) + absX.T @ Su + underflow(dtype) * (absX.T @ scale_u),
                describe),
        measure(f"{name} out_intercept", dtype, out_intercept, exact_intercept,
                eps * n * absU.sum(axis=0) + Su.sum(axis=0) + underflow(dtype) * scale_u.sum(0),
                describe),
    )


@pytest.mark.parametrize("via_proba", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
@settings(PROPERTY, max_examples=60)
@given(data=st.data())
def test_linear_hessian_product_is_accurate(dtype, via_proba, data):
    """linear_kernels(k).linear_hessian_product: out_coef_t = X.T @ U, out_intercept =
    U.sum(0), U_rc = w_r p_rc (r_rc - p_r . r_r), with z = X @ coef_t + b and the
    direction's logits r = X @ V + v exact, are within 8 ulps in the mixed measure.

    z and r are computed in floating point: they count as inputs of magnitude
    Qz = (d + 1) (|X| @ |coef_t| + |b|) and Qr = (d + 1) (|X| @ |V| + |v|). For u_c:
    du_c/dz_i = w p_c ((delta_ci - p_i)(r_c - p.r) - p_i (r_i - p.r)) and
    du_c/dr_i = w p_c (delta_ci - p_i), so Su_rc = sum_i |du_c/dz_i| Qz_i + |du_c/dr_i| Qr_i;
    out_coef_t[j, c]: S = n_rows sum_r |x_rj u_rc| + sum_r |x_rj| Su_rc (out_intercept:
    x_rj = 1). The same holds for linear_hessian_product_proba, which reads the
    probabilities from linear_probabilities (rounded once to the dtype)."""
    problem = data.draw(linear_problems(dtype), label="problem")
    d, k = problem.coef_t.shape
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="direction seed"))
    scale = data.draw(st.sampled_from([1.0, 1e-3, 1e3]), label="direction scale")
    V = (scale * rng.standard_normal((d, k))).astype(dtype)
    v = rng.standard_normal(k).astype(dtype)
    assert_within_limit(*check_linear_hessian_product(problem, V, v, via_proba))


@pytest.mark.parametrize("via_proba", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
def test_hessian_product_of_a_confident_row(dtype, via_proba):
    """One row with logits z = [0, -40] (x = 1, coef_t = [[0, -40]]) and direction logits
    r = [1, 0] (V = [[1, 0]]): u = p * (r - p.r) = [p_0 p_1, -p_0 p_1], with p_0 p_1 =
    exp(-40) / (1 + exp(-40))**2 = 4.248354255291589e-18, in out_coef_t and out_intercept
    to 4 ulps; r_0 - p.r = p_1 must not be computed as 1 - 1 = 0."""
    problem = LinearProblem(
        X=np.array([[1.0]], dtype=dtype),
        labels=np.array([0], dtype=np.intp),
        sample_weight=np.empty(0, dtype=dtype),
        coef_t=np.array([[0.0, -40.0]], dtype=dtype),
        intercept=np.zeros(2, dtype=dtype),
        n_threads=1,
    )
    V, v = np.array([[1.0, 0.0]], dtype=dtype), np.zeros(2, dtype=dtype)
    out_coef_t, out_intercept = np.empty_like(problem.coef_t), np.empty_like(problem.intercept)
    if via_proba:
        hessian_product_via_proba(problem, V, v, out_coef_t, out_intercept)
    else:
        linear_kernels(2).linear_hessian_product(
            problem.X, problem.sample_weight, problem.coef_t, problem.intercept, V, v,
            out_coef_t, out_intercept, 1,
        )
    messages = check_linear_hessian_product(problem, V, v, via_proba)
    assert_ulps(out_coef_t, [[4.248354255291589e-18, -4.248354255291589e-18]], dtype)
    assert_ulps(out_intercept, [4.248354255291589e-18, -4.248354255291589e-18], dtype)
    assert_within_limit(*messages)


# ---------------------------------------------------------------------------
# Many classes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
def test_error_does_not_grow_with_the_number_of_classes(dtype):
    """With 5000 classes, every row function stays within 8 ulps on a row of nearly equal
    logits (N(0, 1e-3): the sum of the exponentials is 5000 terms close to 1 and the
    allowance about 1 ulp, so an uncompensated sum would be off by tens of ulps) and a row
    of N(0, 3) logits, with labels at the argmax and at random and uniform soft targets;
    so does the fused linear kernel with 2000 classes (d = 3, 5 rows)."""
    rng = np.random.default_rng(0)
    k = 5000
    z = np.stack([1e-3 * rng.standard_normal(k), 3 * rng.standard_normal(k)]).astype(dtype)
    labels = np.array([np.argmax(z[0]), rng.integers(k)])
    t = rng.uniform(0, 1, z.shape).astype(dtype)
    sw = np.array([0.5, 3.0], dtype=dtype)
    messages = [
        check_softmax(z, softmax(z)),
        check_log_softmax(z, log_softmax(z)),
        *check_cross_entropy_labels(z, labels, sw, *softmax_cross_entropy(z, labels, sw)),
        *check_cross_entropy_targets(z, t, sw, *softmax_cross_entropy(z, t, sw)),
    ]
    n, d, k = 5, 3, 2000
    problem = LinearProblem(
        X=rng.standard_normal((n, d)).astype(dtype),
        labels=rng.integers(0, k, n).astype(np.intp),
        sample_weight=np.empty(0, dtype=dtype),
        coef_t=rng.standard_normal((d, k)).astype(dtype),
        intercept=rng.standard_normal(k).astype(dtype),
        n_threads=2,
    )
    messages += check_linear_loss_gradient(problem)
    assert_within_limit(*messages)


@pytest.mark.parametrize("dtype, gap, k", [(np.float32, -104.0, 31), (np.float64, -745.0, 1000),
                                           (np.float64, -720.0, 50), (np.float32, -95.0, 7)])
def test_log_softmax_of_a_top_class_whose_rest_underflows_term_by_term(dtype, gap, k):
    """Every other class's exp(z_j - max) is subnormal or 0 on its own, while their sum is a
    representable subnormal: log_softmax of the top class is -that sum, to within one
    smallest subnormal (it was 0.0: 14.6 and 28 of them off, found by Hypothesis under
    other seeds). The same row's cross-entropy with label 0 is that sum too."""
    z = np.full((1, k), gap, dtype=dtype)
    z[0, 0] = 0
    with mpmath.workdps(DIGITS):
        exact = -mpmath.log1p((k - 1) * mpmath.exp(mpmath.mpf(float(gap))))
    eta = float(np.finfo(dtype).smallest_subnormal)
    assert abs(float(log_softmax(z)[0, 0]) - float(exact)) <= eta
    loss, _ = softmax_cross_entropy(z, np.array([0]))
    assert abs(float(loss) + float(exact)) <= eta
