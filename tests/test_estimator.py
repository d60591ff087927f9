"""SoftmaxRegressor: the same model as LogisticRegression, the scikit-learn API, bad input."""

import doctest
import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, load_wine, make_blobs, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from softmaxreg import SoftmaxRegressor, log_softmax
from softmaxreg import _estimator as _estimator_module, functional as functional_module

TIGHT = dict(tol=1e-12, max_iter=10_000)


def standardized(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def assert_close_to_scale(actual, desired, rtol):
    """Equal up to ``rtol`` times the largest entry of ``desired``: how converged solutions differ."""
    assert_allclose(actual, desired, rtol=0, atol=rtol * np.abs(desired).max())


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=300, n_features=6, centers=4, cluster_std=3.0, random_state=0)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("loader", [load_digits, load_wine, load_iris])
def test_same_model_as_logistic_regression(loader):
    """coef_ and the centred intercept_ match LogisticRegression's to 1e-5 relative."""
    X, y = standardized(loader)
    ours = SoftmaxRegressor(**TIGHT).fit(X, y)
    ref = LogisticRegression(**TIGHT).fit(X, y)
    ref_intercept = ref.intercept_ - ref.intercept_.mean()
    assert_close_to_scale(ours.coef_, ref.coef_, 1e-5)
    assert_close_to_scale(ours.intercept_, ref_intercept, 1e-5)
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-5)


def test_unpenalized_multinomial_is_logistic_regression():
    """C=np.inf fits the unpenalized model as LogisticRegression(C=np.inf) does: the same
    probabilities, and the same coefficients once centred over the classes (softmax is
    unchanged by a shift common to all classes; ours are centred)."""
    X, y = make_classification(
        n_samples=300, n_features=4, n_informative=4, n_redundant=0, n_classes=3, flip_y=0.3,
        random_state=0,
    )
    ours = SoftmaxRegressor(C=np.inf, **TIGHT).fit(X, y)
    ref = LogisticRegression(C=np.inf, **TIGHT).fit(X, y)
    assert_allclose(ours.coef_.sum(axis=0), 0.0, atol=1e-12)
    assert_close_to_scale(ours.coef_, ref.coef_ - ref.coef_.mean(axis=0), 1e-6)
    assert_close_to_scale(ours.intercept_, ref.intercept_ - ref.intercept_.mean(), 1e-6)
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-7)


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0, np.inf])
@pytest.mark.parametrize("labels", [(0, 1), ("no", "yes"), (-1, 3)])
def test_binary_is_logistic_regression(C, labels):
    """With two classes the model is LogisticRegression's binary one, with the same C: coef_ of
    shape (1, d), intercept_ of shape (1,), the same decision function (shape (n,)) and
    probabilities (features of full rank, so that the optimum is unique for C=inf too)."""
    X, y = make_classification(
        n_samples=200, n_features=5, n_informative=5, n_redundant=0, flip_y=0.2, random_state=0
    )
    y = np.asarray(labels)[y]
    ours = SoftmaxRegressor(C=C, **TIGHT).fit(X, y)
    ref = LogisticRegression(C=C, **TIGHT).fit(X, y)
    assert ours.coef_.shape == (1, 5) and ours.intercept_.shape == (1,)
    assert_close_to_scale(ours.coef_, ref.coef_, 1e-6)
    assert_close_to_scale(ours.intercept_, ref.intercept_, 1e-6)
    assert ours.decision_function(X).shape == (200,)
    assert_close_to_scale(ours.decision_function(X), ref.decision_function(X), 1e-6)
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-7)
    assert_allclose(ours.predict_log_proba(X), ref.predict_log_proba(X), rtol=1e-5, atol=1e-7)
    assert_array_equal(ours.predict(X), ref.predict(X))
    # p(classes_[1]) is the sigmoid of the decision function.
    assert_allclose(ours.predict_proba(X)[:, 1], 1 / (1 + np.exp(-ours.decision_function(X))), rtol=1e-12)


def test_balanced_class_weight_matches_logistic_regression(blobs):
    """class_weight="balanced" (with sample weights) gives LogisticRegression's model."""
    X, y = blobs
    keep = np.r_[np.flatnonzero(y != 3), np.flatnonzero(y == 3)[:20]]  # imbalanced
    X, y = X[keep], y[keep]
    sw = np.random.default_rng(0).uniform(0.5, 2.0, size=y.shape[0])
    ours = SoftmaxRegressor(class_weight="balanced", **TIGHT).fit(X, y, sample_weight=sw)
    ref = LogisticRegression(class_weight="balanced", **TIGHT).fit(X, y, sample_weight=sw)
    assert_close_to_scale(ours.coef_, ref.coef_, 1e-5)


