"""No NaN or infinity from finite input, anywhere: fit, predict, predict_proba,
predict_log_proba, decision_function and the public functions, for inputs of any magnitude
in both dtypes. A result either is finite or is a ValueError that names the argument and
the problem."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning

from softmaxreg import SoftmaxRegressor, log_softmax, softmax, softmax_cross_entropy

FLOATS = [np.float32, np.float64]
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def largest_exponent(dtype):
    """log10 of (nearly) the largest finite value of the dtype."""
    return int(np.floor(np.log10(np.finfo(dtype).max)))


@st.composite
def problems(draw, dtype):
    """X whose columns have magnitudes 10**e for e anywhere in the dtype's range (and a
    constant column now and then), labels of 2 to 4 classes, weights of any magnitude."""
    top = largest_exponent(dtype)
    n = draw(st.integers(12, 60))
    d = draw(st.integers(1, 5))
    k = draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    exponents = draw(st.lists(st.integers(-top, top), min_size=d, max_size=d))
    offsets = draw(st.lists(st.sampled_from([0.0, 1.0, -3.0]), min_size=d, max_size=d))
    with np.errstate(over="ignore"):  # clipped to the dtype's range below
        X = (rng.standard_normal((n, d)) + np.array(offsets)) * 10.0 ** np.array(exponents, dtype=float)
    if draw(st.booleans()):
        X[:, draw(st.integers(0, d - 1))] = draw(st.sampled_from([0.0, 1.0, 1.7e9, -1e-30]))
    X = np.clip(X, -np.finfo(dtype).max / 2, np.finfo(dtype).max / 2).astype(dtype)
    y = np.arange(n) % k
    rng.shuffle(y)
    weight_exponent = draw(st.integers(-300, 300) | st.none())
    sample_weight = None
    if weight_exponent is not None:
        sample_weight = rng.uniform(0.1, 2, n) * 10.0**weight_exponent
    C = draw(st.sampled_from([1e-300, 1e-8, 1.0, 1e8, 1e300, np.inf]))
    fit_intercept = draw(st.booleans())
    return X, y, sample_weight, C, fit_intercept


def assert_finite_or_named_error(method, X):
    """method(X) is finite, or raises a ValueError that names X and the range."""
    try:
        out = method(X)
    except ValueError as error:
        assert "X has values so large" in str(error) and "beyond the range" in str(error)
        return None
    assert np.isfinite(out).all(), method.__name__
    return out


@pytest.mark.parametrize("dtype", FLOATS)
@SETTINGS
@given(data=st.data())
def test_fit_and_predict_are_finite_for_inputs_of_any_magnitude(dtype, data):
    """A fit on such inputs gives finite coefficients and intercepts; predict and
    predict_proba work on the training data and on data 1e10 times (or, in float32, 1e5
    times) larger; probabilities sum to 1; decision_function and predict_log_proba are finite
    or raise a ValueError that names X (where their exact values are beyond the dtype)."""
    X, y, sample_weight, C, fit_intercept = data.draw(problems(dtype))
    model = SoftmaxRegressor(C=C, fit_intercept=fit_intercept, max_iter=30, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y, sample_weight)
    assert model.coef_.dtype == dtype
    assert np.isfinite(model.coef_).all() and np.isfinite(model.intercept_).all()
    factor = 1e10 if dtype == np.float64 else 1e5
    limit = np.finfo(dtype).max
    with np.errstate(over="ignore"):
        X_far = np.clip(X.astype(np.float64) * factor, -limit, limit).astype(dtype)
    for X_new in (X, X_far):
        proba = model.predict_proba(X_new)
        assert np.isfinite(proba).all() and (proba >= 0).all()
        assert_allclose(proba.sum(axis=1), 1.0, rtol=10 * np.finfo(dtype).eps)
        assert np.isin(model.predict(X_new), model.classes_).all()
        log_proba = assert_finite_or_named_error(model.predict_log_proba, X_new)
        if log_proba is not None:
            assert (log_proba <= 0).all()
        assert_finite_or_named_error(model.decision_function, X_new)


@pytest.mark.parametrize("dtype", FLOATS)
@SETTINGS
@given(data=st.data())
def test_public_functions_are_finite_or_raise_for_logits_of_any_magnitude(dtype, data):
    """softmax is finite for any finite logits; log_softmax and softmax_cross_entropy are
    finite, or raise a ValueError saying which result is beyond the dtype's range."""
    top = largest_exponent(dtype)
    n, k = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    exponent = data.draw(st.integers(-top, top))
    with np.errstate(over="ignore"):  # clipped to the dtype's range
        z = np.clip(
            rng.standard_normal((n, k)) * 10.0**exponent, -np.finfo(dtype).max, np.finfo(dtype).max
        ).astype(dtype)
    p = softmax(z)
    assert np.isfinite(p).all()
    assert_allclose(p.sum(axis=1), 1.0, rtol=10 * np.finfo(dtype).eps)
    try:
        assert np.isfinite(log_softmax(z)).all()
    except ValueError as error:
        assert "logits differ so much" in str(error)
    weights = rng.uniform(0.1, 2, n) * 10.0 ** data.draw(st.integers(-300, 300))
    targets = data.draw(
        st.sampled_from(["labels", "soft"])
    )
    t = rng.integers(0, k, n) if targets == "labels" else rng.uniform(0, 1e3, (n, k)).astype(dtype)
    try:
        loss, grad = softmax_cross_entropy(z, t, weights)
    except ValueError as error:
        assert "beyond the range" in str(error)
    else:
        assert np.isfinite(loss) and np.isfinite(grad).all()