def test_class_weight_dict_is_sample_weight(blobs):
    """A class weight dict is the same as multiplying the sample weights."""
    X, y = blobs
    cw = {0: 2.0, 1: 0.5, 3: 3.0}  # class 2 keeps weight 1
    sw = np.array([cw.get(label, 1.0) for label in y])
    a = SoftmaxRegressor(class_weight=cw, **TIGHT).fit(X, y)
    b = SoftmaxRegressor(**TIGHT).fit(X, y, sample_weight=sw)
    assert_close_to_scale(a.coef_, b.coef_, 1e-6)


def test_integer_sample_weight_is_repetition(blobs):
    """Integer sample weights give the model of repeated rows (and 0 removes a row)."""
    X, y = blobs
    sw = np.random.default_rng(1).integers(0, 4, size=y.shape[0])
    a = SoftmaxRegressor(**TIGHT).fit(X, y, sample_weight=sw)
    b = SoftmaxRegressor(**TIGHT).fit(np.repeat(X, sw, axis=0), np.repeat(y, sw))
    assert_close_to_scale(a.coef_, b.coef_, 1e-6)


def test_float32_stays_float32(blobs):
    """float32 X gives float32 coefficients and outputs, close to the float64 model."""
    X, y = blobs
    with warnings.catch_warnings():
        # tol=1e-12 is below float32 resolution: the line search may stop first.
        warnings.simplefilter("ignore", ConvergenceWarning)
        m32 = SoftmaxRegressor(**TIGHT).fit(X.astype(np.float32), y)
    m64 = SoftmaxRegressor(**TIGHT).fit(X, y)
    assert m32.coef_.dtype == np.float32 and m32.intercept_.dtype == np.float32
    X32 = X.astype(np.float32)
    for method in ("predict_proba", "predict_log_proba", "decision_function"):
        assert getattr(m32, method)(X32).dtype == np.float32
    assert_close_to_scale(m32.coef_, m64.coef_, 2e-3)


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["cat", "dog", "emu", "fox"]),
        np.array([-3, -1, 7, 10]),
        np.array([1.0, 2.0, 5.0, -3.0]),
    ],
    ids=["strings", "negative-ints", "floats"],
)
def test_labels_of_every_kind(blobs, labels):
    """Labels are kept as given; renaming the classes does not change the model's predictions."""
    X, y = blobs
    yl = labels[y]
    m = SoftmaxRegressor().fit(X, yl)
    ref = SoftmaxRegressor().fit(X, y)
    assert_array_equal(m.classes_, np.sort(labels))
    assert_array_equal(m.predict(X), labels[ref.predict(X)])
    assert m.predict(X).dtype == yl.dtype
    assert m.score(X, yl) == pytest.approx(ref.score(X, y))


def test_predict_log_proba_is_stable():
    """predict_log_proba is finite where predict_proba rounds to 0, and equals log_softmax."""
    X = np.array([[-40.0], [0.0], [40.0]])
    y = np.array([0, 1, 2])
    m = SoftmaxRegressor(C=1e6, max_iter=1000).fit(X, y)
    X_far = np.array([[-1e6], [1e6]])
    proba = m.predict_proba(X_far)
    log_proba = m.predict_log_proba(X_far)
    assert (proba == 0).any()
    assert np.isfinite(log_proba).all()
    assert_allclose(log_proba, log_softmax(X_far @ m.coef_.T + m.intercept_))


def test_predict_is_argmax_of_proba(blobs):
    X, y = blobs
    m = SoftmaxRegressor().fit(X, y)
    assert_array_equal(m.predict(X), m.classes_[np.argmax(m.predict_proba(X), axis=1)])
    assert_allclose(m.predict_proba(X).sum(axis=1), 1.0)
    assert_allclose(m.decision_function(X), X @ m.coef_.T + m.intercept_, rtol=1e-12, atol=1e-12)


def test_no_warning_when_converged(blobs):
    X, y = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SoftmaxRegressor().fit(X, y)


def test_warm_start_starts_from_previous_solution(blobs):
    """A warm start from the optimum needs (almost) no iterations and stays there."""
    X, y = blobs
    m = SoftmaxRegressor(warm_start=True, **TIGHT).fit(X, y)
    coef = m.coef_.copy()
    m.fit(X, y)
    assert m.n_iter_ <= 2
    assert_close_to_scale(m.coef_, coef, 1e-6)
    cold = SoftmaxRegressor(warm_start=False, **TIGHT).fit(X, y)
    cold.fit(X, y)
    assert cold.n_iter_ > 5


def test_fit_intercept_false(blobs):
    X, y = blobs
    m = SoftmaxRegressor(fit_intercept=False, **TIGHT).fit(X, y)
    ref = LogisticRegression(fit_intercept=False, **TIGHT).fit(X, y)
    assert_array_equal(m.intercept_, 0.0)
    assert_close_to_scale(m.coef_, ref.coef_, 1e-5)


def test_fit_is_deterministic_and_thread_count_barely_matters(blobs):
    """Refits with the same n_jobs are bit-identical; 1 and 2 threads agree closely."""
    X, y = make_classification(n_samples=2000, n_features=20, n_informative=10, n_classes=5, random_state=0)
    one = SoftmaxRegressor(n_jobs=1, **TIGHT).fit(X, y)
    two = SoftmaxRegressor(n_jobs=2, **TIGHT).fit(X, y)
    two_again = SoftmaxRegressor(n_jobs=2, **TIGHT).fit(X, y)
    assert_array_equal(two.coef_, two_again.coef_)
    assert_close_to_scale(one.coef_, two.coef_, 1e-6)


@pytest.mark.parametrize(
    "make_layout",
    [
        lambda X: np.asfortranarray(X),
        lambda X: np.repeat(X, 2, axis=1)[:, ::2],
        lambda X: _read_only(X),
    ],
    ids=["fortran", "strided", "read-only"],
)
def test_layouts_give_the_same_model(blobs, make_layout):
    X, y = blobs
    ref = SoftmaxRegressor().fit(X, y)
    m = SoftmaxRegressor().fit(make_layout(X), y)
    assert_allclose(m.coef_, ref.coef_, rtol=1e-12)
    assert_allclose(m.predict_proba(make_layout(X)), ref.predict_proba(X), rtol=1e-12)


def _read_only(X):
    X = X.copy()
    X.setflags(write=False)
    return X


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_extreme_but_finite_data(scale):
    """|X| up to 1e150 and C=1e12 on separable data: finite coefficients and probabilities."""
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(40, 3)) + 6, rng.normal(size=(40, 3)) - 6] * scale
    y = np.r_[np.zeros(40), np.ones(40)]
    X[:, 2] = rng.normal(size=80)  # an ordinary feature next to the extreme ones
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = SoftmaxRegressor(C=1e12, max_iter=500).fit(X, y)
    assert np.isfinite(m.coef_).all() and np.isfinite(m.intercept_).all()
    for method in ("predict_proba", "predict_log_proba", "decision_function"):
        assert not np.isnan(getattr(m, method)(X)).any()
    assert np.isfinite(m.predict_proba(X)).all()
    if scale > 1:
        assert m.score(X, y) == 1.0


def test_huge_values_in_every_feature():
    """X * 1e150 at C=1 is X at C=1e300: these blobs are separable, so the fit warns that the
    coefficients grow without bound; the model is finite and predicts as the fit of X."""
    X, y = make_blobs(n_samples=200, n_features=4, centers=3, random_state=0)
    with pytest.warns(ConvergenceWarning, match="separable"):
        m = SoftmaxRegressor().fit(X * 1e150, y)
    assert m.score(X * 1e150, y) == SoftmaxRegressor().fit(X, y).score(X, y)
    assert np.isfinite(m.predict_proba(X * 1e150)).all()


@pytest.mark.parametrize(
    "X_bad, match",
    [
        (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), "NaN"),
        (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), "infinity"),
        (lambda X: X[:, :, None], "dim"),
        (lambda X: X[:, 0], "2D array"),
    ],
    ids=["nan", "inf", "3d", "1d"],
)
def test_bad_X_is_rejected(blobs, X_bad, match):
    X, y = blobs
    with pytest.raises(ValueError, match=match):
        SoftmaxRegressor().fit(X_bad(X), y)


def test_single_class_is_rejected(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="at least 2 classes"):
        SoftmaxRegressor().fit(X, np.zeros(X.shape[0]))


def test_mismatched_lengths_are_rejected(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        SoftmaxRegressor().fit(X, y[:-1])


@pytest.mark.parametrize(
    "sample_weight, match",
    [
        (lambda n: np.zeros(n), "zero for every sample"),
        (lambda n: -np.ones(n), "non-negative"),
        (lambda n: np.ones(n - 1), "expected"),
        (lambda n: np.full(n, np.nan), "finite"),
    ],
    ids=["all-zero", "negative", "wrong-length", "nan"],
)
def test_bad_sample_weight_is_rejected(blobs, sample_weight, match):
    X, y = blobs
    with pytest.raises(ValueError, match=match):
        SoftmaxRegressor().fit(X, y, sample_weight=sample_weight(y.shape[0]))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"C": -1.0}, "'C' parameter"),
        ({"C": 0.0}, "'C' parameter"),
        ({"tol": -1e-3}, "'tol' parameter"),
        ({"max_iter": -1}, "'max_iter' parameter"),
        ({"solver": "saga"}, "'solver' parameter"),
        ({"class_weight": "uniform"}, "'class_weight' parameter"),
        ({"n_jobs": 1.5}, "'n_jobs' parameter"),
        ({"n_jobs": 0}, "n_jobs == 0"),
        ({"class_weight": {7: 1.0}}, "not classes of y"),
        ({"class_weight": {0: -1.0}}, "non-negative"),
    ],
)
def test_bad_parameters_are_rejected(blobs, params, match):
    X, y = blobs
    with pytest.raises(ValueError, match=match):
        SoftmaxRegressor(**params).fit(X, y)