@pytest.mark.parametrize("dtype", FLOATS)
def test_predictions_far_beyond_the_training_data(dtype):
    """A model fitted on ordinary data, asked about a row of the dtype's largest values: the
    logits overflow, yet predict and predict_proba are those of the direction of the row (the
    recomputation at a power-of-two scale), while decision_function and predict_log_proba
    raise a ValueError naming X."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 3)).astype(dtype)
    y = np.argmax(X, axis=1)
    model = SoftmaxRegressor().fit(X, y)
    model.coef_ = (10 * np.eye(3) - 10 / 3).astype(dtype)  # logits 10 x, centred
    big = np.finfo(dtype).max / 4
    X_far = np.array([[big, -big, 0.0], [1.0, 2.0, 3.0]], dtype=dtype)
    proba = model.predict_proba(X_far)
    assert np.isfinite(proba).all()
    assert_array_equal(proba[0], np.eye(3)[0])  # the logits differ by ~1e38 or more
    assert_allclose(proba[1], model.predict_proba(X_far[1:])[0])
    assert_array_equal(model.predict(X_far), [0, model.predict(X_far[1:])[0]])
    for method in (model.decision_function, model.predict_log_proba):
        with pytest.raises(ValueError, match="X has values so large .* 1 of its rows"):
            method(X_far)


@pytest.mark.parametrize("dtype", FLOATS)
def test_features_too_large_to_sum(dtype):
    """Features of the dtype's largest magnitudes, whose sum over the rows overflows: the fit
    runs on a power-of-two scaled copy, and the model is the one of the feature scaled down
    (coefficients scaled back), with finite predictions."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 2))
    y = (X[:, 0] + 0.5 * rng.standard_normal(200) > 0).astype(int)
    scale = 2.0**120 if dtype == np.float32 else 2.0**1000
    big = (X * [scale, 1.0]).astype(dtype)
    model = SoftmaxRegressor(C=np.inf, tol=1e-8).fit(big, y)
    small = SoftmaxRegressor(C=np.inf, tol=1e-8).fit(X.astype(dtype), y)
    assert np.isfinite(model.coef_).all()
    rtol = 1e-4 if dtype == np.float32 else 1e-7
    assert_allclose(model.coef_.astype(np.float64) * [scale, 1.0], small.coef_, rtol=rtol)
    assert_allclose(model.predict_proba(big), small.predict_proba(X.astype(dtype)), atol=rtol)