def test_predict_with_other_number_of_features_is_rejected(blobs):
    X, y = blobs
    m = SoftmaxRegressor().fit(X, y)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function", "score"):
        args = (X[:, :-1], y) if method == "score" else (X[:, :-1],)
        with pytest.raises(ValueError, match="features"):
            getattr(m, method)(*args)


def test_grid_search_over_c_in_a_pipeline():
    X, y = load_digits(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), SoftmaxRegressor(max_iter=300))
    search = GridSearchCV(pipe, {"softmaxregressor__C": [0.01, 0.1, 1.0]}, cv=3).fit(X, y)
    assert search.best_score_ > 0.9
    assert search.best_params_["softmaxregressor__C"] in (0.01, 0.1, 1.0)
    scores = cross_val_score(make_pipeline(StandardScaler(), SoftmaxRegressor(C=0.1)), X, y, cv=3)
    assert scores.mean() > 0.9


def test_clone_and_pickle_round_trips(blobs):
    X, y = blobs
    m = SoftmaxRegressor(C=0.5, class_weight="balanced", n_jobs=1).fit(X, y)
    unfitted = clone(m)
    assert unfitted.get_params() == m.get_params() and not hasattr(unfitted, "coef_")
    restored = pickle.loads(pickle.dumps(m))
    assert_array_equal(restored.predict_proba(X), m.predict_proba(X))
    assert_array_equal(restored.coef_, m.coef_)


def test_feature_names_in():
    pd = pytest.importorskip("pandas")
    X, y = load_iris(return_X_y=True, as_frame=True)
    m = SoftmaxRegressor(max_iter=500).fit(X, y)
    assert_array_equal(m.feature_names_in_, X.columns.to_numpy())
    with pytest.warns(UserWarning, match="feature names"):
        m.predict(X.to_numpy())
    renamed = X.rename(columns={X.columns[0]: "other"})
    with pytest.raises(ValueError, match="feature names"):
        m.predict(renamed)
    assert isinstance(pd.DataFrame, type)


@pytest.mark.parametrize("module", [_estimator_module, functional_module], ids=["estimator", "functional"])
def test_docstring_examples_run(module):
    """The Examples sections of the public docstrings run and print what they show."""
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("solver", ["auto", "lbfgs", "newton-cg"])
def test_float32_with_class_and_sample_weights(blobs, solver):
    """Class weights (float64) times float32 sample weights stay in X's dtype: the fit runs in
    float32 and gives the float64 model to float32 precision."""
    X, y = blobs
    sw = np.random.default_rng(0).uniform(0.5, 2, len(y))
    params = dict(solver=solver, class_weight="balanced")
    single = SoftmaxRegressor(**params).fit(X.astype(np.float32), y, sample_weight=sw.astype(np.float32))
    double = SoftmaxRegressor(**params, tol=1e-8).fit(X, y, sample_weight=sw)
    assert single.coef_.dtype == np.float32
    assert_allclose(single.predict_proba(X), double.predict_proba(X), atol=1e-3)


@pytest.mark.parametrize(
    "y",
    [np.array([0, 1, 2] * 20), np.array([3, 7, 11] * 20), np.array([-1.0, 0.0, 2.0] * 20),
     np.array([True, False, True] * 20), np.array(["a", "b", "c"] * 20),
     np.array([0, 1, 2] * 20, dtype=np.uint8), np.array(["x", "y", "z"] * 20, dtype=object)],
)
def test_labels_of_every_kind_give_the_same_model(y):
    """Integer labels 0..k-1 are used as they are, others are mapped to their index in
    classes_; the model is the same whatever the labels' type and values."""
    X = np.random.default_rng(0).standard_normal((60, 3))
    reference = SoftmaxRegressor().fit(X, np.unique(y, return_inverse=True)[1])
    model = SoftmaxRegressor().fit(X, y)
    assert_array_equal(model.classes_, np.unique(y))
    assert_allclose(model.coef_, reference.coef_, rtol=1e-12, atol=1e-14)
    assert_array_equal(model.predict(X), np.unique(y)[reference.predict(X)])


@pytest.mark.parametrize("y", [np.array([0.5, 1.0, 2.0] * 10), np.array([0.0, 1.0, 1e-300] * 10)])
def test_continuous_targets_are_refused_as_by_scikit_learn(y):
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        SoftmaxRegressor().fit(np.ones((30, 2)), y)