@pytest.mark.parametrize("scale", [2.0**120, 2.0**-100])
def test_float32_features_of_extreme_scale_keep_their_penalty(scale):
    """float32 features of magnitude 1e36 (sums overflow) or 1e-30 (products subnormal) are
    fitted on a power-of-two scaled copy whose penalty is scaled to match: the model at C=1
    is the one float64 fits without any rescaling."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 2))
    y = (X[:, 0] - X[:, 1] + rng.standard_normal(200) > 0).astype(int)
    X32 = (X * [scale, 1.0]).astype(np.float32)
    single = SoftmaxRegressor(C=1.0, tol=1e-6).fit(X32, y)
    double = SoftmaxRegressor(C=1.0, tol=1e-10).fit(X32.astype(np.float64), y)
    # A penalty off by the scaling would be off by a factor of 2**240 or 2**200; float32 and
    # its tol leave the coefficient of the tiny feature (its logits ~1e-59) to 1e-2.
    assert_allclose(single.coef_.astype(np.float64) * [scale, 1.0], double.coef_ * [scale, 1.0],
                    rtol=1e-2)
    assert_allclose(single.intercept_, double.intercept_, rtol=1e-4, atol=1e-6)


def test_tiny_features_with_a_huge_c():
    """Iris * 1e-300 at C=1e307 (C S overflows, but the penalty on coefficients of ~1e9 is
    not negligible): the model is 1e300 times that of iris at C=1e-293 (they are the same
    problem in other units), not the unpenalized one; so it is with sample weights of 1e307."""
    X, y = load_iris(return_X_y=True)
    reference = SoftmaxRegressor(C=1e-293, tol=1e-10).fit(X, y)
    model = SoftmaxRegressor(C=1e307, tol=1e-10).fit(X * 1e-300, y)
    assert_allclose(model.coef_, reference.coef_ * 1e300, rtol=1e-6)
    assert_allclose(model.predict_proba(X * 1e-300), reference.predict_proba(X), atol=1e-12)
    # With the weights instead, the objective is log(3) to every digit (logits of 1e-291):
    # only gradients can guide the solver, which gets near the model and says it could not
    # resolve tol (a known limit, noted in the solver); it had been the unpenalized model.
    weighted = SoftmaxRegressor(C=1.0, tol=1e-10)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", ConvergenceWarning)
        weighted.fit(X * 1e-300, y, sample_weight=np.full(150, 1e307))
    rtol = 0.1 if record else 1e-6
    assert not record or "below what float64 arithmetic can resolve" in str(record[0].message)
    assert_allclose(weighted.coef_, reference.coef_ * 1e300, rtol=rtol)


def test_coefficients_beyond_the_range_are_an_error():
    """Iris * 1e-309 (subnormal) at C=inf: the optimal coefficients (~1e309) are beyond
    float64, which a ValueError says (it was an all-NaN model)."""
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match="coefficients of 4 features of X lie beyond"):
            SoftmaxRegressor(C=np.inf).fit(X * 1e-309, y)


def test_c_that_underflows_with_tiny_weights():
    """C=1e-300 with weights of 1e-25: C scaled by the weights' power of two underflows to 0;
    it is held at the smallest positive float, and the coefficients are 0 (C S times their
    gradient rounds to 0), not an infinite penalty root."""
    X, y = np.linspace(-1, 1, 12).reshape(-1, 1), np.arange(12) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model = SoftmaxRegressor(C=1e-300, fit_intercept=False).fit(X, y, np.full(12, 1e-25))
    assert_array_equal(model.coef_, 0.0)
